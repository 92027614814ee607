"""PyTorch's recurrent layers (``nn.RNN``, ``nn.GRU``, ``nn.LSTM`` and their cells) as maps of their
full stacked state, with analytic Jacobians.

A stack of ``L`` layers maps the state ``s = (h¹, …, hᴸ)`` (an LSTM: ``s = (h¹, …, hᴸ, c¹, …, cᴸ)``,
the layout of PyTorch's ``(h_n, c_n)`` flattened layer by layer) and the input ``u`` to ``s'``: layer
``l`` reads ``x_l = u`` for ``l = 1`` and ``x_l = h'^{l−1}`` (the new output of the layer below)
otherwise. PyTorch's cell equations, gates stacked along the rows of ``W_ih``, ``W_hh``, ``b_ih``,
``b_hh`` in its order (``σ`` the logistic function)::

    RNN:   h' = φ(W_ih x + b_ih + W_hh h + b_hh),   φ = tanh or relu
    GRU:   r = σ(a_r),  z = σ(a_z),  a_g = W_ig x + b_ig + W_hg h + b_hg   (g = r, z)
           n = tanh(W_in x + b_in + r ⊙ q),  q = W_hn h + b_hn,   h' = (1 − z) ⊙ n + z ⊙ h
    LSTM:  (i, f, g, o) = (σ, σ, tanh, σ)(W_ih x + b_ih + W_hh h + b_hh)
           c' = f ⊙ c + i ⊙ g,   m = o ⊙ tanh(c'),   h' = m  (with proj_size: h' = W_hr m)

Every derivative of a gated cell is a sum over its gates of a row scaling of the gate's weights,
``∂h'/∂h = Σ_g diag(α_g) W_hh,g (+ a diagonal)``, and likewise for ``∂/∂x`` with ``W_ih``::

    RNN:   α = φ'(a)
    GRU:   d = (1 − z)(1 − n²);  α_r = d q r(1 − r),  α_z = (h − n) z(1 − z),
           α_n = d r (for W_hh; d for W_ih);  ∂h'/∂h gets + diag(z)
    LSTM:  ∂c'/∂· : β = (g i(1−i), c f(1−f), i (1−g²), 0),     ∂c'/∂c = diag(f)
           ∂m/∂·  : γ = κ β + (0, 0, 0, tanh(c') o(1−o)),      ∂m/∂c = diag(κ f),  κ = o (1 − tanh²c')

The state Jacobian of the stack is block lower triangular by layer: the rows of layer ``l`` are
its own-state block plus ``(∂s'_l/∂x_l) (∂h'^{l−1}/∂s)``, built layer by layer from the rows of
the layer below (a loop over layers, none over units or ensemble members).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._array import import_optional, is_torch_tensor
from lyapkit.maps.base import ArrayMap, NumbaKernels

__all__ = ["RNN_KINDS", "RNNStack", "StackedRNNMap", "rnn_stack_step"]

#: The cell types, with their number of gates.
RNN_KINDS = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class RNNStack:
    """The shape of a PyTorch recurrent module, and where its parameters live.

    Attributes
    ----------
    kind : {"rnn_tanh", "rnn_relu", "gru", "lstm"}
        The cell.
    input_size, hidden_size, num_layers : int
        As in PyTorch; a cell is one layer.
    proj_size : int
        LSTM projection size (0: none); each ``h`` then has ``proj_size`` entries.
    bias : bool
        Whether the module has ``bias_ih`` and ``bias_hh``.
    suffixes : tuple of str
        Parameter-name suffix of each layer: ``("_l0", "_l1", …)`` for a stacked module, ``("",)``
        for a cell (``weight_ih`` rather than ``weight_ih_l0``).
    """

    kind: str
    input_size: int
    hidden_size: int
    num_layers: int
    proj_size: int
    bias: bool
    suffixes: tuple[str, ...]

    @classmethod
    def of(cls, module: Any) -> RNNStack:
        """The stack of an ``nn.RNN``/``nn.GRU``/``nn.LSTM`` or of a cell; a ValueError for a
        bidirectional module (not a causal map of its state), a TypeError for anything else."""
        torch = import_optional("torch", "torch")
        nn = torch.nn
        if isinstance(module, nn.RNNBase):
            if module.bidirectional:
                raise ValueError(
                    f"a bidirectional {type(module).__name__} is not a causal map of its state "
                    "(its backward direction reads the inputs from the end); analyse each "
                    "direction as its own unidirectional module"
                )
            kind = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "GRU": "gru", "LSTM": "lstm"}
            if module.mode not in kind:
                raise TypeError(f"unsupported recurrent mode {module.mode!r} of {module!r}")
            layers = int(module.num_layers)
            return cls(
                kind[module.mode],
                int(module.input_size),
                int(module.hidden_size),
                layers,
                int(getattr(module, "proj_size", 0)),
                bool(module.bias),
                tuple(f"_l{layer}" for layer in range(layers)),
            )
        if isinstance(module, nn.RNNCellBase):
            if isinstance(module, nn.GRUCell):
                kind = "gru"
            elif isinstance(module, nn.LSTMCell):
                kind = "lstm"
            else:
                kind = f"rnn_{module.nonlinearity}"
            size = (int(module.input_size), int(module.hidden_size))
            return cls(kind, *size, 1, 0, bool(module.bias), ("",))
        raise TypeError(
            "expected an nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell or nn.LSTMCell, got "
            f"{type(module).__name__}"
        )

    @property
    def gates(self) -> int:
        return RNN_KINDS[self.kind]

    @property
    def output_size(self) -> int:
        """Entries of each layer's ``h``: ``proj_size`` or ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def state_size(self) -> int:
        """``L · output_size`` (+ ``L · hidden_size`` for the cell states of an LSTM)."""
        cells = self.num_layers * self.hidden_size if self.kind == "lstm" else 0
        return self.num_layers * self.output_size + cells

    def h_slice(self, layer: int) -> slice:
        """Where layer ``layer``'s ``h`` sits in the state."""
        P = self.output_size
        return slice(layer * P, (layer + 1) * P)

    def c_slice(self, layer: int) -> slice:
        """Where layer ``layer``'s ``c`` sits in the state (LSTM)."""
        start = self.num_layers * self.output_size + layer * self.hidden_size
        return slice(start, start + self.hidden_size)

    def parameter_names(self, layer: int) -> dict[str, str]:
        """``{role: module attribute}`` of layer ``layer`` (roles ``W_ih, W_hh, b_ih, b_hh, W_hr``)."""
        s = self.suffixes[layer]
        names = {"W_ih": f"weight_ih{s}", "W_hh": f"weight_hh{s}"}
        if self.bias:
            names.update(b_ih=f"bias_ih{s}", b_hh=f"bias_hh{s}")
        if self.proj_size:
            names["W_hr"] = f"weight_hr{s}"
        return names

    def describe(self) -> str:
        name = {"rnn_tanh": "RNN(tanh)", "rnn_relu": "RNN(relu)", "gru": "GRU", "lstm": "LSTM"}
        proj = f", proj {self.proj_size}" if self.proj_size else ""
        return f"{name[self.kind]}({self.num_layers}x{self.hidden_size}{proj})"


def _sigmoid(xp: Any, a: Any) -> Any:
    return xp.sigmoid(a) if hasattr(xp, "sigmoid") else 0.5 * (1.0 + xp.tanh(0.5 * a))


def _linear(x: Any, W: Any, b: Any) -> Any:
    y = x @ W.T
    return y if b is None else y + b


def _gate_sum(alpha: Any, W: Any, gates: int) -> Any:
    """``Σ_g diag(α_g) W_g``: ``alpha`` (..., G, H), ``W`` (G·H, k) → (..., H, k)."""
    H = W.shape[0] // gates
    return (alpha[..., None] * W.reshape(gates, H, W.shape[1])).sum(-3)


def _cell(xp: Any, kind: str, p: dict, x: Any, h: Any, c: Any, jac: bool) -> tuple:
    """One layer: ``(h', c', blocks)``, ``c'`` None but for an LSTM and ``blocks`` None unless
    ``jac``: a list of ``(output, argument, block, diagonal)`` with ``block = ∂output/∂argument``
    (outputs ``"h"``, ``"c"``; arguments ``"h"``, ``"c"``, ``"x"``), given by its diagonal when
    ``diagonal``."""
    gi, gh = _linear(x, p["W_ih"], p.get("b_ih")), _linear(h, p["W_hh"], p.get("b_hh"))
    if kind in ("rnn_tanh", "rnn_relu"):
        a = gi + gh
        if kind == "rnn_tanh":
            h1 = xp.tanh(a)
            d = 1.0 - h1 * h1
        else:
            h1 = xp.relu(a) if hasattr(xp, "relu") else np.maximum(a, 0.0)
            d = (a > 0) * 1.0
        if not jac:
            return h1, None, None
        alpha = d[..., None, :]
        return (
            h1,
            None,
            [
                ("h", "h", _gate_sum(alpha, p["W_hh"], 1), False),
                ("h", "x", _gate_sum(alpha, p["W_ih"], 1), False),
            ],
        )
    H = p["W_hh"].shape[0] // RNN_KINDS[kind]
    if kind == "gru":
        r = _sigmoid(xp, gi[..., :H] + gh[..., :H])
        z = _sigmoid(xp, gi[..., H : 2 * H] + gh[..., H : 2 * H])
        q = gh[..., 2 * H :]
        n = xp.tanh(gi[..., 2 * H :] + r * q)
        h1 = n + z * (h - n)
        if not jac:
            return h1, None, None
        d = (1.0 - z) * (1.0 - n * n)
        ar, az = d * q * r * (1.0 - r), (h - n) * z * (1.0 - z)
        return (
            h1,
            None,
            [
                ("h", "h", _gate_sum(xp.stack([ar, az, d * r], -2), p["W_hh"], 3), False),
                ("h", "h", z, True),
                ("h", "x", _gate_sum(xp.stack([ar, az, d], -2), p["W_ih"], 3), False),
            ],
        )
    a = gi + gh
    i, f = _sigmoid(xp, a[..., :H]), _sigmoid(xp, a[..., H : 2 * H])
    g, o = xp.tanh(a[..., 2 * H : 3 * H]), _sigmoid(xp, a[..., 3 * H :])
    c1 = f * c + i * g
    tc = xp.tanh(c1)
    m = o * tc
    W_hr = p.get("W_hr")
    h1 = m if W_hr is None else m @ W_hr.T
    if not jac:
        return h1, c1, None
    zero = 0.0 * o
    beta = xp.stack([g * i * (1.0 - i), c * f * (1.0 - f), i * (1.0 - g * g), zero], -2)
    kappa = o * (1.0 - tc * tc)
    gamma = kappa[..., None, :] * beta + xp.stack([zero, zero, zero, tc * o * (1.0 - o)], -2)
    dm_h, dm_x = _gate_sum(gamma, p["W_hh"], 4), _gate_sum(gamma, p["W_ih"], 4)
    blocks = [
        ("c", "h", _gate_sum(beta, p["W_hh"], 4), False),
        ("c", "c", f, True),
        ("c", "x", _gate_sum(beta, p["W_ih"], 4), False),
    ]
    if W_hr is None:
        blocks += [("h", "h", dm_h, False), ("h", "c", kappa * f, True), ("h", "x", dm_x, False)]
    else:
        blocks += [
            ("h", "h", W_hr @ dm_h, False),
            ("h", "c", W_hr * (kappa * f)[..., None, :], False),
            ("h", "x", W_hr @ dm_x, False),
        ]
    return h1, c1, blocks


def _zeros(like: Any, shape: tuple[int, ...]) -> Any:
    return like.new_zeros(shape) if is_torch_tensor(like) else np.zeros(shape, like.dtype)


def rnn_stack_step(
    xp: Any, stack: RNNStack, layers: list[dict], s: Any, u: Any, jacobian: bool = False
) -> tuple[Any, Any]:
    """``(s', ∂s'/∂s)`` of the stack (the Jacobian None unless ``jacobian``).

    ``layers[l]`` holds layer ``l``'s parameters by role (``W_ih``, ``W_hh`` and, where the module
    has them, ``b_ih``, ``b_hh``, ``W_hr``) as arrays of ``xp`` (numpy or torch); ``s`` is
    ``(..., state_size)`` and ``u`` ``(..., input_size)``. Without the Jacobian it is plain
    differentiable tensor code (no in-place updates), so the same formulas serve as a torch
    model's ``step`` under ``torch.func``. The Jacobian's rows of layer ``l`` are its own blocks
    plus ``(∂s'_l/∂x_l) · (rows of the layer below's new h)``.
    """
    lstm = stack.kind == "lstm"
    n, lead = stack.state_size, tuple(s.shape[:-1])
    J = _zeros(s, lead + (n, n)) if jacobian else None
    x, hs, cs, below = u, [], [], None
    for layer, p in enumerate(layers):
        where = {"h": stack.h_slice(layer)}
        if lstm:
            where["c"] = stack.c_slice(layer)
        c = s[..., where["c"]] if lstm else None
        h1, c1, blocks = _cell(xp, stack.kind, p, x, s[..., where["h"]], c, jacobian)
        hs.append(h1)
        cs += [c1] if lstm else []
        for out, arg, block, diagonal in blocks or ():
            rows = where[out]
            if arg == "x":
                if below is not None:  # x is the new h of the layer below
                    J[..., rows, :] += block @ below
            elif diagonal:
                index = np.arange(n)
                J[..., index[rows], index[where[arg]]] += block
            else:
                J[..., rows, where[arg]] += block
        if jacobian:
            below = J[..., where["h"], :]
        x = h1
    return xp.concatenate(hs + cs, -1), J


class StackedRNNMap(ArrayMap):
    """The map ``s → s'`` of a PyTorch recurrent module's full stacked state, with analytic
    Jacobians (numpy, torch and numba backends).

    ``s = (h¹, …, hᴸ)`` for ``nn.RNN``/``nn.GRU`` and ``(h¹, …, hᴸ, c¹, …, cᴸ)`` for ``nn.LSTM``
    (each ``h`` of ``proj_size`` entries when the LSTM has a projection); the input is the module's
    ``u`` (``input_dim = input_size``). Layer ``l`` applies PyTorch's cell to its own state and
    ``x_l`` (``x_1 = u``, ``x_l = h'^{l−1}``), e.g. for ``nn.RNN``::

        h'^l = φ(W_ih x_l + b_ih + W_hh h^l + b_hh),    ∂h'^l/∂h^l = diag(φ'(a)) W_hh

    and the state Jacobian is block lower triangular by layer, the rows of layer ``l`` being its
    own block plus ``(∂h'^l/∂x_l)(∂h'^{l−1}/∂s)``. The GRU and LSTM equations and Jacobians are
    in the docstring of the module ``lyapkit.maps.rnn``. Dropout between layers is not applied (a
    map is the deterministic network).

    The map holds the module, not a copy of its weights: :meth:`lyapkit.StackedRNNMap.prepare`,
    which every lyapkit computation calls first, reads its current parameters (as float64 numpy
    arrays), so a module trained between two analyses is analysed with its new weights.

    On the numba backend the same equations run as the kernels ``stacked_rnn_step`` and
    ``stacked_rnn_jacobian`` of ``lyapkit.maps.numba_kernels``, with the weights packed into
    arrays (one compiled loop serves every cell type and size, cached on disk).

    Parameters
    ----------
    module : nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell or nn.LSTMCell
        Any ``num_layers``, ``batch_first`` either way (the map acts on one time step), with or
        without biases, ``proj_size`` (LSTM). Bidirectional modules are refused.

    Attributes
    ----------
    module : torch.nn.Module
        The wrapped module (not a copy).
    stack : RNNStack
        Its cell type and sizes.

    Raises
    ------
    ValueError
        For a bidirectional module (not a causal map of its state).
    TypeError
        For anything but the six module types above.

    See Also
    --------
    lyapkit.from_torch : Builds this map from a module or a module holding one.
    lyapkit.adapt : The same network as a :class:`lyapkit.RecurrentNetwork`.

    References
    ----------
    .. [1] J. L. Elman, "Finding structure in time",
       *Cognitive Science* 14(2), 179–211 (1990).
    .. [2] S. Hochreiter and J. Schmidhuber, "Long short-term memory", *Neural Computation* 9(8),
       1735–1780 (1997).
    .. [3] K. Cho, B. van Merriënboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk and
       Y. Bengio, "Learning phrase representations using RNN encoder-decoder for statistical
       machine translation", *Proceedings of EMNLP*, 1724–1734 (2014).

    Examples
    --------
    The analytic Jacobian of a two-layer LSTM agrees with autodiff:

    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> cell = lk.StackedRNNMap(torch.nn.LSTM(3, 4, num_layers=2))
    >>> cell.name, cell.dim, cell.input_dim
    ('LSTM(2x4)', 16, 3)
    >>> s, u = torch.rand(16, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    >>> J_autodiff = torch.autograd.functional.jacobian(lambda x: cell.step(x, u), s)
    >>> bool(torch.allclose(cell.jacobian(s, u), J_autodiff))
    True
    """

    jacobian_method = "analytic"

    def __init__(self, module: Any):
        self.stack = RNNStack.of(module)
        self.module = module
        self.dim, self.input_dim = self.stack.state_size, self.stack.input_size
        self.name = self.stack.describe()
        self.prepare()

    def prepare(self) -> None:
        """Read the module's current parameters."""
        self._packed: tuple[np.ndarray, np.ndarray] | None = None
        self._set_params(
            **{
                f"{role}_l{layer}": getattr(self.module, attr).detach().cpu().double().numpy()
                for layer in range(self.stack.num_layers)
                for role, attr in self.stack.parameter_names(layer).items()
            }
        )

    def _layers(self, p: dict) -> list[dict]:
        return [
            {role: p[f"{role}_l{layer}"] for role in self.stack.parameter_names(layer)}
            for layer in range(self.stack.num_layers)
        ]

    def _step(self, xp: Any, p: dict, x: Any, u: Any) -> Any:
        return rnn_stack_step(xp, self.stack, self._layers(p), x, u)[0]

    def _jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> Any:
        return rnn_stack_step(xp, self.stack, self._layers(p), x, u, jacobian=True)[1]

    def _step_and_jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> tuple[Any, Any]:
        return rnn_stack_step(xp, self.stack, self._layers(p), x, u, jacobian=True)

    def numba_kernels(self) -> NumbaKernels:
        """The kernels ``stacked_rnn_step`` / ``stacked_rnn_jacobian``, with packed weights.

        The weights are packed once per :meth:`lyapkit.StackedRNNMap.prepare`.

        Returns
        -------
        lyapkit.NumbaKernels
            The kernels, with parameters ``(meta, w)``: the layout header and per-layer weight
            offsets (int64), and the weights (float64), as ``lyapkit.maps.numba_kernels``
            describes.
        """
        from lyapkit.maps import numba_kernels as nk

        if self._packed is None:
            stack, chunks, offset = self.stack, [], 0
            meta = [
                list(RNN_KINDS).index(stack.kind),
                stack.input_size,
                stack.hidden_size,
                stack.num_layers,
                stack.output_size,
            ]
            for layer in range(stack.num_layers):
                for role in ("W_ih", "W_hh", "b_ih", "b_hh", "W_hr"):
                    value = self._params.get(f"{role}_l{layer}")
                    if value is None:
                        meta.append(-1)
                        continue
                    meta.append(offset)
                    chunks.append(np.ascontiguousarray(value, dtype=np.float64).ravel())
                    offset += chunks[-1].size
            self._packed = (np.array(meta, dtype=np.int64), np.concatenate(chunks))
        return NumbaKernels(nk.stacked_rnn_step, nk.stacked_rnn_jacobian, self._packed)

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A small random state ``U(−0.1, 0.1)`` (hidden states of a trained network are bounded by
        1 for tanh and sigmoid gates).

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``.
        """
        return rng.uniform(-0.1, 0.1, self.dim)

    def __repr__(self) -> str:
        return f"StackedRNNMap({self.name}, dim={self.dim}, input_dim={self.input_dim})"
