"""Extreme eigenpairs (``lyapkit.eigensolvers``) of explicit operators against ``numpy.linalg.eigh``,
by every method and ordering, and the inverse participation ratio."""

import numpy as np
import pytest
from cases import dense_operator, random_symmetric

from lyapkit.eigensolvers import eigenpairs, inverse_participation_ratio


@pytest.mark.parametrize(
    ("which", "method"),
    [("LA", "lobpcg"), ("SA", "lobpcg"), ("LA", "lanczos"), ("SA", "lanczos"), ("LM", "lanczos")],
)
def test_eigenpairs_match_eigh(which, method):
    A, _ = random_symmetric(60, seed=5)
    A[0, 0] = -20.0  # the largest magnitude is negative: "LM" differs from "LA"
    values, vectors = np.linalg.eigh(A)
    key = {"LA": -values, "SA": values, "LM": -np.abs(values)}[which]
    order = np.argsort(key)[:3]
    got = eigenpairs(dense_operator(A), 3, which=which, method=method, tol=1e-10)
    np.testing.assert_allclose(got.eigenvalues, values[order], rtol=1e-8, atol=1e-8)
    overlap = np.abs(np.sum(got.eigenvectors * vectors[:, order], axis=0))
    np.testing.assert_allclose(overlap, 1.0, rtol=1e-6)


def test_small_operators_are_decomposed_densely_and_bad_arguments_named():
    A, eig = random_symmetric(10)
    got = eigenpairs(dense_operator(A), 2)  # P = 10 <= 3k + 8
    np.testing.assert_allclose(got.eigenvalues, np.sort(eig)[::-1][:2], rtol=1e-12)
    with pytest.raises(ValueError, match="k must be an integer between 1 and 10"):
        eigenpairs(dense_operator(A), 11)
    with pytest.raises(ValueError, match="which must be"):
        eigenpairs(dense_operator(A), 1, which="XX")
    with pytest.raises(ValueError, match="method must be 'lobpcg'"):
        eigenpairs(dense_operator(A), 1, which="LM", method="lobpcg")


def test_inverse_participation_ratio():
    P = 50
    np.testing.assert_allclose(inverse_participation_ratio(np.eye(P)[:, 3]), [1.0])
    np.testing.assert_allclose(inverse_participation_ratio(np.ones(P)), [1 / P])
    V = np.random.default_rng(0).standard_normal((P, 4))
    ipr = inverse_participation_ratio(V)
    assert ((ipr >= 1 / P) & (ipr <= 1)).all()
