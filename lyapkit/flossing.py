"""Differentiable finite-time Lyapunov exponents on torch, and the gradient-flossing penalty.

Over a window of ``T`` steps the tangent basis ``Q`` (``n × k``, orthonormal) follows the
Jacobians of the map and is re-orthonormalised by a QR factorisation at every step (Benettin et
al. 1980); the finite-time exponents are the mean logarithms of the diagonal of ``R``::

    x_t = f(x_{t−1}, u_t; θ),     Q_t R_t = J_t Q_{t−1},     J_t = ∂f/∂x (x_{t−1}, u_t; θ)
    λ_i = (1/T) Σ_{t=1..T} log |(R_t)_ii|                    (i = 1 … k)

Every operation is a torch operation, so autograd differentiates ``λ`` with respect to ``θ``
(the module's parameters), the initial state and the inputs: through the trajectory, through
the Jacobian products and through the QR factorisations (``torch.linalg.qr`` is differentiable).
Differentiating the factorised product, not the raw product ``J_T ⋯ J_1 Q_0`` (whose columns
all collapse onto the leading direction and over- or underflow), is what keeps the gradient
finite over windows of hundreds of steps.

Gradient flossing (Engelken, NeurIPS 2023) adds the penalty :func:`flossing_loss`,
``Σ_i (λ_i − λ*)²``, to the training loss, pushing the top exponents toward a target ``λ*``
(0 by default: neither vanishing nor exploding gradients); the trainer's
``[diagnostics.flossing]`` option does so on its own schedule (``docs/howto/gradient-flossing.md``).

This module imports torch only when its functions are called.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from lyapkit._array import import_optional
from lyapkit._checks import integer, number
from lyapkit.lyapunov import NonFiniteTrajectoryWarning, _initial_states, _random_bases
from lyapkit.maps.base import Map
from lyapkit.recurrent import check_input_size, check_recurrent

if TYPE_CHECKING:
    import torch

__all__ = ["finite_time_exponents", "flossing_loss"]


def finite_time_exponents(
    system: Any,
    inputs: torch.Tensor | None = None,
    k: int = 1,
    *,
    steps: int | None = None,
    transient: int = 0,
    x0: torch.Tensor | None = None,
    basis: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """The ``k`` leading finite-time Lyapunov exponents over a window, differentiable (torch).

    The QR method (Benettin et al. 1980 [1]_) over ``steps`` steps after a ``transient``, for
    each of ``E`` trajectories at once (the ensemble is the batch)::

        Q_t R_t = J_t Q_{t−1},   λ_i = (1/T) Σ_{t=t₀+1..t₀+T} log |(R_t)_ii|,   t₀ = transient

    The transient evolves the state and the basis without counting (so the basis aligns with the
    leading directions first); both are differentiated through. The result is a torch tensor in
    the graph of the parameters of ``system``: ``flossing_loss(λ).backward()`` gives the gradient
    of the exponents with respect to every parameter (and to ``x0`` and ``inputs`` when they
    require grad).

    The Jacobian products ``J_t Q`` come from the system itself:

    * a recurrent network (:class:`lyapkit.RecurrentNetwork`: lyapkit's trainable models, or any
      PyTorch RNN through :func:`lyapkit.adapt`): forward-mode autodiff of its ``step``,
      ``torch.func.jvp`` with the ``k`` columns of ``Q`` as ``k`` copies of the state in the
      batch (one batched call per step, no Jacobian formed);
    * a lyapkit :class:`lyapkit.Map` that runs on torch: its own ``step_and_jacobian`` (analytic
      where the map has it), then ``J Q``. The exponents are differentiable with respect to the
      torch tensors that the map's torch code uses: a :func:`lyapkit.from_torch` map of a module
      whose parameters have the dtype of the state differentiates the module's parameters;
      built-in maps hold float64 numpy snapshots (only ``x0`` and ``inputs`` are
      differentiable).

    Parameters
    ----------
    system : lyapkit.RecurrentNetwork or lyapkit.Map
        A torch recurrent network (``step(x, u)`` on ``(batch, n)`` states, ``initial_state``) or
        a map with torch kernels.
    inputs : torch.Tensor of shape (E, T_in, input_dim), optional
        Inputs ``u_t`` of each trajectory, ``T_in >= transient + steps``; required for a
        network, omitted for an autonomous map. Their dtype is the computation's (float64 for
        gradient checks); a network's parameters must have it too.
    k : int, default 1
        Number of exponents, ``1 <= k <= n``.
    steps : int, optional
        The window ``T``; default ``T_in − transient``.
    transient : int, default 0
        Steps evolved before the window.
    x0 : torch.Tensor of shape (E, n) or (n,), optional
        Initial states. Default: a network's ``initial_state(inputs)``; for a map, states drawn
        from ``system.initial_state`` with ``seed``, as :func:`lyapkit.lyapunov_spectrum` draws
        them.
    basis : torch.Tensor of shape (n, k) or (E, n, k), optional
        Initial tangent basis (orthonormalised by a QR factorisation first). Default: Haar
        random, drawn with ``seed`` as :func:`lyapkit.lyapunov_spectrum` draws its basis, so the
        two give the same exponents for the same ``x0``, inputs and seed.
    seed : int, default 0
        Seed (``>= 0``) of the default ``x0`` (maps) and basis.

    Returns
    -------
    torch.Tensor of shape (E, k)
        ``λ_1 … λ_k`` of each trajectory in nats per step, in the order of the basis columns
        (descending once the transient or the window has aligned the basis); differentiable.

    Raises
    ------
    TypeError
        For a system that is neither a recurrent network nor a map with torch kernels, or
        ``inputs``, ``x0`` or ``basis`` that are not torch tensors.
    ValueError
        For a ``k``, ``steps``, ``transient``, ``seed``, ``x0``, ``inputs`` or ``basis`` of the
        wrong value or shape (naming it); missing ``inputs`` for a driven system, or missing
        ``steps`` for an autonomous map; ``inputs`` shorter than ``transient + steps``; inputs
        whose dtype differs from the network's, or an ``x0`` whose dtype or device differs
        from the inputs'.
    ImportError
        When torch is not installed.

    Warns
    -----
    lyapkit.NonFiniteTrajectoryWarning
        When a trajectory or its basis overflowed, or a direction collapsed: those exponents
        are NaN or ``−inf`` (and their gradients are not finite).

    See Also
    --------
    lyapkit.lyapunov_spectrum : The same exponents, not differentiable, on any backend.
    lyapkit.adapt : Wraps a PyTorch RNN as a :class:`lyapkit.RecurrentNetwork`.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, A. Giorgilli and J.-M. Strelcyn, "Lyapunov characteristic
       exponents for smooth dynamical systems and for Hamiltonian systems; a method for
       computing all of them. Part 1: Theory; Part 2: Numerical application", *Meccanica* 15,
       9–20 and 21–30 (1980).
    .. [2] R. Engelken, "Gradient flossing: improving gradient descent through dynamic control
       of Jacobians", *Advances in Neural Information Processing Systems* 36 (NeurIPS 2023).

    Examples
    --------
    On a map with torch kernels, the same draws as :func:`lyapkit.lyapunov_spectrum` give the
    same exponents:

    >>> import numpy as np
    >>> import torch
    >>> import lyapkit as lk
    >>> lam = lk.finite_time_exponents(lk.Henon(), k=2, steps=30, transient=10, seed=3)
    >>> lam.shape
    torch.Size([1, 2])
    >>> res = lk.lyapunov_spectrum(lk.Henon(), steps=30, transient=10, seed=3, backend="numpy")
    >>> bool(np.allclose(lam.detach().numpy()[0], res.exponents))
    True

    Gradient flossing [2]_ on a network (the penalty ``lyapkit.flossing.flossing_loss``): its
    gradient reaches the recurrent weights.

    >>> from lyapkit.flossing import flossing_loss
    >>> from lyapkit.trainers.models import ElmanRNN
    >>> _ = torch.manual_seed(0)
    >>> net = ElmanRNN(2, 8, 1).double()
    >>> lam = lk.finite_time_exponents(net, torch.rand(4, 30, 2, dtype=torch.float64), k=3)
    >>> lam.shape
    torch.Size([4, 3])
    >>> flossing_loss(lam).backward()
    >>> bool(torch.isfinite(net.rnn.weight_hh_l0.grad).all())
    True
    """
    torch = import_optional("torch", "torch")
    is_map = isinstance(system, Map)
    if is_map:
        if "torch" not in system.namespaces:
            raise TypeError(
                f"system {system!r} has no torch kernels (namespaces {sorted(system.namespaces)}); "
                "finite_time_exponents runs on torch: pass a map from lyapkit.from_torch or a "
                "torch recurrent network"
            )
        system.prepare()
    else:
        check_recurrent(system, "finite_time_exponents")
    if inputs is not None:
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch tensor, got {type(inputs).__name__}")
        if inputs.ndim != 3 or not inputs.is_floating_point():
            raise ValueError(
                f"inputs must be a floating tensor (E, T, input_dim), got {inputs.dtype} "
                f"{tuple(inputs.shape)}"
            )
        if not is_map:
            check_input_size(system, inputs)
        if is_map and inputs.shape[-1] != system.input_dim:
            raise ValueError(
                f"inputs must have {system.input_dim} entries per step (the input_dim of "
                f"{system!r}), got shape {tuple(inputs.shape)}"
            )
    elif not is_map or system.input_dim > 0:
        raise ValueError(f"inputs are required for {type(system).__name__} (a driven system)")
    transient = integer(transient, "transient", 0)
    if steps is None:
        if inputs is None:
            raise ValueError("steps is required for an autonomous map (no inputs to count)")
        steps = inputs.shape[1] - transient
    steps = integer(steps, "steps", 1)
    if inputs is not None and inputs.shape[1] < transient + steps:
        raise ValueError(
            f"inputs has {inputs.shape[1]} time steps but transient + steps = "
            f"{transient + steps} are needed"
        )
    rng = np.random.default_rng(integer(seed, "seed", 0))
    x = _start(torch, system, is_map, inputs, x0, rng)
    E, n = x.shape
    k = integer(k, "k", 1)
    if k > n:
        raise ValueError(f"k must be an integer between 1 and the state size {n}, got {k}")
    Q = _basis(torch, basis, rng, E, n, k, x)
    tangent = _map_tangent(system) if is_map else _network_tangent(system)
    total = x.new_zeros(E, k)
    for t in range(transient + steps):
        x, JQ = tangent(x, None if inputs is None else inputs[:, t], Q)
        Q, R = torch.linalg.qr(JQ)
        if t >= transient:
            total = total + torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
    exponents = total / steps
    bad = ~torch.isfinite(exponents.detach()).all(-1)
    if bad.any():
        warnings.warn(
            f"finite_time_exponents: members {bad.nonzero().flatten().tolist()} became non-finite "
            "(the trajectory or its basis overflowed, or a tangent direction collapsed): their "
            "exponents are NaN or -inf, and so are their gradients",
            NonFiniteTrajectoryWarning,
            stacklevel=2,
        )
    return exponents


def _start(
    torch: Any,
    system: Any,
    is_map: bool,
    inputs: torch.Tensor | None,
    x0: Any,
    rng: np.random.Generator,
) -> torch.Tensor:
    """The initial states ``(E, n)``: given, the network's ``initial_state``, or drawn."""
    E = None if inputs is None else inputs.shape[0]
    if x0 is None:
        if is_map:
            draws = _initial_states(system, None, E, rng)
            dtype = torch.float64 if inputs is None else inputs.dtype
            device = None if inputs is None else inputs.device
            return torch.as_tensor(draws, dtype=dtype, device=device)
        return _dtype_checked(torch, system, system.initial_state(inputs), inputs)
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch tensor, got {type(x0).__name__}")
    if x0.ndim == 1:
        x0 = x0.expand(1 if E is None else E, -1)
    if x0.ndim != 2 or (E is not None and x0.shape[0] != E) or not x0.is_floating_point():
        raise ValueError(
            f"x0 must be a floating tensor (n,) or (E, n) with E = {E} (the inputs' first axis), "
            f"got {x0.dtype} {tuple(x0.shape)}"
        )
    if is_map and x0.shape[1] != system.dim:
        raise ValueError(f"x0 must have {system.dim} columns (the map's dim), got {x0.shape[1]}")
    if not is_map and inputs is not None:
        n = system.initial_state(inputs[:1]).shape[1]
        if x0.shape[1] != n:
            raise ValueError(
                f"x0 must have {n} columns (the network's state size), got {x0.shape[1]}"
            )
    if inputs is not None and (x0.dtype != inputs.dtype or x0.device != inputs.device):
        raise ValueError(
            f"x0 must have the dtype and device of inputs ({inputs.dtype} on {inputs.device}), "
            f"got {x0.dtype} on {x0.device}"
        )
    return x0 if is_map else _dtype_checked(torch, system, x0, inputs)


def _dtype_checked(torch: Any, system: Any, x: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``x``, after checking that the network's floating parameters have the inputs' dtype."""
    if isinstance(system, torch.nn.Module):
        dtypes = {p.dtype for p in system.parameters() if p.is_floating_point()}
        if dtypes and dtypes != {inputs.dtype}:
            raise ValueError(
                f"inputs must have the dtype of the network's parameters {sorted(map(str, dtypes))}, "
                f"got {inputs.dtype} (convert one, e.g. model.double() for gradient checks)"
            )
    return x


def _basis(
    torch: Any, basis: Any, rng: np.random.Generator, E: int, n: int, k: int, x: torch.Tensor
) -> torch.Tensor:
    """The orthonormal initial basis ``(E, n, k)``: given (then orthonormalised) or Haar random."""
    if basis is None:
        return torch.as_tensor(_random_bases(rng, E, n, k), dtype=x.dtype, device=x.device)
    if not isinstance(basis, torch.Tensor):
        raise TypeError(f"basis must be a torch tensor, got {type(basis).__name__}")
    if basis.ndim == 2:
        basis = basis.expand(E, n, k) if tuple(basis.shape) == (n, k) else basis
    if tuple(basis.shape) != (E, n, k):
        raise ValueError(
            f"basis must have shape ({n}, {k}) or ({E}, {n}, {k}), got {tuple(basis.shape)}"
        )
    return torch.linalg.qr(basis.to(x.dtype))[0]


def _network_tangent(network: Any) -> Any:
    """``(x, u, Q) → (f(x, u), J Q)`` by one ``torch.func.jvp`` of ``network.step``, the ``k``
    columns of ``Q`` laid along the batch as ``k`` copies of each state (a ``vmap`` over the
    columns costs a Python dispatch per column and is ~10× slower for small networks)."""
    import torch

    def tangent(x: torch.Tensor, u: torch.Tensor, Q: torch.Tensor) -> tuple:
        E, n, k = Q.shape
        xs = x.repeat_interleave(k, 0)  # copies: jvp refuses a primal of stride 0
        us = u.repeat_interleave(k, 0)
        y, JQ = torch.func.jvp(lambda s: network.step(s, us), (xs,), (Q.mT.reshape(E * k, n),))
        return y.reshape(E, k, n)[:, 0], JQ.reshape(E, k, n).mT

    return tangent


def _map_tangent(system: Map) -> Any:
    """``(x, u, Q) → (f(x, u), J Q)`` from the map's own ``step_and_jacobian``."""

    def tangent(x: Any, u: Any, Q: Any) -> tuple:
        y, J = system.step_and_jacobian(x, u)
        return y, J @ Q

    return tangent


def flossing_loss(exponents: torch.Tensor, target: float = 0.0) -> torch.Tensor:
    """The gradient-flossing penalty on finite-time Lyapunov exponents (Engelken 2023).

    Added to the training loss, it pushes the top exponents of every trajectory toward a target
    ``λ*`` (Engelken 2023 [1]_)::

        L_floss = (1/E) Σ_e Σ_i (λ_ei − λ*)²

    (for a 1-D ``exponents``, ``Σ_i (λ_i − λ*)²``).

    Parameters
    ----------
    exponents : torch.Tensor of shape (E, k) or (k,)
        Finite-time exponents (:func:`lyapkit.finite_time_exponents`) of ``E`` trajectories.
    target : float, default 0.0
        The target ``λ*`` (0: gradients that neither vanish nor explode over the window).

    Returns
    -------
    torch.Tensor
        A scalar: the squared distances summed over the exponents and averaged over the
        trajectories (each trajectory's exponents are pushed to the target, not only their mean).

    Raises
    ------
    ValueError
        When ``exponents`` is not a 1-D or 2-D torch tensor, or ``target`` is not a finite real
        number.

    See Also
    --------
    lyapkit.finite_time_exponents : The differentiable exponents it penalises.

    References
    ----------
    .. [1] R. Engelken, "Gradient flossing: improving gradient descent through dynamic control
       of Jacobians", *Advances in Neural Information Processing Systems* 36 (NeurIPS 2023).

    Examples
    --------
    >>> import torch
    >>> from lyapkit.flossing import flossing_loss
    >>> lam = torch.tensor([[0.5, -1.0], [0.1, -0.3]])
    >>> round(float(flossing_loss(lam)), 3)  # ((0.25 + 1) + (0.01 + 0.09)) / 2
    0.675
    >>> round(float(flossing_loss(torch.tensor([0.5, -1.0]), target=-0.5)), 3)  # 1 + 0.25
    1.25
    """
    torch = import_optional("torch", "torch")
    if not isinstance(exponents, torch.Tensor) or exponents.ndim not in (1, 2):
        shape = tuple(getattr(exponents, "shape", ())) or type(exponents).__name__
        raise ValueError(f"exponents must be a tensor (E, k) or (k,), got {shape}")
    target = number(target, "target")
    squares = (exponents - target) ** 2
    return squares.sum(-1).mean() if squares.ndim == 2 else squares.sum()
