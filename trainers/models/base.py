"""The base class of every trainable recurrent model: a recurrent cell, an affine readout, and a map.

A model reads inputs ``u`` of shape ``(batch, T, input_size)`` (batch first) and runs its cell
``s_t = f(s_{t−1}, u_t)`` from ``s_0 = 0`` (or a given state). The state ``s`` is real: complex
hidden units are stored as ``(Re h, Im h)`` and an LSTM's state is ``(h, c)``, so the same ``s`` is
the state of the lyapkit map returned by :meth:`RecurrentModel.as_map`. The readout is affine in the
features the cell exposes (``h`` for an LSTM), on the last step or on every step.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from lyapkit.maps import Map, from_torch

READOUTS = ("last", "sequence")


def positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class RecurrentModel(nn.Module, abc.ABC):
    """A recurrent network ``s_t = f(s_{t−1}, u_t)`` with an affine readout ``y = C φ(s) + c``.

    Parameters
    ----------
    input_size : int
        Dimension of each input ``u_t``.
    hidden_size : int
        Number of recurrent units.
    output_size : int
        Dimension of the readout ``y``.
    readout : {"last", "sequence"}
        Read out the last state only (``y`` has shape ``(batch, output_size)``) or every state
        (``(batch, T, output_size)``, for sequence-to-sequence tasks).
    state_size : int, optional
        Dimension of the real state ``s`` (default ``hidden_size``; ``2 hidden_size`` for complex
        units and for an LSTM's ``(h, c)``).
    feature_size : int, optional
        Dimension of the features ``φ(s)`` the readout sees (default ``state_size``).

    Subclasses implement :meth:`step` (one batched step in the real state coordinates) and may
    override :meth:`fast_states` (a fast path equal to the loop over :meth:`step`),
    :meth:`features`, :meth:`output` and :meth:`as_map`.

    Every model follows lyapkit's recurrent protocol, :class:`lyapkit.RecurrentNetwork`
    (:meth:`initial_state`, :meth:`step`, :meth:`output`, with the optional
    :meth:`reference_path` and :meth:`as_map`), so the learning-dynamics functions of the core
    (gradient propagation, curvature and its per-time decomposition, variational terms) take it
    as it is.
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
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.output_size = positive_int(output_size, "output_size")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        self.state_size = self.hidden_size if state_size is None else int(state_size)
        self.feature_size = self.state_size if feature_size is None else int(feature_size)
        self.decoder = nn.Linear(self.feature_size, self.output_size)
        self._reference = False

    @abc.abstractmethod
    def step(self, state: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One step ``s_t = f(s_{t−1}, u_t)``; ``state`` ``(..., state_size)``, ``u`` ``(..., input_size)``."""

    def initial_state(self, inputs: torch.Tensor) -> torch.Tensor:
        """The zero state ``(batch, state_size)`` in the dtype and device of ``inputs``."""
        return inputs.new_zeros(inputs.shape[0], self.state_size)

    def check_inputs(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Validate ``inputs`` ``(batch, T, input_size)`` and ``state``; return the initial state."""
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
        """All states ``s_1 … s_T`` as ``(batch, T, state_size)``, from ``s_0 = state`` (default 0).

        Runs the model's fast path (:meth:`fast_states`) unless inside :meth:`reference_path`.
        """
        s0 = self.check_inputs(inputs, state)
        if not self._reference:
            fast = self.fast_states(inputs, s0)
            if fast is not None:
                return fast
        return self.loop_states(inputs, s0)

    def fast_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor | None:
        """A fast path (fused kernel, parallel scan, tape-free loop) equal to :meth:`loop_states`,
        or None where the model has none."""
        return None

    def loop_states(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The reference path: a loop over :meth:`step`, differentiable to any order and by
        forward-mode AD (``torch.func``)."""
        out = []
        for t in range(inputs.shape[1]):
            state = self.step(state, inputs[:, t])
            out.append(state)
        return torch.stack(out, 1)

    def loop_last_state(self, inputs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The last state ``s_T`` by the loop over :meth:`step`, keeping no other state.

        What the reference path of a ``readout="last"`` model runs: slicing ``s_T`` out of the
        stacked states of :meth:`loop_states` would make every double-backward step zero-fill a
        ``(batch, T, state_size)`` gradient, ``O(T²)`` work and memory in Hessian products.
        """
        for t in range(inputs.shape[1]):
            state = self.step(state, inputs[:, t])
        return state

    @contextlib.contextmanager
    def reference_path(self) -> Iterator[RecurrentModel]:
        """Within this context :meth:`states` loops over :meth:`step` instead of the fast path
        (for double backward and ``torch.func`` transforms, which fused kernels do not support)."""
        previous, self._reference = self._reference, True
        try:
            yield self
        finally:
            self._reference = previous

    def features(self, states: torch.Tensor) -> torch.Tensor:
        """What the readout sees of a state (the state itself unless overridden)."""
        return states

    def output(self, states: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The readout of ``states`` ``(batch, T, state_size)`` under the ``readout`` mode."""
        if self.readout == "last":
            states = states[:, -1]
        return self.decoder(self.features(states))

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Readout of the states driven by ``inputs`` ``(batch, T, input_size)``."""
        if self._reference and self.readout == "last":
            last = self.loop_last_state(inputs, self.check_inputs(inputs, state))
            return self.output(last[:, None], inputs)
        return self.output(self.states(inputs, state), inputs)

    def as_map(self) -> Map:
        """The recurrent cell as a lyapkit map of the state ``s`` with input ``u``.

        This default differentiates :meth:`step` by autodiff (torch backend only); models with
        cheap analytic Jacobians override it with a snapshot of their current weights, which
        every backend can run. Call it again after training to analyse the new weights.
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
