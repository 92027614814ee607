"""Numba's on-disk cache for the numba backend's loops, keyed by the sources they are compiled from.

A loop calls the map's kernels, so it is compiled for one kernel set: each loop module has a
factory that returns the loop as a closure over the kernels (kept per process by
``functools.cache``). Numba's own cache cannot serve these closures. It keys a function by its
bytecode and the pickled contents of its closure, and a dispatcher pickles with an identifier that
is new in every process, so a closure over kernels misses every time (and kernels passed as
arguments put the same identifier in the signature). Numba also never notices that a callee's
source changed.

:func:`cached_njit` compiles with numba's cache, but with the index entry keyed by
:func:`loop_key` instead: a SHA-256 of the source files of the loop modules, of the source files
of the kernels and of the loop's specialisation. Editing any of those files changes the key, so a
stale entry is never loaded. Numba also drops the whole index when the loop's own file changes.

What is cached: every loop of a map whose kernels are module-level functions of an imported
module's source file (every built-in map; ``from_numba`` kernels defined in a module, or in the
script being run). Kernels that are closures, or that do not come from a module's file (a
notebook cell, ``exec``), have no key, and their loops are compiled once per process. A change to a function that a user kernel
calls from *another* file is not seen (numba's own caveat); edit the kernel's file or clear the
cache (numba's ``__pycache__`` folders, or ``NUMBA_CACHE_DIR``) after such a change.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from numba import njit
from numba.core.caching import FunctionCache

log = logging.getLogger(__name__)

#: The modules whose source compiled loops depend on (this package's numba code).
LOOP_MODULES = (
    "_cholesky_qr",
    "_numba_cache",
    "_numba_clv",
    "_numba_loops",
    "_numba_blas",
    "_numba_group",
    "_numba_sensitivity",
)


class _KeyedCache(FunctionCache):
    """Numba's function cache with index entries keyed by ``key`` instead of the closure."""

    def __init__(self, py_func: Callable, key: str):
        super().__init__(py_func)
        self._key = key

    def _index_key(self, sig: Any, codegen: Any) -> tuple:
        return (sig, codegen.magic_tuple(), self._key)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        """The cached code, or None (compile) when it cannot be loaded: a cache never fails a run."""
        try:
            return super().load_overload(sig, target_context)
        except Exception as err:
            log.warning("numba cache entry of %s not loaded (%s); compiling", self._name, err)
            return None

    def has_entry(self) -> bool:
        """Whether code compiled under this key (for this machine) is on disk."""
        from numba.core.registry import cpu_target

        magic = cpu_target.target_context.codegen().magic_tuple()
        index = self._cache_file._load_index()
        return any(entry[1:] == (magic, self._key) for entry in index)


@functools.cache
def _loop_sources() -> str:
    folder = Path(__file__).parent
    digest = hashlib.sha256()
    for name in LOOP_MODULES:
        digest.update((folder / f"{name}.py").read_bytes())
    return digest.hexdigest()


def _kernel_source(kernel: Any) -> str | None:
    """SHA-256 of the source file of a jitted kernel with its qualified name; None when the
    kernel is a closure, or not defined in the file of an imported module (loading compiled code
    imports the module of every function in it)."""
    function = getattr(kernel, "py_func", kernel)
    module = sys.modules.get(function.__module__)
    if function.__closure__ is not None or module is None:
        return None
    try:
        path = Path(inspect.getsourcefile(function) or "")
        if not path.samefile(getattr(module, "__file__", None) or ""):
            return None
        source = path.read_bytes()
    except (TypeError, OSError):
        return None
    name = f"{function.__module__}.{function.__qualname__}"
    return f"{hashlib.sha256(source).hexdigest()}:{name}"


def loop_key(loop: str, kernels: Sequence[Any], *specialisation: int) -> str | None:
    """The cache key of loop ``loop`` compiled for ``kernels`` and ``specialisation`` (e.g.
    ``(n, k)``), or None when a kernel's source cannot be keyed."""
    sources = [_kernel_source(kernel) for kernel in kernels]
    if None in sources:
        return None
    digest = hashlib.sha256(_loop_sources().encode())
    digest.update(repr((loop, sources, specialisation)).encode())
    return digest.hexdigest()


def cached_njit(key: str | None, **options: Any) -> Callable[[Callable], Any]:
    """``numba.njit(**options)`` cached on disk under ``key`` (no disk cache when None)."""

    def compile_lazily(function: Callable) -> Any:
        dispatcher = njit(**options)(function)
        if key is not None:
            dispatcher._cache = _KeyedCache(dispatcher.py_func, key)
        return dispatcher

    return compile_lazily


def is_ready(dispatcher: Any) -> bool:
    """Whether calling ``dispatcher`` costs no compilation: compiled in this process already, or
    cached on disk."""
    if dispatcher.overloads:
        return True
    cache = getattr(dispatcher, "_cache", None)
    return isinstance(cache, _KeyedCache) and cache.has_entry()
