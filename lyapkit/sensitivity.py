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
from lyapkit.operators import LinearOperator

log = logging.getLogger(__name__)

LOSSES = ("mse", "cross_entropy")
OUTPUTS = ("last", "all")


class MapGGN(LinearOperator):
    """The GGN matrix of a map's readouts as a linear operator (made by :func:`lyapkit.map_ggn`).

    ``G = (1/N) Σ_{members, outputs t} J_tᵀ H_ℓ(y_t) J_t`` with ``J_t = C S_t`` the Jacobian of
    the readout ``y_t = C x_t + c`` in the parameters (forward sensitivities ``S_t``). A
    :class:`lyapkit.LinearOperator` whose own arrays are float64 numpy: vectors live on the
    selected parameters flattened in order, each row-major (``parameter_names``,
    ``parameter_shapes``, :meth:`lyapkit.LinearOperator.unflatten`). Every product re-runs the
    trajectory on the backend, so the operator holds no large state; :meth:`lyapkit.LinearOperator.dense`
    builds the matrix from the full sensitivities in one pass, so eigenpairs of up to
    ``dense_eigen_max`` (256) parameters are computed from it.

    Parameters
    ----------
    system : lyapkit.Map
        The map, with a parameter Jacobian.
    plan : lyapkit.GGNPlan
        Initial states, inputs, readout, loss and outputs (checked by :func:`lyapkit.map_ggn`).
    backend : lyapkit.Backend
        The backend that computes the products (``Backend.ggn``).
    parameter_shapes : dict of str to tuple of int
        Shapes of the selected parameters, in the order of the flat vectors.

    See Also
    --------
    lyapkit.map_ggn : Builds the operator from a map, initial states, inputs and a readout.
    lyapkit.CurvatureOperator : GGN and Hessian of torch models by autodiff.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> rng = np.random.default_rng(0)
    >>> system = lk.WCRNNMap(0.9 * np.eye(3), 0.3 * rng.standard_normal((3, 3)), gamma=0.1)
    >>> G = lk.map_ggn(system, np.ones(3), np.zeros((10, 0)), np.ones((1, 3)),
    ...                parameters=("W", "b"), backend="numpy")
    >>> G.shape, G.parameter_names
    ((12, 12), ['W', 'b'])
    >>> v = rng.standard_normal(G.num_params)
    >>> bool(np.allclose(G @ v, G.dense() @ v))
    True
    >>> {name: part.shape for name, part in G.unflatten(v).items()}
    {'W': (3, 3), 'b': (3,)}
    """

    dense_eigen_max = 256

    def __init__(
        self,
        system: Map,
        plan: GGNPlan,
        backend: Backend,
        parameter_shapes: dict[str, tuple[int, ...]],
    ):
        self.system, self.plan, self.backend = system, plan, backend
        self._set_parameters(list(parameter_shapes), list(parameter_shapes.values()), kind="ggn")

    def _matmat(self, V: np.ndarray) -> np.ndarray:
        """``G V`` by one forward and one adjoint sweep for all ``k`` columns."""
        return self._checked(self.backend.ggn(self.system, self.plan, V))

    def _dense(self) -> np.ndarray:
        """``G`` from the full forward sensitivities."""
        return self._checked(self.backend.ggn(self.system, self.plan))

    def _checked(self, out: np.ndarray) -> np.ndarray:
        if not np.isfinite(out).all():
            warnings.warn(
                "the GGN product is not finite: the trajectory or its sensitivities overflowed",
                RuntimeWarning,
                stacklevel=5,
            )
        return out

    def __repr__(self) -> str:
        return (
            f"MapGGN(P={self.num_params}, parameters={self.parameter_names}, "
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
    (see the ``lyapkit.sensitivity`` module); ``N`` is the number of loss terms, so that ``G`` is
    the GGN of the data-set mean loss. ``G`` does not depend on the targets, which are not needed.

    Parameters
    ----------
    system : lyapkit.Map
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
    loss : {"mse", "cross_entropy"}, default "mse"
        ``mse``: ``(y − ŷ)²`` per output element; ``cross_entropy``: ``−log softmax(y)_c`` per
        output vector. Other losses need torch autodiff (``lyapkit.curvature``).
    outputs : {"last", "all"}, default "last"
        Read out after the last step only (``y_T``), or after every step (``y_1 … y_T``).
    parameters : sequence of str, default ("W", "V", "b")
        The parameters ``θ``, in the order of the flat vectors (names in
        ``system.jacobian_parameters``; for the WCRNN any of ``R, W, gamma, V, b``).
    backend : str or lyapkit.Backend, default "auto"
        ``"auto"`` (numba when installed and the map has its kernels, else numpy; the first numba
        call compiles its kernels), ``"numpy"``, ``"numba"``, or a backend implementing
        ``Backend.ggn``.

    Returns
    -------
    MapGGN
        A :class:`lyapkit.LinearOperator` (``@``, ``dense``, ``eigenpairs``, ``to_scipy``…).

    Raises
    ------
    TypeError
        ``system`` is not a :class:`lyapkit.Map`.
    NotImplementedError
        The map provides no parameter Jacobian.
    ValueError
        Unknown parameters, loss or outputs; arrays of the wrong shape or not finite; ``x0`` and
        ``inputs`` with different numbers of members (neither 1).
    lyapkit.BackendError
        The backend cannot compute GGN products (e.g. torch: it leaves curvature to autodiff).

    See Also
    --------
    lyapkit.MapGGN : The operator returned.
    lyapkit.CurvatureOperator : GGN and Hessian of torch models (any loss) by autodiff.
    lyapkit.WCRNNMap : A map with an analytic parameter Jacobian.

    References
    ----------
    .. [1] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
       descent", Neural Computation 14(7), 1723–1738, 2002.

    Examples
    --------
    With one output and one member the GGN has rank one, so its top eigenvalue is its trace:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> rng = np.random.default_rng(0)
    >>> system = lk.WCRNNMap(0.9 * np.eye(3), 0.3 * rng.standard_normal((3, 3)), gamma=0.1,
    ...                      V=rng.standard_normal((3, 1)))
    >>> G = lk.map_ggn(system, np.zeros(3), rng.standard_normal((10, 1)), np.ones((1, 3)),
    ...                parameters=("W", "b"), backend="numpy")
    >>> G.shape
    (12, 12)
    >>> bool(np.isclose(G.eigenpairs(1).eigenvalues[0], np.trace(G.dense())))
    True

    With ``x0 = 0``, ``W = 0``, no inputs and one step, ``y = γ tanh(b)``; at ``b = 0`` the GGN
    of ``mse`` in ``b`` is ``(1/N) Jᵀ (2I) J = γ² I`` (``N = 2`` terms):

    >>> system = lk.WCRNNMap(np.eye(2), np.zeros((2, 2)), gamma=0.5)
    >>> G = lk.map_ggn(system, np.zeros(2), np.zeros((1, 0)), np.eye(2), parameters=("b",),
    ...                backend="numpy")
    >>> np.round(G.dense(), 3)
    array([[0.25, 0.  ],
           [0.  , 0.25]])
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
