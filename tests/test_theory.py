"""Closed-form predictions of lyapkit.theory against exact series and Monte-Carlo simulation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyapkit.theory import hidden_second_moment, input_normalization, sensitivity_second_moment


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
