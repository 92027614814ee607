"""Effective learning rates: how curvature, momentum, Adam and time shape each step of training.

Gradient descent ``θ_{k+1} = θ_k − η ∇L(θ_k)`` has the Jacobian ``I − η H`` (Dubinin & Effenberger
2023, eqs. 5–6): along the Hessian eigenvector ``v_i`` the step contracts by ``1 − η λ_i``, so
``η λ_i`` is the effective learning rate of that direction and the iteration is stable while
``0 < η λ_i < 2``. Heavy-ball momentum ``β`` moves the bound to ``(2 + 2β)/η`` and the steady-state
rate to ``η/(1 − β)``. Adam divides the step by the diagonal ``P = sqrt(v̂) + ε``, so what counts is
the preconditioned sharpness ``λ_max(P^{-1/2} H P^{-1/2})`` against ``(2 + 2β₁)/((1 − β₁)η)``
(Cohen et al. 2022, "Adaptive gradient methods at the edge of stability"). In a recurrent net the
eigenvalues split into contributions of the unrolled layers, which backpropagation through time
modulates over the lag (WCRNN paper, eq. 15): :func:`lyapkit.temporal_effective_rates`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._array import to_numpy
from lyapkit._checks import integer, number, real_array
from lyapkit.gradients import fit_rate
from lyapkit.operators import LinearOperator, PreconditionedOperator

logger = logging.getLogger(__name__)

__all__ = [
    "AdamEffectiveRates",
    "EffectiveRates",
    "PreconditionedSharpness",
    "TemporalEffectiveRates",
    "adam_effective_rates",
    "edge_of_stability",
    "adam_preconditioner",
    "preconditioned_sharpness",
    "sgd_effective_rates",
    "temporal_effective_rates",
]


def _var(dims: tuple[str, ...], data: Any, long_name: str, units: str = "1") -> Any:
    import xarray as xr

    return xr.Variable(dims, data, {"long_name": long_name, "units": units})


def edge_of_stability(lr: float, momentum: float = 0.0) -> float:
    """The largest curvature that (heavy-ball) gradient descent with rate ``η`` follows stably.

    Along an eigenvector with curvature ``λ``, heavy ball
    ``θ_{k+1} = θ_k − η λ θ_k + β(θ_k − θ_{k−1})`` has the characteristic polynomial
    ``z² − (1 + β − ηλ) z + β``; both roots lie inside the unit circle iff ``0 < ηλ < 2 + 2β``
    (Jury's criterion with ``0 ≤ β < 1``), so the bound is ``(2 + 2β)/η`` (``2/η`` for plain GD).

    Parameters
    ----------
    lr : float
        Learning rate ``η > 0``.
    momentum : float, default 0.0
        Heavy-ball coefficient ``β ∈ [0, 1)``.

    Returns
    -------
    float
        The bound ``(2 + 2β)/η`` on the curvature ``λ``.

    Raises
    ------
    ValueError
        ``lr`` is not a positive finite number or ``momentum`` is not in ``[0, 1)``.

    See Also
    --------
    lyapkit.sgd_effective_rates : Effective rates ``η λ_i`` of given eigenvalues against this bound.
    lyapkit.preconditioned_sharpness : The corresponding bound for Adam.

    References
    ----------
    .. [1] J. M. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar, "Gradient descent on neural
       networks typically occurs at the edge of stability", International Conference on Learning
       Representations (ICLR), 2021.

    Examples
    --------
    >>> import lyapkit as lk
    >>> lk.edge_of_stability(0.1)
    20.0
    >>> round(lk.edge_of_stability(0.1, momentum=0.9), 6)
    38.0
    """
    lr, momentum = (
        number(lr, "lr", positive=True),
        number(momentum, "momentum", non_negative=True, below=1.0),
    )
    return (2.0 + 2.0 * momentum) / lr


@dataclass(frozen=True, repr=False)
class EffectiveRates:
    """Effective learning rates ``η λ_i`` of (heavy-ball) gradient descent.

    Made by :func:`lyapkit.sgd_effective_rates`: ``rate_i = η λ_i``, unstable where
    ``λ_i ≥ (2 + 2β)/η``, steady-state rate ``η/(1 − β)``.

    Parameters
    ----------
    eigenvalues : (k,) float64
        Curvatures ``λ_i`` (Hessian or GGN eigenvalues).
    rates : (k,) float64
        ``η λ_i``: the step along eigenvector ``i`` is ``−η λ_i`` times the displacement.
    lr, momentum : float
        ``η`` and ``β``.
    bound : float
        Stability bound on the curvature, ``(2 + 2β)/η`` (:func:`lyapkit.edge_of_stability`).
    steady_state_lr : float
        ``η/(1 − β)``: the step of heavy ball under a constant gradient, once the velocity settled.
    unstable : (k,) bool
        ``λ_i ≥ bound``: the iteration does not converge along that eigenvector (it oscillates
        with growing amplitude). Non-positive ``λ_i`` do not converge either, but escape
        monotonically (saddle directions); they are not flagged.

    See Also
    --------
    lyapkit.sgd_effective_rates : Builds it from curvature eigenvalues.
    lyapkit.edge_of_stability : The bound.

    Examples
    --------
    >>> import lyapkit as lk
    >>> r = lk.sgd_effective_rates([30.0, 10.0], lr=0.1)
    >>> r.rates.tolist(), r.bound, r.unstable.tolist()
    ([3.0, 1.0], 20.0, [True, False])
    >>> dict(r.to_xarray().sizes)
    {'eigenvalue': 2}
    """

    eigenvalues: np.ndarray
    rates: np.ndarray
    lr: float
    momentum: float
    bound: float
    steady_state_lr: float
    unstable: np.ndarray

    def __repr__(self) -> str:
        return (
            f"EffectiveRates(k={len(self.rates)}, lr={self.lr:g}, momentum={self.momentum:g}, "
            f"bound={self.bound:.6g}, max rate={self.rates.max():.6g}, "
            f"unstable={int(self.unstable.sum())})"
        )

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with dim ``eigenvalue``.

        Returns
        -------
        xarray.Dataset
            Variables ``curvature``, ``rate`` and ``unstable``; ``lr``, ``momentum``, ``bound``
            and ``steady_state_lr`` as attributes.
        """
        import xarray as xr

        data = {
            "curvature": _var(("eigenvalue",), self.eigenvalues, "curvature eigenvalue", "loss"),
            "rate": _var(("eigenvalue",), self.rates, "effective learning rate lr * eigenvalue"),
            "unstable": _var(("eigenvalue",), self.unstable, "eigenvalue at or above the bound"),
        }
        coords = {"eigenvalue": _var(("eigenvalue",), np.arange(1, len(self.rates) + 1), "index")}
        attrs = {
            "title": "effective learning rates of gradient descent",
            "lr": self.lr,
            "momentum": self.momentum,
            "bound": self.bound,
            "steady_state_lr": self.steady_state_lr,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """The rates ``η λ_i`` by index with the stability bound ``2 + 2β``.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).
        **kwargs
            Passed to ``ax.plot`` for the rates.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        ax.plot(np.arange(1, len(self.rates) + 1), self.rates, "o", **kwargs)
        ax.axhline(2 + 2 * self.momentum, color="k", ls="--", lw=0.8, label="stability bound")
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("effective learning rate lr * eigenvalue")
        ax.legend(fontsize="small")
        return ax


def sgd_effective_rates(eigenvalues: Any, lr: float, momentum: float = 0.0) -> EffectiveRates:
    """Effective learning rates ``η λ_i`` of gradient descent, with momentum bound and steady rate.

    The learning dynamics ``θ_{k+1} = θ_k − η ∇L(θ_k)`` have the Jacobian ``I − η H``: along the
    eigenvector of ``λ_i`` the displacement is multiplied by ``1 − η λ_i`` per step. With heavy-ball
    momentum ``β`` (``torch.optim.SGD(momentum=β)``, without dampening)::

        rate_i = η λ_i,   stable iff 0 < λ_i < (2 + 2β)/η,   steady-state rate η/(1 − β)

    Parameters
    ----------
    eigenvalues : (k,) array_like
        Curvature eigenvalues (Hessian, GGN), real; a scalar is one eigenvalue.
    lr : float
        Learning rate ``η > 0``.
    momentum : float, default 0.0
        Heavy-ball coefficient ``β ∈ [0, 1)``.

    Returns
    -------
    EffectiveRates
        Rates ``η λ_i``, the bound ``(2 + 2β)/η``, the steady-state rate and the unstable flags.

    Raises
    ------
    ValueError
        ``eigenvalues`` empty, not real or not finite; ``lr`` not a positive finite number;
        ``momentum`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.edge_of_stability : The stability bound alone.
    lyapkit.LinearOperator.eigenpairs : Top Hessian or GGN eigenvalues of a model.
    lyapkit.temporal_effective_rates : The rates split over the unrolled layers.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023 (eqs. 5–6).
    .. [2] J. M. Cohen, S. Kaur, Y. Li, J. Z. Kolter, A. Talwalkar, "Gradient descent on neural
       networks typically occurs at the edge of stability", International Conference on Learning
       Representations (ICLR), 2021.

    Examples
    --------
    >>> import lyapkit as lk
    >>> r = lk.sgd_effective_rates([30.0, 10.0, -1.0], lr=0.1)
    >>> r.rates.round(3).tolist(), r.bound, r.unstable.tolist()
    ([3.0, 1.0, -0.1], 20.0, [True, False, False])

    Momentum ``β = 0.9`` raises the bound from ``2/η`` to ``3.8/η``:

    >>> r = lk.sgd_effective_rates([30.0, 10.0], lr=0.1, momentum=0.9)
    >>> round(r.bound, 3), round(r.steady_state_lr, 3), r.unstable.tolist()
    (38.0, 1.0, [False, False])
    """
    lam = real_array(np.atleast_1d(eigenvalues), "eigenvalues", 1)
    lr, momentum = (
        number(lr, "lr", positive=True),
        number(momentum, "momentum", non_negative=True, below=1.0),
    )
    bound = edge_of_stability(lr, momentum)
    return EffectiveRates(lam, lr * lam, lr, momentum, bound, lr / (1 - momentum), lam >= bound)


@dataclass(frozen=True)
class _AdamTensor:
    """The Adam denominator ``sqrt(v̂) + ε`` of one parameter tensor (NaN without state)."""

    name: str
    group: int
    step: int
    denominator: Any  # flat float64 torch tensor


def _adam_tensors(optimizer: Any) -> list[_AdamTensor]:
    """``sqrt(v̂) + ε`` per parameter tensor, in ``param_groups`` order, as Adam computes it."""
    import torch

    if not isinstance(optimizer, torch.optim.Adam):
        raise TypeError(
            "optimizer must be a torch.optim.Adam or AdamW (an optimizer with Adam's state "
            f"exp_avg_sq and step), got {type(optimizer).__name__}"
        )
    tensors = []
    for g, group in enumerate(optimizer.param_groups):
        _, beta2 = (float(b) for b in group["betas"])
        names = group.get("param_names") or [
            f"group{g}.param{i}" for i in range(len(group["params"]))
        ]
        for name, p in zip(names, group["params"], strict=True):
            state = optimizer.state.get(p, {})
            if "exp_avg_sq" not in state:
                numel = p.numel() * (2 if p.is_complex() else 1)
                nan = torch.full((numel,), float("nan"), dtype=torch.float64, device=p.device)
                tensors.append(_AdamTensor(name, g, 0, nan))
                continue
            v = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
            v = torch.view_as_real(v) if v.is_complex() else v
            step = int(float(state["step"]))
            root = v.detach().flatten().to(torch.float64).sqrt() / (1 - beta2**step) ** 0.5
            tensors.append(_AdamTensor(name, g, step, root + float(group["eps"])))
    missing = [t.name for t in tensors if t.step == 0]
    if len(missing) == len(tensors):
        raise ValueError("optimizer has no Adam state yet: call optimizer.step() at least once")
    if missing:
        logger.info("no Adam state yet (NaN rates) for %s", ", ".join(missing))
    return tensors


def _summary(values: np.ndarray) -> list[float]:
    """mean, median, min, max of the non-NaN ``values`` (all NaN when there are none)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float("nan")] * 4
    return [values.mean(), np.median(values), values.min(), values.max()]


STATISTICS = ("mean", "median", "min", "max")


@dataclass(frozen=True, repr=False)
class AdamEffectiveRates:
    """Per-parameter effective learning rates ``η/(sqrt(v̂) + ε)`` of an Adam/AdamW optimizer.

    Made by :func:`lyapkit.adam_effective_rates` from the optimizer's state:
    ``rate = η / (sqrt(v̂) + ε)`` with ``v̂ = v/(1 − β₂^t)``.

    Parameters
    ----------
    rates : (P,) float64
        Flat rates in the order of ``[p for group in optimizer.param_groups for p in
        group["params"]]`` (each tensor flattened; a complex tensor as ``view_as_real``). NaN for
        parameters without optimizer state yet.
    names : tuple of str
        One label per tensor: ``group["param_names"]`` when the optimizer was built from named
        parameters, else ``"group{g}.param{i}"``.
    groups, sizes, steps : (n_tensors,) int64
        Parameter group, number of entries in ``rates``, and Adam step count ``t`` (0 without
        state) of every tensor.
    lr, beta1, beta2, eps, weight_decay : (n_groups,) float64
        The hyper-parameters of every parameter group.
    decoupled, amsgrad : (n_groups,) bool
        Decoupled (AdamW) weight decay; AMSGrad (``v̂`` from ``max_exp_avg_sq``).

    See Also
    --------
    lyapkit.adam_effective_rates : Builds it from a ``torch.optim.Adam`` or ``AdamW``.
    lyapkit.adam_preconditioner : The denominators ``sqrt(v̂) + ε`` as one torch tensor.

    Examples
    --------
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> model(torch.randn(8, 3)).pow(2).mean().backward()
    >>> opt.step()
    >>> rates = lk.adam_effective_rates(opt)
    >>> rates.names, rates.sizes.tolist(), rates.steps.tolist()
    (('group0.param0', 'group0.param1'), [3, 1], [1, 1])
    >>> rates.tensor_rates(1).shape
    (1,)
    """

    rates: np.ndarray
    names: tuple[str, ...]
    groups: np.ndarray
    sizes: np.ndarray
    steps: np.ndarray
    lr: np.ndarray
    beta1: np.ndarray
    beta2: np.ndarray
    eps: np.ndarray
    weight_decay: np.ndarray
    decoupled: np.ndarray
    amsgrad: np.ndarray

    def tensor_rates(self, index: int) -> np.ndarray:
        """The flat rates of tensor ``index``.

        Parameters
        ----------
        index : int
            Position of the tensor in ``names``.

        Returns
        -------
        numpy.ndarray
            ``(sizes[index],)`` float64 rates of that tensor (a view of ``rates``).
        """
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        return self.rates[offsets[index] : offsets[index + 1]]

    def __repr__(self) -> str:
        mean, median, lo, hi = _summary(self.rates)
        return (
            f"AdamEffectiveRates(parameters={len(self.rates)}, tensors={len(self.names)}, "
            f"median={median:.4g}, min={lo:.4g}, max={hi:.4g})"
        )

    def to_xarray(self) -> Any:
        """The rates and their per-tensor and per-group statistics as an ``xarray.Dataset``.

        Returns
        -------
        xarray.Dataset
            ``rate`` over dim ``parameter``; ``tensor_<stat>`` over ``tensor`` and
            ``group_<stat>`` over ``group`` for the statistics mean, median, min, max (NaN entries
            left out); the hyper-parameters as ``group_<name>`` coordinates.
        """
        import xarray as xr

        per_tensor = np.array([_summary(self.tensor_rates(i)) for i in range(len(self.names))])
        per_group = np.array(
            [
                _summary(self.rates[np.repeat(self.groups, self.sizes) == g])
                for g in range(len(self.lr))
            ]
        )
        data = {"rate": _var(("parameter",), self.rates, "Adam effective learning rate")}
        for j, stat in enumerate(STATISTICS):
            data[f"tensor_{stat}"] = _var(
                ("tensor",), per_tensor[:, j], f"{stat} rate of the tensor"
            )
            data[f"group_{stat}"] = _var(("group",), per_group[:, j], f"{stat} rate of the group")
        coords = {
            "parameter": _var(("parameter",), np.arange(len(self.rates)), "flat parameter index"),
            "tensor": _var(("tensor",), list(self.names), "parameter tensor"),
            "tensor_group": _var(("tensor",), self.groups, "parameter group of the tensor"),
            "tensor_size": _var(("tensor",), self.sizes, "entries of the tensor"),
            "tensor_step": _var(("tensor",), self.steps, "Adam step count of the tensor", "step"),
            "group": _var(("group",), np.arange(len(self.lr)), "parameter group"),
        }
        for field in ("lr", "beta1", "beta2", "eps", "weight_decay", "decoupled", "amsgrad"):
            coords[f"group_{field}"] = _var(("group",), getattr(self, field), field)
        return xr.Dataset(data, coords=coords, attrs={"title": "Adam effective learning rates"})


def adam_effective_rates(optimizer: Any) -> AdamEffectiveRates:
    """Per-parameter effective learning rates of Adam/AdamW, read from the optimizer's state.

    After ``t`` steps Adam moves each parameter by (Kingma & Ba 2015; ``torch.optim.Adam``)::

        Δθ = −η m̂ / (sqrt(v̂) + ε) = −rate · m̂,   rate = η / (sqrt(v̂) + ε)
        m̂ = m / (1 − β₁^t),   v̂ = v / (1 − β₂^t)

    with ``v = exp_avg_sq`` (``max_exp_avg_sq`` under AMSGrad) and ``m = exp_avg``. The rate is
    read from ``v`` and the step count, not by feeding a unit gradient through the update (which
    mixes the momentum ``m`` in). Adam's coupled weight decay is part of the gradient and so of
    ``m``; AdamW's decoupled decay adds ``−η λ_wd θ`` to ``Δθ`` separately. Under
    ``maximize=True`` Adam stores the moments of ``−∇L`` and the relation holds unchanged.

    Parameters without state (never stepped, e.g. frozen) get NaN rates.

    Parameters
    ----------
    optimizer : torch.optim.Adam or torch.optim.AdamW
        The optimizer, after at least one ``step()``.

    Returns
    -------
    AdamEffectiveRates
        Flat rates in ``param_groups`` order, with the tensors' names, sizes and step counts and
        the groups' hyper-parameters.

    Raises
    ------
    TypeError
        ``optimizer`` is not a ``torch.optim.Adam`` (or its subclass ``AdamW``).
    ValueError
        The optimizer has no state yet (no ``step()`` taken).

    See Also
    --------
    lyapkit.adam_preconditioner : The denominators ``P = sqrt(v̂) + ε`` as a torch tensor.
    lyapkit.preconditioned_sharpness : Adam's edge of stability.

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: A method for stochastic optimization", International
       Conference on Learning Representations (ICLR), 2015.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> model(torch.randn(8, 3)).pow(2).mean().backward()
    >>> opt.step()
    >>> rates = lk.adam_effective_rates(opt)
    >>> rates.rates.shape, rates.steps.tolist()
    ((4,), [1, 1])

    After one step ``v̂ = g²``, so the rate is ``η / (|g| + ε)``:

    >>> g = torch.cat([p.grad.flatten() for p in model.parameters()]).double().numpy()
    >>> bool(np.allclose(rates.rates, 1e-3 / (np.abs(g) + 1e-8)))
    True
    """
    tensors = _adam_tensors(optimizer)
    groups = optimizer.param_groups
    rates = np.concatenate(
        [float(groups[t.group]["lr"]) / t.denominator.cpu().numpy() for t in tensors]
    )

    def per_group(key: str, index: int | None = None) -> np.ndarray:
        values = [g[key] if index is None else g[key][index] for g in groups]
        return np.array([float(v) for v in values])

    return AdamEffectiveRates(
        rates=rates,
        names=tuple(t.name for t in tensors),
        groups=np.array([t.group for t in tensors], dtype=np.int64),
        sizes=np.array([t.denominator.numel() for t in tensors], dtype=np.int64),
        steps=np.array([t.step for t in tensors], dtype=np.int64),
        lr=per_group("lr"),
        beta1=per_group("betas", 0),
        beta2=per_group("betas", 1),
        eps=per_group("eps"),
        weight_decay=per_group("weight_decay"),
        decoupled=np.array(
            [bool(g.get("decoupled_weight_decay", False)) for g in groups], dtype=bool
        ),
        amsgrad=np.array([bool(g["amsgrad"]) for g in groups], dtype=bool),
    )


def adam_preconditioner(optimizer: Any) -> Any:
    """Adam's diagonal preconditioner ``P = sqrt(v̂) + ε`` as one flat torch tensor.

    ``v̂ = v/(1 − β₂^t)`` as in :func:`lyapkit.adam_effective_rates` (so the rates are ``η/P``),
    in the order of ``[p for group in optimizer.param_groups for p in group["params"]]``, with the
    dtype and device of the first parameter (NaN for parameters without state).

    Parameters
    ----------
    optimizer : torch.optim.Adam or torch.optim.AdamW
        The optimizer, after at least one ``step()``.

    Returns
    -------
    torch.Tensor
        ``(P,)`` diagonal ``P`` over the flattened parameters (a complex tensor as
        ``view_as_real``).

    Raises
    ------
    TypeError
        ``optimizer`` is not a ``torch.optim.Adam`` (or its subclass ``AdamW``).
    ValueError
        The optimizer has no state yet (no ``step()`` taken).

    See Also
    --------
    lyapkit.preconditioned_sharpness : Top eigenvalues of ``P^{-1/2} H P^{-1/2}``.
    lyapkit.adam_effective_rates : The rates ``η/P`` with their labels.

    References
    ----------
    .. [1] D. P. Kingma, J. Ba, "Adam: A method for stochastic optimization", International
       Conference on Learning Representations (ICLR), 2015.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    >>> model(torch.randn(8, 3)).pow(2).mean().backward()
    >>> opt.step()
    >>> P = lk.adam_preconditioner(opt)
    >>> P.shape, P.dtype
    (torch.Size([4]), torch.float32)
    >>> bool(np.allclose(lk.adam_effective_rates(opt).rates, 1e-3 / P.double().numpy()))
    True
    """
    import torch

    tensors = _adam_tensors(optimizer)
    first = optimizer.param_groups[0]["params"][0]
    dtype = first.real.dtype if first.is_complex() else first.dtype
    return torch.cat([t.denominator.to(device=first.device, dtype=dtype) for t in tensors])


@dataclass(frozen=True, repr=False)
class PreconditionedSharpness:
    """Top eigenvalues of the preconditioned curvature ``P^{-1/2} H P^{-1/2}``.

    Made by :func:`lyapkit.preconditioned_sharpness`; Adam is stable while
    ``λ_max(P^{-1/2} H P^{-1/2}) < (2 + 2β₁)/((1 − β₁) η)``.

    Parameters
    ----------
    eigenvalues : (k,) float64
        Descending.
    eigenvectors : (n, k) float64
        Unit eigenvectors in the preconditioned coordinates ``P^{1/2} θ`` (``P^{-1/2} u`` is the
        corresponding direction in parameter space).
    lr, beta1 : float or None
        ``η`` and ``β₁`` when given.
    threshold : float
        The adaptive edge of stability ``(2 + 2β₁)/((1 − β₁) η)`` (NaN without ``lr``).

    See Also
    --------
    lyapkit.preconditioned_sharpness : Computes it from curvature-vector products.

    Examples
    --------
    >>> import torch
    >>> import lyapkit as lk
    >>> H = torch.diag(torch.tensor([4.0, 1.0, 0.5, 3.0], dtype=torch.float64))
    >>> P = torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    >>> s = lk.preconditioned_sharpness(lambda v: H @ v, P, k=2, lr=1.0, beta1=0.9)
    >>> round(s.sharpness, 3), round(s.threshold, 3), s.above_threshold.tolist()
    (3.0, 38.0, [False, False])
    >>> dict(s.to_xarray().sizes)
    {'eigenvalue': 2, 'parameter': 4}
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    lr: float | None
    beta1: float | None
    threshold: float

    @property
    def sharpness(self) -> float:
        """The largest preconditioned eigenvalue."""
        return float(self.eigenvalues[0])

    @property
    def above_threshold(self) -> np.ndarray:
        """``(k,)`` bool: eigenvalues at or above ``threshold`` (all False without ``lr``)."""
        return self.eigenvalues >= self.threshold

    def __repr__(self) -> str:
        values = ", ".join(f"{v:.6g}" for v in self.eigenvalues)
        return f"PreconditionedSharpness([{values}], threshold={self.threshold:.6g})"

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with dims ``eigenvalue`` and ``parameter``.

        Returns
        -------
        xarray.Dataset
            ``sharpness`` and ``above_threshold`` over ``eigenvalue``, ``eigenvector`` over
            ``(parameter, eigenvalue)``; ``threshold`` (and ``lr``, ``beta1`` when given) as
            attributes.
        """
        import xarray as xr

        k, n = len(self.eigenvalues), self.eigenvectors.shape[0]
        data = {
            "sharpness": _var(
                ("eigenvalue",), self.eigenvalues, "eigenvalue of P^-1/2 H P^-1/2", "loss"
            ),
            "eigenvector": _var(("parameter", "eigenvalue"), self.eigenvectors, "eigenvector"),
            "above_threshold": _var(("eigenvalue",), self.above_threshold, "at or above threshold"),
        }
        coords = {
            "eigenvalue": _var(("eigenvalue",), np.arange(1, k + 1), "index"),
            "parameter": _var(("parameter",), np.arange(n), "flat parameter index"),
        }
        attrs = {"title": "preconditioned sharpness", "threshold": self.threshold}
        attrs.update({k: v for k, v in (("lr", self.lr), ("beta1", self.beta1)) if v is not None})
        return xr.Dataset(data, coords=coords, attrs=attrs)


def preconditioned_sharpness(
    matvec: Callable[[Any], Any] | LinearOperator,
    preconditioner: Any,
    k: int = 1,
    lr: float | None = None,
    beta1: float | None = None,
) -> PreconditionedSharpness:
    """Top-``k`` eigenvalues of ``P^{-1/2} H P^{-1/2}`` from curvature-vector products.

    Adam with diagonal preconditioner ``P`` (:func:`lyapkit.adam_preconditioner`) takes the step
    ``−η P^{-1} m̂``; near a minimum its dynamics in the coordinates ``P^{1/2} θ`` are those of
    heavy-ball momentum on the curvature ``P^{-1/2} H P^{-1/2}``, stable while (Cohen et al. 2022)::

        λ_max(P^{-1/2} H P^{-1/2}) < (2 + 2β₁) / ((1 − β₁) η)      (38/η for β₁ = 0.9)

    The eigenvalues are those of :class:`lyapkit.PreconditionedOperator` ``u ↦ P^{-1/2} H
    (P^{-1/2} u)`` by :meth:`lyapkit.LinearOperator.eigenpairs` (Lanczos to machine precision,
    seed 0; small operators densely).

    Parameters
    ----------
    matvec : callable or lyapkit.LinearOperator
        ``H``, symmetric (Hessian or GGN): an operator (a :class:`lyapkit.CurvatureOperator`), or
        ``v ↦ H v`` for a 1-D torch tensor over the flattened parameters (same order as ``P``),
        returning a 1-D tensor; the callable receives tensors of the dtype and device of
        ``preconditioner`` when that is a tensor, else float64 on the CPU.
    preconditioner : (n,) tensor or array_like
        The positive diagonal ``P``.
    k : int, default 1
        Number of eigenvalues, ``1 ≤ k ≤ n``.
    lr, beta1 : float, optional
        ``η > 0`` and ``β₁ ∈ [0, 1)`` (default 0, i.e. RMSProp's ``2/η``) for the threshold;
        without ``lr`` the threshold is NaN.

    Returns
    -------
    PreconditionedSharpness
        The ``k`` largest eigenvalues (descending), their eigenvectors in the preconditioned
        coordinates, and the threshold.

    Raises
    ------
    ValueError
        ``preconditioner`` empty, not finite or not positive; ``k`` not an integer in
        ``[1, n]``; ``beta1`` given without ``lr``; ``lr`` not positive; ``beta1`` outside
        ``[0, 1)``; ``matvec`` returning anything but a tensor of shape ``(n,)``.
    TypeError
        ``matvec`` is not callable.

    See Also
    --------
    lyapkit.adam_preconditioner : ``P`` from an Adam optimizer's state.
    lyapkit.CurvatureOperator : Hessian and GGN products of a model (``op.matvec``).
    lyapkit.edge_of_stability : The bound of plain and heavy-ball gradient descent.

    References
    ----------
    .. [1] J. M. Cohen, B. Ghorbani, S. Krishnan, N. Agarwal, S. Medapati, M. Badura, D. Suo,
       D. Cardoze, Z. Nado, G. E. Dahl, J. Gilmer, "Adaptive gradient methods at the edge of
       stability", arXiv:2207.14484, 2022.

    Examples
    --------
    With ``H = diag(4, 1, 0.5, 3)`` and ``P = diag(2, 1, 1, 1)`` the preconditioned curvature is
    ``diag(2, 1, 0.5, 3)``:

    >>> import torch
    >>> import lyapkit as lk
    >>> H = torch.diag(torch.tensor([4.0, 1.0, 0.5, 3.0], dtype=torch.float64))
    >>> P = torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    >>> s = lk.preconditioned_sharpness(lambda v: H @ v, P, k=2, lr=0.1, beta1=0.9)
    >>> s.eigenvalues.round(3).tolist(), round(s.threshold, 3)
    ([3.0, 2.0], 380.0)
    """
    import torch

    if isinstance(preconditioner, torch.Tensor):
        dtype, device = preconditioner.dtype, preconditioner.device
    else:
        dtype, device = torch.float64, torch.device("cpu")
    P = real_array(to_numpy(preconditioner), "preconditioner", 1)
    if isinstance(matvec, LinearOperator):
        operator = matvec
    elif callable(matvec):
        operator = _MatvecOperator(matvec, len(P), dtype, device)
    else:
        raise TypeError(
            f"matvec must be a callable v -> H v or a lyapkit.LinearOperator, got "
            f"{type(matvec).__name__}"
        )
    n = len(P)
    k = integer(k, "k", 1, n, maximum_is=f"{n} (the number of parameters)")
    if beta1 is not None and lr is None:
        raise ValueError("lr is required for the threshold when beta1 is given")
    lr = None if lr is None else number(lr, "lr", positive=True)
    beta1 = None if beta1 is None else number(beta1, "beta1", non_negative=True, below=1.0)
    pairs = PreconditionedOperator(operator, P).eigenpairs(k, method="lanczos", tol=0.0)
    threshold = (
        float("nan") if lr is None else edge_of_stability(lr, beta1 or 0.0) / (1 - (beta1 or 0.0))
    )
    return PreconditionedSharpness(pairs.eigenvalues, pairs.eigenvectors, lr, beta1, threshold)


class _MatvecOperator(LinearOperator):
    """A symmetric operator given by a torch matvec ``v ↦ H v`` on 1-D tensors."""

    def __init__(self, matvec: Callable[[Any], Any], n: int, dtype: Any, device: Any):
        self._set_parameters(["theta"], [(n,)], kind="operator", dtype=dtype, device=device)
        self._matvec = matvec

    def _matmat(self, V: Any) -> Any:
        import torch

        columns = []
        for j in range(V.shape[1]):
            hv = self._matvec(V[:, j])
            if not isinstance(hv, torch.Tensor) or tuple(hv.shape) != (self.num_params,):
                got = tuple(hv.shape) if isinstance(hv, torch.Tensor) else type(hv).__name__
                raise ValueError(
                    f"matvec must return a 1-D tensor of shape ({self.num_params},), got {got}"
                )
            columns.append(hv.detach().to(dtype=self.dtype, device=self.device))
        return torch.stack(columns, 1)


@dataclass(frozen=True, repr=False)
class TemporalEffectiveRates:
    """Effective learning rates ``η c_{i,s}`` carried by each unrolled layer ``s = 1 … T``.

    Made by :func:`lyapkit.temporal_effective_rates`: ``Σ_s η c_{i,s} = η λ_i`` and
    ``|η c_{i,s}| ≈ exp(intercept_i + rate_i (T − s))``.

    Parameters
    ----------
    rates : (k, T) float64
        ``η c_{i,s}``; row ``i`` sums to ``η λ_i``.
    lr : float
        ``η``.
    rate : (k,) float64
        Per-step exponential rate of ``|η c_{i,s}|`` over the lag ``T − s``: least-squares slope of
        ``log|η c_{i,s}|`` against the lag over all layers with ``c_{i,s} ≠ 0``
        (``lyapkit.gradients.fit_rate``).
    intercept : (k,) float64
        The fitted ``log|η c_{i,s}|`` at lag 0.

    See Also
    --------
    lyapkit.temporal_effective_rates : Builds it from layer contributions.
    lyapkit.LayerContributions : The contributions ``c_{i,s}``.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> c = 0.5 ** np.arange(4, -1, -1.0)[None]  # c_s = 0.5^(T − s), T = 5
    >>> tr = lk.temporal_effective_rates(c, lr=0.1)
    >>> tr.lags.tolist(), tr.total.round(4).tolist()
    ([4, 3, 2, 1, 0], [0.1938])
    >>> dict(tr.to_xarray().sizes)
    {'eigenvalue': 1, 'layer': 5}
    """

    rates: np.ndarray
    lr: float
    rate: np.ndarray
    intercept: np.ndarray

    @property
    def lags(self) -> np.ndarray:
        """Lag ``T − s`` of every layer ``s = 1 … T``."""
        return np.arange(self.rates.shape[1] - 1, -1, -1)

    @property
    def total(self) -> np.ndarray:
        """``(k,)`` ``η λ_i = Σ_s η c_{i,s}``."""
        return self.rates.sum(axis=1)

    def __repr__(self) -> str:
        k, T = self.rates.shape
        rates = ", ".join(f"{r:.4g}" for r in self.rate)
        return f"TemporalEffectiveRates(k={k}, T={T}, lr={self.lr:g}, rate per lag=[{rates}])"

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with dims ``eigenvalue`` and ``layer`` (with the ``lag``).

        Returns
        -------
        xarray.Dataset
            ``rate`` over ``(eigenvalue, layer)``; ``total``, ``lag_rate`` and ``lag_intercept``
            over ``eigenvalue``; coordinates ``layer`` (1 … T) and ``lag``.
        """
        import xarray as xr

        k, T = self.rates.shape
        data = {
            "rate": _var(
                ("eigenvalue", "layer"), self.rates, "effective learning rate of the layer"
            ),
            "total": _var(("eigenvalue",), self.total, "effective learning rate lr * eigenvalue"),
            "lag_rate": _var(
                ("eigenvalue",), self.rate, "exponential rate of |rate| over the lag", "1/step"
            ),
            "lag_intercept": _var(("eigenvalue",), self.intercept, "fitted log|rate| at lag 0"),
        }
        coords = {
            "eigenvalue": _var(("eigenvalue",), np.arange(1, k + 1), "index"),
            "layer": _var(("layer",), np.arange(1, T + 1), "unrolled layer s", "step"),
            "lag": _var(("layer",), self.lags, "lag T - s to the last layer", "step"),
        }
        return xr.Dataset(
            data, coords=coords, attrs={"title": "temporal effective learning rates", "lr": self.lr}
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """``|η c_{i,s}|`` against the lag (log scale) with the fitted lines.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).
        **kwargs
            Passed to ``ax.plot`` for the points.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        for i, row in enumerate(np.abs(self.rates)):
            (line,) = ax.plot(self.lags, row, ".", label=f"eigenvalue {i + 1}", **kwargs)
            fit = np.exp(self.intercept[i] + self.rate[i] * self.lags)
            ax.plot(self.lags, fit, color=line.get_color(), lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("lag T - s (steps)")
        ax.set_ylabel("|lr * contribution of layer s|")
        ax.legend(fontsize="small")
        return ax


def temporal_effective_rates(contributions: Any, lr: float) -> TemporalEffectiveRates:
    """Per-layer effective learning rates ``η c_{i,s}`` and their exponential rate over the lag.

    Untying the recurrent parameters into copies ``θ_s`` per unrolled layer splits the Hessian into
    blocks ``H_{st}``; the contribution of layer ``s`` to the eigenvalue ``λ_i`` (eigenvector
    ``v_i``) is ``c_{i,s} = v_iᵀ (Σ_t H_{st}) v_i``, and ``Σ_s c_{i,s} = λ_i``. The rate fitted is
    ``ρ_i`` in ``|η c_{i,s}| ∝ exp(ρ_i (T − s))`` (no exponent of ``r`` is imposed). What to expect
    for a WCRNN with ``R = r I`` (WCRNN paper, eqs. 7–10, 14–15)::

        residual term (eq. 9):   |c_{i,s}| ∝ ‖∂L/∂x_s‖ ∝ r^{T−s}                       ρ = log r
        GGN term (eqs. 8, 14):   c_{i,s} ∝ r^{T−s} Σ_t r^{T−t} K_{st}
            sensitivities coherent in time (bias, non-zero-mean inputs)  →      ρ = log r
            incoherent (zero-mean i.i.d. inputs, K ≈ diagonal)            →      ρ = 2 log r

    The paper's "proportional to the gradient propagation" is the first case (exponent 1);
    ``r^{2(T−s)}`` is the diagonal block ``v_iᵀ H_{ss} v_i`` and the incoherent case (exponent 2).
    ``tests/test_effective.py`` checks both on exact contributions of untied WCRNNs.

    Parameters
    ----------
    contributions : lyapkit.LayerContributions or (k, T) array_like
        ``c_{i,s}`` for ``k`` eigenvalues and layers ``s = 1 … T`` (rows sum to the eigenvalues):
        the result of :meth:`lyapkit.CurvatureOperator.layer_contributions` without ``bins``
        (its ``recurrent``), or an array with one column per step (the rate is per column).
    lr : float
        Learning rate ``η > 0``.

    Returns
    -------
    TemporalEffectiveRates
        The rates ``η c_{i,s}`` with the fitted exponential rate and intercept over the lag.

    Raises
    ------
    ValueError
        ``contributions`` not a non-empty finite real 2-d array, or layer contributions summed
        over bins of several steps; ``lr`` not a positive finite number.

    See Also
    --------
    lyapkit.CurvatureOperator.layer_contributions : The contributions ``c_{i,s}`` of a model.
    lyapkit.sgd_effective_rates : The rates ``η λ_i`` of the eigenvalues themselves.

    References
    ----------
    .. [1] I. Dubinin, F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023 (eqs. 7–10, 14–15).

    Examples
    --------
    Contributions that fade as ``r^{T−s}`` with ``r = 0.5`` have the rate ``log r``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> c = 0.5 ** np.arange(4, -1, -1.0)[None]  # layers s = 1 … 5, lag T − s = 4 … 0
    >>> tr = lk.temporal_effective_rates(c, lr=0.1)
    >>> tr.rates.shape, round(float(tr.rate[0]), 3), round(float(np.log(0.5)), 3)
    ((1, 5), -0.693, -0.693)
    """
    edges = getattr(contributions, "bin_edges", None)
    if edges is not None:  # LayerContributions
        if np.any(np.diff(edges) != 1):
            raise ValueError(
                "temporal_effective_rates fits a rate per step: pass layer contributions of single "
                f"steps (layer_contributions without bins), got bins with edges {edges.tolist()}"
            )
        contributions = contributions.recurrent
    c = real_array(contributions, "contributions", 2)
    lr = number(lr, "lr", positive=True)
    rates = lr * c
    lags = np.arange(c.shape[1] - 1, -1, -1)
    with np.errstate(divide="ignore"):
        fits = np.array([fit_rate(np.log(np.abs(row)), lags) for row in rates]).reshape(-1, 2)
    return TemporalEffectiveRates(rates, lr, fits[:, 0], fits[:, 1])
