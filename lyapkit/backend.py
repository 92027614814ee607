"""The backend protocol and registry.

A backend owns the hot loops. The core validates arguments and packs results; a backend runs the
tangent dynamics ``Q ← J_t Q`` with periodic QR re-orthonormalisation (or the two-trajectory twin
integration) over all ensemble members, and records the cumulative sums of ``log R_ii`` at the
requested post-transient step counts. Optional capabilities (``Backend.trajectory``: states and
Jacobians along a trajectory; ``Backend.ggn``: GGN products from parameter Jacobians;
``Backend.covariant``: covariant Lyapunov vectors by Ginelli's method) are methods with a default
that raises :class:`lyapkit.BackendError`; a backend offers one by overriding it. Built-in
backends live in the top-level ``backends`` package; third parties register a
:class:`lyapkit.Backend` subclass under the entry-point group ``lyapkit.backends``.
"""

from __future__ import annotations

import abc
import functools
import importlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lyapkit.maps.base import Map

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lyapkit.backends"
_BUILTIN = {
    "numpy": "lyapkit.backends.numpy_backend:NumpyBackend",
    "numba": "lyapkit.backends.numba_backend:NumbaBackend",
    "torch": "lyapkit.backends.torch_backend:TorchBackend",
}


def dtype_name(dtype: Any) -> Any:
    """A requested dtype as its name (``"float32"``), from a string, a numpy dtype or type, or a
    torch dtype; None stays None, and anything else is left for the backend to refuse."""
    if dtype is None or isinstance(dtype, str):
        return dtype
    if str(dtype).startswith("torch."):
        return str(dtype).removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        return dtype


@dataclass(frozen=True)
class TangentPlan:
    r"""What a backend integrates: ``transient + steps`` steps of every ensemble member.

    The input of :meth:`lyapkit.Backend.tangent` and :meth:`lyapkit.Backend.twin`. The tangent
    (QR) method [1]_ [2]_ evolves the state and an orthonormal tangent basis,

    .. math::

        x_{t+1} = f(x_t, u_t), \qquad Q \leftarrow J_t Q, \qquad
        J_t = \partial f / \partial x \, (x_t, u_t),

    and at every re-orthonormalisation factors ``Q = Q' R`` (thin QR, ``R_ii > 0``), keeps ``Q'``
    and, after the transient, adds ``log R_ii`` to the cumulative sums, so that the exponents are
    ``λ_i = Σ log R_ii / steps``. The twin method evolves ``x`` and ``y = x + δ0 q`` (``q`` the
    single column of ``basis0``) and accumulates ``log(d/δ0)``, ``d = ‖y − x‖``, pulling ``y``
    back to distance ``δ0`` along ``y − x``.

    Parameters
    ----------
    x0 : (E, n) float64
        Initial states.
    basis0 : (E, n, k) float64
        Initial orthonormal tangent bases (for the twin method, ``k = 1``: the unit direction of
        the initial separation).
    inputs : (E or 1, transient + steps, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    transient : int
        Steps evolved before averaging (state and basis).
    steps : int
        Steps averaged.
    every : int
        Re-orthonormalise (twin: renormalise) every ``every`` steps, and at the end of the transient
        and of the run.
    record_at : (R,) int64
        Ascending post-transient step counts at which the cumulative sums are recorded; each is a
        multiple of ``every`` or equals ``steps``; the last equals ``steps``.
    separation : float, default 0.0
        Twin method: the distance ``δ0`` restored at each renormalisation.
    dtype : str or None, default None
        Requested floating dtype (backends that cannot honour it raise).
    device : str or None, default None
        Requested device (backends that cannot honour it raise).

    See Also
    --------
    lyapkit.TangentRecord : What the backend returns for this plan.
    lyapkit.lyapunov_spectrum : Builds this plan and turns the record into exponents.
    lyapkit.max_lyapunov_twin : The twin method.

    References
    ----------
    .. [1] I. Shimada, T. Nagashima, "A numerical approach to ergodic problem of dissipative
       dynamical systems", Progress of Theoretical Physics 61, 1605–1616, 1979.
    .. [2] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic
       exponents for smooth dynamical systems and for Hamiltonian systems; a method for
       computing all of them", Meccanica 15, 9–30, 1980.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> plan = lk.TangentPlan(
    ...     x0=np.array([[0.1, 0.1]]), basis0=np.eye(2)[None], inputs=np.zeros((1, 1100, 0)),
    ...     transient=100, steps=1000, every=1, record_at=np.array([500, 1000]))
    >>> plan.total
    1100
    >>> record = lk.get_backend("numpy").tangent(lk.Henon(), plan, lk.Progress())
    >>> record.cumulative.shape  # (members, records, k)
    (1, 2, 2)
    >>> exponents = record.cumulative[0, -1] / plan.steps  # Hénon: 0.419, -1.623
    >>> bool(np.allclose(exponents, [0.419, -1.623], atol=0.02))
    True
    """

    x0: np.ndarray
    basis0: np.ndarray
    inputs: np.ndarray
    transient: int
    steps: int
    every: int
    record_at: np.ndarray
    separation: float = 0.0
    dtype: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", dtype_name(self.dtype))

    @property
    def total(self) -> int:
        """All steps integrated: ``transient + steps``."""
        return self.transient + self.steps

    def renormalise_after(self, t: int) -> bool:
        """Whether step ``t`` (0-based, counted from the start) ends with a re-orthonormalisation.

        Parameters
        ----------
        t : int
            The step, ``0 <= t < total``.

        Returns
        -------
        bool
            True when ``t + 1`` completed steps are a multiple of ``every`` within the transient,
            or a multiple of ``every`` counted from the end of the transient, or end the
            transient or the run.
        """
        done = t + 1
        if done <= self.transient:
            return done % self.every == 0 or done == self.transient
        s = done - self.transient
        return s % self.every == 0 or s == self.steps


@dataclass(frozen=True)
class TangentRecord:
    """What a backend returns from :meth:`lyapkit.Backend.tangent` or :meth:`lyapkit.Backend.twin`.

    The cumulative sums at the post-transient step counts ``r`` of ``plan.record_at``::

        S_i(r) = Σ_{re-orthonormalisations after the transient, up to r} log R_ii

    (twin: ``Σ log(d/δ0)``), from which the core forms the exponents ``λ_i = S_i(steps) / steps``
    and the finite-time estimates ``S_i(r) / r``.

    Parameters
    ----------
    cumulative : (E, R, k) float64
        ``Σ log R_ii`` (twin: ``Σ log(d/δ0)``) over post-transient steps up to each ``record_at``.
        A direction that collapsed (``R_ii = 0`` exactly: the Jacobian is singular, to working
        precision, on the span of the basis) adds ``log 0 = −inf`` to its sum and the member goes
        on, its basis completed by any unit vector orthogonal to the others; this is not a
        blow-up.
    max_condition : (E,) float64
        Largest ``max_i R_ii / min_i R_ii`` seen at a re-orthonormalisation: a lower bound on the
        2-norm condition number of the un-normalised tangent basis. Re-orthonormalisations at
        which a direction collapsed are left out (their ratio is infinite whatever
        ``every``).
    blowup_step : (E,) int64
        The first step (1-based, counted from the start) after which the state or basis was not
        finite (NaN or ±inf, an ``R_ii`` included); −1 when it stayed finite.
    final_state : (E, n) float64
        The state after the last step.
    final_basis : (E, n, k) float64
        The orthonormal basis after the last step (twin: the unit separation direction).
    max_separation : (E,) float64 or None, default None
        Twin method only (None from ``tangent``, and from backends that do not track it): the
        largest ``d / max(1, ‖x‖∞)`` at a renormalisation after the transient, ``d = |y − x|``
        measured before ``y`` is pulled back and ``x`` the reference state then. The core warns
        when it leaves the linear range (``lyapkit.lyapunov.TwinSaturationWarning``).

    See Also
    --------
    lyapkit.TangentPlan : The plan this record answers.

    Examples
    --------
    For ``diag(2, ½)`` every re-orthonormalisation (every 5 steps) adds ``±5 log 2``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> plan = lk.TangentPlan(
    ...     x0=np.zeros((1, 2)), basis0=np.eye(2)[None], inputs=np.zeros((1, 10, 0)),
    ...     transient=0, steps=10, every=5, record_at=np.array([5, 10]))
    >>> system = lk.LinearMap(np.diag([2.0, 0.5]))
    >>> record = lk.get_backend("numpy").tangent(system, plan, lk.Progress())
    >>> np.round(record.cumulative / np.log(2), 6)
    array([[[  5.,  -5.],
            [ 10., -10.]]])
    >>> record.max_condition, record.blowup_step, record.max_separation
    (array([1024.]), array([-1]), None)
    """

    cumulative: np.ndarray
    max_condition: np.ndarray
    blowup_step: np.ndarray
    final_state: np.ndarray
    final_basis: np.ndarray
    max_separation: np.ndarray | None = None


@dataclass(frozen=True)
class TrajectoryPlan:
    """A trajectory to record with its Jacobians: ``steps`` steps of every ensemble member.

    The input of :meth:`lyapkit.Backend.trajectory`: iterate ``x_{t+1} = f(x_t, u_t)`` from
    ``x_0 = x0`` and keep every state and the Jacobians ``J_t = ∂f/∂x (x_t, u_t)`` from
    ``first_jacobian`` on (what :func:`lyapkit.variational_term` multiplies).

    Parameters
    ----------
    x0 : (E, n) float64
        Initial states.
    inputs : (E or 1, steps, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    steps : int
        Steps integrated.
    first_jacobian : int, default 0
        The Jacobians ``J_t = ∂f/∂x (x_t, u_t)`` are kept for ``first_jacobian <= t < steps``.
    dtype : str or None, default None
        Requested floating dtype (backends that cannot honour it raise).
    device : str or None, default None
        Requested device (backends that cannot honour it raise).

    See Also
    --------
    lyapkit.TrajectoryRecord : What the backend returns for this plan.
    lyapkit.variational_term : Builds this plan and factors the product of the Jacobians.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> henon = lk.Henon()
    >>> plan = lk.TrajectoryPlan(
    ...     x0=np.array([[0.1, 0.1]]), inputs=np.zeros((1, 5, 0)), steps=5, first_jacobian=2)
    >>> record = lk.get_backend("numpy").trajectory(henon, plan, lk.Progress())
    >>> record.states.shape, record.jacobians.shape
    ((1, 6, 2), (1, 3, 2, 2))
    >>> bool(np.allclose(record.jacobians[0, 0], henon.jacobian(record.states[0, 2])))
    True
    """

    x0: np.ndarray
    inputs: np.ndarray
    steps: int
    first_jacobian: int = 0
    dtype: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", dtype_name(self.dtype))


@dataclass(frozen=True)
class TrajectoryRecord:
    """A recorded trajectory, float64 whatever the dtype computed in.

    What :meth:`lyapkit.Backend.trajectory` returns for a :class:`lyapkit.TrajectoryPlan`: the
    states ``x_{t+1} = f(x_t, u_t)`` and the Jacobians ``J_t = ∂f/∂x (x_t, u_t)``.

    Parameters
    ----------
    states : (E, steps + 1, n) float64
        ``x_0, …, x_steps`` (non-finite after a blow-up).
    jacobians : (E, steps − first_jacobian, n, n) float64
        ``J_t`` for ``t = first_jacobian, …, steps − 1``.

    See Also
    --------
    lyapkit.TrajectoryPlan : The plan this record answers.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> plan = lk.TrajectoryPlan(x0=np.array([[0.5, 0.0]]), inputs=np.zeros((1, 2, 0)), steps=2)
    >>> record = lk.get_backend("numpy").trajectory(lk.Henon(), plan, lk.Progress())
    >>> np.round(record.states[0], 4)  # x' = 1 − a x² + y, y' = b x  (a = 1.4, b = 0.3)
    array([[0.5   , 0.    ],
           [0.65  , 0.15  ],
           [0.5585, 0.195 ]])
    >>> record.jacobians.shape
    (1, 2, 2, 2)
    """

    states: np.ndarray
    jacobians: np.ndarray


@dataclass(frozen=True)
class GGNPlan:
    """GGN products of a map's readouts ``y_t = C x_t + c`` (:func:`lyapkit.map_ggn`).

    The input of :meth:`lyapkit.Backend.ggn`. The generalised Gauss–Newton matrix [1]_ of the
    mean loss over the ``N`` loss terms of the outputs ``y`` is::

        G = (1/N) Σ_y J_yᵀ H_ℓ(y) J_y,    J_y = C S_t,
        S_{t+1} = J_t S_t + ∂f/∂θ (x_t, u_t),    S_0 = 0,

    with ``H_ℓ`` the Hessian of the per-term loss in the output
    (:meth:`lyapkit.GGNPlan.output_curvature`) and ``S_t = ∂x_t/∂θ`` the parameter sensitivities
    along ``x_{t+1} = f(x_t, u_t)``.

    Parameters
    ----------
    x0 : (E, n) float64
        Initial states.
    inputs : (E, T, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps); ``T`` steps are taken.
    parameters : tuple of str
        The parameters ``θ`` (names in ``Map.jacobian_parameters``), flattened in this order.
    size : int
        ``P``, the number of their entries.
    readout : (o, n) float64
        ``C``.
    readout_bias : (o,) float64
        ``c``.
    loss : {"mse", "cross_entropy"}
        The per-term loss whose data-set mean the GGN belongs to.
    all_outputs : bool
        Outputs after every step (``y_1 … y_T``), or after the last only (``y_T``).

    See Also
    --------
    lyapkit.map_ggn : Builds this plan and wraps the products in an operator.
    lyapkit.MapGGN : The operator it returns.

    References
    ----------
    .. [1] N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
       descent", Neural Computation 14(7), 1723–1738, 2002.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> system = lk.WCRNNMap(R=0.9 * np.eye(2), W=np.array([[0.0, 1.0], [-1.0, 0.0]]), gamma=0.1)
    >>> plan = lk.GGNPlan(
    ...     x0=np.array([[0.5, -0.5]]), inputs=np.zeros((1, 3, 0)), parameters=("b",), size=2,
    ...     readout=np.array([[1.0, 0.0]]), readout_bias=np.zeros(1), loss="mse",
    ...     all_outputs=True)
    >>> plan.steps, plan.terms, plan.is_output(0)
    (3, 3, True)
    >>> G = lk.get_backend("numpy").ggn(system, plan)  # (P, P) with P = plan.size
    >>> G.shape, bool(np.allclose(G, G.T)), bool(np.linalg.eigvalsh(G).min() > -1e-12)
    ((2, 2), True, True)
    """

    x0: np.ndarray
    inputs: np.ndarray
    parameters: tuple[str, ...]
    size: int
    readout: np.ndarray
    readout_bias: np.ndarray
    loss: str
    all_outputs: bool

    @property
    def steps(self) -> int:
        """``T``, the number of steps taken (``inputs.shape[1]``)."""
        return self.inputs.shape[1]

    @property
    def terms(self) -> int:
        """``N``, the number of loss terms: one per output element (mse) or output vector."""
        E, o = self.x0.shape[0], self.readout.shape[0]
        return E * (self.steps if self.all_outputs else 1) * (o if self.loss == "mse" else 1)

    def is_output(self, t: int) -> bool:
        """Whether the state after step ``t`` (0-based) is read out.

        Parameters
        ----------
        t : int
            The step, ``0 <= t < steps``.

        Returns
        -------
        bool
            True for every step when ``all_outputs``, else only for the last step.
        """
        return self.all_outputs or t == self.steps - 1

    def output_curvature(self, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``(1/N) H_ℓ(y) z`` for outputs ``y`` and output directions ``z``.

        ``H_ℓ = 2 I`` (mse: per element ``(y − ŷ)²``) or ``diag(p) − p pᵀ`` with
        ``p = softmax(y)`` (cross-entropy); neither depends on the targets.

        Parameters
        ----------
        y : (..., o) ndarray
            Outputs ``y = C x + c``.
        z : (..., o, k) ndarray
            Output directions (``J_y`` times the parameter directions).

        Returns
        -------
        (..., o, k) ndarray
            ``(1/N) H_ℓ(y) z``, ``N`` = :attr:`lyapkit.GGNPlan.terms`.
        """
        if self.loss == "mse":
            return (2.0 / self.terms) * z
        p = np.exp(y - y.max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True))[..., None]
        return p * (z - (p * z).sum(-2, keepdims=True)) / self.terms


@dataclass(frozen=True)
class CovariantPlan:
    """Covariant Lyapunov vectors to compute by Ginelli's method.

    The input of :meth:`lyapkit.Backend.covariant`. In Ginelli's method [1]_ every member runs
    ``transient + steps + tail`` steps forward, ``J_s Q_s = Q_{s+1} R_s`` (thin QR with
    ``diag R_s > 0`` after every step). Post-transient step ``s`` counts from the end of
    the transient: ``x_s`` is the state then and ``Q_s`` the basis at it (before ``J_s``). The
    backward pass starts from ``C_{steps+tail} = coefficients0`` and iterates
    ``C_s = R_s⁻¹ C_{s+1}``, columns scaled to unit length, down to ``s = 0``; the CLVs are
    ``V_s = Q_s C_s`` (unit columns) at the kept steps.

    Parameters
    ----------
    x0 : (E, n) float64
        Initial states.
    basis0 : (E, n, k) float64
        Initial orthonormal tangent bases.
    coefficients0 : (E, k, k) float64
        Upper-triangular start of the backward pass: unit columns, non-zero diagonal.
    inputs : (E or 1, transient + steps + tail, m) float64
        Inputs ``u_t`` (``m = 0`` for autonomous maps).
    transient : int
        Steps that align the forward basis.
    steps : int
        Steps whose CLVs may be kept (``0 <= s < steps``).
    tail : int
        Steps after them that align the backward coefficients (their ``R_s`` are kept too).
    keep : (K,) int64
        Ascending post-transient steps ``s < steps`` whose states and CLVs are returned.
    dtype : str or None, default None
        Requested floating dtype (backends that cannot honour it raise).
    device : str or None, default None
        Requested device (backends that cannot honour it raise).

    See Also
    --------
    lyapkit.CovariantRecord : What the backend returns for this plan.
    lyapkit.covariant_vectors : Builds this plan and checks the result.

    References
    ----------
    .. [1] F. Ginelli, P. Poggi, A. Turchi, H. Chaté, R. Livi, A. Politi, "Characterizing
       dynamics with covariant Lyapunov vectors", Physical Review Letters 99, 130601, 2007.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> plan = lk.CovariantPlan(
    ...     x0=np.array([[0.1, 0.1]]), basis0=np.eye(2)[None], coefficients0=np.eye(2)[None],
    ...     inputs=np.zeros((1, 1200, 0)), transient=100, steps=1000, tail=100,
    ...     keep=np.array([10, 11]))
    >>> plan.total
    1200
    >>> record = lk.get_backend("numpy").covariant(lk.Henon(), plan, lk.Progress())
    >>> record.vectors.shape  # (members, kept steps, n, k)
    (1, 2, 2, 2)
    >>> exponents = record.log_stretch[0] / plan.steps  # Hénon: 0.419, -1.623
    >>> bool(np.allclose(exponents, [0.419, -1.623], atol=0.02))
    True
    """

    x0: np.ndarray
    basis0: np.ndarray
    coefficients0: np.ndarray
    inputs: np.ndarray
    transient: int
    steps: int
    tail: int
    keep: np.ndarray
    dtype: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", dtype_name(self.dtype))

    @property
    def total(self) -> int:
        """All forward steps: ``transient + steps + tail``."""
        return self.transient + self.steps + self.tail


@dataclass(frozen=True)
class CovariantRecord:
    """What :meth:`lyapkit.Backend.covariant` returns, float64 whatever the dtype computed in.

    The CLVs [1]_ are covariant with the dynamics: ``J_s v_i(x_s) ∥ v_i(x_{s+1})``, stretched on
    average by ``e^{λ_i}`` per step, with ``λ_i`` = ``log_stretch / steps``.

    Parameters
    ----------
    vectors : (E, K, n, k) float64
        ``V_s`` at the kept steps: column ``i`` is the unit CLV ``v_i(x_s)`` (sign arbitrary).
    states : (E, K, n) float64
        ``x_s`` at the kept steps. After a member's ``blowup_step`` they are unspecified: the
        array backends keep the states they reach, the numba backend leaves NaN.
    log_stretch : (E, k) float64
        ``Σ_{0 <= s < steps} log (R_s)_ii``: the exponents times ``steps``. Not finite for a
        member that blew up (NaN on the numba backend).
    blowup_step : (E,) int64
        The first step (1-based, counted from the start) after which the state or an ``(R_s)_ii``
        was not finite, or an ``(R_s)_ii`` was 0 (a collapsed direction leaves ``R_s``
        singular); −1 when none. Such a member's vectors are NaN.

    See Also
    --------
    lyapkit.CovariantPlan : The plan this record answers.
    lyapkit.CovariantVectors : The result the core builds from it.

    References
    ----------
    .. [1] F. Ginelli, P. Poggi, A. Turchi, H. Chaté, R. Livi, A. Politi, "Characterizing
       dynamics with covariant Lyapunov vectors", Physical Review Letters 99, 130601, 2007.

    Examples
    --------
    The Jacobian maps each CLV at kept step 10 onto the same CLV at step 11:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> henon = lk.Henon()
    >>> plan = lk.CovariantPlan(
    ...     x0=np.array([[0.1, 0.1]]), basis0=np.eye(2)[None], coefficients0=np.eye(2)[None],
    ...     inputs=np.zeros((1, 400, 0)), transient=100, steps=200, tail=100,
    ...     keep=np.array([10, 11]))
    >>> record = lk.get_backend("numpy").covariant(henon, plan, lk.Progress())
    >>> v, w = record.vectors[0, 0], record.vectors[0, 1]
    >>> Jv = henon.jacobian(record.states[0, 0]) @ v
    >>> cos = np.abs((Jv * w).sum(0)) / np.linalg.norm(Jv, axis=0)
    >>> np.round(cos, 6), record.blowup_step
    (array([1., 1.]), array([-1]))
    """

    vectors: np.ndarray
    states: np.ndarray
    log_stretch: np.ndarray
    blowup_step: np.ndarray


class Progress:
    """A do-nothing progress meter, and the interface of every meter a backend is handed.

    Backends call :meth:`lyapkit.Progress.update` with the number of steps done since the last
    call (so the counts add up to the plan's steps) and the core calls
    :meth:`lyapkit.Progress.close` at the end; the meter that ``progress=True`` selects
    (``lyapkit.progress.progress_bar``, tqdm) subclasses it. The constructor takes no
    parameters.

    Attributes
    ----------
    enabled : bool
        Whether the meter displays anything (False here).

    See Also
    --------
    lyapkit.Backend : Whose loops report to it.

    Examples
    --------
    A meter that counts the steps reported:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> class Count(lk.Progress):
    ...     done = 0
    ...     def update(self, n):
    ...         self.done += n
    >>> meter = Count()
    >>> plan = lk.TrajectoryPlan(x0=np.array([[0.1, 0.1]]), inputs=np.zeros((1, 5, 0)), steps=5)
    >>> _ = lk.get_backend("numpy").trajectory(lk.Henon(), plan, meter)
    >>> meter.done
    5
    """

    enabled: bool = False

    def update(self, n: int) -> None:
        """Report ``n`` more steps done.

        Parameters
        ----------
        n : int
            Steps done since the last call.
        """

    def close(self) -> None:
        """Finish: the run is over (called once, also after an error)."""


class Backend(abc.ABC):
    """A compute engine for lyapkit's hot loops.

    Subclasses set ``name`` and ``description``, optionally ``requires`` (modules that must be
    importable, checked by :meth:`lyapkit.Backend.available` without importing them) and
    ``extra`` (the lyapkit extra that installs them, named in errors), and implement
    ``supports``, ``tangent`` and ``twin``, and optionally ``trajectory``, ``ggn`` and
    ``covariant``; ``priority`` ranks them for ``backend="auto"``. A backend runs the tangent dynamics ``Q ← J_t Q``,
    ``J_t = ∂f/∂x (x_t, u_t)``, with periodic QR re-orthonormalisation ``Q = Q' R`` and sums
    ``log R_ii`` [1]_ (:class:`lyapkit.TangentPlan`); covariant vectors follow Ginelli et al. [2]_
    (:class:`lyapkit.CovariantPlan`). Its constructor takes no parameters: the core instantiates
    it as ``cls()``. Third parties register a subclass under the entry-point group
    ``lyapkit.backends``.

    Attributes
    ----------
    name : str
        The name ``backend=`` selects it by.
    description : str
        One line shown in listings of backends.
    requires : tuple of str
        Modules that must be importable (default none).
    extra : str or None
        The lyapkit extra that installs them (``pip install lyapkit[extra]``), or None.

    See Also
    --------
    lyapkit.get_backend : Resolve a backend by name or ``"auto"``.
    lyapkit.backend_names : The registered backends.
    lyapkit.Progress : The meter its loops report to.

    References
    ----------
    .. [1] G. Benettin, L. Galgani, A. Giorgilli, J.-M. Strelcyn, "Lyapunov characteristic
       exponents for smooth dynamical systems and for Hamiltonian systems; a method for
       computing all of them", Meccanica 15, 9–30, 1980.
    .. [2] F. Ginelli, P. Poggi, A. Turchi, H. Chaté, R. Livi, A. Politi, "Characterizing
       dynamics with covariant Lyapunov vectors", Physical Review Letters 99, 130601, 2007.

    Examples
    --------
    A minimal backend for one-dimensional maps that hands its plans to the numpy backend; an
    instance can be passed as ``backend=``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> class Tiny(lk.Backend):
    ...     name, description = "tiny", "the numpy loops, for one-dimensional maps"
    ...     def supports(self, system):
    ...         return system.dim == 1
    ...     def tangent(self, system, plan, progress):
    ...         return lk.get_backend("numpy").tangent(system, plan, progress)
    ...     def twin(self, system, plan, progress):
    ...         return lk.get_backend("numpy").twin(system, plan, progress)
    >>> Tiny.available(), Tiny().supports(lk.Henon())
    (True, False)
    >>> res = lk.lyapunov_spectrum(lk.Logistic(), x0=np.array([0.3]), steps=2000, backend=Tiny())
    >>> res.backend, bool(abs(res.exponents[0] - np.log(2)) < 0.01)  # logistic r = 4: log 2
    ('tiny', True)
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None

    @classmethod
    def available(cls) -> bool:
        """Whether the modules this backend needs are installed (without importing them).

        Returns
        -------
        bool
            True when every module of ``requires`` can be found.
        """
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    @abc.abstractmethod
    def supports(self, system: Map) -> bool:
        """Whether this backend can run ``system``.

        Parameters
        ----------
        system : lyapkit.Map
            The map to run.

        Returns
        -------
        bool
            True when :meth:`lyapkit.Backend.tangent` and :meth:`lyapkit.Backend.twin` (and any
            optional method it implements) can run ``system``.
        """

    def priority(self, system: Map) -> int:
        """Preference for ``backend="auto"`` among backends that support ``system`` (higher wins).

        Parameters
        ----------
        system : lyapkit.Map
            The map to run.

        Returns
        -------
        int
            The rank; this default returns 0.
        """
        return 0

    def accepts(self, dtype: str | None, device: str | None) -> bool:
        """Whether this backend computes in ``dtype`` on ``device`` (as requested in a plan).

        ``backend="auto"`` chooses among the backends that accept them.

        Parameters
        ----------
        dtype : str or None
            The requested dtype's name (``"float32"``, ``"float64"``), None for the default.
        device : str or None
            The requested device (``"cpu"``, ``"cuda:0"``), None for the default.

        Returns
        -------
        bool
            True in this default: the backend raises for what it cannot honour.
        """
        return True

    def estimated_seconds(self, system: Map, plan: TangentPlan) -> float | None:
        """Expected wall time of ``tangent`` or ``twin`` for ``plan``.

        ``backend="auto"`` runs the highest-priority backend unless another one expects to finish
        sooner (both must have a cost model): a short run is not worth a long compilation.

        Parameters
        ----------
        system : lyapkit.Map
            The map to run.
        plan : lyapkit.TangentPlan
            The run.

        Returns
        -------
        float or None
            Seconds, start-up costs (compilation) included, or None without a cost model (this
            default).
        """
        return None

    @abc.abstractmethod
    def tangent(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate the state and tangent basis; QR re-orthonormalisation (Benettin 1980).

        Evolves ``Q ← J_t Q`` with ``Q = Q' R`` every ``plan.every`` steps and sums
        ``log R_ii`` after the transient (see :class:`lyapkit.TangentPlan`).

        Parameters
        ----------
        system : lyapkit.Map
            The map, one that :meth:`lyapkit.Backend.supports` accepts.
        plan : lyapkit.TangentPlan
            What to integrate.
        progress : lyapkit.Progress
            Meter to report the steps done to.

        Returns
        -------
        lyapkit.TangentRecord
            The cumulative sums at ``plan.record_at`` and the final state and basis.
        """

    @abc.abstractmethod
    def twin(self, system: Map, plan: TangentPlan, progress: Progress) -> TangentRecord:
        """Integrate a reference and a perturbed trajectory, renormalising their distance.

        ``y_0 = x_0 + δ0 q`` (``q = plan.basis0[..., 0]``, ``δ0 = plan.separation``); every
        ``plan.every`` steps ``log(d/δ0)``, ``d = ‖y − x‖``, is added (after the transient) and
        ``y`` pulled back to ``x + δ0 (y − x)/d``.

        Parameters
        ----------
        system : lyapkit.Map
            The map, one that :meth:`lyapkit.Backend.supports` accepts.
        plan : lyapkit.TangentPlan
            What to integrate (``k = 1``).
        progress : lyapkit.Progress
            Meter to report the steps done to.

        Returns
        -------
        lyapkit.TangentRecord
            The cumulative sums of ``log(d/δ0)`` (``k = 1``) and, where tracked,
            ``max_separation``.
        """

    def trajectory(self, system: Map, plan: TrajectoryPlan, progress: Progress) -> TrajectoryRecord:
        """Record the states and the Jacobians ``J_t`` of every member (an optional capability).

        Backends that can override it; this default raises :class:`lyapkit.BackendError` naming
        the installed backends that can.

        Parameters
        ----------
        system : lyapkit.Map
            The map, one that :meth:`lyapkit.Backend.supports` accepts.
        plan : lyapkit.TrajectoryPlan
            What to record.
        progress : lyapkit.Progress
            Meter to report the steps done to.

        Returns
        -------
        lyapkit.TrajectoryRecord
            The states ``x_0 … x_steps`` and the Jacobians from ``plan.first_jacobian`` on.

        Raises
        ------
        lyapkit.BackendError
            When the backend does not implement it (this default).
        """
        raise BackendError(_incapable(self, system, "trajectory"))

    def ggn(self, system: Map, plan: GGNPlan, vectors: np.ndarray | None = None) -> np.ndarray:
        """GGN products ``G V``, or ``G``, from the map's analytic Jacobians (optional).

        ``G = (1/N) Σ J_yᵀ H_ℓ J_y`` over the outputs ``y`` of ``plan``
        (:meth:`lyapkit.GGNPlan.output_curvature`), ``J_y = C S_t`` with the sensitivities
        ``S_{t+1} = J_t S_t + ∂f/∂θ (x_t, u_t)``, ``S_0 = 0``, from the map's state and
        parameter Jacobians (Schraudolph 2002). Backends that can override it; this default
        raises :class:`lyapkit.BackendError` naming the installed backends that can.

        Parameters
        ----------
        system : lyapkit.Map
            The map, one with ``jacobian_parameters``.
        plan : lyapkit.GGNPlan
            The trajectory, parameters, readout and loss.
        vectors : (P, k) ndarray or None, default None
            Parameter directions ``V``; None for the dense ``G``.

        Returns
        -------
        ndarray
            ``G V`` (P, k), or ``G`` (P, P) when ``vectors`` is None.

        Raises
        ------
        lyapkit.BackendError
            When the backend does not implement it (this default).
        """
        raise BackendError(f"{_incapable(self, system, 'ggn')}. {GGN_AUTODIFF_HINT}")

    def covariant(self, system: Map, plan: CovariantPlan, progress: Progress) -> CovariantRecord:
        """Covariant Lyapunov vectors by Ginelli's method (an optional capability).

        See :class:`lyapkit.CovariantPlan` for what to compute and
        :class:`lyapkit.CovariantRecord` for what to return.

        A backend runs the forward pass (the state and ``J_s Q_s = Q_{s+1} R_s``, keeping every
        post-transient ``R_s`` and the bases ``Q_s`` at ``plan.keep``) and the backward pass
        (``C_s = R_s⁻¹ C_{s+1}``, unit columns; ``V_s = Q_s C_s``) without returning to Python
        per step where it can (Ginelli et al. 2007, PRL 99, 130601); ``progress`` counts the
        forward steps. Backends that can override it; this default raises
        :class:`lyapkit.BackendError` naming the installed backends that can.

        Parameters
        ----------
        system : lyapkit.Map
            The map, one that :meth:`lyapkit.Backend.supports` accepts.
        plan : lyapkit.CovariantPlan
            What to compute.
        progress : lyapkit.Progress
            Meter to report the forward steps done to.

        Returns
        -------
        lyapkit.CovariantRecord
            The CLVs and states at ``plan.keep`` and the summed ``log (R_s)_ii``.

        Raises
        ------
        lyapkit.BackendError
            When the backend does not implement it (this default).
        """
        raise BackendError(_incapable(self, system, "covariant"))


class BackendError(RuntimeError):
    """A backend cannot be found, is not installed, or cannot run a system.

    Raised by :func:`lyapkit.get_backend` (and every computation taking ``backend=``) for an
    unknown name, a backend whose dependencies are missing (naming the extra to install), a
    backend that does not support the map, or one that lacks an optional capability
    (``trajectory``, ``ggn``, ``covariant``); the message names the installed backends that
    can. A subclass of ``RuntimeError``, constructed with the message.

    See Also
    --------
    lyapkit.get_backend : Resolve a backend.
    lyapkit.available_backends : The backends that are installed.

    Examples
    --------
    >>> import lyapkit as lk
    >>> lk.get_backend("fortran")
    Traceback (most recent call last):
    ...
    lyapkit.backend.BackendError: backend must be 'auto' or one of [...], got 'fortran'
    """


GGN_AUTODIFF_HINT = (
    "GGN products from analytic parameter Jacobians run without autodiff on the numpy and numba "
    "backends; with torch, compute curvature by autodiff instead (lyapkit.curvature, torch.func), "
    "which full Hessians need in any case"
)


@functools.lru_cache(maxsize=1)
def _registry() -> dict[str, str | type[Backend]]:
    # importlib.metadata is imported here, on the first lookup, not with lyapkit: it costs about a
    # tenth of `import lyapkit`, which every `lyapkit` command (even `--help`) pays
    from importlib.metadata import entry_points

    found: dict[str, str | type[Backend]] = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        try:
            cls = ep.load()
        except Exception as err:  # a broken plugin must not break lyapkit
            warnings.warn(f"lyapkit backend plugin {ep.name!r} failed to load: {err}", stacklevel=2)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            warnings.warn(
                f"entry point {ep.name!r} is not a lyapkit Backend subclass", stacklevel=2
            )
            continue
        found[ep.name] = cls
    return found


def _load(name: str) -> type[Backend]:
    target = _registry()[name]
    if isinstance(target, str):
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)
    return target


def backend_names() -> list[str]:
    """Names of all registered backends (built-in and plugins), installed or not.

    The built-in ``numpy``, ``numba`` and ``torch`` come first, then the plugins registered
    under the entry-point group ``lyapkit.backends`` (a plugin that fails to load is skipped
    with a warning).

    Returns
    -------
    list of str
        The names, in registration order.

    See Also
    --------
    lyapkit.available_backends : Those whose dependencies are installed.
    lyapkit.get_backend : Resolve one of them.

    Examples
    --------
    >>> import lyapkit as lk
    >>> lk.backend_names()[:3]
    ['numpy', 'numba', 'torch']
    """
    return list(_registry())


def available_backends() -> list[str]:
    """Names of the registered backends whose dependencies are installed.

    A backend is available when every module of its ``requires`` can be found
    (:meth:`lyapkit.Backend.available`); the modules are not imported.

    Returns
    -------
    list of str
        A sub-list of :func:`lyapkit.backend_names`, in the same order.

    See Also
    --------
    lyapkit.backend_names : All registered backends.

    Examples
    --------
    >>> import lyapkit as lk
    >>> "numpy" in lk.available_backends()  # numpy is always installed
    True
    """
    return [name for name in _registry() if _load(name).available()]


def _implements(backend: Backend | type[Backend], method: str | None) -> bool:
    """Whether ``backend`` overrides the optional protocol method ``method`` (None: any backend)."""
    cls = backend if isinstance(backend, type) else type(backend)
    return method is None or getattr(cls, method) is not getattr(Backend, method)


def _able(system: Map | None, method: str | None) -> list[str]:
    """The installed backends that run ``system`` (any when None) and implement ``method``."""
    return [
        n
        for n in available_backends()
        if _implements(_load(n), method) and (system is None or _load(n)().supports(system))
    ]


def _incapable(backend: Backend, system: Map | None, method: str) -> str:
    return (
        f"backend {backend.name!r} does not implement {method!r}; backends that can run "
        f"{system!r} with it: {_able(system, method)}"
    )


def get_backend(
    name: str | Backend,
    system: Map | None = None,
    method: str | None = None,
    plan: TangentPlan | TrajectoryPlan | CovariantPlan | None = None,
) -> Backend:
    """Resolve a backend by name (or ``"auto"``) for ``system``.

    ``"auto"`` picks the installed backend that supports ``system`` (and implements the optional
    protocol method ``method``, e.g. ``"trajectory"``, when given) with the highest priority,
    unless, for a ``plan``, another one expects to finish sooner
    (:meth:`lyapkit.Backend.estimated_seconds`). A name or an instance is checked the same way.

    Parameters
    ----------
    name : str or lyapkit.Backend
        ``"auto"``, a name of :func:`lyapkit.backend_names`, or a backend instance (used as is).
    system : lyapkit.Map, optional
        The map to run; when given, the backend must support it.
    method : {"trajectory", "ggn", "covariant"}, optional
        An optional protocol method the backend must implement.
    plan : lyapkit.TangentPlan, lyapkit.TrajectoryPlan or lyapkit.CovariantPlan, optional
        The run: ``"auto"`` chooses among the backends that accept its dtype and device
        (:meth:`lyapkit.Backend.accepts`) and compares the cost models of a tangent run.

    Returns
    -------
    lyapkit.Backend
        An instance of the chosen backend.

    Raises
    ------
    lyapkit.BackendError
        For an unknown name, a backend that is not installed (naming the extra to install), or
        one that cannot run ``system`` or lacks ``method`` (naming the installed backends that
        can); for ``"auto"``, when no installed backend can.

    See Also
    --------
    lyapkit.backend_names : The names it accepts.
    lyapkit.Backend : The protocol a backend implements.

    Examples
    --------
    >>> import lyapkit as lk
    >>> backend = lk.get_backend("numpy", lk.Henon(), "trajectory")
    >>> backend.name, isinstance(backend, lk.Backend)
    ('numpy', True)
    """
    return choose_backend(name, system, method, plan)[0]


def _auto(system: Map | None, method: str | None, plan: Any) -> tuple[Backend, str]:
    candidates = [_load(n)() for n in _able(system, method)]
    if plan is not None:
        candidates = [b for b in candidates if b.accepts(plan.dtype, plan.device)]
    if not candidates:
        needs = f" with {method!r}" if method else ""
        if plan is not None:
            needs += f" in dtype={plan.dtype!r} on device={plan.device!r}"
        raise BackendError(f"no installed backend can run {system!r}{needs}")
    ranked = sorted(candidates, key=lambda b: -b.priority(system) if system is not None else 0)
    first = ranked[0]
    others = ", ".join(b.name for b in ranked[1:]) or "none"
    reason = f"auto: {first.name}, the preferred backend for this map (others able: {others})"
    if not isinstance(plan, TangentPlan) or system is None:  # cost models are of tangent runs
        return first, reason
    costs = {b.name: b.estimated_seconds(system, plan) for b in ranked}
    known = [b for b in ranked if costs[b.name] is not None]
    if costs[first.name] is None or len(known) < 2:
        return first, reason
    fastest = min(known, key=lambda b: costs[b.name])
    summary = ", ".join(f"{b.name} ~{costs[b.name]:.2g} s" for b in known)
    if fastest is first:
        return first, f"auto: {first.name}, expected to finish first ({summary})"
    return fastest, (
        f"auto: {fastest.name} instead of the preferred {first.name}, expected to finish first "
        f"({summary}; {first.name}'s estimate includes its start-up, e.g. compilation)"
    )


def choose_backend(
    name: str | Backend,
    system: Map | None = None,
    method: str | None = None,
    plan: TangentPlan | TrajectoryPlan | CovariantPlan | None = None,
) -> tuple[Backend, str]:
    """:func:`lyapkit.get_backend`, with the reason for the choice (recorded in results).

    Parameters
    ----------
    name : str or lyapkit.Backend
        As in :func:`lyapkit.get_backend`.
    system : lyapkit.Map, optional
        As in :func:`lyapkit.get_backend`.
    method : str, optional
        As in :func:`lyapkit.get_backend`.
    plan : lyapkit.TangentPlan, lyapkit.TrajectoryPlan or lyapkit.CovariantPlan, optional
        As in :func:`lyapkit.get_backend`.

    Returns
    -------
    backend : lyapkit.Backend
        The chosen backend.
    reason : str
        ``"requested"``, or for ``"auto"`` why it was chosen.

    Raises
    ------
    lyapkit.BackendError
        As in :func:`lyapkit.get_backend`.
    """
    if isinstance(name, str) and name == "auto":
        return _auto(system, method, plan)
    if isinstance(name, Backend):
        backend = name
    elif not isinstance(name, str) or name not in _registry():
        raise BackendError(f"backend must be 'auto' or one of {backend_names()}, got {name!r}")
    else:
        cls = _load(name)
        if not cls.available():
            hint = f"`pip install lyapkit[{cls.extra}]`" if cls.extra else str(cls.requires)
            raise BackendError(f"backend {name!r} is not installed; install it with {hint}")
        backend = cls()
    if system is not None and not backend.supports(system):
        raise BackendError(
            f"backend {backend.name!r} cannot run {system!r}; backends that can: "
            f"{_able(system, method)}"
        )
    if not _implements(backend, method):
        raise BackendError(_incapable(backend, system, method))
    return backend, "requested"
