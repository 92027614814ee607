"""GGN curvature of a map's readouts without autodiff: forward sensitivities and adjoint sweeps.

For a map ``x_{t+1} = f(x_t, u_t; θ)`` that provides its parameter Jacobian ``∂f/∂θ``
(:meth:`lyapkit.Map.parameter_jacobian`; built in: :class:`lyapkit.WCRNNMap`), linear readouts
``y_t = C x_t + c`` of every ensemble member and the data-set mean loss ``L = (1/N) Σ ℓ`` (see
:mod:`lyapkit.losses`), the Generalized Gauss–Newton matrix is::

    G = (1/N) Σ_{members, outputs t} J_tᵀ H_ℓ(y_t) J_t,     J_t = ∂y_t/∂θ = C S_t,
    S_{t+1} = J^x_t S_t + ∂f/∂θ (x_t, u_t),   S_0 = 0        (J^x_t = ∂f/∂x (x_t, u_t))

with ``H_ℓ = 2 I`` for ``mse`` (``ℓ = (y − ŷ)²`` per element) and ``H_ℓ = diag(p) − p pᵀ``,
``p = softmax(y)``, for ``cross_entropy`` (``ℓ = −log p_c`` per output vector); ``N`` counts the
terms. ``G`` does not depend on the targets. The backends compute (no autodiff, no dense
per-step Jacobians in ``θ``)::

    G v:  forward tangent  s_{t+1} = J^x_t s_t + (∂f/∂θ)_t v,  w_t = (1/N) H_ℓ(y_t) C s_t
          adjoint sweep    λ_t = J^xᵀ_t λ_{t+1} + Cᵀ w_t,  G v = Σ_t (∂f/∂θ)_tᵀ λ_{t+1}
    G:    full sensitivities S_t (n × P per member), G = Σ_t (C S_t)ᵀ (1/N) H_ℓ (C S_t)

A product costs about three trajectory passes of ``O(n²)`` per step and member; the dense matrix
``O(n² P)`` per step and member. Full Hessians (the GGN plus the second-order term of ``f``) need
torch autodiff (``lyapkit.curvature``).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from lyapkit._array import to_numpy
from lyapkit.backend import GGN_AUTODIFF_HINT, Backend, BackendError, GGNPlan, get_backend
from lyapkit.maps.base import Map

log = logging.getLogger(__name__)

LOSSES = ("mse", "cross_entropy")
OUTPUTS = ("last", "all")
#: ``eigenvalues`` decomposes the dense matrix up to this size, and uses Lanczos (eigsh) beyond.
DENSE_EIGEN_MAX = 256


class MapGGN:
    """The GGN matrix ``G = (1/N) Σ J_yᵀ H_ℓ J_y`` of a map's readouts (made by :func:`map_ggn`).

    Vectors live on the selected parameters flattened in order, each row-major
    (``parameter_names``, ``parameter_shapes``, :meth:`unflatten`); arrays are float64 numpy.
    Every product re-runs the trajectory on the backend, so the operator holds no large state.

    Attributes
    ----------
    system : Map
        The map.
    plan : GGNPlan
        Initial states, inputs, readout, loss and outputs.
    backend : Backend
        The backend that computes the products.
    parameter_shapes : dict of str to tuple
        Shapes of the selected parameters, in order.
    """

    def __init__(
        self,
        system: Map,
        plan: GGNPlan,
        backend: Backend,
        parameter_shapes: dict[str, tuple[int, ...]],
    ):
        self.system, self.plan, self.backend = system, plan, backend
        self.parameter_shapes = dict(parameter_shapes)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the selected parameters, in the order of the flat vectors."""
        return tuple(self.parameter_shapes)

    @property
    def size(self) -> int:
        """``P``, the number of selected parameter entries."""
        return self.plan.size

    @property
    def shape(self) -> tuple[int, int]:
        """``(P, P)``."""
        return (self.size, self.size)

    def unflatten(self, v: Any) -> dict[str, np.ndarray]:
        """Split a flat vector ``(P,)`` into a dict of arrays with the parameters' shapes."""
        v = self._vectors(v, 1)
        ends = np.cumsum([math.prod(shape) for shape in self.parameter_shapes.values()])
        return {
            name: part.reshape(shape)
            for (name, shape), part in zip(
                self.parameter_shapes.items(), np.split(v, ends[:-1]), strict=True
            )
        }

    def matvec(self, v: Any) -> np.ndarray:
        """``G v`` for ``v`` of shape ``(P,)``."""
        return self.matmat(self._vectors(v, 1)[:, None])[:, 0]

    def matmat(self, V: Any) -> np.ndarray:
        """``G V`` for ``V`` of shape ``(P, k)`` (one forward and one adjoint sweep for all k)."""
        V = self._vectors(V, 2)
        if V.shape[1] == 0:
            return np.zeros(V.shape)
        return self._checked(self.backend.ggn(self.system, self.plan, V))

    def dense(self) -> np.ndarray:
        """``G`` as a symmetric ``(P, P)`` array, from the full forward sensitivities."""
        G = self._checked(self.backend.ggn(self.system, self.plan))
        return (G + G.T) / 2

    def as_linear_operator(self) -> Any:
        """A symmetric ``scipy.sparse.linalg.LinearOperator`` in float64."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(
            self.shape,
            matvec=self.matvec,
            rmatvec=self.matvec,
            matmat=self.matmat,
            rmatmat=self.matmat,
            dtype=np.float64,
        )

    def eigenvalues(self, k: int = 1) -> np.ndarray:
        """The ``k`` largest eigenvalues, descending.

        Dense ``eigh`` when ``P ≤ DENSE_EIGEN_MAX`` or ``k ≥ P/2``; otherwise implicitly restarted
        Lanczos (``scipy.sparse.linalg.eigsh``, largest algebraic, seeded start vector).
        """
        P = self.size
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= P:
            raise ValueError(f"k must be an integer in [1, {P}], got {k!r}")
        if P <= DENSE_EIGEN_MAX or 2 * k >= P:
            log.debug("GGN eigenvalues: dense eigh of a %d×%d matrix", P, P)
            return np.linalg.eigvalsh(self.dense())[::-1][:k].copy()
        from scipy.sparse.linalg import eigsh

        log.debug("GGN eigenvalues: eigsh for the top %d of %d", k, P)
        v0 = np.random.default_rng(0).standard_normal(P)
        values = eigsh(self.as_linear_operator(), k=k, which="LA", v0=v0, return_eigenvectors=False)
        return np.sort(values)[::-1]

    def _vectors(self, V: Any, ndim: int) -> np.ndarray:
        V = np.asarray(to_numpy(V), dtype=np.float64)
        expected = "(P,)" if ndim == 1 else "(P, k)"
        if V.ndim != ndim or V.shape[0] != self.size:
            raise ValueError(
                f"expected an array of shape {expected} with P = {self.size}, got {V.shape}"
            )
        return np.ascontiguousarray(V)

    def _checked(self, out: np.ndarray) -> np.ndarray:
        if not np.isfinite(out).all():
            warnings.warn(
                "the GGN product is not finite: the trajectory or its sensitivities overflowed",
                RuntimeWarning,
                stacklevel=3,
            )
        return out

    def __repr__(self) -> str:
        return (
            f"MapGGN(P={self.size}, parameters={list(self.parameter_names)}, "
            f"loss={self.plan.loss!r}, outputs={'all' if self.plan.all_outputs else 'last'!r}, "
            f"members={self.plan.x0.shape[0]}, steps={self.plan.steps}, "
            f"backend={self.backend.name!r}, system={self.system!r})"
        )


def _float_array(name: str, value: Any) -> np.ndarray:
    a = np.asarray(to_numpy(value), dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return a


def map_ggn(
    system: Map,
    x0: Any,
    inputs: Any,
    readout: Any,
    *,
    readout_bias: Any = None,
    loss: Literal["mse", "cross_entropy"] = "mse",
    outputs: Literal["last", "all"] = "last",
    parameters: Sequence[str] = ("W", "V", "b"),
    backend: str | Backend = "auto",
) -> MapGGN:
    """The GGN matrix of a map's readouts, as an operator computed without autodiff.

    ``G = (1/N) Σ_{members, outputs t} (C S_t)ᵀ H_ℓ(y_t) (C S_t)`` with the forward sensitivities
    ``S_{t+1} = J_t S_t + ∂f/∂θ (x_t, u_t)``, ``S_0 = 0``, and the readouts ``y_t = C x_t + c``
    (see :mod:`lyapkit.sensitivity`); ``N`` is the number of loss terms, so that ``G`` is the GGN
    of the data-set mean loss. ``G`` does not depend on the targets, which are not needed.

    Parameters
    ----------
    system : Map
        A map with a parameter Jacobian (``system.jacobian_parameters`` not empty), e.g.
        :class:`lyapkit.WCRNNMap`.
    x0 : (n,) or (E, n) array
        Initial states, one per ensemble member (or one shared by all).
    inputs : (T, m) or (E, T, m) array
        Inputs of the ``T`` steps, one sequence per member (or one shared by all); ``m`` is
        ``system.input_dim`` (pass shape ``(T, 0)`` for a map without inputs).
    readout : (o, n) array
        ``C``.
    readout_bias : (o,) array, optional
        ``c`` (zero when omitted; it matters for ``cross_entropy`` only).
    loss : {"mse", "cross_entropy"}
        ``mse``: ``(y − ŷ)²`` per output element; ``cross_entropy``: ``−log softmax(y)_c`` per
        output vector. Other losses need torch autodiff (``lyapkit.curvature``).
    outputs : {"last", "all"}
        Read out after the last step only (``y_T``), or after every step (``y_1 … y_T``).
    parameters : sequence of str
        The parameters ``θ``, in the order of the flat vectors (names in
        ``system.jacobian_parameters``; for the WCRNN any of ``R, W, gamma, V, b``).
    backend : str or Backend
        ``"auto"`` (numba when installed and the map has its kernels, else numpy), ``"numpy"``,
        ``"numba"``, or a backend implementing ``Backend.ggn``.

    Returns
    -------
    MapGGN
        ``matvec``, ``matmat``, ``dense``, ``as_linear_operator`` and ``eigenvalues``.

    Raises
    ------
    NotImplementedError
        The map provides no parameter Jacobian.
    ValueError
        Unknown parameters, loss or outputs, or arrays of the wrong shape.
    BackendError
        The backend cannot compute GGN products (e.g. torch: it leaves curvature to autodiff).
    """
    if not isinstance(system, Map):
        raise TypeError(f"system must be a lyapkit Map, got {type(system).__name__}")
    system.prepare()
    shapes = system.parameter_shapes(parameters)
    if loss not in LOSSES:
        raise ValueError(
            f"loss must be one of {LOSSES}, got {loss!r}; for other losses use torch autodiff "
            "(lyapkit.curvature)"
        )
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    n, m = system.dim, system.input_dim
    X0 = _float_array("x0", x0)
    if X0.ndim not in (1, 2) or X0.shape[-1] != n:
        raise ValueError(f"x0 must have shape ({n},) or (ensemble, {n}), got {X0.shape}")
    U = _float_array("inputs", inputs)
    if U.ndim not in (2, 3) or U.shape[-1] != m or U.shape[-2] < 1:
        raise ValueError(
            f"inputs must have shape (T, {m}) or (ensemble, T, {m}) with T >= 1, got {U.shape}"
        )
    X0, U = (X0[None] if X0.ndim == 1 else X0), (U[None] if U.ndim == 2 else U)
    if X0.shape[0] != U.shape[0] and 1 not in (X0.shape[0], U.shape[0]):
        raise ValueError(f"x0 has {X0.shape[0]} members but inputs has {U.shape[0]} sequences")
    E = max(X0.shape[0], U.shape[0])
    C = _float_array("readout", readout)
    if C.ndim != 2 or C.shape[1] != n or C.shape[0] < 1:
        raise ValueError(f"readout must have shape (outputs, {n}), got {C.shape}")
    c = np.zeros(C.shape[0]) if readout_bias is None else _float_array("readout_bias", readout_bias)
    if c.shape != (C.shape[0],):
        raise ValueError(f"readout_bias must have shape ({C.shape[0]},), got {c.shape}")
    plan = GGNPlan(
        x0=np.ascontiguousarray(np.broadcast_to(X0, (E, n))),
        inputs=np.ascontiguousarray(np.broadcast_to(U, (E,) + U.shape[1:])),
        parameters=tuple(shapes),
        size=sum(math.prod(shape) for shape in shapes.values()),
        readout=np.ascontiguousarray(C),
        readout_bias=c,
        loss=loss,
        all_outputs=outputs == "all",
    )
    try:
        chosen = get_backend(backend, system, "ggn")
    except BackendError as err:
        raise BackendError(f"{err}. {GGN_AUTODIFF_HINT}") from None
    log.debug("map_ggn: %s on the %s backend", system, chosen.name)
    return MapGGN(system, plan, chosen, shapes)
