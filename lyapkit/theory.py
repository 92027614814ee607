"""Closed-form predictions of the source papers.

Curse of memory (Zucchet & Orvieto 2024): the linear recurrence ``h_t = λ h_{t−1} + x_t`` driven by
stationary unit-variance inputs with autocorrelation ``E[x_t x_{t+Δ}] = ρ^|Δ|`` has, in the
stationary regime, the second moments of its state and of its sensitivity ``∂_λ h`` given by
:func:`hidden_second_moment` and :func:`sensitivity_second_moment`; both explode as ``|λ| → 1``,
the sensitivity faster, which is the curse of memory. :func:`input_normalization` is the remedy
``γ(λ) = sqrt(1 − |λ|²)`` that keeps ``E|γ h|²`` at 1 for i.i.d. inputs; the parametrisations
``λ(ω)`` (:func:`exponential_parametrization`, :func:`polar_parametrization`,
:func:`optimal_parametrization`) are the remedy for the sensitivity, measured by
:func:`parameter_sensitivity`. :func:`teacher_student_loss` is the loss landscape of a one-unit
student fitting a one-unit teacher, and :func:`lru_ring_variance` the state variance of an LRU at
its ring initialisation.

Weakly coupled residual RNNs (Dubinin & Effenberger 2023): as the coupling ``γ → 0`` the variational
term of ``x' = R x + γ σ(W x + V s + b)`` tends to ``R^T``, so the Lyapunov exponents tend to
``log|eig(R)|`` and the memory regime is set by the spectral radius ``ρ(R)``: sub-critical
(``ρ < 1``, fading memory), critical (``ρ = 1``, the edge of chaos) or super-critical (``ρ > 1``).
Rotational residuals learn best when their angle matches the :func:`characteristic_frequency` of
the data (``2π/28`` for sequential MNIST).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

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
    """Predicted Lyapunov exponents (descending, per step) and memory regime of a WCRNN."""

    exponents: np.ndarray
    regime: Regime


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

    ``R`` is the real residual matrix of the state ``x' = R x + γ σ(…)``; complex values are
    refused (TypeError): a complex residual acting on ``z ∈ ℂⁿ`` is the real map
    ``[[Re R, −Im R], [Im R, Re R]]`` on ``(Re z, Im z)``, whose ``2n`` exponents are
    ``log|eig(R)|``, each twice. ``−inf`` for a zero eigenvalue.
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
    component along the dominant eigenvectors of ``Rᵀ`` (``−inf`` for a nilpotent ``R``). Negative
    rates are vanishing gradients, positive rates exploding ones.
    """
    return float(residual_exponents(R)[0])


def memory_regime(R: np.ndarray, tol: float = 1e-9) -> Regime:
    """``"sub-critical"``, ``"critical"`` or ``"super-critical"`` as ``ρ(R) = max|eig(R)|`` is below,
    within ``tol`` of, or above 1."""
    radius = float(np.max(np.abs(np.linalg.eigvals(_square(R)))))
    if abs(radius - 1.0) <= tol:
        return "critical"
    return "sub-critical" if radius < 1.0 else "super-critical"


def wcrnn_prediction(R: np.ndarray, tol: float = 1e-9) -> WCRNNPrediction:
    """The weak-coupling prediction for a WCRNN with residual ``R``: exponents ``log|eig(R)|`` and regime."""
    return WCRNNPrediction(residual_exponents(R), memory_regime(R, tol))


def _stable(lam: complex | np.ndarray, rho: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, rho = np.asarray(lam), np.asarray(rho, dtype=np.float64)
    if not np.all(np.abs(lam) < 1):
        raise ValueError(f"lam must satisfy |lam| < 1 (a stable recurrence), got {lam!r}")
    if not np.all((rho >= 0) & (rho < 1)):
        raise ValueError(f"rho must be in [0, 1) (input autocorrelation ρ^|Δ|), got {rho!r}")
    return lam, rho


def hidden_second_moment(lam: complex | np.ndarray, rho: float | np.ndarray = 0.0) -> np.ndarray:
    """Stationary ``E|h|²`` of ``h_t = λ h_{t−1} + x_t`` for unit-variance inputs with autocorrelation ``ρ^|Δ|``.

    With ``q = |λ|²`` and ``z = ρλ``::

        E|h|² = Σ_{k,l≥0} λ^k λ̄^l ρ^|k−l| = (1 − |z|²) / ((1 − q) |1 − z|²)

    which for real ``λ`` is ``(1 + ρλ) / ((1 − ρλ)(1 − λ²))`` and for i.i.d. inputs ``1 / (1 − |λ|²)``.
    Broadcasts over arrays of ``lam`` (real or complex, ``|λ| < 1``) and ``rho`` (in ``[0, 1)``).
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    return (1 - np.abs(z) ** 2) / ((1 - q) * np.abs(1 - z) ** 2)


def sensitivity_second_moment(
    lam: complex | np.ndarray, rho: float | np.ndarray = 0.0
) -> np.ndarray:
    """Stationary ``E|∂_λ h|²`` of ``h_t = λ h_{t−1} + x_t`` (inputs as in :func:`hidden_second_moment`).

    With ``∂_λ h_t = Σ_k k λ^{k−1} x_{t−k}``, ``q = |λ|²`` and ``z = ρλ``::

        E|∂_λ h|² = (1 + q)(1 − |z|²) / ((1 − q)³ |1 − z|²) + 2 Re[z / (1 − z)²] / (1 − q)²

    which for real ``λ`` is ``[(1 + λ²)(1 − λ²ρ²) + 2λρ(1 − λ²)] / [(1 − λ²)³ (1 − λρ)²]`` and for
    i.i.d. inputs ``(1 + |λ|²) / (1 − |λ|²)³``.
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    direct = (1 + q) * (1 - np.abs(z) ** 2) / ((1 - q) ** 3 * np.abs(1 - z) ** 2)
    return direct + 2 * np.real(z / (1 - z) ** 2) / (1 - q) ** 2


def input_normalization(lam: complex | np.ndarray) -> np.ndarray:
    """``γ(λ) = sqrt(1 − |λ|²)``: scaling the input by it keeps ``E|h|² = 1`` for i.i.d. unit-variance inputs."""
    lam, _ = _stable(lam, 0.0)
    return np.sqrt(1 - np.abs(lam) ** 2)


class CharacteristicFrequency(NamedTuple):
    """Peak angular frequency of a data set's average power spectrum, and the spectrum itself."""

    omega: float
    frequencies: np.ndarray
    power: np.ndarray


def characteristic_frequency(sequences: np.ndarray, dt: float = 1.0) -> CharacteristicFrequency:
    """The characteristic frequency of a data set: the peak of its average power spectrum.

    For sequences ``x^{(n)}_t`` (``n < N``, ``t < T``, channels ``c < m``) with their means removed,
    the average power spectrum over the non-negative FFT frequencies is::

        P(ω_k) = (1 / (N m)) Σ_{n,c} |Σ_t (x^{(n)}_{t,c} − x̄^{(n)}_c) e^{−i ω_k t dt}|²,
        ω_k = 2π k / (T dt),   k = 0, …, ⌊T/2⌋

    and the characteristic frequency is ``argmax_{k ≥ 1} P(ω_k)`` (the zero frequency, which only
    holds what is left of the means, is excluded). For sequential MNIST, whose scan lines repeat
    every 28 pixels, it is ``2π/28`` (Dubinin & Effenberger 2023, section 4.2).

    Parameters
    ----------
    sequences : array_like
        ``(N, T)`` scalar or ``(N, T, m)`` multichannel sequences, ``T ≥ 3``.
    dt : float
        The sampling interval; frequencies are in radians per unit of time (per step for 1).

    Returns
    -------
    CharacteristicFrequency
        ``omega`` (the peak), ``frequencies`` (the ``ω_k``) and ``power`` (``P(ω_k)``).
    """
    x = np.asarray(sequences, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[1] < 3 or x.shape[2] == 0:
        raise ValueError(f"sequences must have shape (N, T) or (N, T, m) with T ≥ 3, got {x.shape}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    x = x - x.mean(axis=1, keepdims=True)
    power = np.mean(np.abs(np.fft.rfft(x, axis=1)) ** 2, axis=(0, 2))
    frequencies = 2 * np.pi * np.fft.rfftfreq(x.shape[1], dt)
    return CharacteristicFrequency(float(frequencies[1 + np.argmax(power[1:])]), frequencies, power)


class Parametrization(NamedTuple):
    """A recurrence eigenvalue ``λ`` and its derivatives with respect to each parameter."""

    lam: np.ndarray
    derivatives: tuple[np.ndarray, ...]


def exponential_parametrization(
    nu: float | np.ndarray, theta: float | np.ndarray
) -> Parametrization:
    """The LRU's exponential parametrisation (Orvieto et al. 2023) and its derivatives::

        λ = exp(−exp(ν) + i exp(θ)),   ∂λ/∂ν = −exp(ν) λ,   ∂λ/∂θ = i exp(θ) λ

    ``|λ| = exp(−exp(ν)) < 1`` for every finite ``ν``: stability needs no constraint, and
    ``|λ| → 1`` only as ``ν → −∞``, where ``|∂λ/∂ν| = −|λ| log|λ| → 0`` makes the parameter
    space finer near the edge. Broadcasts; ``derivatives`` is ``(∂λ/∂ν, ∂λ/∂θ)``.
    """
    nu, theta = np.asarray(nu, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    lam = np.exp(-np.exp(nu) + 1j * np.exp(theta))
    return Parametrization(lam, (-np.exp(nu) * lam, 1j * np.exp(theta) * lam))


def polar_parametrization(r: float | np.ndarray, theta: float | np.ndarray) -> Parametrization:
    """The polar parametrisation and its derivatives::

        λ = r e^{iθ},   ∂λ/∂r = e^{iθ},   ∂λ/∂θ = i λ

    Broadcasts; ``derivatives`` is ``(∂λ/∂r, ∂λ/∂θ)``. Stability needs ``|r| < 1``.
    """
    r, theta = np.asarray(r, dtype=np.float64), np.asarray(theta, dtype=np.float64)
    rotation = np.exp(1j * theta)
    return Parametrization(r * rotation, (rotation * np.ones_like(r), 1j * r * rotation))


def optimal_parameter(lam: float | np.ndarray) -> np.ndarray:
    """``ω(λ)``, the inverse of :func:`optimal_parametrization`, in closed form.

    For real ``λ ∈ (−1, 1)`` and i.i.d. inputs, integrating ``dω/dλ = sqrt(1 + λ²) / (1 − λ²)``
    from ``ω(0) = 0`` (substitute ``u = λ / sqrt(1 + λ²)``) gives::

        ω(λ) = sqrt(2) artanh(sqrt(2) λ / sqrt(1 + λ²)) − arsinh(λ)

    odd and increasing, with ``ω → ±∞`` as ``λ → ±1``. It is evaluated as
    ``sign(λ) [log((1 + u)/(1 − u)) / sqrt(2) − arsinh|λ|]`` with ``u = sqrt(2)|λ|/sqrt(1 + λ²)`` and
    ``1 − u = (1 − λ²) / (sqrt(1 + λ²)(sqrt(1 + λ²) + sqrt(2)|λ|))``, accurate up to ``|λ| → 1``.
    """
    lam = np.asarray(lam, dtype=np.float64)
    if not np.all(np.abs(lam) < 1):
        raise ValueError(f"lam must be real with |lam| < 1, got {lam!r}")
    a, root2 = np.abs(lam), np.sqrt(2.0)
    norm = np.sqrt(1 + a**2)
    u = root2 * a / norm
    one_minus_u = (1 - a) * (1 + a) / (norm * (norm + root2 * a))
    return np.sign(lam) * (np.log((1 + u) / one_minus_u) / root2 - np.arcsinh(a))


def optimal_parametrization(omega: float | np.ndarray) -> Parametrization:
    """The parametrisation ``λ(ω)`` that makes the normalised sensitivity constant, and ``dλ/dω``.

    Zucchet & Orvieto (2024) ask that ``γ(λ)² λ'(ω)² E[(∂_λ h)²] = 1`` for every ``λ``, with
    ``γ(λ) = sqrt(1 − λ²)`` (:func:`input_normalization`). For real ``λ`` and i.i.d. unit-variance
    inputs ``E[(∂_λ h)²] = (1 + λ²) / (1 − λ²)³``, so::

        dλ/dω = (1 − λ²) / sqrt(1 + λ²),   λ(0) = 0

    whose solution is the inverse of the closed form ``ω(λ)`` of :func:`optimal_parameter`. It is
    computed by bisection on ``λ ∈ (−1, 1)`` to machine precision (``λ`` rounds to ``±1`` once
    ``|ω| ≳ 24.4``, since ``1 − |λ| ∝ e^{−sqrt(2)|ω|}``). Broadcasts; ``derivatives`` is ``(dλ/dω,)``.
    """
    omega = np.asarray(omega, dtype=np.float64)
    if not np.all(np.isfinite(omega)):
        raise ValueError(f"omega must be finite, got {omega!r}")
    low, high = np.zeros_like(omega), np.ones_like(omega)
    target = np.abs(omega)
    for _ in range(64):  # the bracket shrinks below the float spacing of [0, 1)
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
    """Stationary ``E|∂_ω (h)|²`` through a parametrisation ``λ(ω)``, optionally normalised::

        γ(λ)² |λ'(ω)|² E|∂_λ h|²        (normalized, γ(λ) = sqrt(1 − |λ|²))
        |λ'(ω)|² E|∂_λ h|²               (otherwise)

    with ``E|∂_λ h|²`` from :func:`sensitivity_second_moment` and ``dlam = λ'(ω)`` from a
    parametrisation. The normalised form (the normalisation's own derivative ``γ'(λ) h`` left
    out, as in Zucchet & Orvieto 2024) is 1 for :func:`optimal_parametrization` with i.i.d.
    inputs, tends to 1/2 as ``λ → 1`` for the exponential ``ν`` and diverges like
    ``2/(1 − λ²)²`` for the polar ``r``.
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

    ``S(λ, λ)`` is :func:`hidden_second_moment`; ``E[h^a h^b]`` (no conjugate) is
    ``S(a, conj(b))``. Broadcasts over ``|a|, |b| < 1`` and ``rho ∈ [0, 1)``.
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
    when ``normalized`` and ``c = 1`` otherwise. With ``u = h − h*`` and :func:`cross_covariance`
    ``S``::

        L(λ) = ½ E|u|² = ½ [c(λ)² S(λ, λ) + c(λ*)² S(λ*, λ*) − 2 c(λ) c(λ*) Re S(λ, λ*)]

    or, with ``real_part`` (a real readout ``Re h``), ``½ E[(Re u)²] = ¼ (E|u|² + Re E[u²])`` with
    ``E[u²] = c(λ)² S(λ, λ̄) + c(λ*)² S(λ*, λ̄*) − 2 c(λ) c(λ*) S(λ, λ̄*)``. ``L ≥ 0`` and
    ``L(λ*) = 0``; this is the 1-D landscape of Zucchet & Orvieto (2024, section 3).
    Broadcasts over ``lam`` and ``lam_star``.
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
    ``γ = sqrt(1 − |λ|²)`` when ``normalized``. Averaging :func:`hidden_second_moment` over ``φ``
    with ``w = ρ r`` (the Poisson kernel ``1 + 2 Σ_n w^n cos nφ`` integrated term by term)::

        E_φ E|h|² = g(r) / (1 − r²),   g(r) = 1 + (2/Φ) atan2(w sin Φ, 1 − w cos Φ)

    (``g = (1 + w)/(1 − w)`` for ``Φ = 0``, ``g = 1`` for ``Φ = 2π`` or ``ρ = 0``). Then over
    the radius, with density ``2r / (r_max² − r_min²)``::

        E|h|²   = [g(1) log((1 − r_min²)/(1 − r_max²)) + ∫ 2r (g(r) − g(1))/(1 − r²) dr] / (r_max² − r_min²)
        E|γh|²  = ∫ 2r g(r) dr / (r_max² − r_min²)

    integrals over ``[r_min, r_max]`` by 128-point Gauss–Legendre quadrature (their integrands are
    analytic); for ``ρ = 0`` these are ``log((1 − r_min²)/(1 − r_max²)) / (r_max² − r_min²)`` and
    1. ``E|h|²`` is infinite for ``r_max = 1`` without normalisation.
    """
    if not 0 <= r_min <= r_max <= 1:
        raise ValueError(f"need 0 ≤ r_min ≤ r_max ≤ 1, got r_min={r_min!r}, r_max={r_max!r}")
    if not 0 <= rho < 1:
        raise ValueError(f"rho must be in [0, 1), got {rho!r}")
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
