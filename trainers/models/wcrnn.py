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
from lyapkit.maps.wcrnn import VARIANTS, wcrnn_update
from lyapkit.theory import WCRNNPrediction, wcrnn_prediction
from lyapkit.trainers.models.base import RecurrentModel


def _real_tensor(value: np.ndarray | torch.Tensor | float, name: str) -> torch.Tensor:
    """A detached copy of ``value`` in the default dtype; complex values are refused."""
    value = value.detach().cpu() if isinstance(value, torch.Tensor) else np.asarray(value)
    if value.dtype.is_complex if isinstance(value, torch.Tensor) else np.iscomplexobj(value):
        raise ValueError(f"{name} must be real, got dtype {value.dtype}")
    return torch.as_tensor(value).to(torch.get_default_dtype()).clone()


class _ResidualLoop(torch.autograd.Function):
    """The linear-residual / type-A WCRNN over a whole sequence, without an autograd tape.

    Forward: ``x_t = ρ(R x_{t−1}) + γ ⊙ tanh(W x_{t−1} + V s_t + b)`` with ``ρ = id`` (linear) or
    ``tanh`` (type A); the input projection ``V s_t + b`` is one product for all ``t``. Backward is
    BPTT written out: with ``g_t = ∂L/∂x_t``, ``δ_t = g_t ⊙ γ ⊙ (1 − a_t²)`` and
    ``ε_t = g_t ⊙ ρ'``::

        g_{t−1} += Rᵀ ε_t + Wᵀ δ_t,   ∂L/∂W = Σ_t δ_t x_{t−1}ᵀ,   ∂L/∂R = Σ_t ε_t x_{t−1}ᵀ,
        ∂L/∂V = Σ_t δ_t s_tᵀ,   ∂L/∂b = Σ_t δ_t.

    A small model (32 units, batch 64) spends its time in the per-operation overhead of eager torch,
    so a time step is a few in-place operations on one row of a preallocated buffer (forward
    ``addmm_ → sigmoid_ → addcmul_``, type A ``addmm_ → sigmoid_ → add → addcmul_``; backward
    ``addmm → mul``), the per-step views are made once (``unbind``), and the factors that do not
    depend on ``g`` are computed for all steps at once. ``tanh`` is evaluated as ``2σ(2z) − 1``
    (chosen when torch's float32 ``tanh`` took 5× the time of ``sigmoid`` on the CPU; in torch 2.13
    on an AVX-512 Xeon it is vectorised too and 15 to 25% faster than ``sigmoid``, so the sigmoid
    form now costs that much on its one such operation per step); then ``1 − tanh² = 4σ(1 − σ)``,
    whose constant factors (4, 4γ) are carried by the weights of the backward product instead of by
    the errors. A training step costs about 0.6× the fused ``nn.RNN`` kernel's at 16 units, batch 8,
    50 steps and 1.4× at 128 units, batch 64, 784 steps (``benchmarks/bench_models.py``' sizes, one
    CPU thread). Not twice differentiable: curvature passes use the reference loop
    (:meth:`~lyapkit.trainers.models.RecurrentModel.reference_path`).
    """

    @staticmethod
    def forward(ctx, inputs, x0, V, b, R, W, gamma, tanh_residual: bool):
        """``inputs`` time-major ``(T, batch, m)``; returns the states ``(T, batch, n)``."""
        n, (steps, batch, m) = R.shape[0], inputs.shape
        u = inputs.reshape(steps * batch, m)
        # Row t of ``pre`` is z_t = [ρ argument, 2 (W x_{t−1} + V s_t + b)], and σ of its second
        # half, σ(2 (W x + V s + b)) = (1 + a_t) / 2, overwrites it.
        pre = u.new_empty((steps, batch, 2 * n))
        torch.addmm(2 * b, u, 2 * V.T, out=pre[..., n:].view(steps * batch, n))
        rows, first, second = pre.unbind(0), pre[..., :n].unbind(0), pre[..., n:].unbind(0)
        gamma2 = 2 * gamma
        ctx.tanh_residual = tanh_residual
        if tanh_residual:
            # x_t = tanh(R x) + γ tanh(p) = 2 σ(2 R x) + 2γ σ(2 p) − (1 + γ); σ of the whole row
            weights = torch.cat([2 * R, 2 * W]).T.contiguous()
            pre[..., :n] = 0
            offset = (-1 - gamma).expand(batch, n)
            xs = pre.new_empty((steps + 1, batch, n))
            xs[0] = x0
            x = xs.unbind(0)
            for t in range(steps):
                rows[t].addmm_(x[t], weights).sigmoid_()
                torch.add(offset, first[t], alpha=2, out=x[t + 1]).addcmul_(second[t], gamma2)
            ctx.save_for_backward(pre, xs[:-1], u, V, R, W, gamma)
            return xs[1:]
        # x_t = (R x − γ) + 2γ σ(2 p), built in place in the first half of row t
        weights = torch.cat([R, 2 * W]).T.contiguous()
        pre[..., :n] = -gamma
        x = x0
        for t in range(steps):
            rows[t].addmm_(x, weights)
            x = first[t].addcmul_(second[t].sigmoid_(), gamma2)
        ctx.save_for_backward(pre, x0, u, V, R, W, gamma)
        return pre[..., :n]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_states):
        # x: x_0 (linear; x_1 … x_{T−1} are the first halves of pre) or x_0 … x_{T−1} (type A)
        pre, x, u, V, R, W, gamma = ctx.saved_tensors
        n, steps, batch = R.shape[0], pre.shape[0], pre.shape[1]
        # Scaled errors [ε'_t, δ'_t] with ε = c ⊙ ε' and δ = 4γ ⊙ δ' (c = 1 linear, 4 type A):
        # g_{t−1} = g_up + [ε'_t, δ'_t] @ [c R; 4γ ⊙ W].
        scale = 4 * gamma
        residual_scale = 4.0 if ctx.tanh_residual else 1.0
        weights = torch.cat([residual_scale * R, scale[:, None] * W])
        errors = pre.new_empty((steps, batch, 2 * n))
        rows, upstream, last = errors.unbind(0), grad_states.unbind(0), steps - 1
        first = 0 if ctx.needs_input_grad[4] else n  # the columns of [ε', δ'] the weights need
        if ctx.tanh_residual:
            # [ε'_t, δ'_t] = g_t ⊙ σ(1 − σ) of both halves of row t
            s = pre.view(steps, batch, 2, n)
            factors = torch.mul(s, 1 - s).unbind(0)
            g = pre.new_empty((steps, batch, 1, n))
            g_rows, g_t = g.unbind(0), g.view(steps, batch, n).unbind(0)
            e_rows = errors.view(steps, batch, 2, n).unbind(0)
            g_t[last].copy_(upstream[last])
            torch.mul(g_rows[last], factors[last], out=e_rows[last])
            for t in range(last, 0, -1):
                torch.addmm(upstream[t - 1], rows[t], weights, out=g_t[t - 1])
                torch.mul(g_rows[t - 1], factors[t - 1], out=e_rows[t - 1])
            # rows [∂L/∂R; ∂L/∂W] (up to the scales), the first only for a trained residual
            grad_RW = errors.reshape(-1, 2 * n)[:, first:].T @ x.reshape(-1, n)
        else:
            # ε'_t = g_t; δ'_t = g_t ⊙ σ(1 − σ), the factor set beforehand
            sig, eps, delta = pre[..., n:], errors[..., :n], errors[..., n:]
            torch.mul(sig, 1 - sig, out=delta)
            eps_t, delta_t = eps.unbind(0), delta.unbind(0)
            eps_t[last].copy_(upstream[last])
            delta_t[last].mul_(eps_t[last])
            for t in range(last, 0, -1):
                torch.addmm(upstream[t - 1], rows[t], weights, out=eps_t[t - 1])
                delta_t[t - 1].mul_(eps_t[t - 1])
            grad_RW = rows[0][:, first:].T @ x  # x_1 … x_{T−1}: the first halves of pre
            if steps > 1:
                later = errors[1:].reshape(-1, 2 * n)[:, first:]
                grad_RW.addmm_(later.T, pre[:-1, :, :n].reshape(-1, n))
        delta = errors[..., n:].reshape(-1, n)  # δ' of every (t, sample)
        grad_x0 = rows[0] @ weights if ctx.needs_input_grad[1] else None
        grad_inputs = grad_V = grad_b = grad_R = None
        if ctx.needs_input_grad[0]:
            grad_inputs = ((delta * scale) @ V).view(steps, batch, -1)
        if ctx.needs_input_grad[2]:
            grad_V = scale[:, None] * (delta.T @ u)
        if ctx.needs_input_grad[3]:
            grad_b = scale * delta.sum(0)
        if ctx.needs_input_grad[4]:
            grad_R = residual_scale * grad_RW[:n]
        grad_W = scale[:, None] * grad_RW[-n:]
        return grad_inputs, grad_x0, grad_V, grad_b, grad_R, grad_W, None, None


class WCRNN(RecurrentModel):
    r"""Weakly coupled residual RNN with an affine readout.

    With ``a_t = tanh(W x_{t−1} + V s_t + b)``::

        linear residual:  x_t = R x_{t−1} + γ ⊙ a_t
        type A:           x_t = tanh(R x_{t−1}) + γ ⊙ a_t
        type B:           x_t = tanh(R x_{t−1} + γ ⊙ (W x_{t−1} + V s_t + b))
        readout:          y = C x_T + c   (or y_t = C x_t + c for every t)

    As ``γ → 0`` the Lyapunov exponents tend to ``log|eig(R)|``
    (:meth:`~lyapkit.trainers.models.WCRNN.theory`).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``s_t``, ``x_t`` and ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state.
    residual : (n, n) array or tensor, or callable, optional
        The residual ``R`` (default the identity, i.e. critical), e.g. from
        :mod:`lyapkit.trainers.models.residuals`; or a callable ``ρ(x)`` (torch, batched over leading axes,
        e.g. an ``nn.Module``) replacing ``R x`` for a non-linear residual.
    gamma : float or (n,) array, default 0.05
        Coupling ``γ``, scalar or per unit; fixed (a buffer).
    variant : {"linear", "A", "B"}, default "linear"
        Linear residual, non-linear type A or type B.
    train_residual : bool, default False
        Train ``R`` too (it is a fixed buffer by default). A callable module's own parameters are
        always registered.

    Attributes
    ----------
    R : torch.Tensor or None
        The residual matrix (a buffer, or a parameter with ``train_residual``); None for a callable
        residual, which is ``residual_fn``.
    gamma : torch.Tensor
        The coupling ``γ``, shape ``(n,)``.
    encoder, recurrent : torch.nn.Linear
        ``V s + b`` and ``W x``.

    Raises
    ------
    ValueError
        If ``variant`` is not one of ``"linear"``, ``"A"``, ``"B"``; ``gamma`` is complex, not finite,
        or neither a scalar nor of shape ``(n,)``; a matrix ``residual`` is complex, not finite or not
        ``(n, n)``; or ``train_residual`` is set with a callable residual (and for bad sizes or
        ``readout``, as :class:`lyapkit.trainers.models.RecurrentModel`).
    TypeError
        If ``residual`` is neither an array, a tensor nor a callable.

    See Also
    --------
    lyapkit.WCRNNMap : The same cell as a map with analytic Jacobians
        (:meth:`~lyapkit.trainers.models.WCRNN.as_map`).
    lyapkit.theory.wcrnn_prediction : The weak-coupling prediction
        (:meth:`~lyapkit.trainers.models.WCRNN.theory`).
    lyapkit.trainers.models.ElmanRNN : An Elman RNN with the weakly coupled residual initialisation.

    Notes
    -----
    ``W`` is ``self.recurrent.weight``; ``V`` and ``b`` are ``self.encoder.weight`` and
    ``self.encoder.bias``; ``C``, ``c`` are ``self.decoder``. The linear-residual and type-A loops run
    tape-free with a hand-written BPTT (a custom ``torch.autograd.Function``); type B runs through the fused
    ``nn.RNN`` kernel with ``W_hh = R + diag(γ) W``, ``W_ih = diag(γ) V`` and bias ``γ ⊙ b``.

    In the weak-coupling limit the variational term is the product of the residual's Jacobians,
    so for a matrix residual the exponents are

    .. math::

        \lambda_i = \log |\mathrm{eig}_i(R)| + O(\gamma).

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> from lyapkit.trainers.models import WCRNN, residuals
    >>> _ = torch.manual_seed(0)
    >>> R = residuals.rotational(4, 2 * np.pi / 28, r=0.95)
    >>> model = WCRNN(1, 4, 2, residual=R, gamma=0.01)
    >>> tuple(model(torch.randn(3, 10, 1)).shape)
    (3, 2)
    >>> pred = model.theory()
    >>> np.round(pred.exponents, 3), pred.regime
    (array([-0.051, -0.051, -0.051, -0.051]), 'sub-critical')
    >>> res = lk.lyapunov_spectrum(model.as_map(), steps=300, seed=0, backend="numpy")
    >>> bool(np.all(np.abs(res.exponents - pred.exponents) < 0.01))
    True
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
        """One step ``x_t = f(x_{t−1}, s_t)`` of the chosen variant (see the class docstring).

        Parameters
        ----------
        state : torch.Tensor
            The state ``x_{t−1}``, shape ``(..., hidden_size)``.
        u : torch.Tensor
            The input ``s_t``, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            The next state ``x_t``, shape ``(..., hidden_size)``.
        """
        drive = self.recurrent(state) + self.encoder(u)
        return wcrnn_update(torch, self.variant, self._residual(state), drive, self.gamma)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """The states by the fused ``nn.RNN`` kernel (type B) or the tape-free BPTT loop (linear, A).

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state ``x_0``, shape ``(batch, hidden_size)``.

        Returns
        -------
        torch.Tensor or None
            The states ``x_1 … x_T``, shape ``(batch, T, hidden_size)``; None (use the loop over
            :meth:`~lyapkit.trainers.models.WCRNN.step`) for a callable residual or a ``gamma`` that
            requires grad. The tape-free loop is differentiable once only.
        """
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
        states = _ResidualLoop.apply(
            inputs.transpose(0, 1), state, V, b, self.R, W, gamma, self.variant == "A"
        )
        return states.transpose(0, 1)

    def theory(self, tol: float | None = None) -> WCRNNPrediction:
        """The weak-coupling prediction ``(exponents, regime)``: ``log|eig(R)|`` descending.

        The regime comes from the spectral radius ``ρ(R)``. For types A and B it is the
        linearisation at the origin, which the network follows while ``ρ(R) ≤ 1`` (tanh saturates
        super-critical growth).

        Parameters
        ----------
        tol : float, optional
            Tolerance on ``|ρ(R) − 1|`` within which the regime is critical (passed to
            :func:`lyapkit.theory.wcrnn_prediction`); by default from the precision ``R`` is
            stored in (float32: ``4 n ε ≈ 4.8e-7 n``), so that a critical rotation stays
            critical.

        Returns
        -------
        lyapkit.theory.WCRNNPrediction
            The predicted exponents (descending, per step) and the regime.

        Raises
        ------
        ValueError
            If the residual is a callable rather than a matrix.
        """
        if self.R is None:
            raise ValueError(
                "theory() needs a matrix residual R; this WCRNN has a callable residual"
            )
        return wcrnn_prediction(self.R.detach().cpu().numpy(), tol)

    def as_map(self) -> Map:
        """A snapshot of the current weights as a map of the state ``x`` with input ``s``.

        Returns
        -------
        lyapkit.Map
            A float64 :class:`lyapkit.WCRNNMap` (analytic Jacobians, every backend), or for a
            callable residual the autodiff map of :meth:`~lyapkit.trainers.models.WCRNN.step` (torch
            backend only).
        """
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
