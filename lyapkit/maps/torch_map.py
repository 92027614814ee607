"""Torch callables and modules as maps, with Jacobians by batched autodiff (``torch.func``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from lyapkit._array import import_optional
from lyapkit.maps.base import Map
from lyapkit.maps.rnn import StackedRNNMap


class TorchMap(Map):
    """A map ``x → f(x, u)`` given by a torch callable on a single state.

    ``f`` sees one state of shape ``(dim,)`` (and one input ``(input_dim,)``); batching over ensemble
    members is done by ``torch.func.vmap`` (or natively, for ``batched=True`` callables such as RNN
    cells) and the Jacobian by ``vmap(jacrev(f))``, both without a Python loop over members or
    units. A module whose parameters are not in the dtype and device of the state is copied there
    (the user's module is never modified); the copy is refreshed by :meth:`prepare`, which every
    lyapkit computation calls first, so it sees the module's current parameters.
    """

    namespaces = frozenset({"torch"})
    jacobian_method = "autodiff"

    def __init__(
        self,
        fn: Callable[..., Any],
        dim: int,
        input_dim: int = 0,
        *,
        name: str | None = None,
        takes_input: bool | None = None,
        batched: bool = False,
    ):
        self._torch = import_optional("torch", "torch")
        if not callable(fn):
            raise TypeError(f"fn must be a torch callable or nn.Module, got {type(fn).__name__}")
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if int(input_dim) != input_dim or input_dim < 0:
            raise ValueError(f"input_dim must be a non-negative integer, got {input_dim!r}")
        self.dim, self.input_dim = int(dim), int(input_dim)
        self._fn, self._batched_native = fn, batched
        self._takes_input = self.input_dim > 0 if takes_input is None else takes_input
        self.name = name or type(fn).__name__
        self.prepare()

    def prepare(self) -> None:
        """Forget converted copies of the module, so the next call reads its current parameters."""
        self._copies: dict[tuple, Callable[..., Any]] = {}
        self._transformed: dict[tuple, tuple[Callable[..., Any], Callable[..., Any]]] = {}

    def _fn_like(self, x: Any) -> Callable[..., Any]:
        """The callable with its parameters (if a module) on the dtype and device of ``x``."""
        fn = self._fn
        if not isinstance(fn, self._torch.nn.Module):
            return fn
        key = (x.dtype, x.device)
        if key not in self._copies:
            tensors = [*fn.parameters(), *fn.buffers()]
            if all(t.dtype == x.dtype and t.device == x.device for t in tensors):
                self._copies[key] = fn
            else:
                self._copies[key] = copy.deepcopy(fn).to(dtype=x.dtype, device=x.device)
        return self._copies[key]

    def _transforms(self, x: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``(batched step, batched step-and-Jacobian)`` for the dtype and device of ``x``."""
        key = (x.dtype, x.device)
        if key not in self._transformed:
            func, fn = self._torch.func, self._fn_like(x)
            single = (lambda xi, ui: fn(xi, ui)) if self._takes_input else (lambda xi, ui: fn(xi))

            def with_aux(xi, ui):
                y = single(xi, ui)
                return y, y

            self._transformed[key] = (
                single if self._batched_native else func.vmap(single),
                func.vmap(func.jacrev(with_aux, argnums=0, has_aux=True)),
            )
        return self._transformed[key]

    def _flat(self, x: Any, u: Any) -> tuple[Any, Any, tuple]:
        torch = self._torch
        batch = tuple(x.shape[:-1])
        xf = x.reshape(-1, self.dim)
        if u is None:
            uf = xf.new_zeros(xf.shape[0], self.input_dim)
        else:
            u = torch.as_tensor(u, dtype=x.dtype, device=x.device)
            uf = u.expand(batch + (self.input_dim,)).reshape(-1, self.input_dim)
        return xf, uf, batch

    def step(self, x: Any, u: Any = None) -> Any:
        xf, uf, batch = self._flat(x, u)
        return self._transforms(x)[0](xf, uf).reshape(batch + (self.dim,))

    def jacobian(self, x: Any, u: Any = None) -> Any:
        return self.step_and_jacobian(x, u)[1]

    def step_and_jacobian(self, x: Any, u: Any = None) -> tuple[Any, Any]:
        xf, uf, batch = self._flat(x, u)
        J, y = self._transforms(x)[1](xf, uf)
        return y.reshape(batch + (self.dim,)), J.reshape(batch + (self.dim, self.dim))


def _cell_map(cell: Any) -> TorchMap:
    """``nn.RNNCell`` / ``nn.GRUCell``: state ``h``; ``nn.LSTMCell``: state ``(h, c)`` concatenated."""
    torch = import_optional("torch", "torch")
    H, m = cell.hidden_size, cell.input_size
    if isinstance(cell, torch.nn.LSTMCell):

        class LSTMState(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.cell = cell

            def forward(self, x, u):
                h, c = self.cell(u, (x[..., :H], x[..., H:]))
                return torch.cat([h, c], -1)

        return TorchMap(LSTMState(), 2 * H, m, name="LSTMCell", takes_input=True, batched=True)

    class CellState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cell = cell

        def forward(self, x, u):
            return self.cell(u, x)

    return TorchMap(CellState(), H, m, name=type(cell).__name__, takes_input=True, batched=True)


def from_torch(
    fn: Any, dim: int | None = None, input_dim: int = 0, *, name: str | None = None
) -> TorchMap | StackedRNNMap:
    """Wrap a torch callable or module as a map.

    ``nn.RNNCell`` and ``nn.GRUCell`` become maps of their hidden state (``dim = hidden_size``),
    ``nn.LSTMCell`` a map of the full state ``(h, c)`` (``dim = 2 hidden_size``), with Jacobians by
    autodiff; their input dimension is the cell's ``input_size``. A stacked ``nn.RNN``,
    ``nn.GRU`` or ``nn.LSTM`` (any ``num_layers``, ``proj_size``, with or without biases; not
    bidirectional), or a module holding exactly one of them (and given no ``dim``), becomes a
    :class:`lyapkit.StackedRNNMap` of its full stacked state with analytic Jacobians,
    which runs on the numpy, torch and numba backends (:func:`lyapkit.adapt` gives the same map, and the
    learning-dynamics protocol, as ``adapt(module).as_map()``). Any other callable ``fn(x)`` or
    ``fn(x, u)`` (when ``input_dim > 0``) acting on a single state of shape ``(dim,)`` needs
    ``dim``; it must be composable with ``torch.func`` transforms (no in-place updates of
    captured tensors, no ``.item()``); its Jacobians come by autodiff,
    ``J = vmap(jacrev(f))(x, u)`` over the batch of states, ``J[..., i, j] = ∂f_i/∂x_j``. Such a
    map accepts torch tensors only (``namespaces = {"torch"}``); a module whose parameters are in
    another dtype or device than the state is copied there, never modified.

    Parameters
    ----------
    fn : callable or torch.nn.Module
        The recurrent module or cell, a module holding one, or a callable ``fn(x)`` /
        ``fn(x, u)`` of one state.
    dim : int, optional
        The state dimension; required for a callable that is not (and does not hold exactly one)
        ``nn.RNN``/``nn.GRU``/``nn.LSTM`` or cell, ignored otherwise.
    input_dim : int, default 0
        The input dimension of a callable (``fn(x, u)`` when positive); recurrent modules and
        cells take theirs from ``input_size``.
    name : str, optional
        A label for reports (default: the callable's type name); used for plain callables only.

    Returns
    -------
    lyapkit.Map
        A ``StackedRNNMap`` (analytic Jacobians) for a stacked module or a module holding one,
        else a ``TorchMap`` (autodiff Jacobians, ``jacobian_method="autodiff"``).

    Raises
    ------
    ValueError
        If ``dim`` is missing for a callable that needs it, ``dim`` is not a positive integer or
        ``input_dim`` a non-negative one, or the recurrent module is bidirectional.
    TypeError
        If ``fn`` is not callable.
    ImportError
        If torch is not installed.

    See Also
    --------
    lyapkit.StackedRNNMap : The map of a stacked recurrent module.
    lyapkit.from_numpy : A map from numpy callables.
    lyapkit.adapt : A PyTorch recurrent network as a :class:`lyapkit.RecurrentNetwork`.

    Examples
    --------
    >>> import torch
    >>> import lyapkit as lk
    >>> squash = lk.from_torch(lambda x: torch.tanh(1.5 * x), dim=3)
    >>> squash.jacobian_method  # J = vmap(jacrev(f)) on the first call of jacobian
    'autodiff'
    >>> squash.step(torch.ones(5, 3, dtype=torch.float64)).shape
    torch.Size([5, 3])
    >>> lk.from_torch(torch.nn.GRU(2, 4, num_layers=2))
    StackedRNNMap(GRU(2x4), dim=8, input_dim=2)
    >>> cell = lk.from_torch(torch.nn.LSTMCell(2, 4))  # state (h, c)
    >>> cell.dim, cell.input_dim
    (8, 2)
    """
    torch = import_optional("torch", "torch")
    nn = torch.nn
    cells = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)
    if isinstance(fn, cells):
        return _cell_map(fn)
    if isinstance(fn, nn.RNNBase):
        return StackedRNNMap(fn)
    if dim is None:
        held = (
            [m for m in fn.modules() if isinstance(m, (nn.RNNBase, *cells))]
            if isinstance(fn, nn.Module)
            else []
        )
        if len(held) == 1:
            return _cell_map(held[0]) if isinstance(held[0], cells) else StackedRNNMap(held[0])
        raise ValueError(
            "dim is required for a torch callable that is not (and holds not exactly one) "
            f"nn.RNN/GRU/LSTM or RNN/GRU/LSTM cell; {type(fn).__name__} holds {len(held)}"
        )
    return TorchMap(fn, dim, input_dim, name=name)
