"""The numba backend: the whole tangent loop in nopython mode, ``prange`` over ensemble members.

Per step it evaluates the map's jitted kernels, maps the tangent vectors with explicit loops and
re-orthogonalises them with unnormalised modified Gram–Schmidt (see ``backends._numba_loops``):
for the small bases of low-dimensional maps a hand-written kernel specialised on the dimension is
far cheaper than a LAPACK call, and no logarithm is taken per step. The loop compiles once per
map kernels and ``(n, k)`` in a process (a few seconds; the first compilation also loads numba).
"""

from __future__ import annotations

import numpy as np

from lyapkit.backend import Backend, BackendError, Progress, TangentPlan, TangentRecord
from lyapkit.maps.base import Map

_CHUNKS = 100  # progress granularity when a progress bar is shown


def _chunks(total: int, progress: Progress) -> list[tuple[int, int]]:
    size = max(1, -(-total // _CHUNKS)) if progress.enabled else total
    return [(t, min(t + size, total)) for t in range(0, total, size)]


class NumbaBackend(Backend):
    """Numba-jitted backend for maps that provide numba kernels (built-in maps, ``from_numba``)."""

    name = "numba"
    description = "numba nopython loops, parallel over ensemble members (float64, CPU)"
    requires = ("numba",)
    extra = "numba"

    def supports(self, system: Map) -> bool:
        return system.numba_kernels() is not None

    def priority(self, system: Map) -> int:
        return 1

    @staticmethod
    def _check(plan: TangentPlan) -> None:
        if plan.dtype not in (None, "float64"):
            raise BackendError(f"the numba backend computes in float64, got dtype={plan.dtype!r}")
        if plan.device not in (None, "cpu"):
            raise BackendError(
                f"the numba backend runs on the CPU only, got device={plan.device!r}"
            )

    @staticmethod
    def _outputs(plan: TangentPlan, k: int):
        E = plan.x0.shape[0]
        return (
            np.zeros((E, k)),
            np.full((E, len(plan.record_at), k), np.nan),
            np.zeros(E),
            np.full(E, -1, dtype=np.int64),
        )

    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        from backends._numba_loops import tangent_kernel

        self._check(plan)
        kernels = system.numba_kernels()
        X = np.array(plan.x0, dtype=np.float64)
        V = np.ascontiguousarray(np.swapaxes(plan.basis0, -1, -2), dtype=np.float64)
        SQ = np.ones(V.shape[:2])
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        record_at = np.asarray(plan.record_at, dtype=np.int64)
        logscale, cum, cond, blow = self._outputs(plan, V.shape[1])
        chunk = tangent_kernel(system.dim, V.shape[1])
        for t0, t1 in _chunks(plan.total, progress):
            chunk(
                kernels.step,
                kernels.jacobian,
                kernels.params,
                X,
                V,
                SQ,
                U,
                t0,
                t1,
                plan.transient,
                plan.steps,
                plan.every,
                record_at,
                logscale,
                cum,
                cond,
                blow,
            )
            progress.update(t1 - t0)
        with np.errstate(all="ignore"):  # members that blew up have SQ = 0: NaN basis
            basis = np.swapaxes(V / np.sqrt(SQ)[..., None], -1, -2)
        return TangentRecord(cum, cond, blow, X, basis)

    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        from backends._numba_loops import twin_chunk

        self._check(plan)
        kernels = system.numba_kernels()
        X = np.array(plan.x0, dtype=np.float64)
        Y = X + plan.separation * plan.basis0[..., 0]
        U = np.ascontiguousarray(plan.inputs, dtype=np.float64)
        record_at = np.asarray(plan.record_at, dtype=np.int64)
        period = float(system.period) if system.period is not None else 0.0
        acc, cum, _, blow = self._outputs(plan, 1)
        cond = np.ones(len(X))  # one vector: perfectly conditioned
        for t0, t1 in _chunks(plan.total, progress):
            twin_chunk(
                kernels.step,
                kernels.params,
                X,
                Y,
                U,
                t0,
                t1,
                plan.transient,
                plan.steps,
                plan.every,
                plan.separation,
                period,
                record_at,
                acc,
                cum,
                blow,
            )
            progress.update(t1 - t0)
        d = Y - X
        if system.period is not None:
            d = (d + period / 2) % period - period / 2
        basis = (d / np.linalg.norm(d, axis=-1, keepdims=True))[..., None]
        return TangentRecord(cum, cond, blow, X, basis)
