"""Lyapunov spectra by the QR method, and the two-trajectory estimate of the largest exponent."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from lyapkit._array import to_numpy
from lyapkit._checks import integer
from lyapkit.backend import Backend, TangentPlan, TangentRecord, choose_backend
from lyapkit.maps.base import Map, check_period
from lyapkit.progress import Progress, progress_bar
from lyapkit.results import LyapunovSpectrum

HISTORY_POINTS = 200  # log-spaced running estimates kept, whatever the number of steps
BATCHES = 32  # batch means for the standard error of a single trajectory
ILL_CONDITIONED = 1e8  # warn when the basis is this ill-conditioned between re-orthonormalisations
#: The twin method's linear range: warn when the separation of the two trajectories reached this
#: fraction of the state's size, ``d > TWIN_LINEAR_RANGE · max(1, ‖x‖∞)``, between two
#: renormalisations. At a separation ``d`` the linearisation ``f(x + d) − f(x) ≈ J d`` errs by
#: about ``d / s`` relative for a map whose Jacobian varies on the scale ``s`` of its coordinates
#: (lyapkit measures that scale as ``max(1, |x|)``, as for its finite-difference steps), so past
#: 1 % the growth ``d/δ0`` no longer measures the tangent dynamics; once ``d`` reaches the size of
#: the attractor it saturates and ``λ1`` is underestimated.
TWIN_LINEAR_RANGE = 1e-2
#: Warn before a run whose records (the cumulative sums and finite-time exponents, float64, and
#: the record steps, int64) would take more memory than this (512 MiB): about the peak of the
#: run above the map's own memory.
LARGE_RESULT_BYTES = 2**29
_WINDOW_BLOCK = 2**17  # float64 entries per block when differencing finite-time windows (1 MiB)


class NonFiniteTrajectoryWarning(RuntimeWarning):
    """A trajectory or its tangent basis overflowed; its exponents are NaN.

    Issued by :func:`lyapkit.lyapunov_spectrum`, :func:`lyapkit.max_lyapunov_twin`,
    :func:`lyapkit.covariant_vectors` and :func:`lyapkit.finite_time_exponents` when the state
    ``x_t`` or the tangent basis ``Q_t`` of an ensemble member is no longer finite (NaN or
    ``±inf``; for the twin method also when the two trajectories merge, ``|y − x| = 0``). The
    warning names the members and the step (counted from the start, transient included); the
    member's exponents are NaN and ``blowup_steps`` of the result records the step (−1 for the
    members that stayed finite).

    See Also
    --------
    lyapkit.LyapunovSpectrum : Its ``blowup_steps`` records where each member overflowed.

    Examples
    --------
    >>> import warnings
    >>> import lyapkit as lk
    >>> grows = lk.LinearMap([[1e30]])  # |x_t| = 1e30^t overflows float64 after ~10 steps
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = lk.lyapunov_spectrum(grows, steps=20, seed=0, backend="numpy")
    >>> [w.category.__name__ for w in caught]
    ['NonFiniteTrajectoryWarning']
    >>> res.exponents, res.blowup_steps
    (array([nan]), array([11]))
    """


class IllConditionedBasisWarning(RuntimeWarning):
    """The tangent basis became ill-conditioned between re-orthonormalisations.

    Issued by :func:`lyapkit.lyapunov_spectrum` when ``reortho_every > 1`` and the largest
    ratio of the QR stretching factors at a re-orthonormalisation exceeds ``1e8``::

        max_t  max_i (R_t)_ii / min_i (R_t)_ii  >  1e8

    (a lower bound on the condition number of the un-normalised basis ``J_{t+r−1} ⋯ J_t Q_t``,
    ``r = reortho_every``, whose columns align with the leading direction like
    ``exp((λ_1 − λ_k) r)``). The smallest exponents may then be inaccurate; a smaller
    ``reortho_every`` is the remedy. The ratio is kept as ``max_condition`` in the result.

    See Also
    --------
    lyapkit.lyapunov_spectrum : Its ``reortho_every`` argument sets the interval.

    Examples
    --------
    >>> import warnings
    >>> import lyapkit as lk
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = lk.lyapunov_spectrum(
    ...         lk.Henon(), steps=200, transient=100, reortho_every=20, seed=0, backend="numpy"
    ...     )
    >>> [w.category.__name__ for w in caught]
    ['IllConditionedBasisWarning']
    >>> bool(res.max_condition > 1e8)  # exp((λ1 − λ2) 20) ≈ e^40
    True
    """


class SingularJacobianWarning(RuntimeWarning):
    """A tangent direction collapsed (``R_ii = 0``: the Jacobian is singular along the orbit, to
    working precision); its exponent is ``−inf`` (``log 0``), the others are unaffected."""


class TwinSaturationWarning(RuntimeWarning):
    """The twin method's separation left its linear range between renormalisations, so ``λ1`` is
    underestimated; a smaller ``renorm_every`` is the remedy."""


class LargeResultWarning(RuntimeWarning):
    """A run's records will take much memory (more than ``LARGE_RESULT_BYTES``); the warning says
    how much and which argument reduces it."""


def _initial_states(
    system: Map, x0: Any, ensemble: int | None, rng: np.random.Generator
) -> np.ndarray:
    """``(E, n)`` initial states: given, or drawn from the map's ``initial_state``."""
    if x0 is None:
        E = 1 if ensemble is None else ensemble
        return np.stack([np.asarray(system.initial_state(rng), dtype=np.float64) for _ in range(E)])
    x0 = np.asarray(to_numpy(x0), dtype=np.float64)
    if x0.ndim not in (1, 2) or x0.shape[-1] != system.dim:
        raise ValueError(
            f"x0 must have shape ({system.dim},) or (ensemble, {system.dim}), got {x0.shape}"
        )
    if x0.ndim == 1:
        x0 = np.broadcast_to(x0, (1 if ensemble is None else ensemble, x0.shape[0]))
    if ensemble is not None and x0.shape[0] != ensemble:
        raise ValueError(f"x0 has {x0.shape[0]} states but ensemble={ensemble}")
    if not np.isfinite(x0).all():
        raise ValueError("x0 must be finite")
    return np.array(x0)  # a writable copy


def _input_sequence(system: Map, inputs: Any, E: int, total: int) -> np.ndarray:
    """``(E or 1, total, input_dim)`` inputs; zeros of width 0 for autonomous maps."""
    m = system.input_dim
    if inputs is None:
        return np.zeros((1, total, m))
    if m == 0:
        raise ValueError(f"inputs were given but {system!r} has no input (input_dim=0)")
    u = np.asarray(to_numpy(inputs), dtype=np.float64)
    if u.ndim == 2:
        u = u[None]
    if u.ndim != 3 or u.shape[-1] != m or u.shape[0] not in (1, E):
        raise ValueError(
            f"inputs must have shape (T, {m}) or ({E}, T, {m}) (ensemble, time, input_dim), "
            f"got {np.shape(inputs)}"
        )
    if not np.isfinite(u).all():
        raise ValueError("inputs must be finite (found NaN or inf)")
    if u.shape[1] < total:
        raise ValueError(
            f"inputs has {u.shape[1]} time steps but transient + steps = {total} are needed"
        )
    return np.ascontiguousarray(u[:, :total])


def _random_bases(rng: np.random.Generator, E: int, n: int, k: int) -> np.ndarray:
    """``E`` random orthonormal ``(n, k)`` bases (Haar-distributed columns)."""
    Q, R = np.linalg.qr(rng.standard_normal((E, n, k)))
    return Q * np.where(np.diagonal(R, axis1=-2, axis2=-1) < 0, -1.0, 1.0)[:, None, :]


def _size(nbytes: float) -> str:
    """``nbytes`` in binary units: ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.3g} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1024
    raise AssertionError  # pragma: no cover


def _warn_if_large(
    E: int, k: int, steps: int, every: int, history: bool, finite_time: int | None
) -> None:
    """Warn (``LargeResultWarning``) when the records of a run would exceed
    ``LARGE_RESULT_BYTES``: the cumulative sums ``(E, R, k)`` float64 that the backend fills, the
    finite-time exponents ``(E, W, k)`` of the result (derived from them by blocks) and the record
    steps (int64), about the run's peak memory above the map's own. Counted before anything is
    allocated (``R`` from above: the windows, the history points, the batch ends and the end)."""
    W = steps // finite_time if finite_time else 0
    R = min(W + (HISTORY_POINTS if history else 0) + BATCHES + 1, steps // every + 1)
    sums, windows, steps_bytes = 8 * E * R * k, 8 * E * W * k, 8 * (R + W)
    total = sums + windows + steps_bytes
    if total <= LARGE_RESULT_BYTES:
        return
    if W:
        remedy = (
            f"finite_time={finite_time} keeps one window per {finite_time} steps: a larger "
            "finite_time shrinks this in proportion (or omit it)"
        )
    else:
        remedy = "fewer exponents (k) or members (ensemble) shrink it in proportion"
    warnings.warn(
        f"this run will take about {_size(total)} of memory for its records: cumulative sums "
        f"at up to {R} record points x {k} exponents x {E} members ({_size(sums)}, filled by "
        f"the backend)"
        + (f", {W} finite-time windows ({_size(windows)}, kept in the result)" if W else "")
        + f" and the record steps ({_size(steps_bytes)}); {remedy}",
        LargeResultWarning,
        stacklevel=4,
    )


def _record_times(
    steps: int, every: int, history: bool, finite_time: int | None
) -> dict[str, np.ndarray]:
    """Post-transient step counts to record: history (log-spaced), batch ends, windows, the end."""

    def grid(s: np.ndarray) -> np.ndarray:
        """Renormalisation steps nearest below ``s`` (never 0), and the last step."""
        s = s // every * every
        return np.unique(np.append(np.minimum(s[s > 0], steps), steps)).astype(np.int64)

    batches = min(BATCHES, steps // every)
    block = steps // every // max(batches, 1) * every
    times = {
        "history": grid(np.geomspace(every, steps, HISTORY_POINTS).astype(np.int64))
        if history
        else np.array([], dtype=np.int64),
        "batches": np.arange(1, batches + 1, dtype=np.int64) * block
        if batches >= 2
        else np.array([], dtype=np.int64),
        "windows": np.arange(finite_time, steps + 1, finite_time, dtype=np.int64)
        if finite_time
        else np.array([], dtype=np.int64),
    }
    # The union, by inserting the few other points into the (possibly very many) windows: no
    # sorted copy of everything.
    few = np.unique(np.concatenate([times["history"], times["batches"], [steps]])).astype(np.int64)
    windows = times["windows"]
    if len(windows):
        pos = np.searchsorted(windows, few)
        new = (pos == len(windows)) | (windows[np.minimum(pos, len(windows) - 1)] != few)
        times["all"] = np.insert(windows, pos[new], few[new])
    else:
        times["all"] = few
    return times


def _prepare(
    system: Map,
    *,
    steps: int,
    x0: Any,
    inputs: Any,
    k: int | None,
    transient: int,
    every: int,
    ensemble: int | None,
    seed: int | None,
    history: bool,
    finite_time: int | None,
    separation: float = 0.0,
    dtype: str | None,
    device: str | None,
    every_name: str = "reortho_every",
) -> tuple[TangentPlan, dict[str, np.ndarray], int]:
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
    every = integer(every, every_name, 1)
    if ensemble is not None:
        ensemble = integer(ensemble, "ensemble", 1)
    if finite_time is not None:
        finite_time = integer(finite_time, "finite_time", 1)
        if finite_time % every or finite_time > steps:
            raise ValueError(
                f"finite_time must be a multiple of reortho_every={every} and at most "
                f"steps={steps}, got {finite_time}"
            )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    seed = integer(seed, "seed", 0)
    rng = np.random.default_rng(seed)
    if ensemble is None and np.ndim(x0) < 2 and np.ndim(inputs) == 3:
        ensemble = int(np.shape(inputs)[0])  # one member per input sequence
    X0 = _initial_states(system, x0, ensemble, rng)
    E = X0.shape[0]
    U = _input_sequence(system, inputs, E, transient + steps)
    if E > 1 and np.ndim(x0) == 1 and U.shape[0] == 1:
        warnings.warn(
            f"all {E} ensemble members start from the same x0 and see the same inputs: they "
            "follow one trajectory, so the ensemble standard error is meaningless; pass one x0 "
            "per member (shape (ensemble, dim)) or omit x0",
            UserWarning,
            stacklevel=3,
        )
    _warn_if_large(E, k, steps, every, history, finite_time)
    times = _record_times(steps, every, history, finite_time)
    plan = TangentPlan(
        x0=X0,
        basis0=_random_bases(rng, E, system.dim, k),
        inputs=U,
        transient=transient,
        steps=steps,
        every=every,
        record_at=times["all"],
        separation=separation,
        dtype=dtype,
        device=device,
    )
    return plan, times, seed


def _run(
    method: str, backend: Backend, system: Map, plan: TangentPlan, progress: Any
) -> TangentRecord:
    meter = progress_bar(progress, plan.total, f"{method} {system.name}")
    try:
        run = backend.tangent if method == "lyapunov" else backend.twin
        return run(system, plan, meter)
    finally:
        meter.close()


def _batch_stderr(cumulative: np.ndarray, at: np.ndarray, batch_ends: np.ndarray) -> np.ndarray:
    """Standard error of the mean by batch means over one trajectory: ``std(a_b) / √B``."""
    if len(batch_ends) < 2:
        return np.full(cumulative.shape[-1], np.nan)
    sums = cumulative[0, np.searchsorted(at, batch_ends)]  # (B, k)
    means = (
        np.diff(np.concatenate([np.zeros((1, sums.shape[1])), sums]), axis=0)
        / np.diff(np.concatenate([[0], batch_ends]))[:, None]
    )
    return means.std(axis=0, ddof=1) / math.sqrt(len(means))


def _windows(cumulative: np.ndarray, at: np.ndarray, ends: np.ndarray, order: Any) -> np.ndarray:
    """Finite-time exponents ``(S(jw) − S((j−1)w)) / w`` of the windows ending at ``ends``, the
    exponents in ``order``.

    Differenced by blocks of windows, so that the temporaries stay small next to the result; a
    window that ends after a direction collapsed (``S = −inf``) has exponent ``−inf``.
    """
    E, _, k = cumulative.shape
    out = np.empty((E, len(ends), k))
    out[:, 0] = cumulative[:, np.searchsorted(at, ends[0])][..., order]
    block = max(1, _WINDOW_BLOCK // max(E * k, 1))
    for j0 in range(1, len(ends), block):
        j1 = min(j0 + block, len(ends))
        idx = np.searchsorted(at, ends[j0 - 1 : j1])  # the previous window's end, then these
        end = cumulative[:, idx[1:]][..., order]
        np.subtract(end, cumulative[:, idx[:-1]][..., order], out=out[:, j0:j1])
        out[:, j0:j1][np.isneginf(end)] = -np.inf  # −inf − (−inf): still collapsed
    out /= ends[0]
    return out


def _pack(
    method: str,
    system: Map,
    backend: Backend,
    reason: str,
    plan: TangentPlan,
    times: dict[str, np.ndarray],
    record: TangentRecord,
    seed: int,
) -> LyapunovSpectrum:
    at, cum = plan.record_at, record.cumulative
    blown = record.blowup_step >= 0
    if blown.any():
        cum = cum.copy()  # rare: the record may be read-only
        cum[blown] = np.nan
        where = ", ".join(
            f"member {e} by step {s}"
            for e, s in zip(np.flatnonzero(blown), record.blowup_step[blown], strict=True)
        )
        cause = (
            "the two trajectories overflowed, or merged (|y − x| = 0)"
            if method == "twin"
            else "the state or its tangent basis overflowed (NaN or infinite values)"
        )
        warnings.warn(
            f"{system.name}: the trajectory became non-finite ({where}; counted from the start, "
            f"transient={plan.transient}): {cause}; its exponents are NaN",
            NonFiniteTrajectoryWarning,
            stacklevel=3,
        )
    member = cum[:, -1] / plan.steps  # (E, k)
    collapsed = np.isneginf(member)  # log 0: the Jacobian collapsed these directions
    if collapsed.any():
        _warn_collapsed(system, plan, cum, collapsed)
    exponents = member.mean(axis=0)
    E = member.shape[0]
    with np.errstate(invalid="ignore"):  # −inf − (−inf) in the spreads of collapsed directions
        if E >= 2:
            stderr = member.std(axis=0, ddof=1) / math.sqrt(E)
        else:
            stderr = _batch_stderr(cum, at, times["batches"])
        stderr[collapsed.all(axis=0)] = 0.0  # −inf in every member: exactly −inf
        order = (
            np.argsort(-exponents, kind="stable") if not np.isnan(exponents).any() else slice(None)
        )
        hist_idx = np.searchsorted(at, times["history"])
        history = cum[:, hist_idx].mean(axis=0) / np.maximum(times["history"], 1)[:, None]
        finite_time = _windows(cum, at, times["windows"], order) if len(times["windows"]) else None
    max_condition = float(np.max(record.max_condition))
    if plan.every > 1 and max_condition > ILL_CONDITIONED:
        warnings.warn(
            f"the tangent basis became ill-conditioned between re-orthonormalisations "
            f"(condition number >= {max_condition:.1e}); the smallest exponents may be "
            f"inaccurate: reduce reortho_every={plan.every}",
            IllConditionedBasisWarning,
            stacklevel=3,
        )
    if method == "twin" and record.max_separation is not None:
        _warn_if_saturated(system, plan, np.asarray(record.max_separation)[~blown])
    return LyapunovSpectrum(
        exponents=exponents[order],
        stderr=stderr[order],
        member_exponents=member[:, order],
        history_steps=times["history"],
        history=history[:, order],
        finite_time=finite_time,
        finite_time_window=int(times["windows"][0]) if finite_time is not None else None,
        max_condition=max_condition,
        blowup_steps=record.blowup_step,
        final_state=record.final_state,
        final_basis=record.final_basis[..., order],
        dim=system.dim,
        steps=plan.steps,
        transient=plan.transient,
        reortho_every=plan.every,
        seed=seed,
        backend=backend.name,
        backend_reason=reason,
        system=repr(system),
        jacobian_method=system.jacobian_method,
        method="qr" if method == "lyapunov" else "twin",
    )


def _warn_collapsed(system: Map, plan: TangentPlan, cum: np.ndarray, collapsed: np.ndarray) -> None:
    """``SingularJacobianWarning`` naming the members, how many directions collapsed in each,
    and the record point by which the first one had."""
    parts = []
    for e in np.flatnonzero(collapsed.any(axis=1)):
        first = int(np.flatnonzero(np.isneginf(cum[e]).any(axis=1))[0])
        parts.append(
            f"member {e}: {int(collapsed[e].sum())} of {collapsed.shape[1]} by step "
            f"{int(plan.record_at[first])} after the transient"
        )
    warnings.warn(
        f"{system.name}: the Jacobian is singular (to working precision) along the orbit: "
        f"tangent directions collapsed (R_ii = 0; {'; '.join(parts)}), so as many of the "
        f"smallest exponents are -inf (log 0); the others are unaffected. If the Jacobian is "
        f"only nearly singular (one direction contracted by more than 1/eps^2 against another "
        f"in a step), a transient lets the basis align first: collapses during the transient "
        f"are not counted"
        + (
            f". With {plan.every} steps between re-orthonormalisations the basis may instead have "
            f"underflowed (shrunk below the smallest float in {plan.every} steps, as every "
            f"direction of a map contracting by 1e-2 per step does in 160): a smaller "
            f"reortho_every tells them apart"
            if plan.every > 1
            else ""
        ),
        SingularJacobianWarning,
        stacklevel=4,
    )


def _warn_if_saturated(system: Map, plan: TangentPlan, widest: np.ndarray) -> None:
    """``TwinSaturationWarning`` when the separation left the linear range (``widest``: the
    largest ``d / max(1, ‖x‖∞)`` of each member that did not blow up)."""
    worst = float(np.nanmax(widest)) if widest.size and not np.isnan(widest).all() else 0.0
    if not worst > TWIN_LINEAR_RANGE:
        return
    if plan.every > 1:
        remedy = (
            f"use a smaller renorm_every (the largest separation grew by a factor of at least "
            f"{worst / plan.separation:.2g} in renorm_every={plan.every} steps; renorm_every=1, "
            f"the default, renormalises after every step and costs one distance per step)"
        )
    else:
        remedy = (
            f"it grew that far within one step from separation={plan.separation:.2g}: use a "
            f"smaller separation"
        )
    warnings.warn(
        f"{system.name}: twin method: the two trajectories separated to d = {worst:.2g} "
        f"max(1, |x|) between renormalisations, past the linear range d <= "
        f"{TWIN_LINEAR_RANGE:g} max(1, |x|) in which the growth d/separation measures the "
        f"tangent dynamics; the separation saturates and lambda_1 is underestimated: {remedy}",
        TwinSaturationWarning,
        stacklevel=4,
    )


def lyapunov_spectrum(
    system: Map,
    *,
    steps: int,
    x0: Any = None,
    inputs: Any = None,
    k: int | None = None,
    transient: int = 0,
    reortho_every: int = 1,
    ensemble: int | None = None,
    seed: int | None = None,
    backend: str | Backend = "auto",
    history: bool = True,
    finite_time: int | None = None,
    progress: bool | Progress | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> LyapunovSpectrum:
    """The ``k`` largest Lyapunov exponents of ``system`` by the QR method.

    The tangent basis evolves as ``Q_{t+1} = J_t Q_t`` with ``J_t = ∂f/∂x (x_t, u_t)``; every
    ``reortho_every`` steps it is factored ``Q = Q' R`` (``R_ii > 0``, ``Q'`` orthonormal, which
    continues), and the exponents are the mean logarithms of the stretching factors over the
    ``T = steps`` steps after the transient (Benettin et al. 1980 [1]_; Shimada & Nagashima
    1979 [2]_)::

        λ_i = (1/T) Σ_t log (R_t)_ii        (i = 1 … k, descending)

    The transient evolves the state and the basis, so the basis is aligned before averaging.
    With ``ensemble >= 2`` the exponents are the mean over the members and the standard error is
    ``std(λ_i^(e)) / √E``; for one trajectory it comes from 32 batch means, ``std(a_b) / √B``.

    Parameters
    ----------
    system : lyapkit.Map
        A built-in map or a wrapped user map (:func:`lyapkit.from_numpy`,
        :func:`lyapkit.from_numba`, :func:`lyapkit.from_torch`).
    steps : int
        Steps averaged after the transient (``>= 1``).
    x0 : array of shape (dim,) or (ensemble, dim), optional
        Initial state(s); drawn from ``system.initial_state`` with ``seed`` when omitted. A 1-D
        ``x0`` is shared by all members (then give each member its own inputs).
    inputs : array of shape (T, input_dim) or (ensemble, T, input_dim), optional
        Inputs ``u_t`` of a driven map, ``T >= transient + steps``; zero when omitted.
    k : int, optional
        Number of exponents, ``1 <= k <= dim`` (default: all ``dim``).
    transient : int, default 0
        Steps evolved (state and basis) before averaging.
    reortho_every : int, default 1
        Steps between re-orthonormalisations (a warning says when this is too many).
    ensemble : int, optional
        Number of trajectories. Defaults to the number of rows of a 2-D ``x0``, else of a 3-D
        ``inputs``, else 1. Without ``x0`` each member starts from its own random state.
    seed : int, optional
        Seed (``>= 0``) of initial states and bases; drawn and recorded in the result when
        omitted.
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` or a registered name (``"numpy"``, ``"numba"``, ``"torch"``, plugins).
    history : bool, default True
        Keep running estimates at ~200 log-spaced steps.
    finite_time : int, optional
        Also return finite-time (local) exponents over consecutive windows of this many steps
        (a multiple of ``reortho_every``, at most ``steps``).
    progress : bool or lyapkit.Progress, optional
        Show a tqdm bar (quiet by default and when not on a terminal).
    dtype, device : str, optional
        Floating dtype (default float64) and device: numpy float32 or float64 on the CPU,
        torch float32 or float64 on any device (default: CUDA when present), numba float64 only.

    Returns
    -------
    lyapkit.LyapunovSpectrum
        Exponents in descending order, in nats per step, with standard errors (from the ensemble
        when ``ensemble >= 2``, else from 32 batch means), history and derived quantities
        (``method="qr"``).

    Raises
    ------
    TypeError
        When ``system`` is not a :class:`lyapkit.Map` (wrap callables first).
    ValueError
        For a ``k``, ``steps``, ``transient``, ``reortho_every``, ``ensemble``, ``seed`` or
        ``finite_time`` that is not an integer in range (``finite_time`` must also divide by
        ``reortho_every``); an ``x0`` of the wrong shape, with a number of rows other than
        ``ensemble``, or not finite; ``inputs`` for a map without inputs, of the wrong shape,
        not finite or shorter than ``transient + steps``. The message names the argument.
    lyapkit.BackendError
        For an unknown backend, one that is not installed, or one that cannot run ``system``.

    Warns
    -----
    lyapkit.NonFiniteTrajectoryWarning
        When a trajectory overflows (its exponents are NaN; the warning names the step).
    lyapkit.lyapunov.SingularJacobianWarning
        When tangent directions collapse (``R_ii = 0``: a Jacobian singular along the orbit, to
        working precision): their exponents are ``−inf`` (``log 0``), the others are unaffected.
    lyapkit.IllConditionedBasisWarning
        When ``reortho_every > 1`` lets the basis become ill-conditioned (condition > 1e8).
    lyapkit.lyapunov.LargeResultWarning
        Before a run whose records would take more than ``LARGE_RESULT_BYTES`` (512 MiB), with
        their size: e.g. ``finite_time=1`` over many steps.
    UserWarning
        When several members share one ``x0`` and one input sequence (they follow one
        trajectory, so the ensemble standard error is meaningless).

    See Also
    --------
    lyapkit.max_lyapunov_twin : The largest exponent without Jacobians, as a cross-check.
    lyapkit.covariant_vectors : The covariant Lyapunov vectors behind these exponents.
    lyapkit.finite_time_exponents : Differentiable finite-time exponents on torch.
    lyapkit.variational_term : The product of Jacobians itself and its singular values.
    lyapkit.kaplan_yorke_dimension : The attractor dimension from a spectrum.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, A. Giorgilli and J.-M. Strelcyn, "Lyapunov characteristic
       exponents for smooth dynamical systems and for Hamiltonian systems; a method for
       computing all of them. Part 1: Theory; Part 2: Numerical application", *Meccanica* 15,
       9–20 and 21–30 (1980).
    .. [2] I. Shimada and T. Nagashima, "A numerical approach to ergodic problem of dissipative
       dynamical systems", *Progress of Theoretical Physics* 61(6), 1605–1616 (1979).

    Examples
    --------
    The Hénon map at ``a = 1.4, b = 0.3`` has exponents ``(0.4192, −1.6232)`` (Sprott 2003),
    whose sum is ``log b`` exactly (the Jacobian's determinant is ``−b``):

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> res = lk.lyapunov_spectrum(lk.Henon(), steps=1000, transient=100, seed=0, backend="numpy")
    >>> res.exponents.shape, res.method
    ((2,), 'qr')
    >>> bool(abs(res.exponents[0] - 0.4192) < 0.03)
    True
    >>> bool(abs(res.exponents.sum() - np.log(0.3)) < 1e-9)
    True

    An ensemble, with finite-time exponents over windows of 100 steps:

    >>> res = lk.lyapunov_spectrum(
    ...     lk.Henon(), steps=500, ensemble=2, finite_time=100, seed=1, backend="numpy"
    ... )
    >>> res.member_exponents.shape, res.finite_time.shape
    ((2, 2), (2, 5, 2))
    """
    plan, times, seed = _prepare(
        system,
        steps=steps,
        x0=x0,
        inputs=inputs,
        k=k,
        transient=transient,
        every=reortho_every,
        ensemble=ensemble,
        seed=seed,
        history=history,
        finite_time=finite_time,
        dtype=dtype,
        device=device,
    )
    chosen, reason = choose_backend(backend, system, plan=plan)
    record = _run("lyapunov", chosen, system, plan, progress)
    return _pack("lyapunov", system, chosen, reason, plan, times, record, seed)


def max_lyapunov_twin(
    system: Map,
    *,
    steps: int,
    x0: Any = None,
    inputs: Any = None,
    transient: int = 0,
    separation: float | None = None,
    renorm_every: int = 1,
    ensemble: int | None = None,
    seed: int | None = None,
    backend: str | Backend = "auto",
    history: bool = True,
    progress: bool | Progress | None = None,
    dtype: str | None = None,
    device: str | None = None,
) -> LyapunovSpectrum:
    """Largest Lyapunov exponent from two nearby trajectories, without Jacobians.

    A perturbed trajectory ``y`` starts at distance ``δ0 = separation`` (default ``√ε`` of the
    dtype, 1.5e-8 in float64) from ``x`` (random direction); every ``renorm_every`` steps
    ``d = |y − x|`` (wrapped on a torus) is measured, ``log(d/δ0)`` is accumulated and ``y`` is
    pulled back to ``x + δ0 (y − x)/d`` (Benettin, Galgani & Strelcyn 1976 [1]_)::

        λ_1 = (1/T) Σ log(d/δ0)        (T = steps after the transient)

    The estimate is biased when ``δ0`` is too large (non-linearity) or too small (rounding,
    ``ε/δ0``). Between renormalisations ``d`` must stay in the linear range: when it exceeds
    ``TWIN_LINEAR_RANGE · max(1, ‖x‖∞)`` (1 %) after the transient, a warning says so (the
    separation saturates at the size of the attractor and ``λ_1`` is underestimated) and
    suggests a smaller ``renorm_every``.

    Parameters
    ----------
    system : lyapkit.Map
        A built-in map or a wrapped user map; a map's ``period``, when set, must be a positive
        number.
    steps : int
        Steps averaged after the transient (``>= 1``).
    x0 : array of shape (dim,) or (ensemble, dim), optional
        Initial state(s) of ``x``; drawn from ``system.initial_state`` with ``seed`` when
        omitted.
    inputs : array of shape (T, input_dim) or (ensemble, T, input_dim), optional
        Inputs ``u_t`` (both trajectories see the same), ``T >= transient + steps``.
    transient : int, default 0
        Steps evolved (both trajectories, renormalised) before averaging.
    separation : float, optional
        The distance ``δ0``, a finite number above ``100 ε`` of the dtype (default ``√ε``).
    renorm_every : int, default 1
        Steps between renormalisations of ``y − x``.
    ensemble : int, optional
        Number of trajectory pairs, as for :func:`lyapkit.lyapunov_spectrum`.
    seed : int, optional
        Seed (``>= 0``) of the initial states and directions; drawn and recorded when omitted.
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` or a registered backend name.
    history : bool, default True
        Keep running estimates at ~200 log-spaced steps.
    progress : bool or lyapkit.Progress, optional
        Show a tqdm bar (quiet by default).
    dtype, device : str, optional
        Floating dtype and device, as for :func:`lyapkit.lyapunov_spectrum`.

    Returns
    -------
    lyapkit.LyapunovSpectrum
        One exponent (``k = 1``, ``method="twin"``) with its standard error and history; its
        ``reortho_every`` holds ``renorm_every`` and ``final_basis`` the unit separation
        direction ``(ensemble, dim, 1)``.

    Raises
    ------
    TypeError
        When ``system`` is not a :class:`lyapkit.Map`.
    ValueError
        For a ``separation`` that is not a finite number above ``100 ε``, a map ``period`` that
        is not a positive finite number, and the argument errors of
        :func:`lyapkit.lyapunov_spectrum` (``steps``, ``transient``, ``renorm_every``,
        ``ensemble``, ``seed``, ``x0``, ``inputs``).
    lyapkit.BackendError
        For an unknown backend, one that is not installed, or one that cannot run ``system``.

    Warns
    -----
    lyapkit.lyapunov.TwinSaturationWarning
        When the separation left the linear range between renormalisations.
    lyapkit.NonFiniteTrajectoryWarning
        When the trajectories overflow or merge (``|y − x| = 0``); the exponent is NaN.

    See Also
    --------
    lyapkit.lyapunov_spectrum : The full spectrum by the QR method, with Jacobians.

    References
    ----------
    .. [1] G. Benettin, L. Galgani and J.-M. Strelcyn, "Kolmogorov entropy and numerical
       experiments", *Physical Review A* 14(6), 2338–2345 (1976).

    Examples
    --------
    >>> import lyapkit as lk
    >>> res = lk.max_lyapunov_twin(lk.Henon(), steps=1000, transient=100, seed=0, backend="numpy")
    >>> res.exponents.shape, res.method
    ((1,), 'twin')
    >>> bool(abs(res.exponents[0] - 0.4192) < 0.03)  # Sprott 2003: λ1 = 0.4192
    True
    """
    if isinstance(system, Map):
        check_period(system.period, f"the period of {system!r}")
    # Backends compute in float32 or float64 (and reject anything else), named by a string, a numpy
    # dtype or type, or a torch dtype.
    eps = float(np.finfo(np.float32 if "float32" in str(dtype) else np.float64).eps)
    if separation is None:
        separation = math.sqrt(eps)
    if (
        isinstance(separation, bool)
        or not isinstance(separation, numbers.Real)
        or not 100 * eps < separation < math.inf
    ):
        raise ValueError(
            f"separation must be a finite number above 100 ε = {100 * eps:.2g} of the dtype "
            f"(default √ε), got {separation!r}"
        )
    plan, times, seed = _prepare(
        system,
        steps=steps,
        x0=x0,
        inputs=inputs,
        k=1,
        transient=transient,
        every=renorm_every,
        ensemble=ensemble,
        seed=seed,
        history=history,
        finite_time=None,
        separation=float(separation),
        dtype=dtype,
        device=device,
        every_name="renorm_every",
    )
    chosen, reason = choose_backend(backend, system, plan=plan)
    record = _run("twin", chosen, system, plan, progress)
    return _pack("twin", system, chosen, reason, plan, times, record, seed)
