"""Single-layer Elman RNN, LSTM and GRU on PyTorch's fused kernels, as trainable models and maps.

Each model holds one fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer (``batch_first=True``) that
runs the whole sequence in :meth:`~RecurrentModel.forward`, and writes the same cell out once more
in plain tensor code (:meth:`~RecurrentModel.step`, with the layer's own ``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``) for ``torch.func`` transforms and lyapkit maps.
PyTorch's gate conventions (Elman 1990; Hochreiter & Schmidhuber 1997; Cho et al. 2014)::

    Elman:  h' = tanh(W_ih u + b_ih + W_hh h + b_hh)
    LSTM:   (i, f, g, o) = (σ, σ, tanh, σ)(W_ih u + b_ih + W_hh h + b_hh)   (rows in that order)
            c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')                          state s = (h, c)
    GRU:    (r, z) = σ(W_i{r,z} u + b_i{r,z} + W_h{r,z} h + b_h{r,z})
            n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

The Elman RNN can start from the weakly coupled residual initialisation of Dubinin & Effenberger
(2023), at which it computes the type-B WCRNN map ``tanh(R h + γ ⊙ (W h + V u + b))`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lyapkit.maps import TanhNetwork, WCRNNMap
from lyapkit.trainers.models.base import RecurrentModel

__all__ = ["GRU", "LSTM", "ElmanRNN", "ResidualInit"]


class _FusedRecurrentModel(RecurrentModel):
    """A model whose cell is one layer of a fused ``nn.RNNBase`` module (``self.rnn``).

    The fused layer runs whole sequences; :meth:`layer_weights` hands its parameters to the
    per-step formulas of the subclasses, so both paths always use the same weights. By default
    the state is the hidden state ``h`` and the fast path of :meth:`~RecurrentModel.states` is the
    fused layer's output sequence (the loop over :meth:`~RecurrentModel.step` inside
    :meth:`~RecurrentModel.reference_path`).
    """

    rnn_class: ClassVar[type[nn.RNNBase]]
    #: ``state_size / hidden_size``: 1 for a state ``h``, 2 for an LSTM's ``(h, c)``.
    state_multiple: ClassVar[int] = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
    ):
        super().__init__(
            input_size,
            hidden_size,
            output_size,
            readout,
            state_size=self.state_multiple * hidden_size,
            feature_size=hidden_size,
        )
        self.rnn = self.rnn_class(self.input_size, self.hidden_size, batch_first=True)

    def layer_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused layer's ``(W_ih, W_hh, b_ih, b_hh)`` (the parameters themselves, gates stacked
        along the rows in PyTorch's order)."""
        r = self.rnn
        return r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0

    def preactivations(
        self, h: torch.Tensor, u: torch.Tensor, gates: int = 1
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Input and recurrent pre-activations ``(W_ih u + b_ih, W_hh h + b_hh)``, each split into
        ``gates`` chunks of ``hidden_size`` (any leading batch dims, including none)."""
        W_ih, W_hh, b_ih, b_hh = self.layer_weights()
        return F.linear(u, W_ih, b_ih).chunk(gates, -1), F.linear(h, W_hh, b_hh).chunk(gates, -1)

    def hidden_sequence(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``h_1 … h_T`` as ``(batch, T, hidden_size)`` from the fused kernel, from ``s_0 = state``."""
        s = self.check_inputs(inputs, state)
        H = self.hidden_size
        h0 = s[:, :H].unsqueeze(0).contiguous()
        hx = (h0, s[:, H:].unsqueeze(0).contiguous()) if self.state_multiple == 2 else h0
        return self.rnn(inputs, hx)[0]

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """The fused layer's output sequence ``h_1 … h_T`` (the states of a model whose state is ``h``)."""
        return self.hidden_sequence(inputs, state)


@dataclass(frozen=True, eq=False)
class ResidualInit:
    """The weakly coupled residual initialisation of an :class:`ElmanRNN` (float64 copies).

    ``W`` ``(n, n)``, ``V`` ``(n, m)`` and ``b`` ``(n,)`` are the draws of PyTorch's default
    ``nn.Linear`` initialisation (``V``, ``b`` of ``nn.Linear(m, n)``, ``W`` of
    ``nn.Linear(n, n, bias=False)``); with the residual ``R`` and per-unit coupling ``gamma`` ``(n,)``
    they set ``W_hh = R + diag(γ) W``, ``W_ih = diag(γ) V``, ``b_ih = γ ⊙ b``, ``b_hh = 0``.
    """

    R: np.ndarray
    gamma: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray

    def wcrnn_map(self) -> WCRNNMap:
        """The type-B WCRNN map ``x → tanh(R x + γ ⊙ (W x + V u + b))`` the RNN computes at init."""
        return WCRNNMap(self.R, self.W, self.gamma, self.V, self.b, variant="B")


def _residual_and_gamma(residual, gamma, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``residual`` ``(n, n)`` and ``gamma`` (scalar or ``(n,)``) as float64 arrays."""
    if residual is None:
        raise ValueError("gamma is only used with residual (the weakly coupled residual init)")
    if gamma is None:
        raise ValueError("gamma is required with residual: a scalar or per-unit (n,) coupling")
    if isinstance(residual, torch.Tensor):
        residual = residual.detach().cpu().numpy()
    if isinstance(gamma, torch.Tensor):
        gamma = gamma.detach().cpu().numpy()
    R = np.asarray(residual, dtype=np.float64)
    if R.shape != (n, n):
        raise ValueError(
            f"residual must have shape ({n}, {n}) (hidden_size squared), got {R.shape}"
        )
    if not np.all(np.isfinite(R)):
        raise ValueError("residual must be finite")
    g = np.asarray(gamma, dtype=np.float64)
    if g.ndim == 0:
        g = np.full(n, float(g))
    elif g.shape != (n,):
        raise ValueError(f"gamma must be a scalar or have shape ({n},), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("gamma must be finite")
    return R, g


class ElmanRNN(_FusedRecurrentModel):
    """Elman RNN ``h_t = tanh(W_ih u_t + b_ih + W_hh h_{t−1} + b_hh)`` on the fused ``nn.RNN``.

    By default the weights keep PyTorch's ``nn.RNN`` initialisation. With a ``residual`` ``R`` and a
    coupling ``γ`` they start from the weakly coupled residual initialisation (Dubinin & Effenberger
    2023)::

        W_hh = R + diag(γ) W,   W_ih = diag(γ) V,   b_ih = γ ⊙ b,   b_hh = 0
        ⇒  h' = tanh(R h + γ ⊙ (W h + V u + b))        (the type-B WCRNN map, at initialisation)

    with ``W``, ``V``, ``b`` drawn as PyTorch's default ``nn.Linear`` initialisation, as the ``WCRNN``
    draws them: ``V``, ``b`` from a fresh ``nn.Linear(m, n)``, then ``W`` from a fresh
    ``nn.Linear(n, n, bias=False)`` (Kaiming-uniform, ``U(±1/√fan_in)``). Training then moves all of
    ``W_hh``: unlike the WCRNN, ``R`` is not held fixed.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t`` (``m``), of ``h_t`` (the state, ``n``) and of the readout.
    readout : {"last", "sequence"}
        Read out the last state or every state (see :class:`RecurrentModel`).
    residual : (n, n) array, optional
        Residual matrix ``R`` of the weakly coupled residual initialisation (e.g. from
        :mod:`lyapkit.trainers.models.residuals`).
    gamma : float or (n,) array, optional
        Coupling ``γ``, scalar or per unit; required with ``residual``, refused without it.

    Attributes
    ----------
    rnn : nn.RNN
        The fused layer (``batch_first=True``, tanh); the states are its output sequence.
    residual_init : ResidualInit or None
        ``R``, ``γ`` and the drawn ``W``, ``V``, ``b`` of the residual initialisation.

    Raises
    ------
    ValueError
        For a ``residual`` that is not a finite ``(n, n)`` array, a ``gamma`` that is not a finite
        scalar or ``(n,)`` array, ``gamma`` without ``residual`` or ``residual`` without ``gamma``.
    """

    rnn_class = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        residual: np.ndarray | torch.Tensor | None = None,
        gamma: float | np.ndarray | torch.Tensor | None = None,
    ):
        super().__init__(input_size, hidden_size, output_size, readout)
        self.residual_init: ResidualInit | None = None
        if residual is not None or gamma is not None:
            self._weakly_coupled_init(*_residual_and_gamma(residual, gamma, self.hidden_size))

    @torch.no_grad()
    def _weakly_coupled_init(self, R: np.ndarray, gamma: np.ndarray) -> None:
        n, m = self.hidden_size, self.input_size
        W_ih, W_hh, b_ih, b_hh = self.layer_weights()
        # drawn like the WCRNN's encoder (V, b) and then its recurrent (W) nn.Linear
        encoder = nn.Linear(m, n, dtype=W_hh.dtype)
        recurrent = nn.Linear(n, n, bias=False, dtype=W_hh.dtype)
        V, b, W = (
            t.detach().to(torch.float64, copy=True)
            for t in (encoder.weight, encoder.bias, recurrent.weight)
        )
        g = torch.as_tensor(gamma)
        W_hh.copy_(torch.as_tensor(R) + g[:, None] * W)
        W_ih.copy_(g[:, None] * V)
        b_ih.copy_(g * b)
        b_hh.zero_()
        self.residual_init = ResidualInit(R, gamma, W.numpy(), V.numpy(), b.numpy())

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``h' = tanh(W_ih u + b_ih + W_hh h + b_hh)`` on any leading batch dims."""
        (a,), (r,) = self.preactivations(state, u)
        return torch.tanh(a + r)

    def as_map(self) -> TanhNetwork:
        """A snapshot of the current weights as ``lyapkit.TanhNetwork`` ``h → tanh(W_hh h + W_ih u + b)``,
        ``b = b_ih + b_hh`` (``g = 1``): analytic Jacobian ``diag(1 − h'²) W_hh``, runs on every backend."""
        W_ih, W_hh, b_ih, b_hh = (
            t.detach().to("cpu", torch.float64, copy=True).numpy() for t in self.layer_weights()
        )
        return TanhNetwork(
            self.hidden_size, g=1.0, input_dim=self.input_size, W=W_hh, U=W_ih, b=b_ih + b_hh
        )


class LSTM(_FusedRecurrentModel):
    """LSTM on the fused ``nn.LSTM``, with the full state ``s = (h, c)`` (``state_size = 2 hidden_size``).

    PyTorch's gates, rows of ``W_ih``, ``W_hh``, ``b_ih``, ``b_hh`` in the order ``(i, f, g, o)``::

        i = σ(W_ii u + b_ii + W_hi h + b_hi)      f = σ(W_if u + b_if + W_hf h + b_hf)
        g = tanh(W_ig u + b_ig + W_hg h + b_hg)   o = σ(W_io u + b_io + W_ho h + b_ho)
        c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

    The readout sees ``h`` only (:meth:`features`). :meth:`forward` runs the fused kernel, which
    yields ``h_t`` only; :meth:`states` (all of ``(h_t, c_t)``) iterates :meth:`step`.
    :meth:`as_map` is the map of ``(h, c)`` with Jacobians by autodiff of :meth:`step` (torch backend).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` (and ``c_t``) and of the readout.
    readout : {"last", "sequence"}
        Read out the last state or every state (see :class:`RecurrentModel`).
    """

    rnn_class = nn.LSTM
    state_multiple = 2

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``(h, c) → (h', c')`` (concatenated) on any leading batch dims."""
        h, c = state.split(self.hidden_size, -1)
        (ai, af, ag, ao), (ri, rf, rg, ro) = self.preactivations(h, u, 4)
        c = torch.sigmoid(af + rf) * c + torch.sigmoid(ai + ri) * torch.tanh(ag + rg)
        return torch.cat([torch.sigmoid(ao + ro) * torch.tanh(c), c], -1)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> None:
        """None: the fused kernel returns ``h_t`` only, so the states ``(h_t, c_t)`` come from the
        loop over :meth:`step`."""
        return None

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """The hidden state ``h`` (first half of ``s = (h, c)``)."""
        return states[..., : self.hidden_size]

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Readout of ``h_t`` from the fused kernel (the cell states ``c_t`` are not needed); the
        loop over :meth:`step` inside :meth:`~RecurrentModel.reference_path`."""
        if self._reference:
            return super().forward(inputs, state)
        h = self.hidden_sequence(inputs, state)
        return self.decoder(h[:, -1] if self.readout == "last" else h)


class GRU(_FusedRecurrentModel):
    """GRU on the fused ``nn.GRU``; the state is ``h``.

    PyTorch's gates, rows of ``W_ih``, ``W_hh``, ``b_ih``, ``b_hh`` in the order ``(r, z, n)``::

        r = σ(W_ir u + b_ir + W_hr h + b_hr)      z = σ(W_iz u + b_iz + W_hz h + b_hz)
        n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn))
        h' = (1 − z) ⊙ n + z ⊙ h

    :meth:`states` is the fused layer's output; :meth:`as_map` is the map of ``h`` with Jacobians by
    autodiff of :meth:`step` (torch backend).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` and of the readout.
    readout : {"last", "sequence"}
        Read out the last state or every state (see :class:`RecurrentModel`).
    """

    rnn_class = nn.GRU

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``h' = (1 − z) ⊙ n + z ⊙ h`` on any leading batch dims."""
        (ar, az, an), (rr, rz, rn) = self.preactivations(state, u, 3)
        r, z = torch.sigmoid(ar + rr), torch.sigmoid(az + rz)
        n = torch.tanh(an + r * rn)
        return (1 - z) * n + z * state
