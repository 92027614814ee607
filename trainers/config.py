"""Training configurations: TOML files validated against defaults, with errors that name the key.

A configuration has the tables ``run``, ``task``, ``model``, ``optimizer``, ``schedule``,
``training`` and ``diagnostics`` (see ``docs/howto/training.md`` for every key). Missing keys take
the defaults of :data:`DEFAULTS`; an unknown key or a value of the wrong type is a
:class:`ConfigError` naming it (``optimizer.lr must be a positive number, got -1``).
"""

from __future__ import annotations

import copy
import inspect
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from lyapkit._checks import integer, number
from lyapkit.trainers.models import residuals

__all__ = [
    "DEFAULTS",
    "DIAGNOSTICS",
    "ConfigError",
    "load_config",
    "validate_config",
    "schedule_steps",
    "build_residual",
]

#: Defaults of every key. ``task`` and ``model`` take further keys: the options of the task
#: factory and of the model class.
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {
        "name": "run",
        "dir": "runs",
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
        "threads": 0,  # intra-op CPU threads while training; 0: one for a small model
    },
    "task": {"name": "adding"},
    "model": {"name": "WCRNN"},
    "optimizer": {
        "name": "sgd",
        "lr": 0.01,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "clip_grad_norm": 0.0,
    },
    "schedule": {"name": "constant", "step_size": 1000, "factor": 0.1},
    "training": {
        "steps": 1000,
        "batch_size": 64,
        "eval_every": 100,
        "checkpoint_every": 250,
    },
    "diagnostics": {},
}

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
DIAGNOSTICS: dict[str, dict[str, Any]] = {
    "lyapunov": {"steps": 500, "transient": 100, "k": 0, "sequences": 4, "backend": "numpy"},
    "gradients": {"batch": 32},
    "curvature": {"k": 5, "kind": "ggn", "batch": 32},
    "effective_lr": {"k": 5, "batch": 32},
    # gradient flossing (lyapkit.flossing): not only recorded, it adds a penalty to the loss
    "flossing": {
        "k": 1,
        "target": 0.0,
        "weight": 1.0,
        "steps": 100,
        "transient": 0,
        "sequences": 4,
    },
}
SCHEDULE_KEYS = ("every", "at", "logspaced")
RESIDUALS = ("homogeneous", "rotational", "heterogeneous", "informed", "random_orthogonal")


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has a bad value.

    A ``ValueError`` whose message names the key (dotted, ``table.key``) and the value it got, so
    that the command line can report it (exit code 2) before anything is written.

    See Also
    --------
    lyapkit.trainers.config.validate_config : Raises it for a bad configuration.
    lyapkit.trainers.trainer.RunError : A valid run that cannot start or resume.

    Examples
    --------
    >>> from lyapkit.trainers.config import ConfigError, validate_config
    >>> issubclass(ConfigError, ValueError)
    True
    >>> validate_config({"optimizer": {"lr": -1}})
    Traceback (most recent call last):
    ...
    lyapkit.trainers.config.ConfigError: optimizer.lr must be a positive number, got -1
    """


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML configuration file.

    ``load_config(path) = validate_config(tomllib.load(path))``: the tables of the file merged
    into the defaults ``DEFAULTS``, every key checked.

    Parameters
    ----------
    path : str or pathlib.Path
        The TOML file.

    Returns
    -------
    dict
        The full configuration: every table of ``DEFAULTS``, with the file's values.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        The file does not exist, is not valid TOML, or holds an unknown key or a bad value.

    See Also
    --------
    lyapkit.trainers.config.validate_config : The same for a dict.
    lyapkit.trainers.trainer.Trainer : Trains the configured run.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.config import load_config
    >>> _ = Path("tiny.toml").write_text('''
    ... [task]
    ... name = "adding"
    ... T = 20
    ...
    ... [optimizer]
    ... name = "adam"
    ... lr = 1e-3
    ... ''')
    >>> config = load_config("tiny.toml")
    >>> config["task"], config["optimizer"]["lr"], config["training"]["steps"]
    ({'name': 'adding', 'T': 20}, 0.001, 1000)
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    return validate_config(raw)


def validate_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Merge ``raw`` into the defaults and check every key; return the full configuration.

    ``config[table][key] = raw[table][key]`` where given, else ``DEFAULTS[table][key]``. The
    tables ``task`` and ``model`` take any further keys (the options of the task factory and of
    the model class, checked when they are built); each table of ``diagnostics`` must be one of
    ``DIAGNOSTICS`` with exactly one schedule key (``every``, ``at`` or ``logspaced``), and is
    completed with that diagnostic's defaults.

    Parameters
    ----------
    raw : dict
        A configuration as parsed from TOML: tables of keys; missing tables and keys take the
        defaults.

    Returns
    -------
    dict
        The full configuration: new dicts of tables (``raw`` is not modified), whose values
        are ``raw``'s own objects (a list or table given in ``raw`` is not copied).

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        An unknown table or key, a table that is not a table, or a value of the wrong type or
        out of range; the message names the key.

    See Also
    --------
    lyapkit.trainers.config.load_config : Reads and validates a TOML file.
    lyapkit.trainers.config.schedule_steps : The steps of a diagnostic's schedule.

    Examples
    --------
    >>> from lyapkit.trainers.config import validate_config
    >>> config = validate_config({"diagnostics": {"lyapunov": {"every": 100}}})
    >>> list(config)
    ['run', 'task', 'model', 'optimizer', 'schedule', 'training', 'diagnostics']
    >>> config["diagnostics"]["lyapunov"]
    {'steps': 500, 'transient': 100, 'k': 0, 'sequences': 4, 'backend': 'numpy', 'every': 100}
    >>> validate_config({"optimiser": {}})
    Traceback (most recent call last):
    ...
    lyapkit.trainers.config.ConfigError: unknown config table(s) ['optimiser']; tables are [...]
    """
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown config table(s) {unknown}; tables are {list(DEFAULTS)}")
    config = copy.deepcopy(DEFAULTS)
    for table, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"config key {table!r} must be a table, got {values!r}")
        open_ended = table in ("task", "model", "diagnostics")
        for key, value in values.items():
            if not open_ended and key not in DEFAULTS[table]:
                raise ConfigError(
                    f"unknown config key {table}.{key}; keys of [{table}] are {list(DEFAULTS[table])}"
                )
            config[table][key] = value
    _check_run(config["run"])
    _check_optimizer(config["optimizer"])
    _check_schedule(config["schedule"])
    _check_training(config["training"])
    config["diagnostics"] = {
        name: _check_diagnostic(name, options) for name, options in config["diagnostics"].items()
    }
    return config


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _check_run(run: dict) -> None:
    for key in ("name", "dir", "device"):
        if not isinstance(run[key], str) or not run[key]:
            raise ConfigError(f"run.{key} must be a non-empty string, got {run[key]!r}")
    integer(run["seed"], "run.seed", 0, error=ConfigError)
    _choice(run["dtype"], "run.dtype", ("float32", "float64"))
    integer(run["threads"], "run.threads", 0, error=ConfigError)


def _check_optimizer(opt: dict) -> None:
    _choice(opt["name"], "optimizer.name", OPTIMIZERS)
    number(opt["lr"], "optimizer.lr", positive=True, error=ConfigError)
    number(opt["weight_decay"], "optimizer.weight_decay", non_negative=True, error=ConfigError)
    number(opt["eps"], "optimizer.eps", positive=True, error=ConfigError)
    number(opt["clip_grad_norm"], "optimizer.clip_grad_norm", non_negative=True, error=ConfigError)
    number(opt["momentum"], "optimizer.momentum", non_negative=True, below=1, error=ConfigError)
    betas = opt["betas"]
    if not (
        isinstance(betas, list)
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {betas!r}")


def _check_schedule(schedule: dict) -> None:
    _choice(schedule["name"], "schedule.name", SCHEDULES)
    integer(schedule["step_size"], "schedule.step_size", 1, error=ConfigError)
    number(schedule["factor"], "schedule.factor", positive=True, error=ConfigError)


def _check_training(training: dict) -> None:
    for key in training:
        integer(training[key], f"training.{key}", 1, error=ConfigError)


def _check_diagnostic(name: str, options: Any) -> dict[str, Any]:
    if name not in DIAGNOSTICS:
        raise ConfigError(f"unknown diagnostic diagnostics.{name}; known: {list(DIAGNOSTICS)}")
    if not isinstance(options, dict):
        raise ConfigError(f"diagnostics.{name} must be a table, got {options!r}")
    full = {**DIAGNOSTICS[name], **options}
    unknown = sorted(set(full) - set(DIAGNOSTICS[name]) - set(SCHEDULE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {['diagnostics.' + name + '.' + k for k in unknown]}; keys are "
            f"{list(DIAGNOSTICS[name]) + list(SCHEDULE_KEYS)}"
        )
    given = [k for k in SCHEDULE_KEYS if k in full]
    if len(given) != 1:
        raise ConfigError(
            f"diagnostics.{name} needs exactly one schedule key of {list(SCHEDULE_KEYS)}, got {given}"
        )
    if "at" in full:
        at = full["at"]
        if not (isinstance(at, list) and at and all(isinstance(s, int) and s >= 0 for s in at)):
            raise ConfigError(f"diagnostics.{name}.at must be a list of steps ≥ 0, got {at!r}")
    else:
        key = given[0]
        integer(full[key], f"diagnostics.{name}.{key}", 1, error=ConfigError)
    if name == "curvature":
        _choice(full["kind"], "diagnostics.curvature.kind", ("ggn", "hessian"))
    if name == "flossing":
        _check_flossing(full)
    return full


def _check_flossing(options: dict[str, Any]) -> None:
    """``diagnostics.flossing``: ``k``, ``steps`` (the window), ``sequences`` positive integers,
    ``transient`` ≥ 0, ``weight`` ≥ 0 (0: record the exponents without flossing), ``target`` any
    finite number (the trainer checks ``k`` against the model's state size)."""
    for key in ("k", "steps", "sequences"):
        integer(options[key], f"diagnostics.flossing.{key}", 1, error=ConfigError)
    integer(options["transient"], "diagnostics.flossing.transient", 0, error=ConfigError)
    number(options["weight"], "diagnostics.flossing.weight", non_negative=True, error=ConfigError)
    number(options["target"], "diagnostics.flossing.target", error=ConfigError)


def schedule_steps(options: dict[str, Any], total: int) -> set[int]:
    """The training steps (0 … total) at which a diagnostic runs.

    Every ``N`` steps, ``{0, N, 2N, …} ∪ {total}``; at given steps, ``{s ∈ at : s ≤ total}``;
    or at ``n = logspaced`` log-spaced steps,
    ``{round((total + 1)^{i/(n−1)}) − 1 : i = 0 … n−1} ∪ {0, total}`` (duplicates merged, so
    there may be fewer than ``n``).

    Parameters
    ----------
    options : dict
        A diagnostic's options (validated) with one schedule key: ``"every"``, ``"at"`` or
        ``"logspaced"``.
    total : int
        The number of training steps (``training.steps``).

    Returns
    -------
    set of int
        The steps, between 0 and ``total``.

    Raises
    ------
    KeyError
        ``options`` has none of the schedule keys.

    See Also
    --------
    lyapkit.trainers.config.validate_config : Checks the schedule keys.

    Examples
    --------
    >>> from lyapkit.trainers.config import schedule_steps
    >>> sorted(schedule_steps({"every": 300}, 1000))
    [0, 300, 600, 900, 1000]
    >>> sorted(schedule_steps({"logspaced": 5}, 1000))
    [0, 5, 31, 177, 1000]
    >>> sorted(schedule_steps({"at": [0, 10, 5000]}, 1000))
    [0, 10]
    """
    if "at" in options:
        return {s for s in options["at"] if s <= total}
    if "every" in options:
        return set(range(0, total + 1, options["every"])) | {total}
    points = np.unique(np.round(np.geomspace(1, total + 1, options["logspaced"]) - 1))
    return {int(s) for s in points} | {0, total}


def build_residual(spec: Any, hidden_size: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A residual matrix from a ``model.residual`` table such as ``{kind = "homogeneous", r = 1}``.

    ``R = residuals.<kind>(hidden_size, **options)``, the factory of
    ``lyapkit.trainers.models.residuals`` named by ``kind`` (``"homogeneous"``, ``"rotational"``,
    ``"heterogeneous"``, ``"informed"`` or ``"random_orthogonal"``) called with the table's other
    keys; a factory that takes a ``seed`` gets the run's seed unless the table gives one. The
    ``"informed"`` kind also draws the per-unit couplings ``γ_i`` (the model's ``gamma``).

    Parameters
    ----------
    spec : dict
        The ``model.residual`` table: ``kind`` and the factory's keyword arguments.
    hidden_size : int
        The model's hidden size ``n``: ``R`` is ``n × n``.
    seed : int
        The run's seed, for a random residual whose table gives no ``seed``.

    Returns
    -------
    R : numpy.ndarray
        The residual matrix, ``(hidden_size, hidden_size)``.
    gamma : numpy.ndarray or None
        The per-unit couplings ``(hidden_size,)`` an ``"informed"`` residual draws; None for the
        other kinds.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        ``spec`` is not a table with a known ``kind``, has a key the factory does not take, or
        the factory refuses a value.

    See Also
    --------
    lyapkit.trainers.trainer.build_model : Builds the model with this residual.
    lyapkit.trainers.models.WCRNN : The model that takes it.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.config import build_residual
    >>> R, gamma = build_residual({"kind": "homogeneous", "r": 0.9}, 3, seed=0)
    >>> R, gamma
    (array([[0.9, 0. , 0. ],
           [0. , 0.9, 0. ],
           [0. , 0. , 0.9]]), None)
    >>> np.round(build_residual({"kind": "rotational", "phi": 0.5}, 2, seed=0)[0], 3)
    array([[ 0.878, -0.479],
           [ 0.479,  0.878]])
    >>> spec = {"kind": "informed", "phi_range": [0.0, 0.8], "r_range": [0.9, 1.0],
    ...         "gamma_range": [0.05, 0.15]}
    >>> R, gamma = build_residual(spec, 4, seed=0)
    >>> R.shape, np.round(gamma, 3)
    ((4, 4), array([0.111, 0.123, 0.104, 0.144]))
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(
            f"model.residual must be a table with a 'kind' in {list(RESIDUALS)}, got {spec!r}"
        )
    kind = spec["kind"]
    _choice(kind, "model.residual.kind", RESIDUALS)
    options = {k: v for k, v in spec.items() if k != "kind"}
    factory = getattr(residuals, kind)
    accepted = set(inspect.signature(factory).parameters) - {"n"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {['model.residual.' + k for k in unknown]} for kind {kind!r}; "
            f"it takes {sorted(accepted)}"
        )
    if "seed" in accepted:
        options.setdefault("seed", seed)
    try:
        drawn = factory(hidden_size, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.residual: {err}") from err
    return drawn if isinstance(drawn, tuple) else (drawn, None)
