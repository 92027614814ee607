"""Training configurations: TOML files validated against defaults, with errors that name the key.

A configuration has the tables ``run``, ``task``, ``model``, ``optimizer``, ``schedule``,
``training`` and ``diagnostics`` (see ``docs/howto/training.md`` for every key). Missing keys take
the defaults of :data:`DEFAULTS`; an unknown key or a value of the wrong type is a
:class:`ConfigError` naming it (``optimizer.lr must be a positive number, got -1``).
"""

from __future__ import annotations

import copy
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

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
RESIDUALS = ("homogeneous", "rotational", "heterogeneous", "random_orthogonal")


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has a bad value."""


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a TOML configuration file."""
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
    """Merge ``raw`` into the defaults and check every key; return the full configuration."""
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


def check_number(value: Any, key: str, *, integer: bool = False, zero: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        what = "integer" if integer else "number"
        bound = "non-negative" if zero else "positive"
        raise ConfigError(f"{key} must be a {bound} {what}, got {value!r}")


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _check_run(run: dict) -> None:
    for key in ("name", "dir", "device"):
        if not isinstance(run[key], str) or not run[key]:
            raise ConfigError(f"run.{key} must be a non-empty string, got {run[key]!r}")
    check_number(run["seed"], "run.seed", integer=True, zero=True)
    _choice(run["dtype"], "run.dtype", ("float32", "float64"))
    check_number(run["threads"], "run.threads", integer=True, zero=True)


def _check_optimizer(opt: dict) -> None:
    _choice(opt["name"], "optimizer.name", OPTIMIZERS)
    check_number(opt["lr"], "optimizer.lr")
    check_number(opt["weight_decay"], "optimizer.weight_decay", zero=True)
    check_number(opt["eps"], "optimizer.eps")
    check_number(opt["clip_grad_norm"], "optimizer.clip_grad_norm", zero=True)
    if not (isinstance(opt["momentum"], (int, float)) and 0 <= opt["momentum"] < 1):
        raise ConfigError(f"optimizer.momentum must be in [0, 1), got {opt['momentum']!r}")
    betas = opt["betas"]
    if not (
        isinstance(betas, list)
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {betas!r}")


def _check_schedule(schedule: dict) -> None:
    _choice(schedule["name"], "schedule.name", SCHEDULES)
    check_number(schedule["step_size"], "schedule.step_size", integer=True)
    check_number(schedule["factor"], "schedule.factor")


def _check_training(training: dict) -> None:
    for key in training:
        check_number(training[key], f"training.{key}", integer=True)


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
        check_number(full[key], f"diagnostics.{name}.{key}", integer=True)
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
        check_number(options[key], f"diagnostics.flossing.{key}", integer=True)
    check_number(options["transient"], "diagnostics.flossing.transient", integer=True, zero=True)
    check_number(options["weight"], "diagnostics.flossing.weight", zero=True)
    target = options["target"]
    if (
        isinstance(target, bool)
        or not isinstance(target, (int, float))
        or not math.isfinite(target)
    ):
        raise ConfigError(f"diagnostics.flossing.target must be a finite number, got {target!r}")


def schedule_steps(options: dict[str, Any], total: int) -> set[int]:
    """The training steps (0 … total) at which a diagnostic runs: every N steps, at given steps, or
    at ``logspaced`` log-spaced steps (always including step 0 and the last step)."""
    if "at" in options:
        return {s for s in options["at"] if s <= total}
    if "every" in options:
        return set(range(0, total + 1, options["every"])) | {total}
    points = np.unique(np.round(np.geomspace(1, total + 1, options["logspaced"]) - 1))
    return {int(s) for s in points} | {0, total}


def build_residual(spec: Any, hidden_size: int, seed: int) -> np.ndarray:
    """A residual matrix from a ``model.residual`` table such as ``{kind = "homogeneous", r = 1}``."""
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
        return factory(hidden_size, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.residual: {err}") from err
