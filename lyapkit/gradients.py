"""Gradient propagation through time: ``‖∂L/∂x_t‖`` of a recurrent model for every step and sample.

Backpropagation through time carries the loss gradient from the readout back along the
trajectory by the transposed state Jacobians ``J_t = ∂x_{t+1}/∂x_t``::

    ∂L/∂x_t = J_tᵀ ∂L/∂x_{t+1} + (∂L/∂x_t)_readout,    t = T−1, …, 1

so with a last-step readout ``∂L/∂x_t = J_tᵀ ⋯ J_{T−1}ᵀ ∂L/∂x_T``: the variational term of the
network dynamics sets how gradients fade or grow over the lag ``T − t`` (Dubinin & Effenberger
2023, eq. 10). For a weakly coupled residual net ``x_{t+1} = R x_t + γ σ(…)`` the norms scale like
``ρ(R)^{T−t}`` as ``γ → 0`` (:func:`lyapkit.theory.gradient_norm_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit.losses import LossTerms, mean_loss
from lyapkit.recurrent import RecurrentNetwork, check_input_size, check_recurrent, reference_path

__all__ = ["GradientPropagation", "fit_rate", "gradient_propagation"]


def fit_rate(log_values: np.ndarray, lags: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``log v ≈ a + ρ · lag`` through the finite points.

    ``ρ`` is the per-step exponential rate of ``v`` over the lag: ``v ∝ exp(ρ · lag)``. Points where
    ``log_values`` is not finite (a zero or non-finite ``v``) are left out; with fewer than two
    distinct lags left, both are NaN.

    Parameters
    ----------
    log_values : (L,) array_like
        ``log v`` at each lag.
    lags : (L,) array_like
        The lags.

    Returns
    -------
    rate : float
        The slope ``ρ``, per unit of lag.
    intercept : float
        The fitted ``log v`` at lag 0, ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.gradients import fit_rate
    >>> lags = np.arange(5)
    >>> rate, intercept = fit_rate(np.log(3.0 * 0.9**lags), lags)
    >>> round(rate, 6), round(intercept, 6)  # log 0.9, log 3
    (-0.105361, 1.098612)
    """
    log_values, lags = np.asarray(log_values, np.float64), np.asarray(lags, np.float64)
    keep = np.isfinite(log_values)
    if len(np.unique(lags[keep])) < 2:
        return float("nan"), float("nan")
    rate, intercept = np.polyfit(lags[keep], log_values[keep], 1)
    return float(rate), float(intercept)


@dataclass(frozen=True, repr=False)
class GradientPropagation:
    """Norms ``‖∂L/∂x_t‖`` of the gradient of the batch-mean loss with respect to every state.

    What :func:`lyapkit.gradient_propagation` returns. Backpropagation through time gives
    ``∂L/∂x_t = J_tᵀ ∂L/∂x_{t+1} + (∂L/∂x_t)_readout``, so with a last-step readout the norms
    follow the variational term, ``‖∂L/∂x_t‖ ≈ e^{a + ρ (T − t)}`` [1]_.

    Parameters
    ----------
    norms : (batch, T) float64
        ``‖∂L/∂x_t^{(b)}‖`` for sample ``b`` and step ``t = 1 … T`` (column ``t − 1``), ``L`` the
        batch-mean loss (so each is ``1/batch`` times the gradient of the sample's own loss).
    rate : float
        Per-step exponential rate ``ρ`` of the gradient norm over the lag ``T − t``: the
        least-squares slope of :attr:`lyapkit.GradientPropagation.mean_log` against the lag
        (``lyapkit.gradients.fit_rate``), fitted over every step ``t = 1 … T`` at which
        ``mean_log`` is finite. ``ρ = log r`` for ``‖∂L/∂x_t‖ ∝ r^{T−t}``.
    intercept : float
        The fitted ``mean_log`` at lag 0.
    loss : str
        Name of the loss (or ``repr`` of the callable).

    See Also
    --------
    lyapkit.gradient_propagation : Computes it.
    lyapkit.theory.gradient_norm_rate : The predicted rate ``log ρ(R)`` of a WCRNN.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    Norms that shrink by 0.9 per step of lag:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> norms = np.array([[0.81, 0.9, 1.0], [1.62, 1.8, 2.0]])  # (batch, T), column t − 1
    >>> result = lk.GradientPropagation(norms, rate=np.log(0.9), intercept=0.0, loss="mse")
    >>> result.steps, result.lags
    (3, array([2, 1, 0]))
    >>> np.round(result.mean, 3), np.round(result.std, 3)
    (array([1.215, 1.35 , 1.5  ]), array([0.405, 0.45 , 0.5  ]))
    """

    norms: np.ndarray
    rate: float
    intercept: float
    loss: str

    @property
    def steps(self) -> int:
        """Sequence length ``T``."""
        return self.norms.shape[1]

    @property
    def lags(self) -> np.ndarray:
        """Lag ``T − t`` of every step ``t = 1 … T``."""
        return np.arange(self.steps - 1, -1, -1)

    @property
    def mean(self) -> np.ndarray:
        """``(T,)`` mean of the norms over the batch."""
        return self.norms.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """``(T,)`` standard deviation of the norms over the batch (``ddof = 0``)."""
        return self.norms.std(axis=0)

    @property
    def mean_log(self) -> np.ndarray:
        """``(T,)`` mean of ``log ‖∂L/∂x_t‖`` over the batch (``−inf`` where a norm is 0)."""
        return _mean_log(self.norms)

    def __repr__(self) -> str:
        batch, T = self.norms.shape
        return (
            f"GradientPropagation(batch={batch}, T={T}, rate={self.rate:.6g}, loss={self.loss!r})"
        )

    def to_xarray(self) -> Any:
        """The result as an ``xarray.Dataset`` (needs xarray).

        Returns
        -------
        xarray.Dataset
            Variables ``norm`` (dims ``sample``, ``time``), ``mean``, ``std`` and ``mean_log``
            (dim ``time``), the coordinate ``lag`` ``T − t`` along ``time``, and the rate,
            intercept and loss as attributes.
        """
        import xarray as xr

        from lyapkit import __version__

        def var(dims, data, long_name, units="1"):
            return xr.Variable(dims, data, {"long_name": long_name, "units": units})

        batch, T = self.norms.shape
        data = {
            "norm": var(("sample", "time"), self.norms, "gradient norm ||dL/dx_t|| per sample"),
            "mean": var(("time",), self.mean, "batch mean of the gradient norm"),
            "std": var(("time",), self.std, "batch standard deviation of the gradient norm"),
            "mean_log": var(("time",), self.mean_log, "batch mean of log gradient norm"),
        }
        coords = {
            "sample": var(("sample",), np.arange(batch), "sample in the batch"),
            "time": var(("time",), np.arange(1, T + 1), "step t of the state x_t", "step"),
            "lag": var(("time",), self.lags, "lag T - t to the last step", "step"),
        }
        attrs = {
            "title": "gradient propagation through time",
            "rate": self.rate,
            "rate_units": "1/step",
            "rate_long_name": "fitted exponential rate of the gradient norm over the lag",
            "intercept": self.intercept,
            "loss": self.loss,
            "lyapkit_version": __version__,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Plot the batch mean of the norms against the lag (log scale), with the fit.

        Also draws the geometric mean ``exp(mean_log)`` (dotted) and the fitted line
        ``exp(a + ρ · lag)`` (dashed).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw in (default the current axes).
        **kwargs
            Passed to ``ax.plot`` for the mean.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn in.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        (line,) = ax.plot(self.lags, self.mean, label="mean", **kwargs)
        ax.plot(
            self.lags, np.exp(self.mean_log), color=line.get_color(), ls=":", label="geometric mean"
        )
        ax.plot(
            self.lags,
            np.exp(self.intercept + self.rate * self.lags),
            color="k",
            lw=0.8,
            ls="--",
            label=f"fit: rate {self.rate:.3g} / step",
        )
        ax.set_yscale("log")
        ax.set_xlabel("lag T - t (steps)")
        ax.set_ylabel("||dL/dx_t||")
        ax.legend(fontsize="small")
        return ax


def _mean_log(norms: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(norms).mean(axis=0)


def gradient_propagation(
    model: RecurrentNetwork,
    inputs: Any,
    targets: Any,
    loss: str | LossTerms = "cross_entropy",
    *,
    state: Any = None,
) -> GradientPropagation:
    """Gradient norms ``‖∂L/∂x_t‖`` of every sample at every step, from one backward pass.

    Runs the model's step loop ``x_t = step(x_{t−1}, u_t)`` from ``x_0`` (``state``, default
    ``model.initial_state(inputs)``), reads out ``y = output([x_1 … x_T], inputs)``, and
    differentiates the batch-mean loss ``L`` (``lyapkit.losses``) with respect to the list of
    states with ``torch.autograd.grad``: each ``∂L/∂x_t`` is the *total* derivative::

        ∂L/∂x_t = J_tᵀ ∂L/∂x_{t+1} + (∂L/∂x_t)_readout,    J_t = ∂x_{t+1}/∂x_t,

    the readout's direct term entering at step ``t`` for sequence readouts. With a last-step
    readout the norms decay or grow like the variational term ``J_tᵀ ⋯ J_{T−1}ᵀ`` over the lag
    ``T − t`` [1]_; the rate is fitted to the batch mean of ``log ‖∂L/∂x_t‖``.

    Parameters
    ----------
    model : RecurrentNetwork
        Any object with ``initial_state(inputs)``, ``step(state, u)`` and ``output(states,
        inputs)`` (states ``(batch, T, n)``; :class:`lyapkit.RecurrentNetwork`), such as the
        models of ``lyapkit.trainers.models`` or a PyTorch RNN wrapped by :func:`lyapkit.adapt`.
        When it has a ``reference_path()`` context manager it runs inside it.
    inputs : (batch, T, input_size) tensor
        Input sequences, in the dtype and device of the model's (first) parameter.
    targets : tensor
        Targets of the loss for ``model.output`` (class labels for ``"cross_entropy"``).
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        Per-term loss, see ``lyapkit.losses``: a callable returns the unreduced per-term losses.
    state : (batch, n) tensor, optional
        Initial state ``x_0``.

    Returns
    -------
    lyapkit.GradientPropagation
        Norms ``(batch, T)`` and the fitted rate over the lag ``T − t``.

    Raises
    ------
    TypeError
        For a model without the protocol's methods, naming those it lacks (and pointing a plain
        PyTorch RNN module to :func:`lyapkit.adapt`).
    ValueError
        For inputs that are not ``(batch, T ≥ 1, input_size)`` in the model's dtype and device,
        a ``state`` of the wrong shape, an unknown loss name, or targets that do not fit the
        loss (shape, or class labels out of range).

    See Also
    --------
    lyapkit.GradientPropagation : The result.
    lyapkit.theory.gradient_norm_rate : The predicted rate ``log ρ(R)`` of a WCRNN.
    lyapkit.variational_profile : ``log ‖V‖₂`` over the lag of a map, without autodiff.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    A weakly coupled residual network with ``R = 0.9 I``: the gradient fades at
    ``log 0.9 = −0.105`` per step of lag, as predicted:

    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> from lyapkit.theory import gradient_norm_rate
    >>> from lyapkit.trainers.models import WCRNN
    >>> _ = torch.manual_seed(0)
    >>> net = WCRNN(2, 8, 3, residual=0.9 * np.eye(8), gamma=1e-3).double()
    >>> inputs = torch.randn(4, 30, 2, dtype=torch.float64)
    >>> labels = torch.randint(0, 3, (4,))
    >>> result = lk.gradient_propagation(net, inputs, labels)
    >>> result.norms.shape
    (4, 30)
    >>> predicted = gradient_norm_rate(0.9 * np.eye(8))
    >>> round(predicted, 3), bool(abs(result.rate - predicted) < 0.01)
    (-0.105, True)
    """
    import torch

    check_recurrent(model, "gradient_propagation")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3 or inputs.shape[1] < 1:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a tensor (batch, T ≥ 1, input_size), got {shape}")
    check_input_size(model, inputs)
    weight = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if (
        weight is not None
        and weight.is_floating_point()
        and ((inputs.dtype, inputs.device) != (weight.dtype, weight.device))
    ):
        raise ValueError(
            f"inputs must have the model's dtype {weight.dtype} and device {weight.device}, "
            f"got {inputs.dtype} on {inputs.device}"
        )
    with reference_path(model), torch.enable_grad():
        x0 = model.initial_state(inputs)
        if state is not None:
            if not isinstance(state, torch.Tensor) or state.shape != x0.shape:
                shape = (
                    tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
                )
                raise ValueError(f"state must be a tensor of shape {tuple(x0.shape)}, got {shape}")
            if (state.dtype, state.device) != (x0.dtype, x0.device):
                raise ValueError(
                    f"state must have the initial state's dtype {x0.dtype} and device "
                    f"{x0.device}, got {state.dtype} on {state.device}"
                )
            x0 = state
        # a leaf that requires grad, so the states are on the tape even for frozen parameters
        x = x0.detach().requires_grad_(True)
        states = []
        for t in range(inputs.shape[1]):
            x = model.step(x, inputs[:, t])
            states.append(x)
        value = mean_loss(loss, model.output(torch.stack(states, 1), inputs), targets)
        grads = torch.autograd.grad(value, states, allow_unused=True)
    zero = x0.new_zeros(x0.shape[0])  # a state the loss does not depend on
    norms = torch.stack([zero if g is None else g.flatten(1).norm(dim=1) for g in grads], dim=1)
    norms = norms.detach().cpu().to(torch.float64).numpy()
    rate, intercept = fit_rate(_mean_log(norms), np.arange(norms.shape[1] - 1, -1, -1))
    return GradientPropagation(
        norms, rate, intercept, loss if isinstance(loss, str) else repr(loss)
    )
