"""The map protocol: a discrete-time system ``x_{t+1} = f(x_t, u_t; θ)`` and its state Jacobian."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
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

    Maps with a parameter Jacobian may add the kernels of GGN products (all three, or none).
    ``codes`` is an int64 array of the selected parameters' indices in ``Map.jacobian_parameters``;
    the flat parameter axis holds them in that order, each flattened row-major (``P`` entries)::

        parameter_jacobian(x, u, params, codes, out)   out (dim, P)  = ∂f/∂θ
        parameter_jvp(x, u, params, codes, V, out)     out (k, dim) += V (∂f/∂θ)ᵀ,  V (k, P)
        parameter_vjp(x, u, params, codes, L, out)     out (k, P)   += L ∂f/∂θ,     L (k, dim)

    Parameters
    ----------
    step : numba dispatcher
        ``step(x, u, params, out)``: writes ``f(x, u)`` into ``out`` (``(dim,)``).
    jacobian : numba dispatcher
        ``jacobian(x, u, params, J)``: writes ``∂f/∂x (x, u)`` into ``J`` (``(dim, dim)``).
    params : tuple
        The map's parameters (floats and arrays), passed to every kernel.
    parameter_jacobian : numba dispatcher, optional
        ``parameter_jacobian(x, u, params, codes, out)``: writes ``∂f/∂θ`` into ``out``.
    parameter_jvp : numba dispatcher, optional
        ``parameter_jvp(x, u, params, codes, V, out)``: adds ``V (∂f/∂θ)ᵀ`` to ``out``.
    parameter_vjp : numba dispatcher, optional
        ``parameter_vjp(x, u, params, codes, L, out)``: adds ``L ∂f/∂θ`` to ``out``.

    See Also
    --------
    lyapkit.Map.numba_kernels : Where a map returns its kernels.
    lyapkit.from_numba : A map from user kernels.

    Examples
    --------
    >>> import lyapkit as lk
    >>> kernels = lk.Henon(a=1.4, b=0.3).numba_kernels()
    >>> kernels.params
    (1.4, 0.3)
    >>> kernels.has_parameter_kernels
    False
    """

    step: Any
    jacobian: Any
    params: tuple
    parameter_jacobian: Any = None
    parameter_jvp: Any = None
    parameter_vjp: Any = None

    @property
    def has_parameter_kernels(self) -> bool:
        """Whether the three parameter-Jacobian kernels are present.

        Returns
        -------
        bool
            True when ``parameter_jacobian``, ``parameter_jvp`` and ``parameter_vjp`` are all set.
        """
        return None not in (self.parameter_jacobian, self.parameter_jvp, self.parameter_vjp)


class Map(abc.ABC):
    """A discrete map ``x_{t+1} = f(x_t, u_t)`` with state Jacobian ``J_t = ∂f/∂x (x_t, u_t)``.

    The abstract base of every lyapkit map: a subclass sets ``dim`` (and ``input_dim`` for a
    driven map) and implements :meth:`lyapkit.Map.step` and :meth:`lyapkit.Map.jacobian`.
    ``step`` and ``jacobian`` are batched over leading axes: ``x`` has shape ``(..., dim)``, ``u`` shape
    ``(..., input_dim)`` or ``None`` (no input, or zero input for a driven map). ``jacobian`` returns
    ``(..., dim, dim)``. ``namespaces`` names the array libraries (``"numpy"``, ``"torch"``) whose arrays
    ``step`` and ``jacobian`` accept; ``numba_kernels`` returns kernels for the numba backend or None.

    Optionally a map provides its parameter Jacobian ``∂f/∂θ`` (which makes GGN products possible
    without autodiff, see :func:`lyapkit.map_ggn`): it lists the parameters in
    ``jacobian_parameters`` and implements :meth:`lyapkit.Map.parameter_jacobian`;
    :meth:`lyapkit.Map.parameter_jvp` and :meth:`lyapkit.Map.parameter_vjp` go through that dense
    Jacobian unless the map overrides them.

    Attributes
    ----------
    name : str
        A label for reports.
    dim, input_dim : int
        Dimensions of the state ``x`` and of the input ``u`` (0: autonomous).
    jacobian_method : {"analytic", "autodiff", "finite-difference"}
        How the Jacobian is computed.
    namespaces : frozenset of str
        The array libraries whose arrays the map accepts.
    period : float or None
        Period of each coordinate for maps on a torus (differences are wrapped), or None.
    jacobian_parameters : tuple of str
        Parameters whose Jacobian ``∂f/∂θ`` the map provides (empty: none).

    See Also
    --------
    lyapkit.from_numpy, lyapkit.from_numba, lyapkit.from_torch : Maps from plain functions.
    lyapkit.lyapunov_spectrum : The Lyapunov spectrum of a map.

    Examples
    --------
    A map needs ``dim``, ``step`` and ``jacobian``; ``x → 2x`` has the exponent ``ln 2``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> class Doubling(lk.Map):
    ...     dim = 1
    ...     def step(self, x, u=None):
    ...         return 2.0 * x
    ...     def jacobian(self, x, u=None):
    ...         return 2.0 * np.ones(x.shape + (1,))
    >>> res = lk.lyapunov_spectrum(Doubling(), steps=20, seed=0, backend="numpy")
    >>> round(float(res.exponents[0]), 3)
    0.693
    """

    name: str = "map"
    dim: int
    input_dim: int = 0
    #: How the Jacobian is computed: "analytic", "autodiff" or "finite-difference".
    jacobian_method: str = "analytic"
    namespaces: frozenset[str] = frozenset({"numpy", "torch"})
    # Period of each coordinate for maps on a torus (differences are wrapped), or None
    # (a plain comment: the class docstring's Attributes section documents it).
    period: float | None = None
    #: Parameters whose Jacobian ``∂f/∂θ`` the map provides
    #: (:meth:`lyapkit.Map.parameter_jacobian`), if any.
    jacobian_parameters: tuple[str, ...] = ()

    @abc.abstractmethod
    def step(self, x: Any, u: Any = None) -> Any:
        """Return ``f(x, u)``.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The next states ``f(x, u)``, shape ``(..., dim)``, in the array library of ``x``.
        """

    @abc.abstractmethod
    def jacobian(self, x: Any, u: Any = None) -> Any:
        """Return ``∂f/∂x (x, u)`` with shape ``(..., dim, dim)``.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The state Jacobians, shape ``(..., dim, dim)``: ``J[..., i, j] = ∂f_i/∂x_j``.
        """

    def step_and_jacobian(self, x: Any, u: Any = None) -> tuple[Any, Any]:
        """Return ``(f(x, u), ∂f/∂x (x, u))``; maps override this to share work.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        tuple
            The next states ``(..., dim)`` and the Jacobians ``(..., dim, dim)``.
        """
        return self.step(x, u), self.jacobian(x, u)

    def parameters(self) -> dict[str, Any]:
        """The map's parameters by name.

        Returns
        -------
        dict
            ``{name: value}`` (floats and float64 arrays); empty for a map without parameters.
        """
        return {}

    def prepare(self) -> None:  # noqa: B027 (a hook; most maps need nothing)
        """Called at the start of every lyapkit computation; maps that cache converted parameters
        refresh them here."""

    def initial_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random initial state of shape ``(dim,)`` in the map's typical domain.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness.

        Returns
        -------
        numpy.ndarray
            A state of shape ``(dim,)``; here uniform in ``[−0.5, 0.5)``.
        """
        return rng.uniform(-0.5, 0.5, self.dim)

    def numba_kernels(self) -> NumbaKernels | None:
        """Kernels for the numba backend, or None when the map has none.

        Returns
        -------
        lyapkit.NumbaKernels or None
            The jitted kernels and their parameters; None here (no numba backend for the map).
        """
        return None

    def parameter_shapes(self, names: Sequence[str] | None = None) -> dict[str, tuple[int, ...]]:
        """Shapes of the parameters ``names`` (default: all of ``jacobian_parameters``), in order.

        The flat parameter axis of :meth:`lyapkit.Map.parameter_jacobian` holds these parameters
        in this order, each flattened row-major.

        Parameters
        ----------
        names : sequence of str or str, optional
            The selected parameters (a single name is accepted); default ``jacobian_parameters``.

        Returns
        -------
        dict
            ``{name: shape}`` in the order of the selection.

        Raises
        ------
        NotImplementedError
            For a map without a parameter Jacobian (empty ``jacobian_parameters``).
        ValueError
            For an unknown, repeated or empty selection.
        """
        if not self.jacobian_parameters:
            raise NotImplementedError(
                f"{self!r} provides no parameter Jacobian ∂f/∂θ (its jacobian_parameters is "
                "empty), so it has no GGN products without autodiff; built-in maps with one: "
                "WCRNNMap. For other maps compute curvature by torch autodiff "
                "(lyapkit.curvature, torch.func)"
            )
        names = self.jacobian_parameters if names is None else _names(names)
        unknown = [name for name in names if name not in self.jacobian_parameters]
        if unknown or len(set(names)) != len(names) or not names:
            raise ValueError(
                f"parameters must name distinct parameters of {self!r} that have a Jacobian, "
                f"{list(self.jacobian_parameters)}; got {list(names)}"
            )
        values = self.parameters()
        return {name: tuple(np.shape(values[name])) for name in names}

    def parameter_jacobian(self, x: Any, u: Any = None, names: Sequence[str] | None = None) -> Any:
        """``∂f/∂θ (x, u)`` with shape ``(..., dim, P)``.

        Column block ``p`` holds ``∂f/∂θ_p`` of the ``p``-th parameter in ``names`` (default:
        ``jacobian_parameters``), flattened row-major; see :meth:`lyapkit.Map.parameter_shapes`.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: zero input.
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``∂f/∂θ``, shape ``(..., dim, P)`` with ``P`` the total size of the selection.

        Raises
        ------
        NotImplementedError
            For a map without a parameter Jacobian, or one that lists ``jacobian_parameters``
            but does not implement this method.
        ValueError
            For an unknown, repeated or empty selection.
        """
        self.parameter_shapes(names)  # raises for a map without a parameter Jacobian
        raise NotImplementedError(
            f"{type(self).__name__} lists jacobian_parameters but implements no parameter_jacobian"
        )

    def parameter_jvp(self, x: Any, u: Any, V: Any, names: Sequence[str] | None = None) -> Any:
        """``(∂f/∂θ)(x, u) V`` with shape ``(..., dim, k)``, for directions ``V`` (P, k).

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor or None
            Inputs, shape ``(..., input_dim)``; None: zero input.
        V : numpy.ndarray or torch.Tensor
            ``k`` parameter directions, shape ``(P, k)`` (the flat layout of
            :meth:`lyapkit.Map.parameter_shapes`).
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The state perturbations ``(∂f/∂θ) V``, shape ``(..., dim, k)``.
        """
        return self.parameter_jacobian(x, u, names) @ V

    def parameter_vjp(self, x: Any, u: Any, L: Any, names: Sequence[str] | None = None) -> Any:
        """``Σ_b (∂f/∂θ)(x_b, u_b)ᵀ L_b`` with shape ``(P, k)``, for ``L`` (..., dim, k).

        Summed over the batch axes ``b``: the parameters are shared by all batch elements.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor or None
            Inputs, shape ``(..., input_dim)``; None: zero input.
        L : numpy.ndarray or torch.Tensor
            ``k`` cotangents of the next state, shape ``(..., dim, k)``.
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The parameter cotangents ``Σ_b (∂f/∂θ)ᵀ L_b``, shape ``(P, k)``.
        """
        JtL = self.parameter_jacobian(x, u, names).mT @ L  # (..., P, k)
        return JtL.reshape((math.prod(JtL.shape[:-2]),) + tuple(JtL.shape[-2:])).sum(0)

    def __repr__(self) -> str:
        extra = "" if self.input_dim == 0 else f", input_dim={self.input_dim}"
        return f"{type(self).__name__}(dim={self.dim}{extra}, jacobian={self.jacobian_method!r})"


class ArrayMap(Map):
    """A map whose equations are written once against an array namespace (numpy or torch).

    Subclasses store their parameters with :meth:`_set_params` and implement ``_step(xp, p, x, u)``
    and ``_jacobian(xp, p, x, u)`` (optionally ``_step_and_jacobian``), where ``p`` holds the
    parameters converted to the namespace, dtype and device of ``x``.

    A subclass whose parameters act row by row — ``∂f_i/∂θ_kj = δ_ik d_i z_j`` for a matrix
    ``θ`` (e.g. ``z = x`` for a recurrent weight), ``∂f_i/∂θ_k = δ_ik d_i`` for a vector
    (``z = 1``) — lists them in ``jacobian_parameters`` and implements
    ``_parameter_factors(xp, p, x, u)`` returning ``{name: (d (..., dim), z (..., q))}``; the
    parameter Jacobian and its products follow from the factors, at ``O(dim·q)`` per product
    and direction rather than ``O(dim²·q)``::

        jvp:  ((∂f/∂θ) V)_i        = d_i Σ_j V_ij z_j
        vjp:  (Σ_b (∂f/∂θ)ᵀ L)_kj  = Σ_b d_bk L_bk z_bj
    """

    def _set_params(self, **params: Any) -> None:
        self._params = {
            name: float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
            for name, v in params.items()
        }
        self._converted: dict[tuple, dict[str, Any]] = {}

    def parameters(self) -> dict[str, Any]:
        """The map's parameters by name.

        Returns
        -------
        dict
            ``{name: value}``: a copy of the stored floats and float64 arrays.
        """
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
        """Return ``f(x, u)``, computed in the array library, dtype and device of ``x``.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The next states, shape ``(..., dim)``.
        """
        return self._step(namespace_of(x), self._params_like(x), x, self._zero_input(x, u))

    def jacobian(self, x: Any, u: Any = None) -> Any:
        """Return the analytic ``∂f/∂x (x, u)``, in the array library, dtype and device of ``x``.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The state Jacobians, shape ``(..., dim, dim)``: ``J[..., i, j] = ∂f_i/∂x_j``.
        """
        return self._jacobian(namespace_of(x), self._params_like(x), x, self._zero_input(x, u))

    def step_and_jacobian(self, x: Any, u: Any = None) -> tuple[Any, Any]:
        """Return ``(f(x, u), ∂f/∂x (x, u))``, sharing the work where the map can.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: no input (zero input for a driven map).

        Returns
        -------
        tuple
            The next states ``(..., dim)`` and the Jacobians ``(..., dim, dim)``.
        """
        xp, p, u = namespace_of(x), self._params_like(x), self._zero_input(x, u)
        return self._step_and_jacobian(xp, p, x, u)

    def _step_and_jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> tuple[Any, Any]:
        return self._step(xp, p, x, u), self._jacobian(xp, p, x, u)

    def _selected_factors(self, x: Any, u: Any, names: Sequence[str] | None) -> list[tuple]:
        """``(d, z)`` of each selected parameter, in order (see the class docstring)."""
        shapes = self.parameter_shapes(names)
        xp, p, u = namespace_of(x), self._params_like(x), self._zero_input(x, u)
        factors = self._parameter_factors(xp, p, x, u)
        return [factors[name] for name in shapes]

    def parameter_jacobian(self, x: Any, u: Any = None, names: Sequence[str] | None = None) -> Any:
        """``∂f/∂θ (x, u)`` with shape ``(..., dim, P)``, built from the row-local factors.

        ``∂f_i/∂θ_kj = δ_ik d_i z_j``; column block ``p`` holds the ``p``-th selected parameter,
        flattened row-major (:meth:`lyapkit.Map.parameter_shapes`).

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor, optional
            Inputs, shape ``(..., input_dim)``; None: zero input.
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``∂f/∂θ``, shape ``(..., dim, P)``.

        Raises
        ------
        NotImplementedError
            For a map without a parameter Jacobian (empty ``jacobian_parameters``).
        ValueError
            For an unknown, repeated or empty selection.
        """
        xp, n, blocks = namespace_of(x), self.dim, []
        eye = xp.eye(n, dtype=x.dtype, device=x.device)[:, :, None]
        for d, z in self._selected_factors(x, u, names):
            block = d[..., :, None, None] * eye * z[..., None, None, :]  # [i, k, j] = δ_ik d_i z_j
            blocks.append(block.reshape(tuple(block.shape[:-2]) + (n * z.shape[-1],)))
        return xp.concatenate(blocks, -1)

    def parameter_jvp(self, x: Any, u: Any, V: Any, names: Sequence[str] | None = None) -> Any:
        """``(∂f/∂θ)(x, u) V`` with shape ``(..., dim, k)``, without forming ``∂f/∂θ``.

        ``((∂f/∂θ) V)_i = d_i Σ_j V_ij z_j`` per parameter, at ``O(dim·q)`` per direction.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor or None
            Inputs, shape ``(..., input_dim)``; None: zero input.
        V : numpy.ndarray or torch.Tensor
            ``k`` parameter directions, shape ``(P, k)``.
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``(∂f/∂θ) V``, shape ``(..., dim, k)``.

        Raises
        ------
        NotImplementedError
            For a map without a parameter Jacobian (empty ``jacobian_parameters``).
        ValueError
            For an unknown, repeated or empty selection.
        """
        xp, n, k = namespace_of(x), self.dim, V.shape[-1]
        out, offset = 0.0, 0
        for d, z in self._selected_factors(x, u, names):
            q = z.shape[-1]
            block = xp.moveaxis(V[offset : offset + n * q].reshape(n, q, k), 1, 0)
            Vz = (z @ block.reshape(q, n * k)).reshape(tuple(z.shape[:-1]) + (n, k))
            out, offset = out + d[..., :, None] * Vz, offset + n * q
        return out

    def parameter_vjp(self, x: Any, u: Any, L: Any, names: Sequence[str] | None = None) -> Any:
        """``Σ_b (∂f/∂θ)(x_b, u_b)ᵀ L_b`` with shape ``(P, k)``, without forming ``∂f/∂θ``.

        ``(Σ_b (∂f/∂θ)ᵀ L)_kj = Σ_b d_bk L_bk z_bj`` per parameter, summed over the batch axes.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor
            States, shape ``(..., dim)``.
        u : numpy.ndarray or torch.Tensor or None
            Inputs, shape ``(..., input_dim)``; None: zero input.
        L : numpy.ndarray or torch.Tensor
            ``k`` cotangents of the next state, shape ``(..., dim, k)``.
        names : sequence of str or str, optional
            The selected parameters; default ``jacobian_parameters``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The parameter cotangents, shape ``(P, k)``.

        Raises
        ------
        NotImplementedError
            For a map without a parameter Jacobian (empty ``jacobian_parameters``).
        ValueError
            For an unknown, repeated or empty selection.
        """
        xp, n, k = namespace_of(x), self.dim, L.shape[-1]
        grads = []
        for d, z in self._selected_factors(x, u, names):
            dL, q = d[..., :, None] * L, z.shape[-1]
            lead = tuple(dL.shape[:-2])
            batch = math.prod(lead)
            z = xp.broadcast_to(z, lead + (q,)).reshape(batch, q)
            g = (dL.reshape(batch, n * k).T @ z).reshape(n, k, q)  # [i,r,j] = Σ_b d_bi L_bir z_bj
            grads.append(xp.moveaxis(g, 2, 1).reshape(n * q, k))
        return xp.concatenate(grads, 0)

    def _parameter_factors(self, xp: Any, p: dict, x: Any, u: Any) -> dict[str, tuple[Any, Any]]:
        """``{name: (d, z)}`` of the row-local parameters (subclasses with a parameter Jacobian)."""
        raise NotImplementedError(f"{type(self).__name__} implements no _parameter_factors")

    @abc.abstractmethod
    def _step(self, xp: Any, p: dict, x: Any, u: Any) -> Any: ...

    @abc.abstractmethod
    def _jacobian(self, xp: Any, p: dict, x: Any, u: Any) -> Any: ...


def check_period(period: Any, name: str = "period") -> float | None:
    """``period`` as a float, or None; a ValueError naming ``name`` unless it is None or a
    positive finite number (the period of the coordinates of a map on a torus)."""
    if period is None:
        return None
    if (
        isinstance(period, bool)
        or not isinstance(period, (int, float, np.integer, np.floating))
        or not 0 < period < math.inf
    ):
        raise ValueError(
            f"{name} must be a positive finite number (the period of the coordinates of a map "
            f"on a torus) or None, got {period!r}"
        )
    return float(period)


def matrix(xp: Any, rows: list[list[Any]]) -> Any:
    """Stack a nested list of batched scalars ``rows[i][j]`` into a ``(..., n, m)`` array."""
    return xp.stack([xp.stack(row, -1) for row in rows], -2)


def _names(names: Sequence[str] | str) -> tuple[str, ...]:
    """A selection of parameter names as a tuple (a single name is accepted)."""
    return (names,) if isinstance(names, str) else tuple(names)
