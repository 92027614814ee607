"""The numpy reference backend: batched numpy, Householder QR (LAPACK) every re-orthonormalisation."""

from __future__ import annotations

from typing import Any

import numpy as np

from lyapkit.backend import (
    Backend,
    BackendError,
    CovariantPlan,
    CovariantRecord,
    GGNPlan,
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

    def qr_factors(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Q, R = np.linalg.qr(Q)
        d = np.diagonal(R, axis1=-2, axis2=-1)
        sign = np.where(d < 0, -1.0, 1.0).astype(Q.dtype)
        return Q * sign[..., None, :], R * sign[..., :, None], np.abs(d)

    def solve_upper(self, R: np.ndarray, C: np.ndarray) -> np.ndarray:
        # LU with partial pivoting of a triangular matrix pivots nothing: back substitution.
        try:
            return np.linalg.solve(R, C)
        except np.linalg.LinAlgError:  # a collapsed direction (R_ii = 0): that member gets NaN
            singular = (np.diagonal(R, axis1=-2, axis2=-1) == 0).any(-1)
            out = np.full_like(C, np.nan)
            out[~singular] = np.linalg.solve(R[~singular], C[~singular])
            return out


#: Cost model of a tangent step on this backend: a fixed cost (interpreter and small LAPACK calls)
#: plus the batched arithmetic, per state dimension n, exponents k and members E. Measured on 2
#: cores: 156 µs (Hénon, E = 1), 209 µs (Hénon, E = 64), 0.41 ms (tanh network n = k = 64, E = 1),
#: 2.2 ms (the same, E = 8).
STEP_SECONDS, SECONDS_PER_FLOP = 1.5e-4, 1e-9


def numpy_seconds(system: Map, plan: TangentPlan) -> float:
    """Expected seconds of ``plan`` on the numpy backend: ``total (STEP_SECONDS + SECONDS_PER_FLOP
    E n² k)``."""
    E, n, k = plan.basis0.shape
    return plan.total * (STEP_SECONDS + SECONDS_PER_FLOP * E * n * n * k)


class NumpyBackend(Backend):
    """Reference implementation; runs every map whose kernels accept numpy arrays."""

    name = "numpy"
    description = "numpy reference backend (batched over ensemble members, LAPACK QR)"

    def supports(self, system: Map) -> bool:
        return "numpy" in system.namespaces

    def estimated_seconds(self, system: Map, plan: TangentPlan) -> float:
        return numpy_seconds(system, plan)

    DEVICES = (None, "cpu")

    def accepts(self, dtype: str | None, device: str | None) -> bool:
        return device in self.DEVICES

    def _run(
        self, loop, system: Map, plan: TangentPlan | TrajectoryPlan, progress: Progress
    ) -> TangentRecord | TrajectoryRecord:
        if plan.device not in self.DEVICES:
            raise BackendError(
                f"the numpy backend runs on the CPU only, got device={plan.device!r}"
            )
        with np.errstate(all="ignore"):  # blown-up members are reported, not warned about per step
            return loop(system, plan, NumpyOps(plan.dtype), progress)

    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(tangent_loop, system, plan, progress)

    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        return self._run(twin_loop, system, plan, progress)

    def trajectory(self, system: Map, plan: TrajectoryPlan, progress: Progress) -> TrajectoryRecord:
        return self._run(trajectory_loop, system, plan, progress)

    def covariant(self, system: Map, plan: CovariantPlan, progress: Progress) -> CovariantRecord:
        return self._run(covariant_loop, system, plan, progress)

    def ggn(self, system: Map, plan: GGNPlan, vectors: np.ndarray | None = None) -> np.ndarray:
        with np.errstate(all="ignore"):  # an overflow is reported once, by lyapkit.sensitivity
            if vectors is None:
                return _ggn_dense(system, plan)
            return _ggn_products(system, plan, vectors)


def _ggn_inputs(system: Map, plan: GGNPlan) -> list[np.ndarray | None]:
    """``u_t`` of every member, ``(E, m)`` per step (None for autonomous maps)."""
    return [plan.inputs[:, t] if system.input_dim else None for t in range(plan.steps)]


def _ggn_products(system: Map, plan: GGNPlan, V: np.ndarray) -> np.ndarray:
    """``G V`` by a forward tangent sweep and an adjoint (backward) sweep, batched over members.

    Forward: ``s_{t+1} = J_t s_t + (∂f/∂θ)_t V`` (``s_0 = 0``) and, at each output,
    ``w_t = (1/N) H_ℓ(y_t) C s_t``. Backward: ``λ_T = Cᵀ w_T``,
    ``G V = Σ_t (∂f/∂θ)_tᵀ λ_{t+1}`` with ``λ_t = J_tᵀ λ_{t+1} + Cᵀ w_t``.
    """
    C, c, names, us = plan.readout, plan.readout_bias, plan.parameters, _ggn_inputs(system, plan)
    E, n = plan.x0.shape
    x, s, xs, w = plan.x0, np.zeros((E, n, V.shape[1])), [], {}  # w[t]: output after step t
    for t, u in enumerate(us):
        xs.append(x)
        x, J = system.step_and_jacobian(x, u)
        s = J @ s + system.parameter_jvp(xs[t], u, V, names)
        if plan.is_output(t):
            w[t] = plan.output_curvature(x @ C.T + c, C @ s)
    lam, out = np.zeros_like(s), np.zeros(V.shape)
    for t in reversed(range(plan.steps)):
        if t in w:
            lam = lam + C.T @ w[t]
        out += system.parameter_vjp(xs[t], us[t], lam, names)
        if t > 0:
            lam = np.swapaxes(system.jacobian(xs[t], us[t]), -1, -2) @ lam
    return out


def _ggn_dense(system: Map, plan: GGNPlan) -> np.ndarray:
    """``G`` from the full forward sensitivities ``S_{t+1} = J_t S_t + (∂f/∂θ)_t`` (E, n, P):
    ``G = Σ_t (C S_t)ᵀ (1/N) H_ℓ(y_t) (C S_t)`` over the outputs, one GEMM per output step."""
    C, c, names = plan.readout, plan.readout_bias, plan.parameters
    P = plan.size
    x, S, G = plan.x0, np.zeros(plan.x0.shape + (P,)), np.zeros((P, P))
    for t, u in enumerate(_ggn_inputs(system, plan)):
        x_next, J = system.step_and_jacobian(x, u)
        S = J @ S + system.parameter_jacobian(x, u, names)
        x = x_next
        if plan.is_output(t):
            A = C @ S  # (E, o, P): J_y of every member
            B = plan.output_curvature(x @ C.T + c, A)
            G += A.reshape(-1, P).T @ B.reshape(-1, P)
    return G
