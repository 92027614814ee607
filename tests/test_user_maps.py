"""User maps: ``from_numpy`` (analytic or finite-difference Jacobians, vectorized or not, driven),
``from_numba`` (user @njit kernels on the numba and numpy backends), and errors for wrong use."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pytest

import lyapkit as lk

# A smooth nonlinear map of R^3 and its Jacobian, written for one state (x.shape == (3,)).


def smooth_step(x):
    return np.array(
        [
            np.sin(x[0]) * x[1] + 0.5 * x[2],
            np.exp(0.3 * x[0]) - x[1] ** 2,
            np.tanh(x[0] + x[2]) * np.cos(x[1]),
        ]
    )


def smooth_jacobian(x):
    t = np.tanh(x[0] + x[2])
    sech2 = 1 - t * t
    return np.array(
        [
            [np.cos(x[0]) * x[1], np.sin(x[0]), 0.5],
            [0.3 * np.exp(0.3 * x[0]), -2 * x[1], 0.0],
            [sech2 * np.cos(x[1]), -t * np.sin(x[1]), sech2 * np.cos(x[1])],
        ]
    )


def smooth_step_vec(x):
    """The same map for a batch ``(..., 3)``."""
    return np.stack(
        [
            np.sin(x[..., 0]) * x[..., 1] + 0.5 * x[..., 2],
            np.exp(0.3 * x[..., 0]) - x[..., 1] ** 2,
            np.tanh(x[..., 0] + x[..., 2]) * np.cos(x[..., 1]),
        ],
        -1,
    )


def smooth_jacobian_vec(x):
    return np.vectorize(smooth_jacobian, signature="(n)->(n,n)")(x)


def _states(seed=0, batch=(6,)):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, batch + (3,))


def _within(J, ref, tol):
    """|J − ref| <= tol · max(1, |ref|) entrywise."""
    return np.all(np.abs(J - ref) <= tol * np.maximum(1.0, np.abs(ref)))


# --------------------------------------------------------------------------------------------
# from_numpy
# --------------------------------------------------------------------------------------------


def test_analytic_jacobian_is_used_as_given():
    calls = []

    def sentinel(x):
        calls.append(np.array(x))
        return np.full((3, 3), 7.0) + x[0]  # deliberately not the true Jacobian

    m = lk.from_numpy(smooth_step, 3, jacobian=sentinel)
    assert m.jacobian_method == "analytic"
    X = _states(1)
    J = m.jacobian(X)
    assert J.shape == (6, 3, 3)
    np.testing.assert_array_equal(J, 7.0 + X[:, 0, None, None] * np.ones((6, 3, 3)))
    assert len(calls) == 6  # one call per state, not finite differences
    np.testing.assert_array_equal(np.stack(calls), X)
    # A correct analytic Jacobian is returned exactly.
    good = lk.from_numpy(smooth_step, 3, jacobian=smooth_jacobian)
    np.testing.assert_array_equal(good.jacobian(X), smooth_jacobian_vec(X))
    np.testing.assert_array_equal(good.step(X), smooth_step_vec(X))


def test_finite_difference_jacobian_is_labelled_and_accurate(caplog):
    with caplog.at_level(logging.WARNING, logger="lyapkit"):
        m = lk.from_numpy(smooth_step, 3)
    assert m.jacobian_method == "finite-difference"
    assert any("finite differences" in r.getMessage() for r in caplog.records)
    assert "finite-difference" in repr(m)
    X = _states(2, (4, 5))  # two batch axes
    J = m.jacobian(X)
    assert J.shape == (4, 5, 3, 3)
    ref = smooth_jacobian_vec(X)
    assert _within(J, ref, 1e-7), np.abs(J - ref).max()
    # Large coordinates: the step scales with |x_j|, the relative error stays small.
    big = _states(3) * 40.0
    big[:, 0] = np.clip(big[:, 0], -10, 10)  # keep exp(0.3 x) moderate
    assert _within(m.jacobian(big), smooth_jacobian_vec(big), 1e-7)
    # The label travels into results.
    res = lk.lyapunov_spectrum(m, steps=10, x0=[0.1, 0.2, 0.3], seed=0, backend="numpy")
    assert res.jacobian_method == "finite-difference"


@pytest.mark.parametrize("with_jacobian", [True, False])
def test_vectorized_and_looped_user_functions_agree(with_jacobian):
    looped = lk.from_numpy(smooth_step, 3, jacobian=smooth_jacobian if with_jacobian else None)
    vec = lk.from_numpy(
        smooth_step_vec,
        3,
        jacobian=smooth_jacobian_vec if with_jacobian else None,
        vectorized=True,
    )
    for batch in [(), (1,), (7,), (2, 3)]:
        X = _states(4, batch)
        np.testing.assert_allclose(vec.step(X), looped.step(X), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(vec.jacobian(X), looped.jacobian(X), rtol=1e-12, atol=1e-13)
        assert looped.step(X).shape == batch + (3,)
        assert looped.jacobian(X).shape == batch + (3, 3)
    kw = dict(steps=200, ensemble=3, seed=5, backend="numpy")
    x0 = np.full((3, 3), 0.1) + 0.05 * np.arange(3)[:, None]
    a = lk.lyapunov_spectrum(looped, x0=x0, **kw)
    b = lk.lyapunov_spectrum(vec, x0=x0, **kw)
    np.testing.assert_allclose(a.member_exponents, b.member_exponents, rtol=0, atol=1e-10)


def _driven_tanh(n=4, m=2, seed=6):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    U = rng.standard_normal((n, m))
    b = 0.1 * rng.standard_normal(n)
    return W, U, b


@pytest.mark.parametrize("vectorized", [False, True])
def test_driven_user_map(vectorized):
    g = 0.9
    W, U, b = _driven_tanh()
    gW = g * W

    def step(x, u):
        return np.tanh(x @ gW.T + b + u @ U.T)

    def jac(x, u):
        y = step(x, u)
        return (1 - y * y)[..., :, None] * gW

    m = lk.from_numpy(step, 4, jac, input_dim=2, vectorized=vectorized)
    assert (m.dim, m.input_dim) == (4, 2)
    rng = np.random.default_rng(7)
    X, S = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    for x, s, y, J in zip(X, S, m.step(X, S), m.jacobian(X, S), strict=True):
        np.testing.assert_allclose(y, np.tanh(gW @ x + U @ s + b), rtol=1e-14)
        np.testing.assert_allclose(J, np.diag(1 - y**2) @ gW, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(m.step(X), m.step(X, np.zeros((5, 2))))  # default input: 0
    # Finite differences of a driven map, with a shared input broadcast over the batch.
    fd = lk.from_numpy(step, 4, input_dim=2, vectorized=vectorized)
    assert _within(fd.jacobian(X, S[0]), m.jacobian(X, np.broadcast_to(S[0], (5, 2))), 1e-7)
    # Its spectrum equals the built-in driven tanh network's (same weights, inputs, seed, x0).
    T = 300
    inputs = rng.standard_normal((T, 2))
    x0 = rng.uniform(-0.5, 0.5, 4)
    builtin = lk.TanhNetwork(4, g=g, input_dim=2, W=W, U=U, b=b)
    kw = dict(steps=T, inputs=inputs, x0=x0, seed=8, backend="numpy")
    r_user = lk.lyapunov_spectrum(m, **kw)
    r_builtin = lk.lyapunov_spectrum(builtin, **kw)
    np.testing.assert_allclose(r_user.exponents, r_builtin.exponents, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r_user.final_state, r_builtin.final_state, rtol=0, atol=1e-12)
    # Per-member inputs (ensemble, T, m).
    per_member = rng.standard_normal((2, T, 2))
    kw2 = dict(steps=T, inputs=per_member, ensemble=2, seed=9, backend="numpy")
    np.testing.assert_allclose(
        lk.lyapunov_spectrum(m, **kw2).member_exponents,
        lk.lyapunov_spectrum(builtin, **kw2).member_exponents,
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.parametrize("vectorized", [False, True])
def test_user_henon_spectrum_equals_builtin(vectorized):
    a, b = 1.4, 0.3
    if vectorized:

        def step(x):
            return np.stack([1 - a * x[..., 0] ** 2 + x[..., 1], b * x[..., 0]], -1)

        def jac(x):
            one = x[..., 0] * 0 + 1
            return np.stack(
                [np.stack([-2 * a * x[..., 0], one], -1), np.stack([b * one, 0 * one], -1)], -2
            )

    else:

        def step(x):
            return np.array([1 - a * x[0] ** 2 + x[1], b * x[0]])

        def jac(x):
            return np.array([[-2 * a * x[0], 1.0], [b, 0.0]])

    user = lk.from_numpy(step, 2, jac, vectorized=vectorized, name="my_henon")
    x0 = [0.05, -0.02]
    kw = dict(steps=2000, x0=x0, seed=2024, backend="numpy")
    r_user = lk.lyapunov_spectrum(user, **kw)
    r_builtin = lk.lyapunov_spectrum(lk.Henon(a, b), **kw)
    assert r_user.backend == r_builtin.backend == "numpy"
    np.testing.assert_allclose(r_user.exponents, r_builtin.exponents, rtol=0, atol=1e-12)
    # Sanity: the Hénon spectrum (Sprott 2003), sum = log b.
    assert r_user.exponents[0] == pytest.approx(0.419, abs=0.03)
    assert r_user.exponents.sum() == pytest.approx(np.log(b), abs=1e-9)


def test_auto_backend_for_numpy_user_map_is_numpy():
    m = lk.from_numpy(smooth_step, 3, smooth_jacobian)
    assert lk.get_backend("auto", m).name == "numpy"
    assert m.numba_kernels() is None and m.namespaces == {"numpy"}


def test_from_numpy_validation():
    with pytest.raises(TypeError, match="step"):
        lk.from_numpy(42, 2)
    with pytest.raises(TypeError, match="jacobian"):
        lk.from_numpy(smooth_step, 3, jacobian="nope")
    with pytest.raises(ValueError, match="dim"):
        lk.from_numpy(smooth_step, 0)
    with pytest.raises(ValueError, match="input_dim"):
        lk.from_numpy(smooth_step, 3, input_dim=-1)


# --------------------------------------------------------------------------------------------
# from_numba
# --------------------------------------------------------------------------------------------


def _numba_henon_kernels():
    numba = pytest.importorskip("numba")

    @numba.njit
    def step(x, u, p, out):
        a, b = p
        out[0] = 1.0 - a * x[0] * x[0] + x[1] + u[0]
        out[1] = b * x[0]

    @numba.njit
    def jacobian(x, u, p, J):
        a, b = p
        J[0, 0] = -2.0 * a * x[0]
        J[0, 1] = 1.0
        J[1, 0] = b
        J[1, 1] = 0.0

    return step, jacobian


def test_from_numba_numba_and_numpy_backends_agree():
    step, jacobian = _numba_henon_kernels()
    a, b = 1.4, 0.3
    m = lk.from_numba(step, jacobian, 2, input_dim=1, params=(a, b))
    assert (m.dim, m.input_dim, m.jacobian_method) == (2, 1, "analytic")
    k = m.numba_kernels()
    assert k.step is step and k.jacobian is jacobian and k.params == (a, b)
    assert lk.get_backend("auto", m).name == "numba"
    # step/jacobian on the numpy side equal the equations written out.
    rng = np.random.default_rng(10)
    X, S = rng.uniform(-1, 1, (4, 2)), rng.uniform(-0.1, 0.1, (4, 1))
    np.testing.assert_allclose(
        m.step(X, S),
        np.stack([1 - a * X[:, 0] ** 2 + X[:, 1] + S[:, 0], b * X[:, 0]], -1),
        rtol=1e-14,
        atol=1e-15,
    )
    np.testing.assert_array_equal(m.jacobian(X, S)[:, 0, 0], -2 * a * X[:, 0])
    # A short run (the map is chaotic: a long one would amplify rounding differences).
    T = 25
    inputs = rng.uniform(-0.01, 0.01, (T, 1))
    x0 = np.array([[0.05, 0.02], [-0.1, 0.07]])
    kw = dict(steps=T, inputs=inputs, x0=x0, ensemble=2, seed=11)
    r_numba = lk.lyapunov_spectrum(m, backend="numba", **kw)
    r_numpy = lk.lyapunov_spectrum(m, backend="numpy", **kw)
    assert (r_numba.backend, r_numpy.backend) == ("numba", "numpy")
    np.testing.assert_allclose(r_numba.member_exponents, r_numpy.member_exponents, atol=1e-9)
    np.testing.assert_allclose(r_numba.final_state, r_numpy.final_state, atol=1e-9)
    # Independently: iterate the map by hand; the final states agree.
    x = x0.copy()
    for t in range(T):
        x = np.stack([1 - a * x[:, 0] ** 2 + x[:, 1] + inputs[t, 0], b * x[:, 0]], -1)
    np.testing.assert_allclose(r_numpy.final_state, x, atol=1e-9)
    # Sum of the exponents is log|b| for every member (det J = −b).
    np.testing.assert_allclose(r_numba.member_exponents.sum(-1), np.log(b), atol=1e-9)


def test_autonomous_from_numba_map_on_numpy_side():
    numba = pytest.importorskip("numba")

    @numba.njit
    def step(x, u, p, out):
        out[0] = p[0] * x[0] * (1.0 - x[0])

    @numba.njit
    def jacobian(x, u, p, J):
        J[0, 0] = p[0] * (1.0 - 2.0 * x[0])

    m = lk.from_numba(step, jacobian, 1, params=(3.9,))
    X = np.random.default_rng(12).uniform(0, 1, (5, 1))
    np.testing.assert_allclose(m.step(X), 3.9 * X * (1 - X), rtol=1e-14)
    np.testing.assert_allclose(m.jacobian(X)[..., 0], 3.9 * (1 - 2 * X), rtol=1e-14, atol=1e-15)
    r = lk.lyapunov_spectrum(m, steps=100, x0=[0.3], seed=0, backend="numpy")
    ref = lk.lyapunov_spectrum(lk.Logistic(3.9), steps=100, x0=[0.3], seed=0, backend="numpy")
    np.testing.assert_allclose(r.exponents, ref.exponents, atol=1e-12)


def test_from_numba_rejects_plain_python_functions():
    step, jacobian = _numba_henon_kernels()

    def py_step(x, u, p, out):
        out[:] = x

    def py_jac(x, u, p, J):
        J[:] = 0

    with pytest.raises(TypeError, match=r"\bstep\b"):
        lk.from_numba(py_step, jacobian, 2)
    with pytest.raises(TypeError, match=r"\bjacobian\b"):
        lk.from_numba(step, py_jac, 2)
    with pytest.raises(TypeError, match=r"\bstep\b"):
        lk.from_numba(py_step, py_jac, 2)


# --------------------------------------------------------------------------------------------
# Errors for wrong use
# --------------------------------------------------------------------------------------------


def test_plain_function_is_not_a_system():
    with pytest.raises(TypeError, match="from_numpy"):
        lk.lyapunov_spectrum(smooth_step, steps=10)
    with pytest.raises(TypeError, match="from_numpy"):
        lk.max_lyapunov_twin(smooth_step, steps=10)


def _listed_backends(message: str) -> list[str]:
    match = re.search(r"backends that can: \[(.*?)\]", message)
    assert match, message
    return re.findall(r"'([^']+)'", match.group(1))


def test_numpy_only_map_on_torch_backend_raises_backend_error():
    pytest.importorskip("torch")
    m = lk.from_numpy(smooth_step, 3, smooth_jacobian)
    with pytest.raises(lk.BackendError, match="torch") as info:
        lk.lyapunov_spectrum(m, steps=10, backend="torch")
    assert _listed_backends(str(info.value)) == ["numpy"]
    assert isinstance(info.value, RuntimeError)


def test_numba_map_on_torch_backend_lists_numpy_and_numba():
    pytest.importorskip("torch")
    step, jacobian = _numba_henon_kernels()
    m = lk.from_numba(step, jacobian, 2, input_dim=1, params=(1.4, 0.3))
    with pytest.raises(lk.BackendError) as info:
        lk.get_backend("torch", m)
    assert sorted(_listed_backends(str(info.value))) == ["numba", "numpy"]


def _complex_step(x):
    return (1 + 1j) * x


def _three(x):
    return np.array([x[0], x[1], 0.0])


def _flat_jacobian(x):
    return np.array([-2.8 * x[0], 1.0, 0.3, 0.0])


def _henon(x):
    return np.array([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])


def test_user_map_returning_complex_values_is_refused_by_name():
    step_complex = lk.from_numpy(_complex_step, 2, lambda x: np.eye(2))
    with pytest.raises(TypeError, match=r"step callable '_complex_step' returned complex"):
        lk.lyapunov_spectrum(step_complex, steps=5, seed=0, backend="numpy")
    jac_complex = lk.from_numpy(lambda x: 0.5 * x, 2, lambda x: np.eye(2) * 1j, vectorized=True)
    with pytest.raises(TypeError, match=r"jacobian callable .* returned complex"):
        lk.lyapunov_spectrum(jac_complex, steps=5, seed=0, backend="numpy")
    with pytest.raises(TypeError, match="complex"):
        step_complex.step(np.ones(2))


def test_user_map_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"step callable '_three'.*shape \(3,\), expected \(2,\)"):
        lk.lyapunov_spectrum(lk.from_numpy(_three, 2), steps=5, seed=0, backend="numpy")
    flat = lk.from_numpy(_henon, 2, _flat_jacobian)  # used to be reshaped to (2, 2) silently
    with pytest.raises(ValueError, match=r"'_flat_jacobian'.*shape \(4,\), expected \(2, 2\)"):
        lk.lyapunov_spectrum(flat, steps=5, seed=0, backend="numpy")
    batch = lk.from_numpy(lambda x: x[..., :1], 2, vectorized=True)
    with pytest.raises(ValueError, match=r"shape \(3, 1\), expected \(3, 2\)"):
        batch.step(np.ones((3, 2)))
    # one number per state is unambiguous for dim = 1: (1,) is taken for (1, 1)
    logistic = lk.from_numpy(lambda x: 4 * x * (1 - x), 1, lambda x: 4 - 8 * x)
    res = lk.lyapunov_spectrum(logistic, steps=3000, x0=[0.3], seed=0, backend="numpy")
    assert abs(res.exponents[0] - math.log(2)) < 0.05


@pytest.mark.parametrize("period", [0, -1.0, math.inf, math.nan, True])
def test_non_positive_period_is_refused(period):
    with pytest.raises(ValueError, match="period must be a positive finite number"):
        lk.from_numpy(_henon, 2, period=period)
    kernels = lk.Henon().numba_kernels()
    if kernels is not None:
        with pytest.raises(ValueError, match="period must be a positive finite number"):
            lk.from_numba(kernels.step, kernels.jacobian, 2, params=kernels.params, period=period)
