"""The backend protocol and registry.

A backend owns the hot loops. The core validates arguments and packs results; a backend runs the
tangent dynamics ``Q ← J_t Q`` with periodic QR re-orthonormalisation (or the two-trajectory twin
integration) over all ensemble members, and records the cumulative sums of ``log R_ii`` at the
requested post-transient step counts. Optional capabilities (``Backend.trajectory``: states and
Jacobians along a trajectory; ``Backend.ggn``: GGN products from parameter Jacobians;
``Backend.covariant``: covariant Lyapunov vectors by Ginelli's method) are methods with a default
that raises :class:`BackendError`; a backend offers one by overriding it. Built-in
backends live in the top-level ``backends`` package; third parties register a :class:`Backend`
subclass under the entry-point group ``lyapkit.backends``.
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lyapkit.maps.base import Map

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lyapkit.backends"
_BUILTIN = {
    "numpy": "lyapkit.backends.numpy_backend:NumpyBackend",
    "numba": "lyapkit.backends.numba_backend:NumbaBackend",
    "torch": "lyapkit.backends.torch_backend:TorchBackend",
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
        A direction that collapsed (``R_ii = 0`` exactly: the Jacobian is singular, to working
        precision, on the span of the basis) adds ``log 0 = −inf`` to its sum and the member goes
        on, its basis completed by any unit vector orthogonal to the others; this is not a
        blow-up.
    max_condition : (E,) float64
        Largest ``max_i R_ii / min_i R_ii`` seen at a re-orthonormalisation: a lower bound on the
        2-norm condition number of the un-normalised tangent basis. Re-orthonormalisations at
        which a direction collapsed are left out (their ratio is infinite whatever
        ``every``).
    blowup_step : (E,) int64
        The first step (1-based, counted from the start) after which the state or basis was not
        finite (NaN or ±inf, an ``R_ii`` included); −1 when it stayed finite.
    final_state : (E, n) float64
    final_basis : (E, n, k) float64
    max_separation : (E,) float64 or None
        Twin method only (None from ``tangent``, and from backends that do not track it): the
        largest ``d / max(1, ‖x‖∞)`` at a renormalisation after the transient, ``d = |y − x|``
        measured before ``y`` is pulled back and ``x`` the reference state then. The core warns
        when it leaves the linear range (``lyapkit.lyapunov.TwinSaturationWarning``).
    """

    cumulative: np.ndarray
    max_condition: np.ndarray
    blowup_step: np.ndarray
    final_state: np.ndarray
    final_basis: np.ndarray
    max_separation: np.ndarray | None = None


@dataclass(frozen=True)
class TrajectoryPlan:
    """A trajectory to record with its Jacobians: ``steps`` steps of every ensemble member.

    Attributes
    ----------
    x0 : (E, n) float64
        Initial states.
    inputs : (E or 1, steps, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    steps : int
        Steps integrated.
    first_jacobian : int
        The Jacobians ``J_t = ∂f/∂x (x_t, u_t)`` are kept for ``first_jacobian <= t < steps``.
    dtype, device : str or None
        Requested floating dtype and device (backends that cannot honour them raise).
    """

    x0: np.ndarray
    inputs: np.ndarray
    steps: int
    first_jacobian: int = 0
    dtype: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class TrajectoryRecord:
    """A recorded trajectory, float64 whatever the dtype computed in.

    Attributes
    ----------
    states : (E, steps + 1, n) float64
        ``x_0, …, x_steps`` (non-finite after a blow-up).
    jacobians : (E, steps − first_jacobian, n, n) float64
        ``J_t`` for ``t = first_jacobian, …, steps − 1``.
    """

    states: np.ndarray
    jacobians: np.ndarray


@dataclass(frozen=True)
class GGNPlan:
    """GGN products of a map's readouts ``y_t = C x_t + c`` (:func:`lyapkit.sensitivity.map_ggn`).

    Attributes
    ----------
    x0 : (E, n) float64
        Initial states.
    inputs : (E, T, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps); ``T`` steps are taken.
    parameters : tuple of str
        The parameters ``θ`` (names in ``Map.jacobian_parameters``), flattened in this order.
    size : int
        ``P``, the number of their entries.
    readout : (o, n) float64
        ``C``.
    readout_bias : (o,) float64
        ``c``.
    loss : {"mse", "cross_entropy"}
        The per-term loss whose data-set mean the GGN belongs to.
    all_outputs : bool
        Outputs after every step (``y_1 … y_T``), or after the last only (``y_T``).
    """

    x0: np.ndarray
    inputs: np.ndarray
    parameters: tuple[str, ...]
    size: int
    readout: np.ndarray
    readout_bias: np.ndarray
    loss: str
    all_outputs: bool

    @property
    def steps(self) -> int:
        """``T``."""
        return self.inputs.shape[1]

    @property
    def terms(self) -> int:
        """``N``, the number of loss terms: one per output element (mse) or output vector."""
        E, o = self.x0.shape[0], self.readout.shape[0]
        return E * (self.steps if self.all_outputs else 1) * (o if self.loss == "mse" else 1)

    def is_output(self, t: int) -> bool:
        """Whether the state after step ``t`` (0-based) is read out."""
        return self.all_outputs or t == self.steps - 1

    def output_curvature(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``(1/N) H_ℓ(y) z`` for outputs ``y`` (..., o) and output directions ``z`` (..., o, k).

        ``H_ℓ = 2 I`` (mse: per element ``(y − ŷ)²``) or ``diag(p) − p pᵀ`` with
        ``p = softmax(y)`` (cross-entropy); neither depends on the targets.
        """
        if self.loss == "mse":
            return (2.0 / self.terms) * z
        p = np.exp(y - y.max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True))[..., None]
        return p * (z - (p * z).sum(-2, keepdims=True)) / self.terms


@dataclass(frozen=True)
class CovariantPlan:
    """Covariant Lyapunov vectors to compute by Ginelli's method (:meth:`Backend.covariant`).

    Every member runs ``transient + steps + tail`` steps forward, ``J_s Q_s = Q_{s+1} R_s`` (thin
    QR with ``diag R_s > 0`` after every step). Post-transient step ``s`` counts from the end of
    the transient: ``x_s`` is the state then and ``Q_s`` the basis at it (before ``J_s``). The
    backward pass starts from ``C_{steps+tail} = coefficients0`` and iterates
    ``C_s = R_s⁻¹ C_{s+1}``, columns scaled to unit length, down to ``s = 0``; the CLVs are
    ``V_s = Q_s C_s`` (unit columns) at the kept steps.

    Attributes
    ----------
    x0 : (E, n) float64
        Initial states.
    basis0 : (E, n, k) float64
        Initial orthonormal tangent bases.
    coefficients0 : (E, k, k) float64
        Upper-triangular start of the backward pass: unit columns, non-zero diagonal.
    inputs : (E or 1, transient + steps + tail, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    transient, steps, tail : int
        Steps that align the forward basis; steps whose CLVs may be kept (``0 <= s < steps``);
        steps after them that align the backward coefficients (their ``R_s`` are kept too).
    keep : (K,) int64
        Ascending post-transient steps ``s < steps`` whose states and CLVs are returned.
    dtype, device : str or None
        Requested floating dtype and device (backends that cannot honour them raise).
    """

    x0: np.ndarray
    basis0: np.ndarray
    coefficients0: np.ndarray
    inputs: np.ndarray
    transient: int
    steps: int
    tail: int
    keep: np.ndarray
    dtype: str | None = None
    device: str | None = None

    @property
    def total(self) -> int:
        """All forward steps: ``transient + steps + tail``."""
        return self.transient + self.steps + self.tail


@dataclass(frozen=True)
class CovariantRecord:
    """What :meth:`Backend.covariant` returns, float64 whatever the dtype computed in.

    Attributes
    ----------
    vectors : (E, K, n, k) float64
        ``V_s`` at the kept steps: column ``i`` is the unit CLV ``v_i(x_s)`` (sign arbitrary).
    states : (E, K, n) float64
        ``x_s`` at the kept steps.
    log_stretch : (E, k) float64
        ``Σ_{0 <= s < steps} log (R_s)_ii``: the exponents times ``steps``.
    blowup_step : (E,) int64
        The first step (1-based, counted from the start) after which the state or an ``(R_s)_ii``
        was not finite, or an ``(R_s)_ii`` was 0 (a collapsed direction leaves ``R_s``
        singular); −1 when none. Such a member's vectors are NaN.
    """

    vectors: np.ndarray
    states: np.ndarray
    log_stretch: np.ndarray
    blowup_step: np.ndarray


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
    ``twin``, and optionally ``trajectory``, ``ggn`` and ``covariant``; ``priority`` ranks them for
    ``backend="auto"``.
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

    def estimated_seconds(self, system: Map, plan: TangentPlan) -> float | None:
        """Expected wall time of :meth:`tangent` or :meth:`twin` for ``plan``, start-up costs
        (compilation) included, or None without a cost model.

        ``backend="auto"`` runs the highest-priority backend unless another one expects to finish
        sooner (both must have a cost model): a short run is not worth a long compilation.
        """
        return None

    @abc.abstractmethod
    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate the state and tangent basis; QR re-orthonormalisation (Benettin 1980)."""

    @abc.abstractmethod
    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate a reference and a perturbed trajectory, renormalising their distance."""

    def trajectory(self, system: Map, plan: TrajectoryPlan, progress: Progress) -> TrajectoryRecord:
        """Record the states and the Jacobians ``J_t`` of every member (an optional capability).

        Backends that can override it; this default raises :class:`BackendError` naming the
        installed backends that can.
        """
        raise BackendError(_incapable(self, system, "trajectory"))

    def ggn(self, system: Map, plan: GGNPlan, vectors: np.ndarray | None = None) -> np.ndarray:
        """GGN products ``G V`` (``vectors`` (P, k) → (P, k)), or ``G`` (P, P) when ``vectors`` is
        None, from the map's analytic state and parameter Jacobians (an optional capability).

        ``G = (1/N) Σ J_yᵀ H_ℓ J_y`` over the outputs ``y`` of ``plan``
        (:meth:`GGNPlan.output_curvature`), ``J_y = C S_t`` with the sensitivities
        ``S_{t+1} = J_t S_t + ∂f/∂θ (x_t, u_t)``, ``S_0 = 0``.
        Backends that can override it; this default raises :class:`BackendError` naming the
        installed backends that can.
        """
        raise BackendError(f"{_incapable(self, system, 'ggn')}. {GGN_AUTODIFF_HINT}")

    def covariant(self, system: Map, plan: CovariantPlan, progress: Progress) -> CovariantRecord:
        """Covariant Lyapunov vectors by Ginelli's method (an optional capability; see
        :class:`CovariantPlan` for what to compute and :class:`CovariantRecord` for what to return).

        A backend runs the forward pass (the state and ``J_s Q_s = Q_{s+1} R_s``, keeping every
        post-transient ``R_s`` and the bases ``Q_s`` at ``plan.keep``) and the backward pass
        (``C_s = R_s⁻¹ C_{s+1}``, unit columns; ``V_s = Q_s C_s``) without returning to Python
        per step where it can (Ginelli et al. 2007, PRL 99, 130601); ``progress`` counts the
        forward steps. Backends that can override it; this default raises :class:`BackendError`
        naming the installed backends that can.
        """
        raise BackendError(_incapable(self, system, "covariant"))


class BackendError(RuntimeError):
    """A backend cannot be found, is not installed, or cannot run a system."""


GGN_AUTODIFF_HINT = (
    "GGN products from analytic parameter Jacobians run without autodiff on the numpy and numba "
    "backends; with torch, compute curvature by autodiff instead (lyapkit.curvature, torch.func), "
    "which full Hessians need in any case"
)


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, str | type[Backend]]:
    # importlib.metadata is imported here, on the first lookup, not with lyapkit: it costs about a
    # tenth of `import lyapkit`, which every `lyapkit` command (even `--help`) pays
    from importlib.metadata import entry_points

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


def _implements(backend: Backend | type[Backend], method: str | None) -> bool:
    """Whether ``backend`` overrides the optional protocol method ``method`` (None: any backend)."""
    cls = backend if isinstance(backend, type) else type(backend)
    return method is None or getattr(cls, method) is not getattr(Backend, method)


def _able(system: Map | None, method: str | None) -> list[str]:
    """The installed backends that run ``system`` (any when None) and implement ``method``."""
    return [
        n
        for n in available_backends()
        if _implements(_load(n), method) and (system is None or _load(n)().supports(system))
    ]


def _incapable(backend: Backend, system: Map | None, method: str) -> str:
    return (
        f"backend {backend.name!r} does not implement {method!r}; backends that can run "
        f"{system!r} with it: {_able(system, method)}"
    )


def get_backend(
    name: str | Backend,
    system: Map | None = None,
    method: str | None = None,
    plan: TangentPlan | None = None,
) -> Backend:
    """Resolve a backend by name (or ``"auto"``) for ``system``.

    ``"auto"`` picks the installed backend that supports ``system`` (and implements the optional
    protocol method ``method``, e.g. ``"trajectory"``, when given) with the highest priority,
    unless, for a ``plan``, another one expects to finish sooner
    (:meth:`Backend.estimated_seconds`). Raises :class:`BackendError` naming the installed
    backends, or the extra to install.
    """
    return choose_backend(name, system, method, plan)[0]


def _auto(system: Map | None, method: str | None, plan: TangentPlan | None) -> tuple[Backend, str]:
    candidates = [_load(n)() for n in _able(system, method)]
    if not candidates:
        needs = f" with {method!r}" if method else ""
        raise BackendError(f"no installed backend can run {system!r}{needs}")
    ranked = sorted(candidates, key=lambda b: -b.priority(system) if system is not None else 0)
    first = ranked[0]
    others = ", ".join(b.name for b in ranked[1:]) or "none"
    reason = f"auto: {first.name}, the preferred backend for this map (others able: {others})"
    if plan is None or system is None:
        return first, reason
    costs = {b.name: b.estimated_seconds(system, plan) for b in ranked}
    known = [b for b in ranked if costs[b.name] is not None]
    if costs[first.name] is None or len(known) < 2:
        return first, reason
    fastest = min(known, key=lambda b: costs[b.name])
    summary = ", ".join(f"{b.name} ~{costs[b.name]:.2g} s" for b in known)
    if fastest is first:
        return first, f"auto: {first.name}, expected to finish first ({summary})"
    return fastest, (
        f"auto: {fastest.name} instead of the preferred {first.name}, expected to finish first "
        f"({summary}; {first.name}'s estimate includes its start-up, e.g. compilation)"
    )


def choose_backend(
    name: str | Backend,
    system: Map | None = None,
    method: str | None = None,
    plan: TangentPlan | None = None,
) -> tuple[Backend, str]:
    """:func:`get_backend`, with the reason for the choice (recorded in results)."""
    if isinstance(name, str) and name == "auto":
        return _auto(system, method, plan)
    if isinstance(name, Backend):
        backend = name
    elif not isinstance(name, str) or name not in _registry():
        raise BackendError(f"backend must be 'auto' or one of {backend_names()}, got {name!r}")
    else:
        cls = _load(name)
        if not cls.available():
            hint = f"`pip install lyapkit[{cls.extra}]`" if cls.extra else str(cls.requires)
            raise BackendError(f"backend {name!r} is not installed; install it with {hint}")
        backend = cls()
    if system is not None and not backend.supports(system):
        raise BackendError(
            f"backend {backend.name!r} cannot run {system!r}; backends that can: "
            f"{_able(system, method)}"
        )
    if not _implements(backend, method):
        raise BackendError(_incapable(backend, system, method))
    return backend, "requested"
