"""Closed-form predictions of the source papers.

Curse of memory (Zucchet & Orvieto 2024): the linear recurrence ``h_t = λ h_{t−1} + x_t`` driven by
stationary unit-variance inputs with autocorrelation ``E[x_t x_{t+Δ}] = ρ^|Δ|`` has, in the
stationary regime, the second moments of its state and of its sensitivity ``∂_λ h`` given by
:func:`lyapkit.theory.hidden_second_moment` and :func:`lyapkit.theory.sensitivity_second_moment`;
both explode as ``|λ| → 1``, the sensitivity faster, which is the curse of memory.
:func:`lyapkit.theory.input_normalization` is the remedy ``γ(λ) = sqrt(1 − |λ|²)`` that keeps
``E|γ h|²`` at 1 for i.i.d. inputs; the parametrisations ``λ(ω)``
(:func:`lyapkit.theory.exponential_parametrization`, :func:`lyapkit.theory.polar_parametrization`,
:func:`lyapkit.theory.optimal_parametrization`) are the remedy for the sensitivity, measured by
:func:`lyapkit.theory.parameter_sensitivity`. :func:`lyapkit.theory.teacher_student_loss` is the
loss landscape of a one-unit student fitting a one-unit teacher, and
:func:`lyapkit.theory.lru_ring_variance` the state variance of an LRU at its ring initialisation.

Weakly coupled residual RNNs (Dubinin & Effenberger 2023): as the coupling ``γ → 0`` the variational
term of ``x' = R x + γ σ(W x + V s + b)`` tends to ``R^T``, so the Lyapunov exponents tend to
``log|eig(R)|`` and the memory regime is set by the spectral radius ``ρ(R)``: sub-critical
(``ρ < 1``, fading memory), critical (``ρ = 1``, the edge of chaos) or super-critical (``ρ > 1``).
Rotational residuals learn best when their angle matches the
:func:`lyapkit.theory.characteristic_frequency` of the data (``2π/28`` for sequential MNIST).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

from lyapkit._checks import number

__all__ = [
    "CharacteristicFrequency",
    "Parametrization",
    "WCRNNPrediction",
    "characteristic_frequency",
    "cross_covariance",
    "exponential_parametrization",
    "gradient_norm_rate",
    "hidden_second_moment",
    "input_normalization",
    "lru_ring_variance",
    "memory_regime",
    "optimal_parameter",
    "optimal_parametrization",
    "parameter_sensitivity",
    "polar_parametrization",
    "residual_exponents",
    "sensitivity_second_moment",
    "teacher_student_loss",
    "wcrnn_prediction",
]

Regime = Literal["sub-critical", "critical", "super-critical"]


class WCRNNPrediction(NamedTuple):
    """Predicted Lyapunov exponents (descending, per step) and memory regime of a WCRNN.

    Returned by :func:`lyapkit.theory.wcrnn_prediction`: in the weak-coupling limit ``γ → 0`` the
    exponents are ``λ_i = log|eig_i(R)|`` and the regime is set by ``ρ(R) = max_i |eig_i(R)|``.

    Parameters
    ----------
    exponents : numpy.ndarray
        ``log|eig(R)|`` sorted in descending order (per step; ``−inf`` for a zero eigenvalue).
    regime : {"sub-critical", "critical", "super-critical"}
        The memory regime, as ``ρ(R)`` is below, at or above 1.

    See Also
    --------
    lyapkit.theory.wcrnn_prediction : Makes it.
    lyapkit.lyapunov_spectrum : The measured exponents, to compare with.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import wcrnn_prediction
    >>> prediction = wcrnn_prediction(np.diag([0.5, 1.0]))
    >>> np.round(prediction.exponents, 3)
    array([ 0.   , -0.693])
    >>> prediction.regime
    'critical'
    """

    exponents: np.ndarray
    regime: Regime


def _real(values: Any, name: str) -> np.ndarray:
    """``values`` as a float64 array; a TypeError naming ``name`` for complex values, which a
    cast would turn into their real parts."""
    if np.iscomplexobj(values):
        raise TypeError(f"{name} must be real, got complex values {values!r}")
    return np.asarray(values, dtype=np.float64)


def _square(R: np.ndarray) -> np.ndarray:
    """``R`` as a real float64 square matrix; a TypeError for complex values, which would
    otherwise lose their imaginary part silently."""
    if np.iscomplexobj(R):
        raise TypeError(
            "R must be a real matrix (the residual of a WCRNN acts on its real state), got "
            f"complex values (dtype {np.asarray(R).dtype}); for a complex residual acting on "
            "z in C^n pass its real form [[Re R, -Im R], [Im R, Re R]] (2n x 2n), whose exponents "
            "are log|eig(R)|, each twice"
        )
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square matrix, got shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise ValueError("R must be finite")
    return R


def residual_exponents(R: np.ndarray) -> np.ndarray:
    """``log|eig(R)|`` sorted in descending order: the WCRNN exponents in the limit ``γ → 0``.

    For ``x' = R x + γ σ(W x + V s + b)`` the variational term is ``R ⋯ R + O(γ) = Rᵗ + O(γ)``,
    so the Lyapunov exponents tend to::

        λ_i = log|eig_i(R)|,   i = 1, …, n   (descending)

    ``R`` is the real residual matrix of the state; complex values are refused: a complex residual
    acting on ``z ∈ ℂⁿ`` is the real map ``[[Re R, −Im R], [Im R, Re R]]`` on ``(Re z, Im z)``, whose
    ``2n`` exponents are ``log|eig(R)|``, each twice. ``−inf`` for a zero eigenvalue.

    Parameters
    ----------
    R : array_like
        The real, finite, non-empty ``(n, n)`` residual matrix.

    Returns
    -------
    numpy.ndarray
        The ``n`` predicted exponents (per step), in descending order.

    Raises
    ------
    TypeError
        ``R`` has complex values.
    ValueError
        ``R`` is not a non-empty square matrix, or not finite.

    See Also
    --------
    lyapkit.theory.wcrnn_prediction : The exponents together with the memory regime.
    lyapkit.lyapunov_spectrum : The measured spectrum of a map, to compare with.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import residual_exponents
    >>> np.round(residual_exponents(np.diag([0.5, 0.9, 1.0])), 3)
    array([ 0.   , -0.105, -0.693])
    """
    with np.errstate(divide="ignore"):
        return np.sort(np.log(np.abs(np.linalg.eigvals(_square(R)))))[::-1]


def gradient_norm_rate(R: np.ndarray) -> float:
    """Predicted per-step rate of ``‖∂L/∂x_t‖`` over the lag ``T − t`` for a linear-residual WCRNN.

    For ``x_{t+1} = R x_t + γ σ(W x_t + V s_t + b)`` the state Jacobian is ``J_t = R + O(γ)``, so
    backpropagation through time gives (Dubinin & Effenberger 2023, eqs. 10 and 15)::

        ∂L/∂x_t = J_tᵀ ⋯ J_{T−1}ᵀ ∂L/∂x_T = (Rᵀ)^{T−t} ∂L/∂x_T + O(γ)
        ‖∂L/∂x_t‖ ∝ ρ(R)^{T−t},   rate = log ρ(R) = max_i log|eig_i(R)|

    as ``γ → 0`` and ``T − t → ∞``, for a last-step readout and a gradient ``∂L/∂x_T`` with a
    component along the dominant eigenvectors of ``Rᵀ``. Negative rates are vanishing gradients,
    positive rates exploding ones.

    Parameters
    ----------
    R : array_like
        The real, finite, non-empty ``(n, n)`` residual matrix.

    Returns
    -------
    float
        ``log ρ(R)``, the log growth of the gradient norm per step of lag (``−inf`` for a nilpotent
        ``R``).

    Raises
    ------
    TypeError
        ``R`` has complex values.
    ValueError
        ``R`` is not a non-empty square matrix, or not finite.

    See Also
    --------
    lyapkit.gradient_propagation : The measured propagation of gradients, to compare with.
    lyapkit.theory.residual_exponents : All the exponents ``log|eig(R)|``.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import gradient_norm_rate
    >>> round(gradient_norm_rate(0.9 * np.eye(3)), 3)
    -0.105
    """
    return float(residual_exponents(R)[0])


def _regime_tol(R: Any, tol: float | None) -> float:
    """``tol`` checked (``≥ 0``), or by default ``max(1e-9, 4 n ε)`` with ``ε`` the machine
    epsilon of ``R``'s own float dtype (float64 for any other)."""
    if tol is not None:
        return number(tol, "tol", non_negative=True)
    dtype = np.asarray(R).dtype
    eps = np.finfo(dtype if dtype.kind == "f" else np.float64).eps
    return max(1e-9, 4 * np.shape(R)[-1] * float(eps))


def memory_regime(R: np.ndarray, tol: float | None = None) -> Regime:
    """The memory regime of a WCRNN with residual ``R``, from its spectral radius.

    With ``ρ(R) = max_i |eig_i(R)|``, the regime is ``"sub-critical"`` (fading memory) when
    ``ρ(R) < 1 − tol``, ``"critical"`` (the edge of chaos) when ``|ρ(R) − 1| ≤ tol`` and
    ``"super-critical"`` when ``ρ(R) > 1 + tol``.

    Parameters
    ----------
    R : array_like
        The real, finite, non-empty ``(n, n)`` residual matrix.
    tol : float, optional
        The tolerance on ``|ρ(R) − 1|`` for the critical regime, ``≥ 0``. By default
        ``max(1e-9, 4 n ε)`` with ``ε`` the machine epsilon of ``R``'s float dtype (float64 for
        other input): a critical rotation stored in float32 has ``|ρ(R) − 1|`` of about ``ε``.

    Returns
    -------
    {"sub-critical", "critical", "super-critical"}
        The regime.

    Raises
    ------
    TypeError
        ``R`` has complex values.
    ValueError
        ``R`` is not a non-empty square matrix, or not finite.

    See Also
    --------
    lyapkit.theory.wcrnn_prediction : The regime together with the exponents.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import memory_regime
    >>> memory_regime(0.5 * np.eye(2)), memory_regime(np.eye(2)), memory_regime(1.1 * np.eye(2))
    ('sub-critical', 'critical', 'super-critical')
    """
    radius = float(np.max(np.abs(np.linalg.eigvals(_square(R)))))
    if abs(radius - 1.0) <= _regime_tol(R, tol):
        return "critical"
    return "sub-critical" if radius < 1.0 else "super-critical"


def wcrnn_prediction(R: np.ndarray, tol: float | None = None) -> WCRNNPrediction:
    """The weak-coupling prediction for a WCRNN with residual ``R``: exponents and regime.

    As ``γ → 0`` the exponents of ``x' = R x + γ σ(W x + V s + b)`` are ``log|eig(R)|``
    (:func:`lyapkit.theory.residual_exponents`) and the regime is set by ``ρ(R)``
    (:func:`lyapkit.theory.memory_regime`).

    Parameters
    ----------
    R : array_like
        The real, finite, non-empty ``(n, n)`` residual matrix.
    tol : float, optional
        The tolerance on ``|ρ(R) − 1|`` for the critical regime (default: as
        :func:`lyapkit.theory.memory_regime`, from ``R``'s float dtype).

    Returns
    -------
    WCRNNPrediction
        ``exponents`` (descending, per step) and ``regime``.

    Raises
    ------
    TypeError
        ``R`` has complex values.
    ValueError
        ``R`` is not a non-empty square matrix, or not finite.

    See Also
    --------
    lyapkit.theory.WCRNNPrediction : The result.
    lyapkit.trainers.models.WCRNN : The network it predicts.
    lyapkit.WCRNNMap : The WCRNN as a map, to measure with :func:`lyapkit.lyapunov_spectrum`.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    A rotation by the characteristic angle of sequential MNIST, slightly contracted:

    >>> import numpy as np
    >>> from lyapkit.theory import wcrnn_prediction
    >>> angle = 2 * np.pi / 28
    >>> rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    >>> prediction = wcrnn_prediction(0.99 * rotation)
    >>> np.round(prediction.exponents, 3), prediction.regime
    (array([-0.01, -0.01]), 'sub-critical')
    """
    return WCRNNPrediction(residual_exponents(R), memory_regime(R, tol))


def _stable(lam: complex | np.ndarray, rho: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, rho = np.asarray(lam), np.asarray(rho, dtype=np.float64)
    if not np.all(np.abs(lam) < 1):
        raise ValueError(f"lam must satisfy |lam| < 1 (a stable recurrence), got {lam!r}")
    if not np.all((rho >= 0) & (rho < 1)):
        raise ValueError(f"rho must be in [0, 1) (input autocorrelation ρ^|Δ|), got {rho!r}")
    return lam, rho


def hidden_second_moment(lam: complex | np.ndarray, rho: float | np.ndarray = 0.0) -> np.ndarray:
    """Stationary ``E|h|²`` of the linear recurrence ``h_t = λ h_{t−1} + x_t``.

    For stationary unit-variance inputs with autocorrelation ``E[x_t x_{t+Δ}] = ρ^|Δ|``, with ``q = |λ|²`` and ``z = ρλ``::

        E|h|² = Σ_{k,l≥0} λ^k λ̄^l ρ^|k−l| = (1 − |z|²) / ((1 − q) |1 − z|²)

    which for real ``λ`` is ``(1 + ρλ) / ((1 − ρλ)(1 − λ²))`` and for i.i.d. inputs
    ``1 / (1 − |λ|²)``: it explodes as ``|λ| → 1``.

    Parameters
    ----------
    lam : complex or array_like
        The recurrence eigenvalue(s) ``λ``, real or complex, ``|λ| < 1``.
    rho : float or array_like, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)`` (0: i.i.d. inputs). Broadcasts with ``lam``.

    Returns
    -------
    numpy.ndarray
        ``E|h|²``, real, of the broadcast shape.

    Raises
    ------
    ValueError
        ``|lam| ≥ 1`` or ``rho`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.theory.sensitivity_second_moment : The second moment of ``∂_λ h``.
    lyapkit.theory.cross_covariance : ``E[h^a conj(h^b)]`` of two recurrences.
    lyapkit.theory.input_normalization : The scaling that keeps ``E|h|²`` at 1.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import hidden_second_moment
    >>> np.round(hidden_second_moment(np.array([0.0, 0.5, 0.9])), 3)
    array([1.   , 1.333, 5.263])
    >>> round(float(hidden_second_moment(0.5, rho=0.5)), 3)
    2.222
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    return (1 - np.abs(z) ** 2) / ((1 - q) * np.abs(1 - z) ** 2)


def sensitivity_second_moment(
    lam: complex | np.ndarray, rho: float | np.ndarray = 0.0
) -> np.ndarray:
    """Stationary ``E|∂_λ h|²`` of the linear recurrence ``h_t = λ h_{t−1} + x_t``.

    For stationary unit-variance inputs with autocorrelation ``ρ^|Δ|``, with ``∂_λ h_t = Σ_k k λ^{k−1} x_{t−k}``, ``q = |λ|²`` and ``z = ρλ``::

        E|∂_λ h|² = (1 + q)(1 − |z|²) / ((1 − q)³ |1 − z|²) + 2 Re[z / (1 − z)²] / (1 − q)²

    which for real ``λ`` is ``[(1 + λ²)(1 − λ²ρ²) + 2λρ(1 − λ²)] / [(1 − λ²)³ (1 − λρ)²]`` and for
    i.i.d. inputs ``(1 + |λ|²) / (1 − |λ|²)³``. It explodes faster than
    :func:`lyapkit.theory.hidden_second_moment` as ``|λ| → 1``: the curse of memory.

    Parameters
    ----------
    lam : complex or array_like
        The recurrence eigenvalue(s) ``λ``, real or complex, ``|λ| < 1``.
    rho : float or array_like, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)`` (0: i.i.d. inputs). Broadcasts with ``lam``.

    Returns
    -------
    numpy.ndarray
        ``E|∂_λ h|²``, real, of the broadcast shape.

    Raises
    ------
    ValueError
        ``|lam| ≥ 1`` or ``rho`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.theory.hidden_second_moment : The second moment of ``h``.
    lyapkit.theory.parameter_sensitivity : The same through a parametrisation ``λ(ω)``.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import sensitivity_second_moment
    >>> np.round(sensitivity_second_moment(np.array([0.5, 0.9])), 3)
    array([  2.963, 263.887])
    >>> round(float(sensitivity_second_moment(0.5, rho=0.5)), 3)
    6.519
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    direct = (1 + q) * (1 - np.abs(z) ** 2) / ((1 - q) ** 3 * np.abs(1 - z) ** 2)
    return direct + 2 * np.real(z / (1 - z) ** 2) / (1 - q) ** 2


def input_normalization(lam: complex | np.ndarray) -> np.ndarray:
    """The input normalisation ``γ(λ) = sqrt(1 − |λ|²)`` of a diagonal linear recurrence.

    Scaling the input by it, ``h_t = λ h_{t−1} + γ(λ) x_t``, keeps ``E|h|² = γ(λ)² / (1 − |λ|²) = 1``
    for i.i.d. unit-variance inputs, whatever ``|λ| < 1``.

    Parameters
    ----------
    lam : complex or array_like
        The recurrence eigenvalue(s) ``λ``, real or complex, ``|λ| < 1``.

    Returns
    -------
    numpy.ndarray
        ``γ(λ)``, of the shape of ``lam``.

    Raises
    ------
    ValueError
        ``|lam| ≥ 1``.

    See Also
    --------
    lyapkit.theory.hidden_second_moment : ``E|h|²`` without the normalisation.
    lyapkit.trainers.models.LRU : A recurrence normalised this way.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import input_normalization
    >>> np.round(input_normalization(np.array([0.0, 0.6, 0.8j])), 3)
    array([1. , 0.8, 0.6])
    """
    lam, _ = _stable(lam, 0.0)
    return np.sqrt(1 - np.abs(lam) ** 2)


class CharacteristicFrequency(NamedTuple):
    """Peak angular frequency of a data set's average power spectrum, and the spectrum itself.

    Returned by :func:`lyapkit.theory.characteristic_frequency`: ``omega = argmax_{k ≥ 1} P(ω_k)``
    over the frequencies ``ω_k = 2π k / (T dt)``.

    Parameters
    ----------
    omega : float
        The characteristic (peak) angular frequency, in radians per unit of time.
    frequencies : numpy.ndarray
        The non-negative FFT angular frequencies ``ω_k``, ``k = 0, …, ⌊T/2⌋``.
    power : numpy.ndarray
        The average power spectrum ``P(ω_k)``.

    See Also
    --------
    lyapkit.theory.characteristic_frequency : Makes it.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import characteristic_frequency
    >>> t = np.arange(56)
    >>> result = characteristic_frequency(np.sin(2 * np.pi * t / 28)[None, :])
    >>> round(result.omega * 28 / (2 * np.pi), 3), result.frequencies.shape, result.power.shape
    (1.0, (29,), (29,))
    """

    omega: float
    frequencies: np.ndarray
    power: np.ndarray


def characteristic_frequency(sequences: np.ndarray, dt: float = 1.0) -> CharacteristicFrequency:
    """The characteristic frequency of a data set: the peak of its average power spectrum.

    For sequences ``x^{(n)}_t`` (``n < N``, ``t < T``, channels ``c < m``) with their means removed,
    the average one-sided power spectrum over the non-negative FFT frequencies is::

        P(ω_k) = (w_k / (N m)) Σ_{n,c} |Σ_t (x^{(n)}_{t,c} − x̄^{(n)}_c) e^{−i ω_k t dt}|²,
        ω_k = 2π k / (T dt),   k = 0, …, ⌊T/2⌋

    with ``w_k = 2`` for ``0 < k < T/2`` (the bin holds ``±ω_k``) and ``w_k = 1`` for the zero and
    (even ``T``) the Nyquist frequency, so that ``P`` splits the variance over the frequencies
    (``Σ_k P(ω_k) = T Σ_t x_t²``, Parseval). The characteristic frequency is
    ``argmax_{k ≥ 1} P(ω_k)`` (the zero frequency, which only holds what is left of the means, is
    excluded). For sequential MNIST, whose scan lines repeat
    every 28 pixels, it is ``2π/28`` (Dubinin & Effenberger 2023, section 4.2): rotational
    residuals learn best when their angle matches it.

    Parameters
    ----------
    sequences : array_like
        ``(N, T)`` scalar or ``(N, T, m)`` multichannel sequences, ``N ≥ 1``, ``T ≥ 3``, ``m ≥ 1``.
    dt : float, default 1.0
        The sampling interval; frequencies are in radians per unit of time (per step for 1).

    Returns
    -------
    CharacteristicFrequency
        ``omega`` (the peak), ``frequencies`` (the ``ω_k``) and ``power`` (``P(ω_k)``).

    Raises
    ------
    TypeError
        ``sequences`` has complex values.
    ValueError
        ``sequences`` has another shape or is not finite, or ``dt`` is not positive.

    See Also
    --------
    lyapkit.theory.CharacteristicFrequency : The result.
    lyapkit.trainers.models.WCRNN : Whose rotational residuals use it.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    Noisy sequences with period 28, like the scan lines of sequential MNIST:

    >>> import numpy as np
    >>> from lyapkit.theory import characteristic_frequency
    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(112)
    >>> x = np.sin(2 * np.pi * t / 28 + rng.uniform(0, 2 * np.pi, (8, 1)))
    >>> x = x + 0.3 * rng.standard_normal((8, 112))
    >>> bool(np.isclose(characteristic_frequency(x).omega, 2 * np.pi / 28))
    True
    """
    x = _real(sequences, "sequences")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] < 3 or x.shape[2] == 0:
        raise ValueError(f"sequences must have shape (N, T) or (N, T, m) with T ≥ 3, got {x.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    if not np.all(np.isfinite(x)):
        raise ValueError("sequences must be finite (a NaN or inf makes every power NaN)")
    x = x - x.mean(axis=1, keepdims=True)
    power = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=(0, 2))
    power[1 : (x.shape[1] + 1) // 2] *= 2  # the bins that hold ±ω_k
    frequencies = 2 * np.pi * np.fft.rfftfreq(x.shape[1], dt)
    return CharacteristicFrequency(float(frequencies[1 + np.argmax(power[1:])]), frequencies, power)


class Parametrization(NamedTuple):
    """A recurrence eigenvalue ``λ`` and its derivatives with respect to each parameter.

    Returned by the parametrisations ``λ(θ_1, …, θ_p)`` of this module, with ``derivatives`` the
    tuple ``(∂λ/∂θ_1, …, ∂λ/∂θ_p)``.

    Parameters
    ----------
    lam : numpy.ndarray
        The eigenvalue(s) ``λ``.
    derivatives : tuple of numpy.ndarray
        The derivatives of ``λ`` with respect to each parameter, in the parametrisation's order.

    See Also
    --------
    lyapkit.theory.exponential_parametrization : ``λ(ν, θ)`` of the LRU.
    lyapkit.theory.polar_parametrization : ``λ(r, θ)``.
    lyapkit.theory.optimal_parametrization : ``λ(ω)`` with constant normalised sensitivity.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import polar_parametrization
    >>> lam, (d_r, d_theta) = polar_parametrization(0.5, 0.0)
    >>> float(lam.real), float(d_r.real), float(d_theta.imag)
    (0.5, 1.0, 0.5)
    """

    lam: np.ndarray
    derivatives: tuple[np.ndarray, ...]


def exponential_parametrization(
    nu: float | np.ndarray, theta: float | np.ndarray
) -> Parametrization:
    """The LRU's exponential parametrisation (Orvieto et al. 2023) and its derivatives.

    ::

        λ = exp(−exp(ν) + i exp(θ)),   ∂λ/∂ν = −exp(ν) λ,   ∂λ/∂θ = i exp(θ) λ

    ``|λ| = exp(−exp(ν)) < 1`` for every finite ``ν``: stability needs no constraint, and
    ``|λ| → 1`` only as ``ν → −∞``, where ``|∂λ/∂ν| = −|λ| log|λ| → 0`` makes the parameter
    space finer near the edge.

    Parameters
    ----------
    nu : float or array_like
        The log-log modulus parameter ``ν``.
    theta : float or array_like
        The log phase parameter ``θ`` (the phase is ``exp(θ)``). Broadcasts with ``nu``.

    Returns
    -------
    Parametrization
        ``lam`` (complex) and ``derivatives = (∂λ/∂ν, ∂λ/∂θ)``.

    See Also
    --------
    lyapkit.theory.parameter_sensitivity : The sensitivity of ``h`` through this parametrisation.
    lyapkit.trainers.models.LRU : The network that uses it.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.
    .. [2] A. Orvieto, S. L. Smith, A. Gu, A. Fernando, C. Gulcehre, R. Pascanu and S. De,
       "Resurrecting recurrent neural networks for long sequences", Proceedings of the 40th
       International Conference on Machine Learning (ICML), 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import exponential_parametrization
    >>> p = exponential_parametrization(np.log(0.1), np.log(0.5))
    >>> round(float(abs(p.lam)), 4), round(float(np.angle(p.lam)), 4)
    (0.9048, 0.5)
    >>> bool(np.isclose(p.derivatives[0], -0.1 * p.lam))
    True
    """
    nu, theta = _real(nu, "nu"), _real(theta, "theta")
    lam = np.exp(-np.exp(nu) + 1j * np.exp(theta))
    return Parametrization(lam, (-np.exp(nu) * lam, 1j * np.exp(theta) * lam))


def polar_parametrization(r: float | np.ndarray, theta: float | np.ndarray) -> Parametrization:
    """The polar parametrisation ``λ = r e^{iθ}`` and its derivatives.

    ::

        λ = r e^{iθ},   ∂λ/∂r = e^{iθ},   ∂λ/∂θ = i λ

    Stability needs ``|r| < 1``, which the parametrisation does not enforce; the sensitivity through
    ``r`` diverges like ``2/(1 − r²)²`` as ``r → 1`` (:func:`lyapkit.theory.parameter_sensitivity`).

    Parameters
    ----------
    r : float or array_like
        The modulus ``r``.
    theta : float or array_like
        The phase ``θ``, in radians. Broadcasts with ``r``.

    Returns
    -------
    Parametrization
        ``lam`` (complex) and ``derivatives = (∂λ/∂r, ∂λ/∂θ)``.

    See Also
    --------
    lyapkit.theory.exponential_parametrization : The LRU's alternative.
    lyapkit.theory.optimal_parametrization : The parametrisation with constant sensitivity.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import polar_parametrization
    >>> p = polar_parametrization(0.9, np.pi / 2)
    >>> np.round(p.lam, 3), np.round(p.derivatives[1], 3)
    (np.complex128(0.9j), np.complex128(-0.9+0j))
    """
    r, theta = _real(r, "r"), _real(theta, "theta")
    rotation = np.exp(1j * theta)
    return Parametrization(r * rotation, (rotation * np.ones_like(r), 1j * r * rotation))


def optimal_parameter(lam: float | np.ndarray) -> np.ndarray:
    """``ω(λ)``, the inverse of :func:`lyapkit.theory.optimal_parametrization`, in closed form.

    For real ``λ ∈ (−1, 1)`` and i.i.d. inputs, integrating ``dω/dλ = sqrt(1 + λ²) / (1 − λ²)``
    from ``ω(0) = 0`` (substitute ``u = λ / sqrt(1 + λ²)``) gives::

        ω(λ) = sqrt(2) artanh(sqrt(2) λ / sqrt(1 + λ²)) − arsinh(λ)

    odd and increasing, with ``ω → ±∞`` as ``λ → ±1``. It is evaluated as
    ``sign(λ) [log((1 + u)/(1 − u)) / sqrt(2) − arsinh|λ|]`` with ``u = sqrt(2)|λ|/sqrt(1 + λ²)`` and
    ``1 − u = (1 − λ²) / (sqrt(1 + λ²)(sqrt(1 + λ²) + sqrt(2)|λ|))``, accurate up to ``|λ| → 1``.

    Parameters
    ----------
    lam : float or array_like
        Real eigenvalue(s) ``λ`` with ``|λ| < 1``.

    Returns
    -------
    numpy.ndarray
        ``ω(λ)``, of the shape of ``lam``.

    Raises
    ------
    TypeError
        ``lam`` has complex values.
    ValueError
        ``|lam| ≥ 1`` (or ``lam`` is NaN).

    See Also
    --------
    lyapkit.theory.optimal_parametrization : The inverse map ``λ(ω)``.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import optimal_parameter
    >>> np.round(optimal_parameter(np.array([-0.9, 0.0, 0.5, 0.9])), 3)
    array([-1.727,  0.   ,  0.573,  1.727])
    """
    lam = _real(lam, "lam")
    if not np.all(np.abs(lam) < 1):
        raise ValueError(f"lam must be real with |lam| < 1, got {lam!r}")
    a, root2 = np.abs(lam), np.sqrt(2.0)
    norm = np.sqrt(1 + a**2)
    u = root2 * a / norm
    one_minus_u = (1 - a) * (1 + a) / (norm * (norm + root2 * a))
    # log((1 + u) / (1 − u)) = 2 artanh u: accurate for small u; near u = 1 from 1 − u in closed form
    with np.errstate(divide="ignore"):
        log_ratio = np.where(u < 0.5, 2 * np.arctanh(u), np.log((1 + u) / one_minus_u))
    return np.sign(lam) * (log_ratio / root2 - np.arcsinh(a))


def optimal_parametrization(omega: float | np.ndarray) -> Parametrization:
    """The parametrisation ``λ(ω)`` that makes the normalised sensitivity constant, and ``dλ/dω``.

    Zucchet & Orvieto (2024) ask that ``γ(λ)² λ'(ω)² E[(∂_λ h)²] = 1`` for every ``λ``, with
    ``γ(λ) = sqrt(1 − λ²)`` (:func:`lyapkit.theory.input_normalization`). For real ``λ`` and i.i.d.
    unit-variance inputs ``E[(∂_λ h)²] = (1 + λ²) / (1 − λ²)³``, so::

        dλ/dω = (1 − λ²) / sqrt(1 + λ²),   λ(0) = 0

    whose solution is the inverse of the closed form ``ω(λ)`` of
    :func:`lyapkit.theory.optimal_parameter`. It is computed by bisection on ``λ ∈ (−1, 1)`` to
    machine precision (``λ`` rounds to ``±1`` once ``|ω| ≳ 26.1``, since
    ``1 − |λ| ∝ e^{−sqrt(2)|ω|}``).

    Parameters
    ----------
    omega : float or array_like
        The finite parameter(s) ``ω``.

    Returns
    -------
    Parametrization
        ``lam`` (real, in ``[−1, 1]``) and ``derivatives = (dλ/dω,)``.

    Raises
    ------
    TypeError
        ``omega`` has complex values.
    ValueError
        ``omega`` is not finite.

    See Also
    --------
    lyapkit.theory.optimal_parameter : The inverse map ``ω(λ)``.
    lyapkit.theory.parameter_sensitivity : Which is 1 through this parametrisation.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import optimal_parameter, optimal_parametrization, parameter_sensitivity
    >>> p = optimal_parametrization(optimal_parameter(0.5))
    >>> round(float(p.lam), 6), round(float(p.derivatives[0]), 4)
    (0.5, 0.6708)
    >>> round(float(parameter_sensitivity(p.lam, p.derivatives[0])), 6)
    1.0
    """
    omega = _real(omega, "omega")
    if not np.all(np.isfinite(omega)):
        raise ValueError(f"omega must be finite, got {omega!r}")
    target = np.abs(omega)
    # ω(λ) ≥ λ (the integrand is ≥ 1), so λ ∈ [0, min(|ω|, 1)]: a bracket relative to |ω|
    low, high = np.zeros_like(omega), np.minimum(target, 1.0)
    for _ in range(64):  # the bracket shrinks below the float spacing of its upper end
        middle = 0.5 * (low + high)
        below = optimal_parameter(np.minimum(middle, np.nextafter(1.0, 0.0))) < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    lam = np.sign(omega) * 0.5 * (low + high)
    return Parametrization(lam, ((1 - lam**2) / np.sqrt(1 + lam**2),))


def parameter_sensitivity(
    lam: complex | np.ndarray,
    dlam: complex | np.ndarray,
    rho: float | np.ndarray = 0.0,
    normalized: bool = True,
) -> np.ndarray:
    """Stationary ``E|∂_ω h|²`` through a parametrisation ``λ(ω)``, optionally normalised.

    ::

        γ(λ)² |λ'(ω)|² E|∂_λ h|²        (normalized, γ(λ) = sqrt(1 − |λ|²))
        |λ'(ω)|² E|∂_λ h|²               (otherwise)

    with ``E|∂_λ h|²`` from :func:`lyapkit.theory.sensitivity_second_moment` and ``dlam = λ'(ω)``
    from a parametrisation. The normalised form (the normalisation's own derivative ``γ'(λ) h`` left
    out, as in Zucchet & Orvieto 2024) is 1 for :func:`lyapkit.theory.optimal_parametrization` with
    i.i.d. inputs, tends to 1/2 as ``λ → 1`` for the exponential ``ν`` and diverges like
    ``2/(1 − λ²)²`` for the polar ``r``.

    Parameters
    ----------
    lam : complex or array_like
        The eigenvalue(s) ``λ``, ``|λ| < 1``.
    dlam : complex or array_like
        The derivative(s) ``λ'(ω)``, e.g. an entry of ``Parametrization.derivatives``.
    rho : float or array_like, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)`` (0: i.i.d. inputs).
    normalized : bool, default True
        Include the input normalisation ``γ(λ)²``.

    Returns
    -------
    numpy.ndarray
        The sensitivity, real, of the broadcast shape.

    Raises
    ------
    ValueError
        ``|lam| ≥ 1`` or ``rho`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.theory.exponential_parametrization : A parametrisation to feed it.
    lyapkit.theory.polar_parametrization : Another.
    lyapkit.theory.optimal_parametrization : The one that makes it 1.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    Near the edge, the polar ``r`` is far more sensitive than the exponential ``ν``:

    >>> import numpy as np
    >>> from lyapkit.theory import exponential_parametrization, parameter_sensitivity
    >>> lam = 0.99
    >>> p = exponential_parametrization(np.log(-np.log(lam)), 0.0)
    >>> round(float(parameter_sensitivity(abs(p.lam), abs(p.derivatives[0]))), 3)
    0.495
    >>> round(float(parameter_sensitivity(lam, 1.0)), 1)
    5000.1
    """
    value = np.abs(np.asarray(dlam)) ** 2 * sensitivity_second_moment(lam, rho)
    return input_normalization(lam) ** 2 * value if normalized else value


def cross_covariance(
    a: complex | np.ndarray, b: complex | np.ndarray, rho: float | np.ndarray = 0.0
) -> np.ndarray:
    """Stationary ``S(a, b) = E[h^a_t conj(h^b_t)]`` of two recurrences driven by the same inputs.

    With ``h^a_t = Σ_k a^k x_{t−k}`` and ``E[x_t x_{t+Δ}] = ρ^|Δ|`` (unit variance), splitting the
    double sum into ``k = l``, ``k > l`` and ``k < l``::

        S(a, b) = Σ_{k,l≥0} a^k b̄^l ρ^|k−l| = (1 − ρ² a b̄) / ((1 − a b̄)(1 − ρ a)(1 − ρ b̄))

    ``S(λ, λ)`` is :func:`lyapkit.theory.hidden_second_moment`; ``E[h^a h^b]`` (no conjugate) is
    ``S(a, conj(b))``.

    Parameters
    ----------
    a : complex or array_like
        The first eigenvalue(s), ``|a| < 1``.
    b : complex or array_like
        The second eigenvalue(s), ``|b| < 1``.
    rho : float or array_like, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)``. Broadcasts with ``a`` and ``b``.

    Returns
    -------
    numpy.ndarray
        ``S(a, b)`` of the broadcast shape (complex for complex ``a`` or ``b``, real otherwise).

    Raises
    ------
    ValueError
        ``|a| ≥ 1``, ``|b| ≥ 1`` or ``rho`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.theory.teacher_student_loss : Which is built from it.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import cross_covariance
    >>> np.round(cross_covariance(np.array([0.5, -0.5]), 0.5), 3)
    array([1.333, 0.8  ])
    """
    a, rho = _stable(a, rho)
    b, _ = _stable(b, rho)
    ab = a * np.conj(b)
    return (1 - rho**2 * ab) / ((1 - ab) * (1 - rho * a) * (1 - rho * np.conj(b)))


def teacher_student_loss(
    lam: complex | np.ndarray,
    lam_star: complex | np.ndarray,
    rho: float | np.ndarray = 0.0,
    normalized: bool = False,
    real_part: bool = False,
) -> np.ndarray:
    """Stationary loss of a one-unit linear student ``λ`` fitting a one-unit teacher ``λ*``.

    Student ``h_{t+1} = λ h_t + c(λ) x_{t+1}`` and teacher ``h*_{t+1} = λ* h*_t + c(λ*) x_{t+1}``
    share the inputs (unit variance, autocorrelation ``ρ^|Δ|``), with ``c = γ = sqrt(1 − |λ|²)``
    when ``normalized`` and ``c = 1`` otherwise. With ``u = h − h*`` and
    :func:`lyapkit.theory.cross_covariance` ``S``::

        L(λ) = ½ E|u|² = ½ [c(λ)² S(λ, λ) + c(λ*)² S(λ*, λ*) − 2 c(λ) c(λ*) Re S(λ, λ*)]

    or, with ``real_part`` (a real readout ``Re h``), ``½ E[(Re u)²] = ¼ (E|u|² + Re E[u²])`` with
    ``E[u²] = c(λ)² S(λ, λ̄) + c(λ*)² S(λ*, λ̄*) − 2 c(λ) c(λ*) S(λ, λ̄*)``. ``L ≥ 0`` and
    ``L(λ*) = 0``; this is the 1-D landscape of Zucchet & Orvieto (2024, section 3).

    Parameters
    ----------
    lam : complex or array_like
        The student's eigenvalue(s) ``λ``, ``|λ| < 1``.
    lam_star : complex or array_like
        The teacher's eigenvalue(s) ``λ*``, ``|λ*| < 1``. Broadcasts with ``lam``.
    rho : float or array_like, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)``.
    normalized : bool, default False
        Scale each recurrence's input by its :func:`lyapkit.theory.input_normalization`.
    real_part : bool, default False
        The loss of the real readout ``Re h`` instead of ``h``.

    Returns
    -------
    numpy.ndarray
        ``L(λ)``, real and non-negative, of the broadcast shape.

    Raises
    ------
    ValueError
        ``|lam| ≥ 1``, ``|lam_star| ≥ 1`` or ``rho`` outside ``[0, 1)``.

    See Also
    --------
    lyapkit.theory.cross_covariance : The covariances it combines.
    lyapkit.trainers.models.linear_teacher : A teacher network to train against.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import teacher_student_loss
    >>> np.round(teacher_student_loss(np.array([0.5, 0.9]), 0.9), 3)
    array([1.48, 0.  ])
    >>> round(float(teacher_student_loss(0.5, 0.9, normalized=True)), 3)
    0.314
    """
    lam, rho = _stable(lam, rho)
    lam_star, _ = _stable(lam_star, rho)
    c, c_star = (
        (input_normalization(lam), input_normalization(lam_star)) if normalized else (1.0, 1.0)
    )

    def second_moment(squared: bool) -> np.ndarray:
        """``E|u|²``, or ``E[u²]`` when ``squared`` (``E[h^a h^b] = S(a, b̄)``)."""

        def S(a, b):
            return cross_covariance(a, np.conj(b) if squared else b, rho)

        return (
            c**2 * S(lam, lam) + c_star**2 * S(lam_star, lam_star)
            - 2 * c * c_star * S(lam, lam_star)
        )  # fmt: skip

    modulus = np.real(second_moment(False))
    if real_part:
        return 0.25 * (modulus + np.real(second_moment(True)))
    return 0.5 * modulus


def lru_ring_variance(
    r_min: float,
    r_max: float,
    rho: float = 0.0,
    max_phase: float = 2 * np.pi,
    normalized: bool = False,
) -> float:
    """Stationary ``E|h|²`` of an LRU unit at ring initialisation, averaged over the ring.

    The ring (Orvieto et al. 2023; ``lyapkit.trainers.models.linear.ring_sample``) draws
    ``|λ|² ~ U(r_min², r_max²)`` and ``φ = arg λ ~ U(0, Φ)``, ``Φ = max_phase``. The unit is
    driven with unit variance and autocorrelation ``ρ^|Δ|`` (as the LRU's ``B``, with
    ``E Σ_k |B_jk|² = 1``, makes it for i.i.d. or equally AR(1) input channels), scaled by
    ``γ = sqrt(1 − |λ|²)`` when ``normalized``. Averaging
    :func:`lyapkit.theory.hidden_second_moment` over ``φ`` with ``w = ρ r`` (the Poisson kernel
    ``1 + 2 Σ_n w^n cos nφ`` integrated term by term)::

        E_φ E|h|² = g(r) / (1 − r²),   g(r) = 1 + (2/Φ) atan2(w sin Φ, 1 − w cos Φ)

    (``g = (1 + w)/(1 − w)`` for ``Φ = 0``, ``g = 1`` for ``Φ = 2π`` or ``ρ = 0``). Then over
    the radius, with density ``2r / (r_max² − r_min²)``::

        E|h|²   = [g(1) log((1 − r_min²)/(1 − r_max²)) + ∫ 2r (g(r) − g(1))/(1 − r²) dr] / (r_max² − r_min²)
        E|γh|²  = ∫ 2r g(r) dr / (r_max² − r_min²)

    integrals over ``[r_min, r_max]`` by 128-point Gauss–Legendre quadrature (their integrands are
    analytic); for ``ρ = 0`` these are ``log((1 − r_min²)/(1 − r_max²)) / (r_max² − r_min²)`` and
    1. For ``r_min = r_max = r`` the value at that radius is returned.

    Parameters
    ----------
    r_min : float
        The smallest modulus of the ring, ``0 ≤ r_min ≤ r_max``.
    r_max : float
        The largest modulus of the ring, ``r_max ≤ 1``.
    rho : float, default 0.0
        The input autocorrelation ``ρ`` in ``[0, 1)``.
    max_phase : float, default 2π
        The largest phase ``Φ`` in ``[0, 2π]``.
    normalized : bool, default False
        Scale the input by ``γ(λ)`` (:func:`lyapkit.theory.input_normalization`).

    Returns
    -------
    float
        The ring average of ``E|h|²`` (or ``E|γh|²``); infinite for ``r_max = 1`` without
        normalisation.

    Raises
    ------
    ValueError
        ``0 ≤ r_min ≤ r_max ≤ 1``, ``0 ≤ rho < 1`` or ``0 ≤ max_phase ≤ 2π`` does not hold.

    See Also
    --------
    lyapkit.theory.hidden_second_moment : ``E|h|²`` of one eigenvalue.
    lyapkit.trainers.models.LRU : The network initialised on the ring.

    References
    ----------
    .. [1] N. Zucchet and A. Orvieto, "Recurrent neural networks: vanishing and exploding gradients
       are not the end of the story", Advances in Neural Information Processing Systems 37
       (NeurIPS), 2024.
    .. [2] A. Orvieto, S. L. Smith, A. Gu, A. Fernando, C. Gulcehre, R. Pascanu and S. De,
       "Resurrecting recurrent neural networks for long sequences", Proceedings of the 40th
       International Conference on Machine Learning (ICML), 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.theory import lru_ring_variance
    >>> round(lru_ring_variance(0.0, 0.9), 3), round(float(np.log(1 / 0.19) / 0.81), 3)
    (2.05, 2.05)
    >>> round(lru_ring_variance(0.5, 0.9, normalized=True), 3)
    1.0
    >>> round(lru_ring_variance(0.5, 0.9, rho=0.5, max_phase=0.0), 3)
    5.527
    """
    if not 0 <= r_min <= r_max <= 1:
        raise ValueError(f"need 0 ≤ r_min ≤ r_max ≤ 1, got r_min={r_min!r}, r_max={r_max!r}")
    rho = number(rho, "rho", non_negative=True, below=1)
    if not 0 <= max_phase <= 2 * np.pi:
        raise ValueError(f"max_phase must be in [0, 2π], got {max_phase!r}")

    def g(r: np.ndarray) -> np.ndarray:
        w = rho * r
        if max_phase == 0:
            return (1 + w) / (1 - w)
        return 1 + 2 / max_phase * np.arctan2(w * np.sin(max_phase), 1 - w * np.cos(max_phase))

    if r_min == r_max:
        r = np.asarray(r_min)
        if normalized:
            return float(g(r))
        return float(g(r) / (1 - r**2)) if r < 1 else float("inf")
    nodes, weights = np.polynomial.legendre.leggauss(128)
    r = 0.5 * (r_max - r_min) * nodes + 0.5 * (r_max + r_min)
    weights = 0.5 * (r_max - r_min) * weights
    area = r_max**2 - r_min**2
    if normalized:
        return float(np.sum(weights * 2 * r * g(r)) / area)
    if r_max == 1:
        return float("inf")
    remainder = np.sum(weights * 2 * r * (g(r) - g(np.asarray(1.0))) / (1 - r**2))
    return float((g(np.asarray(1.0)) * np.log((1 - r_min**2) / (1 - r_max**2)) + remainder) / area)
