"""The linear-operator base (``lyapkit.operators``): products of both array kinds, the algebra of
sums, scalings and adjoints, and the conversions, against the dense matrices they stand for."""

import numpy as np
import pytest
from cases import dense_operator, random_symmetric
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk

torch = pytest.importorskip("torch")


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), P=st.integers(3, 12), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_algebra_equals_the_dense_matrices(seed, P, a, b):
    rng = np.random.default_rng(seed)
    A, B = random_symmetric(P, seed)[0], rng.standard_normal((P, P))  # B is not symmetric
    opA, opB = dense_operator(A), dense_operator(B, torch_dtype=torch.float64)
    combined = a * opA - opB / 2 + b * (opA + opB)
    expected = a * A - B / 2 + b * (A + B)
    V = rng.standard_normal((P, 3))
    np.testing.assert_allclose(combined @ V, expected @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(combined.adjoint() @ V, expected.T @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((-opB).dense(), -B, rtol=1e-12, atol=1e-12)
    assert combined.symmetric is False and (opA + a * opA).symmetric is True
    scipy_op = combined.to_scipy()
    np.testing.assert_allclose(scipy_op.matvec(V[:, 0]), expected @ V[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        scipy_op.rmatvec(V[:, 0]), expected.T @ V[:, 0], rtol=1e-12, atol=1e-12
    )


def test_products_return_the_kind_they_are_given():
    A = random_symmetric(5)[0]
    for op in (dense_operator(A), dense_operator(A, torch_dtype=torch.float64)):
        x = np.arange(5.0)
        out = op @ x
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        np.testing.assert_allclose(out, A @ x, rtol=1e-12)
        t = torch.arange(5.0, dtype=torch.float32)
        out_t = op @ t
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
        np.testing.assert_allclose(out_t.numpy(), A @ x, rtol=1e-6)
        assert (op @ [1.0, 0, 0, 0, 0]).shape == (5,)  # array_like
        exact = op @ torch.arange(5)  # an integer tensor: the product in the operator's dtype
        assert exact.is_floating_point()
        np.testing.assert_allclose(exact.numpy(), A @ x, rtol=1e-12)
        assert op.matmat(np.zeros((5, 0))).shape == (5, 0)
        parts = op.unflatten(np.arange(5.0))
        assert list(parts) == ["a", "b"] and parts["b"].tolist() == [2.0, 3.0, 4.0]


def test_shapes_are_checked_and_named():
    op = dense_operator(np.eye(4))
    with pytest.raises(ValueError, match=r"vectors must have shape \(4,\) \(P = 4\), got \(3,\)"):
        op.matvec(np.ones(3))
    with pytest.raises(ValueError, match=r"vectors must have shape \(4, k\)"):
        op.matmat(np.ones(4))
    with pytest.raises(ValueError, match="cannot be added"):
        op + dense_operator(np.eye(5))
    with pytest.raises(ValueError, match="raise max_size"):
        op.dense(max_size=3)
    with pytest.raises(ValueError, match=r"v must have shape \(\.\.\., 4\)"):
        op.unflatten(np.ones(3))
    with pytest.raises(TypeError):
        op * "2"


def test_estimators_through_the_base():
    A, eig = random_symmetric(30, seed=3)
    op = dense_operator(A, kind="ggn")
    pairs = op.eigenpairs(k=3)
    np.testing.assert_allclose(pairs.eigenvalues, np.sort(eig)[::-1][:3], rtol=1e-6)
    assert pairs.kind == "ggn" and pairs.parameter_names == ["a", "b"]
    assert op.trace(num_matvecs=90) == pytest.approx(eig.sum(), rel=1e-10)  # m/3 = P: exact
    sd = op.spectral_density(num_probes=4, lanczos_steps=30)
    assert sd.kind == "ggn" and sd.moment(1) == pytest.approx(eig.mean(), abs=0.5)


@pytest.mark.parametrize("torch_dtype", [None, torch.float64])
def test_preconditioned_operator_is_the_congruence(torch_dtype):
    A = random_symmetric(6, seed=1)[0]
    d = np.arange(1.0, 7.0)
    op = lk.PreconditionedOperator(dense_operator(A, torch_dtype=torch_dtype, kind="hessian"), d)
    expected = A / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(op.dense(), expected, rtol=1e-12)
    assert op.kind == "preconditioned hessian" and op.symmetric
    with pytest.raises(ValueError, match="preconditioner must be a positive"):
        lk.PreconditionedOperator(op, -d)
    with pytest.raises(ValueError, match="preconditioner must be a positive"):
        lk.PreconditionedOperator(op, d[:3])
