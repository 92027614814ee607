"""Edge cases checked against an independent QR loop and closed forms.

Each test pins behaviour found by an adversarial review (several were bugs, since fixed).
"""

import math
import warnings

import numpy as np
import pytest

import lyapkit as lk
from lyapkit.cli import main
from lyapkit.lyapunov import _random_bases


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


# ---------------------------------------------------------------- behaviour that is correct now

SCHEDULES = [  # steps, reortho_every, transient, k
    (1, 1, 0, 2),
    (7, 3, 5, 3),  # every divides neither steps nor transient; k < dim
    (10, 4, 0, 1),
    (10, 1, 3, 4),
    (6, 6, 6, 2),
]


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


# ---------------------------------------------------------------- confirmed bugs


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


class _DtypeSpy(lk.LinearMap):
    seen: set = set()

    def step_and_jacobian(self, x, u=None):
        y, J = super().step_and_jacobian(x, u)
        self.seen.update({x.dtype.name, y.dtype.name, J.dtype.name})
        return y, J


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


def test_cli_unwritable_output_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "missing" / "x.nc"
    argv = ["-q", "spectrum", "henon", "--steps", "50", "--backend", "numpy", "-o", str(out)]
    assert main(argv) != 0
    assert "error" in capsys.readouterr().err


def test_cli_invalid_arguments_exit_2(capsys):
    assert main(["-q", "spectrum", "henon", "--steps", "0", "--backend", "numpy"]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err
    assert main(["-q", "spectrum", "henon", "--k", "3", "--backend", "numpy"]) == 2
    assert "k must be an integer between 1 and dim=2" in capsys.readouterr().err
