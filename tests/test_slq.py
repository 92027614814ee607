"""Stochastic Lanczos quadrature (``lyapkit.slq``) on explicit matrices: Gauss quadrature of each
probe, moments of the spectrum, breakdown on a low-rank operator."""

import numpy as np
import pytest
from cases import random_symmetric
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from lyapkit.slq import lanczos_quadrature


def test_lanczos_quadrature_is_gauss_quadrature_of_each_probe():
    """With m steps, Σ_j w_j θ_j^k = qᵀA^k q exactly for k < 2m; weights sum to 1."""
    A, eig = random_symmetric(40, seed=2)
    m = 6
    sld = lanczos_quadrature(A, num_probes=5, lanczos_steps=m, seed=3)
    np.testing.assert_allclose(sld.weights.sum(1), 1, rtol=1e-12)
    rng = np.random.default_rng(3)  # the same probes
    probes = [rng.choice(np.array([-1.0, 1.0]), size=40) / np.sqrt(40) for _ in range(5)]
    for k in range(2 * m):
        exact = np.mean([q @ np.linalg.matrix_power(A, k) @ q for q in probes])
        assert sld.moment(k) == pytest.approx(exact, rel=1e-8, abs=1e-10)
    grid = np.linspace(eig.min() - 2, eig.max() + 2, 4001)
    assert np.trapezoid(sld.density(grid), grid) == pytest.approx(1, abs=1e-6)


def test_lanczos_quadrature_moments_match_the_spectrum():
    """Many probes: moments approach tr(A^k)/P within their sampling error."""
    A, eig = random_symmetric(30, seed=4)
    sld = lanczos_quadrature(aslinearoperator(A), num_probes=200, lanczos_steps=10, seed=5)
    per_probe = (sld.weights * sld.nodes**2).sum(1)
    stderr = per_probe.std(ddof=1) / np.sqrt(len(per_probe))
    assert abs(per_probe.mean() - np.mean(eig**2)) < 4 * stderr


def test_lanczos_breakdown_on_a_low_rank_operator():
    u = np.random.default_rng(0).standard_normal((20, 2))
    A = LinearOperator((20, 20), matvec=lambda x: u @ (u.T @ x), dtype=np.float64)
    sld = lanczos_quadrature(A, num_probes=3, lanczos_steps=10)
    np.testing.assert_allclose(sld.weights.sum(1), 1, rtol=1e-10)
    assert (sld.weights[:, 3:] == 0).all()  # Krylov spaces of dimension ≤ 3: early breakdown
    exact = np.r_[0.0, np.linalg.eigvalsh(u.T @ u)]
    used = sld.nodes[sld.weights > 1e-12]
    assert np.abs(used[:, None] - exact[None]).min(1).max() < 1e-8 * exact.max()
