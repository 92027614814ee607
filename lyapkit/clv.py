"""Covariant Lyapunov vectors (CLVs) by Ginelli's method, and the angles between them."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._checks import integer
from lyapkit.backend import Backend, CovariantPlan, CovariantRecord, choose_backend
from lyapkit.lyapunov import (
    LARGE_RESULT_BYTES,
    LargeResultWarning,
    NonFiniteTrajectoryWarning,
    _initial_states,
    _input_sequence,
    _random_bases,
    _size,
)
from lyapkit.maps.base import Map
from lyapkit.progress import Progress, progress_bar
from lyapkit.results import UNIT

ANGLE_UNIT = "rad"


def covariant_vectors(
    system: Map,
    *,
    steps: int,
    x0: Any = None,
    inputs: Any = None,
    k: int | None = None,
    transient: int = 1000,
    tail: int = 1000,
    keep_every: int = 1,
    pairs: Sequence[tuple[int, int]] | None = None,
    split: int | None = None,
    ensemble: int | None = None,
    seed: int | None = None,
    backend: str | Backend = "auto",
    progress: bool | Progress | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> CovariantVectors:
    """The ``k`` leading covariant Lyapunov vectors of ``system`` along its trajectory (Ginelli).

    Ginelli's method (Ginelli et al. 2007 [1]_). Forward pass: the state and a tangent basis
    evolve as ``J_s Q_s = Q_{s+1} R_s`` (thin QR, ``(R_s)_ii > 0``, every step),
    ``J_s = ∂f/∂x (x_s, u_s)``; after ``transient`` steps the span of the first ``i`` columns of
    ``Q_s`` is the ``i``-dimensional Oseledets subspace of the fastest growth. Every ``R_s`` of
    the next ``steps + tail`` steps is kept, and ``Q_s`` at the kept steps. Backward pass: from a
    random upper-triangular ``C`` at the end, ``C_s = R_s⁻¹ C_{s+1}`` with columns scaled to unit
    length; after ``tail`` steps column ``i`` of ``C_s`` holds the coordinates in ``Q_s`` of the
    CLV ``v_i``, the direction that grows at rate ``λ_i`` forward and backward in time::

        V_s = Q_s C_s  (unit columns),     J_s v_i(x_s) ∝ v_i(x_{s+1}),
        λ_i = (1/steps) Σ_s log (R_s)_ii   (over the kept window)

    Cost: ``transient + steps + tail`` Jacobians and QR factorisations ``O(n² k)``, then as many
    triangular solves ``O(k³)`` and ``O(n k²)`` per kept step. Memory: the factors ``R_s``,
    ``8 (steps + tail) k²`` bytes per member (``4 (steps + tail) k (k + 1)`` on numba, which keeps
    their upper triangles; the bases are stored at the kept steps only,
    ``8 n k`` bytes each, and replaced by the CLVs); ``keep_every`` thins the kept steps, not the
    factors, which the backward pass needs at every step. A warning says when it would all take
    more than ``LARGE_RESULT_BYTES`` (512 MiB).

    Parameters
    ----------
    system : lyapkit.Map
        A built-in map or a wrapped user map (:func:`lyapkit.from_numpy`,
        :func:`lyapkit.from_numba`, :func:`lyapkit.from_torch`).
    steps : int
        Steps whose CLVs may be kept (after the transient, before the tail; ``>= 1``).
    x0 : array of shape (dim,) or (ensemble, dim), optional
        Initial state(s); drawn from ``system.initial_state`` with ``seed`` when omitted.
    inputs : array of shape (T, input_dim) or (ensemble, T, input_dim), optional
        Inputs ``u_t`` of a driven map, ``T >= transient + steps + tail``; zero when omitted.
    k : int, optional
        Number of vectors, ``1 <= k <= dim`` (default: all ``dim``).
    transient : int, default 1000
        Forward steps that align the basis (state and basis evolve) before the window.
    tail : int, default 1000
        Forward steps after the window whose factors align the backward coefficients: the CLVs
        converge like ``exp(−(λ_i − λ_{i+1}) tail)`` (and the basis like
        ``exp(−(λ_i − λ_{i+1}) transient)``).
    keep_every : int, default 1
        Keep the state and CLVs at window steps ``0, keep_every, 2 keep_every, …``.
    pairs : sequence of (int, int), optional
        Column indices (0-based, ``0 <= i, j < k``, ``i != j``) of the vector pairs whose angles
        are returned; default the neighbours ``(0, 1), (1, 2), …``.
    split : int, optional
        Number of leading vectors that span the unstable subspace (``1 <= split < k``), whose
        minimum angle with the span of the others is returned (a measure of hyperbolicity);
        default the number of positive exponents, or None when that leaves either subspace
        empty.
    ensemble : int, optional
        Number of trajectories (as for :func:`lyapkit.lyapunov_spectrum`).
    seed : int, optional
        Seed of the initial states, bases and backward coefficients; drawn and recorded when
        omitted.
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` or a backend that implements ``covariant`` (numpy, numba, torch).
    progress : bool or lyapkit.Progress, optional
        Show a tqdm bar over the forward steps (quiet by default).
    dtype, device : str, optional
        Floating dtype and device, as for :func:`lyapkit.lyapunov_spectrum`.

    Returns
    -------
    lyapkit.CovariantVectors
        CLVs, states, exponents and angles at the kept steps.

    Raises
    ------
    TypeError
        When ``system`` is not a :class:`lyapkit.Map`.
    ValueError
        For a ``k``, ``steps``, ``transient``, ``tail``, ``keep_every``, ``ensemble``, ``seed`` or
        ``split`` that is not an integer in range; ``pairs`` that are not pairs of distinct
        column indices below ``k``; an ``x0`` or ``inputs`` of the wrong shape, not finite, or
        (``inputs``) shorter than ``transient + steps + tail``. The message names the argument.
    lyapkit.BackendError
        For an unknown backend, one that is not installed, or one that cannot run ``system``.

    Warns
    -----
    lyapkit.NonFiniteTrajectoryWarning
        When a trajectory overflows or a tangent direction collapses (a singular Jacobian); its
        vectors, angles and exponents are NaN.
    lyapkit.lyapunov.LargeResultWarning
        Before a run whose factors and kept vectors would take more than 512 MiB.

    See Also
    --------
    lyapkit.lyapunov_spectrum : The exponents alone, without the backward pass.
    lyapkit.CovariantVectors : The result, with the angles and ``to_xarray``.

    References
    ----------
    .. [1] F. Ginelli, P. Poggi, A. Turchi, H. Chaté, R. Livi and A. Politi, "Characterizing
       dynamics with covariant Lyapunov vectors", *Physical Review Letters* 99, 130601 (2007).

    Examples
    --------
    The CLVs of the Hénon map are covariant: ``J_s v_i(x_s)`` is parallel to ``v_i(x_{s+1})``.

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> henon = lk.Henon()
    >>> clv = lk.covariant_vectors(
    ...     henon, steps=300, transient=100, tail=100, seed=0, backend="numpy"
    ... )
    >>> clv.vectors.shape, clv.split, clv.pair_angles.shape
    ((1, 300, 2, 2), 1, (1, 300, 1))
    >>> J = henon.jacobian(clv.states[0, :-1])  # (299, 2, 2)
    >>> Jv = np.einsum("sij,sjk->sik", J, clv.vectors[0, :-1])
    >>> cosine = np.abs((Jv * clv.vectors[0, 1:]).sum(-2)) / np.linalg.norm(Jv, axis=-2)
    >>> bool(np.allclose(cosine, 1.0))
    True
    >>> bool(abs(clv.exponents[0] - 0.4192) < 0.03)
    True
    """
    if not isinstance(system, Map):
        raise TypeError(
            f"system must be a lyapkit Map, got {type(system).__name__}; wrap callables with "
            "lyapkit.from_numpy, lyapkit.from_numba or lyapkit.from_torch"
        )
    system.prepare()
    k = system.dim if k is None else k
    k = integer(k, "k", 1, system.dim, maximum_is=f"dim={system.dim}")
    steps = integer(steps, "steps", 1)
    transient = integer(transient, "transient", 0)
    tail = integer(tail, "tail", 0)
    keep_every = integer(keep_every, "keep_every", 1)
    if ensemble is not None:
        ensemble = integer(ensemble, "ensemble", 1)
    pairs = _pairs(pairs, k)
    if split is not None:
        split = integer(split, "split", 1, k - 1, maximum_is=f"k - 1 = {k - 1}")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    seed = integer(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    if ensemble is None and np.ndim(x0) < 2 and np.ndim(inputs) == 3:
        ensemble = int(np.shape(inputs)[0])
    X0 = _initial_states(system, x0, ensemble, rng)
    E = X0.shape[0]
    U = _input_sequence(system, inputs, E, transient + steps + tail)
    keep = np.arange(0, steps, keep_every, dtype=np.int64)
    _warn_if_large(E, system.dim, k, steps + tail, len(keep), len(pairs))
    C = np.triu(rng.standard_normal((E, k, k)))
    plan = CovariantPlan(
        x0=X0,
        basis0=_random_bases(rng, E, system.dim, k),
        coefficients0=C / np.linalg.norm(C, axis=-2, keepdims=True),
        inputs=U,
        transient=transient,
        steps=steps,
        tail=tail,
        keep=keep,
        dtype=dtype,
        device=device,
    )
    chosen, reason = choose_backend(backend, system, method="covariant", plan=plan)
    meter = progress_bar(progress, plan.total, f"covariant vectors {system.name}")
    try:
        record = chosen.covariant(system, plan, meter)
    finally:
        meter.close()
    return _pack(system, plan, record, chosen, reason, seed, pairs, split)


def _pairs(pairs: Any, k: int) -> tuple[tuple[int, int], ...]:
    if pairs is None:
        return tuple((i, i + 1) for i in range(k - 1))
    out = []
    for pair in pairs:
        ok = len(pair) == 2 and all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < k
            for i in pair
        )
        if not ok or pair[0] == pair[1]:
            raise ValueError(
                f"pairs must hold pairs (i, j) of distinct column indices 0 <= i, j < k = {k}, "
                f"got {pair!r}"
            )
        out.append((int(pair[0]), int(pair[1])))
    return tuple(out)


def _warn_if_large(E: int, n: int, k: int, factors: int, kept: int, pairs: int) -> None:
    """``LargeResultWarning`` when the factors ``R_s`` and the kept vectors, states and angles
    would take more than ``LARGE_RESULT_BYTES``; counted with dense ``k × k`` factors, the most
    any backend stores (numba keeps their upper triangles, ``k (k + 1) / 2`` numbers)."""
    r_bytes = 8 * E * factors * k * k
    kept_bytes = 8 * E * kept * (n * k + n + pairs + 1)
    if r_bytes + kept_bytes <= LARGE_RESULT_BYTES:
        return
    warnings.warn(
        f"this run will take up to {_size(r_bytes + kept_bytes)} of memory: the factors R_s of "
        f"{factors} steps (steps + tail) x {k}x{k} x {E} members ({_size(r_bytes)}), and the "
        f"vectors, states and angles at {kept} kept steps ({_size(kept_bytes)}); fewer steps, "
        "vectors (k) or members shrink the factors, a larger keep_every the kept vectors",
        LargeResultWarning,
        stacklevel=3,
    )


def pair_angles(vectors: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Angles between pairs of unit columns of ``vectors``, as directions (sign ignored).

    For each pair ``(i, j)``::

        θ_ij = arctan2(|v_i − (v_i·v_j) v_j|, |v_i·v_j|) ∈ [0, π/2]

    the angle between directions (a CLV's sign is arbitrary), accurate also when small (unlike
    ``arccos``).

    Parameters
    ----------
    vectors : ndarray of shape (..., n, k)
        Unit column vectors.
    pairs : sequence of (int, int)
        Column indices ``(i, j)``.

    Returns
    -------
    ndarray of shape (..., P)
        The angle of each of the ``P`` pairs, in radians.
    """
    out = np.empty(vectors.shape[:-2] + (len(pairs),))
    for p, (i, j) in enumerate(pairs):
        vi, vj = vectors[..., i], vectors[..., j]
        c = (vi * vj).sum(-1)
        sine = np.linalg.norm(vi - c[..., None] * vj, axis=-1)
        out[..., p] = np.arctan2(sine, np.abs(c))
    return out


def subspace_angle(vectors: np.ndarray, split: int) -> np.ndarray:
    """The smallest principal angle between the spans of columns ``:split`` and ``split:``.

    With ``Q_A``, ``Q_B`` orthonormal bases of the two spans and ``P_B = Q_B Q_Bᵀ`` (Björck &
    Golub 1973)::

        θ_min = arctan2(σ_min((I − P_B) Q_A), σ_max(Q_Bᵀ Q_A))

    Zero when the unstable and stable subspaces touch (a homoclinic tangency).

    Parameters
    ----------
    vectors : ndarray of shape (..., n, k)
        Column vectors; columns ``:split`` span one subspace, ``split:`` the other.
    split : int
        Number of leading columns, ``1 <= split < k``.

    Returns
    -------
    ndarray of shape (...)
        ``θ_min`` in radians, in ``[0, π/2]``.

    References
    ----------
    .. [1] Å. Björck and G. H. Golub, "Numerical methods for computing angles between linear
       subspaces", *Mathematics of Computation* 27(123), 579–594 (1973).
    """
    QA, _ = np.linalg.qr(vectors[..., :split])
    QB, _ = np.linalg.qr(vectors[..., split:])
    overlap = np.swapaxes(QB, -1, -2) @ QA
    cosine = np.linalg.svd(overlap, compute_uv=False)[..., 0]
    sine = np.linalg.svd(QA - QB @ overlap, compute_uv=False)[..., -1]
    return np.arctan2(sine, cosine)


def _pack(
    system: Map,
    plan: CovariantPlan,
    record: CovariantRecord,
    backend: Backend,
    reason: str,
    seed: int,
    pairs: tuple[tuple[int, int], ...],
    split: int | None,
) -> CovariantVectors:
    vectors, log_stretch = record.vectors, record.log_stretch
    blown = record.blowup_step >= 0
    if blown.any():
        vectors, log_stretch = vectors.copy(), log_stretch.copy()
        vectors[blown], log_stretch[blown] = np.nan, np.nan
        where = ", ".join(
            f"member {e} by step {s}"
            for e, s in zip(np.flatnonzero(blown), record.blowup_step[blown], strict=True)
        )
        warnings.warn(
            f"{system.name}: the trajectory became non-finite or a tangent direction collapsed "
            f"(R_ii = 0, a singular Jacobian) ({where}; counted from the start, "
            f"transient={plan.transient}); its vectors, angles and exponents are NaN",
            NonFiniteTrajectoryWarning,
            stacklevel=3,
        )
    member = log_stretch / plan.steps
    exponents = member.mean(axis=0)
    k = vectors.shape[-1]
    if split is None:
        positive = int((exponents > 0).sum())
        split = positive if 0 < positive < k else None
    return CovariantVectors(
        vectors=vectors,
        states=record.states,
        kept_steps=np.asarray(plan.keep),
        exponents=exponents,
        member_exponents=member,
        pairs=pairs,
        split=split,
        blowup_steps=record.blowup_step,
        dim=system.dim,
        steps=plan.steps,
        transient=plan.transient,
        tail=plan.tail,
        seed=seed,
        backend=backend.name,
        backend_reason=reason,
        system=repr(system),
        jacobian_method=system.jacobian_method,
    )


@dataclass(frozen=True, repr=False)
class CovariantVectors:
    """Covariant Lyapunov vectors along trajectories, with exponents and angles.

    The result of :func:`lyapkit.covariant_vectors`: at each kept step ``s`` the unit CLVs
    ``V_s = Q_s C_s``, covariant under the tangent dynamics, ``J_s v_i(x_s) ∝ v_i(x_{s+1})``,
    and the exponents ``λ_i = (1/steps) Σ_s log (R_s)_ii``. Derived on first access:
    :attr:`lyapkit.CovariantVectors.pair_angles`, the angles
    ``θ_ij = arctan2(|v_i − (v_i·v_j) v_j|, |v_i·v_j|)`` of the chosen pairs, and
    :attr:`lyapkit.CovariantVectors.subspace_angles`, the smallest principal angle between
    ``span(v_1 … v_split)`` and the span of the others. The constructor's parameters are the
    attributes of the same names (the result is frozen).

    Parameters
    ----------
    vectors : ndarray of shape (ensemble, K, dim, k), float64
        Column ``i`` of ``vectors[e, j]`` is the unit CLV ``v_i`` at the state
        ``states[e, j]`` (sign arbitrary); NaN for members that blew up.
    states : ndarray of shape (ensemble, K, dim), float64
        The states at the kept steps; after a member's blow-up step they are unspecified (the
        numpy and torch backends keep the states they reach, numba leaves NaN).
    kept_steps : ndarray of shape (K,), int64
        The kept steps, counted from the end of the transient.
    exponents : ndarray of shape (k,), float64
        Ensemble-mean exponents ``(1/steps) Σ log (R_s)_ii`` over the window, in the order of
        the vectors.
    member_exponents : ndarray of shape (ensemble, k), float64
        Exponents of each trajectory.
    pairs : tuple of (int, int)
        The column pairs of the pair angles.
    split : int or None
        Number of leading vectors in the unstable subspace of the subspace angles.
    blowup_steps : ndarray of shape (ensemble,), int64
        Step after which a trajectory became non-finite or a direction collapsed, −1 if never.
    dim, steps, transient, tail, seed : int
        State dimension and the run's settings.
    backend, backend_reason, system, jacobian_method : str
        Backend used and why, ``repr`` of the map, how its Jacobian was computed.

    See Also
    --------
    lyapkit.covariant_vectors : Computes it by Ginelli's method.
    lyapkit.LyapunovSpectrum : The result of :func:`lyapkit.lyapunov_spectrum`.

    Examples
    --------
    >>> import lyapkit as lk
    >>> clv = lk.covariant_vectors(
    ...     lk.Henon(), steps=200, transient=100, tail=100, keep_every=10, seed=0,
    ...     backend="numpy",
    ... )
    >>> clv.ensemble, clv.kept_steps[:3], clv.pairs, clv.split
    (1, array([ 0, 10, 20]), ((0, 1),), 1)
    >>> clv.subspace_angles.shape  # (ensemble, K)
    (1, 20)
    >>> bool(0 < clv.min_subspace_angle <= 3.1416 / 2)
    True
    >>> dict(clv.to_xarray().sizes)
    {'member': 1, 'step': 20, 'component': 2, 'vector': 2, 'pair': 1}
    """

    vectors: np.ndarray
    states: np.ndarray
    kept_steps: np.ndarray
    exponents: np.ndarray
    member_exponents: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    split: int | None
    blowup_steps: np.ndarray
    dim: int
    steps: int
    transient: int
    tail: int
    seed: int
    backend: str
    backend_reason: str
    system: str
    jacobian_method: str

    @property
    def ensemble(self) -> int:
        """Number of trajectories."""
        return self.vectors.shape[0]

    @functools.cached_property
    def pair_angles(self) -> np.ndarray:
        """Angles between the CLVs of each pair of ``pairs``, ``(ensemble, K, P)``, in radians.

        ``θ_ij = arctan2(|v_i − (v_i·v_j) v_j|, |v_i·v_j|) ∈ [0, π/2]`` (the module function
        ``lyapkit.clv.pair_angles``; computed on first access).
        """
        with np.errstate(invalid="ignore"):
            return pair_angles(self.vectors, self.pairs)

    @functools.cached_property
    def subspace_angles(self) -> np.ndarray | None:
        """Smallest principal angle between ``span(v_1 … v_split)`` and the span of the others.

        An ``(ensemble, K)`` array in radians (the module function ``lyapkit.clv.subspace_angle``,
        computed on first access), None without a split; its distribution away from 0 measures
        hyperbolicity.
        """
        if self.split is None:
            return None
        with np.errstate(invalid="ignore"):
            return subspace_angle(self.vectors, self.split)

    @property
    def min_subspace_angle(self) -> float:
        """The smallest angle between the unstable and stable subspaces seen, in radians.

        ``min`` of the subspace angles over members and kept steps (NaN ones ignored); NaN when
        there is no split.
        """
        if self.subspace_angles is None:
            return math.nan
        return float(np.nanmin(self.subspace_angles))

    def __repr__(self) -> str:
        lam = ", ".join(f"{v:.6g}" for v in self.exponents)
        return (
            f"CovariantVectors(exponents=[{lam}], kept={len(self.kept_steps)} steps, "
            f"ensemble={self.ensemble}, backend={self.backend!r}, system={self.system})"
        )

    def _pair_labels(self) -> list[str]:
        return [f"v{i + 1}-v{j + 1}" for i, j in self.pairs]

    def to_xarray(self) -> Any:
        """The result as an ``xarray.Dataset`` with named dims and units.

        Returns
        -------
        xarray.Dataset
            Dims ``member``, ``step``, ``component``, ``vector`` (numbered from 1, as exponents
            are) and ``pair``; variables ``clv``, ``state``, ``exponent_value``,
            ``member_exponent``, ``pair_angle``, ``blowup_step`` and, with a split,
            ``subspace_angle``; the run's settings as attributes.
        """
        import xarray as xr

        from lyapkit import __version__

        def var(dims, data, long_name, units):
            return xr.Variable(dims, data, {"long_name": long_name, "units": units})

        k = self.vectors.shape[-1]
        data = {
            "clv": var(
                ("member", "step", "component", "vector"),
                self.vectors,
                "covariant Lyapunov vector (unit length, sign arbitrary)",
                "1",
            ),
            "state": var(("member", "step", "component"), self.states, "state", "1"),
            "exponent_value": var(("vector",), self.exponents, "Lyapunov exponent", UNIT),
            "member_exponent": var(
                ("member", "vector"), self.member_exponents, "Lyapunov exponent per member", UNIT
            ),
            "pair_angle": var(
                ("member", "step", "pair"),
                self.pair_angles,
                "angle between the covariant vectors of a pair",
                ANGLE_UNIT,
            ),
            "blowup_step": var(
                ("member",),
                self.blowup_steps,
                "step after which the trajectory was non-finite or collapsed (-1: never)",
                "step",
            ),
        }
        if self.subspace_angles is not None:
            data["subspace_angle"] = var(
                ("member", "step"),
                self.subspace_angles,
                f"smallest angle between span(v1..v{self.split}) and the span of the others",
                ANGLE_UNIT,
            )
        coords = {
            "member": var(("member",), np.arange(self.ensemble), "ensemble member", "1"),
            "step": var(("step",), self.kept_steps, "steps after the transient", "step"),
            "component": var(("component",), np.arange(self.dim), "state component", "1"),
            "vector": var(("vector",), np.arange(1, k + 1), "CLV index (1: largest)", "1"),
            "pair": var(("pair",), self._pair_labels(), "vector pair", "1"),
        }
        attrs = {
            "title": "Covariant Lyapunov vectors (Ginelli et al. 2007)",
            "system": self.system,
            "jacobian_method": self.jacobian_method,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "steps": self.steps,
            "transient": self.transient,
            "tail": self.tail,
            "seed": str(self.seed),
            "split": -1 if self.split is None else self.split,
            "lyapkit_version": __version__,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Any = None, bins: int = 50, **kwargs: Any) -> Any:
        """Plot histograms (densities) of the pair angles and of the subspace angle.

        One step histogram over ``[0, π/2]`` per pair and one for the unstable–stable subspace
        angle (with a split), over all members and kept steps; non-finite angles are left out.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current Axes, ``plt.gca()``).
        bins : int, default 50
            Number of equal bins over ``[0, π/2]``.
        **kwargs
            Passed to ``ax.hist``.

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        series = [(label, self.pair_angles[..., p]) for p, label in enumerate(self._pair_labels())]
        if self.subspace_angles is not None:
            series.append((f"E^u(v1..v{self.split}) vs E^s", self.subspace_angles))
        edges = np.linspace(0.0, math.pi / 2, bins + 1)
        for label, values in series:
            finite = values[np.isfinite(values)]
            ax.hist(finite, bins=edges, density=True, histtype="step", label=label, **kwargs)
        ax.set_xlim(0.0, math.pi / 2)
        ax.set_xlabel(f"angle ({ANGLE_UNIT})")
        ax.set_ylabel("density")
        ax.set_title(f"CLV angles: {self.system}", fontsize="small")
        ax.legend(fontsize="small")
        return ax
