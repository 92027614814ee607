"""Property test of the WCRNN weak-coupling prediction (lyapkit.theory.wcrnn_prediction) against
the measured spectrum of random linear-residual WCRNNs, with a first-order error bound."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.theory import wcrnn_prediction

# sub-critical moduli 0.15 apart: a super-critical state would saturate tanh, making J = R exactly
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
