"""Sweeps: a grid of training runs from one file, on a process pool or a Dask cluster, resumable.

A sweep file is a training configuration (the tables of :mod:`lyapkit.trainers.config`: the base
run) with a ``[sweep]`` table::

    [sweep]
    dir = "sweeps/adding-r"                            # optional; default sweeps/<file stem>
    grid = { "model.residual.r" = [0.9, 0.95, 1.0], "run.seed" = [0, 1, 2] }
    zip = [{ "task.T" = [100, 200], "training.steps" = [2000, 4000] }]

``grid`` takes the product of its keys' values; each table of ``zip`` is one more axis whose keys
move together (equal lengths). Any configuration key may be swept, written dotted (TOML's nested
form ``grid.model.residual.r = [...]`` is the same). The runs are the product of all axes; run
``i`` is the base with its axis values set, written under ``<dir>/runs`` as
``<dim>=<value>_…`` (e.g. ``r=0.95_seed=2.nc``, its checkpoint and lock beside it). Every run's
configuration is validated, and every distinct task and model built, before anything runs.

Each run is :meth:`Trainer.train` with ``resume=True``: a re-run of the sweep skips finished
runs and continues interrupted ones from their checkpoints (bit-identical to uninterrupted
runs). A run that raises is recorded in ``<name>.failed.json`` (``"diverged"`` for a non-finite
loss, else ``"failed"``, with the error) and the others go on; a re-run leaves recorded failures
alone unless ``retry_failed``. A worker process that dies takes its run with it: the pool is
replaced and the unfinished runs resubmitted (the dead run's lock is stale and recovered, and its
store resumes from its checkpoint, so no step is recorded twice), at most ``max_restarts`` times
per run. With ``group = N`` (``--group N``), up to ``N`` runs that share an architecture train
together in one vectorised pass (:mod:`lyapkit.trainers.group`), each in its own store.
``<dir>/sweep.json`` keeps the sweep's base configuration and axes: another sweep is
refused in the same directory.

:func:`open_sweep` reads the runs back as one xarray dataset with the swept keys as dimensions.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import datetime
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import tomllib
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lyapkit._checks import integer
from lyapkit._files import atomic_write, check_writable, reason
from lyapkit.progress import Progress, progress_bar
from lyapkit.store import RunStore, open_run

log = logging.getLogger(__name__)

__all__ = [
    "Axis",
    "Sweep",
    "SweepResult",
    "SweepSpec",
    "load_sweep",
    "open_sweep",
    "plot_sweep",
    "run_sweep",
    "sweep_spec",
]

MANIFEST = "sweep.json"
RUNS = "runs"
FORMAT_VERSION = 1
#: Outcomes of a run: its store has a summary; its loss became non-finite; it raised; another
#: process holds its lock; its worker died too often; it has not run (to completion) yet.
STATUSES = ("finished", "diverged", "failed", "locked", "lost", "pending")
_RECORDED = ("diverged", "failed", "lost")  # kept in <name>.failed.json
_NOT_SWEPT = ("run.name", "run.dir")
# the ``encoding`` of a coordinate of swept values that are not numbers or strings
_JSON = "JSON text of each value (sort_keys)"


def _config_error(message: str) -> Exception:
    from lyapkit.trainers.config import ConfigError

    return ConfigError(message)


# --- the sweep file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One dimension of a sweep: config ``keys`` (dotted) that take ``values[j]`` together.

    Point ``j`` of the axis sets ``config[keys[i]] = values[j][i]`` for every ``i``: a key of
    ``sweep.grid`` is an axis of one key, a table of ``sweep.zip`` an axis of several keys that
    move together. ``dim`` is the dimension's name in :func:`lyapkit.trainers.sweep.open_sweep`'s dataset: the
    last part of the first key (``"model.residual.r"`` → ``"r"``), or the whole key when two axes
    would share it. ``len(axis)`` is the number of points.

    Parameters
    ----------
    keys : tuple of str
        The dotted configuration keys of the axis.
    values : tuple of tuple
        One tuple per point, with a value for each key.
    dim : str
        The name of the dimension.

    See Also
    --------
    lyapkit.trainers.sweep.SweepSpec : Holds the axes of a sweep.
    lyapkit.trainers.sweep.sweep_spec : Builds them from a ``[sweep]`` table.

    Examples
    --------
    >>> from lyapkit.trainers.sweep import Axis
    >>> axis = Axis(("task.T", "training.steps"), ((100, 2000), (200, 4000)), "T")
    >>> len(axis), axis.values[1]
    (2, (200, 4000))
    """

    keys: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]
    dim: str

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the base configuration, the axes and the sweep directory.

    The runs are the product of the axes, ``len(runs) = Π_a len(axes[a])``: ``runs`` lists
    ``(name, params, config)`` for every point of the grid, in C order of the axes (the last axis
    varies fastest); ``params`` maps each swept key to its value, ``name`` is
    ``<dim>=<value>_…`` and ``config`` the full, validated configuration of the run (the base
    with ``params`` set, ``run.dir = <directory>/runs``, ``run.name = name``).

    Parameters
    ----------
    base : dict
        The base configuration (validated, without the ``[sweep]`` table).
    axes : tuple of Axis
        The sweep's dimensions.
    directory : pathlib.Path
        The sweep directory (``sweep.json`` and ``runs/``).
    runs : tuple of tuple
        ``(name, params, config)`` of every run.

    See Also
    --------
    lyapkit.trainers.sweep.sweep_spec : Builds and validates a sweep.
    lyapkit.trainers.sweep.run_sweep : Runs it.

    Examples
    --------
    >>> from lyapkit.trainers.sweep import sweep_spec
    >>> raw = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ...     "sweep": {"dir": "sweep-spec", "grid": {"run.seed": [0, 1, 2]}},
    ... }
    >>> raw["sweep"]["zip"] = [{"task.T": [10, 20], "training.steps": [2, 4]}]
    >>> spec = sweep_spec(raw)
    >>> spec.shape
    (3, 2)
    >>> [name for name, _, _ in spec.runs][:3]
    ['seed=0_T=10', 'seed=0_T=20', 'seed=1_T=10']
    >>> spec.runs[1][1]
    {'run.seed': 0, 'task.T': 20, 'training.steps': 4}
    """

    base: dict[str, Any]
    axes: tuple[Axis, ...]
    directory: Path
    runs: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """The number of points of each axis, in order: the shape of the sweep's summary."""
        return tuple(len(axis) for axis in self.axes)

    def manifest(self) -> dict[str, Any]:
        """The contents of the sweep's ``sweep.json``.

        Returns
        -------
        dict
            ``format_version``, the ``base`` configuration, the ``axes`` (``dim``, ``keys``,
            ``values`` as lists) and the ``runs``' names in order.
        """
        return {
            "format_version": FORMAT_VERSION,
            "base": self.base,
            "axes": [
                {"dim": a.dim, "keys": list(a.keys), "values": [list(v) for v in a.values]}
                for a in self.axes
            ],
            "runs": [name for name, _, _ in self.runs],
        }


def load_sweep(path: str | os.PathLike, directory: str | os.PathLike | None = None) -> SweepSpec:
    """Read and validate a sweep file (TOML); ``directory`` overrides its ``sweep.dir``.

    ``load_sweep(path) = sweep_spec(tomllib.load(path))``, with ``sweep.dir`` defaulting to
    ``sweeps/<file stem>``; a relative directory is taken from the working directory, and made
    absolute (the runs' ``run.dir``, the same for workers started elsewhere).

    Parameters
    ----------
    path : str or os.PathLike
        The sweep file: a training configuration with a ``[sweep]`` table.
    directory : str or os.PathLike, optional
        The sweep directory, in place of the file's ``sweep.dir``.

    Returns
    -------
    SweepSpec
        The validated sweep.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        The file does not exist or is not valid TOML, or a key or value of the base, of
        ``[sweep]`` or of any run is invalid.

    See Also
    --------
    lyapkit.trainers.sweep.sweep_spec : The same for a dict.
    lyapkit.trainers.sweep.run_sweep : Runs the sweep.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.sweep import load_sweep
    >>> _ = Path("adding.toml").write_text('''
    ... [task]
    ... name = "adding"
    ... T = 10
    ... n_train = 32
    ... n_test = 16
    ...
    ... [model]
    ... name = "WCRNN"
    ... hidden_size = 4
    ...
    ... [training]
    ... steps = 2
    ... batch_size = 16
    ...
    ... [sweep]
    ... grid = { "model.gamma" = [0.05, 0.1] }
    ... ''')
    >>> spec = load_sweep("adding.toml")
    >>> spec.directory == Path.cwd() / "sweeps" / "adding"
    True
    >>> [name for name, _, _ in spec.runs]
    ['gamma=0.05', 'gamma=0.1']
    >>> run_dir = load_sweep("adding.toml", directory="elsewhere").runs[0][2]["run"]["dir"]
    >>> run_dir == str(Path.cwd() / "elsewhere" / "runs")
    True
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise _config_error(f"sweep file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise _config_error(f"sweep file {str(path)!r} is not valid TOML: {err}") from None
    options = raw.get("sweep", {})
    if isinstance(options, dict):
        options.setdefault("dir", str(Path("sweeps") / path.stem))
    return sweep_spec(raw, directory)


def _flatten(table: Any, where: str, prefix: str = "") -> dict[str, list]:
    """``{"model": {"residual": {"r": [..]}}}`` or ``{"model.residual.r": [..]}`` → dotted keys."""
    if not isinstance(table, dict):
        raise _config_error(f"{where} must be a table of config keys and lists, got {table!r}")
    leaves: dict[str, list] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items = _flatten(value, where, f"{dotted}.").items()
        elif isinstance(value, list) and value:
            items = [(dotted, value)]
        else:
            raise _config_error(
                f"{where}.{dotted} must be a non-empty list of values, got {value!r}"
            )
        for leaf, values in items:
            if leaf in leaves:
                raise _config_error(f"{where}.{leaf} is given twice (as a dotted key and a table)")
            leaves[leaf] = values
    return leaves


def _set(config: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise _config_error(
                f"sweep key {key}: {'.'.join(parents[: i + 1])} is {child!r}, not a table"
            )
        node = child
    node[leaf] = copy.deepcopy(value)  # a run's config shares nothing with the axes


def _format(value: Any, index: int) -> str:
    """A value as it appears in a run name: numbers and short words as they are, else its index."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return f"#{index}"
    text = repr(value) if isinstance(value, float) else str(value)
    ok = len(text) <= 24 and all(c.isalnum() or c in ".+-" for c in text)
    return text if ok else f"#{index}"


def _axes(options: dict[str, Any]) -> tuple[Axis, ...]:
    unknown = sorted(set(options) - {"dir", "grid", "zip"})
    if unknown:
        raise _config_error(
            f"unknown key(s) {['sweep.' + k for k in unknown]}; keys are dir, grid, zip"
        )
    groups: list[dict[str, list]] = [
        {k: v} for k, v in _flatten(options.get("grid", {}), "sweep.grid").items()
    ]
    zips = options.get("zip", [])
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list):
        raise _config_error(f"sweep.zip must be a list of tables, got {zips!r}")
    for i, table in enumerate(zips):
        group = _flatten(table, f"sweep.zip[{i}]")
        if not group:
            raise _config_error(f"sweep.zip[{i}] is empty: give it the keys to zip and their lists")
        lengths = {k: len(v) for k, v in group.items()}
        if len(set(lengths.values())) > 1:
            raise _config_error(f"sweep.zip[{i}]: the lists must have equal lengths, got {lengths}")
        groups.append(group)
    if not groups:
        raise _config_error("sweep needs at least one key in sweep.grid or sweep.zip")
    seen: dict[str, str] = {}
    for group in groups:
        for key in group:
            if key in seen:
                raise _config_error(f"sweep key {key} is given twice (in {seen[key]} and again)")
            if key in _NOT_SWEPT or any(fixed.startswith(f"{key}.") for fixed in _NOT_SWEPT):
                raise _config_error(
                    f"sweep key {key} cannot be swept: the sweep names its runs "
                    f"({', '.join(_NOT_SWEPT)}); sweep the keys inside it instead"
                )
            seen[key] = "sweep.grid" if len(group) == 1 else "sweep.zip"
    for key in seen:
        inner = next((other for other in seen if other.startswith(f"{key}.")), None)
        if inner is not None:
            raise _config_error(
                f"sweep keys {key} and {inner} overlap: sweep either the table or keys inside it"
            )
    names = _coordinate_names([tuple(group) for group in groups])
    axes = []
    for group in groups:
        values = tuple(zip(*group.values(), strict=True))
        first = next(iter(group))
        labels = [point[0] for point in values]  # the first key's values label the points
        for j, label in enumerate(labels):
            if label in labels[:j]:
                i = labels.index(label)
                why = ("they label the axis's points: put a key with distinct values first"
                       if len(group) > 1 else "the runs would be the same")  # fmt: skip
                raise _config_error(
                    f"sweep key {first}: values {i + 1} and {j + 1} of its list are equal "
                    f"({labels[i]!r} and {label!r}); {why}"
                )
        axes.append(Axis(tuple(group), values, names[first]))
    return tuple(axes)


def _coordinate_names(axes: Sequence[Sequence[str]]) -> dict[str, str]:
    """The name of each swept key in :func:`open_sweep`'s dataset, from each axis's keys.

    An axis's first key names its dimension: the key's last part (``"model.residual.r"`` →
    ``"r"``), or the whole key where another axis's first key shares it. A zip's other keys are
    named likewise, or by their whole key where a dimension or another key has that name."""

    def last(key: str) -> str:
        return key.rsplit(".", 1)[-1]

    firsts = [keys[0] for keys in axes]
    others = [key for keys in axes for key in keys[1:]]
    first_lasts, other_lasts = Counter(map(last, firsts)), Counter(map(last, others))
    names = {key: last(key) if first_lasts[last(key)] == 1 else key for key in firsts}
    taken = set(names.values())
    for key in others:
        unique = other_lasts[last(key)] == 1 and last(key) not in taken
        names[key] = last(key) if unique else key
    return names


def sweep_spec(raw: dict[str, Any], directory: str | os.PathLike | None = None) -> SweepSpec:
    """Validate a sweep given as a dict (the parsed TOML).

    Every run's configuration is checked, and every distinct task and model built once, before
    anything is written. The runs are the points of the product of the axes: one axis per key
    of ``sweep.grid`` and one per table of ``sweep.zip`` (see
    :class:`lyapkit.trainers.sweep.SweepSpec`).

    Parameters
    ----------
    raw : dict
        The tables of a training configuration (the base run) and a ``[sweep]`` table with
        ``grid`` and/or ``zip`` and optionally ``dir``; ``raw`` is not modified.
    directory : str or os.PathLike, optional
        The sweep directory, in place of ``sweep.dir`` (one of them is required).

    Returns
    -------
    SweepSpec
        The validated sweep.

    Raises
    ------
    lyapkit.trainers.config.ConfigError
        A key or value of the base, of ``[sweep]`` or of any run is invalid (or two runs get
        the same name); the message names the key and, for a run, the run.

    See Also
    --------
    lyapkit.trainers.sweep.load_sweep : Reads a sweep file.
    lyapkit.trainers.config.validate_config : Validates each run's configuration.

    Examples
    --------
    >>> from lyapkit.trainers.sweep import sweep_spec
    >>> raw = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ...     "sweep": {"dir": "sweep-grid", "grid": {"model.gamma": [0.05, 0.1], "run.seed": [0, 1]}},
    ... }
    >>> spec = sweep_spec(raw)
    >>> spec.shape, [axis.dim for axis in spec.axes]
    ((2, 2), ['gamma', 'seed'])
    >>> [name for name, _, _ in spec.runs]
    ['gamma=0.05_seed=0', 'gamma=0.05_seed=1', 'gamma=0.1_seed=0', 'gamma=0.1_seed=1']
    >>> spec.runs[-1][2]["model"]
    {'name': 'WCRNN', 'hidden_size': 4, 'gamma': 0.1}
    """
    from lyapkit.trainers.config import ConfigError, validate_config

    raw = copy.deepcopy(raw)
    options = raw.pop("sweep", None)
    if not isinstance(options, dict):
        raise _config_error("a sweep file needs a [sweep] table with a grid and/or zip")
    folder = directory if directory is not None else options.get("dir")
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise _config_error(f"sweep.dir must be a non-empty path, got {folder!r}")
    axes = _axes(options)
    folder = Path(os.path.abspath(folder))  # the runs' run.dir, the same for every worker
    base = validate_config(raw)
    runs = []
    names: dict[str, dict] = {}
    for point in itertools.product(*(enumerate(axis.values) for axis in axes)):
        params: dict[str, Any] = {}
        parts = []
        for axis, (j, values) in zip(axes, point, strict=True):
            params.update(zip(axis.keys, values, strict=True))
            parts.append(f"{axis.dim}={_format(values[0], j)}")
        name = "_".join(parts)
        if name in names:
            raise _config_error(
                f"sweep: the runs {names[name]} and {params} both get the name {name!r}"
            )
        names[name] = params
        config = copy.deepcopy(raw)
        for key, value in params.items():
            _set(config, key, value)
        config.setdefault("run", {}).update(name=name, dir=str(folder / RUNS))
        try:
            config = validate_config(config)
        except ConfigError as err:
            raise _config_error(f"sweep run {name}: {err}") from None
        runs.append((name, params, config))
    _build_each_distinct(runs)
    return SweepSpec(base, axes, folder, tuple(runs))


def _build_each_distinct(runs: Sequence[tuple[str, dict, dict]]) -> None:
    """Build the task and the model of every distinct configuration (seeds aside), so that an
    option the config tables accept but the task or model refuses stops the sweep before it
    starts."""
    from lyapkit.trainers.config import ConfigError
    from lyapkit.trainers.trainer import Trainer

    seen = set()
    for name, _, config in runs:
        key = json.dumps(
            {**config, "run": {**config["run"], "name": "", "seed": 0}}, sort_keys=True
        )
        if key in seen:
            continue
        seen.add(key)
        try:
            Trainer(config)._validate()
        except (ConfigError, ValueError, TypeError) as err:
            raise _config_error(f"sweep run {name}: {reason(err)}") from None


# --- running --------------------------------------------------------------------------------------


def _failure_path(config: dict[str, Any]) -> Path:
    return Path(config["run"]["dir"]) / f"{config['run']['name']}.failed.json"


def _running_path(config: dict[str, Any]) -> Path:
    """The marker a worker holds while it trains the run: which runs a dead worker had started."""
    return Path(config["run"]["dir"]) / f"{config['run']['name']}.running"


def _store_path(config: dict[str, Any]) -> Path:
    return Path(config["run"]["dir"]) / f"{config['run']['name']}.nc"


def _record_failure(config: dict[str, Any], status: str, error: BaseException | str) -> None:
    record = {
        "status": status,
        "error": error if isinstance(error, str) else f"{type(error).__name__}: {reason(error)}",
        "traceback": "" if isinstance(error, str) else "".join(traceback.format_exception(error)),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    atomic_write(_failure_path(config), json.dumps(record, indent=1).encode())


def _outcome(config: dict[str, Any], result: Any) -> dict[str, Any]:
    """The outcome of one run from its ``TrainResult`` or the exception that stopped it (a
    failure is recorded in ``<name>.failed.json``)."""
    from lyapkit.store import RunLockedError

    outcome: dict[str, Any] = {"name": config["run"]["name"], "status": "finished", "error": ""}
    if isinstance(result, RunLockedError):  # someone else is running it: not this run's failure
        return {**outcome, "status": "locked", "error": reason(result)}
    if isinstance(result, BaseException):
        status = "diverged" if isinstance(result, FloatingPointError) else "failed"
        _record_failure(config, status, result)
        return {**outcome, "status": status, "error": f"{type(result).__name__}: {reason(result)}"}
    return {
        **outcome,
        "best_metric": result.best_metric,
        "steps_to_threshold": result.steps_to_threshold,
    }


def train_runs(configs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Train (or resume, or skip if finished) runs of a sweep: one by :meth:`Trainer.train`, or
    several with a common :func:`lyapkit.trainers.group.group_key` together in one vectorised
    pass (:func:`lyapkit.trainers.group.train_group`). Never raises for the runs' own errors:
    returns ``{"name", "status", "error", …}`` per run.

    This is what the executor runs in a worker process.
    """
    from lyapkit.trainers.group import train_group
    from lyapkit.trainers.trainer import Trainer

    for config in configs:
        _failure_path(config).unlink(missing_ok=True)
        _running_path(config).write_text(str(os.getpid()))
    results: list[Any]
    try:
        if len(configs) == 1:
            results = [Trainer(configs[0]).train(resume=True)]
        else:
            results = train_group(configs)
    except Exception as err:  # noqa: BLE001 - recorded with its traceback; the sweep goes on
        results = [err] * len(configs)
    finally:
        for config in configs:
            _running_path(config).unlink(missing_ok=True)
    return [_outcome(c, r) for c, r in zip(configs, results, strict=True)]


def _jobs(names: Sequence[str], configs: dict[str, dict], group: int) -> list[list[str]]:
    """The runs to submit, one per job; with ``group > 1``, runs of equal ``group_key`` go
    together, at most ``group`` per job."""
    if group <= 1:
        return [[name] for name in names]
    from lyapkit.trainers.group import group_key

    by_key: dict[Any, list[str]] = {}
    for name in names:
        key = group_key(configs[name])
        by_key.setdefault(name if key is None else key, []).append(name)
    return [
        members[i : i + group] for members in by_key.values() for i in range(0, len(members), group)
    ]


@dataclass(frozen=True)
class SweepResult:
    """What :func:`lyapkit.trainers.sweep.run_sweep` did: the status of every run and errors.

    A status is one of ``STATUSES``: ``"finished"`` (the store has a summary), ``"diverged"``
    (the loss became non-finite), ``"failed"`` (it raised), ``"locked"`` (another process holds
    its lock), ``"lost"`` (its worker died too often) or ``"pending"`` (not run to completion).

    Parameters
    ----------
    directory : pathlib.Path
        The sweep directory.
    status : dict
        The status of each run, by name.
    errors : dict
        The error message of each run, by name (empty for a finished or pending run).

    See Also
    --------
    lyapkit.trainers.sweep.open_sweep : Reads the runs' results back.

    Examples
    --------
    >>> from pathlib import Path
    >>> from lyapkit.trainers.sweep import SweepResult
    >>> result = SweepResult(
    ...     Path("sweep"),
    ...     {"a": "finished", "b": "diverged", "c": "finished"},
    ...     {"a": "", "b": "FloatingPointError: the training loss became nan at step 7", "c": ""},
    ... )
    >>> result.ok, result.counts()
    (False, {'finished': 2, 'diverged': 1})
    """

    directory: Path
    status: dict[str, str]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        """Every run finished."""
        return all(s == "finished" for s in self.status.values())

    def counts(self) -> dict[str, int]:
        """The number of runs of each status.

        Returns
        -------
        dict
            ``status: count`` for the statuses that occur, in the order of ``STATUSES``.
        """
        return {s: n for s in STATUSES if (n := sum(v == s for v in self.status.values()))}


def _recorded_status(config: dict[str, Any]) -> tuple[str, str]:
    """The status of a run from its files: finished (a summary), a recorded failure, or pending."""
    failure = _failure_path(config)
    if failure.exists():
        record = json.loads(failure.read_text())
        return record["status"], record["error"]
    path = _store_path(config)
    if path.exists():
        try:
            if "summary" in RunStore.open(path).groups:
                return "finished", ""
        except ValueError as err:
            return "failed", reason(err)
    return "pending", ""


def _check_manifest(spec: SweepSpec) -> None:
    """Write ``sweep.json``, or check that the one there describes the same sweep."""
    from lyapkit.trainers.trainer import config_differences

    path = spec.directory / MANIFEST
    manifest = spec.manifest()
    if path.exists():
        stored = json.loads(path.read_text())
        changed, free = config_differences(stored["base"], spec.base)
        swept = [key for axis in spec.axes for key in axis.keys]
        changed = [k for k in changed if not any(k == s or k.startswith(f"{s}.") for s in swept)]
        # as JSON text, where the axis values 1 and 1.0 (runs r=1 and r=1.0) differ
        axes = json.dumps(manifest["axes"], sort_keys=True)
        if changed or json.dumps(stored["axes"], sort_keys=True) != axes:
            what = ", ".join(changed) if changed else "its axes"
            raise _config_error(
                f"the directory {str(spec.directory)!r} holds another sweep (it differs in {what}); "
                "give the sweep another directory (sweep.dir or --dir)"
            )
        if not free:
            return
    spec.directory.mkdir(parents=True, exist_ok=True)
    (spec.directory / RUNS).mkdir(exist_ok=True)
    check_writable(path, "sweep directory")
    atomic_write(path, json.dumps(manifest, indent=1).encode())


def _set_threads(threads: int) -> None:
    """A pool worker's initializer: ``threads`` intra-op torch threads in this process."""
    import torch

    torch.set_num_threads(threads)


def _cores() -> int:
    """The CPUs this process may run on (its affinity, e.g. under ``taskset``), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _process_pool(workers: int) -> cf.Executor:
    """``workers`` spawned processes sharing the cores: each gets ``cores // workers`` intra-op
    threads (at least one), so that runs that use several threads (a large model, a group) do
    not oversubscribe the cores, where spinning OpenMP workers slow every step many times."""
    threads = max(1, _cores() // workers)
    return cf.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_set_threads,
        initargs=(threads,),
    )


def _record_outcome(outcome: dict, status: dict, errors: dict, bar: Progress) -> None:
    name = outcome["name"]
    status[name], errors[name] = outcome["status"], outcome["error"]
    bar.update(1)
    _log_outcome(outcome)


def _charge_deaths(
    failed: list[tuple[list[str], Exception]],
    configs: dict[str, dict],
    deaths: dict[str, int],
    max_restarts: int,
) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """After jobs failed because a worker died: charge the death to the runs that were training
    (they hold a ``.running`` marker), or to all when none was (the job kills its worker before
    it starts); runs queued behind them are resubmitted free. A run is resubmitted alone until
    it was charged more than ``max_restarts`` deaths, then recorded as ``"lost"``. Returns the
    jobs to resubmit and the outcomes of the lost runs."""
    names = [name for job, _ in failed for name in job]
    started = {name for name in names if _running_path(configs[name]).exists()}
    resubmit, outcomes = [], []
    for job, err in failed:
        for name in job:
            _running_path(configs[name]).unlink(missing_ok=True)
            charged = name in started or not started
            deaths[name] += charged
            if deaths[name] <= max_restarts:
                if charged:
                    log.warning("run %s: its worker died (%s); resubmitting it", name, reason(err))
                else:
                    log.info("run %s had not started when a worker died: resubmitting it", name)
                resubmit.append([name])
                continue
            message = f"its worker died {deaths[name]} times: {reason(err)}"
            _record_failure(configs[name], "lost", message)
            outcomes.append({"name": name, "status": "lost", "error": message})
    return resubmit, outcomes


def run_sweep(
    spec: SweepSpec,
    *,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    max_restarts: int = 2,
    group: int = 0,
    progress: bool | None = None,
) -> SweepResult:
    """Run every unfinished run of ``spec``; return the status of all of them.

    Each run is :meth:`lyapkit.trainers.trainer.Trainer.train` with ``resume=True`` (or, with
    ``group``, :func:`lyapkit.trainers.group.train_group`), submitted to ``executor``: finished
    runs are skipped, interrupted ones continue from their checkpoints, a run that raises is
    recorded in ``<name>.failed.json`` while the others go on, and a run whose worker died is
    resubmitted up to ``max_restarts`` times. ``<dir>/sweep.json`` is written first, or checked
    to describe the same sweep.

    Parameters
    ----------
    spec : SweepSpec
        From :func:`lyapkit.trainers.sweep.load_sweep` or
        :func:`lyapkit.trainers.sweep.sweep_spec`.
    executor : concurrent.futures.Executor, optional
        Where the runs go, e.g. ``distributed.Client(address).get_executor()`` for a Dask
        cluster, or a ``concurrent.futures.ThreadPoolExecutor`` to train in this process.
        Default: a process pool of ``workers`` spawned processes, owned (and replaced when a
        worker dies) by this call.
    workers : int, optional
        Processes of the default pool; default the CPUs this process may use (at most the runs
        to do).
    retry_failed : bool, default False
        Run again the runs recorded as diverged, failed or lost; by default they are kept.
    max_restarts : int, default 2
        Times a run is resubmitted after its worker died before it is recorded as ``"lost"``.
    group : int, default 0
        Train up to ``group`` runs that share an architecture (equal
        :func:`lyapkit.trainers.group.group_key`: they may differ in seed, residual, γ and
        learning rate) together in one vectorised pass, each in its own store, equal to training
        it alone up to rounding; 0 or 1: one run at a time (bit-identical to ``lyapkit train``).
    progress : bool, optional
        A bar of runs done / total with its ETA (tqdm, quiet off a terminal).

    Returns
    -------
    SweepResult
        The status (and error) of every run of the sweep, those skipped included.

    Raises
    ------
    ValueError
        ``workers`` is not a positive integer, both ``executor`` and ``workers`` are given, or
        ``group`` is not a non-negative integer.
    lyapkit.trainers.config.ConfigError
        The sweep directory holds another sweep (a ``sweep.json`` with other axes or a base that
        differs in a key that changes the result).

    See Also
    --------
    lyapkit.trainers.sweep.load_sweep : Reads a sweep file.
    lyapkit.trainers.sweep.open_sweep : Reads the results back.

    Examples
    --------
    >>> import concurrent.futures as cf
    >>> from lyapkit.trainers.sweep import run_sweep, sweep_spec
    >>> raw = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ...     "sweep": {"dir": "sweep-run", "grid": {"model.gamma": [0.05, 0.1]}},
    ... }
    >>> spec = sweep_spec(raw)
    >>> with cf.ThreadPoolExecutor(max_workers=1) as pool:  # in this process
    ...     result = run_sweep(spec, executor=pool)
    >>> result.ok, result.counts()
    (True, {'finished': 2})
    >>> run_sweep(spec, workers=1).counts()  # a re-run skips the finished runs
    {'finished': 2}
    """
    if workers is not None:
        integer(workers, "workers", 1)
    if executor is not None and workers is not None:
        raise ValueError("give either executor or workers, not both")
    integer(group, "group", 0)
    _check_manifest(spec)
    configs = {name: config for name, _, config in spec.runs}
    status, errors = {}, {}
    todo = []
    for name, config in configs.items():
        status[name], errors[name] = _recorded_status(config)
        if status[name] == "pending" or (retry_failed and status[name] in _RECORDED):
            todo.append(name)
    log.info(
        "sweep %s: %d runs, %d to do (%s)",
        spec.directory, len(configs), len(todo),
        ", ".join(f"{n} {s}" for s, n in SweepResult(spec.directory, status, errors).counts().items()),
    )  # fmt: skip
    if not todo:
        return SweepResult(spec.directory, status, errors)
    own = executor is None
    jobs = _jobs(todo, configs, group)
    pool = _process_pool(min(workers or _cores(), len(jobs))) if own else executor
    deaths = dict.fromkeys(todo, 0)
    for name in todo:  # markers left by a sweep that was itself killed
        _running_path(configs[name]).unlink(missing_ok=True)
    bar = progress_bar(progress, len(todo), "sweep")
    try:
        while jobs:
            futures = {pool.submit(train_runs, [configs[n] for n in job]): job for job in jobs}
            failed: list[tuple[list[str], Exception]] = []
            for future in cf.as_completed(futures):
                try:
                    outcomes = future.result()
                except Exception as err:  # noqa: BLE001 - the worker died (BrokenProcessPool, KilledWorker…)
                    failed.append((futures[future], err))
                    continue
                for outcome in outcomes:
                    _record_outcome(outcome, status, errors, bar)
            jobs, lost = _charge_deaths(failed, configs, deaths, max_restarts)
            for outcome in lost:
                _record_outcome(outcome, status, errors, bar)
            if jobs and own:
                pool.shutdown(wait=True, cancel_futures=True)
                pool = _process_pool(min(workers or _cores(), len(jobs)))
    finally:
        bar.close()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    result = SweepResult(spec.directory, status, errors)
    log.info(
        "sweep %s: %s", spec.directory, ", ".join(f"{n} {s}" for s, n in result.counts().items())
    )
    return result


def _log_outcome(outcome: dict[str, Any]) -> None:
    if outcome["status"] == "finished":
        log.info(
            "run %s finished: best %.4g, minimal performance at step %s",
            outcome["name"], outcome["best_metric"], outcome["steps_to_threshold"],
        )  # fmt: skip
    else:
        log.warning("run %s %s: %s", outcome["name"], outcome["status"], outcome["error"])


# --- reading a sweep back ---------------------------------------------------------------------------


SUMMARY_ATTRS = {
    "status": {"long_name": f"outcome of the run: one of {', '.join(STATUSES)}"},
    "best_metric": {"long_name": "best test metric (accuracy: highest; rms: lowest)", "units": "1"},
    "steps_to_threshold": {
        "long_name": "first step reaching the minimal performance (−1: never; NaN: unfinished)",
        "units": "iteration",
    },
    "final_loss": {"long_name": "test loss at the last evaluation", "units": "1"},
    "last_step": {"long_name": "last evaluated training step", "units": "iteration"},
    "exponent_max": {
        "long_name": "largest Lyapunov exponent at the last record",
        "units": "1/step",
    },
    "exponent_error": {
        "long_name": "max |exponent − log|eig R|| at the last record (weak-coupling theory)",
        "units": "1/step",
    },
    "top_eigenvalue": {"long_name": "top curvature eigenvalue at the last record", "units": "1"},
}


def _summarise(config: dict[str, Any]) -> dict[str, Any]:
    """The summary row of one run, reading its store once; its status as
    :func:`_recorded_status` gives it (a recorded failure first, then finished, else pending)."""
    values: dict[str, Any] = {k: math.nan for k in SUMMARY_ATTRS if k != "status"}
    failure, path = _failure_path(config), _store_path(config)
    values["status"] = json.loads(failure.read_text())["status"] if failure.exists() else "pending"
    if not path.exists():
        return values
    try:
        tree = open_run(path)
    except ValueError:
        values["status"] = "failed"
        return values
    if values["status"] == "pending" and "summary" in tree.children:
        values["status"] = "finished"
    if "metrics" in tree.children:
        metrics = tree["metrics"].to_dataset()
        name = next(
            (str(v) for v in metrics.data_vars if str(v) in ("test_accuracy", "test_rms")), None
        )
        if name is not None:
            values["metric"] = name.removeprefix("test_")
            series = np.asarray(metrics[name], dtype=float)
            if np.isfinite(series).any():
                values["best_metric"] = (np.nanmax if name == "test_accuracy" else np.nanmin)(
                    series
                )
        values["final_loss"] = float(metrics["test_loss"].values[-1])
        values["last_step"] = int(metrics["step"].values[-1])
    if "summary" in tree.children:
        summary = tree["summary"].to_dataset()
        values["best_metric"] = float(summary["best_metric"].values[-1])
        values["steps_to_threshold"] = int(summary["steps_to_threshold"].values[-1])
    if "lyapunov" in tree.children:
        lyap = tree["lyapunov"].to_dataset().isel(step=-1)
        values["exponent_max"] = float(lyap["exponents"].max())
        if "theory" in lyap:
            values["exponent_error"] = float(np.abs(lyap["exponents"] - lyap["theory"]).max())
    if "curvature" in tree.children:
        values["top_eigenvalue"] = float(
            tree["curvature"].to_dataset()["eigenvalues"].isel(step=-1).max()
        )
    return values


class Sweep:
    """A sweep read back by :func:`lyapkit.trainers.sweep.open_sweep`.

    The runs' results over the swept dimensions: for run ``i`` at the point ``(j_1, …, j_A)`` of
    the axes, ``summary[v][j_1, …, j_A]`` is the value ``v`` of that run's store (NaN where it
    has none).

    Parameters
    ----------
    directory : pathlib.Path
        The sweep directory.
    manifest : dict
        The contents of its ``sweep.json`` (:meth:`lyapkit.trainers.sweep.SweepSpec.manifest`).

    Attributes
    ----------
    directory : pathlib.Path
        The sweep directory.
    summary : xarray.Dataset
        One value per run over the swept dimensions (e.g. ``(r, seed)``): ``status``,
        ``best_metric``, ``steps_to_threshold``, ``final_loss``, ``last_step``, ``exponent_max``,
        ``exponent_error``, ``top_eigenvalue`` (NaN where not recorded), and ``run``, the run's
        name. A zipped axis is one dimension, its other keys coordinates along it.

    See Also
    --------
    lyapkit.trainers.sweep.plot_sweep : Draws a summary variable.
    lyapkit.open_run : Reads one run.

    Examples
    --------
    >>> import concurrent.futures as cf
    >>> import lyapkit as lk
    >>> from lyapkit.trainers.sweep import run_sweep, sweep_spec
    >>> raw = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ...     "sweep": {"dir": "sweep-class", "grid": {"model.gamma": [0.05, 0.1]}},
    ... }
    >>> with cf.ThreadPoolExecutor(max_workers=1) as pool:
    ...     _ = run_sweep(sweep_spec(raw), executor=pool)
    >>> sweep = lk.open_sweep("sweep-class")
    >>> sweep.dims, sweep.summary["status"].values.tolist()
    (('gamma',), ['finished', 'finished'])
    >>> sweep.curves("metrics", "test_rms").sizes  # evaluated at steps 0 and 2
    Frozen({'gamma': 2, 'step': 2})
    >>> list(sweep.run(gamma=0.1).children)
    ['metrics', 'summary']
    """

    def __init__(self, directory: Path, manifest: dict[str, Any]):
        self.directory = directory
        self._manifest = manifest
        self.summary = self._summary()

    @property
    def dims(self) -> tuple[str, ...]:
        """The names of the swept dimensions, one per axis, in order."""
        return tuple(axis["dim"] for axis in self._manifest["axes"])

    def _coords(self) -> dict[str, Any]:
        coords: dict[str, Any] = {}
        names = _coordinate_names([axis["keys"] for axis in self._manifest["axes"]])
        for axis in self._manifest["axes"]:
            for i, key in enumerate(axis["keys"]):
                column = [v[i] for v in axis["values"]]
                scalar = all(
                    isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in column
                )
                name = names[key]
                attrs = {"sweep_key": key} if scalar else {"sweep_key": key, "encoding": _JSON}
                data = column if scalar else [json.dumps(v, sort_keys=True) for v in column]
                coords[name] = (axis["dim"], data, attrs)
        return coords

    def _summary(self) -> Any:
        import xarray as xr

        runs = self._manifest["runs"]
        shape = tuple(len(axis["values"]) for axis in self._manifest["axes"])
        folder = self.directory / RUNS
        rows = [_summarise({"run": {"dir": str(folder), "name": name}}) for name in runs]
        data = {
            key: (self.dims, np.array([row[key] for row in rows]).reshape(shape), dict(attrs))
            for key, attrs in SUMMARY_ATTRS.items()
        }
        metrics = sorted({row["metric"] for row in rows if "metric" in row})
        if metrics:
            data["best_metric"][2]["long_name"] = f"best test {' or '.join(metrics)}"
        data["run"] = (self.dims, np.array(runs).reshape(shape), {"long_name": "run name"})
        return xr.Dataset(
            data,
            coords=self._coords(),
            attrs={
                "directory": str(self.directory),
                "base_config": json.dumps(self._manifest["base"]),
            },
        )

    def run(self, **params: Any) -> Any:
        """The full ``xarray.DataTree`` of one run, chosen by its coordinates.

        Parameters
        ----------
        **params
            A value for each swept dimension, e.g. ``sweep.run(r=0.95, seed=2)``; for a key whose
            coordinate is JSON text (booleans, tables, lists) the value itself, e.g.
            ``sweep.run(permuted=True)``.

        Returns
        -------
        xarray.DataTree
            The run's store, as :func:`lyapkit.open_run` reads it.

        Raises
        ------
        ValueError
            ``params`` selects more than one run (a dimension left out).
        KeyError
            A value is not on its dimension (raised by xarray's ``sel``).
        """

        def encoded(dim: str, value: Any) -> Any:
            coords = self.summary.coords
            json_text = dim in coords and coords[dim].attrs.get("encoding") == _JSON
            return (
                json.dumps(value, sort_keys=True)
                if json_text and not isinstance(value, str)
                else value
            )

        selection = {dim: encoded(dim, value) for dim, value in params.items()}
        names = self.summary["run"].sel(selection)
        if names.size != 1:
            raise ValueError(
                f"{params} selects {names.size} runs; give a value for each of {self.dims}"
            )
        return open_run(self.directory / RUNS / f"{names.item()}.nc")

    def curves(self, group: str, variable: str) -> Any:
        """One recorded variable of every run, over the swept dimensions and ``step``.

        Parameters
        ----------
        group : str
            The store group, e.g. ``"metrics"``.
        variable : str
            The variable of the group, e.g. ``"test_accuracy"``.

        Returns
        -------
        xarray.DataArray
            Dimensions: the swept ones, ``step`` and the variable's own (NaN where a run has no
            record at a step, or no store).

        Raises
        ------
        ValueError
            No run of the sweep has recorded ``group/variable``.
        """
        import xarray as xr

        names = self.summary["run"]
        present = {}
        for name in names.values.ravel():
            path = self.directory / RUNS / f"{name}.nc"
            if path.exists() and group in (tree := open_run(path)).children:
                records = tree[group].to_dataset()
                if variable in records:
                    present[name] = records[variable]
        if not present:
            raise ValueError(f"no run of the sweep has recorded {group}/{variable}")
        stacked = xr.concat(list(present.values()), "run", join="outer")
        stacked = stacked.assign_coords(run=list(present)).reindex(run=names.values.ravel())
        stacked = stacked.transpose("run", ...)
        rest = stacked.dims[1:]
        return xr.DataArray(
            stacked.values.reshape(names.shape + stacked.shape[1:]),
            dims=self.dims + rest,
            coords={**self.summary.coords, **{d: stacked[d] for d in rest if d in stacked.coords}},
            name=variable,
            attrs=next(iter(present.values())).attrs,
        )


def open_sweep(directory: str | os.PathLike) -> Sweep:
    """Read the sweep in ``directory`` (its ``sweep.json`` and every run store).

    Parameters
    ----------
    directory : str or os.PathLike
        A sweep directory, as :func:`lyapkit.trainers.sweep.run_sweep` writes it.

    Returns
    -------
    Sweep
        The sweep, with its summary over the swept dimensions.

    Raises
    ------
    FileNotFoundError
        ``directory`` has no ``sweep.json``.
    ValueError
        The ``sweep.json`` was written by a newer lyapkit.

    See Also
    --------
    lyapkit.trainers.sweep.Sweep : What it returns.
    lyapkit.trainers.sweep.run_sweep : Runs a sweep.

    Examples
    --------
    >>> import concurrent.futures as cf
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> from lyapkit.trainers.sweep import run_sweep, sweep_spec
    >>> raw = {
    ...     "task": {"name": "adding", "T": 10, "n_train": 32, "n_test": 16},
    ...     "model": {"name": "WCRNN", "hidden_size": 4},
    ...     "training": {"steps": 2, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2},
    ...     "sweep": {"dir": "sweep-open", "grid": {"model.gamma": [0.05, 0.1]}},
    ... }
    >>> with cf.ThreadPoolExecutor(max_workers=1) as pool:
    ...     _ = run_sweep(sweep_spec(raw), executor=pool)
    >>> summary = lk.open_sweep("sweep-open").summary
    >>> summary["run"].values.tolist(), summary["gamma"].values.tolist()
    (['gamma=0.05', 'gamma=0.1'], [0.05, 0.1])
    >>> bool(np.isfinite(summary["best_metric"]).all())
    True
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{str(directory)!r} is not a sweep directory: it has no {MANIFEST}"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} was written by a newer lyapkit (format {manifest['format_version']})"
        )
    return Sweep(directory, manifest)


# --- the figure ---------------------------------------------------------------------------------------


def plot_sweep(
    summary: Any,
    metric: str = "best_metric",
    *,
    x: str | None = None,
    hue: str | None = None,
    over: str | None = None,
    ax: Any = None,
) -> Any:
    """``metric`` against the swept dimension ``x``: mean ± standard deviation over ``over``.

    For each value of ``hue`` one line ``m(x) = mean(metric)`` over ``over`` (the seeds) and any
    further dimension (the label names them), with a band ``m(x) ± s(x)``, ``s`` the standard
    deviation (``ddof = 0``) over the same dimensions, ``x`` in ascending order. Only finished
    runs count (where the summary has a ``status``): a diverged, failed, lost or pending run
    keeps the values it had when it stopped, which are no result. ``steps_to_threshold``'s −1
    (never reached) is left out too, so its mean is over the runs that reached the threshold.

    Parameters
    ----------
    summary : xarray.Dataset
        A sweep summary (the ``summary`` of :class:`lyapkit.trainers.sweep.Sweep`).
    metric : str, default "best_metric"
        The numeric summary variable to draw.
    x : str, optional
        The dimension along the horizontal axis; default the first swept dimension other than
        ``over`` and ``hue``.
    hue : str, optional
        The dimension of the lines; default the next one (if any).
    over : str, optional
        The dimension averaged over; default the seeds' (swept key ``run.seed``, or a
        dimension named ``seed``), if swept.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on.

    Raises
    ------
    ValueError
        ``metric`` is not a numeric summary variable, or no finished run has a value of it;
        ``x``, ``hue`` or ``over`` is not a swept dimension, or two of them are the same; or no
        dimension is left for ``x``.

    See Also
    --------
    lyapkit.trainers.sweep.open_sweep : Reads a sweep's summary.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from lyapkit.trainers.sweep import plot_sweep
    >>> summary = xr.Dataset(
    ...     {"best_metric": (("r", "seed"), np.array([[0.5, 0.7], [0.8, 0.9]]),
    ...                      {"long_name": "best test accuracy"})},
    ...     coords={"r": [0.9, 1.0], "seed": ("seed", [0, 1], {"sweep_key": "run.seed"})},
    ... )
    >>> ax = plot_sweep(summary)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('r', 'best test accuracy (mean ± std over seed)')
    >>> np.round(ax.lines[0].get_ydata(), 3)
    array([0.6 , 0.85])
    """
    import matplotlib.pyplot as plt

    numeric = [str(v) for v in summary.data_vars if summary[v].dtype.kind in "fiu"]
    if metric not in numeric:
        raise ValueError(f"metric {metric!r} is not a number of the sweep summary; choose one of "
                         f"{numeric}")  # fmt: skip
    dims = [str(d) for d in summary[metric].dims]
    seeds = next(
        (d for d in dims if summary[d].attrs.get("sweep_key") == "run.seed"),
        "seed" if "seed" in dims else None,
    )
    over = over if over is not None else seeds
    for name, value in (("over", over), ("x", x), ("hue", hue)):
        if value is not None and value not in dims:
            zipped = summary[value].dims[0] if value in summary.coords else None
            hint = f" (it moves with {zipped!r}, a zip)" if zipped in dims else ""
            raise ValueError(f"{name} {value!r} is not a swept dimension{hint}; choose one of "
                             f"{dims}")  # fmt: skip
    chosen = [v for v in (x, hue, over) if v is not None]
    if len(set(chosen)) < len(chosen):
        raise ValueError(f"x, hue and over must be different dimensions, got x={x!r}, "
                         f"hue={hue!r}, over={over!r}")  # fmt: skip
    free = [d for d in dims if d not in chosen]
    x = x or (free.pop(0) if free else None)
    if x is None:
        raise ValueError(f"no swept dimension is left to draw against (besides {chosen})")
    hue = hue or (free.pop(0) if free else None)
    if ax is None:
        ax = plt.subplots(figsize=(5, 3.5))[1]
    data = summary[metric].astype(float).sortby(x)
    if "status" in summary:
        data = data.where(summary["status"] == "finished")
    if metric == "steps_to_threshold":
        data = data.where(data >= 0)
    if not data.notnull().any():
        raise ValueError(f"no finished run of the sweep has a value of {metric!r}")
    groups = [(None, data)] if hue is None else [(v, data.sel({hue: v})) for v in data[hue].values]
    for value, part in groups:
        rest = [d for d in part.dims if d != x]
        mean, std = part.mean(rest, skipna=True), part.std(rest, skipna=True)
        label = None if hue is None else f"{hue} = {value}"
        line = ax.plot(part[x], mean, marker="o", label=label)[0]
        ax.fill_between(part[x], mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel(x)
    averaged = [d for d in dims if d not in (x, hue)]
    spread = f" (mean ± std over {', '.join(averaged)})" if averaged else ""
    ax.set_ylabel(summary[metric].attrs.get("long_name", metric) + spread)
    if hue is not None:
        ax.legend(fontsize="small")
    return ax


def save_sweep_figure(
    directory: str | os.PathLike,
    output: str | os.PathLike | None = None,
    **options: Any,
) -> Path:
    """Draw :func:`plot_sweep` for the sweep in ``directory`` into an image file (default
    ``<directory>/sweep.png``; the format from the file's suffix); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = check_writable(output or Path(directory) / "sweep.png", "--output")
    sweep = open_sweep(directory)
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    plot_sweep(sweep.summary, ax=ax, **options)
    ax.set_title(Path(directory).resolve().name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(output).suffix[1:].lower() or "png", dpi=120)
    plt.close(fig)
    atomic_write(output, buffer.getbuffer())
    return output
