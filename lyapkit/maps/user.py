"""User maps from plain numpy callables or numba-jitted kernels."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lyapkit.maps.base import Map, NumbaKernels, check_period

log = logging.getLogger(__name__)


def _check_dims(dim: int, input_dim: int) -> tuple[int, int]:
    if int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if int(input_dim) != input_dim or input_dim < 0:
        raise ValueError(f"input_dim must be a non-negative integer, got {input_dim!r}")
    return int(dim), int(input_dim)


class CallableMap(Map):
    """A map from numpy callables ``step(x[, u])`` and optionally ``jacobian(x[, u])``.

    Without ``jacobian``, the Jacobian is approximated by central finite differences,
    ``J[:, j] ≈ (f(x + h e_j) − f(x − h e_j)) / 2h`` with ``h = ε^(1/3) max(1, |x_j|)``
    (error ``O(h²) ≈ 1e-10`` relative for smooth maps), and ``jacobian_method`` says so.

    What the callables return is checked: real values (complex ones are refused with a
    TypeError, not cast) of exactly the shape expected, ``(dim,)`` and ``(dim, dim)`` per state
    (with ``vectorized``, the batch shape in front); a ValueError names the callable, the shape
    expected and the shape returned. For ``dim = 1`` any shape with one entry per state is taken.
    """

    namespaces = frozenset({"numpy"})

    def __init__(
        self,
        step: Callable[..., Any],
        dim: int,
        jacobian: Callable[..., Any] | None = None,
        *,
        input_dim: int = 0,
        vectorized: bool = False,
        name: str = "user_map",
        period: float | None = None,
    ):
        if not callable(step):
            raise TypeError(f"step must be callable, got {type(step).__name__}")
        if jacobian is not None and not callable(jacobian):
            raise TypeError(f"jacobian must be callable or None, got {type(jacobian).__name__}")
        self.dim, self.input_dim = _check_dims(dim, input_dim)
        self._f, self._jac, self.vectorized = step, jacobian, bool(vectorized)
        self.name, self.period = name, check_period(period)
        if jacobian is None:
            self.jacobian_method = "finite-difference"
            log.warning("map %r has no Jacobian: using central finite differences", name)

    def _checked(self, role: str, fn: Callable[..., Any], value: Any, shape: tuple) -> np.ndarray:
        """What ``fn`` (the map's ``role`` callable) returned, as float64 of shape ``shape``; a
        TypeError for complex values, a ValueError for any other shape."""
        a = np.asarray(value)
        what = f"{self.name}: the {role} callable {getattr(fn, '__name__', type(fn).__name__)!r}"
        if np.iscomplexobj(a):
            raise TypeError(
                f"{what} returned complex values (dtype {a.dtype}); lyapkit maps are real: "
                "write a complex state z as the real state (Re z, Im z), or return the real "
                "part explicitly if the imaginary part is zero"
            )
        if a.shape != shape and not (self.dim == 1 and a.size == math.prod(shape)):
            raise ValueError(
                f"{what} returned an array of shape {a.shape}, expected {shape} "
                f"(dim={self.dim}{', vectorized' if self.vectorized else ''})"
            )
        try:
            return np.asarray(a, dtype=np.float64).reshape(shape)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{what} returned values that are not real numbers: {err}") from err

    def _call(
        self, role: str, fn: Callable[..., Any], x: np.ndarray, u: Any, out_shape: tuple
    ) -> np.ndarray:
        """Apply ``fn`` to a batch of states (looping over the batch unless ``vectorized``)."""
        x = np.asarray(x, dtype=np.float64)
        if self.input_dim and u is None:
            u = np.zeros(x.shape[:-1] + (self.input_dim,))
        args = (lambda xi, ui: (xi,)) if self.input_dim == 0 else (lambda xi, ui: (xi, ui))
        if self.vectorized or x.ndim == 1:
            return self._checked(role, fn, fn(*args(x, u)), x.shape[:-1] + out_shape)
        flat = x.reshape(-1, self.dim)
        flat_u = None if u is None else np.broadcast_to(u, x.shape[:-1] + (self.input_dim,))
        flat_u = None if flat_u is None else flat_u.reshape(-1, self.input_dim)
        rows = [
            self._checked(role, fn, fn(*args(xi, None if flat_u is None else flat_u[i])), out_shape)
            for i, xi in enumerate(flat)
        ]
        return np.stack(rows).reshape(x.shape[:-1] + out_shape)

    def step(self, x: Any, u: Any = None) -> np.ndarray:
        return self._call("step", self._f, x, u, (self.dim,))

    def jacobian(self, x: Any, u: Any = None) -> np.ndarray:
        if self._jac is not None:
            return self._call("jacobian", self._jac, x, u, (self.dim, self.dim))
        x = np.asarray(x, dtype=np.float64)
        h = np.finfo(np.float64).eps ** (1 / 3) * np.maximum(1.0, np.abs(x))  # (..., n)
        shifts = np.eye(self.dim) * h[..., None, :]  # (..., j, n): row j shifts coordinate j
        xs = np.concatenate([x[..., None, :] + shifts, x[..., None, :] - shifts], axis=-2)
        us = None if u is None else np.repeat(np.asarray(u)[..., None, :], 2 * self.dim, axis=-2)
        f = self.step(xs, us)
        plus, minus = f[..., : self.dim, :], f[..., self.dim :, :]
        return np.swapaxes((plus - minus) / (2 * h[..., :, None]), -1, -2)


class NumbaMap(Map):
    """A map from numba-jitted kernels ``step(x, u, params, out)`` and ``jacobian(x, u, params, J)``.

    Runs on the numba backend at full speed and on the numpy backend (one kernel call per state).
    """

    namespaces = frozenset({"numpy"})

    def __init__(
        self,
        step: Any,
        jacobian: Any,
        dim: int,
        *,
        input_dim: int = 0,
        params: tuple = (),
        name: str = "numba_map",
        period: float | None = None,
    ):
        for arg, fn in (("step", step), ("jacobian", jacobian)):
            if not hasattr(fn, "py_func"):
                raise TypeError(
                    f"{arg} must be a numba-jitted function (@numba.njit), got {type(fn).__name__}"
                )
        self.dim, self.input_dim = _check_dims(dim, input_dim)
        self._kernels = NumbaKernels(step, jacobian, tuple(params))
        self.name, self.period = name, check_period(period)

    def numba_kernels(self) -> NumbaKernels:
        return self._kernels

    def _apply(self, kernel: Any, x: Any, u: Any, out_shape: tuple) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        batch = x.shape[:-1]
        u = np.zeros(batch + (self.input_dim,)) if u is None else np.asarray(u, dtype=np.float64)
        count = int(np.prod(batch, dtype=int))
        u = np.broadcast_to(u, batch + (self.input_dim,)).reshape(count, self.input_dim)
        out = np.empty((count,) + out_shape)
        for i, xi in enumerate(x.reshape(-1, self.dim)):
            kernel(
                np.ascontiguousarray(xi), np.ascontiguousarray(u[i]), self._kernels.params, out[i]
            )
        return out.reshape(batch + out_shape)

    def step(self, x: Any, u: Any = None) -> np.ndarray:
        return self._apply(self._kernels.step, x, u, (self.dim,))

    def jacobian(self, x: Any, u: Any = None) -> np.ndarray:
        return self._apply(self._kernels.jacobian, x, u, (self.dim, self.dim))


def from_numpy(
    step: Callable[..., Any],
    dim: int,
    jacobian: Callable[..., Any] | None = None,
    *,
    input_dim: int = 0,
    vectorized: bool = False,
    name: str = "user_map",
    period: float | None = None,
) -> CallableMap:
    r"""Wrap numpy callables as a map.

    ``step(x)`` (or ``step(x, u)`` when ``input_dim > 0``) returns the next state; ``jacobian`` has the
    same signature and returns ``∂f/∂x``. Without ``vectorized`` the callables see one state of shape
    ``(dim,)``; with it, batches ``(..., dim)``. Without ``jacobian`` a central finite-difference
    Jacobian is used (labelled ``jacobian_method="finite-difference"``). ``period`` (a positive
    number) wraps state differences for maps on a torus. The callables must return real arrays of
    exactly the expected shape (``(dim,)``, ``(dim, dim)``; with ``vectorized``, the batch shape
    in front): complex values are refused with a TypeError and other shapes with a ValueError
    naming the callable, rather than cast or reshaped. The finite-difference Jacobian is central,

    .. math::

        J_{:, j} \approx \frac{f(x + h e_j) - f(x - h e_j)}{2 h},
        \qquad h = \varepsilon^{1/3} \max(1, |x_j|),

    with relative error ``O(h²) ≈ 1e-10`` for smooth maps (``ε`` the float64 machine epsilon).

    Parameters
    ----------
    step : callable
        ``step(x)``, or ``step(x, u)`` when ``input_dim > 0``: the next state.
    dim : int
        The state dimension.
    jacobian : callable, optional
        ``jacobian(x[, u])``: ``∂f/∂x``, shape ``(dim, dim)`` per state (default: central finite
        differences, with a logged warning).
    input_dim : int, default 0
        The input dimension.
    vectorized : bool, default False
        Whether the callables take batches ``(..., dim)`` (else one call per state).
    name : str, default "user_map"
        A label for reports and error messages.
    period : float, optional
        The period of every coordinate, for a map on a torus (state differences are wrapped).

    Returns
    -------
    lyapkit.Map
        A map on numpy arrays (``namespaces = {"numpy"}``), with ``jacobian_method``
        ``"analytic"`` or ``"finite-difference"``.

    Raises
    ------
    TypeError
        If ``step`` is not callable or ``jacobian`` is neither callable nor None; when called,
        if a callable returns complex values.
    ValueError
        If ``dim`` is not a positive integer, ``input_dim`` a non-negative one, or ``period``
        None or a positive finite number; when called, if a callable returns the wrong shape.

    See Also
    --------
    lyapkit.from_numba : The same from numba kernels, for the numba backend.
    lyapkit.from_torch : The same from a torch callable, with autodiff Jacobians.

    Examples
    --------
    The Hénon map written by hand matches the built-in one:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> def step(x):
    ...     return np.array([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])
    >>> def jacobian(x):
    ...     return np.array([[-2.8 * x[0], 1.0], [0.3, 0.0]])
    >>> henon = lk.from_numpy(step, dim=2, jacobian=jacobian, name="my_henon")
    >>> mine = lk.lyapunov_spectrum(henon, steps=300, x0=np.array([0.1, 0.1]), seed=0)
    >>> builtin = lk.lyapunov_spectrum(lk.Henon(), steps=300, x0=np.array([0.1, 0.1]), seed=0,
    ...                                backend="numpy")
    >>> bool(np.allclose(mine.exponents, builtin.exponents))
    True
    >>> lk.from_numpy(lambda x: x[:1], dim=2, jacobian=jacobian).step(np.zeros(2))
    Traceback (most recent call last):
    ...
    ValueError: user_map: the step callable '<lambda>' returned an array of shape (1,), expected (2,) (dim=2)
    """
    return CallableMap(
        step, dim, jacobian, input_dim=input_dim, vectorized=vectorized, name=name, period=period
    )


def from_numba(
    step: Any,
    jacobian: Any,
    dim: int,
    *,
    input_dim: int = 0,
    params: tuple = (),
    name: str = "numba_map",
    period: float | None = None,
) -> NumbaMap:
    """Wrap numba-jitted kernels as a map.

    Both kernels must be ``@numba.njit`` functions of one state: ``step(x, u, params, out)`` writes
    ``f(x, u)`` into ``out`` (shape ``(dim,)``) and ``jacobian(x, u, params, J)`` writes
    ``∂f_i/∂x_j`` into ``J[i, j]`` (shape ``(dim, dim)``). ``out`` and ``J`` are not initialised:
    write every entry. ``x`` has shape ``(dim,)``, ``u`` shape ``(input_dim,)`` (empty when
    ``input_dim = 0``), and ``params`` is the tuple given here (floats and arrays), so one compiled
    loop serves every parameter value. The map runs on the numba backend and, one kernel call per
    state, on the numpy backend. ``period`` (a positive number) wraps state differences for maps
    on a torus.

    Parameters
    ----------
    step : numba dispatcher
        ``step(x, u, params, out)``, an ``@numba.njit`` function: writes ``f(x, u)`` into ``out``.
    jacobian : numba dispatcher
        ``jacobian(x, u, params, J)``, an ``@numba.njit`` function: writes ``∂f_i/∂x_j`` into
        ``J[i, j]``.
    dim : int
        The state dimension.
    input_dim : int, default 0
        The input dimension.
    params : tuple, default ()
        The parameters passed to both kernels (floats and arrays).
    name : str, default "numba_map"
        A label for reports.
    period : float, optional
        The period of every coordinate, for a map on a torus (state differences are wrapped).

    Returns
    -------
    lyapkit.Map
        A map on numpy arrays whose :meth:`lyapkit.Map.numba_kernels` are these kernels.

    Raises
    ------
    TypeError
        If ``step`` or ``jacobian`` is not a numba-jitted function.
    ValueError
        If ``dim`` is not a positive integer, ``input_dim`` a non-negative one, or ``period``
        None or a positive finite number.

    See Also
    --------
    lyapkit.from_numpy : The same from plain numpy callables.
    lyapkit.NumbaKernels : The kernels' calling convention.

    Examples
    --------
    The logistic map ``x → r x (1 − x)`` with ``r`` passed in ``params``:

    >>> import numba
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> @numba.njit
    ... def step(x, u, params, out):
    ...     out[0] = params[0] * x[0] * (1.0 - x[0])
    >>> @numba.njit
    ... def jacobian(x, u, params, J):
    ...     J[0, 0] = params[0] * (1.0 - 2.0 * x[0])
    >>> logistic = lk.from_numba(step, jacobian, dim=1, params=(3.9,), name="logistic")
    >>> logistic.step(np.array([0.5]))
    array([0.975])
    >>> logistic.jacobian(np.array([0.25]))
    array([[1.95]])
    """
    return NumbaMap(
        step, jacobian, dim, input_dim=input_dim, params=params, name=name, period=period
    )
