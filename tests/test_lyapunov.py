"""Lyapunov spectra (``lyapkit.lyapunov``): against published values, closed forms and exact
identities; properties over random systems (the sum of the exponents, linear maps, the weak-coupling
limit, backends that agree); edge cases against an independent QR loop (schedules, ensembles,
inputs, dtypes); and no silent wrong results (the twin method's saturation, singular Jacobians,
memory warnings, clear messages)."""

import math
import tracemalloc
import warnings

import numpy as np
import pytest
from cases import BACKENDS
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit import lyapunov
from lyapkit.lyapunov import ILL_CONDITIONED, _random_bases

HENON = (0.4192, -1.6232)  # Sprott, Chaos and Time-Series Analysis (2003), 4 significant digits
CAT = math.log((3 + math.sqrt(5)) / 2)


def test_henon_published_values_and_exact_sum():
    res = lk.lyapunov_spectrum(
        lk.Henon(), steps=200_000, transient=1000, ensemble=8, seed=1, backend="numba"
    )
    # Published values are rounded to 1e-4; the estimate must be within 4 standard errors of them.
    assert np.all(np.abs(res.exponents - HENON) <= 4 * res.stderr + 5e-5)
    assert res.stderr.max() < 5e-4
    # det J = -b, so the exponents sum to log b exactly (up to rounding) on every trajectory.
    np.testing.assert_allclose(res.member_exponents.sum(axis=1), math.log(0.3), atol=1e-10)
    assert res.kaplan_yorke_dimension == pytest.approx(1 + HENON[0] / abs(HENON[1]), abs=2e-3)
    assert res.ks_entropy == pytest.approx(res.exponents[0])


def test_logistic_r4_is_ln2():
    res = lk.lyapunov_spectrum(
        lk.Logistic(4.0), steps=200_000, transient=1000, ensemble=8, seed=2, backend="numba"
    )
    assert abs(res.exponents[0] - math.log(2)) <= 4 * res.stderr[0]
    assert res.stderr[0] < 2e-3


@pytest.mark.parametrize("mu", [1.5, 1.9, 2.0])
def test_tent_exponent_is_log_mu_on_every_orbit(mu):
    res = lk.lyapunov_spectrum(lk.Tent(mu), steps=5000, ensemble=3, seed=0, backend="numpy")
    np.testing.assert_allclose(res.member_exponents, math.log(mu), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_cat_map_exponents_exact(backend):
    res = lk.lyapunov_spectrum(lk.CatMap(), steps=2000, transient=100, seed=3, backend=backend)
    np.testing.assert_allclose(res.exponents, [CAT, -CAT], atol=1e-12)


def test_symplectic_pairing_of_coupled_standard_maps():
    system = lk.CoupledStandardMaps(M=3, k=[1.2, 1.5, 0.9], coupling=0.3)
    res = lk.lyapunov_spectrum(
        system, steps=100_000, transient=1000, ensemble=4, seed=4, backend="numba"
    )
    lam = res.exponents
    assert lam[0] > 0.1  # chaotic
    np.testing.assert_allclose(res.member_exponents.sum(axis=1), 0.0, atol=1e-10)  # det J = 1
    pair_sums = lam + lam[::-1]
    assert np.all(np.abs(pair_sums) <= 4 * np.hypot(res.stderr, res.stderr[::-1]) + 1e-3)


def _matrix_with_spectrum(rng, moduli, n_rot=0, cond_max=20.0):
    """A non-normal matrix with eigenvalue moduli `moduli` (the first 2*n_rot in rotating pairs)."""
    n = len(moduli)
    D = np.zeros((n, n))
    i = 0
    for _ in range(n_rot):
        phi = rng.uniform(0.3, 2.8)
        r = moduli[i]
        D[i : i + 2, i : i + 2] = r * np.array(
            [[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]]
        )
        i += 2
    D[i:, i:] = np.diag(moduli[i:] * rng.choice([-1.0, 1.0], n - i))
    while True:
        S = rng.standard_normal((n, n))
        if np.linalg.cond(S) < cond_max:
            return S @ D @ np.linalg.inv(S)


def test_linear_map_converges_to_log_abs_eig_after_transient(rng):
    moduli = np.array([1.7, 1.1, 0.8, 0.5, 0.2])
    A = _matrix_with_spectrum(rng, moduli)
    # The transient aligns the basis with the Schur vectors; after it each step's R_ii is |μ_i|.
    res = lk.lyapunov_spectrum(lk.LinearMap(A), steps=10, transient=400, seed=0, backend="numpy")
    np.testing.assert_allclose(res.exponents, np.log(moduli), atol=1e-9)
    # Without the transient the same 10 steps are far off: the transient is what aligned the basis.
    raw = lk.lyapunov_spectrum(lk.LinearMap(A), steps=10, seed=0, backend="numpy")
    assert np.abs(raw.exponents - np.log(moduli)).max() > 1e-3


def test_time_varying_non_normal_product_uses_J_not_J_transpose():
    """Three non-commuting matrices applied periodically: exponents are log|eig(A3 A2 A1)|/3.

    Propagating Jᵀ Q (as a published RNN code does) yields log|eig(A1 A2 A3)|/3 instead; the test
    checks the two differ for these matrices, so it would catch that bug.
    """
    A = [
        np.array([[1.0, 2.0], [0.0, 0.5]]),
        np.array([[0.3, 0.0], [1.5, 1.2]]),
        np.array([[1.1, 0.7], [-0.2, 0.4]]),
    ]
    system = lk.from_numpy(lambda x, u: A[int(u[0])] @ x, 2, lambda x, u: A[int(u[0])], input_dim=1)
    steps = 3 * 400
    inputs = (np.arange(steps + 300) % 3).astype(float)[:, None]
    res = lk.lyapunov_spectrum(system, steps=steps, transient=300, inputs=inputs, seed=0)
    right = np.sort(np.log(np.abs(np.linalg.eigvals(A[2] @ A[1] @ A[0]))) / 3)[::-1]
    wrong = np.sort(np.log(np.abs(np.linalg.eigvals(A[0] @ A[1] @ A[2]))) / 3)[::-1]
    assert np.abs(right - wrong).max() > 0.05
    np.testing.assert_allclose(res.exponents, right, atol=1e-9)


def test_partial_spectrum_is_leading_part_of_full():
    net = lk.TanhNetwork(12, g=2.5, seed=5)
    full = lk.lyapunov_spectrum(net, steps=3000, transient=200, seed=6, backend="numpy")
    part = lk.lyapunov_spectrum(net, steps=3000, transient=200, k=4, seed=6, backend="numpy")
    # Same trajectory; the first k columns of the QR factorisation do not depend on the rest, but
    # the random initial bases differ, so agreement is up to the O(1/T) memory of the initial basis.
    np.testing.assert_allclose(part.exponents, full.exponents[:4], atol=5e-3)


@pytest.mark.parametrize("every", [2, 5, 10])
def test_invariant_to_reortho_every(every):
    system = lk.WCRNNMap(
        np.diag([1.05, 0.9, 0.6, 0.3]), np.random.default_rng(0).standard_normal((4, 4)), 0.2
    )
    base = lk.lyapunov_spectrum(system, steps=1000, transient=100, seed=7, backend="numpy")
    res = lk.lyapunov_spectrum(
        system, steps=1000, transient=100, seed=7, reortho_every=every, backend="numpy"
    )
    np.testing.assert_allclose(res.exponents, base.exponents, atol=1e-12)


def test_ill_conditioned_basis_warns():
    system = lk.LinearMap(np.diag([3.0, 1e-3]))
    with pytest.warns(lk.IllConditionedBasisWarning, match="reortho_every"):
        res = lk.lyapunov_spectrum(system, steps=40, reortho_every=20, seed=0, backend="numpy")
    assert res.max_condition > 1e8


def test_stderr_is_calibrated_in_repeated_experiments():
    """±1 and ±2 standard-error intervals of Hénon's λ1 cover the truth about 68% and 95% of the
    time, for ensemble errors (32 members) and for batch means of one trajectory.

    The truth is a run 150 times longer. Only λ1 is checked: λ1 + λ2 = log b exactly, so λ2's error
    mirrors it. (The logistic map at r = 4 would be a poor choice: its log|f'| is a coboundary of
    the conjugacy to the tent map, so errors shrink like 1/T, not 1/√T.)
    """
    truth = lk.lyapunov_spectrum(
        lk.Henon(), steps=300_000, transient=1000, ensemble=16, seed=99, backend="numba"
    ).exponents[0]
    z = {"ensemble": [], "batches": []}
    for seed in range(40):
        kw = dict(transient=100, seed=seed, backend="numba")
        ens = lk.lyapunov_spectrum(lk.Henon(), steps=1000, ensemble=32, **kw)
        one = lk.lyapunov_spectrum(lk.Henon(), steps=32_000, **kw)
        z["ensemble"].append(abs(ens.exponents[0] - truth) / ens.stderr[0])
        z["batches"].append(abs(one.exponents[0] - truth) / one.stderr[0])
    for zs in z.values():
        zs = np.array(zs)
        # Binomial(40, 0.95) < 34 and Binomial(40, 0.68) > 35 have probability < 0.5% each; an
        # error under- or over-estimated by a factor 2 fails one of them.
        assert np.sum(zs <= 2) >= 34
        assert np.sum(zs <= 1) <= 35


def test_finite_time_exponents_average_to_the_spectrum():
    res = lk.lyapunov_spectrum(
        lk.Henon(), steps=10_000, finite_time=100, ensemble=2, seed=8, backend="numpy"
    )
    assert res.finite_time.shape == (2, 100, 2)
    np.testing.assert_allclose(res.finite_time.mean(axis=1), res.member_exponents, atol=1e-12)
    assert res.finite_time[:, :, 0].std() > 0.01  # local exponents of a chaotic map fluctuate


def test_history_is_bounded_and_converges():
    res = lk.lyapunov_spectrum(lk.Henon(), steps=10**7, seed=9, backend="numba")
    assert len(res.history_steps) <= lk.lyapunov.HISTORY_POINTS
    assert res.history_steps[-1] == 10**7
    np.testing.assert_allclose(res.history[-1], res.exponents, atol=1e-12)
    np.testing.assert_allclose(res.exponents, HENON, atol=2e-4)


def test_twin_method_agrees_with_qr():
    qr = lk.lyapunov_spectrum(lk.Henon(), steps=100_000, ensemble=8, seed=10, backend="numba")
    twin = lk.max_lyapunov_twin(lk.Henon(), steps=100_000, ensemble=8, seed=10, backend="numba")
    assert twin.method == "twin" and twin.exponents.shape == (1,)
    assert abs(twin.exponents[0] - qr.exponents[0]) <= 4 * np.hypot(twin.stderr, qr.stderr)[0]


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_twin_wraps_differences_on_the_torus(backend):
    twin = lk.max_lyapunov_twin(lk.CatMap(), steps=2000, transient=50, seed=11, backend=backend)
    np.testing.assert_allclose(twin.exponents, [CAT], atol=1e-6)


def reference_qr(system, x0, basis0, steps, every, transient=0, inputs=None):
    """Plain numpy QR method for one trajectory (same renormalisation schedule as lyapkit)."""
    x, Q, acc = np.array(x0, float), np.array(basis0, float), np.zeros(basis0.shape[1])
    for t in range(transient + steps):
        u = None if inputs is None else inputs[t]
        J = system.jacobian(x, u)
        x = system.step(x, u)
        Q = J @ Q
        done = t + 1
        if done <= transient:
            renormalise = done % every == 0 or done == transient
        else:
            renormalise = (done - transient) % every == 0 or done - transient == steps
        if renormalise:
            Q, R = np.linalg.qr(Q)
            Q = Q * np.sign(np.diag(R))
            if done > transient:
                acc += np.log(np.abs(np.diag(R)))
    return acc / steps


def basis(seed, E, n, k):
    """The initial bases lyapkit draws for ``seed`` when ``x0`` is given."""
    return _random_bases(np.random.default_rng(seed), E, n, k)


SCHEDULES = [  # steps, reortho_every, transient, k
    (1, 1, 0, 2),
    (7, 3, 5, 3),  # every divides neither steps nor transient; k < dim
    (10, 4, 0, 1),
    (10, 1, 3, 4),
    (6, 6, 6, 2),
]


class _DtypeSpy(lk.LinearMap):
    seen: set = set()

    def step_and_jacobian(self, x, u=None):
        y, J = super().step_and_jacobian(x, u)
        self.seen.update({x.dtype.name, y.dtype.name, J.dtype.name})
        return y, J


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(("steps", "every", "transient", "k"), SCHEDULES)
def test_schedules_match_reference(backend, steps, every, transient, k):
    system = lk.CoupledStandardMaps(M=2, k=1.5)
    x0 = np.array([0.1, 0.2, 0.3, 0.4])
    expected = np.sort(reference_qr(system, x0, basis(0, 1, 4, k)[0], steps, every, transient))[
        ::-1
    ]
    res = lk.lyapunov_spectrum(
        system,
        steps=steps,
        reortho_every=every,
        transient=transient,
        k=k,
        x0=x0,
        seed=0,
        backend=backend,
        device="cpu" if backend == "torch" else None,
    )
    np.testing.assert_allclose(res.exponents, expected, atol=1e-12)
    assert res.final_basis.shape == (1, 4, k)


def test_numba_partial_spectrum_and_odd_schedules_match_reference():
    pytest.importorskip("numba")
    system, x0 = lk.Henon(), np.array([0.1, 0.1])
    for steps, every, transient in [(1, 1, 0), (7, 3, 5), (10, 4, 0)]:
        expected = reference_qr(system, x0, basis(0, 1, 2, 1)[0], steps, every, transient)
        res = lk.lyapunov_spectrum(
            system,
            steps=steps,
            reortho_every=every,
            transient=transient,
            k=1,
            x0=x0,
            seed=0,
            backend="numba",
        )
        np.testing.assert_allclose(res.exponents, expected, atol=1e-12)


def test_ensemble_member_equals_single_run():
    x0 = np.array([[0.1, 0.1]] * 3)
    ens = lk.lyapunov_spectrum(lk.Henon(), steps=200, x0=x0, seed=0, backend="numpy")
    one = lk.lyapunov_spectrum(lk.Henon(), steps=200, x0=x0[0], seed=0, backend="numpy")
    np.testing.assert_array_equal(ens.member_exponents[0], one.exponents)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_per_member_inputs_with_shared_x0(backend):
    system = lk.TanhNetwork(n=3, g=1.5, input_dim=2, seed=3)
    U = np.random.default_rng(1).standard_normal((3, 30, 2))
    x0 = np.array([0.1, -0.2, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "same trajectory" warning
        res = lk.lyapunov_spectrum(
            system,
            steps=20,
            transient=10,
            x0=x0,
            inputs=U,
            seed=0,
            backend=backend,
            device="cpu" if backend == "torch" else None,
        )
    assert res.ensemble == 3
    bases = basis(0, 3, 3, 3)
    for e in range(3):
        expected = reference_qr(system, x0, bases[e], 20, 1, 10, U[e])
        np.testing.assert_allclose(res.member_exponents[e], np.sort(expected)[::-1], atol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_driven_map_without_inputs_sees_zero_inputs(backend):
    system = lk.TanhNetwork(n=3, g=1.5, input_dim=2, seed=3)
    kw = dict(steps=20, x0=[0.1, -0.2, 0.3], seed=0, backend=backend)
    if backend == "torch":
        kw["device"] = "cpu"
    a = lk.lyapunov_spectrum(system, **kw)
    b = lk.lyapunov_spectrum(system, inputs=np.zeros((20, 2)), **kw)
    np.testing.assert_array_equal(a.exponents, b.exponents)


def test_one_dimensional_constant_stretch_is_exact():
    res = lk.lyapunov_spectrum(lk.Tent(1.5), steps=500, x0=[0.3], seed=0, backend="numpy")
    assert abs(res.exponents[0] - math.log(1.5)) < 1e-12


def test_to_xarray_without_history_or_windows():
    res = lk.lyapunov_spectrum(
        lk.Henon(), steps=100, x0=[0.1, 0.1], seed=0, backend="numpy", history=False
    )
    assert res.history.shape == (0, 2)
    ds = res.to_xarray()
    assert ds.sizes["step"] == 0
    assert "finite_time_exponent" not in ds


def test_finite_time_with_ensemble_averages_to_member_exponents():
    res = lk.lyapunov_spectrum(
        lk.Henon(), steps=100, ensemble=3, seed=0, backend="numpy", finite_time=20
    )
    assert res.finite_time.shape == (3, 5, 2)
    np.testing.assert_allclose(res.finite_time.mean(axis=1), res.member_exponents, atol=1e-12)
    ds = res.to_xarray()
    np.testing.assert_array_equal(ds["window_end"].values, [20, 40, 60, 80, 100])


def test_kaplan_yorke_partial_spectra():
    assert math.isnan(lk.kaplan_yorke_dimension([0.5, -0.1], dim=3))  # need more exponents
    assert lk.kaplan_yorke_dimension([0.5, -1.0], dim=3) == pytest.approx(1.5)
    assert lk.kaplan_yorke_dimension([-0.1], dim=2) == 0.0
    assert lk.kaplan_yorke_dimension([0.42, -1.62]) == pytest.approx(1 + 0.42 / 1.62)


def test_generic_torch_callable_with_inputs_matches_numpy_map():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(3, 3, dtype=torch.float64, generator=gen) * 0.8
    V = torch.randn(3, 2, dtype=torch.float64, generator=gen)
    tm = lk.from_torch(lambda x, u: torch.tanh(W @ x + V @ u), dim=3, input_dim=2)
    am = lk.TanhNetwork(n=3, g=1.0, input_dim=2, W=W.numpy(), U=V.numpy())
    rng = np.random.default_rng(0)
    U, x0 = rng.standard_normal((3, 40, 2)), 0.3 * rng.standard_normal((3, 3))
    kw = dict(steps=30, transient=10, x0=x0, inputs=U, seed=0)
    a = lk.lyapunov_spectrum(tm, device="cpu", **kw)
    b = lk.lyapunov_spectrum(am, backend="numpy", **kw)
    np.testing.assert_allclose(a.member_exponents, b.member_exponents, atol=1e-12)


@pytest.mark.parametrize("cell", ["GRUCell", "LSTMCell"])
def test_rnn_cells_on_twin_method(cell):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    system = lk.from_torch(getattr(torch.nn, cell)(2, 3))
    U = np.random.default_rng(0).standard_normal((2, 120, 2))
    twin = lk.max_lyapunov_twin(system, steps=100, transient=20, inputs=U, seed=0, device="cpu")
    qr = lk.lyapunov_spectrum(system, steps=100, transient=20, inputs=U, seed=0, device="cpu")
    assert twin.ensemble == 2
    assert np.isfinite(twin.exponents).all()
    assert abs(twin.exponents[0] - qr.exponents[0]) < 0.02


def test_steps_shorter_than_reortho_interval():
    x0 = np.array([0.1, 0.1])
    expected = np.sort(reference_qr(lk.Henon(), x0, basis(0, 1, 2, 2)[0], 3, 5))[::-1]
    res = lk.lyapunov_spectrum(lk.Henon(), steps=3, reortho_every=5, x0=x0, seed=0, backend="numpy")
    np.testing.assert_allclose(res.exponents, expected, atol=1e-12)
    assert (res.history_steps >= 1).all()


def test_history_ends_at_steps():
    res = lk.lyapunov_spectrum(
        lk.Henon(), steps=12, reortho_every=5, x0=[0.1, 0.1], seed=0, backend="numpy"
    )
    assert res.history_steps[-1] == 12
    np.testing.assert_allclose(res.history[-1], res.exponents)


def test_numba_strong_contraction():
    pytest.importorskip("numba")
    system = lk.LinearMap([[1e-100]])
    exact = math.log(1e-100)
    np_res = lk.lyapunov_spectrum(system, steps=20, x0=[1.0], seed=0, backend="numpy")
    assert np_res.exponents[0] == pytest.approx(exact, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb_res = lk.lyapunov_spectrum(system, steps=20, x0=[1.0], seed=0, backend="numba")
    assert nb_res.exponents[0] == pytest.approx(exact, rel=1e-12)


def test_numba_blowup_emits_only_lyapkit_warning():
    pytest.importorskip("numba")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lk.lyapunov_spectrum(lk.LinearMap([[0.0]]), steps=5, x0=[1.0], seed=0, backend="numba")
    assert [type(w.message) for w in caught] == [lk.lyapunov.SingularJacobianWarning]


def test_numpy_float32_is_honoured():
    spy = _DtypeSpy(np.array([[1.2, 0.3], [0.1, 0.5]]))
    spy.seen = set()
    lk.lyapunov_spectrum(spy, steps=5, x0=[1.0, 1.0], seed=0, backend="numpy", dtype="float32")
    assert spy.seen == {"float32"}


def test_float32_accumulation_is_accurate():
    res = lk.lyapunov_spectrum(
        lk.Tent(1.5),
        steps=20_000,
        x0=[0.3],
        seed=0,
        backend="numpy",
        dtype="float32",
        history=False,
    )
    assert res.exponents[0] == pytest.approx(math.log(1.5), rel=1e-5)


@pytest.mark.parametrize("dtype", ["float32", np.float32, np.dtype("float32")], ids=repr)
def test_twin_float32_default_separation(dtype):
    """The default separation is √ε of the dtype, resolvable in float32, however the dtype is
    named; one below 100 ε is refused."""
    kw = dict(steps=2000, transient=100, x0=[0.1, 0.1], seed=0, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or NaN warnings either
        res = lk.max_lyapunov_twin(lk.Henon(), dtype=dtype, **kw)
    ref = lk.max_lyapunov_twin(lk.Henon(), steps=200_000, x0=[0.1, 0.1], seed=0, backend="numba")
    assert abs(res.exponents[0] - ref.exponents[0]) < 0.05  # 2000 chaotic steps in float32
    with pytest.raises(ValueError, match="separation"):
        lk.max_lyapunov_twin(lk.Henon(), dtype=dtype, separation=1e-8, **kw)


@pytest.mark.parametrize("dtype", ["float16", "longdouble"])
def test_numpy_unsupported_dtype_is_a_backend_error(dtype):
    with pytest.raises(lk.BackendError, match="float32 or float64"):
        lk.lyapunov_spectrum(
            lk.Henon(), steps=5, x0=[0.1, 0.1], seed=0, backend="numpy", dtype=dtype
        )


def test_singular_jacobian_is_explained_and_fewer_exponents_still_work():
    """A zero row in J collapses a tangent direction (R_22 = 0): λ2 = log 0 = −inf with a
    warning that names the singular Jacobian as a cause, and k = 1 still gives λ1 = log 0.5."""
    system = lk.LinearMap([[0.0, 0.0], [1.0, 0.5]])  # eigenvalues 0.5 and 0
    lead = lk.lyapunov_spectrum(
        system, steps=50, transient=20, k=1, x0=[1.0, 1.0], seed=0, backend="numpy"
    )
    assert lead.exponents[0] == pytest.approx(np.log(0.5), abs=1e-12)
    with pytest.warns(lk.lyapunov.SingularJacobianWarning, match="Jacobian is singular"):
        res = lk.lyapunov_spectrum(system, steps=50, x0=[1.0, 1.0], seed=0, backend="numpy")
    assert res.exponents[0] == pytest.approx(np.log(0.5), abs=0.02)  # no transient: O(1/T)
    assert res.exponents[1] == -np.inf


@pytest.mark.filterwarnings("ignore::lyapkit.NonFiniteTrajectoryWarning")
def test_nan_inputs_are_rejected():
    system = lk.LinearMap(np.diag([0.5, 0.9]), B=np.ones((2, 1)))
    u = np.zeros((20, 1))
    u[5] = np.nan
    with pytest.raises(ValueError, match="inputs"):
        lk.lyapunov_spectrum(system, steps=20, x0=[1.0, 1.0], inputs=u, seed=0, backend="numpy")


def test_twin_accepts_numpy_scalar_separation():
    res = lk.max_lyapunov_twin(
        lk.Henon(), steps=10, x0=[0.1, 0.1], seed=0, backend="numpy", separation=np.float32(1e-6)
    )
    assert np.isfinite(res.exponents).all()


seeds = st.integers(0, 2**32 - 1)


def _rotation(phi):
    return np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])


def _random_system(rng, kind, n, m):
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    if kind == "tanh":
        return lk.TanhNetwork(
            n, g=rng.uniform(0.5, 3.0), input_dim=m, W=W, seed=int(rng.integers(9))
        )
    R = rng.uniform(0.5, 1.1) * np.linalg.qr(rng.standard_normal((n, n)))[0]
    return lk.WCRNNMap(
        R,
        W,
        rng.uniform(0.01, 0.5, n),
        V=rng.standard_normal((n, m)),
        b=0.1 * rng.standard_normal(n),
        variant=kind,
    )


@pytest.mark.filterwarnings("ignore::lyapkit.IllConditionedBasisWarning")
@settings(max_examples=25)
@given(
    seed=seeds,
    kind=st.sampled_from(["tanh", "linear", "A", "B"]),
    n=st.integers(1, 6),
    m=st.integers(0, 2),
    every=st.integers(1, 3),
)
def test_sum_of_exponents_is_mean_log_abs_det_jacobian(seed, kind, n, m, every):
    """Σ_i λ_i = (1/T) Σ_t log|det J_t| along the same trajectory, exactly (up to rounding)."""
    rng = np.random.default_rng(seed)
    system = _random_system(rng, kind, n, m)
    transient, steps = 30, 300
    x0 = rng.uniform(-1, 1, n)
    inputs = rng.standard_normal((transient + steps, m)) if m else None
    res = lk.lyapunov_spectrum(
        system,
        steps=steps,
        transient=transient,
        x0=x0,
        inputs=inputs,
        reortho_every=every,
        seed=seed,
        backend="numpy",
    )
    x, logdets, conds = x0, [], []
    for t in range(transient + steps):
        u = None if inputs is None else inputs[t]
        if t >= transient:
            J = system.jacobian(x, u)
            logdets.append(np.linalg.slogdet(J)[1])
            conds.append(np.linalg.cond(J))
        x = system.step(x, u)
    # Householder QR and LU are backward stable: each step's log|det| carries an error of order
    # n ε κ(J_t) in either computation; summing T terms adds up to T ε Σ|log|det||/T.
    eps = np.finfo(float).eps
    tol = 10 * n * eps * (np.mean(conds) + 1) + steps * eps * np.mean(np.abs(logdets))
    assert res.exponents.sum() == pytest.approx(np.mean(logdets), abs=tol)


@settings(max_examples=20)
@given(
    seed=seeds,
    n=st.integers(2, 6),
    gap=st.floats(1.15, 1.6),
    top=st.floats(0.3, 2.0),
)
def test_linear_map_exponents_are_log_abs_eigenvalues(seed, n, gap, top):
    """x → A x with real eigenvalues of distinct moduli: after the transient has aligned the basis
    with the Schur vectors, every step contributes exactly log|μ_i|."""
    rng = np.random.default_rng(seed)
    moduli = top / gap ** np.arange(n)
    D = np.diag(moduli * rng.choice([-1.0, 1.0], n))
    S = rng.standard_normal((n, n)) + 3 * np.eye(n)
    A = S @ D @ np.linalg.inv(S)
    # Misalignment decays like gap^-transient; 400 steps make it < 1e-24 for gap >= 1.15.
    res = lk.lyapunov_spectrum(lk.LinearMap(A), steps=20, transient=400, seed=seed, backend="numpy")
    np.testing.assert_allclose(res.exponents, np.log(moduli), atol=1e-9)


@settings(max_examples=15)
@given(seed=seeds, pairs=st.integers(1, 3), real=st.integers(0, 2))
def test_linear_map_with_rotations(seed, pairs, real):
    """Rotating pairs r·R(φ) in a non-normal basis: each pair's exponents converge to log r like
    O(log κ / T) and their sum is exact."""
    rng = np.random.default_rng(seed)
    n = 2 * pairs + real
    radii = np.sort(rng.uniform(0.3, 1.0, pairs + real))[::-1]
    while np.min(np.abs(np.diff(np.log(radii)))) < 0.05 if len(radii) > 1 else False:
        radii = np.sort(rng.uniform(0.3, 1.0, pairs + real))[::-1]
    blocks, expected = [], []
    for j, r in enumerate(radii):
        if j < pairs:
            blocks.append(r * _rotation(rng.uniform(0.3, 2.8)))
            expected += [math.log(r)] * 2
        else:
            blocks.append(np.array([[r]]))
            expected.append(math.log(r))
    D = np.zeros((n, n))
    i = 0
    for b in blocks:
        D[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    S = rng.standard_normal((n, n)) + 3 * np.eye(n)
    A = S @ D @ np.linalg.inv(S)
    T = 4000
    res = lk.lyapunov_spectrum(lk.LinearMap(A), steps=T, transient=300, seed=seed, backend="numpy")
    expected = np.sort(expected)[::-1]
    # Finite-time deviation of a rotating pair is bounded by log of the condition number of the
    # basis in which it rotates; 2 log κ(S)/T bounds it.
    tol = 2 * math.log(np.linalg.cond(S)) / T + 1e-9
    np.testing.assert_allclose(res.exponents, expected, atol=tol)
    np.testing.assert_allclose(res.exponents.sum(), np.sum(expected), atol=1e-9)


@settings(max_examples=15)
@given(
    seed=seeds,
    n=st.integers(2, 5),
    rotational=st.booleans(),
    gamma=st.sampled_from([1e-3, 3e-3]),
)
def test_weakly_coupled_rnn_exponents_approach_log_abs_eig_R(seed, n, rotational, gamma):
    """Linear-residual WCRNN x' = R x + γ tanh(W x + V s + b): as γ → 0, λ_i → log|eig_i(R)|.

    In the eigenbasis S of R the Jacobian is D + E_t with ‖E_t‖ ≤ ε = κ(S) γ ‖W‖; Weyl's
    inequalities for the singular values of exterior powers bound every partial sum of exponents,
    giving |λ_i − log|d_i|| ≤ Σ_k log((|d_k| + ε)/(|d_k| − ε)) (coordinates do not change
    exponents). Add the finite-time error 2 log κ(S)/T of rotating pairs.
    """
    rng = np.random.default_rng(seed)
    radii = rng.uniform(0.6, 1.1, n)
    D = np.diag(radii * rng.choice([-1.0, 1.0], n))
    if rotational:
        for i in range(0, n - 1, 2):
            D[i : i + 2, i : i + 2] = radii[i] * _rotation(rng.uniform(0.2, 3.0))
            radii[i + 1] = radii[i]
    S = rng.standard_normal((n, n)) + 3 * np.eye(n)
    R = S @ D @ np.linalg.inv(S)
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    system = lk.WCRNNMap(R, W, gamma, V=rng.standard_normal((n, 1)), b=rng.standard_normal(n))
    T = 3000
    inputs = rng.standard_normal((T + 300, 1))
    res = lk.lyapunov_spectrum(
        system, steps=T, transient=300, inputs=inputs, seed=seed, backend="numpy"
    )
    kappa = np.linalg.cond(S)
    eps = kappa * gamma * np.linalg.norm(W, 2)
    bound = np.sum(np.log((radii + eps) / (radii - eps))) + 2 * math.log(kappa) / T
    np.testing.assert_allclose(res.exponents, np.sort(np.log(radii))[::-1], atol=bound)


def test_weak_coupling_error_shrinks_linearly_with_gamma():
    """R = 0.9 I: all exponents → log 0.9, with an error proportional to γ."""
    rng = np.random.default_rng(0)
    n = 8  # the numba loop compiled for test_backends' WCRNNs
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    V = rng.standard_normal((n, 1))
    inputs = rng.standard_normal((20_300, 1))
    errors = []
    for gamma in (1e-1, 1e-2, 1e-3):
        system = lk.WCRNNMap(0.9 * np.eye(n), W, gamma, V=V)
        res = lk.lyapunov_spectrum(
            system, steps=20_000, transient=300, inputs=inputs, seed=1, backend="numba"
        )
        errors.append(np.abs(res.exponents - math.log(0.9)).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] / errors[2] > 5 and errors[0] / errors[1] > 5


@settings(max_examples=15)
@given(
    seed=seeds,
    variant=st.sampled_from(["linear", "A", "B"]),
    every=st.integers(1, 4),
    k=st.sampled_from([2, 8]),
    scale=st.floats(0.3, 1.2),
)
def test_backends_agree_on_random_weakly_coupled_rnns(seed, variant, every, k, scale):
    """Conformance: numba and torch reproduce the numpy reference on random driven WCRNNs, for the
    full spectrum and a partial one (k = 1 on numba: the edge cases above)."""
    rng = np.random.default_rng(seed)
    # numba compiles one loop per (n, k), several seconds each: n = 8 and k = 8 are those of
    # test_backends' WCRNNs, k = 2 adds one.
    n = 8
    R = scale * np.linalg.qr(rng.standard_normal((n, n)))[0]
    system = lk.WCRNNMap(R, rng.standard_normal((n, n)), rng.uniform(0.01, 0.3, n),
                         V=rng.standard_normal((n, 1)), variant=variant)  # fmt: skip
    inputs = rng.standard_normal((2, 410, 1))
    kw = dict(steps=400, transient=10, k=k, inputs=inputs, reortho_every=every, seed=seed)
    ref = lk.lyapunov_spectrum(system, backend="numpy", **kw)
    for backend in ("numba", "torch"):
        res = lk.lyapunov_spectrum(system, backend=backend, **kw)
        np.testing.assert_allclose(res.member_exponents, ref.member_exponents, atol=1e-9)


@pytest.mark.filterwarnings("ignore::lyapkit.IllConditionedBasisWarning")
@settings(max_examples=10)
@given(
    seed=seeds,
    n=st.integers(21, 40),
    k=st.integers(1, 40),
    every=st.integers(1, 2),
    scale=st.floats(0.5, 1.5),
    gain=st.floats(0.1, 1.5),
)
def test_numba_blas_loop_reproduces_numpy_on_random_networks(seed, n, k, every, scale, gain):
    """The numba backend's BLAS-3 loop (n² k ≥ 2¹³) against the numpy reference, on
    driven type-B WCRNNs from contracting to chaotic: exponents, running estimates and final
    bases, for every number of vectors — wherever lyapkit does not warn that the basis became too
    ill-conditioned between re-orthonormalisations for the smallest exponents to be accurate."""
    from lyapkit.backends.numba_backend import BLAS_MIN_WORK

    k = min(n, max(k, -(-BLAS_MIN_WORK // n**2)))  # as few vectors as the BLAS loop takes
    rng = np.random.default_rng(seed)
    R = scale * np.linalg.qr(rng.standard_normal((n, n)))[0]
    system = lk.WCRNNMap(R, rng.standard_normal((n, n)) / np.sqrt(n), gain,
                         V=rng.standard_normal((n, 1)), variant="B")  # fmt: skip
    kw = dict(steps=60, transient=5, k=k, reortho_every=every, seed=seed, ensemble=2,
              inputs=rng.standard_normal((2, 65, 1)))  # fmt: skip
    ref = lk.lyapunov_spectrum(system, backend="numpy", **kw)
    assume(ref.max_condition < ILL_CONDITIONED)
    res = lk.lyapunov_spectrum(system, backend="numba", **kw)
    np.testing.assert_allclose(res.member_exponents, ref.member_exponents, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.history, ref.history, rtol=0, atol=1e-9)
    P = lambda Q: Q @ np.swapaxes(Q, -1, -2)  # noqa: E731
    np.testing.assert_allclose(P(res.final_basis), P(ref.final_basis), atol=1e-8)


HENON_LAMBDA1 = 0.41922  # Sprott (2003)


def _caught(fn, *args, **kwargs):
    """``(result, warning categories)`` of a call, every warning recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [w.category for w in caught]


class _NoProgress:
    enabled = False

    def update(self, n):
        pass

    def close(self):
        pass


def _singular_wcrnn(dim):
    """``x → A x`` with ``A = diag(0.5, …, 0.5, 0, 0)`` as a linear-residual WCRNN with γ = 0
    (exactly ``A x``, Jacobian exactly ``A``): the loops that test_backends compiles for it."""
    A = np.diag([0.5] * (dim - 2) + [0.0, 0.0])
    return lk.WCRNNMap(A, np.zeros((dim, dim)), 0.0, variant="linear")


class _ZeroPeriodHenon(lk.Henon):
    period = 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_twin_saturation_warns_and_suggests_a_smaller_renorm_every(backend):
    """renorm_every=100 lets the Hénon separation grow to the attractor's size: λ1 comes out
    near 0.18 (truth 0.42) with a tiny standard error, so only the warning tells."""
    with pytest.warns(lyapunov.TwinSaturationWarning, match=r"smaller renorm_every.*=100"):
        res = lk.max_lyapunov_twin(
            lk.Henon(), steps=3000, renorm_every=100, seed=0, backend=backend
        )
    assert res.exponents[0] < 0.25  # the underestimate the warning is about
    assert res.exponents[0] + 10 * res.stderr[0] < HENON_LAMBDA1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("renorm_every", [1, 10])
def test_twin_in_the_linear_range_is_quiet_and_accurate(backend, renorm_every):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = lk.max_lyapunov_twin(
            lk.Henon(), steps=3000, renorm_every=renorm_every, seed=0, backend=backend
        )
    assert abs(res.exponents[0] - HENON_LAMBDA1) < 0.05  # 3000 chaotic steps


def test_twin_linear_range_is_relative_to_the_state():
    """The same Hénon map in coordinates 10⁴ times larger has a 10⁴ times wider linear range:
    renorm_every=20 is accurate and quiet there, renorm_every=100 still saturates."""
    S = 1e4

    def big_henon(x):
        return np.array([S * (1 - 1.4 * (x[0] / S) ** 2) + x[1], 0.3 * x[0]])

    def big_jacobian(x):
        return np.array([[-2.8 * x[0] / S, 1.0], [0.3, 0.0]])

    system = lk.from_numpy(big_henon, 2, big_jacobian)
    kw = dict(steps=3000, x0=[0.1 * S, 0.1 * S], seed=0, backend="numpy")
    quiet, caught = _caught(lk.max_lyapunov_twin, system, renorm_every=20, **kw)
    assert caught == [] and abs(quiet.exponents[0] - HENON_LAMBDA1) < 0.05
    with pytest.warns(lyapunov.TwinSaturationWarning):
        lk.max_lyapunov_twin(system, renorm_every=100, **kw)


def test_twin_record_carries_the_largest_separation():
    """Backends report ``max_separation`` for the twin method; the tangent method has none."""
    plan, _, _ = lyapunov._prepare(
        lk.Henon(), steps=300, x0=[0.1, 0.1], inputs=None, k=1, transient=10, every=100,
        ensemble=None, seed=0, history=True, finite_time=None, separation=1e-8, dtype=None,
        device=None,
    )  # fmt: skip
    twin = lk.get_backend("numpy").twin(lk.Henon(), plan, _NoProgress())
    assert twin.max_separation.shape == (1,) and twin.max_separation[0] > 1e-2
    assert lk.get_backend("numpy").tangent(lk.Henon(), plan, _NoProgress()).max_separation is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [8, 24])  # numba: the scalar loop and the BLAS loop
@pytest.mark.parametrize("every", [1, 2])
def test_singular_jacobian_gives_minus_infinity_for_the_collapsed_directions(backend, dim, every):
    system = _singular_wcrnn(dim)
    x0 = np.random.default_rng(0).uniform(-1, 1, (2, dim))
    res, caught = _caught(
        lk.lyapunov_spectrum, system, steps=200, transient=6, reortho_every=every, x0=x0,
        finite_time=50, seed=0, backend=backend,
    )  # fmt: skip
    assert caught == [lyapunov.SingularJacobianWarning]  # not ill-conditioned, not non-finite
    finite = np.log(0.5) * np.ones(dim - 2)
    np.testing.assert_allclose(res.member_exponents[:, :-2], [finite, finite], rtol=1e-12)
    assert (res.member_exponents[:, -2:] == -np.inf).all()
    np.testing.assert_allclose(res.exponents[:-2], finite, rtol=1e-12)
    assert (res.exponents[-2:] == -np.inf).all()
    assert (res.stderr[-2:] == 0).all() and np.isfinite(res.stderr[:-2]).all()
    assert (res.blowup_steps == -1).all()
    assert (res.finite_time[..., -2:] == -np.inf).all()
    np.testing.assert_allclose(res.finite_time[..., :-2], np.log(0.5), rtol=1e-12)
    assert (res.history[:, -2:] == -np.inf).all() and np.isfinite(res.history[:, :-2]).all()
    assert np.isfinite(res.max_condition)
    assert res.kaplan_yorke_dimension == 0.0 and res.ks_entropy == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_map_gives_minus_infinity(backend):
    """``x → (x0 / 2, 0)``, the issue's rank-deficient example. From a random basis the images of
    both vectors are parallel: the numba backend's Gram–Schmidt must see that the rounding
    residue it leaves lies in the span (else λ2 would be a finite ≈ −75)."""
    system = lk.LinearMap([[0.5, 0.0], [0.0, 0.0]])
    with pytest.warns(lyapunov.SingularJacobianWarning, match=r"member 0: 1 of 2"):
        res = lk.lyapunov_spectrum(
            system, steps=100, transient=1, x0=[1.0, 1.0], seed=0, backend=backend
        )
    assert res.exponents[0] == pytest.approx(math.log(0.5), rel=1e-12)
    assert res.exponents[1] == -np.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_stays_nan_even_when_the_jacobian_is_singular(backend):
    A = np.diag([1e10] + [0.0] * 7)
    system = lk.WCRNNMap(A, np.zeros((8, 8)), 0.0, variant="linear")
    res, caught = _caught(
        lk.lyapunov_spectrum, system, steps=100, x0=np.ones(8), seed=0, backend=backend
    )
    assert caught == [lk.NonFiniteTrajectoryWarning]
    assert np.isnan(res.exponents).all() and res.blowup_steps[0] == 31  # 1e10**31 > 1.8e308


@pytest.mark.parametrize("backend", BACKENDS)
def test_near_singular_first_step_is_forgotten_with_a_transient(backend):
    """A random basis meets a contraction of 1e-40 in its first step, which rounding cannot
    resolve (Householder QR gives R_33 = 0): during the transient that is no collapse, and
    afterwards the exponents are exact. (This was NaN on the numpy and torch backends.)"""
    system = lk.LinearMap(np.diag([0.5, 1e-40, 2.0]))
    res, caught = _caught(
        lk.lyapunov_spectrum, system, steps=200, transient=20, x0=np.ones(3), seed=0,
        backend=backend,
    )  # fmt: skip
    assert caught == []
    np.testing.assert_allclose(res.exponents, np.log([2.0, 0.5, 1e-40]), rtol=1e-12)


def test_large_records_warn_first_with_their_size():
    """10⁹ steps with finite_time=1 would need ~45 GiB: the warning comes before anything is
    allocated (turned into an error here, it ends the call at once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", lyapunov.LargeResultWarning)
        with pytest.raises(lyapunov.LargeResultWarning, match=r"4\d\.\d GiB.*finite_time=1"):
            lk.lyapunov_spectrum(lk.Henon(), steps=10**9, finite_time=1, seed=0, backend="numpy")
        lk.lyapunov_spectrum(lk.Henon(), steps=2000, finite_time=1, seed=0, backend="numpy")


def test_peak_memory_is_a_small_multiple_of_the_finite_time_result():
    """finite_time=1 over 10⁶ steps: the peak was 6x the result (list of records, copies and
    temporaries of the whole array); now the sums, the result and the record steps (int64),
    with small temporaries. The windows are differenced in blocks: check them against a run
    with windows of 2 steps (the same trajectory)."""
    pytest.importorskip("numba")
    kw = dict(steps=10**6, x0=[0.1, 0.1], seed=0, backend="numba", history=False)
    lk.lyapunov_spectrum(lk.Henon(), steps=10, finite_time=1, seed=0, backend="numba")
    tracemalloc.start()
    try:
        one = lk.lyapunov_spectrum(lk.Henon(), finite_time=1, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * one.finite_time.nbytes
    two = lk.lyapunov_spectrum(lk.Henon(), finite_time=2, **kw)
    pairs = one.finite_time.reshape(1, -1, 2, 2).mean(axis=2)
    np.testing.assert_allclose(pairs, two.finite_time, rtol=0, atol=1e-8)
    np.testing.assert_allclose(one.finite_time.mean(axis=1), one.member_exponents, atol=1e-12)


def test_renorm_every_is_named_in_the_twin_method():
    with pytest.raises(ValueError, match="renorm_every must be a positive integer") as err:
        lk.max_lyapunov_twin(lk.Henon(), steps=10, renorm_every=0, backend="numpy")
    assert "reortho_every" not in str(err.value)


def test_twin_refuses_a_map_with_a_non_positive_period():
    with pytest.raises(ValueError, match=r"period of _ZeroPeriodHenon.*positive"):
        lk.max_lyapunov_twin(_ZeroPeriodHenon(), steps=10, backend="numpy")
