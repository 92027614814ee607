"""Closed-form predictions of ``lyapkit.theory`` against exact series, Monte-Carlo simulation and
measured spectra and gradients: second moments and sensitivities, the characteristic frequency,
parametrisations, the teacher–student landscape, LRU ring variances, gradient propagation rates and
the WCRNN weak-coupling prediction."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.gradients import gradient_propagation
from lyapkit.theory import (
    characteristic_frequency,
    cross_covariance,
    exponential_parametrization,
    gradient_norm_rate,
    hidden_second_moment,
    input_normalization,
    lru_ring_variance,
    memory_regime,
    optimal_parameter,
    optimal_parametrization,
    parameter_sensitivity,
    polar_parametrization,
    residual_exponents,
    sensitivity_second_moment,
    teacher_student_loss,
    wcrnn_prediction,
)
from lyapkit.trainers.models import WCRNN


def _series(lam, rho, K=1200):
    """The defining double sums Σ_{k,l<K} c_k c̄_l ρ^|k−l| with c_k = λ^k and k λ^{k−1} (exact up to
    a tail below |λ|^K)."""
    k = np.arange(K)
    direct, derivative = lam**k, k * lam ** np.maximum(k - 1, 0)
    C = rho ** np.abs(k[:, None] - k[None, :])
    return (direct @ C @ direct.conj()).real, (derivative @ C @ derivative.conj()).real


@settings(max_examples=40, deadline=None)
@given(
    modulus=st.floats(0.0, 0.95),
    angle=st.floats(-np.pi, np.pi),
    rho=st.floats(0.0, 0.95),
    real=st.booleans(),
)
def test_moments_equal_their_defining_series(modulus, angle, rho, real):
    lam = modulus * np.sign(angle) if real else modulus * np.exp(1j * angle)
    h2, dh2 = _series(lam, rho)
    assert hidden_second_moment(lam, rho) == pytest.approx(h2, rel=1e-9)
    assert sensitivity_second_moment(lam, rho) == pytest.approx(dh2, rel=1e-9)


def test_known_special_cases():
    lam = np.array([0.0, 0.5, 0.9, -0.7])
    np.testing.assert_allclose(hidden_second_moment(lam), 1 / (1 - lam**2))
    np.testing.assert_allclose(sensitivity_second_moment(lam), (1 + lam**2) / (1 - lam**2) ** 3)
    np.testing.assert_allclose(input_normalization(lam) ** 2 * hidden_second_moment(lam), 1.0)
    # the sensitivity outgrows the state as λ → 1: the curse of memory
    ratio = sensitivity_second_moment(lam[:3]) / hidden_second_moment(lam[:3])
    assert np.all(np.diff(ratio) > 0)


@pytest.mark.parametrize("lam", [0.5, 0.9, -0.7, 0.8 * np.exp(0.6j), 0.9 * np.exp(2.0j)])
@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_moments_against_monte_carlo_with_autodiff_sensitivity(lam, rho):
    """Simulate the recurrence from AR(1) inputs in stationarity; ∂_λ h by forward-mode autodiff
    (torch.func.jvp, which for complex λ is the holomorphic derivative). Tolerance: 5 standard
    errors of the sample mean."""
    torch = pytest.importorskip("torch")
    N, T = 5_000, 300  # |λ|^T < 1e-13: the start is forgotten
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(T, N, dtype=torch.float64, generator=generator)
    x = [noise[0]]
    for t in range(1, T):
        x.append(rho * x[-1] + np.sqrt(1 - rho**2) * noise[t])
    dtype = torch.complex128 if np.iscomplexobj(lam) else torch.float64

    def final_state(lam_):
        h = torch.zeros(N, dtype=dtype)
        for xt in x:
            h = lam_ * h + xt
        return h

    lam_t = torch.tensor(lam, dtype=dtype)
    h, dh = torch.func.jvp(final_state, (lam_t,), (torch.ones((), dtype=dtype),))
    for samples, predicted in (
        (h.abs() ** 2, hidden_second_moment(lam, rho)),
        (dh.abs() ** 2, sensitivity_second_moment(lam, rho)),
    ):
        samples = samples.numpy()
        stderr = samples.std() / np.sqrt(N)
        assert abs(samples.mean() - predicted) < 5 * stderr, (samples.mean(), predicted, stderr)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hidden_second_moment(1.0), "lam"),
        (lambda: sensitivity_second_moment(0.5j + 0.9), "lam"),
        (lambda: hidden_second_moment(0.5, rho=1.0), "rho"),
        (lambda: input_normalization(np.array([0.5, -1.2])), "lam"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


N, T, BATCH, GAMMA = 6, 80, 8, 0.01


def _block(modulus, angle):
    c, s = np.cos(angle), np.sin(angle)
    return modulus * np.array([[c, -s], [s, c]])


def _dominated_normal_residual(rho, dominant, kappa, rng):
    """``R = B Λ Bᵀ`` (``B`` random orthogonal) with a dominant eigenvalue ``±ρ`` or pair
    ``ρ e^{±iφ}`` and the other eigenvalues (real or complex pairs) of modulus in ``[0.1ρ, κρ]``.
    Returns ``R``, the orthogonal projector on the dominant eigenspace, ``κρ`` (the largest other
    modulus allowed) and ``B``."""
    blocks = (
        [_block(rho, rng.uniform(0.2, 3.0))]
        if dominant == "complex"
        else [np.array([[rho if dominant == "real+" else -rho]])]
    )
    d = blocks[0].shape[0]
    size = d
    while size < N:
        modulus = rng.uniform(0.1, kappa) * rho
        if N - size >= 2 and rng.random() < 0.5:
            blocks.append(_block(modulus, rng.uniform(0.2, 3.0)))
        else:
            blocks.append(np.array([[modulus * rng.choice([-1.0, 1.0])]]))
        size += blocks[-1].shape[0]
    Lam = np.zeros((N, N))
    i = 0
    for b in blocks:
        Lam[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    basis, _ = np.linalg.qr(rng.standard_normal((N, N)))
    return basis @ Lam @ basis.T, basis[:, :d] @ basis[:, :d].T, kappa * rho, basis


def _rate_interval(rho, rho2, delta, s0, steps):
    """Bounds on the least-squares rate of ``‖v_k‖``, ``v_{k+1} = (Rᵀ + F_k) v_k``, ``‖F_k‖ ≤ δ``,
    over the lags ``k = 0 … steps−1``, for a normal ``R`` with dominant modulus ``ρ`` on the
    eigenspace of the projector ``P`` and ``‖Rᵀ Q‖ ≤ ρ₂`` on its complement ``Q = I − P``.

    With ``p_k = ‖P v_k‖``, ``s_k = ‖Q v_k‖/p_k``, ``c_k = sqrt(1 + s_k²)`` (``‖v_k‖ = p_k c_k``)::

        p_k (ρ − δ c_k) ≤ p_{k+1} ≤ p_k (ρ + δ c_k),   s_{k+1} ≤ (ρ₂ s_k + δ c_k) / (ρ − δ c_k)

    The right side grows with ``s_k``, so iterating it from ``s_0`` bounds every ``s_k`` (the
    first-order weak-coupling term ``δ c_k``). ``log‖v_k‖ = log p_k + e_k`` with
    ``0 ≤ e_k ≤ ½ log(1 + s̄_k²)`` (the finite-T transient of the sub-dominant modes). The
    least-squares slope is ``Σ_j w_j (y_{j+1} − y_j)`` with ``w_j = Σ_{k>j} (k − k̄)/S > 0``,
    ``Σ w_j = 1``, for the increments of ``log p``, plus ``Σ_k (k − k̄) e_k / S`` for ``e``."""
    s = np.empty(steps)
    s[0] = s0
    for k in range(steps - 1):
        c = np.hypot(1.0, s[k])
        assert rho - delta * c > 0, "weak-coupling bound not applicable: δ c ≥ ρ"
        s[k + 1] = (rho2 * s[k] + delta * c) / (rho - delta * c)
    c = np.hypot(1.0, s)
    k = np.arange(steps)
    centred = k - k.mean()
    S = (centred**2).sum()
    w = np.cumsum(centred[::-1])[::-1][1:] / S  # w_j = Σ_{k>j} (k − k̄)/S, j = 0 … steps−2
    e_max = 0.5 * np.log1p(s**2)
    low = w @ np.log(rho - delta * c[:-1]) + (centred * e_max)[centred < 0].sum() / S
    high = w @ np.log(rho + delta * c[:-1]) + (centred * e_max)[centred > 0].sum() / S
    return low, high


@settings(max_examples=12, deadline=None)
@given(
    rho=st.floats(0.85, 1.05),
    dominant=st.sampled_from(["real+", "real-", "complex"]),
    kappa=st.floats(0.3, 0.8),
    seed=st.integers(0, 2**16),
)
@pytest.mark.usefixtures("torch_float64")
def test_gradient_norm_rate_against_wcrnn(rho, dominant, kappa, seed):
    rng = np.random.default_rng(seed)
    R, P, rho2, basis = _dominated_normal_residual(rho, dominant, kappa, rng)
    torch.manual_seed(seed)
    model = WCRNN(2, N, 1, residual=R, gamma=GAMMA)
    # the readout c gives every invariant plane of R (columns of basis) equal weight, so
    # ∂L/∂x_T ∝ c has components along the sub-dominant modes (a finite-T transient) and
    # s_0 = ‖Q c‖/‖P c‖ = sqrt((N − d)/d)
    c = basis.sum(axis=1) / np.sqrt(N)
    with torch.no_grad():
        model.decoder.weight.copy_(torch.as_tensor(c)[None])
    inputs, targets = torch.randn(BATCH, T, 2), torch.randn(BATCH, 1)
    measured = gradient_propagation(model, inputs, targets, "mse").rate

    # J_t − R = diag(γ(1 − a_t²)) W, so ‖F_t‖ ≤ δ = γ ‖W‖₂
    delta = GAMMA * np.linalg.norm(model.recurrent.weight.detach().numpy(), 2)
    s0 = np.linalg.norm(c - P @ c) / np.linalg.norm(P @ c)
    low, high = _rate_interval(rho, rho2, delta, s0, T)
    predicted = gradient_norm_rate(R)
    assert predicted == pytest.approx(np.log(rho), abs=1e-12)
    assert low <= predicted <= high
    assert low <= measured <= high, (measured, predicted, low, high)


@pytest.mark.usefixtures("torch_float64")
def test_gradient_norm_rate_closed_forms():
    assert gradient_norm_rate(np.diag([0.5, 0.9, -0.95])) == pytest.approx(np.log(0.95))
    assert gradient_norm_rate(_block(1.1, 0.7)) == pytest.approx(np.log(1.1))
    # a non-normal R: the rate is set by the eigenvalues, not by the norm ‖R‖ > 1
    assert gradient_norm_rate(np.array([[0.5, 10.0], [0.0, 0.4]])) == pytest.approx(np.log(0.5))
    assert gradient_norm_rate(np.zeros((2, 2))) == -np.inf
    with pytest.raises(ValueError, match="R must"):
        gradient_norm_rate(np.ones(3))


def _mean_within(samples, predicted, sigmas=5.0):
    stderr = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(samples.mean() - predicted) < sigmas * stderr, (samples.mean(), predicted, stderr)


def _central_difference(f, x, h=1e-6):
    return (f(x + h) - f(x - h)) / (2 * h)


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


@pytest.mark.parametrize("a, b", [(0.5, 0.9), (-0.7, 0.3), (0.8 * np.exp(0.6j), 0.9 * np.exp(-2j))])
@pytest.mark.parametrize("rho", [0.0, 0.7])
def test_cross_covariance_equals_its_series(a, b, rho):
    k = np.arange(800)
    C = rho ** np.abs(k[:, None] - k[None, :])
    series = (a**k) @ C @ np.conj(b**k)
    assert cross_covariance(a, b, rho) == pytest.approx(series, rel=1e-10)
    assert cross_covariance(a, a, rho) == pytest.approx(hidden_second_moment(a, rho), rel=1e-12)


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


MODULI = np.array([0.45, 0.6, 0.75, 0.9])


def _normal_residual(rng, n, rotational):
    """``R = Q D Qᵀ`` with ``Q`` random orthogonal and ``D`` real ``±d_i`` or rotation–scaling
    blocks ``d_i [[cos φ, −sin φ], [sin φ, cos φ]]``; returns ``R`` and the moduli ``|eig R|``."""
    moduli = rng.choice(MODULI, n)
    D = np.diag(moduli * rng.choice([-1.0, 1.0], n))
    if rotational:
        for i in range(0, n - 1, 2):
            phi = rng.uniform(0.2, 3.0)
            moduli[i + 1] = moduli[i]
            c, s = moduli[i] * math.cos(phi), moduli[i] * math.sin(phi)
            D[i : i + 2, i : i + 2] = [[c, -s], [s, c]]
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return Q @ D @ Q.T, moduli


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 6),
    rotational=st.booleans(),
    gamma=st.floats(1e-3, 0.02),
)
def test_wcrnn_exponents_approach_log_moduli_of_the_residual(seed, n, rotational, gamma):
    """|λ_i − log|eig_i R|| ≤ 2 ε / min|eig R| + 3 stderr_i, with ε = γ ‖W‖₂.

    In the orthonormal eigenbasis ``Q`` of the normal ``R`` the Jacobian is
    ``J_t = D + E_t``, ``E_t = Qᵀ diag(γ (1 − a_t²)) W Q``, so ``‖E_t‖₂ ≤ ε`` (``0 < 1 − a² ≤ 1``).
    To first order each exponent moves by at most ``ε / |d_i|`` (the norm of the perturbation
    relative to the modulus; a block of equal moduli ``d`` keeps its exponents within
    ``log(d ± ε)``, as its singular values stay in ``[d − ε, d + ε]``). The factor 2 covers the
    second-order terms ``O(ε² / (d · gap))``, small since distinct moduli are at least
    ``0.15 ≥ 3 ε`` apart (``ε ≤ 0.02 ‖W‖₂ ≈ 0.04``). The finite run adds its statistical error,
    3 of the standard errors that ``lyapunov_spectrum`` reports.
    """
    rng = np.random.default_rng(seed)
    R, moduli = _normal_residual(rng, n, rotational)
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    system = lk.WCRNNMap(R, W, gamma, V=rng.standard_normal((n, 1)), b=rng.standard_normal(n))
    steps, transient = 2000, 200
    res = lk.lyapunov_spectrum(
        system, steps=steps, transient=transient, inputs=rng.uniform(0, 1, (steps + transient, 1)),
        seed=seed % 2**31, backend="numpy",
    )  # fmt: skip
    predicted = wcrnn_prediction(R).exponents
    np.testing.assert_allclose(predicted, np.sort(np.log(moduli))[::-1], atol=1e-12)
    eps = gamma * np.linalg.norm(W, 2)
    bound = 2 * eps / moduli.min() + 3 * res.stderr
    error = np.abs(res.exponents - predicted)
    assert np.all(error <= bound), (error, bound)


def test_residual_exponents_refuse_complex_and_the_real_form_is_right():
    R = np.eye(2) * (1 + 1j)  # |eig| = √2: exponents log √2, which a cast to real loses
    with pytest.raises(TypeError, match="R must be a real matrix"):
        residual_exponents(R)
    with pytest.raises(TypeError, match="R must be a real matrix"):
        memory_regime(R)
    real_form = np.block([[R.real, -R.imag], [R.imag, R.real]])
    np.testing.assert_allclose(residual_exponents(real_form), [math.log(math.sqrt(2))] * 4)


def test_real_only_arguments_refuse_complex_and_nan_by_name():
    # a cast to float64 would keep the real part only, with a warning at most
    for call, name in [
        (lambda: optimal_parameter(np.array([0.5 + 0.5j])), "lam"),
        (lambda: optimal_parameter(0.5 + 0.5j), "lam"),
        (lambda: optimal_parametrization(np.array([0.3 + 2j])), "omega"),
        (lambda: characteristic_frequency(np.ones((2, 8)) * 1j), "sequences"),
    ]:
        with pytest.raises(TypeError, match=f"{name} must be real"):
            call()
    x = np.sin(2 * np.pi * np.arange(112) / 28) * np.ones((4, 1))
    x[0, 5] = np.nan  # argmax of an all-NaN power would give the lowest bin, 2π/112
    with pytest.raises(ValueError, match="sequences must be finite"):
        characteristic_frequency(x)


def test_characteristic_frequency_is_the_peak_of_the_one_sided_power():
    t = np.arange(112)
    # variance 0.5 at period 28 against 0.36 at the Nyquist frequency: the period-28 line holds
    # more variance, though its two-sided |X_k|² (T²/4) is below the Nyquist bin's (0.36 T²)
    x = (np.sin(2 * np.pi * t / 28) + 0.6 * (-1.0) ** t)[None, :]
    assert math.isclose(characteristic_frequency(x).omega, 2 * np.pi / 28)
    for T in (112, 113):  # with and without a Nyquist bin: Σ_k P(ω_k) = T Σ_t x_t² (Parseval)
        x = np.random.default_rng(T).standard_normal((1, T))
        centred = x - x.mean()
        power = characteristic_frequency(x).power
        assert math.isclose(power.sum(), T * float(np.sum(centred**2)), rel_tol=1e-12)
