"""The map protocol: a discrete-time system ``x_{t+1} = f(x_t, u_t; θ)`` and its state Jacobian."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._array import is_torch_tensor, namespace_of


@dataclass(frozen=True)
class NumbaKernels:
    """Numba-jitted kernels of a map, for the ``numba`` backend.

    ``step(x, u, params, out)`` writes ``f(x, u)`` into ``out``; ``jacobian(x, u, params, J)`` writes
    ``∂f/∂x (x, u)`` into ``J`` (row ``i``, column ``j`` = ``∂f_i/∂x_j``). ``x`` and ``out`` have shape
    ``(dim,)``, ``u`` has shape ``(input_dim,)`` (empty for autonomous maps), ``params`` is a tuple.
    """

    step: Any
    jacobian: Any
    params: tuple


class Map(abc.ABC):
    """A discrete map ``x_{t+1} = f(x_t, u_t)`` with state Jacobian ``J_t = ∂f/∂x (x_t, u_t)``.

    ``step`` and ``jacobian`` are batched over leading axes: ``x`` has shape ``(..., dim)``, ``u`` shape
    ``(..., input_dim)`` or ``None`` (no input, or zero input for a driven map). ``jacobian`` returns
    ``(..., dim, dim)``. ``namespaces`` names the array libraries (``"numpy"``, ``"torch"``) whose arrays
    ``step`` and ``jacobian`` accept; ``numba_kernels`` returns kernels for the numba backend or None.
    """

    name: str = "map"
    dim: int
    input_dim: int = 0
    #: How the Jacobian is computed: "analytic", "autodiff" or "finite-difference".
    jacobian_method: str = "analytic"
    namespaces: frozenset[str] = frozenset({"numpy", "torch"})
    #: Period of each coordinate for maps on a torus (differences are wrapped), or None.
    period: float | None = None

    @abc.abstractmethod
    def step(self, x: Any, u: Any = None) -> Any:
        """Return ``f(x, u)``."""

    @abc.abstractmethod
    def jacobian(self, x: Any, u: Any = None) -> Any:
        """Return ``∂f/∂x (x, u)`` with shape ``(..., dim, dim)``."""

    def step_and_jacobian(self, x: Any, u: Any = None) -> tuple[Any, Any]:
        """Return ``(f(x, u), ∂f/∂x (x, u))``; maps override this to share work."""
        return self.step(x, u), self.jacobian(x, u)

    def parameters(self) -> dict[str, Any]:
        """The map's parameters by name."""
        return {}

    def prepare(self) -> None:  # noqa: B027 (a hook; most maps need nothing)
        """Called at the start of every lyapkit computation; maps that cache converted parameters
        refresh them here."""

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state of shape ``(dim,)`` in the map's typical domain."""
        return rng.uniform(-0.5, 0.5, self.dim)

    def numba_kernels(self) -> NumbaKernels | None:
        """Kernels for the numba backend, or None when the map has none."""
        return None

    def __repr__(self) -> str:
        extra = "" if self.input_dim == 0 else f", input_dim={self.input_dim}"
        return f"{type(self).__name__}(dim={self.dim}{extra}, jacobian={self.jacobian_method!r})"


class ArrayMap(Map):
    """A map whose equations are written once against an array namespace (numpy or torch).

    Subclasses store their parameters with :meth:`_set_params` and implement ``_step(xp, p, x, u)``
    and ``_jacobian(xp, p, x, u)`` (optionally ``_step_and_jacobian``), where ``p`` holds the
    parameters converted to the namespace, dtype and device of ``x``.
    """

    def _set_params(self, **params: Any) -> None:
        self._params = {
            name: float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
            for name, v in params.items()
        }
        self._converted: dict[tuple, dict[str, Any]] = {}

    def parameters(self) -> dict[str, Any]:
        return dict(self._params)

    def _params_like(self, x: Any) -> dict[str, Any]:
        xp = namespace_of(x)
        if xp is np:
            if x.dtype == np.float64 or x.dtype.kind != "f":
                return self._params
            key = (x.dtype, None)
            convert = lambda v: v.astype(x.dtype)  # noqa: E731
        else:
            key = (x.dtype, x.device)
            convert = lambda v: xp.as_tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
        if key not in self._converted:
            self._converted[key] = {
                name: v if isinstance(v, float) else convert(v) for name, v in self._params.items()
            }
        return self._converted[key]

    def _zero_input(self, x: Any, u: Any) -> Any:
        """Inputs default to zero for a driven map."""
        if self.input_dim == 0 or u is not None:
            return u
        shape = tuple(x.shape[:-1]) + (self.input_dim,)
        return x.new_zeros(shape) if is_torch_tensor(x) else np.zeros(shape, dtype=x.dtype)

    def step(self, x: Any, u: Any = None) -> Any:
        return self._step(namespace_of(x), self._params_like(x), x, self._zero_input(x, u))

    def jacobian(self, x: Any, u: Any = None) -> Any:
        return self._jacobian(namespace_of(x), self._params_like(x), x, self._zero_input(x, u))

    def step_and_jacobian(self, x: Any, u: Any = None) -> tuple[Any, Any]:
        xp, p, u = namespace_of(x), self._params_like(x), self._zero_input(x, u)
        return self._step_and_jacobian(xp, p, x, u)

    def _step_and_jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> tuple[Any, Any]:
        return self._step(xp, p, x, u), self._jacobian(xp, p, x, u)

    @abc.abstractmethod
    def _step(self, xp: Any, p: dict, x: Any, u: Any) -> Any: ...

    @abc.abstractmethod
    def _jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> Any: ...


def matrix(xp: Any, rows: list[list[Any]]) -> Any:
    """Stack a nested list of batched scalars ``rows[i][j]`` into a ``(..., n, m)`` array."""
    return xp.stack([xp.stack(row, -1) for row in rows], -2)
