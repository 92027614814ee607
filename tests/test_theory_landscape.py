"""Characteristic frequency, parametrisations, teacher–student landscape and LRU ring variance of
lyapkit.theory against independent computations (FFT peaks, finite differences, quadrature, series)
and Monte-Carlo simulations whose tolerances are 5 standard errors of the sample mean."""

import math

import numpy as np
import pytest

from lyapkit.theory import (
    characteristic_frequency,
    cross_covariance,
    exponential_parametrization,
    hidden_second_moment,
    input_normalization,
    lru_ring_variance,
    optimal_parameter,
    optimal_parametrization,
    parameter_sensitivity,
    polar_parametrization,
    teacher_student_loss,
)


def _mean_within(samples, predicted, sigmas=5.0):
    stderr = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(samples.mean() - predicted) < sigmas * stderr, (samples.mean(), predicted, stderr)


# -- characteristic frequency -------------------------------------------------------------------


@pytest.mark.parametrize("on_bin", [True, False])
def test_characteristic_frequency_of_noisy_sinusoids(on_bin):
    rng = np.random.default_rng(0)
    N, T, m, dt = 40, 512, 3, 0.1
    bin_width = 2 * math.pi / (T * dt)
    omega = (37 if on_bin else 37.4) * bin_width
    t = np.arange(T) * dt
    phases = rng.uniform(0, 2 * math.pi, (N, 1, m))
    x = np.sin(omega * t[None, :, None] + phases) + 2.0 + rng.standard_normal((N, T, m))
    result = characteristic_frequency(x, dt=dt)
    assert result.frequencies[1] == pytest.approx(bin_width)
    if on_bin:
        assert result.omega == pytest.approx(omega)
    else:  # the nearest bin
        assert abs(result.omega - omega) <= bin_width / 2
    # the scalar form of one channel finds the same peak
    assert characteristic_frequency(x[..., 0], dt=dt).omega == result.omega


def test_scan_lines_of_repeating_rows_peak_at_2pi_over_28():
    """sMNIST-like 28×28 images whose rows repeat: the scan-line sequence has period 28."""
    rng = np.random.default_rng(1)
    columns = np.arange(28)
    centres, widths = rng.uniform(9, 19, (200, 1)), rng.uniform(2.5, 4.0, (200, 1))
    rows = np.exp(-((columns - centres) ** 2) / (2 * widths**2))  # a stroke per row
    images = np.repeat(rows[:, None, :], 28, axis=1) + 0.05 * rng.standard_normal((200, 28, 28))
    result = characteristic_frequency(images.reshape(200, 784))
    assert result.omega == pytest.approx(2 * math.pi / 28)


def test_characteristic_frequency_bad_arguments():
    with pytest.raises(ValueError, match="sequences"):
        characteristic_frequency(np.zeros(10))
    with pytest.raises(ValueError, match="dt"):
        characteristic_frequency(np.zeros((2, 10)), dt=0.0)


# -- parametrisations ---------------------------------------------------------------------------


def _central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


def test_parametrization_derivatives_match_finite_differences():
    nu, theta = np.array([-3.0, -0.5, 0.7]), np.array([-1.0, 0.2, 1.1])
    lam, (d_nu, d_theta) = exponential_parametrization(nu, theta)
    np.testing.assert_allclose(np.abs(lam), np.exp(-np.exp(nu)))
    np.testing.assert_allclose(np.angle(lam), np.exp(theta))
    fd = _central_difference(lambda v: exponential_parametrization(v, theta).lam, nu)
    np.testing.assert_allclose(d_nu, fd, rtol=1e-7)
    fd = _central_difference(lambda v: exponential_parametrization(nu, v).lam, theta)
    np.testing.assert_allclose(d_theta, fd, rtol=1e-7)
    r = np.array([0.1, 0.5, 0.99])
    lam, (d_r, d_theta) = polar_parametrization(r, theta)
    np.testing.assert_allclose(lam, r * np.exp(1j * theta))
    fd = _central_difference(lambda v: polar_parametrization(v, theta).lam, r)
    np.testing.assert_allclose(d_r, fd, rtol=1e-7)
    fd = _central_difference(lambda v: polar_parametrization(r, v).lam, theta)
    np.testing.assert_allclose(d_theta, fd, rtol=1e-7)


def test_optimal_parameter_is_the_integral_of_its_ode():
    """ω(λ) = ∫_0^λ sqrt(1 + s²)/(1 − s²) ds by adaptive quadrature."""
    integrate = pytest.importorskip("scipy.integrate")
    for lam in (-0.95, -0.3, 0.0, 0.5, 0.9, 0.999):
        quad, _ = integrate.quad(lambda s: math.sqrt(1 + s * s) / (1 - s * s), 0.0, lam,
                                 epsabs=1e-13, epsrel=1e-12)  # fmt: skip
        assert optimal_parameter(lam) == pytest.approx(quad, rel=1e-10, abs=1e-13)


def test_optimal_parameter_keeps_relative_precision_near_zero():
    """ω(λ) = λ + λ³/2 + O(λ⁵) (the series of the integrand 1 + 3s²/2): relative precision down to
    the smallest |λ|, with the sign, and so does the inverse."""
    lam = np.array([1e-300, 1e-17, -1e-12, 1e-8, -1e-4])
    np.testing.assert_allclose(optimal_parameter(lam), lam + lam**3 / 2, rtol=4e-16, atol=0)
    np.testing.assert_allclose(optimal_parametrization(lam).lam, lam - lam**3 / 2, rtol=1e-12)


def test_optimal_parametrization_has_unit_normalised_sensitivity():
    """The defining property γ(λ)² λ'(ω)² E[(∂_λ h)²] = 1, with λ'(ω) by finite differences of the
    numerical inverse (independent of the ODE used to derive it)."""
    omega = np.linspace(-8, 8, 33)
    lam, (dlam,) = optimal_parametrization(omega)
    np.testing.assert_allclose(optimal_parameter(lam), omega, atol=1e-9)
    fd = _central_difference(lambda w: optimal_parametrization(w).lam, omega, h=1e-5)
    np.testing.assert_allclose(dlam, fd, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(parameter_sensitivity(lam, fd), 1.0, rtol=1e-6)
    assert np.all(np.diff(lam) > 0) and np.all(np.abs(lam) < 1)


def test_exponential_tames_and_polar_suffers_the_curse():
    lam = np.array([0.9, 0.99, 0.999, 0.9999])
    nu = np.log(-np.log(lam))
    exp_lam, (d_nu, _) = exponential_parametrization(nu, 0.0 * nu - 40)  # arg λ ≈ 4e-18
    exponential = parameter_sensitivity(exp_lam, d_nu)
    assert np.all(np.diff(exponential) > 0) and abs(exponential[-1] - 0.5) < 1e-3
    polar = parameter_sensitivity(lam, np.ones_like(lam))
    np.testing.assert_allclose(polar, (1 + lam**2) / (1 - lam**2) ** 2)


# -- teacher–student landscape ------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [(0.5, 0.9), (-0.7, 0.3), (0.8 * np.exp(0.6j), 0.9 * np.exp(-2j))])
@pytest.mark.parametrize("rho", [0.0, 0.7])
def test_cross_covariance_equals_its_series(a, b, rho):
    k = np.arange(800)
    C = rho ** np.abs(k[:, None] - k[None, :])
    series = (a**k) @ C @ np.conj(b**k)
    assert cross_covariance(a, b, rho) == pytest.approx(series, rel=1e-10)
    assert cross_covariance(a, a, rho) == pytest.approx(hidden_second_moment(a, rho), rel=1e-12)


def _simulate_pair(lam, lam_star, rho, normalized, N=4000, T=300, seed=0):
    """States of student and teacher after T steps from AR(1) inputs started in stationarity."""
    rng = np.random.default_rng(seed)
    c = input_normalization(lam) if normalized else 1.0
    c_star = input_normalization(lam_star) if normalized else 1.0
    h = np.zeros(N, dtype=complex)
    h_star = np.zeros(N, dtype=complex)
    x = rng.standard_normal(N)
    for _ in range(T):  # |λ|^T < 1e-13: the zero start is forgotten
        h, h_star = lam * h + c * x, lam_star * h_star + c_star * x
        x = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(N)
    return h, h_star


@pytest.mark.parametrize(
    "lam, lam_star", [(0.5, 0.9), (-0.6, 0.85), (0.7 * np.exp(0.8j), 0.9 * np.exp(2.0j))]
)
@pytest.mark.parametrize("rho", [0.0, 0.6])
@pytest.mark.parametrize("normalized", [False, True])
def test_teacher_student_loss_against_monte_carlo(lam, lam_star, rho, normalized):
    h, h_star = _simulate_pair(lam, lam_star, rho, normalized)
    u = h - h_star
    _mean_within(0.5 * np.abs(u) ** 2, teacher_student_loss(lam, lam_star, rho, normalized))
    real = teacher_student_loss(lam, lam_star, rho, normalized, real_part=True)
    _mean_within(0.5 * u.real**2, real)


def test_teacher_student_loss_vanishes_at_the_teacher_only():
    lam_star = np.array([0.0, 0.9, -0.5, 0.95 * np.exp(1j)])
    for normalized in (False, True):
        for real_part in (False, True):
            at = teacher_student_loss(lam_star, lam_star, 0.5, normalized, real_part)
            np.testing.assert_allclose(at, 0.0, atol=1e-12)
    grid = np.linspace(-0.99, 0.99, 199)
    loss = teacher_student_loss(grid, 0.9, 0.3, normalized=True)
    assert np.all(loss > -1e-12) and abs(grid[np.argmin(loss)] - 0.9) < 0.01  # rounding near λ*


# -- LRU ring variance ---------------------------------------------------------------------------


def test_lru_ring_variance_closed_forms():
    for r_min, r_max in ((0.0, 0.9), (0.5, 0.99), (0.9, 0.999)):
        log_ratio = math.log((1 - r_min**2) / (1 - r_max**2)) / (r_max**2 - r_min**2)
        assert lru_ring_variance(r_min, r_max) == pytest.approx(log_ratio, rel=1e-12)
        assert lru_ring_variance(r_min, r_max, normalized=True) == pytest.approx(1.0, rel=1e-12)
        # a full circle of phases averages the input correlation away
        assert lru_ring_variance(r_min, r_max, rho=0.8) == pytest.approx(log_ratio, rel=1e-12)
    assert lru_ring_variance(0.5, 0.5, rho=0.3, max_phase=0.0) == pytest.approx(
        hidden_second_moment(0.5, 0.3)
    )
    assert lru_ring_variance(0.0, 1.0) == math.inf
    assert lru_ring_variance(0.0, 1.0, normalized=True) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "r_min, r_max, rho, max_phase",
    [(0.0, 0.95, 0.5, math.pi), (0.5, 0.99, 0.9, 0.3), (0.9, 0.999, 0.8, 2 * math.pi),
     (0.2, 0.9, 0.7, 0.0)],
)  # fmt: skip
@pytest.mark.parametrize("normalized", [False, True])
def test_lru_ring_variance_against_ring_samples(r_min, r_max, rho, max_phase, normalized):
    """Average the per-λ closed form over λ drawn by the LRU's own ring_sample."""
    pytest.importorskip("torch")
    from lyapkit.trainers.models.linear import ring_sample

    radius, phase = ring_sample(200_000, r_min, r_max, max_phase, np.random.default_rng(2))
    lam = radius * np.exp(1j * phase)
    samples = hidden_second_moment(lam, rho)
    if normalized:
        samples = samples * input_normalization(lam) ** 2
    _mean_within(samples, lru_ring_variance(r_min, r_max, rho, max_phase, normalized))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"r_min": 0.5, "r_max": 0.4}, "r_min"), ({"r_min": 0.1, "r_max": 0.5, "rho": 1.0}, "rho"),
     ({"r_min": 0.1, "r_max": 0.5, "max_phase": 7.0}, "max_phase")],
)  # fmt: skip
def test_lru_ring_variance_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lru_ring_variance(**kwargs)
