"""The tangent, twin, trajectory and covariant-vector loops shared by the array backends (numpy
and torch).

The loops are written once against an :class:`ArrayOps` strategy; they advance all ensemble members
together (batched), one vectorised step per time step.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import numpy as np

from lyapkit.backend import (
    CovariantPlan,
    CovariantRecord,
    Progress,
    TangentPlan,
    TangentRecord,
    TrajectoryPlan,
    TrajectoryRecord,
)
from lyapkit.maps.base import Map

_CHECK_EVERY = 1024  # steps between progress updates and the all-members-blown-up check


class ArrayOps(abc.ABC):
    """Array operations a backend supplies to the shared loops."""

    xp: Any

    @abc.abstractmethod
    def asarray(self, a: np.ndarray) -> Any:
        """Convert a float64 numpy array to the backend's array type, dtype and device."""

    @abc.abstractmethod
    def accumulator(self, a: np.ndarray) -> Any:
        """Like ``asarray`` but always float64: sums over many steps keep full precision."""

    @abc.abstractmethod
    def to_numpy(self, a: Any) -> np.ndarray:
        """Convert back to a float64 numpy array."""

    @abc.abstractmethod
    def qr(self, Q: Any) -> tuple[Any, Any]:
        """Batched thin QR of ``(E, n, k)``: return ``(Q, diag(R))`` with ``diag(R) ≥ 0``."""

    @abc.abstractmethod
    def qr_factors(self, Q: Any) -> tuple[Any, Any, Any]:
        """Batched Householder thin QR of ``(E, n, k)``: ``(Q, R, diag(R))`` with ``diag(R) ≥ 0``."""

    @abc.abstractmethod
    def solve_upper(self, R: Any, C: Any) -> Any:
        """``R⁻¹ C`` for batched upper-triangular ``R`` (E, k, k) and ``C`` (E, k, k)."""


class _Recorder:
    """Cumulative sums, worst conditioning and blow-up steps, shared by the tangent and twin loops.

    Per renormalisation it spends a handful of array operations and no host synchronisation: a
    check value per member (``max r + Σ state``, non-finite once anything overflowed) goes into a
    buffer that is inspected on the host every ``_CHECK_EVERY`` steps. An ``r`` of zero (a
    collapsed direction) is not a blow-up: it adds ``log 0 = −inf`` to its sum, and that
    renormalisation is left out of the condition estimate. The records are written into one
    preallocated ``(E, R, k)`` array on the backend's device.
    """

    def __init__(self, ops: ArrayOps, plan: TangentPlan, k: int):
        E = plan.x0.shape[0]
        self.ops, self.plan, self.xp = ops, plan, ops.xp
        self.acc = ops.accumulator(np.zeros((E, k)))
        self.log_cond = ops.accumulator(np.zeros(E))
        self.checks = ops.accumulator(np.zeros((E, _CHECK_EVERY)))
        self.check_steps: list[int] = []
        self.blow = np.full(E, -1, dtype=np.int64)
        self.cumulative = ops.accumulator(np.full((E, len(plan.record_at), k), np.nan))
        self.recorded = 0

    def renormalised(self, t: int, r: Any, *states: Any) -> None:
        """Book the stretching factors ``r`` (E, k) of the renormalisation after step ``t``."""
        xp, plan = self.xp, self.plan
        log_r = xp.log(r)
        low = xp.amin(log_r, -1)
        gap = xp.where(low > -math.inf, xp.amax(log_r, -1) - low, 0.0)
        self.log_cond = xp.maximum(self.log_cond, gap)
        check = xp.amax(r, -1)  # finite iff r and every state are (a sum of them could overflow)
        for state in states:
            check = xp.maximum(check, xp.amax(xp.abs(state), -1))
        self.checks[:, len(self.check_steps)] = check
        self.check_steps.append(t + 1)
        if len(self.check_steps) == _CHECK_EVERY:
            self._inspect()
        s = t + 1 - plan.transient
        if s > 0:
            self.acc = self.acc + log_r
            if self.recorded < len(plan.record_at) and s == plan.record_at[self.recorded]:
                self.cumulative[:, self.recorded] = self.acc
                self.recorded += 1

    def _inspect(self) -> None:
        """Find the first non-finite check of each member in the buffer; empty the buffer."""
        if not self.check_steps:
            return
        bad = ~np.isfinite(self.ops.to_numpy(self.checks[:, : len(self.check_steps)]))
        first = np.asarray(self.check_steps)[bad.argmax(axis=1)]
        new = bad.any(axis=1) & (self.blow < 0)
        self.blow[new] = first[new]
        self.check_steps = []

    def all_blown(self) -> bool:
        self._inspect()
        return bool((self.blow >= 0).all())

    def finish(self, x: Any, basis: Any, max_separation: Any = None) -> TangentRecord:
        ops = self.ops
        self._inspect()
        with np.errstate(over="ignore"):  # a condition number beyond float64 is inf
            max_condition = np.exp(ops.to_numpy(self.log_cond))
        return TangentRecord(
            cumulative=ops.to_numpy(self.cumulative),
            max_condition=max_condition,
            blowup_step=self.blow,
            final_state=ops.to_numpy(x),
            final_basis=ops.to_numpy(basis),
            max_separation=None if max_separation is None else ops.to_numpy(max_separation),
        )


def _inputs(ops: ArrayOps, plan: TangentPlan) -> Any:
    return ops.asarray(plan.inputs) if plan.inputs.shape[-1] > 0 else None


def _checkpoint(t: int, rec: _Recorder, progress: Progress) -> bool:
    """Report progress every few steps; return True when every member has blown up."""
    if (t + 1) % _CHECK_EVERY == 0:
        progress.update(_CHECK_EVERY)
        return rec.all_blown()
    return False


def tangent_loop(
    system: Map, plan: TangentPlan, ops: ArrayOps, progress: Progress
) -> TangentRecord:
    """Benettin/Shimada–Nagashima QR method: ``Q ← J_t Q``, re-orthonormalised by QR."""
    x, Q, U = ops.asarray(plan.x0), ops.asarray(plan.basis0), _inputs(ops, plan)
    rec = _Recorder(ops, plan, Q.shape[-1])
    for t in range(plan.total):
        x, J = system.step_and_jacobian(x, None if U is None else U[:, t])
        Q = J @ Q
        if plan.renormalise_after(t):
            Q, r = ops.qr(Q)
            rec.renormalised(t, r, x)
        if _checkpoint(t, rec, progress):
            break
    progress.update((t + 1) % _CHECK_EVERY)  # the steps since the last checkpoint
    return rec.finish(x, Q)


def twin_loop(system: Map, plan: TangentPlan, ops: ArrayOps, progress: Progress) -> TangentRecord:
    """Two-trajectory estimate of the largest exponent: renormalise ``y − x`` to ``δ0`` periodically."""
    xp, sep, period = ops.xp, plan.separation, system.period

    def separation(x, y):
        """``(y − x, |y − x|)``, the difference wrapped on a torus."""
        d = y - x
        if period is not None:
            d = (d + period / 2) % period - period / 2
        return d, xp.sqrt((d * d).sum(-1))[..., None]

    x, U = ops.asarray(plan.x0), _inputs(ops, plan)
    y = x + sep * ops.asarray(plan.basis0[..., 0])
    rec = _Recorder(ops, plan, 1)
    widest = ops.accumulator(np.zeros(plan.x0.shape[0]))  # max d / max(1, |x|∞) after transient
    for t in range(plan.total):
        u = None if U is None else U[:, t]
        x, y = system.step(x, u), system.step(y, u)
        if plan.renormalise_after(t):
            d, dist = separation(x, y)
            if t + 1 > plan.transient:
                size = xp.amax(xp.abs(x), -1)
                widest = xp.fmax(widest, dist[..., 0] / xp.where(size > 1, size, 1.0))
            y = x + d * (sep / dist)
            rec.renormalised(t, dist / sep, x, y)
        if _checkpoint(t, rec, progress):
            break
    progress.update((t + 1) % _CHECK_EVERY)  # the steps since the last checkpoint
    d, dist = separation(x, y)
    return rec.finish(x, (d / dist)[..., None], widest)


def trajectory_loop(
    system: Map, plan: TrajectoryPlan, ops: ArrayOps, progress: Progress
) -> TrajectoryRecord:
    """States ``x_{t+1} = f(x_t, u_t)`` and Jacobians ``J_t = ∂f/∂x (x_t, u_t)`` from
    ``t = first_jacobian`` on, of all members at once.

    Each block of ``_CHECK_EVERY`` steps is stacked on the backend's device and copied once into
    the float64 host arrays, so a GPU holds one block and synchronises once per block.
    """
    E, n = plan.x0.shape
    first = plan.first_jacobian
    states = np.empty((E, plan.steps + 1, n))
    jacobians = np.empty((E, plan.steps - first, n, n))
    states[:, 0] = plan.x0
    x, U = ops.asarray(plan.x0), _inputs(ops, plan)
    for t0 in range(0, plan.steps, _CHECK_EVERY):
        t1 = min(t0 + _CHECK_EVERY, plan.steps)
        xs, Js = [], []
        for t in range(t0, t1):
            u = None if U is None else U[:, t]
            if t >= first:
                x, J = system.step_and_jacobian(x, u)
                Js.append(J)
            else:
                x = system.step(x, u)
            xs.append(x)
        states[:, t0 + 1 : t1 + 1] = ops.to_numpy(ops.xp.stack(xs, 1))
        if Js:
            jacobians[:, t1 - first - len(Js) : t1 - first] = ops.to_numpy(ops.xp.stack(Js, 1))
        progress.update(t1 - t0)
    return TrajectoryRecord(states=states, jacobians=jacobians)


def covariant_loop(
    system: Map, plan: CovariantPlan, ops: ArrayOps, progress: Progress
) -> CovariantRecord:
    """Ginelli's method, all members at once: a forward pass ``J_s Q_s = Q_{s+1} R_s`` that keeps
    every post-transient ``R_s`` (``k²`` numbers a step) and the bases ``Q_s`` at the kept steps,
    then a backward pass ``C_s = R_s⁻¹ C_{s+1}`` (unit columns), ``V_s = Q_s C_s``.

    The factors stay on the backend's device; a kept basis is replaced by its CLVs, which are
    copied to the host once, at the end.
    """
    xp, E = ops.xp, plan.x0.shape[0]
    x, Q, U = ops.asarray(plan.x0), ops.asarray(plan.basis0), _inputs(ops, plan)
    keep = [int(s) for s in plan.keep]
    factors: list[Any] = []
    kept_bases: list[Any] = []
    kept_states: list[Any] = []
    log_stretch = ops.accumulator(np.zeros((E, plan.basis0.shape[2])))
    blow = ops.accumulator(np.full(E, -1.0))
    for t in range(plan.total):
        s = t - plan.transient
        if len(kept_bases) < len(keep) and s == keep[len(kept_bases)]:
            kept_bases.append(Q)
            kept_states.append(x)
        x, J = system.step_and_jacobian(x, None if U is None else U[:, t])
        Q, R, r = ops.qr_factors(J @ Q)
        if s >= 0:
            factors.append(R)
            if s < plan.steps:
                log_stretch = log_stretch + xp.log(r)
        ok = xp.isfinite(x).all(-1) & (xp.isfinite(r) & (r > 0)).all(-1)
        blow = xp.where((blow < 0) & ~ok, float(t + 1), blow)
        if (t + 1) % _CHECK_EVERY == 0:
            progress.update(_CHECK_EVERY)
    progress.update(plan.total % _CHECK_EVERY)
    C, i = ops.asarray(plan.coefficients0), len(keep) - 1
    for s in range(len(factors) - 1, -1, -1):
        C = ops.solve_upper(factors[s], C)
        C = C / xp.sqrt((C * C).sum(-2))[..., None, :]
        factors[s] = None  # freed as the pass goes
        if i >= 0 and keep[i] == s:
            V = kept_bases[i] @ C
            kept_bases[i] = V / xp.sqrt((V * V).sum(-2))[..., None, :]
            i -= 1
    return CovariantRecord(
        vectors=ops.to_numpy(xp.stack(kept_bases, 1)),
        states=ops.to_numpy(xp.stack(kept_states, 1)),
        log_stretch=ops.to_numpy(log_stretch),
        blowup_step=ops.to_numpy(blow).astype(np.int64),
    )
