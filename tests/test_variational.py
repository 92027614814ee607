"""Variational terms: explicit products, exact arithmetic far outside float64, identities, the QR
method, backend agreement, profiles and bad input."""

import importlib.util
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.backend import Backend, BackendError
from lyapkit.variational import variational_profile, variational_term

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("numba", "torch")}


def _walk(system, x0, inputs, stop):
    """Jacobians ``J_0 … J_{stop−1}`` of one member, by the map's own step and jacobian."""
    x, jacobians = np.asarray(x0, dtype=float), []
    for t in range(stop):
        u = None if inputs is None else inputs[t]
        jacobians.append(system.jacobian(x, u))
        x = system.step(x, u)
    return jacobians


def _product(jacobians):
    P = np.eye(len(jacobians[0]))
    for J in jacobians:
        P = J @ P
    return P


def _wcrnn(r=0.95, n=4, m=2, gamma=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return lk.WCRNNMap(
        r * np.linalg.qr(rng.standard_normal((n, n)))[0],
        rng.standard_normal((n, n)) / np.sqrt(n),
        gamma,
        V=rng.standard_normal((n, m)),
        b=0.1 * rng.standard_normal(n),
    )


# --- short spans: the explicit product and LAPACK's SVD -------------------------------------------


def test_short_span_equals_explicit_product_and_svd():
    rng = np.random.default_rng(1)
    system = _wcrnn(r=1.0, gamma=0.5, seed=3)
    x0, u = 0.5 * rng.standard_normal((3, 4)), 0.5 * rng.standard_normal((3, 16, 2))
    res = variational_term(system, x0, u, start=4, backend="numpy")
    assert res.log_singular_values.shape == (3, 4) and res.stop == 16
    for e in range(3):
        P = _product(_walk(system, x0[e], u[e], 16)[4:])
        U, s, Wt = np.linalg.svd(P)
        assert s[0] / s[-1] < 100  # well conditioned: LAPACK's SVD is exact to ~1e-15
        np.testing.assert_allclose(res.log_singular_values[e], np.log(s), rtol=0, atol=1e-9)
        np.testing.assert_allclose(res.finite_time_exponents[e], np.log(s) / 12, atol=1e-10)
        np.testing.assert_allclose(res.matrix[e], P, rtol=0, atol=1e-9 * s[0])
        # Singular vectors up to sign: |uᵢ·ûᵢ| = 1, and V wᵢ = σᵢ uᵢ.
        W, Ul = res.right_singular_vectors[e], res.left_singular_vectors[e]
        np.testing.assert_allclose(np.abs(np.sum(W * Wt.T, 0)), 1, atol=1e-9)
        np.testing.assert_allclose(np.abs(np.sum(Ul * U, 0)), 1, atol=1e-9)
        np.testing.assert_allclose(P @ W, Ul * s, atol=1e-9 * s[0])


def test_single_member_has_no_ensemble_axis():
    system = _wcrnn()
    u = np.random.default_rng(2).standard_normal((9, 2))
    res = variational_term(system, np.zeros(4), u, backend="numpy")
    assert res.log_singular_values.shape == (4,) and res.matrix.shape == (4, 4)
    assert res.ensemble is None
    np.testing.assert_allclose(res.matrix, _product(_walk(system, np.zeros(4), u, 9)), atol=1e-12)
    assert "VariationalTerm(" in repr(res)


# --- long spans: exact arithmetic where float64 over- and underflows ------------------------------


def _exact_log_singular_values(A, N):
    """``log σ₁, log σ₂`` of ``A^N`` for a 2×2 matrix of exact binary fractions, from ``A^N`` in
    rational arithmetic: ``σ₁² + σ₂² = ‖A^N‖_F² = F``, ``σ₁σ₂ = |det A|^N``, so
    ``σ₁² = (F + √(F² − 4 det²)) / 2`` with ``F² − 4 det² = (σ₁² − σ₂²)²`` exact."""

    def matmul(a, b):
        return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] for j in range(2)] for i in range(2)]

    power = [[Fraction(1), Fraction(0)], [Fraction(0), Fraction(1)]]
    base = [[Fraction(v) for v in row] for row in A]
    while N:  # exponentiation by squaring
        if N & 1:
            power = matmul(power, base)
        base = matmul(base, base)
        N >>= 1
    F = sum(v * v for row in power for v in row)
    det2 = (power[0][0] * power[1][1] - power[0][1] * power[1][0]) ** 2
    gap = F * F - 4 * det2
    with localcontext() as ctx:
        ctx.prec = 60

        def dec(q):
            return Decimal(q.numerator) / Decimal(q.denominator)

        s1 = (dec(F) + dec(gap).sqrt()) / 2
        s2 = dec(det2) / s1
        return [float(s1.ln() / 2), float(s2.ln() / 2)]


@pytest.mark.parametrize(
    "A",
    [
        [[3, 5], [1, 2]],  # non-normal, det 1: σ = e^{±3134} over 2000 steps
        [[1, 2], [3, 4]],  # det −2
        [[0.5, 1], [0, 2]],  # e₁ is an invariant contracting direction
        [[0.5, 0], [0, 2]],
        [[0, 1], [1, 0]],  # equal singular values
    ],
)
def test_constant_2x2_powers_match_exact_arithmetic(A):
    N = 2000
    res = variational_term(lk.LinearMap(np.array(A, float)), np.zeros(2), stop=N, backend="numpy")
    exact = _exact_log_singular_values(A, N)
    np.testing.assert_allclose(res.log_singular_values, exact, rtol=1e-12, atol=1e-12)
    if exact[0] < 700:
        np.testing.assert_allclose(res.matrix, np.linalg.matrix_power(A, N), atol=1e-12)
    else:
        assert res.matrix is None  # not representable in float64


def test_symmetric_constant_matrices_far_beyond_float64():
    """``σ_i = |λ_i|^N``, ``w_i`` the eigenvectors: log σ down to −9210 (σ ≈ 1e−4000)."""
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    eig = np.array([3.0, -1.0, 0.5, 0.01])
    N = 2000
    res = variational_term(
        lk.LinearMap(basis @ np.diag(eig) @ basis.T), np.zeros(4), stop=N, backend="numpy"
    )
    np.testing.assert_allclose(
        res.log_singular_values, N * np.log(np.abs(eig)), rtol=1e-12, atol=1e-10
    )
    np.testing.assert_allclose(np.abs(basis.T @ res.right_singular_vectors), np.eye(4), atol=1e-9)
    np.testing.assert_allclose(np.abs(basis.T @ res.left_singular_vectors), np.eye(4), atol=1e-9)
    assert res.matrix is None


# --- identities and the QR method -----------------------------------------------------------------


@settings(max_examples=15)
@given(
    n=st.integers(1, 5),
    steps=st.integers(1, 300),
    g=st.floats(0.5, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_sum_of_log_singular_values_is_sum_of_log_determinants(n, steps, g, seed):
    rng = np.random.default_rng(seed)
    system = lk.TanhNetwork(n, g=g, input_dim=2, seed=seed % 1000)
    x0, u = 0.3 * rng.standard_normal(n), 0.3 * rng.standard_normal((steps, 2))
    res = variational_term(system, x0, u, backend="numpy")
    logdets = [np.linalg.slogdet(J)[1] for J in _walk(system, x0, u, steps)]
    assert res.log_singular_values.sum() == pytest.approx(math.fsum(logdets), rel=1e-10, abs=1e-9)


def test_henon_finite_time_exponents_match_the_qr_method_on_the_same_trajectory():
    """Over ``T`` steps ``log σ_i`` and ``Σ log R_ii`` differ by O(1), so the exponents by O(1/T);
    ``|det J| = b`` makes ``Σ log σ_i = T log b`` exact (here ≈ −6000, far below float64)."""
    henon, x0, T = lk.Henon(), np.array([0.1, 0.1]), 5000
    res = variational_term(henon, x0, start=100, stop=100 + T, backend="numpy")
    qr = lk.lyapunov_spectrum(henon, steps=T, transient=100, x0=x0, seed=1, backend="numpy")
    np.testing.assert_allclose(res.finite_time_exponents, qr.exponents, atol=5 / T)
    np.testing.assert_allclose(res.finite_time_exponents, [0.4192, -1.6232], atol=0.01)
    assert res.log_singular_values.sum() == pytest.approx(T * math.log(0.3), rel=1e-12)


def test_singular_product_gives_minus_infinity():
    """Logistic map from ½: J_0 = 0, so V = 0 exactly."""
    res = variational_term(lk.Logistic(4.0), [0.5], stop=5, backend="numpy")
    assert res.log_singular_values[0] == -np.inf and np.all(res.matrix == 0)
    prof = variational_profile(lk.Logistic(4.0), [0.5], stop=5, backend="numpy")
    assert prof.log_norm[-1] == -np.inf and prof.rate == -np.inf
    np.testing.assert_allclose(prof.log_norm[:-1], np.log(4.0) * np.arange(1, 5), atol=1e-14)


def test_blow_up_gives_nan_and_a_warning():
    with pytest.warns(lk.NonFiniteTrajectoryWarning, match="member 1 at step"):
        res = variational_term(lk.Logistic(4.0), [[0.3], [1.5]], stop=2000, backend="numpy")
    assert np.isnan(res.log_singular_values[1]).all() and np.isfinite(res.log_singular_values[0])


# --- backends -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["numba", "torch"])
def test_backends_agree_with_numpy(name):
    if not HAVE[name]:
        pytest.skip(f"{name} is not installed")
    system = _wcrnn(seed=5)
    rng = np.random.default_rng(5)
    x0, u = rng.standard_normal((3, 4)), rng.standard_normal((3, 300, 2))
    ref = variational_term(system, x0, u, start=20, backend="numpy")
    res = variational_term(system, x0, u, start=20, backend=name)
    assert res.backend == name
    np.testing.assert_allclose(res.log_singular_values, ref.log_singular_values, atol=1e-9)
    np.testing.assert_allclose(
        np.abs(np.sum(res.right_singular_vectors * ref.right_singular_vectors, -2)), 1, atol=1e-9
    )
    ref_p = variational_profile(system, x0, u, backend="numpy")
    res_p = variational_profile(system, x0, u, backend=name)
    np.testing.assert_allclose(res_p.log_norm, ref_p.log_norm, atol=1e-9)


def test_torch_float32_trajectory():
    if not HAVE["torch"]:
        pytest.skip("torch is not installed")
    system, u = _wcrnn(), np.random.default_rng(6).standard_normal((50, 2))
    ref = variational_term(system, np.zeros(4), u, backend="numpy")
    res = variational_term(system, np.zeros(4), u, backend="torch", dtype="float32", device="cpu")
    np.testing.assert_allclose(res.log_singular_values, ref.log_singular_values, atol=1e-3)


# --- profile --------------------------------------------------------------------------------------


def test_profile_equals_explicit_products():
    rng = np.random.default_rng(7)
    system = lk.TanhNetwork(5, g=1.2, input_dim=2, seed=1)
    x0, u = 0.5 * rng.standard_normal((2, 5)), 0.5 * rng.standard_normal((2, 30, 2))
    prof = variational_profile(system, x0, u, backend="numpy")
    assert prof.log_norm.shape == (2, 30) and list(prof.lags) == list(range(1, 31))
    for e in range(2):
        jacobians = _walk(system, x0[e], u[e], 30)
        exact = [np.log(np.linalg.norm(_product(jacobians[30 - lag :]), 2)) for lag in range(1, 31)]
        np.testing.assert_allclose(prof.log_norm[e], exact, atol=1e-12)
        slope, intercept = np.polyfit(prof.lags, exact, 1)
        assert prof.rate[e] == pytest.approx(slope, abs=1e-12)
        assert prof.intercept[e] == pytest.approx(intercept, abs=1e-10)


def test_profile_matches_the_term_over_a_span_that_overflows():
    """Two algorithms (backward rescaled sweep, graded QR + Jacobi) for ``‖V‖₂ ≈ e^{1260}``."""
    henon, x0 = lk.Henon(), np.array([0.1, 0.1])
    prof = variational_profile(henon, x0, stop=3000, backend="numpy")
    for lag in (1, 17, 3000):
        term = variational_term(henon, x0, start=3000 - lag, stop=3000, backend="numpy")
        assert prof.log_norm[lag - 1] == pytest.approx(term.log_singular_values[0], rel=1e-11)
    assert prof.rate == pytest.approx(0.42, abs=0.02)


@pytest.mark.parametrize("r", [0.9, 1.0, 1.05])
def test_wcrnn_rate_is_log_r(r):
    """``J = r I + γ diag(1 − a²) W``: for small γ the norm of the product decays like ``r^ℓ``."""
    rng = np.random.default_rng(8)
    n, gamma = 8, 0.01
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    system = lk.WCRNNMap(r * np.eye(n), W, gamma, V=rng.standard_normal((n, 3)))
    prof = variational_profile(system, np.zeros(n), rng.standard_normal((400, 3)), backend="numpy")
    assert prof.rate == pytest.approx(math.log(r), abs=gamma * np.linalg.norm(W, 2))


def test_to_xarray_and_plot(tmp_path):
    pytest.importorskip("xarray")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    system, u = _wcrnn(), np.random.default_rng(9).standard_normal((2, 20, 2))
    ds = variational_term(system, np.zeros((2, 4)), u, start=3, backend="numpy").to_xarray()
    assert ds["log_singular_value"].dims == ("member", "index")
    assert ds["right_singular_vector"].dims == ("member", "component", "index")
    assert ds["matrix"].dims == ("member", "row", "column")
    assert ds["finite_time_exponent"].attrs["units"] == "1/step"
    assert ds.attrs["start"] == 3 and ds.attrs["stop"] == 20
    prof = variational_profile(system, np.zeros(4), u[0], backend="numpy")
    ds = prof.to_xarray()
    assert ds["log_norm"].dims == ("lag",) and ds["lag"].attrs["units"] == "step"
    assert float(ds["rate"]) == prof.rate and ds["rate"].attrs["units"] == "1/step"
    ax = prof.plot()
    assert len(ax.lines) == 2  # the profile and its fitted line
    ax.figure.savefig(tmp_path / "profile.png")


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": -1}, "start must be a non-negative integer"),
        ({"start": 20}, "stop must be at least start"),
        ({"stop": 31}, "stop=31 exceeds the 30 time steps of inputs"),
        ({"stop": 2.5}, "stop must be a positive integer"),
        ({"x0": np.zeros(3)}, "x0 must have shape"),
        ({"x0": np.zeros((1, 2, 4))}, "x0 must have shape"),
        ({"inputs": np.zeros((30, 3))}, "inputs must have shape"),
        ({"inputs": np.zeros(30)}, "inputs must have shape"),
        ({"x0": np.zeros((2, 4)), "inputs": np.zeros((3, 30, 2))}, "inputs must have shape"),
        ({"max_memory": 1000}, "max_memory=1000 bytes"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    args = {"x0": np.zeros(4), "inputs": np.zeros((30, 2)), "start": 0, "stop": 20} | kwargs
    system = _wcrnn()
    with pytest.raises(ValueError, match=match):
        variational_term(system, backend="numpy", **args)


def test_bad_arguments_of_autonomous_maps_and_profiles():
    with pytest.raises(ValueError, match="stop is required"):
        variational_term(lk.Henon(), [0.1, 0.1])
    with pytest.raises(ValueError, match="has no input"):
        variational_term(lk.Henon(), [0.1, 0.1], np.zeros((5, 1)))
    with pytest.raises(ValueError, match="stop must be at least start \\+ 2"):
        variational_profile(lk.Henon(), [0.1, 0.1], stop=1)
    with pytest.raises(TypeError, match="lyapkit Map"):
        variational_term(lambda x: x, [0.1], stop=3)


def test_backends_without_trajectory_are_refused_naming_those_that_can():
    class TangentOnly(Backend):
        name, description = "tangent-only", "no trajectory"

        def supports(self, system):
            return True

        def tangent(self, system, plan, progress):
            raise NotImplementedError

        def twin(self, system, plan, progress):
            raise NotImplementedError

    with pytest.raises(BackendError, match=r"does not implement 'trajectory'.*\['numpy'"):
        variational_term(lk.Henon(), [0.1, 0.1], stop=3, backend=TangentOnly())
    lozi = lk.from_numpy(
        lambda x: np.array([1 - 1.7 * abs(x[0]) + x[1], 0.5 * x[0]]),
        dim=2,
        jacobian=lambda x: np.array([[-1.7 * np.sign(x[0]), 1.0], [0.5, 0.0]]),
    )
    if HAVE["torch"]:
        with pytest.raises(BackendError, match=r"backends that can: \['numpy'\]"):
            variational_term(lozi, [0.1, 0.1], stop=3, backend="torch")
    assert variational_term(lozi, [0.1, 0.1], stop=3).backend == "numpy"
