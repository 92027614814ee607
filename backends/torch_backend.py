"""The torch backend: ensemble members batched on the CPU or a GPU, in float32 or float64.

Bases with at least ``CHOLESKY_QR_MIN_DIM`` rows are re-orthonormalised by CholeskyQR, a second
pass on the trailing columns, or Householder QR, as ``lyapkit.backends._cholesky_qr`` decides (one
decision for all members of a batch); smaller ones by Householder QR.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lyapkit._array import torch_device
from lyapkit.backend import (
    Backend,
    BackendError,
    CovariantPlan,
    CovariantRecord,
    Progress,
    TangentPlan,
    TangentRecord,
    TrajectoryPlan,
    TrajectoryRecord,
)
from lyapkit.backends._array_loop import (
    ArrayOps,
    covariant_loop,
    tangent_loop,
    trajectory_loop,
    twin_loop,
)
from lyapkit.backends._cholesky_qr import (
    CHOLESKY_QR_MIN_DIM,
    HOUSEHOLDER,
    ONE_PASS,
    TWO_PASSES,
    max_norm_deviation,
    one_pass_min_sine2,
    two_pass_min_sine2,
)
from lyapkit.maps.base import Map


class TorchOps(ArrayOps):
    def __init__(self, dtype: str | None, device: str | None):
        import torch

        self.xp = torch
        named = getattr(torch, dtype, None) if isinstance(dtype, str) else None
        self.dtype = torch.float64 if dtype is None else named
        if self.dtype not in (torch.float32, torch.float64):
            raise BackendError(
                f"the torch backend computes in 'float32' or 'float64' (torch has no QR or "
                f"Cholesky in half precision), got dtype={dtype!r}"
            )
        try:
            self.device = torch_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except ValueError as err:
            raise BackendError(str(err)) from err
        self.eps = float(torch.finfo(self.dtype).eps)

    def asarray(self, a: np.ndarray) -> Any:
        return self.xp.as_tensor(a, dtype=self.dtype, device=self.device)

    def accumulator(self, a: np.ndarray) -> Any:
        return self.xp.as_tensor(a, dtype=self.xp.float64, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().to("cpu", self.xp.float64).numpy()

    def qr(self, Q: Any) -> tuple[Any, Any]:
        if Q.shape[-2] >= CHOLESKY_QR_MIN_DIM:
            return self.cholesky_qr(Q)[:2]
        return self._householder(Q)

    def _householder(self, Q: Any) -> tuple[Any, Any]:
        """Householder QR, signs chosen so that ``diag R ≥ 0``; returns ``(Q, diag R)``."""
        Q, R = self.xp.linalg.qr(Q)
        d = R.diagonal(dim1=-2, dim2=-1)
        sign = self.xp.where(d < 0, -1.0, 1.0).to(Q.dtype)
        return Q * sign[..., None, :], d.abs()

    def qr_factors(self, Q: Any) -> tuple[Any, Any, Any]:
        Q, R = self.xp.linalg.qr(Q)
        d = R.diagonal(dim1=-2, dim2=-1)
        sign = self.xp.where(d < 0, -1.0, 1.0).to(Q.dtype)
        return Q * sign[..., None, :], R * sign[..., :, None], d.abs()

    def solve_upper(self, R: Any, C: Any) -> Any:
        return self.xp.linalg.solve_triangular(R, C, upper=True)

    def _cholesky_pass(self, Q: Any) -> tuple[Any, Any, int]:
        """One CholeskyQR pass on every member: ``(Q, diag R, first)``, ``first`` the first column
        not accepted by every member (``k`` when all are), or −1 when the pass failed or cannot be
        trusted; one host synchronisation."""
        xp, k = self.xp, Q.shape[-1]
        # Columns scaled by exact powers of two, so that the Gram matrix neither under- nor overflows.
        largest = Q.abs().amax(-2, keepdim=True)
        exponent = xp.where((largest > 0) & xp.isfinite(largest), xp.frexp(largest)[1], 0)
        Q = Q * xp.ldexp(xp.ones_like(largest), -exponent)
        G = Q.mT @ Q
        U, info = xp.linalg.cholesky_ex(G, upper=True)
        u = U.diagonal(dim1=-2, dim2=-1)
        sine2 = u * u / G.diagonal(dim1=-2, dim2=-1)
        Q = xp.linalg.solve_triangular(U, Q, upper=True, left=False)
        accepted = (sine2 > one_pass_min_sine2(self.eps)) & (
            ((Q * Q).sum(-2) - 1).abs() <= max_norm_deviation(self.eps)
        )
        bad = (~accepted).reshape(-1, k).any(0)
        sound = (info == 0).all() & (sine2 > two_pass_min_sine2(self.eps, k)).all()
        first = int(xp.where(sound, xp.where(bad.any(), bad.long().argmax(), k), -1))
        return Q, u * xp.ldexp(xp.ones_like(u), exponent[..., 0, :]), first

    def cholesky_qr(self, Q: Any) -> tuple[Any, Any, int]:
        """``(Q, diag R, method)`` by the policy of ``lyapkit.backends._cholesky_qr``; ``method`` is
        ``ONE_PASS``, ``TWO_PASSES`` or ``HOUSEHOLDER``."""
        xp, k = self.xp, Q.shape[-1]
        Q1, r, first = self._cholesky_pass(Q)
        if first == k:
            return Q1, r, ONE_PASS
        if first >= 0:
            # Second pass on the trailing columns: project out the leading ones, then CholeskyQR.
            lead, tail = Q1[..., :first], Q1[..., first:]
            tail, r2, again = self._cholesky_pass(tail - lead @ (lead.mT @ tail))
            if again == k - first:
                r = xp.cat([r[..., :first], r[..., first:] * r2], -1)
                return xp.cat([lead, tail], -1), r, TWO_PASSES
        return *self._householder(Q), HOUSEHOLDER


class TorchBackend(Backend):
    """Batched torch backend; runs built-in maps and torch maps (``lyapkit.from_torch``)."""

    name = "torch"
    description = "PyTorch backend (batched over ensemble members; CPU or GPU; float32 or float64)"
    requires = ("torch",)
    extra = "torch"

    def supports(self, system: Map) -> bool:
        return "torch" in system.namespaces

    def priority(self, system: Map) -> int:
        # Preferred for torch maps, which run nowhere else. On the CPU the numba backend is faster
        # for maps it runs (tanh network, 2 cores, one trajectory: n = 64 numba 56 µs per step,
        # torch 344 µs; n = 256 1.7 ms and 2.6 ms); ask for torch to use a GPU.
        return 2 if system.namespaces == {"torch"} else 0

    def _run(
        self, loop, system: Map, plan: TangentPlan | TrajectoryPlan, progress: Progress
    ) -> TangentRecord | TrajectoryRecord:
        import torch

        with torch.no_grad():
            return loop(system, plan, TorchOps(plan.dtype, plan.device), progress)

    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(tangent_loop, system, plan, progress)

    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(twin_loop, system, plan, progress)

    def trajectory(self, system: Map, plan: TrajectoryPlan, progress: Progress) -> TrajectoryRecord:
        return self._run(trajectory_loop, system, plan, progress)

    def covariant(self, system: Map, plan: CovariantPlan, progress: Progress) -> CovariantRecord:
        return self._run(covariant_loop, system, plan, progress)
