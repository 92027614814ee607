"""The backend protocol and registry.

A backend owns the hot loops. The core validates arguments and packs results; a backend runs the
tangent dynamics ``Q ← J_t Q`` with periodic QR re-orthonormalisation (or the two-trajectory twin
integration) over all ensemble members, and records the cumulative sums of ``log R_ii`` at the
requested post-transient step counts. Built-in backends live in the top-level ``backends`` package;
third parties register a :class:`Backend` subclass under the entry-point group ``lyapkit.backends``.
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import ClassVar

import numpy as np

from lyapkit.maps.base import Map

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lyapkit.backends"
_BUILTIN = {
    "numpy": "backends.numpy_backend:NumpyBackend",
    "numba": "backends.numba_backend:NumbaBackend",
    "torch": "backends.torch_backend:TorchBackend",
}


@dataclass(frozen=True)
class TangentPlan:
    """What a backend integrates: ``transient + steps`` steps of every ensemble member.

    Attributes
    ----------
    x0 : (E, n) float64
        Initial states.
    basis0 : (E, n, k) float64
        Initial orthonormal tangent bases (for the twin method, ``k = 1``: the initial separation).
    inputs : (E or 1, transient + steps, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    transient, steps : int
        Steps evolved before averaging (state and basis), and steps averaged.
    every : int
        Re-orthonormalise (twin: renormalise) every ``every`` steps, and at the end of the transient
        and of the run.
    record_at : (R,) int64
        Ascending post-transient step counts at which the cumulative sums are recorded; each is a
        multiple of ``every`` or equals ``steps``; the last equals ``steps``.
    separation : float
        Twin method: the distance ``δ0`` restored at each renormalisation.
    dtype, device : str or None
        Requested floating dtype and device (backends that cannot honour them raise).
    """

    x0: np.ndarray
    basis0: np.ndarray
    inputs: np.ndarray
    transient: int
    steps: int
    every: int
    record_at: np.ndarray
    separation: float = 0.0
    dtype: str | None = None
    device: str | None = None

    @property
    def total(self) -> int:
        """All steps integrated: ``transient + steps``."""
        return self.transient + self.steps

    def renormalise_after(self, t: int) -> bool:
        """Whether step ``t`` (0-based, counted from the start) ends with a re-orthonormalisation."""
        done = t + 1
        if done <= self.transient:
            return done % self.every == 0 or done == self.transient
        s = done - self.transient
        return s % self.every == 0 or s == self.steps


@dataclass(frozen=True)
class TangentRecord:
    """What a backend returns.

    Attributes
    ----------
    cumulative : (E, R, k) float64
        ``Σ log R_ii`` (twin: ``Σ log(d/δ0)``) over post-transient steps up to each ``record_at``.
    max_condition : (E,) float64
        Largest ``max_i R_ii / min_i R_ii`` seen at a re-orthonormalisation: a lower bound on the
        2-norm condition number of the un-normalised tangent basis.
    blowup_step : (E,) int64
        The first step (1-based, counted from the start) after which the state or basis was not
        finite; −1 when it stayed finite.
    final_state : (E, n) float64
    final_basis : (E, n, k) float64
    """

    cumulative: np.ndarray
    max_condition: np.ndarray
    blowup_step: np.ndarray
    final_state: np.ndarray
    final_basis: np.ndarray


class Progress:
    """A do-nothing progress meter; see :func:`lyapkit.progress.progress_bar`."""

    enabled: bool = False

    def update(self, n: int) -> None:
        """Report ``n`` more steps done."""

    def close(self) -> None:
        """Finish."""


class Backend(abc.ABC):
    """A compute engine for lyapkit's hot loops.

    Subclasses set ``name`` and ``description``, optionally ``requires`` (modules that must be
    importable, checked by :meth:`available` without importing them) and ``extra`` (the lyapkit
    extra that installs them, named in errors), and implement ``supports``, ``tangent`` and
    ``twin``; ``priority`` ranks them for ``backend="auto"``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    @classmethod
    def available(cls) -> bool:
        """Whether the modules this backend needs are installed (without importing them)."""
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @abc.abstractmethod
    def supports(self, system: Map) -> bool:
        """Whether this backend can run ``system``."""

    def priority(self, system: Map) -> int:
        """Preference for ``backend="auto"`` among backends that support ``system`` (higher wins)."""
        return 0

    @abc.abstractmethod
    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate the state and tangent basis; QR re-orthonormalisation (Benettin 1980)."""

    @abc.abstractmethod
    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate a reference and a perturbed trajectory, renormalising their distance."""


class BackendError(RuntimeError):
    """A backend cannot be found, is not installed, or cannot run a system."""


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, str | type[Backend]]:
    found: dict[str, str | type[Backend]] = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        try:
            cls = ep.load()
        except Exception as err:  # a broken plugin must not break lyapkit
            warnings.warn(f"lyapkit backend plugin {ep.name!r} failed to load: {err}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            warnings.warn(
                f"entry point {ep.name!r} is not a lyapkit Backend subclass", stacklevel=2
            )
            continue
        found[ep.name] = cls
    return found


def _load(name: str) -> type[Backend]:
    target = _registry()[name]
    if isinstance(target, str):
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
    return target


def backend_names() -> list[str]:
    """Names of all registered backends (built-in and plugins), installed or not."""
    return list(_registry())


def available_backends() -> list[str]:
    """Names of the registered backends whose dependencies are installed."""
    return [name for name in _registry() if _load(name).available()]


def get_backend(name: str | Backend, system: Map | None = None) -> Backend:
    """Resolve a backend by name (or ``"auto"``) for ``system``.

    ``"auto"`` picks the installed backend that supports ``system`` with the highest priority.
    Raises :class:`BackendError` naming the installed backends, or the extra to install.
    """
    if isinstance(name, Backend):
        backend = name
    elif name == "auto":
        candidates = [_load(n)() for n in available_backends()]
        candidates = [b for b in candidates if system is None or b.supports(system)]
        if not candidates:
            raise BackendError(f"no installed backend can run {system!r}")
        return max(candidates, key=lambda b: b.priority(system) if system is not None else 0)
    elif not isinstance(name, str) or name not in _registry():
        raise BackendError(f"backend must be 'auto' or one of {backend_names()}, got {name!r}")
    else:
        cls = _load(name)
        if not cls.available():
            hint = f"`pip install lyapkit[{cls.extra}]`" if cls.extra else str(cls.requires)
            raise BackendError(f"backend {name!r} is not installed; install it with {hint}")
        backend = cls()
    if system is not None and not backend.supports(system):
        able = [n for n in available_backends() if _load(n)().supports(system)]
        raise BackendError(
            f"backend {backend.name!r} cannot run {system!r}; backends that can: {able}"
        )
    return backend
