"""Writing result files safely: output paths checked before a computation, atomic replacement.

Every file lyapkit writes (run stores, checkpoints, ``spectrum -o``, report sheets) goes through
:func:`atomic_write`: it is serialised in memory, written to ``<path>.tmp-<pid>`` beside its
target, pushed to disk and moved onto the target with ``os.replace``, so a crash, a kill or a full disk leaves the previous
file as it was. The file gets the mode that ``open`` gives under the process's umask. A failure is
an ``OSError`` of one line that names the target (not the temporary file) and the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

#: Held around every netCDF-C call lyapkit makes (:func:`netcdf_bytes`, reading a run store):
#: netCDF-C is not thread-safe, and a process may run several runs in threads (a thread pool
#: given to a sweep, a Dask worker with more than one thread). Two threads writing at once
#: without it crashed the process (a segmentation fault).
NETCDF_LOCK = threading.Lock()


def reason(err: BaseException) -> str:
    """The cause of ``err`` in one line: the C library's message for the errno of an OSError
    (``"No space left on device"``), else the first line of the exception's message (libraries
    such as HDF5 add many more)."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_writable(path: str | os.PathLike, name: str) -> Path:
    """``path`` as a Path, after checking that a file can be written there: an ``OSError`` naming
    the argument ``name`` when its folder does not exist or is not writable, or ``path`` is a
    folder. Call it before a long computation whose result goes to ``path``."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise IsADirectoryError(f"{name} {str(path)!r} is a folder; give a file name")
    if not folder.is_dir():
        raise FileNotFoundError(f"{name} {str(path)!r}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name} {str(path)!r}: the folder {str(folder)!r} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{name} {str(path)!r} exists and is not writable")
    return path


def atomic_write(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``<path>.tmp-<pid>``, push it to disk and move it onto ``path``.

    On any failure the temporary file is removed and ``path`` is left as it was; an ``OSError``
    (a full disk, a vanished folder, a denied permission) is raised again as one line naming
    ``path``, with the original chained. Callers serialise into memory first (see
    :func:`netcdf_bytes`), so that a full disk meets Python's file writes only: HDF5 that runs
    out of space while writing its own file raises from its finalisers and can crash the
    process.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        message = f"cannot write {path}: {reason(err)}"
        raise (type(err)(err.errno, message) if err.errno else OSError(message)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def netcdf_bytes(obj: Any) -> memoryview:
    """An xarray Dataset or DataTree as the bytes of a netCDF4/HDF5 file, written in memory by the
    netCDF-C library (netCDF4-python): some 5× faster than h5netcdf for a run file's hundreds of
    small variables, and no file (nor HDF5's file lock) is touched until :func:`atomic_write`."""
    # xarray takes a write lock from the dask scheduler in use; in a Dask worker that is a
    # cluster-wide lock named after the target, which an in-memory buffer cannot name. Nothing
    # here is a dask array, so dask's local scheduler (a process-local lock) is right. Importing
    # dask.config (rather than reading sys.modules) waits for another thread's import of dask to
    # finish; the lock keeps one thread's restore of dask's configuration from undoing another's.
    with NETCDF_LOCK:
        if "dask" in sys.modules:
            import dask.config

            local = dask.config.set(scheduler="synchronous")
        else:
            local = contextlib.nullcontext()
        with local:
            return obj.to_netcdf(None, engine="netcdf4")
