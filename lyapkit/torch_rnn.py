"""PyTorch recurrent networks as lyapkit recurrent networks: :class:`AdaptedRNN` (``lyapkit.adapt``).

This module imports torch; ``import lyapkit`` does not import it (:func:`lyapkit.adapt` does, when
called).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from lyapkit.maps.rnn import RNNStack, StackedRNNMap, rnn_stack_step

__all__ = ["READOUTS", "AdaptedRNN"]

READOUTS = ("last", "sequence")
_RNN_TYPES = (nn.RNNBase, nn.RNNCellBase)
_RNN_NAMES = "nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell or nn.LSTMCell"


def _find_rnn(module: nn.Module, path: str | None) -> nn.Module:
    """The recurrent module: ``module`` itself, the one at ``path``, or the only one it holds."""
    if isinstance(module, _RNN_TYPES):
        if path is not None:
            raise ValueError(f"rnn={path!r} names a part of a module, but module is itself a "
                             f"{type(module).__name__}")  # fmt: skip
        return module
    found = [(name, m) for name, m in module.named_modules() if isinstance(m, _RNN_TYPES)]
    names = [name for name, _ in found]
    if path is not None:
        try:
            sub = module.get_submodule(path)
        except AttributeError:
            raise ValueError(
                f"rnn={path!r} is not a submodule of {type(module).__name__}; its recurrent "
                f"modules are {names}"
            ) from None
        if not isinstance(sub, _RNN_TYPES):
            raise TypeError(f"rnn={path!r} must name an {_RNN_NAMES}, got {type(sub).__name__}")
        return sub
    if not found:
        raise TypeError(
            f"module must be an {_RNN_NAMES}, or hold one; {type(module).__name__} holds none"
        )
    if len(found) > 1:
        raise ValueError(
            f"{type(module).__name__} holds several recurrent modules {names}: name the one to "
            "analyse with rnn=..."
        )
    return found[0][1]


def _find_head(module: nn.Module, rnn: nn.Module, head: Any) -> nn.Module | None:
    """The readout: given, at a path, or the only parameterised child apart from the RNN."""
    if isinstance(head, nn.Module):
        return head
    if isinstance(head, str):
        try:
            return module.get_submodule(head)
        except AttributeError:
            children = [name for name, _ in module.named_children()]
            raise ValueError(
                f"head={head!r} is not a submodule of {type(module).__name__}; its children are "
                f"{children}"
            ) from None
    if head is not None:
        raise TypeError(
            f"head must be a dotted submodule path, an nn.Module or None, got {type(head).__name__}"
        )
    if module is rnn:
        return None
    candidates = [
        name
        for name, child in module.named_children()
        if all(m is not rnn for m in child.modules()) and any(True for _ in child.parameters())
    ]
    if len(candidates) > 1:
        raise ValueError(
            f"{type(module).__name__} has several children with parameters besides its recurrent "
            f"module, {candidates}: name the readout with head=... (a path or a module)"
        )
    if candidates:
        return module.get_submodule(candidates[0])
    own = {id(p) for p in rnn.parameters()}
    container = next(
        (
            name
            for name, child in module.named_children()
            if any(m is rnn for m in child.modules())
            and any(id(p) not in own for p in child.parameters())
        ),
        None,
    )
    if container is not None:  # e.g. nn.ModuleList([nn.GRU(...), nn.Linear(...)])
        raise ValueError(
            f"{type(module).__name__}.{container} holds the recurrent module together with other "
            "parameters (a readout?): name the readout with head=... (a path such as "
            f"'{container}.1', or a module), or pass the recurrent module itself"
        )
    return None


class AdaptedRNN(nn.Module):
    """A PyTorch recurrent network as a :class:`lyapkit.RecurrentNetwork`, sharing its parameters.

    Wraps an ``nn.RNN`` (tanh or relu), ``nn.GRU``, ``nn.LSTM`` or one of their cells, and an
    optional readout module ``head``; both are registered as children (``rnn`` and ``head``), so
    the adapter's parameters *are* the module's (named ``rnn.weight_ih_l0``, ``head.weight``, …):
    training either one trains the other, and every analysis reads the current values.

    The state is the full stacked state of the network, in the layout of PyTorch's ``h_n`` (and
    ``c_n``) flattened layer by layer::

        nn.RNN, nn.GRU:  x = (h¹, …, hᴸ)                   state_size = L · H
        nn.LSTM:         x = (h¹, …, hᴸ, c¹, …, cᴸ)        state_size = L · (P + H)

    (``P = proj_size`` or ``H``); one step runs every layer, layer ``l`` reading the new ``h`` of
    layer ``l − 1`` (the equations are in the module ``lyapkit.maps.rnn``). The readout sees the top
    layer's hidden state ``hᴸ``::

        y = head(hᴸ_T)              readout="last"       (batch, k)
        y_t = head(hᴸ_t)            readout="sequence"   (batch, T, k)

    which is what the usual ``out, _ = self.lstm(x); return self.head(out[:, -1])`` computes.

    Inputs are batch first, ``(batch, T, input_size)``, whatever the module's ``batch_first``
    (the adapter transposes them for a ``batch_first=False`` module's fused pass). ``forward``
    runs the module's fused kernel (so training through the adapter is as fast as through the
    module); inside :meth:`reference_path` it runs the loop over :meth:`step` instead, with every
    submodule in eval mode (no dropout, in the head or between layers): that is what every
    analysis differentiates. Bidirectional modules are refused (not a causal map).

    Parameters
    ----------
    module : nn.Module
        The recurrent module, or a module holding one (found by ``rnn``, or the only one).
    rnn : str, optional
        Dotted path of the recurrent module inside ``module``.
    head : str or nn.Module, optional
        The readout: a path inside ``module`` or a module. Default: the only child of ``module``
        that has parameters and does not hold the recurrent module; none found, the output is
        ``hᴸ`` itself.
    readout : {"last", "sequence"}, default "last"
        Read out the last step or every step.

    Attributes
    ----------
    rnn : torch.nn.Module
        The recurrent module (the user's, not a copy).
    head : torch.nn.Module or None
        The readout module, or None (the output is ``hᴸ``).
    input_size, state_size, feature_size : int
        Sizes of ``u``, of the full state ``x`` and of the top layer's ``hᴸ``.

    Raises
    ------
    TypeError
        For a module that is not and holds no recurrent module, or a ``head`` of the wrong type.
    ValueError
        For a bidirectional module, several candidate recurrent modules or readouts (name them),
        a path that is not a submodule, or an unknown ``readout``.
    """

    def __init__(
        self, module: nn.Module, *, rnn: str | None = None, head: Any = None, readout: str = "last"
    ):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        recurrent = _find_rnn(module, rnn)
        self.stack = RNNStack.of(recurrent)
        readout_module = _find_head(module, recurrent, head)
        # children in the order of the module's parameters, so that the adapter's parameters
        # (and so curvature vectors) line up with an optimizer built on module.parameters()
        order = {id(p): i for i, p in enumerate(module.parameters())}  # a head outside: after
        first = [min((order.get(id(p), len(order)) for p in m.parameters()), default=len(order))
                 for m in (recurrent, readout_module or recurrent)]  # fmt: skip
        if first[1] < first[0]:
            self.head, self.rnn = readout_module, recurrent
        else:
            self.rnn, self.head = recurrent, readout_module
        self.readout = readout
        self.input_size, self.state_size = self.stack.input_size, self.stack.state_size
        #: Entries of the top layer's ``h``: what the readout sees.
        self.feature_size = self.stack.output_size
        self._fused = isinstance(recurrent, nn.RNNBase)
        self._reference = False

    # --- the protocol -------------------------------------------------------------------------

    def layer_parameters(self) -> list[dict[str, torch.Tensor]]:
        """Each layer's parameters by role (``W_ih``, ``W_hh``, ``b_ih``, ``b_hh``, ``W_hr``).

        Returns
        -------
        list of dict
            ``{role: tensor}`` per layer: the module's tensors themselves, read at every call
            (``torch.func.functional_call`` swaps them).
        """
        return [
            {
                role: getattr(self.rnn, attr)
                for role, attr in self.stack.parameter_names(layer).items()
            }
            for layer in range(self.stack.num_layers)
        ]

    def initial_state(self, inputs: torch.Tensor) -> torch.Tensor:
        """The zero state ``(batch, state_size)`` in the dtype and device of ``inputs``.

        Parameters
        ----------
        inputs : torch.Tensor
            The input sequences, ``(batch, T, input_size)``.

        Returns
        -------
        torch.Tensor
            Zeros, ``(batch, state_size)``.
        """
        return inputs.new_zeros(inputs.shape[0], self.state_size)

    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step of every layer, ``x_t = f(x_{t−1}, u_t)``, on any leading batch dims.

        Parameters
        ----------
        state : torch.Tensor
            The states ``x_{t−1}``, ``(..., state_size)``.
        u : torch.Tensor
            The inputs ``u_t``, ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            The next states ``x_t``, ``(..., state_size)``.
        """
        return rnn_stack_step(torch, self.stack, self.layer_parameters(), state, u)[0]

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """The top layer's hidden state ``hᴸ`` of states ``(..., state_size)``.

        Parameters
        ----------
        states : torch.Tensor
            Full states, ``(..., state_size)``.

        Returns
        -------
        torch.Tensor
            ``hᴸ``, ``(..., feature_size)``.
        """
        return states[..., self.stack.h_slice(self.stack.num_layers - 1)]

    def output(self, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The readout of states ``(batch, T, state_size)`` under the ``readout`` mode.

        Parameters
        ----------
        states : torch.Tensor
            The states ``x_1 … x_T``, ``(batch, T, state_size)``.
        inputs : torch.Tensor
            The input sequences (unused: the readout sees the states only).

        Returns
        -------
        torch.Tensor
            ``head(hᴸ_T)`` ``(batch, k)`` for ``readout="last"``, ``head(hᴸ_t)`` ``(batch, T, k)``
            for ``readout="sequence"``.
        """
        if self.readout == "last":
            states = states[:, -1]
        features = self.features(states)
        return features if self.head is None else self.head(features)

    @contextlib.contextmanager
    def reference_path(self) -> Iterator[AdaptedRNN]:
        """Within this context ``forward`` loops over :meth:`step` (twice differentiable, forward
        mode AD) and every submodule is in eval mode; both are restored on exit.

        Yields
        ------
        AdaptedRNN
            The adapter itself.
        """
        modes = [(m, m.training) for m in self.modules()]
        previous, self._reference = self._reference, True
        self.eval()
        try:
            yield self
        finally:
            self._reference = previous
            for m, training in modes:
                m.training = training

    def as_map(self) -> StackedRNNMap:
        """The cell as a lyapkit map of the full state, with analytic Jacobians.

        Returns
        -------
        lyapkit.StackedRNNMap
            The map (numpy, torch and numba backends); it reads the module's current weights at
            the start of every computation.
        """
        return StackedRNNMap(self.rnn)

    # --- sequences ------------------------------------------------------------------------------

    def _check_inputs(self, inputs: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3:
            got = (
                f"shape {tuple(inputs.shape)}"
                if isinstance(inputs, torch.Tensor)
                else f"a {type(inputs).__name__}"
            )
            raise ValueError(f"inputs must be a torch tensor (batch, T, input_size), got {got}")
        if inputs.shape[-1] != self.input_size or inputs.shape[1] == 0:
            raise ValueError(
                f"inputs must have shape (batch, T ≥ 1, {self.input_size}) (batch first), got "
                f"{tuple(inputs.shape)}"
            )
        if state is None:
            return self.initial_state(inputs)
        if tuple(state.shape) != (inputs.shape[0], self.state_size):
            raise ValueError(
                f"state must have shape ({inputs.shape[0]}, {self.state_size}), got "
                f"{tuple(state.shape)}"
            )
        return state

    def states(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """All states ``x_1 … x_T`` ``(batch, T, state_size)`` by the loop over :meth:`step`.

        Parameters
        ----------
        inputs : torch.Tensor
            The input sequences, ``(batch, T, input_size)``, batch first.
        state : torch.Tensor, optional
            The initial state ``(batch, state_size)`` (default: zero).

        Returns
        -------
        torch.Tensor
            The states, ``(batch, T, state_size)``.

        Raises
        ------
        ValueError
            If ``inputs`` or ``state`` has the wrong shape.
        """
        x, out = self._check_inputs(inputs, state), []
        for t in range(inputs.shape[1]):
            x = self.step(x, inputs[:, t])
            out.append(x)
        return torch.stack(out, 1)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """The readout of the network driven by ``inputs`` ``(batch, T, input_size)`` from
        ``state`` (default 0): the fused kernel, or the loop inside :meth:`reference_path`.

        Parameters
        ----------
        inputs : torch.Tensor
            The input sequences, ``(batch, T, input_size)``, batch first.
        state : torch.Tensor, optional
            The initial state ``(batch, state_size)`` (default: zero).

        Returns
        -------
        torch.Tensor
            The outputs, as :meth:`output` reads them.

        Raises
        ------
        ValueError
            If ``inputs`` or ``state`` has the wrong shape.
        """
        x = self._check_inputs(inputs, state)
        if self._reference or not self._fused:
            if self.readout == "sequence":
                return self.output(self.states(inputs, x), inputs)
            for t in range(inputs.shape[1]):  # keep only the last state (O(T) double backward)
                x = self.step(x, inputs[:, t])
            return self.output(x[:, None], inputs)
        batch_first = self.rnn.batch_first
        sequence = self.rnn(inputs if batch_first else inputs.transpose(0, 1), self.unpack(x))[0]
        h = sequence if batch_first else sequence.transpose(0, 1)
        h = h[:, -1] if self.readout == "last" else h
        return h if self.head is None else self.head(h)

    # --- PyTorch's state layout ---------------------------------------------------------------

    def pack(self, hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The state ``(batch, state_size)`` of PyTorch's ``h`` or ``(h, c)`` (LSTM).

        Parameters
        ----------
        hx : torch.Tensor or tuple of torch.Tensor
            ``h`` of shape ``(L, batch, P)`` (a cell: ``(batch, H)``), or ``(h, c)`` for an LSTM.

        Returns
        -------
        torch.Tensor
            The flat state, ``(batch, state_size)``.

        Raises
        ------
        ValueError
            If ``hx`` holds the wrong number of tensors for the cell type, or one of the wrong
            shape.
        """
        parts = hx if isinstance(hx, tuple) else (hx,)
        if len(parts) != (2 if self.stack.kind == "lstm" else 1):
            raise ValueError(
                f"hx must be {'(h, c)' if self.stack.kind == 'lstm' else 'one tensor h'} for "
                f"{self.stack.describe()}, got {len(parts)} tensor(s)"
            )
        stack = self.stack
        sizes = (stack.output_size, stack.hidden_size)  # h, then an LSTM's c
        for name, part, size in zip(("h", "c"), parts, sizes, strict=False):
            expected = (stack.num_layers, "batch", size) if self._fused else ("batch", size)
            if (
                not isinstance(part, torch.Tensor)
                or part.ndim != len(expected)
                or part.shape[-1] != size
                or (self._fused and part.shape[0] != stack.num_layers)
            ):
                got = tuple(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise ValueError(
                    f"{name} must have shape {expected} for {stack.describe()}, got {got}"
                )
        if not self._fused:
            parts = tuple(p[None] for p in parts)
        return torch.cat([p.transpose(0, 1).flatten(1) for p in parts], -1)

    def unpack(self, state: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """PyTorch's ``h`` (or ``(h, c)``) of a state ``(batch, state_size)``; inverse of
        :meth:`pack`.

        Parameters
        ----------
        state : torch.Tensor
            The flat state, ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor or tuple of torch.Tensor
            ``h`` ``(L, batch, P)`` (a cell: ``(batch, H)``), or ``(h, c)`` for an LSTM.

        Raises
        ------
        ValueError
            If ``state`` is not ``(batch, state_size)``.
        """
        size = self.state_size
        if not isinstance(state, torch.Tensor) or state.ndim != 2 or state.shape[1] != size:
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state must have shape (batch, {size}), got {got}")
        L, B = self.stack.num_layers, state.shape[0]
        h = state[:, : L * self.stack.output_size].reshape(B, L, -1).transpose(0, 1)
        parts = [h]
        if self.stack.kind == "lstm":
            parts.append(state[:, L * self.stack.output_size :].reshape(B, L, -1).transpose(0, 1))
        parts = [p.contiguous() if self._fused else p[0] for p in parts]
        return tuple(parts) if len(parts) == 2 else parts[0]

    def extra_repr(self) -> str:
        """The sizes and readout mode shown in the module's repr.

        Returns
        -------
        str
            ``"state_size=…, readout=…"``.
        """
        return f"state_size={self.state_size}, readout={self.readout!r}"
