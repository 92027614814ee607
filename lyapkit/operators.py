"""Linear operators on a model's flattened parameters: the one interface of lyapkit's curvature
matrices.

:class:`lyapkit.LinearOperator` is the base of the Hessian and the GGN by autodiff
(:class:`lyapkit.CurvatureOperator`), the GGN of a map's readouts (:class:`lyapkit.MapGGN`) and
Adam's preconditioned curvature (:class:`lyapkit.PreconditionedOperator`), after the pattern of
curvlinops (Dangel et al.): a subclass writes one product, ``_matmat``, in its own arrays (float64
numpy, or torch tensors of its dtype on its device); the base checks the vectors, converts them,
and gives every operator the same attributes and the same ways to use it, one each:

========================  ======================================================================
``A @ V``                 ``matvec`` for ``(P,)``, ``matmat`` for ``(P, k)``; numpy in, float64
                          numpy out; a torch tensor in, a tensor of its dtype and device out
``A + B``, ``c * A``      sums, differences and scalings (lazy: each product is the operands')
``A.adjoint()``           the adjoint (the operator itself: every curvature matrix is symmetric)
``A.to_scipy()``          a float64 ``scipy.sparse.linalg.LinearOperator``
``A.dense()``             the float64 ``(P, P)`` matrix, symmetrised
``A.eigenpairs(k)``       extreme eigenpairs (LOBPCG or Lanczos, ``lyapkit.eigensolvers``)
``A.trace()``             Hutch++ (``lyapkit.hutchpp``)
``A.spectral_density()``  stochastic Lanczos quadrature (``lyapkit.slq``)
========================  ======================================================================
"""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lyapkit._array import is_torch_tensor, to_numpy

if TYPE_CHECKING:
    from lyapkit.eigensolvers import Eigenpairs
    from lyapkit.slq import SpectralDensity

__all__ = ["MAX_DENSE", "LinearOperator", "PreconditionedOperator"]

#: Largest number of rows and columns :meth:`lyapkit.LinearOperator.dense` builds unless told otherwise.
MAX_DENSE = 4096


class LinearOperator(abc.ABC):
    """A linear operator ``A`` on the ``P`` flattened entries of a model's parameters.

    Subclasses call ``_set_parameters`` and write ``_matmat``, the
    product ``A V`` of a ``(P, k)`` block in the operator's own arrays: float64 numpy when
    ``device`` is None, else torch tensors of ``dtype`` on ``device``.

    Attributes
    ----------
    parameter_names : list of str
        The parameters the vectors live on, in the order of the flat vectors.
    parameter_shapes : list of tuple of int
        Their shapes (each flattened row-major).
    num_params : int
        ``P``.
    kind : str
        What the operator is: ``"ggn"``, ``"hessian"``, ``"preconditioned ggn"``, ``"operator"``…
    dtype : numpy.dtype or torch.dtype
        The dtype products are computed in.
    device : torch.device or None
        Where products are computed (None: numpy, on the CPU).
    symmetric : bool
        Whether ``A = Aᵀ`` (true of every curvature matrix).

    See Also
    --------
    lyapkit.CurvatureOperator : Hessian and GGN of a torch model by autodiff.
    lyapkit.MapGGN : GGN of a map's readouts by forward sensitivities.
    lyapkit.PreconditionedOperator : ``P^{-1/2} A P^{-1/2}``.

    Examples
    --------
    A diagonal operator, its sums and scalings:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> class Diagonal(lk.LinearOperator):
    ...     def __init__(self, d):
    ...         self.d = np.asarray(d, dtype=float)
    ...         self._set_parameters(["d"], [self.d.shape], kind="diagonal")
    ...     def _matmat(self, V):
    ...         return self.d[:, None] * V
    >>> A = Diagonal([3.0, 1.0, 2.0])
    >>> A @ np.ones(3)
    array([3., 1., 2.])
    >>> (2 * A - A).dense().diagonal()
    array([3., 1., 2.])
    >>> A.eigenpairs(k=2).eigenvalues, round(A.trace(), 9)
    (array([3., 2.]), 6.0)
    """

    parameter_names: list[str]
    parameter_shapes: list[tuple[int, ...]]
    num_params: int
    kind: str
    dtype: Any
    device: Any
    symmetric: bool = True
    #: Size up to which :meth:`lyapkit.LinearOperator.eigenpairs` decomposes the dense matrix
    #: (beyond ``3k + 8``): for operators whose dense matrix costs about one product.
    dense_eigen_max: int = 0

    def _set_parameters(
        self,
        names: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        *,
        kind: str,
        dtype: Any = np.float64,
        device: Any = None,
    ) -> None:
        """Set the attributes every operator has (``device=None``: a numpy operator)."""
        self.parameter_names = list(names)
        self.parameter_shapes = [tuple(int(n) for n in shape) for shape in shapes]
        self.num_params = sum(math.prod(shape) for shape in self.parameter_shapes)
        self.kind, self.dtype, self.device = kind, dtype, device

    @abc.abstractmethod
    def _matmat(self, V: Any) -> Any:
        """``A V`` for a ``(P, k)`` block in the operator's own arrays (``k ≥ 1``)."""

    def _rmatmat(self, V: Any) -> Any:
        """``Aᵀ V`` (the product itself for a symmetric operator)."""
        if self.symmetric:
            return self._matmat(V)
        raise NotImplementedError(f"{type(self).__name__} has no adjoint product")

    # --- products -------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(P, P)``."""
        return (self.num_params, self.num_params)

    def matvec(self, v: Any) -> Any:
        """``A v`` for ``v`` of shape ``(P,)``.

        Parameters
        ----------
        v : (P,) array_like or torch.Tensor
            A vector on the flattened parameters.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``(P,)``: float64 numpy for a numpy (or array_like) ``v``, a tensor of ``v``'s dtype
            and device for a tensor.

        Raises
        ------
        ValueError
            ``v`` does not have shape ``(P,)``.
        """
        return self._apply(v, 1, self._matmat)

    def matmat(self, V: Any) -> Any:
        """``A V`` for ``V`` of shape ``(P, k)``.

        Parameters
        ----------
        V : (P, k) array_like or torch.Tensor
            ``k`` vectors on the flattened parameters, as columns.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            ``(P, k)``, of the kind of ``V`` as in :meth:`lyapkit.LinearOperator.matvec`.

        Raises
        ------
        ValueError
            ``V`` does not have shape ``(P, k)``.
        """
        return self._apply(V, 2, self._matmat)

    def __matmul__(self, V: Any) -> Any:
        return self.matvec(V) if len(_shape(V)) == 1 else self.matmat(V)

    def _apply(self, V: Any, ndim: int, product: Any) -> Any:
        native = self._block(V, (ndim,))
        out = product(native) if native.shape[1] else native * 0
        return self._like(out[:, 0] if ndim == 1 else out, V)

    def _block(self, V: Any, ndims: tuple[int, ...] = (1, 2)) -> Any:
        """``V`` (``(P,)`` or ``(P, k)``, of ``ndims`` dimensions) as a ``(P, k)`` block of the
        operator's own arrays; a ValueError naming the expected shape otherwise."""
        V = V if hasattr(V, "reshape") else np.asarray(V, dtype=np.float64)
        shape = _shape(V)
        if len(shape) not in ndims or shape[0] != self.num_params:
            P = self.num_params
            expected = " or ".join(f"({P},)" if n == 1 else f"({P}, k)" for n in ndims)
            raise ValueError(f"vectors must have shape {expected} (P = {P}), got {shape}")
        return self._native(V if len(shape) == 2 else V.reshape(-1, 1))

    def _native(self, V: Any) -> Any:
        """``V`` as the operator's own arrays."""
        if self.device is None:
            return np.ascontiguousarray(to_numpy(V), dtype=np.float64)
        import torch

        return torch.as_tensor(V, dtype=self.dtype, device=self.device)

    @staticmethod
    def _like(out: Any, like: Any) -> Any:
        """``out`` as the kind of ``like``: a tensor of its device and (floating) dtype, or float64
        numpy."""
        if is_torch_tensor(like):
            import torch

            out = torch.as_tensor(out)
            dtype = like.dtype if like.is_floating_point() or like.is_complex() else out.dtype
            return out.to(dtype=dtype, device=like.device)
        return np.asarray(to_numpy(out), dtype=np.float64)

    def unflatten(self, v: Any) -> dict[str, Any]:
        """Split ``(..., P)`` into one ``(..., *shape)`` array per parameter.

        Parameters
        ----------
        v : (..., P) array_like or torch.Tensor
            Vectors on the flattened parameters.

        Returns
        -------
        dict of str to numpy.ndarray or torch.Tensor
            One array per parameter, in order (views of ``v`` where possible).

        Raises
        ------
        ValueError
            The last axis of ``v`` is not ``P`` long.
        """
        shape = _shape(v)
        if not shape or shape[-1] != self.num_params:
            raise ValueError(f"v must have shape (..., {self.num_params}), got {shape}")
        out, start = {}, 0
        for name, part in zip(self.parameter_names, self.parameter_shapes, strict=True):
            size = math.prod(part)
            out[name] = v[..., start : start + size].reshape(*shape[:-1], *part)
            start += size
        return out

    # --- algebra --------------------------------------------------------------------------------

    def __add__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, other)

    def __sub__(self, other: Any) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, _Scaled(-1.0, other))

    def __mul__(self, scale: Any) -> LinearOperator:
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
            return NotImplemented
        return _Scaled(float(scale), self)

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return _Scaled(-1.0, self)

    def __truediv__(self, scale: Any) -> LinearOperator:
        if not isinstance(scale, numbers.Real) or isinstance(scale, bool):
            return NotImplemented
        return _Scaled(1.0 / float(scale), self)

    def adjoint(self) -> LinearOperator:
        """``Aᵀ``: the operator itself when it is symmetric.

        Returns
        -------
        lyapkit.LinearOperator
            The adjoint.
        """
        return self if self.symmetric else _Adjoint(self)

    # --- conversions ----------------------------------------------------------------------------

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` taking and returning float64 numpy arrays.

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            ``(P, P)``; products in the operator's dtype.
        """
        from scipy.sparse.linalg import LinearOperator as ScipyOperator

        adjoint = self.adjoint()

        def block(op: LinearOperator) -> Any:
            return lambda X: op.matmat(np.asarray(X, dtype=np.float64).reshape(op.num_params, -1))

        return ScipyOperator(
            self.shape,
            matvec=lambda x: block(self)(x)[:, 0],
            matmat=block(self),
            rmatvec=lambda x: block(adjoint)(x)[:, 0],
            rmatmat=block(adjoint),
            dtype=np.float64,
        )

    def dense(self, max_size: int = MAX_DENSE) -> np.ndarray:
        """The whole ``(P, P)`` matrix in float64 (``P ≤ max_size``), symmetrised ``(A + Aᵀ)/2``
        when the operator is symmetric.

        Parameters
        ----------
        max_size : int, default MAX_DENSE (4096)
            Largest ``P`` built.

        Returns
        -------
        numpy.ndarray
            ``(P, P)`` float64.

        Raises
        ------
        ValueError
            ``P > max_size``.
        """
        if self.num_params > max_size:
            raise ValueError(
                f"the dense matrix would be {self.num_params}×{self.num_params}; raise max_size "
                f"(now {max_size}) to build it anyway, or use matvec / eigenpairs"
            )
        A = self._dense()
        return (A + A.T) / 2 if self.symmetric else A

    def _dense(self) -> np.ndarray:
        """The matrix from the products with the ``P`` unit vectors."""
        return self.matmat(np.eye(self.num_params))

    # --- estimators -----------------------------------------------------------------------------

    def eigenpairs(
        self,
        k: int = 1,
        *,
        which: Literal["LA", "SA", "LM"] = "LA",
        method: Literal["lobpcg", "lanczos"] | None = None,
        tol: float | None = None,
        maxiter: int = 200,
        seed: int = 0,
    ) -> Eigenpairs:
        """Extreme eigenpairs by LOBPCG (Knyazev 2001) or implicitly restarted Lanczos (ARPACK),
        dense ``eigh`` for small operators; residuals ``‖Av − λv‖ ≤ tol · max|λ|``.

        Parameters
        ----------
        k : int, default 1
            Number of eigenpairs, ``1 ≤ k ≤ P``.
        which : {"LA", "SA", "LM"}, default "LA"
            Largest algebraic (the sharpness), smallest algebraic or largest magnitude.
        method : {"lobpcg", "lanczos"}, optional
            Default: ``"lobpcg"`` for "LA" and "SA", ``"lanczos"`` for "LM".
        tol : float, optional
            Relative residual tolerance (default 1e-6 in float64, 1e-4 in float32).
        maxiter : int, default 200
            Iterations of LOBPCG (``maxiter · k`` Arnoldi updates for Lanczos).
        seed : int, default 0
            Seed of the random start vectors.

        Returns
        -------
        Eigenpairs
            ``k`` eigenvalues ordered by ``which`` and their unit eigenvectors ``(P, k)``.
        """
        from lyapkit.eigensolvers import eigenpairs

        return eigenpairs(self, k, which=which, method=method, tol=tol, maxiter=maxiter, seed=seed)

    def trace(self, num_matvecs: int = 30, *, seed: int = 0) -> float:
        """``tr A`` by Hutch++; see :func:`lyapkit.hutchpp_trace`.

        Parameters
        ----------
        num_matvecs : int, default 30
            Budget of products (``≥ 3``); exact when ``num_matvecs // 3 ≥ P``.
        seed : int, default 0
            Seed of the random sketches.

        Returns
        -------
        float
            The trace estimate.
        """
        from lyapkit.hutchpp import hutchpp_trace

        return hutchpp_trace(self.to_scipy(), num_matvecs, seed=seed)

    def spectral_density(
        self, num_probes: int = 8, lanczos_steps: int = 64, *, seed: int = 0
    ) -> SpectralDensity:
        """Spectral density by stochastic Lanczos quadrature; see :func:`lyapkit.lanczos_quadrature`.

        Parameters
        ----------
        num_probes : int, default 8
            Number of random probe vectors.
        lanczos_steps : int, default 64
            Lanczos steps per probe (at most ``P``), i.e. quadrature nodes.
        seed : int, default 0
            Seed of the probes.

        Returns
        -------
        SpectralDensity
            Nodes and weights of the quadrature, with ``kind`` this operator's kind.
        """
        from lyapkit.slq import lanczos_quadrature

        return lanczos_quadrature(
            self.to_scipy(), num_probes, lanczos_steps, seed=seed, kind=self.kind
        )


def _shape(V: Any) -> tuple[int, ...]:
    return tuple(V.shape) if hasattr(V, "shape") else np.shape(V)


class _Derived(LinearOperator):
    """An operator made from others: the parameters, dtype and device of the first."""

    def __init__(self, first: LinearOperator, kind: str, symmetric: bool):
        self._set_parameters(
            first.parameter_names,
            first.parameter_shapes,
            kind=kind,
            dtype=first.dtype,
            device=first.device,
        )
        self.symmetric = symmetric


class _Sum(_Derived):
    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.shape != b.shape:
            raise ValueError(f"operators of shapes {a.shape} and {b.shape} cannot be added")
        kind = a.kind if a.kind == b.kind else "operator"
        super().__init__(a, kind, a.symmetric and b.symmetric)
        self.a, self.b = a, b

    def _matmat(self, V: Any) -> Any:
        return self.a._matmat(V) + self.b.matmat(V)

    def _rmatmat(self, V: Any) -> Any:
        return self.a.adjoint().matmat(V) + self.b.adjoint().matmat(V)

    def __repr__(self) -> str:
        return f"({self.a!r} + {self.b!r})"


class _Scaled(_Derived):
    def __init__(self, scale: float, operator: LinearOperator):
        super().__init__(operator, operator.kind, operator.symmetric)
        self.scale, self.operator = scale, operator

    def _matmat(self, V: Any) -> Any:
        return self.scale * self.operator._matmat(V)

    def _rmatmat(self, V: Any) -> Any:
        return self.scale * self.operator._rmatmat(V)

    def __repr__(self) -> str:
        return f"{self.scale:g} * {self.operator!r}"


class _Adjoint(_Derived):
    def __init__(self, operator: LinearOperator):
        super().__init__(operator, operator.kind, False)
        self.operator = operator

    def _matmat(self, V: Any) -> Any:
        return self.operator._rmatmat(V)

    def _rmatmat(self, V: Any) -> Any:
        return self.operator._matmat(V)

    def adjoint(self) -> LinearOperator:
        return self.operator


class PreconditionedOperator(_Derived):
    """``P^{-1/2} A P^{-1/2}``: a symmetric operator ``A`` in the coordinates ``P^{1/2} θ`` of a
    positive diagonal preconditioner ``P`` (Adam's ``√v̂ + ε``, :func:`lyapkit.adam_preconditioner`).

    Parameters
    ----------
    operator : lyapkit.LinearOperator
        ``A``, symmetric.
    preconditioner : (P,) array_like or torch.Tensor
        The positive diagonal ``P``.

    Raises
    ------
    ValueError
        ``preconditioner`` is not a finite positive ``(P,)`` array.

    See Also
    --------
    lyapkit.preconditioned_sharpness : Its top eigenvalues against Adam's edge of stability.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> class Dense(lk.LinearOperator):
    ...     def __init__(self, M):
    ...         self.M = M
    ...         self._set_parameters(["theta"], [(len(M),)], kind="hessian")
    ...     def _matmat(self, V):
    ...         return self.M @ V
    >>> H = Dense(np.diag([4.0, 1.0]))
    >>> lk.PreconditionedOperator(H, [4.0, 1.0]).dense()
    array([[1., 0.],
           [0., 1.]])
    """

    def __init__(self, operator: LinearOperator, preconditioner: Any):
        from lyapkit._checks import real_array

        super().__init__(operator, f"preconditioned {operator.kind}", operator.symmetric)
        diagonal = real_array(to_numpy(preconditioner), "preconditioner", 1)
        if diagonal.shape != (operator.num_params,) or np.any(diagonal <= 0):
            raise ValueError(
                f"preconditioner must be a positive ({operator.num_params},) array (Adam's "
                f"sqrt(v̂) + ε), got shape {diagonal.shape}"
                + (", with entries ≤ 0" if np.any(diagonal <= 0) else "")
            )
        self.operator = operator
        self.scale = self._native(1.0 / np.sqrt(diagonal))[:, None]

    def _matmat(self, V: Any) -> Any:
        return self.scale * self.operator._matmat(self.scale * V)

    def __repr__(self) -> str:
        return f"PreconditionedOperator({self.operator!r})"
