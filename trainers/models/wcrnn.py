"""Weakly coupled residual RNNs (WCRNNs, Dubinin & Effenberger 2023) as trainable modules.

With ``a_t = tanh(W x_{t−1} + V s_t + b)`` and coupling ``γ`` (scalar or per unit)::

    linear residual:  x_t = R x_{t−1} + γ ⊙ a_t
    type A:           x_t = tanh(R x_{t−1}) + γ ⊙ a_t
    type B:           x_t = tanh(R x_{t−1} + γ ⊙ (W x_{t−1} + V s_t + b))

``R`` is a fixed residual (trainable on request) or any callable ``ρ(x)`` replacing ``R x``; ``W``,
``V``, ``b`` and the affine readout are trained and initialised as PyTorch's ``nn.Linear``
(Kaiming-uniform).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from lyapkit.maps import Map, WCRNNMap
from lyapkit.theory import WCRNNPrediction, wcrnn_prediction
from lyapkit.trainers.models.base import RecurrentModel

VARIANTS = ("linear", "A", "B")


def _real_tensor(value: np.ndarray | torch.Tensor | float, name: str) -> torch.Tensor:
    """A detached copy of ``value`` in the default dtype; complex values are refused."""
    value = value.detach().cpu() if isinstance(value, torch.Tensor) else np.asarray(value)
    if value.dtype.is_complex if isinstance(value, torch.Tensor) else np.iscomplexobj(value):
        raise ValueError(f"{name} must be real, got dtype {value.dtype}")
    return torch.as_tensor(value).to(torch.get_default_dtype()).clone()


class _ResidualLoop(torch.autograd.Function):
    """The linear-residual / type-A time loop without an autograd tape.

    Forward: ``x_t = ρ(R x_{t−1}) + γ ⊙ tanh(W x_{t−1} + d_t)`` with ``ρ = id`` (linear) or ``tanh``
    (type A) and the input drive ``d_t = V s_t + b`` computed beforehand. Backward is BPTT written
    out: with ``g_t = ∂L/∂x_t``, ``δ_t = g_t ⊙ γ ⊙ (1 − a_t²)`` and ``ε_t = g_t ⊙ ρ'``::

        g_{t−1} += Rᵀ ε_t + Wᵀ δ_t,   ∂L/∂W = Σ_t δ_t x_{t−1}ᵀ,   ∂L/∂R = Σ_t ε_t x_{t−1}ᵀ,   ∂L/∂d_t = δ_t.

    One matrix product per step each way (``[R; W]`` stacked): a training step costs about 1.6× the
    fused ``nn.RNN`` kernel's (``benchmarks/bench_models.py``). Not twice differentiable: curvature
    passes use the reference loop (:meth:`RecurrentModel.reference_path`).
    """

    @staticmethod
    def forward(ctx, drive, x0, R, W, gamma, tanh_residual: bool):
        n, steps = R.shape[0], drive.shape[0]
        stacked = torch.cat([R, W]).T.contiguous()  # x @ stacked = [R x, W x]
        xs = drive.new_empty((steps + 1, *x0.shape))
        acts = torch.empty_like(drive)
        residuals = torch.empty_like(drive) if tanh_residual else None
        xs[0] = x0
        for t in range(steps):
            z = xs[t] @ stacked
            a = torch.tanh(z[:, n:].add_(drive[t]), out=acts[t])
            r = torch.tanh(z[:, :n], out=residuals[t]) if tanh_residual else z[:, :n]
            torch.addcmul(r, gamma, a, out=xs[t + 1])
        ctx.save_for_backward(xs, acts, residuals, R, W, gamma)
        return xs[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        xs, acts, residuals, R, W, gamma = ctx.saved_tensors
        n, steps = R.shape[0], acts.shape[0]
        stacked = torch.cat([R, W])  # [ε, δ] @ stacked = Rᵀε + Wᵀδ
        errors = torch.empty((steps, xs.shape[1], 2 * n), dtype=xs.dtype, device=xs.device)
        g = grad_states[steps - 1].clone()
        for t in range(steps - 1, -1, -1):
            eps, delta = errors[t, :, :n], errors[t, :, n:]
            if residuals is None:
                eps.copy_(g)
            else:
                torch.mul(g, 1 - residuals[t] * residuals[t], out=eps)
            torch.mul(g * gamma, 1 - acts[t] * acts[t], out=delta)
            g = errors[t] @ stacked
            if t > 0:
                g += grad_states[t - 1]
        flat_x = xs[:-1].reshape(-1, n)
        grad_RW = errors.reshape(-1, 2 * n).T @ flat_x  # rows: [∂L/∂R; ∂L/∂W]
        grad_R = grad_RW[:n] if ctx.needs_input_grad[2] else None
        grad_x0 = g if ctx.needs_input_grad[1] else None
        return errors[..., n:], grad_x0, grad_R, grad_RW[n:], None, None


class WCRNN(RecurrentModel):
    """Weakly coupled residual RNN with an affine readout.

    With ``a_t = tanh(W x_{t−1} + V s_t + b)``::

        linear residual:  x_t = R x_{t−1} + γ ⊙ a_t
        type A:           x_t = tanh(R x_{t−1}) + γ ⊙ a_t
        type B:           x_t = tanh(R x_{t−1} + γ ⊙ (W x_{t−1} + V s_t + b))
        readout:          y = C x_T + c   (or y_t = C x_t + c for every t)

    As ``γ → 0`` the Lyapunov exponents tend to ``log|eig(R)|`` (:meth:`theory`).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``s_t``, ``x_t`` and ``y``.
    readout : {"last", "sequence"}
        Read out the last state or every state.
    residual : (n, n) array or tensor, or callable, optional
        The residual ``R`` (default the identity, i.e. critical), e.g. from
        :mod:`lyapkit.trainers.models.residuals`; or a callable ``ρ(x)`` (torch, batched over leading axes,
        e.g. an ``nn.Module``) replacing ``R x`` for a non-linear residual.
    gamma : float or (n,) array
        Coupling ``γ``, scalar or per unit; fixed.
    variant : {"linear", "A", "B"}
        Linear residual, non-linear type A or type B.
    train_residual : bool
        Train ``R`` too (it is a fixed buffer by default). A callable module's own parameters are
        always registered.

    Notes
    -----
    ``W`` is ``self.recurrent.weight``; ``V`` and ``b`` are ``self.encoder.weight`` and
    ``self.encoder.bias``; ``C``, ``c`` are ``self.decoder``. The linear-residual and type-A loops run
    tape-free with a hand-written BPTT (:class:`_ResidualLoop`); type B runs through the fused
    ``nn.RNN`` kernel with ``W_hh = R + diag(γ) W``, ``W_ih = diag(γ) V`` and bias ``γ ⊙ b``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        residual: np.ndarray | torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None,
        gamma: float | np.ndarray | torch.Tensor = 0.05,
        variant: Literal["linear", "A", "B"] = "linear",
        train_residual: bool = False,
    ):
        super().__init__(input_size, hidden_size, output_size, readout)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        n = self.hidden_size
        self.variant = variant
        self.encoder = nn.Linear(self.input_size, n)
        self.recurrent = nn.Linear(n, n, bias=False)
        gamma = _real_tensor(gamma, "gamma")
        if gamma.ndim == 0:
            gamma = gamma.expand(n).clone()
        if gamma.shape != (n,) or not torch.all(torch.isfinite(gamma)):
            raise ValueError(
                f"gamma must be a finite scalar or have shape ({n},), got {tuple(gamma.shape)}"
            )
        self.register_buffer("gamma", gamma)
        self.residual_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        if residual is not None and not isinstance(residual, (np.ndarray, torch.Tensor)):
            if not callable(residual):
                raise TypeError(
                    f"residual must be an (n, n) array or a callable, got {type(residual).__name__}"
                )
            if train_residual:
                raise ValueError(
                    "train_residual applies to a matrix residual; a callable module trains its own parameters"
                )
            self.residual_fn = residual
            self.register_buffer("R", None)
            return
        R = torch.eye(n) if residual is None else _real_tensor(residual, "residual")
        if tuple(R.shape) != (n, n) or not torch.all(torch.isfinite(R)):
            raise ValueError(
                f"residual must be a finite ({n}, {n}) matrix, got shape {tuple(R.shape)}"
            )
        if train_residual:
            self.R = nn.Parameter(R.clone())
        else:
            self.register_buffer("R", R.clone())

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual_fn(x) if self.residual_fn is not None else x @ self.R.T

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step of the chosen variant (see the class docstring)."""
        pre = self.recurrent(state) + self.encoder(u)
        if self.variant == "B":
            return torch.tanh(self._residual(state) + self.gamma * pre)
        residual = self._residual(state)
        if self.variant == "A":
            residual = torch.tanh(residual)
        return residual + self.gamma * torch.tanh(pre)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        if self.residual_fn is not None or self.gamma.requires_grad:
            return None  # the tape-free loop treats a callable residual and γ as constants
        W, V, b, gamma = self.recurrent.weight, self.encoder.weight, self.encoder.bias, self.gamma
        if self.variant == "B":
            weights = [
                gamma[:, None] * V,
                self.R + gamma[:, None] * W,
                gamma * b,
                torch.zeros_like(b),
            ]
            # torch.rnn_tanh is the fused kernel behind nn.RNN (MKL on CPU, cuDNN on CUDA).
            out, _ = torch.rnn_tanh(
                inputs, state[None], weights, True, 1, 0.0, self.training, False, True
            )
            return out
        drive = self.encoder(inputs).transpose(0, 1).contiguous()
        states = _ResidualLoop.apply(drive, state, self.R, W, gamma, self.variant == "A")
        return states.transpose(0, 1)

    def theory(self, tol: float = 1e-9) -> WCRNNPrediction:
        """The weak-coupling prediction ``(exponents, regime)``: ``log|eig(R)|`` descending, and the
        regime from ``ρ(R)``. For types A and B it is the linearisation at the origin, which the
        network follows while ``ρ(R) ≤ 1`` (tanh saturates super-critical growth)."""
        if self.R is None:
            raise ValueError(
                "theory() needs a matrix residual R; this WCRNN has a callable residual"
            )
        return wcrnn_prediction(self.R.detach().cpu().double().numpy(), tol)

    def as_map(self) -> Map:
        """A :class:`lyapkit.WCRNNMap` snapshot of the current weights (every backend), or the
        autodiff map of :meth:`step` for a callable residual."""
        if self.residual_fn is not None:
            return super().as_map()

        def numpy64(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().double().numpy().copy()

        return WCRNNMap(
            numpy64(self.R),
            numpy64(self.recurrent.weight),
            numpy64(self.gamma),
            V=numpy64(self.encoder.weight),
            b=numpy64(self.encoder.bias),
            variant=self.variant,
        )
