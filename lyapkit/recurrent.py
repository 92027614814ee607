"""The recurrent-network protocol: what the learning-dynamics functions need of a model.

A recurrent network reads inputs ``u`` of shape ``(batch, T, input_size)`` (batch first) and runs
its cell from an initial state, then reads out::

    x_0 = initial_state(u),     x_t = step(x_{t−1}, u_t)  (t = 1 … T),     y = output([x_1 … x_T], u)

:func:`~lyapkit.gradient_propagation` differentiates the loss with respect to every ``x_t`` on
that loop, :meth:`~lyapkit.CurvatureOperator.layer_contributions` unties the parameters of each
step, and :func:`~lyapkit.variational_term` follows the map ``x ↦ step(x, u)``. The protocol is
structural (a ``typing.Protocol``): lyapkit's trainable models follow it, and
:func:`lyapkit.adapt` makes any PyTorch ``nn.RNN``, ``nn.GRU``, ``nn.LSTM`` (or cell, or a module
holding one and a readout) follow it without copying its parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from lyapkit.maps.base import Map

__all__ = [
    "REQUIRED",
    "RecurrentNetwork",
    "adapt",
    "as_system",
    "check_recurrent",
    "reference_path",
]

#: The members every recurrent network has (``reference_path`` and ``as_map`` are optional).
REQUIRED = ("initial_state", "step", "output")


@runtime_checkable
class RecurrentNetwork(Protocol):
    """A recurrent network ``x_t = f(x_{t−1}, u_t; θ)`` with a readout ``y = g([x_1 … x_T], u; θ)``.

    The structural type (a ``typing.Protocol``, usable with ``isinstance``) of what the
    learning-dynamics functions need of a model. The loop over
    :meth:`lyapkit.RecurrentNetwork.step` from :meth:`lyapkit.RecurrentNetwork.initial_state`,
    read out by :meth:`lyapkit.RecurrentNetwork.output`, is the network's *reference path*::

        x_0 = initial_state(u),   x_t = step(x_{t−1}, u_t)  (t = 1 … T),   y = output([x_1 … x_T], u)

    The learning-dynamics functions differentiate through it, so ``step`` and ``output`` must be
    differentiable twice and in forward mode
    (``torch.func``: no in-place updates of captured tensors, no ``.item()``, no fused kernels
    such as cuDNN's). For a batch of losses ``L = (1/N) Σ ℓ(y, ŷ)``::

        ∂L/∂x_t = J_tᵀ ∂L/∂x_{t+1} + (∂L/∂x_t)_readout,    J_t = ∂step/∂x (x_t, u_{t+1})
        H = Σ_{s,t} ∂²L/∂θ_s∂θ_t                            (θ_s: the copy of θ used at step s)

    Optional members, used when present:

    ``reference_path()``
        A context manager within which ``model(inputs)`` (``forward``) runs that same loop, for a
        model whose forward pass uses a fused kernel; :class:`lyapkit.CurvatureOperator`
        evaluates the model inside it.
    ``as_map()``
        The cell as a lyapkit :class:`lyapkit.Map` of the state ``x`` with input ``u``
        (analytic Jacobians where the model has them); :func:`lyapkit.variational_term` and
        :func:`lyapkit.variational_profile` accept a network that has it. For a Lyapunov
        spectrum pass ``model.as_map()`` to :func:`lyapkit.lyapunov_spectrum`.

    Parameters
    ----------
    *args, **kwargs : Any
        Not used: a protocol is not instantiated, a model follows it by having its members.

    See Also
    --------
    lyapkit.adapt : Makes a PyTorch ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM`` follow the protocol.
    lyapkit.gradient_propagation : Gradients along the reference path.
    lyapkit.CurvatureOperator : Curvature of the loss of such a network.

    Examples
    --------
    Any object with the three members follows the protocol:

    >>> import torch
    >>> import lyapkit as lk
    >>> class Leaky:
    ...     def initial_state(self, inputs):
    ...         return inputs.new_zeros(inputs.shape[0], 2)
    ...     def step(self, state, u):
    ...         return 0.5 * state + u
    ...     def output(self, states, inputs):
    ...         return states[:, -1]
    >>> isinstance(Leaky(), lk.RecurrentNetwork), isinstance(object(), lk.RecurrentNetwork)
    (True, False)
    >>> isinstance(lk.adapt(torch.nn.GRU(2, 3)), lk.RecurrentNetwork)
    True
    """

    def initial_state(self, inputs: Any) -> Any:
        """``x_0``: a ``(batch, state_size)`` tensor for inputs ``(batch, T, input_size)``.

        Parameters
        ----------
        inputs : torch.Tensor
            The input sequences, ``(batch, T, input_size)``.

        Returns
        -------
        torch.Tensor
            The initial states, ``(batch, state_size)``.
        """
        ...

    def step(self, state: Any, u: Any) -> Any:
        """``x_t = f(x_{t−1}, u_t)`` for a batch: ``(batch, state_size)``, ``(batch, input_size)``.

        Parameters
        ----------
        state : torch.Tensor
            The states ``x_{t−1}``, ``(batch, state_size)``.
        u : torch.Tensor
            The inputs ``u_t``, ``(batch, input_size)``.

        Returns
        -------
        torch.Tensor
            The next states ``x_t``, ``(batch, state_size)``.
        """
        ...

    def output(self, states: Any, inputs: Any) -> Any:
        """The readout of the states ``(batch, T, state_size)`` (e.g. of the last one).

        Parameters
        ----------
        states : torch.Tensor
            The states ``x_1 … x_T``, ``(batch, T, state_size)``.
        inputs : torch.Tensor
            The input sequences, ``(batch, T, input_size)``.

        Returns
        -------
        torch.Tensor
            The outputs ``y`` (e.g. ``(batch, k)`` for a readout of the last state).
        """
        ...


def check_recurrent(model: Any, needed_by: str) -> None:
    """A TypeError naming what ``model`` lacks of the :class:`RecurrentNetwork` protocol.

    ``needed_by`` names the function that needs it (it starts the message). A PyTorch recurrent
    module, or a module holding one, is pointed to :func:`lyapkit.adapt`.
    """
    missing = [name for name in REQUIRED if not callable(getattr(model, name, None))]
    if not missing:
        return
    hint = ""
    if _holds_torch_rnn(model):
        hint = "; it holds a PyTorch recurrent module: wrap it with lyapkit.adapt(model)"
    raise TypeError(
        f"{needed_by} needs a recurrent model (lyapkit.RecurrentNetwork: initial_state(inputs), "
        f"step(state, u), output(states, inputs)); {type(model).__name__} lacks "
        f"{', '.join(missing)}{hint}"
    )


def check_input_size(model: Any, inputs: Any, name: str = "inputs") -> None:
    """A ValueError naming ``name`` when the last axis of ``inputs`` differs from the model's
    ``input_size`` (for a model that has one; the protocol does not require it)."""
    expected = getattr(model, "input_size", None)
    if isinstance(expected, int) and inputs.shape[-1] != expected:
        raise ValueError(
            f"{name} must have {expected} input features on the last axis (the model's "
            f"input_size), got shape {tuple(inputs.shape)}"
        )


def _holds_torch_rnn(model: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return False
    kinds = (torch.nn.RNNBase, torch.nn.RNNCellBase)
    return any(isinstance(m, kinds) for m in model.modules())


def as_system(system: Any) -> Map:
    """``system`` itself when it is a :class:`~lyapkit.Map`, else the map of a recurrent network
    that has ``as_map()``; a TypeError saying so otherwise."""
    if isinstance(system, Map):
        return system
    as_map = getattr(system, "as_map", None)
    if callable(as_map):
        system = as_map()
        if isinstance(system, Map):
            return system
        raise TypeError(f"as_map() must return a lyapkit Map, got {type(system).__name__}")
    hint = (
        "; it holds a PyTorch recurrent module: lyapkit.adapt(system) has as_map()"
        if _holds_torch_rnn(system)
        else "; wrap callables with lyapkit.from_numpy, lyapkit.from_numba or lyapkit.from_torch"
    )
    raise TypeError(
        "system must be a lyapkit Map or a recurrent network with as_map() (lyapkit."
        f"RecurrentNetwork), got {type(system).__name__}, which lacks as_map{hint}"
    )


@contextlib.contextmanager
def reference_path(model: Any) -> Iterator[Any]:
    """``model.reference_path()`` when the model has one, else a context that does nothing."""
    context = getattr(model, "reference_path", None)
    with context() if callable(context) else contextlib.nullcontext():
        yield model


def adapt(
    module: Any,
    *,
    rnn: str | None = None,
    head: Any = None,
    readout: str = "last",
) -> Any:
    """A PyTorch recurrent network as a :class:`RecurrentNetwork`, sharing its parameters.

    Returns a ``lyapkit.torch_rnn.AdaptedRNN``, an ``nn.Module`` whose children ``rnn`` and
    ``head`` are the module's own (no copies: training either trains both, and every analysis
    reads the current weights). Its state is the full stacked state, in the layout of PyTorch's
    ``h_n`` (and ``c_n``) flattened layer by layer, and its readout sees the top layer's ``hᴸ``::

        nn.RNN, nn.GRU:  x = (h¹, …, hᴸ)                 state_size = L · H
        nn.LSTM:         x = (h¹, …, hᴸ, c¹, …, cᴸ)      state_size = L · (P + H),  P = proj_size or H
        y = head(hᴸ_T)  (readout="last"),    y_t = head(hᴸ_t)  (readout="sequence")

    One ``step`` runs every layer, layer ``l`` reading the new ``h`` of layer ``l − 1``
    (equations and Jacobians in the module ``lyapkit.maps.rnn``). Inputs are batch first
    ``(batch, T, input_size)`` whatever the module's ``batch_first``. ``forward`` runs the fused
    kernel; inside ``reference_path()`` it runs the loop over ``step`` with every submodule in
    eval mode (no dropout between layers or in the head), which is what the analyses
    differentiate. ``as_map()`` is the :class:`lyapkit.StackedRNNMap` of the state (analytic
    Jacobians); ``pack((h, c))`` and ``unpack(x)`` convert from and to PyTorch's layout. This
    function imports torch only when called.

    Parameters
    ----------
    module : nn.Module
        An ``nn.RNN`` (tanh or relu), ``nn.GRU``, ``nn.LSTM`` (any ``num_layers``, ``batch_first``
        either way, with or without biases, ``proj_size``), one of their cells, or a module that
        holds one of them and a readout.
    rnn : str, optional
        Dotted path of the recurrent module inside ``module`` (default: the only one it holds).
    head : str or nn.Module, optional
        The readout applied to the top layer's hidden state: a dotted path inside ``module``, or a
        module. Default: the only child of ``module``, other than the recurrent one, that has
        parameters (none: the hidden state itself is the output).
    readout : {"last", "sequence"}, default "last"
        Read out the last step (outputs ``(batch, k)``) or every step (``(batch, T, k)``).

    Returns
    -------
    lyapkit.torch_rnn.AdaptedRNN
        An ``nn.Module`` following the protocol, with ``reference_path()`` and ``as_map()``.

    Raises
    ------
    TypeError
        For a module that is not and holds no recurrent module, or a ``head`` of the wrong type.
    ValueError
        For a bidirectional module (not a causal map), several candidate recurrent modules or
        readouts (name them), a path that is not a submodule, or an unknown ``readout``.
    ImportError
        If torch is not installed.

    See Also
    --------
    lyapkit.RecurrentNetwork : The protocol the result follows.
    lyapkit.StackedRNNMap : The map of its state (``as_map()``).
    lyapkit.from_torch : The map of a recurrent module directly.

    Examples
    --------
    A classifier holding an LSTM and a linear head, adapted without copying its weights:

    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> class Classifier(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lstm = torch.nn.LSTM(2, 4, num_layers=2, batch_first=True)
    ...         self.head = torch.nn.Linear(4, 3)
    ...     def forward(self, x):
    ...         out, _ = self.lstm(x)
    ...         return self.head(out[:, -1])
    >>> model = Classifier()
    >>> net = lk.adapt(model)
    >>> net.state_size, isinstance(net, lk.RecurrentNetwork)
    (16, True)
    >>> x = torch.randn(5, 7, 2)
    >>> with net.reference_path():  # the loop over step, as the analyses see it
    ...     y_loop = net(x)
    >>> bool(torch.allclose(y_loop, model(x), atol=1e-6))
    True
    >>> net.as_map()
    StackedRNNMap(LSTM(2x4), dim=16, input_dim=2)
    """
    from lyapkit.torch_rnn import AdaptedRNN

    return AdaptedRNN(module, rnn=rnn, head=head, readout=readout)
