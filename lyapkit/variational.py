"""Variational terms: products of Jacobians along a trajectory, their singular values and norms.

The variational term from step ``s`` to step ``r`` of a trajectory ``x_{t+1} = f(x_t, u_t)`` is

    V_{r:s} = J_{r−1} J_{r−2} ⋯ J_s = ∂x_r / ∂x_s,        J_t = ∂f/∂x (x_t, u_t).

Over long spans its entries over- or underflow and a plain SVD of the explicit product loses every
singular value below ``ε σ_1``. :func:`lyapkit.variational_term` therefore never forms the
product: it carries a graded QR factorisation with the row scales in logarithms and finishes with
a one-sided Jacobi SVD on the graded rows, which keeps every singular value to high relative
accuracy however far apart they are (see ``docs/theory/variational.md``).
:func:`lyapkit.variational_profile` gives ``log ‖V_{r:r−ℓ}‖₂`` for every lag ``ℓ`` in one
backward sweep.

The backend records the trajectory and its Jacobians (``Backend.trajectory``); the graded QR
accumulation and the backward sweep are Python loops over time in numpy, batched over the ensemble
members (one LAPACK QR, or one matrix product, of all members per step).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._checks import integer
from lyapkit.backend import Backend, TrajectoryPlan, get_backend
from lyapkit.lyapunov import (
    NonFiniteTrajectoryWarning,
    _initial_states,
    _input_sequence,
)
from lyapkit.maps.base import Map
from lyapkit.progress import Progress, progress_bar
from lyapkit.recurrent import RecurrentNetwork, as_system

log = logging.getLogger(__name__)

#: Default bound (bytes) on the stored trajectory and Jacobians: 2 GiB.
MAX_MEMORY = 2**31
#: One-sided Jacobi stops when every pair of rows has ``|cos angle| <= JACOBI_TOL_FACTOR · n · ε``.
JACOBI_TOL_FACTOR = 4.0
#: Sweeps after which one-sided Jacobi gives up (it converges quadratically, in a few sweeps).
JACOBI_MAX_SWEEPS = 60
#: Seed of the fixed random orthogonal start basis ``Q₀`` (see :func:`lyapkit.variational_term`).
BASIS_SEED = 0

_EPS = float(np.finfo(np.float64).eps)
#: ``log σ_1`` range in which the explicit product is representable in float64: no entry overflows
#: (partial sums stay below ``n σ_1``) and the largest entries are normal numbers with full
#: precision.
_LOG_MAX = math.log(float(np.finfo(np.float64).max))
_LOG_MIN = math.log(float(np.finfo(np.float64).tiny) / _EPS)


@dataclass(frozen=True, repr=False)
class VariationalTerm:
    """The singular value decomposition ``V = U diag(σ) Wᵀ`` of ``V = J_{stop−1} ⋯ J_start``.

    What :func:`lyapkit.variational_term` returns: the variational term
    ``V = ∂x_stop/∂x_start`` of ``x_{t+1} = f(x_t, u_t)``, ``J_t = ∂f/∂x (x_t, u_t)``, so that
    ``V w_i = σ_i u_i``, and the finite-time exponents ``log σ_i / (stop − start)``.
    Arrays have a leading ensemble axis when ``x0`` was ``(E, n)`` or ``inputs`` ``(E, T, m)``.

    Parameters
    ----------
    log_singular_values : (..., n) float64
        ``log σ_i``, descending (``−inf`` where ``V`` is exactly singular).
    finite_time_exponents : (..., n) float64
        ``log σ_i / (stop − start)``, in nats per step.
    right_singular_vectors : (..., n, n) float64
        Column ``i`` is ``w_i``: the initial perturbation (at step ``start``) stretched by ``σ_i``.
    left_singular_vectors : (..., n, n) float64
        Column ``i`` is ``u_i = V w_i / σ_i``: where it points at step ``stop``.
    matrix : (..., n, n) float64 or None
        The explicit product ``V``, when it is representable in float64 for every member that
        stayed finite (``σ_1 = 0`` or ``ε⁻¹·tiny < σ_1 < max/n``); None otherwise. NaN for
        members that blew up.
    start, stop : int
        The span: steps ``start ≤ t < stop`` of the trajectory from ``x_0``.
    dim : int
        State dimension ``n``.
    backend, system, jacobian_method : str
        Backend used, ``repr`` of the map and how its Jacobian was computed.

    See Also
    --------
    lyapkit.variational_term : Computes it.
    lyapkit.VariationalProfile : ``log ‖V‖₂`` over the lag.

    Examples
    --------
    ``diag(½, 2)`` over 10 steps: ``σ = 2¹⁰, 2⁻¹⁰``, the expanding direction first:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> system = lk.LinearMap(np.diag([0.5, 2.0]))
    >>> term = lk.variational_term(system, np.zeros(2), stop=10, backend="numpy")
    >>> np.round(term.log_singular_values / np.log(2), 6), np.round(term.finite_time_exponents, 3)
    (array([ 10., -10.]), array([ 0.693, -0.693]))
    >>> np.round(np.abs(term.right_singular_vectors), 6)  # column i is w_i
    array([[0., 1.],
           [1., 0.]])
    >>> bool(np.allclose(term.matrix, np.diag([0.5**10, 2.0**10]))), term.ensemble
    (True, None)
    """

    log_singular_values: np.ndarray
    finite_time_exponents: np.ndarray
    right_singular_vectors: np.ndarray
    left_singular_vectors: np.ndarray
    matrix: np.ndarray | None
    start: int
    stop: int
    dim: int
    backend: str
    system: str
    jacobian_method: str

    @property
    def ensemble(self) -> int | None:
        """Number of members, or None without an ensemble axis."""
        return self.log_singular_values.shape[0] if self.log_singular_values.ndim == 2 else None

    def __repr__(self) -> str:
        values = np.array2string(self.log_singular_values, precision=6, threshold=20)
        return (
            f"VariationalTerm(log_singular_values={values}, start={self.start}, "
            f"stop={self.stop}, backend={self.backend!r}, system={self.system})"
        )

    def to_xarray(self) -> Any:
        """The result as an ``xarray.Dataset`` (needs xarray).

        Returns
        -------
        xarray.Dataset
            Variables ``log_singular_value``, ``finite_time_exponent``,
            ``right_singular_vector``, ``left_singular_vector`` (and ``matrix`` when it is not
            None) over the dims ``index`` (singular value), ``component``, ``row``, ``column``
            and, for an ensemble, ``member``; the span, map and backend as attributes.
        """
        import xarray as xr

        from lyapkit import __version__

        lead = ("member",) if self.ensemble is not None else ()

        def var(dims, data, long_name, units):
            return xr.Variable(dims, data, {"long_name": long_name, "units": units})

        data = {
            "log_singular_value": var(
                (*lead, "index"),
                self.log_singular_values,
                "natural logarithm of the singular value of the variational term",
                "1",
            ),
            "finite_time_exponent": var(
                (*lead, "index"),
                self.finite_time_exponents,
                "finite-time Lyapunov exponent (log singular value per step)",
                "1/step",
            ),
            "right_singular_vector": var(
                (*lead, "component", "index"),
                self.right_singular_vectors,
                "right singular vector (perturbation at the start of the span)",
                "1",
            ),
            "left_singular_vector": var(
                (*lead, "component", "index"),
                self.left_singular_vectors,
                "left singular vector (perturbation at the end of the span)",
                "1",
            ),
        }
        if self.matrix is not None:
            data["matrix"] = var(
                (*lead, "row", "column"),
                self.matrix,
                "variational term (product of Jacobians)",
                "1",
            )
        n = self.dim
        coords = {
            "index": var(("index",), np.arange(1, n + 1), "singular value index", "1"),
            "component": var(("component",), np.arange(n), "state component", "1"),
        }
        if self.ensemble is not None:
            coords["member"] = var(("member",), np.arange(self.ensemble), "ensemble member", "1")
        attrs = {
            "title": "variational term",
            "start": self.start,
            "stop": self.stop,
            "system": self.system,
            "jacobian_method": self.jacobian_method,
            "backend": self.backend,
            "lyapkit_version": __version__,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


@dataclass(frozen=True, repr=False)
class VariationalProfile:
    """``log ‖V_{stop:stop−ℓ}‖₂`` over the lag ``ℓ``, and its exponential rate.

    What :func:`lyapkit.variational_profile` returns, with the least-squares line::

        log ‖V_{stop:stop−ℓ}‖₂ ≈ intercept + rate · ℓ,    V_{stop:stop−ℓ} = J_{stop−1} ⋯ J_{stop−ℓ}.

    Arrays have a leading ensemble axis when ``x0`` was ``(E, n)`` or ``inputs`` ``(E, T, m)``.

    Parameters
    ----------
    lags : (L,) int64
        ``ℓ = 1, …, stop``.
    log_norm : (..., L) float64
        ``log ‖J_{stop−1} ⋯ J_{stop−ℓ}‖₂``: how much a perturbation at step ``stop − ℓ`` can
        grow by step ``stop`` (and a gradient at ``stop`` when propagated back to ``stop − ℓ``).
    rate, intercept : float or (E,) float64
        Least-squares line ``log_norm ≈ intercept + rate · ℓ``; ``rate`` is in nats per step
        (``−inf``, and ``intercept`` NaN, when the product vanishes exactly at some lag).
    stop, dim : int
        End of the span and state dimension.
    backend, system, jacobian_method : str
        Backend used, ``repr`` of the map and how its Jacobian was computed.

    See Also
    --------
    lyapkit.variational_profile : Computes it.
    lyapkit.VariationalTerm : The full singular value decomposition over one span.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> profile = lk.variational_profile(
    ...     lk.LinearMap(np.diag([0.5, 2.0])), np.zeros(2), stop=5, backend="numpy")
    >>> profile.lags, np.round(profile.log_norm / np.log(2), 6)  # ‖V‖₂ = 2^ℓ
    (array([1, 2, 3, 4, 5]), array([1., 2., 3., 4., 5.]))
    >>> round(profile.rate, 6), profile.ensemble  # log 2
    (0.693147, None)
    """

    lags: np.ndarray
    log_norm: np.ndarray
    rate: float | np.ndarray
    intercept: float | np.ndarray
    stop: int
    dim: int
    backend: str
    system: str
    jacobian_method: str

    @property
    def ensemble(self) -> int | None:
        """Number of members, or None without an ensemble axis."""
        return self.log_norm.shape[0] if self.log_norm.ndim == 2 else None

    def __repr__(self) -> str:
        rate = np.array2string(np.asarray(self.rate), precision=6, threshold=10)
        return (
            f"VariationalProfile(rate={rate}, stop={self.stop}, backend={self.backend!r}, "
            f"system={self.system})"
        )

    def to_xarray(self) -> Any:
        """The result as an ``xarray.Dataset`` (needs xarray).

        Returns
        -------
        xarray.Dataset
            Variables ``log_norm`` over the dim ``lag`` (and ``member`` for an ensemble),
            ``rate`` and ``intercept``; the span, map and backend as attributes.
        """
        import xarray as xr

        from lyapkit import __version__

        lead = ("member",) if self.ensemble is not None else ()

        def var(dims, data, long_name, units):
            return xr.Variable(dims, data, {"long_name": long_name, "units": units})

        data = {
            "log_norm": var(
                (*lead, "lag"),
                self.log_norm,
                "natural logarithm of the spectral norm of the variational term",
                "1",
            ),
            "rate": var(lead, self.rate, "least-squares slope of log_norm over the lag", "1/step"),
            "intercept": var(lead, self.intercept, "least-squares intercept of log_norm", "1"),
        }
        coords = {"lag": var(("lag",), self.lags, "steps back from stop", "step")}
        if self.ensemble is not None:
            coords["member"] = var(("member",), np.arange(self.ensemble), "ensemble member", "1")
        attrs = {
            "title": "variational term norm profile",
            "stop": self.stop,
            "system": self.system,
            "jacobian_method": self.jacobian_method,
            "backend": self.backend,
            "lyapkit_version": __version__,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Plot ``log ‖V‖₂`` against the lag with the fitted line (dashed), one curve per member.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw in (default the current axes).
        **kwargs
            Passed to ``ax.plot`` for the curves.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn in.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        curves = np.atleast_2d(self.log_norm)
        rates, intercepts = np.atleast_1d(self.rate), np.atleast_1d(self.intercept)
        for curve, rate, intercept in zip(curves, rates, intercepts, strict=True):
            (line,) = ax.plot(self.lags, curve, **kwargs)
            ax.plot(
                self.lags, intercept + rate * self.lags, color=line.get_color(), lw=0.6, ls="--"
            )
        ax.set_xlabel("lag ℓ (steps before stop)")
        ax.set_ylabel("log ‖V‖₂")
        ax.set_title(f"variational term norm: {self.system}", fontsize="small")
        return ax


def _round_robin(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rounds of disjoint pairs ``(i < j)`` covering every pair once (the circle method)."""
    m = n + n % 2  # an odd n gets a dummy index n, whose pairs are dropped
    ring = list(range(1, m))
    rounds = []
    for _ in range(m - 1):
        order = [0, *ring]
        pairs = [sorted((order[k], order[m - 1 - k])) for k in range(m // 2)]
        pairs = np.array([p for p in pairs if p[1] < n], dtype=np.intp).reshape(-1, 2)
        rounds.append((pairs[:, 0], pairs[:, 1]))
        ring = ring[-1:] + ring[:-1]
    return rounds


def _normalised_rows(rows: np.ndarray, log_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rows = e^{-log_factor} t_i`` → ``(c_i, x_i)`` with ``t_i = e^{c_i} x_i``, ``|x_i| = 1``.

    The norm is taken after scaling by the largest entry, so no square over- or underflows. A zero
    row gets ``c_i = −inf`` and stays zero.
    """
    big = np.abs(rows).max(-1)
    rows = rows / np.where(big > 0, big, 1.0)[..., None]
    norm = np.sqrt((rows * rows).sum(-1))  # 1 ≤ norm ≤ √n, or 0
    with np.errstate(divide="ignore"):
        c = log_factor + np.log(big) + np.log(norm)
    return c, rows / np.where(norm > 0, norm, 1.0)[..., None]


def _graded_product(jacobians: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, ...]:
    """Graded QR factorisation ``P Q₀ = Q diag(e^c) X`` of ``P = J_{T−1} ⋯ J_0``.

    ``jacobians`` is ``(E, T, n, n)``; returns ``Q`` (E, n, n) orthogonal, ``c`` (E, n) and ``X``
    (E, n, n) upper triangular with unit rows. From ``Q = Q₀, c = 0, X = I`` each step factors
    ``J_t Q = Q' R'`` (Householder, LAPACK) and forms ``R' diag(e^c) X`` row by row:

        row_i = e^{m_i} Σ_{k≥i} R'_ik e^{c_k − m_i} x_k,     m_i = max_{k≥i} c_k,

    so no factor exceeds 1; renormalising the rows gives the new ``(c, X)``.
    """
    E, T, n, _ = jacobians.shape
    Q = np.repeat(basis[None], E, axis=0)
    c = np.zeros((E, n))
    X = np.repeat(np.eye(n)[None], E, axis=0)
    for t in range(T):
        Q, R = np.linalg.qr(jacobians[:, t] @ Q)
        m = np.maximum.accumulate(c[:, ::-1], axis=1)[:, ::-1]
        m = np.where(np.isfinite(m), m, 0.0)  # rows i.. all zero: any finite factor will do
        # Below the diagonal R' is zero, and min(·, 0) keeps those factors finite.
        weights = R * np.exp(np.minimum(c[:, None, :] - m[:, :, None], 0.0))
        c, X = _normalised_rows(weights @ X, m)
    return Q, c, X


def _jacobi_rows(c: np.ndarray, X: np.ndarray, Q: np.ndarray) -> None:
    """One-sided Jacobi SVD of ``B = diag(e^c) X`` on its rows, in place; also rotates ``Q``.

    For rows ``t_i = e^{c_i} x_i`` and ``t_j = e^{c_j} x_j`` (``|x| = 1``, ordered so that
    ``c_i ≥ c_j``) with ``δ = e^{c_j − c_i} ≤ 1`` and ``ρ = x_i · x_j``, the rotation that makes
    them orthogonal (Hestenes: ``ζ = (|t_j|² − |t_i|²) / (2 t_i·t_j)``,
    ``t = sign ζ / (|ζ| + √(1 + ζ²))``, ``t_i ← cs t_i − sn t_j``, ``t_j ← sn t_i + cs t_j``) is
    computed from scaled quantities that cannot overflow:

        δζ = (δ² − 1) / (2ρ),   t/δ = sign(δζ) / (|δζ| + √(δ² + (δζ)²)),   t = δ (t/δ),
        cs = 1/√(1 + t²),   t_i ← e^{c_i} cs (x_i − δ t x_j),   t_j ← e^{c_j} cs ((t/δ) x_i + x_j),

    and the rows are renormalised into ``c``. The columns ``i, j`` of ``Q`` get the same rotation
    (``sn = cs t``), so ``Q B`` is unchanged. Sweeps of disjoint pairs (vectorised per round) run
    until every ``|ρ| ≤ JACOBI_TOL_FACTOR · n · ε``. The rows are then orthogonal: ``x_i`` are
    right singular vectors of ``B``, the columns of ``Q`` left ones, and ``σ_i = e^{c_i}``.
    One-sided Jacobi is accurate to about ``ε κ(X)`` in each ``σ_i`` however graded ``c`` is
    (Demmel & Veselić 1992).
    """
    n = c.shape[1]
    tol = JACOBI_TOL_FACTOR * n * _EPS
    rounds = _round_robin(n)
    for _ in range(JACOBI_MAX_SWEEPS):
        rotated = False
        for i, j in rounds:
            rho = (X[:, i] * X[:, j]).sum(-1)  # (E, pairs)
            act = np.abs(rho) > tol
            if not act.any():
                continue
            rotated = True
            # hi/lo: the row with the larger / smaller scale of each pair.
            swap = c[:, j] > c[:, i]
            hi, lo = np.where(swap, j, i), np.where(swap, i, j)
            c_hi, c_lo = np.take_along_axis(c, hi, 1), np.take_along_axis(c, lo, 1)
            x_hi = np.take_along_axis(X, hi[..., None], 1)
            x_lo = np.take_along_axis(X, lo[..., None], 1)
            q_hi = np.take_along_axis(Q, hi[:, None, :], 2)
            q_lo = np.take_along_axis(Q, lo[:, None, :], 2)
            delta = np.exp(np.where(act, c_lo - c_hi, 0.0))
            dz = (delta * delta - 1.0) / (2.0 * np.where(act, rho, 1.0))
            t_d = np.where(dz >= 0, 1.0, -1.0) / (np.abs(dz) + np.sqrt(delta * delta + dz * dz))
            t_d = np.where(act, t_d, 0.0)  # no rotation
            t = delta * t_d
            cs = 1.0 / np.sqrt(1.0 + t * t)
            sn = cs * t
            new_c_hi, new_x_hi = _normalised_rows(
                cs[..., None] * (x_hi - (delta * t)[..., None] * x_lo), c_hi
            )
            new_c_lo, new_x_lo = _normalised_rows(
                cs[..., None] * (t_d[..., None] * x_hi + x_lo), c_lo
            )
            keep = ~act
            for index, new_c, new_x, old_c, old_x in (
                (hi, new_c_hi, new_x_hi, c_hi, x_hi),
                (lo, new_c_lo, new_x_lo, c_lo, x_lo),
            ):
                np.put_along_axis(c, index, np.where(keep, old_c, new_c), 1)
                np.put_along_axis(X, index[..., None], np.where(keep[..., None], old_x, new_x), 1)
            np.put_along_axis(Q, hi[:, None, :], cs[:, None] * q_hi - sn[:, None] * q_lo, 2)
            np.put_along_axis(Q, lo[:, None, :], sn[:, None] * q_hi + cs[:, None] * q_lo, 2)
        if not rotated:
            return
    log.warning(
        "one-sided Jacobi did not converge in %d sweeps; singular values may be inaccurate",
        JACOBI_MAX_SWEEPS,
    )


def _start_basis(n: int) -> np.ndarray:
    """A fixed random orthogonal ``(n, n)`` matrix (Haar), the start basis ``Q₀``."""
    Q, R = np.linalg.qr(np.random.default_rng(BASIS_SEED).standard_normal((n, n)))
    return Q * np.where(np.diag(R) < 0, -1.0, 1.0)


def _record(
    system: Map,
    x0: Any,
    inputs: Any,
    start: int,
    stop: int | None,
    *,
    backend: str | Backend,
    dtype: str | None,
    device: str | None,
    max_memory: int,
    progress: bool | Progress | None,
    minimum_span: int,
) -> tuple[Backend, np.ndarray, np.ndarray, bool, int]:
    """Validate, run ``Backend.trajectory`` and check it; shared by both public functions.

    Returns the backend, the Jacobians ``J_start … J_{stop−1}`` (E, stop − start, n, n) with those
    of members that blew up replaced by the identity, a mask of those members, whether the result
    gets an ensemble axis, and ``stop``.
    """
    if not isinstance(system, Map):
        raise TypeError(
            f"system must be a lyapkit Map, got {type(system).__name__}; wrap callables with "
            "lyapkit.from_numpy, lyapkit.from_numba or lyapkit.from_torch"
        )
    system.prepare()
    n = system.dim
    if np.ndim(x0) not in (1, 2):
        raise ValueError(f"x0 must have shape ({n},) or (ensemble, {n}), got {np.shape(x0)}")
    if inputs is not None and np.ndim(inputs) not in (2, 3):
        raise ValueError(
            f"inputs must have shape (T, {system.input_dim}) or (ensemble, T, "
            f"{system.input_dim}), got {np.shape(inputs)}"
        )
    start = integer(start, "start", 0)
    if stop is None:
        if inputs is None:
            raise ValueError(
                "stop is required when no inputs are given (it defaults to the number of input "
                "steps)"
            )
        stop = int(np.shape(inputs)[-2])
    stop = integer(stop, "stop", 1)
    if stop < start + minimum_span:
        raise ValueError(
            f"stop must be at least start + {minimum_span} = {start + minimum_span}, got "
            f"stop={stop} (start={start})"
        )
    if inputs is not None and stop > np.shape(inputs)[-2]:
        raise ValueError(
            f"stop={stop} exceeds the {np.shape(inputs)[-2]} time steps of inputs (the map needs "
            f"u_0 … u_(stop−1))"
        )
    batched = np.ndim(x0) == 2 or np.ndim(inputs) == 3
    E = 1  # members: rows of x0, else input sequences
    if batched:
        E = np.shape(x0)[0] if np.ndim(x0) == 2 else np.shape(inputs)[0]
    X0 = _initial_states(system, x0, E, np.random.default_rng(0))  # the rng is not used
    U = _input_sequence(system, inputs, E, stop)
    max_memory = integer(max_memory, "max_memory", 1)
    need = 8 * E * ((stop - start) * n * n + (stop + 1) * n)
    if need > max_memory:
        raise ValueError(
            f"the trajectory and the Jacobians of {E} member(s) × {stop - start} steps × "
            f"{n}×{n} need {need / 2**30:.3g} GiB, more than max_memory={max_memory} bytes; "
            f"shorten the span (start, stop), use fewer members, or raise max_memory"
        )
    plan = TrajectoryPlan(X0, U, stop, start, dtype, device)
    chosen = get_backend(backend, system, "trajectory", plan)
    meter = progress_bar(progress, stop, f"trajectory {system.name}")
    try:
        record = chosen.trajectory(system, plan, meter)
    finally:
        meter.close()
    jacobians = record.jacobians
    bad_state = ~np.isfinite(record.states[:, :stop]).all(-1)  # x_0 … x_{stop−1}: (E, stop)
    bad_jacobian = ~np.isfinite(jacobians).all((-1, -2))  # (E, stop − start)
    blown = bad_state.any(1) | bad_jacobian.any(1)
    if blown.any():
        first = np.where(bad_state.any(1), bad_state.argmax(1), stop)
        first = np.minimum(
            first, np.where(bad_jacobian.any(1), start + bad_jacobian.argmax(1), first)
        )
        where = ", ".join(f"member {e} at step {first[e]}" for e in np.flatnonzero(blown))
        warnings.warn(
            f"{system.name}: the trajectory or its Jacobian became non-finite ({where}); the "
            f"results of these members are NaN",
            NonFiniteTrajectoryWarning,
            stacklevel=3,
        )
        jacobians[blown] = np.eye(n)
    return chosen, jacobians, blown, batched, stop


def variational_term(
    system: Map | RecurrentNetwork,
    x0: Any,
    inputs: Any = None,
    start: int = 0,
    stop: int | None = None,
    *,
    backend: str | Backend = "auto",
    dtype: str | None = None,
    device: str | None = None,
    max_memory: int = MAX_MEMORY,
    progress: bool | Progress | None = None,
) -> VariationalTerm:
    """Singular values and vectors of ``V = J_{stop−1} ⋯ J_start`` along a trajectory, stably.

    ``J_t = ∂f/∂x (x_t, u_t)`` along ``x_{t+1} = f(x_t, u_t)`` from ``x_0 = x0``, so that
    ``V = ∂x_stop / ∂x_start`` maps a perturbation at step ``start`` to step ``stop``. The
    product is never formed. Starting from a fixed random orthogonal ``Q₀`` (seed
    ``BASIS_SEED``), the graded QR factorisation

        V Q₀ = Q diag(e^c) X        (Q orthogonal, X upper triangular with unit rows)

    is carried step by step with the row scales ``c`` in logarithms: ``J_t Q = Q' R'``, then
    ``R' diag(e^c) X`` row by row with factors that never exceed 1 (the Benettin QR recursion of
    Lyapunov exponents [1]_, keeping the whole triangular factor). One-sided Jacobi on the rows
    of ``diag(e^c) X``, in the same log-scaled form, then gives ``V = U diag(σ) Wᵀ`` and
    ``log σ_i`` directly. Each ``σ_i`` is accurate to about ``ε κ(X)`` relative,
    whatever ``σ_1/σ_n`` is (Demmel & Veselić 1992 [2]_), and ``X`` is well conditioned when the
    rows are graded in descending order, which a generic ``Q₀`` ensures (Stewart 1995 [3]_ pivots
    instead; Oliveira & Stewart 2000 [4]_). With ``Q₀ = I`` a map with an invariant contracting
    coordinate, e.g. ``diag(½, 2)``, would keep the rows in ascending order and lose the small
    singular value. Over thousands of steps, with singular values far outside the float64
    range, ``log σ_i`` comes out with a relative error of about ``1e-13``.

    Parameters
    ----------
    system : lyapkit.Map or lyapkit.RecurrentNetwork
        A built-in map, a wrapped user map, or a recurrent network with ``as_map()`` (lyapkit's
        models, a PyTorch RNN wrapped by :func:`lyapkit.adapt`), whose map is used.
    x0 : array (n,) or (ensemble, n)
        Initial state ``x_0`` (per member for an ensemble).
    inputs : array (T, m) or (ensemble, T, m), optional
        Inputs ``u_t`` of a driven map (zero when omitted); autonomous maps take none.
    start : int, default 0
        First step of the span ``start ≤ t < stop`` (``0 ≤ start < stop``).
    stop : int, optional
        End of the span; defaults to ``T`` and is required without inputs.
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` or a backend implementing ``trajectory`` (numpy, numba, torch).
    dtype : str, optional
        Dtype of the trajectory (as in :func:`lyapkit.lyapunov_spectrum`); the factorisation
        always runs in float64 numpy.
    device : str, optional
        Device of the trajectory (as in :func:`lyapkit.lyapunov_spectrum`).
    max_memory : int, default 2**31
        Bound in bytes on the stored trajectory and Jacobians,
        ``8 E ((stop − start) n² + (stop + 1) n)`` for ``E`` members (default 2 GiB).
    progress : bool or lyapkit.Progress, optional
        Progress bar over the trajectory.

    Returns
    -------
    lyapkit.VariationalTerm
        With a leading ensemble axis when ``x0`` is ``(E, n)`` or ``inputs`` is ``(E, T, m)``.
        The graded recursion is a Python loop over the span, batched over members (one LAPACK QR
        of all members per step).

    Raises
    ------
    TypeError, ValueError
        For a wrong system, shapes or values (naming the argument), or when the Jacobians would
        exceed ``max_memory``.
    lyapkit.BackendError
        For a backend that is unknown, not installed, or cannot run ``system`` or ``trajectory``.

    Warns
    -----
    lyapkit.NonFiniteTrajectoryWarning
        When a member's trajectory or Jacobian becomes non-finite (its results are NaN).

    See Also
    --------
    lyapkit.variational_profile : ``log ‖V‖₂`` for every lag in one sweep.
    lyapkit.lyapunov_spectrum : The long-span limit ``log σ_i / (stop − start) → λ_i``.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic
       exponents for smooth dynamical systems and for Hamiltonian systems; a method for
       computing all of them", Meccanica 15, 9–30, 1980.
    .. [2] J. Demmel, K. Veselić, "Jacobi's method is more accurate than QR", SIAM Journal on
       Matrix Analysis and Applications 13, 1204–1245, 1992.
    .. [3] G. W. Stewart, "On graded QR decompositions of products of matrices", Electronic
       Transactions on Numerical Analysis 3, 39–49, 1995.
    .. [4] S. Oliveira, D. E. Stewart, "Exponential splittings of products of matrices and
       accurately computing singular values of long products", Linear Algebra and its
       Applications 309, 175–190, 2000.

    Examples
    --------
    Over 2000 steps of the Hénon map the singular values leave the float64 range (so
    ``matrix`` is None) and the finite-time exponents approach ``λ = 0.419, −1.623``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> term = lk.variational_term(
    ...     lk.Henon(), np.array([0.1, 0.1]), start=100, stop=2100, backend="numpy")
    >>> term.matrix is None, bool(term.log_singular_values[0] > 709)
    (True, True)
    >>> bool(np.allclose(term.finite_time_exponents, [0.419, -1.623], atol=0.03))
    True
    """
    system = as_system(system)
    chosen, jacobians, blown, batched, stop = _record(
        system,
        x0,
        inputs,
        start,
        stop,
        backend=backend,
        dtype=dtype,
        device=device,
        max_memory=max_memory,
        progress=progress,
        minimum_span=1,
    )
    basis = _start_basis(system.dim)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        Q, c, X = _graded_product(jacobians, basis)
        _jacobi_rows(c, X, Q)
    order = np.argsort(-c, axis=1, kind="stable")
    c = np.take_along_axis(c, order, 1)
    U = np.take_along_axis(Q, order[:, None, :], 2)
    W = basis @ np.swapaxes(np.take_along_axis(X, order[..., None], 1), 1, 2)
    c[blown], U[blown], W[blown] = np.nan, np.nan, np.nan
    top = c[~blown, 0]  # log σ_1; −inf: V = 0 exactly, which is representable
    matrix = None
    if np.all(((top > _LOG_MIN) | (top == -np.inf)) & (top < _LOG_MAX - math.log(system.dim))):
        with np.errstate(under="ignore"):
            matrix = (U * np.exp(c)[:, None, :]) @ np.swapaxes(W, 1, 2)
    squeeze = (lambda a: a) if batched else (lambda a: a[0])
    return VariationalTerm(
        log_singular_values=squeeze(c),
        finite_time_exponents=squeeze(c / (stop - start)),
        right_singular_vectors=squeeze(W),
        left_singular_vectors=squeeze(U),
        matrix=None if matrix is None else squeeze(matrix),
        start=start,
        stop=stop,
        dim=system.dim,
        backend=chosen.name,
        system=repr(system),
        jacobian_method=system.jacobian_method,
    )


def _backward_log_norms(jacobians: np.ndarray) -> np.ndarray:
    """``log ‖J_{T−1} ⋯ J_{T−ℓ}‖₂`` for ``ℓ = 1 … T`` (E, T), overwriting ``jacobians``.

    One backward sweep ``M_ℓ = M_{ℓ−1} J_{T−ℓ}`` (``M_0 = I``) keeps ``M_ℓ = e^{s_ℓ} M̃_ℓ`` with
    ``max |M̃_ℓ| = 1``, stores ``M̃_ℓ`` in place of ``J_{T−ℓ}``, and ends with one batched
    ``np.linalg.svd(compute_uv=False)``: ``log ‖M_ℓ‖₂ = s_ℓ + log σ_1(M̃_ℓ)``.
    """
    E, T, n, _ = jacobians.shape
    M = np.repeat(np.eye(n)[None], E, axis=0)
    scale = np.zeros(E)
    scales = np.empty((E, T))
    for lag in range(1, T + 1):
        M = M @ jacobians[:, T - lag]
        big = np.abs(M).max((-1, -2))
        scale = scale + np.log(big)  # −inf once the product vanishes; M̃ then stays zero
        M = M / np.where(big > 0, big, 1.0)[:, None, None]
        jacobians[:, T - lag] = M
        scales[:, lag - 1] = scale
    return scales + np.log(np.linalg.svd(jacobians, compute_uv=False)[:, ::-1, 0])


def variational_profile(
    system: Map | RecurrentNetwork,
    x0: Any,
    inputs: Any = None,
    *,
    stop: int | None = None,
    backend: str | Backend = "auto",
    dtype: str | None = None,
    device: str | None = None,
    max_memory: int = MAX_MEMORY,
    progress: bool | Progress | None = None,
) -> VariationalProfile:
    """``log ‖V_{stop:stop−ℓ}‖₂`` for every lag ``ℓ = 1 … stop``, and its exponential rate.

    ``V_{stop:stop−ℓ} = J_{stop−1} ⋯ J_{stop−ℓ}`` is how a perturbation at step ``stop − ℓ``
    reaches step ``stop`` (and ``Vᵀ`` how a gradient at ``stop`` reaches step ``stop − ℓ`` in
    backpropagation through time). All lags come from one backward sweep
    ``M_ℓ = M_{ℓ−1} J_{stop−ℓ}`` with the scale kept in logarithms, and one batched SVD of the
    rescaled ``M_ℓ`` at the end (the norm needs only the largest singular value, which
    rescaling keeps to full relative accuracy). The rate is the least-squares slope

        rate = Σ_ℓ (ℓ − ℓ̄)(y_ℓ − ȳ) / Σ_ℓ (ℓ − ℓ̄)²,   y_ℓ = log ‖V_{stop:stop−ℓ}‖₂,

    in nats per step: ``≈ λ_1`` over long spans; ``≈ log r`` for a weakly coupled residual RNN
    with ``R = r·I`` and small ``γ`` [1]_.

    Parameters
    ----------
    system : lyapkit.Map or lyapkit.RecurrentNetwork
        As in :func:`lyapkit.variational_term`.
    x0 : array (n,) or (ensemble, n)
        Initial state ``x_0`` (per member for an ensemble).
    inputs : array (T, m) or (ensemble, T, m), optional
        Inputs ``u_t`` of a driven map (zero when omitted).
    stop : int, optional
        End of the trajectory (at least 2); defaults to the number of input steps.
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` or a backend implementing ``trajectory``.
    dtype : str, optional
        Dtype of the trajectory; the sweep runs in float64 numpy.
    device : str, optional
        Device of the trajectory.
    max_memory : int, default 2**31
        Bound in bytes on the stored trajectory and Jacobians, as in
        :func:`lyapkit.variational_term` with ``start = 0``.
    progress : bool or lyapkit.Progress, optional
        Progress bar over the trajectory.

    Returns
    -------
    lyapkit.VariationalProfile
        With a leading ensemble axis when ``x0`` is ``(E, n)`` or ``inputs`` is ``(E, T, m)``.

    Raises
    ------
    TypeError, ValueError, lyapkit.BackendError
        As in :func:`lyapkit.variational_term`.

    Warns
    -----
    lyapkit.NonFiniteTrajectoryWarning
        When a member's trajectory or Jacobian becomes non-finite (its results are NaN).

    See Also
    --------
    lyapkit.variational_term : Every singular value over one span.
    lyapkit.gradient_propagation : The gradient norms of a network, by autodiff.
    lyapkit.theory.gradient_norm_rate : The predicted rate ``log ρ(R)`` of a WCRNN.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    A weakly coupled residual map with ``R = 0.9 I``: the norm decays at ``log 0.9 = −0.105``
    per step of lag:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> rng = np.random.default_rng(0)
    >>> system = lk.WCRNNMap(R=0.9 * np.eye(4), W=rng.standard_normal((4, 4)), gamma=1e-3)
    >>> profile = lk.variational_profile(system, np.zeros(4), stop=200, backend="numpy")
    >>> profile.log_norm.shape, bool(abs(profile.rate - np.log(0.9)) < 0.01)
    ((200,), True)
    """
    system = as_system(system)
    chosen, jacobians, blown, batched, stop = _record(
        system,
        x0,
        inputs,
        0,
        stop,
        backend=backend,
        dtype=dtype,
        device=device,
        max_memory=max_memory,
        progress=progress,
        minimum_span=2,
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        y = _backward_log_norms(jacobians)
        y[blown] = np.nan
        lags = np.arange(1, stop + 1)
        dl = lags - lags.mean()
        rate = ((y - y.mean(1, keepdims=True)) * dl).sum(1) / (dl * dl).sum()
        rate = np.where(np.isneginf(y).any(1), -np.inf, rate)
        intercept = y.mean(1) - rate * lags.mean()
    squeeze = (lambda a: a) if batched else (lambda a: float(a[0]))
    return VariationalProfile(
        lags=lags,
        log_norm=y if batched else y[0],
        rate=squeeze(rate),
        intercept=squeeze(intercept),
        stop=stop,
        dim=system.dim,
        backend=chosen.name,
        system=repr(system),
        jacobian_method=system.jacobian_method,
    )
