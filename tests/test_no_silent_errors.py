"""No silent wrong results: what used to come back wrong without a word now warns, refuses or is right.

- the twin method warns when its separation saturates between renormalisations;
- complex values where real ones are expected are refused by name (theory, user maps);
- a singular Jacobian gives ``−inf`` for the collapsed directions (``log 0``), finite values for
  the others and a warning; an overflow stays NaN;
- a run whose records would be large warns first, with their size, and its peak memory is a small
  multiple of the result;
- wrong shapes, periods and intervals are named in the errors.
"""

from __future__ import annotations

import importlib.util
import math
import tracemalloc
import warnings

import numpy as np
import pytest

import lyapkit as lk
from lyapkit import lyapunov
from lyapkit.theory import memory_regime, residual_exponents

BACKENDS = ["numpy", "numba", "torch"]
HENON_LAMBDA1 = 0.41922  # Sprott (2003)


def _needs(backend: str) -> None:
    if backend != "numpy" and importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")


def _caught(fn, *args, **kwargs):
    """``(result, warning categories)`` of a call, every warning recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [w.category for w in caught]


# ------------------------------------------------------------------ the twin method's saturation


@pytest.mark.parametrize("backend", BACKENDS)
def test_twin_saturation_warns_and_suggests_a_smaller_renorm_every(backend):
    """renorm_every=100 lets the Hénon separation grow to the attractor's size: λ1 comes out
    near 0.18 (truth 0.42) with a tiny standard error, so only the warning tells."""
    _needs(backend)
    with pytest.warns(lyapunov.TwinSaturationWarning, match=r"smaller renorm_every.*=100"):
        res = lk.max_lyapunov_twin(
            lk.Henon(), steps=3000, renorm_every=100, seed=0, backend=backend
        )
    assert res.exponents[0] < 0.25  # the underestimate the warning is about
    assert res.exponents[0] + 10 * res.stderr[0] < HENON_LAMBDA1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("renorm_every", [1, 10])
def test_twin_in_the_linear_range_is_quiet_and_accurate(backend, renorm_every):
    _needs(backend)
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


class _NoProgress:
    enabled = False

    def update(self, n):
        pass

    def close(self):
        pass


# ------------------------------------------------------------------ complex values are refused


def test_residual_exponents_refuse_complex_and_the_real_form_is_right():
    R = np.eye(2) * (1 + 1j)  # |eig| = √2: exponents log √2, which a cast to real loses
    with pytest.raises(TypeError, match="R must be a real matrix"):
        residual_exponents(R)
    with pytest.raises(TypeError, match="R must be a real matrix"):
        memory_regime(R)
    real_form = np.block([[R.real, -R.imag], [R.imag, R.real]])
    np.testing.assert_allclose(residual_exponents(real_form), [math.log(math.sqrt(2))] * 4)


def _complex_step(x):
    return (1 + 1j) * x


def test_user_map_returning_complex_values_is_refused_by_name():
    step_complex = lk.from_numpy(_complex_step, 2, lambda x: np.eye(2))
    with pytest.raises(TypeError, match=r"step callable '_complex_step' returned complex"):
        lk.lyapunov_spectrum(step_complex, steps=5, seed=0, backend="numpy")
    jac_complex = lk.from_numpy(lambda x: 0.5 * x, 2, lambda x: np.eye(2) * 1j, vectorized=True)
    with pytest.raises(TypeError, match=r"jacobian callable .* returned complex"):
        lk.lyapunov_spectrum(jac_complex, steps=5, seed=0, backend="numpy")
    with pytest.raises(TypeError, match="complex"):
        step_complex.step(np.ones(2))


# ------------------------------------------------------------------ singular Jacobians: −inf


def _singular_wcrnn(dim):
    """``x → A x`` with ``A = diag(0.5, …, 0.5, 0, 0)`` as a linear-residual WCRNN with γ = 0
    (exactly ``A x``, Jacobian exactly ``A``): the loops that test_backends compiles for it."""
    A = np.diag([0.5] * (dim - 2) + [0.0, 0.0])
    return lk.WCRNNMap(A, np.zeros((dim, dim)), 0.0, variant="linear")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [8, 24])  # numba: the scalar loop and the BLAS loop
@pytest.mark.parametrize("every", [1, 2])
def test_singular_jacobian_gives_minus_infinity_for_the_collapsed_directions(backend, dim, every):
    _needs(backend)
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
    _needs(backend)
    system = lk.LinearMap([[0.5, 0.0], [0.0, 0.0]])
    with pytest.warns(lyapunov.SingularJacobianWarning, match=r"member 0: 1 of 2"):
        res = lk.lyapunov_spectrum(
            system, steps=100, transient=1, x0=[1.0, 1.0], seed=0, backend=backend
        )
    assert res.exponents[0] == pytest.approx(math.log(0.5), rel=1e-12)
    assert res.exponents[1] == -np.inf


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflow_stays_nan_even_when_the_jacobian_is_singular(backend):
    _needs(backend)
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
    _needs(backend)
    system = lk.LinearMap(np.diag([0.5, 1e-40, 2.0]))
    res, caught = _caught(
        lk.lyapunov_spectrum, system, steps=200, transient=20, x0=np.ones(3), seed=0,
        backend=backend,
    )  # fmt: skip
    assert caught == []
    np.testing.assert_allclose(res.exponents, np.log([2.0, 0.5, 1e-40]), rtol=1e-12)


def test_kaplan_yorke_and_entropy_take_minus_infinity():
    assert lk.kaplan_yorke_dimension([0.4, -0.1, -np.inf]) == 2.0
    assert lk.kaplan_yorke_dimension([0.4, -np.inf]) == 1.0
    assert lk.ks_entropy([0.4, -np.inf]) == pytest.approx(0.4)
    assert math.isnan(lk.kaplan_yorke_dimension([0.4, np.nan]))
    assert math.isnan(lk.ks_entropy([0.4, np.nan]))


# ------------------------------------------------------------------ memory


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


# ------------------------------------------------------------------ clear messages


def _three(x):
    return np.array([x[0], x[1], 0.0])


def _flat_jacobian(x):
    return np.array([-2.8 * x[0], 1.0, 0.3, 0.0])


def _henon(x):
    return np.array([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])


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


def test_renorm_every_is_named_in_the_twin_method():
    with pytest.raises(ValueError, match="renorm_every must be a positive integer") as err:
        lk.max_lyapunov_twin(lk.Henon(), steps=10, renorm_every=0, backend="numpy")
    assert "reortho_every" not in str(err.value)


class _ZeroPeriodHenon(lk.Henon):
    period = 0.0


@pytest.mark.parametrize("period", [0, -1.0, math.inf, math.nan, True])
def test_non_positive_period_is_refused(period):
    with pytest.raises(ValueError, match="period must be a positive finite number"):
        lk.from_numpy(_henon, 2, period=period)
    kernels = lk.Henon().numba_kernels()
    if kernels is not None:
        with pytest.raises(ValueError, match="period must be a positive finite number"):
            lk.from_numba(kernels.step, kernels.jacobian, 2, params=kernels.params, period=period)


def test_twin_refuses_a_map_with_a_non_positive_period():
    with pytest.raises(ValueError, match=r"period of _ZeroPeriodHenon.*positive"):
        lk.max_lyapunov_twin(_ZeroPeriodHenon(), steps=10, backend="numpy")


def test_curvature_operator_says_what_data_must_be():
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 1)
    inputs, targets = torch.randn(4, 2), torch.randn(4, 1)
    with pytest.raises(TypeError, match=r"bare Tensor of shape \(4, 2\): pass \(inputs, targets\)"):
        lk.CurvatureOperator(model, inputs, "mse")
    with pytest.raises(TypeError, match=r"item 0 of data is a Tensor"):
        lk.CurvatureOperator(model, [inputs, inputs, targets], "mse")
    op = lk.CurvatureOperator(model, [(inputs, targets)], "mse")  # a list of batches is fine
    assert op.shape == (3, 3)
