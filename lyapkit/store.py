"""Run store: one netCDF4/HDF5 file per training run, one group per diagnostic.

The trainer records diagnostics with :meth:`lyapkit.RunStore.append` and persists them with
:meth:`lyapkit.RunStore.flush`; :func:`lyapkit.open_run` reads a run back as an
``xarray.DataTree``.

Layout of a run file (netCDF4/HDF5, written by netCDF4-python)::

    /                 attributes: config (JSON string), seed (decimal string), run_id (hex),
                      lyapkit_version, created (ISO 8601, UTC), format_version, and
                      config_changes (JSON list) once a resume changed a key that does not
                      change the result
    /<diagnostic>     one group per diagnostic, with its own ``step`` coordinate
                      (int64, units "iteration", long_name "training step") and its variables
                      stacked along it, e.g. ``exponent_value (step, exponent)``

xarray cannot append along a dimension of an existing netCDF/HDF5 file (pydata/xarray#1672), so
the store keeps every record in memory and each flush rewrites the whole file: it writes
``<path>.tmp-<pid>`` and moves it onto ``path`` with ``os.replace``. A writer killed at any moment
therefore leaves either the previous file or the new one, never a torn one. The cost of a flush is
that of writing everything recorded so far (linear in the file size; see
``docs/howto/run-store.md``); flushes happen on the trainer's schedule.

A run directory has one writer: :func:`lyapkit.store.lock_run` takes the lock file
``<name>.lock`` (holding the owner's pid and host) atomically, recovers a stale one left by a dead
process on this host, and refuses with :class:`lyapkit.store.RunLockedError` while another
process holds it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import numbers
import os
import re
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lyapkit._checks import integer
from lyapkit._files import NETCDF_LOCK, atomic_write, netcdf_bytes, reason

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

#: Version of the file layout, stored as the root attribute ``format_version``.
FORMAT_VERSION = 1
#: Attributes of the ``step`` coordinate of every group.
STEP_ATTRS = {"units": "iteration", "long_name": "training step"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.+\-]*\Z")
_INT64 = np.iinfo(np.int64)


def _xarray():
    """Import xarray on first use (``import lyapkit`` stays light)."""
    import xarray as xr

    return xr


def _require_netcdf4() -> None:
    import importlib.util

    if importlib.util.find_spec("netCDF4") is None:
        raise ImportError("the run store needs netCDF4: pip install 'lyapkit[store]'")


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, got {type(name).__name__}")
    if not _NAME.match(name):
        raise ValueError(
            f"{what} {name!r} is not a valid netCDF name here: use a letter or '_' followed by "
            "letters, digits, '_', '.', '+' or '-'"
        )
    if name == "step":
        raise ValueError(f"{what} 'step' is reserved for the store's step coordinate")


def _check_step(step: Any, what: str = "step") -> int:
    """A training step as a Python int: integers, or floats with an integral finite value."""
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Real):
        raise TypeError(f"{what} must be an integer, got {type(step).__name__}")
    if not isinstance(step, numbers.Integral):
        if not math.isfinite(step):
            raise ValueError(f"{what} must be finite, got {step}")
        if not float(step).is_integer():
            raise ValueError(f"{what} must be a whole number, got {step}")
    value = int(step)
    if not _INT64.min <= value <= _INT64.max:
        raise ValueError(f"{what} must fit in int64, got {value}")
    return value


def _config_json(config: Any) -> str:
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (dict), got {type(config).__name__}")
    try:
        return json.dumps(dict(config), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"config must be JSON-serialisable (strict JSON: no NaN or infinity): {err}"
        ) from err


class RunLockedError(OSError):
    """Another live process holds the lock of a run (see :func:`lyapkit.store.lock_run`)."""


def _lock_owner(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The parsed content of a lock file (None when empty or unreadable) and its raw text."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except OSError:
        return None, ""
    try:
        owner = json.loads(text)
    except ValueError:
        return None, text
    if not (isinstance(owner, dict) and isinstance(owner.get("pid"), int)):
        return None, text
    return owner, text


def _stale(path: Path, owner: dict[str, Any] | None) -> bool:
    """Whether the lock ``path`` of ``owner`` is stale: its process is dead on this host, or it
    has stayed empty or unreadable for a minute (a writer killed while taking it)."""
    if owner is None:
        try:
            return time.time() - path.stat().st_mtime > 60
        except FileNotFoundError:
            return True
    return owner.get("host") == socket.gethostname() and not _pid_alive(owner["pid"])


class RunLock:
    """The lock of a run, held by this process until :meth:`lyapkit.store.RunLock.release` (or
    the ``with`` block's end). Made by :func:`lyapkit.store.lock_run`."""

    def __init__(self, path: Path, content: str):
        self.path = path
        self._content = content

    def release(self) -> None:
        """Remove the lock file, if it is still this process's."""
        if self._content is None:
            return
        try:
            if self.path.read_text() == self._content:
                self.path.unlink()
        except FileNotFoundError:
            pass
        self._content = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def lock_run(path: str | os.PathLike) -> RunLock:
    """Take the lock file ``path`` (e.g. ``<run.dir>/<run.name>.lock``) for this process.

    The file is created atomically (``O_CREAT | O_EXCL``) and holds ``{"pid", "host", "since"}``
    as JSON. A lock left by a process that is no longer running on this host is stale: it is
    removed (with a log line) and taken. Missing parent directories are created.

    Raises
    ------
    RunLockedError
        Another live process (or a process on another host) holds the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    )
    for _ in range(10):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, content.encode())
                os.fsync(fd)
            except OSError as err:  # a full disk: take nothing, leave no empty lock behind
                os.close(fd)
                path.unlink(missing_ok=True)
                raise type(err)(err.errno, f"cannot write the lock {path}: {reason(err)}") from err
            os.close(fd)
            return RunLock(path, content)
        try:
            owner, text = _lock_owner(path)
        except FileNotFoundError:
            continue  # released meanwhile: try again
        if not _stale(path, owner):
            if owner is None:
                raise RunLockedError(f"{path} is being taken by another process; try again")
            where = "" if owner.get("host") == socket.gethostname() else f" on {owner.get('host')}"
            raise RunLockedError(
                f"the run is in use: {path} is held by pid {owner['pid']}{where} since "
                f"{owner.get('since', '?')}; wait for it, or delete the lock if that process is gone"
            )
        # Break the stale lock: move it aside atomically (one taker wins), then check that what
        # was moved is the stale lock that was read and not a fresh one taken meanwhile.
        aside = path.with_name(f"{path.name}.stale-{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        try:
            moved = aside.read_text()
        except OSError:
            moved = text
        if moved != text:  # a fresh lock: put it back unless another was taken since
            with contextlib.suppress(OSError):
                os.link(aside, path)
            aside.unlink(missing_ok=True)
            continue
        aside.unlink(missing_ok=True)
        who = (
            f"pid {owner['pid']}, no longer running" if owner else "empty, left by a killed writer"
        )
        log.warning("removed the stale lock %s (%s)", path, who)
    raise RunLockedError(f"could not take the lock {path}: it keeps changing hands")


class _Group:
    """The records of one diagnostic: a schema (its first record) and the stacked values.

    Values are kept as lists of blocks with a leading step axis, so that an append costs one
    small copy; they are concatenated into one block when read (``_stacked``).
    """

    def __init__(self, schema: xr.Dataset, steps: np.ndarray, values: dict[str, np.ndarray]):
        self.schema = schema
        self._specs = {
            name: (var.dims, var.shape, var.dtype) for name, var in schema.data_vars.items()
        }
        self._steps = [steps]
        self._values = {name: [values[name]] for name in self._specs}

    @classmethod
    def from_dataset(cls, name: str, ds: xr.Dataset) -> _Group:
        """Rebuild a group from the stacked dataset read from a run file."""
        xr = _xarray()
        if "step" not in ds.coords or ds["step"].dims != ("step",):
            raise ValueError(f"group {name!r} has no 'step' coordinate: not a lyapkit run store")
        stacked = {}
        schema_vars = {}
        for var_name, var in ds.data_vars.items():
            if var.dims[:1] != ("step",):
                raise ValueError(
                    f"variable {var_name!r} of group {name!r} is not stacked along 'step' "
                    f"(dims {var.dims}): not a lyapkit run store"
                )
            values = var.values
            if values.dtype == object:  # variable-length strings, as older xarray decodes them
                values = values.astype(str)
            stacked[var_name] = values
            schema_vars[var_name] = xr.Variable(
                var.dims[1:], np.zeros(values.shape[1:], values.dtype), dict(var.attrs)
            )
        coords = {k: c.variable.copy(deep=True) for k, c in ds.coords.items() if k != "step"}
        for key, coord in coords.items():
            if "step" in coord.dims:
                raise ValueError(
                    f"coordinate {key!r} of group {name!r} depends on 'step': "
                    "not a lyapkit run store"
                )
        schema = xr.Dataset(schema_vars, coords=coords, attrs=dict(ds.attrs))
        return cls(schema, ds["step"].values.astype(np.int64), stacked)

    def _stacked(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if len(self._steps) > 1:
            self._steps = [np.concatenate(self._steps)]
            for blocks in self._values.values():
                blocks[:] = [np.concatenate(blocks)]
        return self._steps[0], {name: blocks[0] for name, blocks in self._values.items()}

    @property
    def last_step(self) -> int | None:
        return int(self._steps[-1][-1]) if len(self._steps[-1]) else None

    def __len__(self) -> int:
        return sum(len(steps) for steps in self._steps)

    def convert(self, record: _Record, where: str) -> dict[str, np.ndarray]:
        """Check a record against the first one; return copies of its values in the group's dtypes.

        Variables, dims, shapes and coordinates must match; dtypes must cast safely (strings may
        change length).
        """
        if set(record.values) != set(self._specs):
            raise ValueError(
                f"{where} has variables {sorted(record.values)}; the group's first record had "
                f"{sorted(self._specs)}: record other variables in another group"
            )
        converted = {}
        for name, (dims, shape, dtype) in self._specs.items():
            new_dims, value = record.dims[name], record.values[name]
            if new_dims != dims or value.shape != shape:
                got = dict(zip(new_dims, value.shape, strict=True))
                raise ValueError(
                    f"variable {name!r} of {where} has dims {got}; the group's first record had "
                    f"{dict(zip(dims, shape, strict=True))}"
                )
            if "U" in (value.dtype.kind, dtype.kind):
                compatible = value.dtype.kind == dtype.kind
            else:
                compatible = np.can_cast(value.dtype, dtype, casting="safe")
            if not compatible:
                raise TypeError(
                    f"variable {name!r} of {where} has dtype {value.dtype}, which cannot be cast "
                    f"safely to {dtype} of the group's first record (record floats from the "
                    "first step)"
                )
            converted[name] = np.array(value, dtype=None if dtype.kind == "U" else dtype)
        coords = self.schema.coords
        if set(record.coords) != set(coords):
            raise ValueError(
                f"{where} has coordinates {sorted(record.coords)}; the group's first record had "
                f"{sorted(coords)}"
            )
        for name, coord in record.coords.items():
            if not coord.equals(coords[name].variable):
                raise ValueError(
                    f"coordinate {name!r} of {where} differs from the group's first record; values "
                    "that change with the step belong in data variables"
                )
        return converted

    def add(self, step: int, record: _Record, values: dict[str, np.ndarray]) -> None:
        """Append converted values; drop the attributes that the record contradicts."""
        _drop_conflicts(self.schema.attrs, record.group_attrs)
        for name, attrs in record.attrs.items():
            _drop_conflicts(self.schema.variables[name].attrs, attrs)
        self._steps.append(np.array([step], dtype=np.int64))
        for name, value in values.items():
            self._values[name].append(value[np.newaxis])

    def truncate(self, step: int) -> int:
        """Drop the records after ``step``; return how many were dropped."""
        steps, values = self._stacked()
        keep = int(np.searchsorted(steps, step, side="right"))
        self._steps = [steps[:keep]]
        for name, value in values.items():
            self._values[name] = [value[:keep]]
        return len(steps) - keep

    def to_dataset(self) -> xr.Dataset:
        xr = _xarray()
        steps, values = self._stacked()
        data_vars = {
            name: xr.Variable(("step", *var.dims), values[name], var.attrs)
            for name, var in self.schema.data_vars.items()
        }
        coords = {name: coord.variable for name, coord in self.schema.coords.items()}
        coords["step"] = xr.Variable(("step",), steps, dict(STEP_ATTRS))
        return xr.Dataset(data_vars, coords=coords, attrs=self.schema.attrs)


class _Record(NamedTuple):
    """One record, unpacked without building a Dataset (appends of scalar metrics stay cheap)."""

    values: dict[str, np.ndarray]
    dims: dict[str, tuple]
    attrs: dict[str, dict]  # attributes of each variable
    coords: dict[str, Any]  # name -> xarray.Variable
    group_attrs: dict[str, Any]

    @classmethod
    def unpack(
        cls, record: Any, group: str, extra_attrs: Mapping[str, Mapping[str, Any]] | None
    ) -> _Record:
        """Unpack a Dataset or a mapping of scalars; add ``extra_attrs`` to the variables."""
        xr = _xarray()
        if isinstance(record, xr.Dataset):  # a Dataset is a Mapping too: test it first
            if "step" in record.dims or "step" in record.variables:
                raise ValueError(
                    f"the record for group {group!r} already has 'step', the store's axis: pass "
                    "one record per step; rename that dim (record.rename(step='history_step')) "
                    "or drop it (record.drop_dims('step'))"
                )
            data = record.data_vars.variables
            unpacked = cls(
                {name: var.values for name, var in data.items()},
                {name: var.dims for name, var in data.items()},
                {name: dict(var.attrs) for name, var in data.items()},
                {name: record.variables[name] for name in record.coords},
                dict(record.attrs),
            )
        elif isinstance(record, Mapping):
            values = {}
            for key, value in record.items():
                values[key] = np.asarray(value)
                if values[key].ndim != 0:
                    raise ValueError(
                        f"record[{key!r}] for group {group!r} must be a scalar (got shape "
                        f"{values[key].shape}); pass an xarray.Dataset with named dims for arrays"
                    )
            unpacked = cls(values, dict.fromkeys(values, ()), {k: {} for k in values}, {}, {})
        else:
            raise TypeError(
                f"record must be an xarray.Dataset or a dict of scalars, got {type(record).__name__}"
            )
        if not unpacked.values:
            raise ValueError(f"the record for group {group!r} has no variables")
        extra_attrs = extra_attrs or {}
        if not isinstance(extra_attrs, Mapping) or not all(
            isinstance(value, Mapping) for value in extra_attrs.values()
        ):
            raise TypeError(
                "attrs must map variable names to mappings of attributes, e.g. "
                "{'loss': {'units': '1'}}"
            )
        unknown = set(extra_attrs) - set(unpacked.values)
        if unknown:
            raise ValueError(f"attrs names variables not in the record: {sorted(unknown)}")
        for name, extra in extra_attrs.items():
            unpacked.attrs[name].update(extra)
        return unpacked

    def to_dataset(self) -> xr.Dataset:
        """The record as a Dataset that shares no data with the caller's."""
        xr = _xarray()
        data_vars = {
            name: xr.Variable(self.dims[name], value, self.attrs[name])
            for name, value in self.values.items()
        }
        return xr.Dataset(data_vars, coords=self.coords, attrs=self.group_attrs).copy(deep=True)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # equal_nan needs numbers
        return bool(np.array_equal(a, b))


def _drop_conflicts(kept: dict, new: Mapping) -> None:
    """Drop from ``kept`` the attributes that ``new`` gives another value.

    Like xarray's ``combine_attrs="drop_conflicts"``, without adding those only ``new`` has.
    """
    for key in [k for k, value in kept.items() if k in new and not _same(value, new[k])]:
        del kept[key]


def _validate_first(record: xr.Dataset, group: str) -> None:
    """Check the names and write the record to memory: whatever the writer refuses fails here."""
    for name in (*record.variables, *record.dims):
        _check_name(name, f"name in the record for group {group!r}")
    try:
        netcdf_bytes(record)
    except Exception as err:  # any refusal of the writer, reported with the group's name
        raise TypeError(
            f"the record for group {group!r} cannot be written to netCDF: {err}"
        ) from err


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; a zombie (killed, not yet reaped by its parent,
    e.g. a pool's worker) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    try:  # Linux: the state is the field after the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``<path>.tmp-<pid>`` files left by killed writers (POSIX only: needs ``kill(pid, 0)``)."""
    if os.name != "posix":
        return
    for tmp in path.parent.glob(f"{path.name}.tmp-*"):
        pid = tmp.name.rpartition(".tmp-")[2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            log.info("removing %s, left by a killed writer", tmp)
            tmp.unlink(missing_ok=True)


def _read_tree(path: str | os.PathLike) -> xr.DataTree:
    xr = _xarray()
    _require_netcdf4()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no run store at {path}")
    try:
        with NETCDF_LOCK, xr.open_datatree(path, engine="netcdf4") as tree:
            tree = tree.load()
    except OSError as err:  # not HDF5 (netCDF: "Unknown file format"), or torn
        raise ValueError(
            f"{path} is not a lyapkit run store: it cannot be read as netCDF4/HDF5 ({reason(err)})"
        ) from err
    if "format_version" not in tree.attrs or "config" not in tree.attrs:
        raise ValueError(f"{path} is not a lyapkit run store (no format_version/config attributes)")
    version = int(tree.attrs["format_version"])
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has run-store format {version}; this lyapkit reads up to {FORMAT_VERSION}: "
            "upgrade lyapkit"
        )
    return tree


class RunStore:
    """The diagnostics of one training run, kept in memory and flushed atomically to one file.

    Make one with :meth:`lyapkit.RunStore.create` (a new run) or :meth:`lyapkit.RunStore.open`
    (resume a run); record with :meth:`lyapkit.RunStore.append`; persist with
    :meth:`lyapkit.RunStore.flush` (also done on leaving a ``with`` block). Each flush rewrites the
    whole file (xarray cannot append along a dimension of a netCDF file, pydata/xarray#1672): it
    costs as much as writing everything recorded so far. A store is not thread-safe, and one run
    file should have one writer.

    Parameters
    ----------
    path : pathlib.Path
        The run file. The constructor is internal: use :meth:`lyapkit.RunStore.create` or
        :meth:`lyapkit.RunStore.open`.
    root_attrs : dict
        The root attributes (``config``, ``seed``, ``run_id``, ``lyapkit_version``, ``created``,
        ``format_version``, and ``config_changes`` once a resume changed the configuration).
    groups : dict
        The records of each diagnostic, by group name (internal objects).

    Attributes
    ----------
    path : pathlib.Path
        The run file.

    See Also
    --------
    lyapkit.open_run : Read a run file back as an ``xarray.DataTree``.
    lyapkit.run_config : The configuration of a run read back.

    Examples
    --------
    >>> import lyapkit as lk
    >>> store = lk.RunStore.create("run.nc", config={"lr": 0.01}, seed=0)
    >>> store.append("metrics", 0, {"loss": 1.0})
    >>> store.append("metrics", 10, {"loss": 0.5})
    >>> store.groups, store.last_step("metrics")
    (('metrics',), 10)
    >>> store.flush()
    >>> run = lk.open_run("run.nc")
    >>> run["metrics"]["loss"].values, run["metrics"]["step"].values
    (array([1. , 0.5]), array([ 0, 10]))
    >>> with lk.RunStore.open("run.nc") as resumed:  # flushed on leaving the block
    ...     resumed.append("metrics", 20, {"loss": 0.25})
    >>> resumed
    RunStore('run.nc', groups={'metrics': 3 steps})
    """

    def __init__(self, path: Path, root_attrs: dict[str, Any], groups: dict[str, _Group]):
        self.path = path
        self._root_attrs = root_attrs
        self._groups = groups
        self._dirty = True

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        config: Mapping[str, Any],
        seed: int,
        overwrite: bool = False,
        run_id: str | None = None,
    ) -> RunStore:
        """Start the store of a new run and write its (empty) file at once.

        Parameters
        ----------
        path : str or path-like
            The run file (conventionally ``*.nc``); missing parent directories are created.
        config : mapping
            The full configuration of the run; stored as a JSON string (strict JSON).
        seed : int
            The run's seed (any size; stored as a decimal string).
        overwrite : bool, default False
            Replace an existing file at ``path``; otherwise an existing file is an error.
        run_id : str, optional
            The run's identity (root attribute ``run_id``), which its checkpoints carry too;
            default: a new ``uuid4().hex``.

        Returns
        -------
        RunStore
            The new store, already flushed to ``path``.

        Raises
        ------
        FileExistsError
            ``path`` is an existing file and ``overwrite`` is false.
        IsADirectoryError
            ``path`` exists and is not a file (a directory, say).
        TypeError, ValueError
            ``config`` is not a JSON-serialisable mapping, ``seed`` not an integer, or
            ``run_id`` not a non-empty string (TypeError).
        ImportError
            netCDF4 is not installed.
        OSError
            The file cannot be written.
        """
        from lyapkit import __version__

        _require_netcdf4()
        config_json = _config_json(config)
        seed = integer(seed, "seed", error=TypeError)
        if run_id is None:
            run_id = uuid.uuid4().hex
        if not isinstance(run_id, str) or not run_id:
            raise TypeError(f"run_id must be a non-empty string, got {run_id!r}")
        path = Path(path)
        if path.exists() and not path.is_file():
            raise IsADirectoryError(f"{path} exists and is not a file")
        if path.exists() and not overwrite:
            raise FileExistsError(
                f"{path} exists; pass overwrite=True to replace it, or use "
                f"RunStore.open({str(path)!r}) to resume that run"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        root_attrs = {
            "config": config_json,
            "seed": str(seed),
            "run_id": run_id,
            "lyapkit_version": __version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "format_version": FORMAT_VERSION,
        }
        store = cls(path, root_attrs, {})
        store.flush()
        return store

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunStore:
        """Reopen the store of an existing run to append to it (resume).

        All groups are loaded into memory. Temporary files left by a killed writer are removed.
        To resume from a checkpoint at step ``s``, call ``truncate(s)`` before appending.

        Parameters
        ----------
        path : str or path-like
            The run file, written by :meth:`lyapkit.RunStore.create`.

        Returns
        -------
        RunStore
            The store, with every group recorded so far.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            The file is not a lyapkit run store, or was written by a newer lyapkit.
        ImportError
            netCDF4 is not installed.
        """
        path = Path(path)
        tree = _read_tree(path)
        groups = {
            name: _Group.from_dataset(name, node.to_dataset(inherit=False))
            for name, node in tree.children.items()
        }
        _remove_stale_temporaries(path)
        store = cls(path, {**tree.attrs, "format_version": FORMAT_VERSION}, groups)
        store._dirty = False
        return store

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration (a fresh dict parsed from the stored JSON)."""
        return json.loads(self._root_attrs["config"])

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self._root_attrs["seed"])

    @property
    def run_id(self) -> str | None:
        """The run's identity (None for a store written before run ids existed)."""
        run_id = self._root_attrs.get("run_id")
        return None if run_id is None else str(run_id)

    @property
    def config_changes(self) -> list[dict[str, Any]]:
        """The notes of :meth:`lyapkit.RunStore.update_config`, oldest first."""
        return json.loads(self._root_attrs.get("config_changes", "[]"))

    def update_config(self, config: Mapping[str, Any], note: Mapping[str, Any]) -> None:
        """Replace the stored configuration and note the change.

        ``note`` (e.g. the step and the changed keys) is appended to the root attribute
        ``config_changes``, a JSON list (see :attr:`lyapkit.RunStore.config_changes`). For
        changes of keys that do not change the result, made when a run is resumed. Persisted by
        the next flush.

        Parameters
        ----------
        config : mapping
            The new full configuration (strict JSON).
        note : mapping
            What changed, e.g. ``{"step": 100, "changed": ["log_every"]}`` (strict JSON).

        Raises
        ------
        TypeError, ValueError
            ``config`` or ``note`` is not a JSON-serialisable mapping.
        """
        config_json = _config_json(config)
        notes = self.config_changes
        notes.append(json.loads(_config_json(note)))
        self._root_attrs["config"] = config_json
        self._root_attrs["config_changes"] = json.dumps(notes, allow_nan=False)
        self._dirty = True

    @property
    def groups(self) -> tuple[str, ...]:
        """Names of the diagnostics recorded so far, in order of their first record (of a store
        opened from its file: the file's order, by name; netCDF-C lists groups by name)."""
        return tuple(self._groups)

    def last_step(self, group: str | None = None) -> int | None:
        """Last recorded step of ``group`` (of any group when None); None when there is none.

        Parameters
        ----------
        group : str, optional
            The diagnostic; default: the latest step over all groups.

        Returns
        -------
        int or None
            The last recorded step, or None when nothing is recorded.

        Raises
        ------
        KeyError
            ``group`` was never recorded.
        """
        if group is None:
            steps = [g.last_step for g in self._groups.values() if g.last_step is not None]
            return max(steps, default=None)
        return self._group(group).last_step

    def _group(self, group: str) -> _Group:
        if group not in self._groups:
            raise KeyError(f"no group {group!r} in {self.path}; groups: {list(self._groups)}")
        return self._groups[group]

    def append(
        self,
        group: str,
        step: int,
        record: xr.Dataset | Mapping[str, Any],
        *,
        attrs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Record one diagnostic at one training step, in memory.

        :meth:`lyapkit.RunStore.flush` persists it.

        Parameters
        ----------
        group : str
            Name of the diagnostic: a letter or ``_``, then letters, digits, ``_ . + -``.
        step : int
            Training step; must increase within the group.
        record : xarray.Dataset or mapping of str to scalar
            The values at this step, without a ``step`` dim: a Dataset (e.g. a result's
            ``to_xarray()``), or a dict of scalars such as ``{"loss": 0.3, "accuracy": 0.9}``.
            Every record of a group must have the same variables, dims, shapes and coordinates
            as its first record, and dtypes that cast safely to the first record's (so record
            ``0.0``, not ``0``, for a float metric).
        attrs : mapping of str to mapping, optional
            Attributes per variable, e.g. ``{"loss": {"units": "1", "long_name": "loss"}}``.
            Attributes (the record's and these) are those of the group's first record, less those
            that a later record gives another value (like xarray's ``drop_conflicts``): a value
            that changes with the step belongs in a variable.

        Raises
        ------
        TypeError
            ``step``, ``group`` or ``record`` of the wrong type; a dtype that does not cast to the
            group's; a first record that netCDF cannot store (e.g. object arrays, dict attrs).
        ValueError
            An invalid group or variable name; a non-finite or non-increasing ``step``; a record
            inconsistent with the group's first record; a non-scalar value in a mapping record.
        """
        _check_name(group, "group")
        step = _check_step(step)
        unpacked = _Record.unpack(record, group, attrs)
        existing = self._groups.get(group)
        if existing is None:
            schema = unpacked.to_dataset()
            _validate_first(schema, group)
            empty = {
                name: np.empty((0, *var.shape), var.dtype) for name, var in schema.data_vars.items()
            }
            existing = _Group(schema, np.empty(0, np.int64), empty)
        elif existing.last_step is not None and step <= existing.last_step:
            raise ValueError(
                f"step {step} of group {group!r} is not after its last recorded step "
                f"{existing.last_step}"
            )
        where = f"the record for group {group!r} at step {step}"
        existing.add(step, unpacked, existing.convert(unpacked, where))
        self._groups[group] = existing
        self._dirty = True

    def truncate(self, step: int) -> None:
        """Drop every record after ``step`` in every group (resume from a checkpoint at ``step``).

        The next :meth:`lyapkit.RunStore.flush` persists the truncation.

        Parameters
        ----------
        step : int
            The last step to keep (records at ``step`` itself are kept).

        Raises
        ------
        TypeError
            ``step`` is not an integer (or an integral float).
        ValueError
            ``step`` is not finite, not a whole number, or does not fit in int64.
        """
        step = _check_step(step)
        dropped = sum(group.truncate(step) for group in self._groups.values())
        if dropped:
            log.info("truncated %d records after step %d in %s", dropped, step, self.path)
            self._dirty = True

    def _tree(self) -> xr.DataTree:
        xr = _xarray()
        nodes = {"/": xr.Dataset(attrs=self._root_attrs)}
        nodes.update({f"/{name}": group.to_dataset() for name, group in self._groups.items()})
        return xr.DataTree.from_dict(nodes)

    def to_datatree(self) -> xr.DataTree:
        """Everything recorded so far (flushed or not) as an in-memory ``xarray.DataTree``.

        Returns
        -------
        xarray.DataTree
            A deep copy, laid out like the run file (see :func:`lyapkit.open_run`).
        """
        return self._tree().copy(deep=True)

    def flush(self) -> None:
        """Write the whole store to ``<path>.tmp-<pid>``, then ``os.replace`` it onto ``path``.

        Does nothing when nothing changed since the last flush. If writing fails, the previous
        file is left untouched, the temporary file is removed and an ``OSError`` of one line
        names the run file; the records stay in memory, so a later flush can succeed.

        Raises
        ------
        OSError
            The file cannot be written.
        """
        if not self._dirty:
            return
        start = time.perf_counter()
        atomic_write(self.path, netcdf_bytes(self._tree()))
        self._dirty = False
        log.debug(
            "flushed %s (%d bytes) in %.3f s",
            self.path,
            self.path.stat().st_size,
            time.perf_counter() - start,
        )

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()

    def __repr__(self) -> str:
        groups = ", ".join(f"{name!r}: {len(group)} steps" for name, group in self._groups.items())
        return f"RunStore({str(self.path)!r}, groups={{{groups}}})"


def open_run(path: str | os.PathLike) -> xr.DataTree:
    """Read a run file into memory as an ``xarray.DataTree`` (the file is not kept open).

    The root holds the attributes ``config`` (a JSON string; :func:`lyapkit.run_config` parses it),
    ``seed`` (a decimal string), ``run_id``, ``lyapkit_version``, ``created`` and
    ``format_version`` (and ``config_changes`` after a resume that changed a free key); each
    child is one diagnostic with its own ``step`` coordinate.

    Parameters
    ----------
    path : str or path-like
        The run file, written by :class:`lyapkit.RunStore`.

    Returns
    -------
    xarray.DataTree
        The whole run, loaded into memory.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a lyapkit run store, or was written by a newer lyapkit.
    ImportError
        netCDF4 is not installed.

    See Also
    --------
    lyapkit.RunStore : Writes run files.
    lyapkit.run_config : The configuration of the run.

    Examples
    --------
    >>> import lyapkit as lk
    >>> store = lk.RunStore.create("read_back.nc", config={"lr": 0.01}, seed=3)
    >>> store.append("metrics", 0, {"loss": 0.5, "accuracy": 0.75})
    >>> store.flush()
    >>> run = lk.open_run("read_back.nc")
    >>> sorted(run["metrics"].data_vars), run.attrs["seed"]
    (['accuracy', 'loss'], '3')
    >>> float(run["metrics"]["accuracy"].sel(step=0))
    0.75
    """
    return _read_tree(path)


def run_config(run: xr.DataTree | xr.Dataset) -> dict[str, Any]:
    """The configuration of a run, parsed from its root attribute ``config``.

    Parameters
    ----------
    run : xarray.DataTree or xarray.Dataset
        The tree of :func:`lyapkit.open_run`, or the root group opened with
        ``xarray.open_dataset``.

    Returns
    -------
    dict
        The configuration, a fresh dict parsed from the stored JSON.

    Raises
    ------
    ValueError
        ``run`` has no ``config`` attribute (it is not the root of a lyapkit run store).

    See Also
    --------
    lyapkit.open_run : Read a run file.
    lyapkit.RunStore.config : The same, from an open store.

    Examples
    --------
    >>> import lyapkit as lk
    >>> store = lk.RunStore.create("configured.nc", config={"lr": 0.01, "steps": 100}, seed=0)
    >>> lk.run_config(lk.open_run("configured.nc"))
    {'lr': 0.01, 'steps': 100}
    """
    if "config" not in getattr(run, "attrs", {}):
        raise ValueError("run has no 'config' attribute: pass the root of a lyapkit run store")
    return json.loads(run.attrs["config"])
