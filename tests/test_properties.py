"""Property-based tests over random systems: exact identities and the weak-coupling limit."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.lyapunov import ILL_CONDITIONED

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
    full spectrum and a partial one (k = 1 on numba: test_edge_cases)."""
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
