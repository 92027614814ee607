"""The tangent and twin loops shared by the array backends (numpy and torch).

The loops are written once against an :class:`ArrayOps` strategy; they advance all ensemble members
together (batched), one vectorised step per time step.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from lyapkit.backend import Progress, TangentPlan, TangentRecord
from lyapkit.maps.base import Map

_CHECK_EVERY = 1024  # steps between progress updates and the all-members-blown-up check


class ArrayOps(abc.ABC):
    """Array operations a backend supplies to the shared loops."""

    xp: Any

    @abc.abstractmethod
    def asarray(self, a: np.ndarray) -> Any:
        """Convert a float64 numpy array to the backend's array type, dtype and device."""

    @abc.abstractmethod
    def to_numpy(self, a: Any) -> np.ndarray:
        """Convert back to a float64 numpy array."""

    @abc.abstractmethod
    def qr(self, Q: Any) -> tuple[Any, Any]:
        """Batched thin QR of ``(E, n, k)``: return ``(Q, diag(R))`` with ``diag(R) ≥ 0``."""

    def all_true(self, a: Any) -> bool:
        return bool(a.all())


def _finite_rows(xp: Any, *arrays: Any) -> Any:
    """Per-member flag: every entry of every array (leading axis = member) is finite."""
    ok = None
    for a in arrays:
        row = xp.isfinite(a.reshape(a.shape[0], -1)).all(-1)
        ok = row if ok is None else ok & row
    return ok


class _Recorder:
    """Cumulative sums, worst conditioning and blow-up steps, shared by the tangent and twin loops."""

    def __init__(self, ops: ArrayOps, plan: TangentPlan, k: int):
        xp, E = ops.xp, plan.x0.shape[0]
        self.ops, self.plan, self.xp = ops, plan, xp
        self.acc = ops.asarray(np.zeros((E, k)))
        self.cond = ops.asarray(np.zeros(E))
        self.blow = ops.asarray(np.full(E, -1.0))
        self.records: list[Any] = []

    def renormalised(self, t: int, r: Any, *states: Any) -> None:
        """Book the stretching factors ``r`` (E, k) of the renormalisation after step ``t``."""
        xp, plan = self.xp, self.plan
        self.cond = xp.maximum(self.cond, xp.amax(r, -1) / xp.amin(r, -1))
        bad = ~_finite_rows(xp, r, *states)
        self.blow = xp.where(bad & (self.blow < 0), self.blow * 0 + (t + 1), self.blow)
        s = t + 1 - plan.transient
        if s > 0:
            self.acc = self.acc + xp.log(r)
            if len(self.records) < len(plan.record_at) and s == plan.record_at[len(self.records)]:
                self.records.append(self.acc)

    def all_blown(self) -> bool:
        return self.ops.all_true(self.blow >= 0)

    def finish(self, x: Any, basis: Any) -> TangentRecord:
        ops, plan = self.ops, self.plan
        cum = np.full((plan.x0.shape[0], len(plan.record_at), self.acc.shape[-1]), np.nan)
        for i, rec in enumerate(self.records):
            cum[:, i] = ops.to_numpy(rec)
        return TangentRecord(
            cumulative=cum,
            max_condition=ops.to_numpy(self.cond),
            blowup_step=ops.to_numpy(self.blow).astype(np.int64),
            final_state=ops.to_numpy(x),
            final_basis=ops.to_numpy(basis),
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
    progress.update(plan.total % _CHECK_EVERY)
    return rec.finish(x, Q)


def twin_loop(system: Map, plan: TangentPlan, ops: ArrayOps, progress: Progress) -> TangentRecord:
    """Two-trajectory estimate of the largest exponent: renormalise ``y − x`` to ``δ0`` periodically."""
    xp, sep, period = ops.xp, plan.separation, system.period
    x, U = ops.asarray(plan.x0), _inputs(ops, plan)
    y = x + sep * ops.asarray(plan.basis0[..., 0])
    rec = _Recorder(ops, plan, 1)
    for t in range(plan.total):
        u = None if U is None else U[:, t]
        x, y = system.step(x, u), system.step(y, u)
        if plan.renormalise_after(t):
            d = y - x
            if period is not None:
                d = (d + period / 2) % period - period / 2
            dist = xp.sqrt((d * d).sum(-1))[..., None]
            y = x + d * (sep / dist)
            rec.renormalised(t, dist / sep, x, y)
        if _checkpoint(t, rec, progress):
            break
    progress.update(plan.total % _CHECK_EVERY)
    d = y - x
    return rec.finish(x, (d / xp.sqrt((d * d).sum(-1))[..., None])[..., None])
