"""Lyapunov spectra against published values, closed forms and exact identities."""

import math

import numpy as np
import pytest

import lyapkit as lk

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
