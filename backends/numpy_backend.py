"""The numpy reference backend: batched numpy, Householder QR (LAPACK) every re-orthonormalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from backends._array_loop import ArrayOps, tangent_loop, twin_loop
from lyapkit.backend import Backend, BackendError, Progress, TangentPlan, TangentRecord
from lyapkit.maps.base import Map


class NumpyOps(ArrayOps):
    xp = np

    def __init__(self, dtype: str | None):
        self.dtype = np.dtype(dtype or "float64")
        if self.dtype not in (np.float32, np.float64):
            raise BackendError(
                f"the numpy backend computes in float32 or float64 (LAPACK has no other QR), "
                f"got dtype={dtype!r}"
            )

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=self.dtype)

    def accumulator(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, dtype=np.float64)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def qr(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Q, R = np.linalg.qr(Q)
        d = np.diagonal(R, axis1=-2, axis2=-1)
        sign = np.where(d < 0, -1.0, 1.0).astype(Q.dtype)
        return Q * sign[..., None, :], np.abs(d)


class NumpyBackend(Backend):
    """Reference implementation; runs every map whose kernels accept numpy arrays."""

    name = "numpy"
    description = "numpy reference backend (batched over ensemble members, LAPACK QR)"

    def supports(self, system: Map) -> bool:
        return "numpy" in system.namespaces

    def _run(self, loop, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        if plan.device not in (None, "cpu"):
            raise BackendError(
                f"the numpy backend runs on the CPU only, got device={plan.device!r}"
            )
        with np.errstate(all="ignore"):  # blown-up members are reported, not warned about per step
            return loop(system, plan, NumpyOps(plan.dtype), progress)

    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(tangent_loop, system, plan, progress)

    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(twin_loop, system, plan, progress)
