"""Decomposition of a recurrent model's curvature over its unrolled time steps (Dubinin &
Effenberger 2023, eqs. 9–10).

Untie the parameters of a recurrent model into one copy ``θ_s`` per unrolled step (or per bin of
steps) and one for the readout; then ``C = Σ_{s,t} C_{st}`` with ``C_{st} = ∂²L/∂θ_s∂θ_t`` (or the
GGN's blocks), and the contribution of unrolled layer ``s`` to the curvature ``vᵀCv`` along ``v`` is
``c_s = vᵀ (Σ_t C_{st}) v``, so that ``Σ_s c_s = vᵀCv`` (the eigenvalue, for a unit eigenvector).
With all copies moved together along ``v``, ``Σ_t H_{st} v = d/dε ∂L/∂θ_s (θ + εv)``: one
forward-over-reverse pass gives every ``c_s``. The public entry points are the methods
:meth:`lyapkit.CurvatureOperator.layer_contributions`,
:meth:`lyapkit.CurvatureOperator.block_matrix` and
:meth:`lyapkit.CurvatureOperator.loss_time_contributions`.

References
----------
.. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent networks",
   arXiv:2307.14823, 2023.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lyapkit._array import import_optional
from lyapkit._checks import integer
from lyapkit.recurrent import check_recurrent

if TYPE_CHECKING:
    from lyapkit.curvature import CurvatureOperator

__all__ = ["LayerContributions"]


def layer_contributions(
    op: CurvatureOperator, vectors: Any, *, bins: int | None = None
) -> LayerContributions:
    """The implementation of :meth:`lyapkit.CurvatureOperator.layer_contributions`."""
    torch, func = op._torch, op._torch.func
    V = op._block(vectors)
    unrolled = _Unrolled(op, bins)

    def per_batch(params, inputs, targets):
        loss_sum = op._loss_sum(targets)
        zero = unrolled.zero_copies(params, inputs)
        layers = unrolled.layer_of_step(inputs.shape[1])

        def outputs(p, copies):
            return unrolled.outputs(p, copies, inputs, layers)

        def contributions(v):
            if op.kind == "hessian":
                grad_copies = lambda p: func.grad(  # noqa: E731
                    lambda c: loss_sum(outputs(p, c))
                )(zero)
                hv = func.jvp(grad_copies, (params,), (v,))[1]
            else:
                out, Jv = func.jvp(lambda p: outputs(p, zero), (params,), (v,))
                HJv = func.jvp(func.grad(loss_sum), (out,), (Jv,))[1]
                hv = func.grad(lambda c: (outputs(params, c) * HJv).sum())(zero)
            return sum((hv[n] * v[n]).flatten(1).sum(1) for n in op.parameter_names)

        return func.vmap(contributions)(op.unflatten(V.T.contiguous()))

    values = op._sum_over_data(per_batch).to("cpu", torch.float64).numpy()
    return LayerContributions(
        recurrent=values[:, :-1],
        readout=values[:, -1],
        bin_edges=unrolled.edges,
        kind=op.kind,
    )


def block_matrix(op: CurvatureOperator, vector: Any, *, bins: int | None = None) -> np.ndarray:
    """The implementation of :meth:`lyapkit.CurvatureOperator.block_matrix`."""
    torch, func = op._torch, op._torch.func
    v = op.unflatten(op._block(vector)[:, 0])
    unrolled = _Unrolled(op, bins)

    def per_batch(params, inputs, targets):
        loss_sum = op._loss_sum(targets)
        zero = unrolled.zero_copies(params, inputs)
        layers = unrolled.layer_of_step(inputs.shape[1])
        L = len(unrolled.edges)  # bins + readout
        # direction m moves only copy m, along v
        one_hot = torch.eye(L, dtype=op.dtype, device=op.device)
        directions = {
            n: one_hot.reshape(L, L, *([1] * v[n].ndim)) * v[n] for n in op.parameter_names
        }

        def outputs(c):
            return unrolled.outputs(params, c, inputs, layers)

        if op.kind == "hessian":
            grad_copies = func.grad(lambda c: loss_sum(outputs(c)))
            H = func.vmap(lambda d: func.jvp(grad_copies, (zero,), (d,))[1])(directions)
            return sum(
                (H[n] * v[n]).flatten(2).sum(2) for n in op.parameter_names
            ).T  # [m, s] -> [s, m]
        out = outputs(zero)
        Jv = func.vmap(lambda d: func.jvp(outputs, (zero,), (d,))[1])(directions)
        HJv = func.vmap(lambda j: func.jvp(func.grad(loss_sum), (out,), (j,))[1])(Jv)
        return torch.einsum("s...,m...->sm", Jv, HJv)

    M = op._sum_over_data(per_batch).to("cpu", torch.float64).numpy()
    return (M + M.T) / 2


def loss_time_contributions(op: CurvatureOperator, vectors: Any) -> np.ndarray:
    """The implementation of :meth:`lyapkit.CurvatureOperator.loss_time_contributions`."""
    torch, func = op._torch, op._torch.func
    V = op._block(vectors)

    def per_batch(params, inputs, targets):
        outputs = op._outputs(params, inputs)
        shape = op.loss_terms(outputs, targets).shape
        steps = inputs.shape[1]  # (batch, T, m)
        if outputs.ndim < 3 or outputs.shape[1] != steps or len(shape) < 2 or shape[1] != steps:
            raise ValueError(
                "loss_time_contributions needs a sequence loss: outputs and per-term losses of "
                f"shape (batch, T = {steps}, ...), got outputs {tuple(outputs.shape)} and losses "
                f"{tuple(shape)} (a readout of the last step has no time axis)"
            )

        def per_time(p):
            return _sum_but_time(op.loss_terms(op._outputs(p, inputs), targets))

        def contributions(v):
            if op.kind == "hessian":
                first = lambda p: func.jvp(per_time, (p,), (v,))[1]  # noqa: E731
                return func.jvp(first, (params,), (v,))[1]
            out, Jv = func.jvp(lambda p: op._outputs(p, inputs), (params,), (v,))
            HJv = func.jvp(func.grad(op._loss_sum(targets)), (out,), (Jv,))[1]
            return _sum_but_time(Jv * HJv)

        return func.vmap(contributions)(op.unflatten(V.T.contiguous()))

    return op._sum_over_data(per_batch).to("cpu", torch.float64).numpy()


def _sum_but_time(x: Any) -> Any:
    """Sum ``(batch, T, …)`` over all axes but time (axis 1)."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum((0, 2))


class _Unrolled:
    """A recurrent model evaluated with its selected parameters untied into per-layer copies.

    Layer ``l < L`` holds the steps ``edges[l] ≤ s < edges[l+1]`` (0-based), the last layer is the
    readout. Copies are additive offsets ``δ_l`` (zero at the evaluation point) to the parameters.
    """

    def __init__(self, op: CurvatureOperator, bins: int | None):
        model = op.model
        check_recurrent(model, "the per-time decomposition")
        inputs, _ = next(iter(op.batches()))
        if inputs.ndim != 3:
            raise ValueError(
                f"inputs must have shape (batch, T, input) for the per-time decomposition, "
                f"got {tuple(inputs.shape)}"
            )
        T = inputs.shape[1]
        bins = (
            T
            if bins is None
            else integer(bins, "bins", 1, T, maximum_is=f"{T} (the sequence length)")
        )
        self.op, self.T, self.bins = op, T, bins
        self.edges = np.linspace(0, T, self.bins + 1).round().astype(np.int64)
        method = _method_module()
        self._initial = method(model, "initial_state")
        self._step, self._output = method(model, "step"), method(model, "output")

    def layer_of_step(self, T: int) -> np.ndarray:
        if T != self.T:
            raise ValueError(
                f"every batch must have the same sequence length for the per-time decomposition; "
                f"got {T} and {self.T}"
            )
        return np.searchsorted(self.edges, np.arange(T), side="right") - 1

    def zero_copies(self, params: dict, inputs: Any) -> dict:
        L = self.bins + 1
        return {n: p.new_zeros((L, *p.shape)) for n, p in params.items()}

    def outputs(self, params: dict, copies: dict, inputs: Any, layers: np.ndarray) -> Any:
        torch, call = self.op._torch, self.op._torch.func.functional_call

        def at(layer: int) -> dict:
            return {f"model.{n}": p + copies[n][layer] for n, p in params.items()}

        # parameters of x_0 (a learned initial state) count in the layer of the first step
        state, states = call(self._initial, at(int(layers[0])), (inputs,)), []
        for t in range(inputs.shape[1]):
            state = call(self._step, at(int(layers[t])), (state, inputs[:, t]))
            states.append(state)
        return call(self._output, at(self.bins), (torch.stack(states, 1), inputs))


@functools.cache
def _method_module() -> type:
    torch = import_optional("torch", "torch")

    class Method(torch.nn.Module):
        """``model.<method>`` as a module, so ``torch.func.functional_call`` can reparametrise it."""

        def __init__(self, model: Any, method: str):
            super().__init__()
            self.model, self.method = model, method

        def forward(self, *args: Any) -> Any:
            return getattr(self.model, self.method)(*args)

    return Method


@dataclass(frozen=True, repr=False)
class LayerContributions:
    """Contributions of unrolled layers to the curvature along given directions.

    Made by :meth:`lyapkit.CurvatureOperator.layer_contributions`: ``c_s = vᵀ (Σ_t C_{st}) v``
    for the untied copies ``θ_s`` of the parameters, with ``Σ_s c_s + c_readout = vᵀCv``.

    Parameters
    ----------
    recurrent : (k, L) float64
        ``c_s`` for each bin ``s`` of unrolled steps.
    readout : (k,) float64
        Contribution of the readout's copy of the parameters.
    bin_edges : (L + 1,) int64
        Bin ``s`` holds the unrolled steps ``bin_edges[s] ≤ t < bin_edges[s+1]`` (0-based).
    kind : str
        "ggn" or "hessian".

    See Also
    --------
    lyapkit.CurvatureOperator.layer_contributions : Computes them.
    lyapkit.CurvatureOperator.block_matrix : The whole time×time matrix ``vᵀ C_{st} v``.
    lyapkit.temporal_effective_rates : The contributions as learning rates, with their decay.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023 (eqs. 9–10).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = lk.adapt(torch.nn.RNN(2, 3, batch_first=True), head=torch.nn.Linear(3, 1))
    >>> model = model.double()
    >>> inputs = torch.randn(4, 5, 2, dtype=torch.float64)
    >>> targets = torch.randn(4, 1, dtype=torch.float64)
    >>> op = lk.CurvatureOperator(model, (inputs, targets), "mse")
    >>> pairs = op.eigenpairs(k=1)
    >>> parts = op.layer_contributions(pairs.eigenvectors)
    >>> parts.recurrent.shape, parts.bin_edges.tolist(), parts.lag.tolist()
    ((1, 5), [0, 1, 2, 3, 4, 5], [4.0, 3.0, 2.0, 1.0, 0.0])
    >>> bool(np.allclose(parts.total, pairs.eigenvalues))
    True
    """

    recurrent: np.ndarray
    readout: np.ndarray
    bin_edges: np.ndarray
    kind: str

    @property
    def total(self) -> np.ndarray:
        """``(k,)`` ``vᵀCv`` along each direction: ``Σ_s c_s + c_readout`` (the eigenvalue, for eigenvectors)."""
        return self.recurrent.sum(1) + self.readout

    @property
    def lag(self) -> np.ndarray:
        """Lag ``T − 1 − t`` of each bin's centre ``t`` (0-based step) from the last step, in steps:
        0 for the last step, as ``GradientPropagation.lags``."""
        T = self.bin_edges[-1]
        return T - 1 - (self.bin_edges[:-1] + self.bin_edges[1:] - 1) / 2

    def to_xarray(self) -> Any:
        """Dataset with dims ``("direction", "layer")``; ``layer`` is the bin centre (0-based step).

        Returns
        -------
        xarray.Dataset
            ``recurrent`` over both dims, ``readout`` and ``total`` over ``direction``; ``kind``
            as an attribute.
        """
        import xarray as xr

        centre = (self.bin_edges[:-1] + self.bin_edges[1:] - 1) / 2
        return xr.Dataset(
            {
                "recurrent": (
                    ("direction", "layer"),
                    self.recurrent,
                    {
                        "long_name": f"contribution of unrolled layer to vᵀ{self.kind}v",
                        "units": "loss",
                    },
                ),
                "readout": (
                    "direction",
                    self.readout,
                    {"long_name": "readout contribution", "units": "loss"},
                ),
                "total": (
                    "direction",
                    self.total,
                    {"long_name": f"vᵀ{self.kind}v", "units": "loss"},
                ),
            },
            coords={
                "direction": np.arange(self.recurrent.shape[0]),
                "layer": (
                    "layer",
                    centre,
                    {"long_name": "unrolled step (bin centre)", "units": "step"},
                ),
            },
            attrs={"kind": self.kind},
        )

    def plot(self, ax: Any = None) -> Any:
        """``|c_s|`` against the lag on a log scale, one line per direction.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        for i, row in enumerate(self.recurrent):
            ax.semilogy(self.lag, np.abs(row), label=f"direction {i}")
        ax.set_xlabel("lag T − 1 − t (steps)")
        ax.set_ylabel(f"|contribution to vᵀ{self.kind}v|")
        ax.legend()
        return ax


# --- stochastic estimators on any linear operator -------------------------------------------------------
