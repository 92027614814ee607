"""Single-layer Elman RNN, LSTM and GRU on PyTorch's fused kernels, as trainable models and maps.

Each model holds one fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` layer (``batch_first=True``) that
runs the whole sequence in :meth:`~lyapkit.trainers.models.RecurrentModel.forward`, and writes the
same cell out once more in plain tensor code (:meth:`~lyapkit.trainers.models.RecurrentModel.step`,
with the layer's own ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``) for
``torch.func`` transforms and lyapkit maps.
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

    The fused layer runs whole sequences; ``layer_weights()`` hands its parameters to the per-step
    formulas of the subclasses, so both paths always use the same weights. By default the state is
    the hidden state ``h`` and the fast path of
    :meth:`~lyapkit.trainers.models.RecurrentModel.states` is the fused layer's output sequence (the
    loop over :meth:`~lyapkit.trainers.models.RecurrentModel.step` inside
    :meth:`~lyapkit.trainers.models.RecurrentModel.reference_path`).
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
        """The fused layer's weights ``(W_ih, W_hh, b_ih, b_hh)``.

        Returns
        -------
        tuple of torch.Tensor
            ``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``: the parameters
            themselves (not copies), gates stacked along the rows in PyTorch's order.
        """
        r = self.rnn
        return r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0

    def preactivations(
        self, h: torch.Tensor, u: torch.Tensor, gates: int = 1
    ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """Input and recurrent pre-activations ``(W_ih u + b_ih, W_hh h + b_hh)``, split by gate.

        Parameters
        ----------
        h : torch.Tensor
            Hidden state, shape ``(..., hidden_size)`` (any leading batch dims, including none).
        u : torch.Tensor
            Input, shape ``(..., input_size)``.
        gates : int, default 1
            Number of gates stacked in the weights (1 Elman, 4 LSTM, 3 GRU).

        Returns
        -------
        tuple of tuple of torch.Tensor
            ``(input_parts, recurrent_parts)``: ``W_ih u + b_ih`` and ``W_hh h + b_hh``, each split
            into ``gates`` chunks of shape ``(..., hidden_size)``.
        """
        W_ih, W_hh, b_ih, b_hh = self.layer_weights()
        return F.linear(u, W_ih, b_ih).chunk(gates, -1), F.linear(h, W_hh, b_hh).chunk(gates, -1)

    def hidden_sequence(
        self, inputs: torch.Tensor, state: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The hidden states ``h_1 … h_T`` from the fused kernel, from ``s_0 = state``.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor, optional
            The initial state ``s_0`` (``h_0``, or ``(h_0, c_0)`` for an LSTM), shape
            ``(batch, state_size)``; default 0.

        Returns
        -------
        torch.Tensor
            ``h_1 … h_T``, shape ``(batch, T, hidden_size)``.

        Raises
        ------
        ValueError
            For inputs or a state of the wrong shape, dtype or device.
        """
        s = self.check_inputs(inputs, state)
        H = self.hidden_size
        h0 = s[:, :H].unsqueeze(0).contiguous()
        hx = (h0, s[:, H:].unsqueeze(0).contiguous()) if self.state_multiple == 2 else h0
        return self.rnn(inputs, hx)[0]

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """The fused layer's output sequence ``h_1 … h_T`` (the states of a model whose state is ``h``).

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state, shape ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor
            The states, shape ``(batch, T, state_size)``.
        """
        return self.hidden_sequence(inputs, state)


@dataclass(frozen=True, eq=False)
class ResidualInit:
    """The weakly coupled residual initialisation of an :class:`lyapkit.trainers.models.ElmanRNN`.

    Float64 copies of what the initialisation drew and set. ``W`` ``(n, n)``, ``V`` ``(n, m)`` and
    ``b`` ``(n,)`` are the draws of PyTorch's default ``nn.Linear`` initialisation (``V``, ``b`` of
    ``nn.Linear(m, n)``, ``W`` of ``nn.Linear(n, n, bias=False)``); with the residual ``R`` and
    per-unit coupling ``gamma`` ``(n,)`` they set::

        W_hh = R + diag(γ) W,   W_ih = diag(γ) V,   b_ih = γ ⊙ b,   b_hh = 0

    Parameters
    ----------
    R : numpy.ndarray
        The residual matrix, shape ``(n, n)``.
    gamma : numpy.ndarray
        The per-unit coupling ``γ``, shape ``(n,)``.
    W : numpy.ndarray
        The drawn recurrent weights, shape ``(n, n)``.
    V : numpy.ndarray
        The drawn input weights, shape ``(n, m)``.
    b : numpy.ndarray
        The drawn bias, shape ``(n,)``.

    See Also
    --------
    lyapkit.trainers.models.ElmanRNN : The model that records it (``residual_init``).
    lyapkit.WCRNNMap : The type-B map it describes
        (:meth:`~lyapkit.trainers.models.ResidualInit.wcrnn_map`).

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from lyapkit.trainers.models import ElmanRNN, residuals
    >>> _ = torch.manual_seed(0)
    >>> rnn = ElmanRNN(1, 4, 1, residual=residuals.homogeneous(4, 0.9), gamma=0.05)
    >>> init = rnn.residual_init
    >>> init.gamma
    array([0.05, 0.05, 0.05, 0.05])
    >>> W_hh = rnn.layer_weights()[1].detach().double().numpy()
    >>> bool(np.allclose(W_hh, init.R + init.gamma[:, None] * init.W, atol=1e-6))
    True
    >>> init.wcrnn_map().dim
    4
    """

    R: np.ndarray
    gamma: np.ndarray
    W: np.ndarray
    V: np.ndarray
    b: np.ndarray

    def wcrnn_map(self) -> WCRNNMap:
        """The type-B WCRNN map ``x → tanh(R x + γ ⊙ (W x + V u + b))`` the RNN computes at init.

        Returns
        -------
        lyapkit.WCRNNMap
            The map with these ``R``, ``W``, ``γ``, ``V``, ``b`` and ``variant="B"``.
        """
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
    r"""Elman RNN ``h_t = tanh(W_ih u_t + b_ih + W_hh h_{t−1} + b_hh)`` on the fused ``nn.RNN``.

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
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).
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
        scalar or ``(n,)`` array, ``gamma`` without ``residual`` or ``residual`` without ``gamma``
        (and for bad sizes or ``readout``, as :class:`lyapkit.trainers.models.RecurrentModel`).

    See Also
    --------
    lyapkit.trainers.models.WCRNN : The weakly coupled residual RNN, with ``R`` held fixed.
    lyapkit.trainers.models.ResidualInit : The record of the residual initialisation.
    lyapkit.TanhNetwork : The map of :meth:`~lyapkit.trainers.models.ElmanRNN.as_map`.

    References
    ----------
    .. [1] J. L. Elman, "Finding structure in time", Cognitive Science 14(2), 179–211, 1990.
    .. [2] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import ElmanRNN, residuals
    >>> _ = torch.manual_seed(0)
    >>> rnn = ElmanRNN(1, 4, 1, residual=residuals.homogeneous(4, 0.9), gamma=0.05)
    >>> x = torch.randn(2, 5, 1)
    >>> tuple(rnn(x).shape)
    (2, 1)
    >>> with rnn.reference_path():
    ...     looped = rnn.states(x)
    >>> bool(torch.allclose(rnn.states(x), looped, atol=1e-6))
    True
    >>> rnn.as_map().dim
    4
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
        """One step ``h' = tanh(W_ih u + b_ih + W_hh h + b_hh)`` on any leading batch dims.

        Parameters
        ----------
        state : torch.Tensor
            The hidden state ``h``, shape ``(..., hidden_size)``.
        u : torch.Tensor
            The input, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            ``h'``, shape ``(..., hidden_size)``.
        """
        (a,), (r,) = self.preactivations(state, u)
        return torch.tanh(a + r)

    def as_map(self) -> TanhNetwork:
        """A snapshot of the current weights as the map ``h → tanh(W_hh h + W_ih u + b)``.

        Here ``b = b_ih + b_hh`` and the gain ``g = 1``; the Jacobian ``diag(1 − h'²) W_hh`` is
        analytic and the map runs on every backend.

        Returns
        -------
        lyapkit.TanhNetwork
            The float64 map of dimension ``hidden_size`` and input dimension ``input_size``.
        """
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

    The readout sees ``h`` only (:meth:`~lyapkit.trainers.models.LSTM.features`).
    :meth:`~lyapkit.trainers.models.LSTM.forward` runs the fused kernel, which yields ``h_t`` only;
    :meth:`~lyapkit.trainers.models.RecurrentModel.states` (all of ``(h_t, c_t)``) iterates
    :meth:`~lyapkit.trainers.models.LSTM.step`.
    :meth:`~lyapkit.trainers.models.RecurrentModel.as_map` is the map of ``(h, c)`` with Jacobians
    by autodiff of :meth:`~lyapkit.trainers.models.LSTM.step` (torch backend).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` (and ``c_t``) and of the readout.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).

    Attributes
    ----------
    rnn : torch.nn.LSTM
        The fused layer (``batch_first=True``).

    Raises
    ------
    ValueError
        For sizes that are not integers ≥ 1 or an unknown ``readout``.

    See Also
    --------
    lyapkit.trainers.models.GRU : The gated recurrent unit.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural Computation 9(8),
       1735–1780, 1997.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import LSTM
    >>> _ = torch.manual_seed(0)
    >>> lstm = LSTM(2, 3, 1, readout="sequence")
    >>> lstm.state_size, lstm.feature_size
    (6, 3)
    >>> x = torch.randn(2, 5, 2)
    >>> tuple(lstm(x).shape), tuple(lstm.states(x).shape)
    ((2, 5, 1), (2, 5, 6))
    >>> bool(torch.allclose(lstm(x), lstm.output(lstm.states(x), x), atol=1e-6))
    True
    """

    rnn_class = nn.LSTM
    state_multiple = 2

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step ``(h, c) → (h', c')`` on any leading batch dims.

        Parameters
        ----------
        state : torch.Tensor
            The state ``s = (h, c)`` (concatenated), shape ``(..., 2 hidden_size)``.
        u : torch.Tensor
            The input, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            ``(h', c')`` concatenated, shape ``(..., 2 hidden_size)``.
        """
        h, c = state.split(self.hidden_size, -1)
        (ai, af, ag, ao), (ri, rf, rg, ro) = self.preactivations(h, u, 4)
        c = torch.sigmoid(af + rf) * c + torch.sigmoid(ai + ri) * torch.tanh(ag + rg)
        return torch.cat([torch.sigmoid(ao + ro) * torch.tanh(c), c], -1)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> None:
        """No fast path: the fused kernel returns ``h_t`` only.

        The states ``(h_t, c_t)`` therefore come from the loop over
        :meth:`~lyapkit.trainers.models.LSTM.step`.

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)`` (unused).
        state : torch.Tensor
            The initial state, shape ``(batch, 2 hidden_size)`` (unused).

        Returns
        -------
        None
            Always.
        """
        return None

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """The hidden state ``h`` (first half of ``s = (h, c)``), what the readout sees.

        Parameters
        ----------
        states : torch.Tensor
            States ``(h, c)``, shape ``(..., 2 hidden_size)``.

        Returns
        -------
        torch.Tensor
            ``h``, shape ``(..., hidden_size)``.
        """
        return states[..., : self.hidden_size]

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Readout ``C h + c`` of ``h_t`` from the fused kernel (the cell states ``c_t`` are not needed).

        Inside :meth:`~lyapkit.trainers.models.RecurrentModel.reference_path` it loops over
        :meth:`~lyapkit.trainers.models.LSTM.step` instead.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor, optional
            The initial state ``(h_0, c_0)``, shape ``(batch, 2 hidden_size)``; default 0.

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)`` for ``readout="last"``, else ``(batch, T, output_size)``.

        Raises
        ------
        ValueError
            For inputs or a state of the wrong shape, dtype or device.
        """
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

    :meth:`~lyapkit.trainers.models.RecurrentModel.states` is the fused layer's output;
    :meth:`~lyapkit.trainers.models.RecurrentModel.as_map` is the map of ``h`` with Jacobians by
    autodiff of :meth:`~lyapkit.trainers.models.GRU.step` (torch backend).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
        Dimensions of ``u_t``, of ``h_t`` and of the readout.
    readout : {"last", "sequence"}, default "last"
        Read out the last state or every state (see
        :class:`lyapkit.trainers.models.RecurrentModel`).

    Attributes
    ----------
    rnn : torch.nn.GRU
        The fused layer (``batch_first=True``); the states are its output sequence.

    Raises
    ------
    ValueError
        For sizes that are not integers ≥ 1 or an unknown ``readout``.

    See Also
    --------
    lyapkit.trainers.models.LSTM : The long short-term memory network.

    References
    ----------
    .. [1] K. Cho, B. van Merriënboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk and
       Y. Bengio, "Learning phrase representations using RNN encoder–decoder for statistical
       machine translation", EMNLP 2014.

    Examples
    --------
    >>> import torch
    >>> from lyapkit.trainers.models import GRU
    >>> _ = torch.manual_seed(0)
    >>> gru = GRU(2, 3, 1)
    >>> x = torch.randn(2, 5, 2)
    >>> tuple(gru(x).shape), gru.state_size
    ((2, 1), 3)
    >>> with gru.reference_path():
    ...     looped = gru.states(x)
    >>> bool(torch.allclose(gru.states(x), looped, atol=1e-6))
    True
    """

    rnn_class = nn.GRU

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step ``h' = (1 − z) ⊙ n + z ⊙ h`` on any leading batch dims.

        Parameters
        ----------
        state : torch.Tensor
            The hidden state ``h``, shape ``(..., hidden_size)``.
        u : torch.Tensor
            The input, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            ``h'``, shape ``(..., hidden_size)``.
        """
        (ar, az, an), (rr, rz, rn) = self.preactivations(state, u, 3)
        r, z = torch.sigmoid(ar + rr), torch.sigmoid(az + rz)
        n = torch.tanh(an + r * rn)
        return (1 - z) * n + z * state
