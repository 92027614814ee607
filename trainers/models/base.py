"""The base class of every trainable recurrent model: a recurrent cell, an affine readout, and a map.

A model reads inputs ``u`` of shape ``(batch, T, input_size)`` (batch first) and runs its cell
``s_t = f(s_{t−1}, u_t)`` from ``s_0 = 0`` (or a given state). The state ``s`` is real: complex
hidden units are stored as ``(Re h, Im h)`` and an LSTM's state is ``(h, c)``, so the same ``s`` is
the state of the lyapkit map returned by :meth:`~lyapkit.trainers.models.RecurrentModel.as_map`.
The readout is affine in the features the cell exposes (``h`` for an LSTM), on the last step or on
every step.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from lyapkit._checks import integer
from lyapkit.maps import Map, from_torch

READOUTS = ("last", "sequence")


class RecurrentModel(nn.Module, abc.ABC):
    """A recurrent network ``s_t = f(s_{t−1}, u_t)`` with an affine readout ``y = C φ(s) + c``.

    Abstract base of every trainable model. From ``s_0 = 0`` (or a given state) the cell runs::

        s_t = f(s_{t−1}, u_t),   t = 1 … T
        y   = C φ(s_T) + c        (readout="last")
        y_t = C φ(s_t) + c        (readout="sequence")

    with ``φ`` the features the cell exposes
    (:meth:`~lyapkit.trainers.models.RecurrentModel.features`; the state itself unless overridden)
    and ``C``, ``c`` the weight and bias of ``self.decoder`` (an ``nn.Linear``).

    Parameters
    ----------
    input_size : int
        Dimension of each input ``u_t``.
    hidden_size : int
        Number of recurrent units.
    output_size : int
        Dimension of the readout ``y``.
    readout : {"last", "sequence"}, default "last"
        Read out the last state only (``y`` has shape ``(batch, output_size)``) or every state
        (``(batch, T, output_size)``, for sequence-to-sequence tasks).
    state_size : int, optional
        Dimension of the real state ``s`` (default ``hidden_size``; ``2 hidden_size`` for complex
        units and for an LSTM's ``(h, c)``).
    feature_size : int, optional
        Dimension of the features ``φ(s)`` the readout sees (default ``state_size``).

    Attributes
    ----------
    decoder : torch.nn.Linear
        The affine readout ``C φ + c``, ``feature_size → output_size``.
    state_size, feature_size : int
        Dimensions of the real state ``s`` and of the features ``φ(s)``.

    Raises
    ------
    ValueError
        If ``input_size``, ``hidden_size`` or ``output_size`` is not an integer ≥ 1, or
        ``readout`` is not ``"last"`` or ``"sequence"``.

    See Also
    --------
    lyapkit.RecurrentNetwork : The recurrent protocol every model follows.
    lyapkit.trainers.models.WCRNN : The weakly coupled residual RNN.
    lyapkit.gradient_propagation : Gradient propagation through a model.

    Notes
    -----
    Subclasses implement :meth:`~lyapkit.trainers.models.RecurrentModel.step` (one batched step in
    the real state coordinates) and may override
    :meth:`~lyapkit.trainers.models.RecurrentModel.fast_states` (a fast path equal to the loop over
    :meth:`~lyapkit.trainers.models.RecurrentModel.step`),
    :meth:`~lyapkit.trainers.models.RecurrentModel.features`,
    :meth:`~lyapkit.trainers.models.RecurrentModel.output` and
    :meth:`~lyapkit.trainers.models.RecurrentModel.as_map`.

    Every model follows lyapkit's recurrent protocol, :class:`lyapkit.RecurrentNetwork`
    (:meth:`~lyapkit.trainers.models.RecurrentModel.initial_state`,
    :meth:`~lyapkit.trainers.models.RecurrentModel.step`,
    :meth:`~lyapkit.trainers.models.RecurrentModel.output`, with the optional
    :meth:`~lyapkit.trainers.models.RecurrentModel.reference_path` and
    :meth:`~lyapkit.trainers.models.RecurrentModel.as_map`), so the learning-dynamics functions of
    the core (gradient propagation, curvature and its per-time decomposition, variational terms)
    take it as it is.

    Examples
    --------
    A leaky integrator ``s_t = s_{t−1} / 2 + u_t``:

    >>> import torch
    >>> from lyapkit.trainers.models import RecurrentModel
    >>> class Leaky(RecurrentModel):
    ...     def step(self, state, u):
    ...         return 0.5 * state + u
    >>> _ = torch.manual_seed(0)
    >>> model = Leaky(input_size=1, hidden_size=1, output_size=1)
    >>> x = torch.ones(2, 4, 1)
    >>> model.states(x)[0, :, 0].tolist()
    [1.0, 1.5, 1.75, 1.875]
    >>> tuple(model(x).shape)
    (2, 1)
    >>> model.as_map().dim
    1
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: Literal["last", "sequence"] = "last",
        *,
        state_size: int | None = None,
        feature_size: int | None = None,
    ):
        super().__init__()
        self.input_size = integer(input_size, "input_size", 1)
        self.hidden_size = integer(hidden_size, "hidden_size", 1)
        self.output_size = integer(output_size, "output_size", 1)
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        self.state_size = self.hidden_size if state_size is None else int(state_size)
        self.feature_size = self.state_size if feature_size is None else int(feature_size)
        self.decoder = nn.Linear(self.feature_size, self.output_size)
        self._reference = False

    @abc.abstractmethod
    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step ``s_t = f(s_{t−1}, u_t)`` of the cell, in the real state coordinates.

        Parameters
        ----------
        state : torch.Tensor
            The state ``s_{t−1}``, shape ``(..., state_size)`` (any leading batch dims).
        u : torch.Tensor
            The input ``u_t``, shape ``(..., input_size)``.

        Returns
        -------
        torch.Tensor
            The next state ``s_t``, shape ``(..., state_size)``.
        """

    def initial_state(self, inputs: torch.Tensor) -> torch.Tensor:
        """The zero state ``s_0 = 0`` for a batch of inputs.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs ``(batch, T, input_size)``; only their batch size, dtype and device are used.

        Returns
        -------
        torch.Tensor
            Zeros of shape ``(batch, state_size)`` in the dtype and device of ``inputs``.
        """
        return inputs.new_zeros(inputs.shape[0], self.state_size)

    def check_inputs(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Validate ``inputs`` and ``state``; return the initial state.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs, shape ``(batch, T, input_size)`` with ``T ≥ 1``, in the model's dtype and
            device.
        state : torch.Tensor, optional
            The initial state ``s_0``, shape ``(batch, state_size)``; default the zero state
            (:meth:`~lyapkit.trainers.models.RecurrentModel.initial_state`).

        Returns
        -------
        torch.Tensor
            ``state``, or the zero state if it is None.

        Raises
        ------
        ValueError
            If ``inputs`` is not a 3-D tensor of shape ``(batch, T ≥ 1, input_size)``, does not have
            the dtype and device of the model's parameters, or if ``state`` does not have shape
            ``(batch, state_size)`` or the dtype and device of ``inputs``.
        """
        if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3:
            shape = getattr(inputs, "shape", type(inputs).__name__)
            raise ValueError(f"inputs must be a tensor (batch, T, input_size), got {shape}")
        if inputs.shape[-1] != self.input_size or inputs.shape[1] == 0:
            raise ValueError(
                f"inputs must have shape (batch, T ≥ 1, {self.input_size}), got {tuple(inputs.shape)}"
            )
        weight = self.decoder.weight
        if inputs.dtype != weight.dtype or inputs.device != weight.device:
            raise ValueError(
                f"inputs must have the model's dtype {weight.dtype} and device {weight.device}, "
                f"got {inputs.dtype} on {inputs.device}"
            )
        if state is None:
            return self.initial_state(inputs)
        if tuple(state.shape) != (inputs.shape[0], self.state_size):
            raise ValueError(
                f"state must have shape ({inputs.shape[0]}, {self.state_size}), got {tuple(state.shape)}"
            )
        if state.dtype != inputs.dtype or state.device != inputs.device:
            raise ValueError(
                f"state must have the dtype and device of inputs ({inputs.dtype} on {inputs.device}), "
                f"got {state.dtype} on {state.device}"
            )
        return state

    def states(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """All states ``s_1 … s_T`` of ``s_t = f(s_{t−1}, u_t)``, from ``s_0 = state`` (default 0).

        Runs the model's fast path (:meth:`~lyapkit.trainers.models.RecurrentModel.fast_states`)
        unless inside :meth:`~lyapkit.trainers.models.RecurrentModel.reference_path`.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs ``u_1 … u_T``, shape ``(batch, T, input_size)``.
        state : torch.Tensor, optional
            The initial state ``s_0``, shape ``(batch, state_size)``; default 0.

        Returns
        -------
        torch.Tensor
            The states, shape ``(batch, T, state_size)``.

        Raises
        ------
        ValueError
            For inputs or a state of the wrong shape, dtype or device
            (:meth:`~lyapkit.trainers.models.RecurrentModel.check_inputs`).
        """
        s0 = self.check_inputs(inputs, state)
        if not self._reference:
            fast = self.fast_states(inputs, s0)
            if fast is not None:
                return fast
        return self.loop_states(inputs, s0)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """A fast path (fused kernel, parallel scan, tape-free loop) equal to :meth:`~lyapkit.trainers.models.RecurrentModel.loop_states`.

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state ``s_0``, shape ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor or None
            The states ``(batch, T, state_size)``, or None where the model has no fast path (this
            default), so that :meth:`~lyapkit.trainers.models.RecurrentModel.states` falls back to
            :meth:`~lyapkit.trainers.models.RecurrentModel.loop_states`.
        """
        return None

    def loop_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The reference path: a loop over :meth:`~lyapkit.trainers.models.RecurrentModel.step`, differentiable to any order.

        It also supports forward-mode AD and the ``torch.func`` transforms.

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state ``s_0``, shape ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor
            The states ``s_1 … s_T``, shape ``(batch, T, state_size)``.
        """
        out = []
        for t in range(inputs.shape[1]):
            state = self.step(state, inputs[:, t])
            out.append(state)
        return torch.stack(out, 1)

    def loop_last_state(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The last state ``s_T`` by the loop over :meth:`~lyapkit.trainers.models.RecurrentModel.step`, keeping no other state.

        What the reference path of a ``readout="last"`` model runs: slicing ``s_T`` out of the
        stacked states of :meth:`~lyapkit.trainers.models.RecurrentModel.loop_states` would make
        every double-backward step zero-fill a ``(batch, T, state_size)`` gradient, ``O(T²)`` work
        and memory in Hessian products.

        Parameters
        ----------
        inputs : torch.Tensor
            The validated inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor
            The initial state ``s_0``, shape ``(batch, state_size)``.

        Returns
        -------
        torch.Tensor
            The last state ``s_T``, shape ``(batch, state_size)``.
        """
        for t in range(inputs.shape[1]):
            state = self.step(state, inputs[:, t])
        return state

    @contextlib.contextmanager
    def reference_path(self) -> Iterator[RecurrentModel]:
        """Context in which :meth:`~lyapkit.trainers.models.RecurrentModel.states` and :meth:`~lyapkit.trainers.models.RecurrentModel.forward` loop over :meth:`~lyapkit.trainers.models.RecurrentModel.step`.

        The loop replaces the fast path for double backward and ``torch.func`` transforms, which
        fused kernels and tape-free loops do not support. Contexts nest; the previous mode is
        restored on exit.

        Yields
        ------
        RecurrentModel
            This model.
        """
        previous, self._reference = self._reference, True
        try:
            yield self
        finally:
            self._reference = previous

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """What the readout sees of a state: ``φ(s)`` (the state itself unless overridden).

        Parameters
        ----------
        states : torch.Tensor
            States, shape ``(..., state_size)``.

        Returns
        -------
        torch.Tensor
            The features, shape ``(..., feature_size)``.
        """
        return states

    def output(self, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The readout ``y = C φ(s) + c`` of ``states`` under the ``readout`` mode.

        Parameters
        ----------
        states : torch.Tensor
            The states ``s_1 … s_T``, shape ``(batch, T, state_size)``.
        inputs : torch.Tensor
            The inputs ``(batch, T, input_size)`` that drove them (unused here; for subclasses with
            a skip term).

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)`` for ``readout="last"`` (the last state only), else
            ``(batch, T, output_size)``.
        """
        if self.readout == "last":
            states = states[:, -1]
        return self.decoder(self.features(states))

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Readout of the states driven by ``inputs``: ``output(states(inputs, state), inputs)``.

        Inside :meth:`~lyapkit.trainers.models.RecurrentModel.reference_path` a ``readout="last"``
        model runs :meth:`~lyapkit.trainers.models.RecurrentModel.loop_last_state`.

        Parameters
        ----------
        inputs : torch.Tensor
            The inputs, shape ``(batch, T, input_size)``.
        state : torch.Tensor, optional
            The initial state ``s_0``, shape ``(batch, state_size)``; default 0.

        Returns
        -------
        torch.Tensor
            ``(batch, output_size)`` for ``readout="last"``, else ``(batch, T, output_size)``.

        Raises
        ------
        ValueError
            For inputs or a state of the wrong shape, dtype or device
            (:meth:`~lyapkit.trainers.models.RecurrentModel.check_inputs`).
        """
        if self._reference and self.readout == "last":
            last = self.loop_last_state(inputs, self.check_inputs(inputs, state))
            return self.output(last[:, None], inputs)
        return self.output(self.states(inputs, state), inputs)

    def as_map(self) -> Map:
        """The recurrent cell ``s → f(s, u)`` as a lyapkit map of the state ``s`` with input ``u``.

        This default differentiates :meth:`~lyapkit.trainers.models.RecurrentModel.step` by autodiff
        (torch backend only); models with cheap analytic Jacobians override it with a snapshot of
        their current weights, which every backend can run. Call it again after training to analyse
        the new weights.

        Returns
        -------
        lyapkit.Map
            A map of dimension ``state_size`` and input dimension ``input_size``
            (:func:`lyapkit.from_torch` of :meth:`~lyapkit.trainers.models.RecurrentModel.step`).
        """
        return from_torch(
            _StepModule(self), self.state_size, self.input_size, name=type(self).__name__
        )


class _StepModule(nn.Module):
    """``model.step`` as a module, so a map can copy it to another dtype or device."""

    def __init__(self, model: RecurrentModel):
        super().__init__()
        self.model = model

    def forward(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.model.step(state, u)
