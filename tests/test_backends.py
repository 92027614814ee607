"""Backends: the conformance suite (lyapkit.testing) on every built-in backend, the numba and
torch kernels beyond it, the registry, plugins and errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cases import (
    BACKENDS,
    BUILTIN_BACKENDS,
    INSTALLED,
    assert_refused,
    cli,
    write_config,
)

import lyapkit as lk
from lyapkit import testing
from lyapkit.testing import backend_cases


@pytest.mark.parametrize("backend, check", backend_cases(BUILTIN_BACKENDS))
def test_conformance(backend, check):
    """The public conformance suite (lyapkit.testing) on every built-in backend."""
    check(backend)


# Beyond the suite's reference maps: full spectra from 21 dimensions on, which run the numba
# backend's BLAS-3 loop with CholeskyQR, and a short chaotic run of a map with a ring coupling.
# The numba backend compiles a loop once per process for each map's kernels (and, for the scalar
# loop, each dimension and number of exponents): several seconds each, so these share the WCRNN
# kernels of the suite and of test_lyapunov.
LARGE = {
    "wcrnn-A-40": (testing._wcrnn("A", n=40, m=0), 1000),  # autonomous
    "wcrnn-B-24": (testing._wcrnn("B", n=24), 1000),  # driven
    "standard-short": (lk.CoupledStandardMaps(3, k=1.1, coupling=0.2), 25),
}


@pytest.mark.filterwarnings("ignore::lyapkit.IllConditionedBasisWarning")
@pytest.mark.parametrize("name", list(LARGE))
def test_backends_agree_to_1e9_on_large_and_ring_maps(name):
    system, steps = LARGE[name]
    kw = dict(steps=steps, transient=10, ensemble=3, seed=21, reortho_every=2)
    if system.input_dim:
        kw["inputs"] = np.random.default_rng(2).standard_normal((3, steps + 10, system.input_dim))
    ref = lk.lyapunov_spectrum(system, backend="numpy", **kw)
    for b in INSTALLED:
        res = lk.lyapunov_spectrum(system, backend=b, **kw)
        np.testing.assert_allclose(res.member_exponents, ref.member_exponents, rtol=0, atol=1e-9)
        np.testing.assert_allclose(res.final_state, ref.final_state, rtol=0, atol=1e-9)
        assert abs(res.max_condition - ref.max_condition) <= 1e-6 * ref.max_condition


class ForgetfulBackend(lk.Backend):
    """The numpy backend with one bug: it ignores the inputs of driven maps."""

    name = "forgetful"

    def supports(self, system):
        return "numpy" in system.namespaces

    def tangent(self, system, plan, progress):
        import dataclasses

        plan = dataclasses.replace(plan, inputs=np.zeros_like(plan.inputs))
        return lk.get_backend("numpy").tangent(system, plan, progress)

    def twin(self, system, plan, progress):
        raise lk.BackendError("the forgetful backend has no twin method")


def test_conformance_suite_catches_a_broken_backend():
    """A backend that drops the inputs fails the agreement check, and check_backend names it;
    it passes the checks its bug does not touch (an autonomous map's overflow, the errors)."""
    with pytest.raises(AssertionError, match="agrees_with_numpy"):
        testing.check_backend(ForgetfulBackend())
    testing.check_backend(ForgetfulBackend(), checks=["overflow", "errors", "twin"])
    with pytest.raises(ValueError, match="checks must be names"):
        testing.check_backend("numpy", checks=["speed"])


def test_long_chaotic_runs_agree_within_standard_errors():
    kw = dict(steps=20_000, transient=500, ensemble=8, seed=22)
    a = lk.lyapunov_spectrum(lk.Henon(), backend="numba", **kw)
    b = lk.lyapunov_spectrum(lk.Henon(), backend="torch", **kw)
    assert np.all(np.abs(a.exponents - b.exponents) <= 4 * np.hypot(a.stderr, b.stderr))


def test_torch_float32_and_explicit_cpu_device():
    pytest.importorskip("torch")
    system = lk.TanhNetwork(20, g=0.9, input_dim=1, seed=4)  # driven, not chaotic
    inputs = np.random.default_rng(5).standard_normal((2000, 1))
    ref = lk.lyapunov_spectrum(system, steps=2000, inputs=inputs, seed=5, backend="numpy")
    res = lk.lyapunov_spectrum(
        system, steps=2000, inputs=inputs, seed=5, backend="torch", dtype="float32", device="cpu"
    )
    # float32 rounding (ε ≈ 1.2e-7) accumulates over the run; the exponents keep ~4 digits.
    np.testing.assert_allclose(res.exponents, ref.exponents, rtol=2e-4, atol=1e-4)


def _numba_cholesky_qr(A):
    from lyapkit.backends._numba_blas import orthonormalise

    k = A.shape[1]
    V, G, r = np.ascontiguousarray(A.T), np.empty((k, k)), np.empty(k)
    method = orthonormalise(V, G, r)
    return V.T, r, method


def _torch_cholesky_qr(A):
    torch = pytest.importorskip("torch")
    from lyapkit.backends.torch_backend import TorchOps

    Q, r, method = TorchOps("float64", "cpu").cholesky_qr(torch.as_tensor(A)[None])
    return Q[0].numpy(), r[0].numpy(), method


CHOLESKY_QR = {"numba": _numba_cholesky_qr, "torch": _torch_cholesky_qr}


def _near_dependent(n, column, sine, seed=0):
    """A random n × n matrix with strongly graded columns, like a tangent basis after a step;
    ``column`` (if not None) has the given sine to the span of the previous columns."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    if column is not None:
        basis = np.linalg.qr(A[:, :column])[0]
        inside = basis @ rng.standard_normal(column)
        outside = A[:, column] - basis @ (basis.T @ A[:, column])
        A[:, column] = np.sqrt(1 - sine**2) * inside / np.linalg.norm(inside)
        A[:, column] += sine * outside / np.linalg.norm(outside)
    return A @ np.diag(np.logspace(0, -8, n))


@pytest.mark.parametrize("implementation", list(CHOLESKY_QR))
@pytest.mark.parametrize(
    "column, sine, method",
    [
        (None, None, 0),  # graded but well separated: one CholeskyQR pass
        (38, 1e-6, 1),  # the last columns nearly dependent: a second pass on them
        (7, 1e-6, 1),  # an early column: the second pass covers all the columns after it
        (30, 1e-7, 2),  # s² below 100 k ε: a first pass cannot be trusted, Householder QR
        (30, 0.0, 2),  # exactly dependent: Householder QR, R_ii = 0 to rounding
    ],
)
def test_cholesky_qr_policy_matches_householder(implementation, column, sine, method):
    n, eps = 40, np.finfo(float).eps
    A = _near_dependent(n, column, sine)
    Q, r, used = CHOLESKY_QR[implementation](A)
    assert used == method
    np.testing.assert_allclose(Q.T @ Q, np.eye(n), rtol=0, atol=1e-12)
    # Backward-stable QR gets R_jj to a relative error of about ε / min_{i≤j} s_i (the sines of
    # the columns to the span of the previous ones); one CholeskyQR pass to ε / min s_i². The
    # LAPACK reference has errors of the first kind.
    Q_ref, R_ref = np.linalg.qr(A)
    r_ref = np.abs(np.diag(R_ref))
    worst = np.minimum.accumulate(np.maximum(r_ref / np.linalg.norm(A, axis=0), 1e-300))
    bound = 10 * n * eps * (worst**-2 if used == 0 else worst**-1)
    assert np.all(np.abs(r - r_ref) <= bound * r_ref + 10 * n * eps * r_ref.max())
    # Same nested subspaces (Q up to the signs of its columns) where they are well defined.
    good = worst > 1e-3
    signs = np.sign(np.diag(R_ref))
    np.testing.assert_allclose(Q[:, good], (Q_ref * signs)[:, good], rtol=0, atol=1e-9)


@pytest.mark.parametrize("implementation", list(CHOLESKY_QR))
@pytest.mark.parametrize("factor", [1e-161, 1e-200, 1e200])
def test_cholesky_qr_scales_extreme_columns(implementation, factor):
    """A column whose squared norm would be subnormal (or overflow) in the Gram matrix is scaled
    by a power of two first; R_ii is then exact to rounding."""
    A = np.random.default_rng(0).standard_normal((40, 20))
    A[:, -1] *= factor
    _, r, method = CHOLESKY_QR[implementation](A)
    assert method == 0
    np.testing.assert_allclose(r, np.abs(np.diag(np.linalg.qr(A)[1])), rtol=1e-13, atol=0)


@pytest.mark.filterwarnings("ignore::lyapkit.IllConditionedBasisWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_non_normal_chain_keeps_an_orthonormal_basis(backend):
    """``J = aI + N`` (N the shift) has every column sine near ``a`` but a condition number growing
    like ``a^(1−k)``: CholeskyQR must notice the lost orthonormality, not trust the sines. Every
    window's exponents must sum to ``n log a`` (``det J = aⁿ``)."""
    n, a = 24, 0.5  # numba: the BLAS loop
    # x → (aI + N) x as a linear-residual WCRNN with γ = 0: J = aI + N exactly, and numba runs the
    # loop it compiled for the WCRNNs above.
    J = a * np.eye(n) + np.eye(n, k=1)
    system = lk.WCRNNMap(J, np.zeros((n, n)), 0.0, variant="linear")
    res = lk.lyapunov_spectrum(
        system, steps=200, x0=np.zeros(n), seed=3, backend=backend, finite_time=20
    )
    Q = res.final_basis[0]
    np.testing.assert_allclose(Q.T @ Q, np.eye(n), rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.finite_time[0].sum(-1), n * np.log(a), rtol=0, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dim", [8, 24])  # numba: the scalar loop and the BLAS loop
def test_overflow_gives_nan_and_a_warning_naming_the_step(backend, dim):
    # x → A x as a linear-residual WCRNN with γ = 0 (exactly A x, Jacobian exactly A), so that
    # numba runs the loops it compiled for the WCRNNs above.
    A = np.diag([1e10] + [0.5] * (dim - 1))
    system = lk.WCRNNMap(A, np.zeros((dim, dim)), 0.0, variant="linear")
    x0 = np.zeros((2, dim))
    x0[0, 1], x0[1] = 1.0, 1.0
    # 2000 steps: past the first blow-up check of the array loops (every 1024 steps), with member
    # 0 still running after member 1 blew up.
    with pytest.warns(lk.NonFiniteTrajectoryWarning, match=r"member 1 by step 31\b"):
        res = lk.lyapunov_spectrum(system, steps=2000, transient=5, x0=x0, seed=0, backend=backend)
    # 1e10**31 = 1e310 overflows float64 at step 31 (counted from the start, transient
    # included); member 0 never leaves the stable axis and keeps its exact exponents.
    assert list(res.blowup_steps) == [-1, 31]
    assert np.isnan(res.exponents).all()
    np.testing.assert_allclose(
        res.member_exponents[0], np.log([1e10] + [0.5] * (dim - 1)), rtol=1e-12, atol=1e-12
    )
    assert np.isnan(res.member_exponents[1]).all()


def test_all_members_blowing_up_stops_early():
    # A logistic map with r = 5 escapes to -inf within a few dozen steps; a 10^8-step request must
    # return at once (the array loops stop when every member has blown up).
    with pytest.warns(lk.NonFiniteTrajectoryWarning):
        res = lk.lyapunov_spectrum(lk.Logistic(5.0), steps=10**8, x0=[0.3], backend="numpy")
    assert res.blowup_steps[0] < 100


def test_auto_choice():
    assert lk.get_backend("auto", lk.Henon()).name == "numba"
    assert lk.get_backend("auto", lk.TanhNetwork(64)).name == "numba"
    assert (
        lk.get_backend("auto", lk.from_numpy(lambda x: x, 1, lambda x: np.eye(1))).name == "numpy"
    )


def test_auto_chooses_among_the_backends_that_accept_the_dtype_and_device():
    # numba is preferred for Hénon but computes in float64 on the CPU only
    torch = pytest.importorskip("torch")
    x0 = np.full((1, 2), 0.1)
    for dtype in ("float32", np.float32, np.dtype("float32"), torch.float32):
        res = lk.lyapunov_spectrum(lk.Henon(), steps=400, seed=0, dtype=dtype)
        clv = lk.covariant_vectors(lk.Henon(), steps=50, seed=0, dtype=dtype)
        term = lk.variational_term(lk.Henon(), x0[0], stop=20, dtype=dtype)
        assert res.backend == clv.backend == term.backend == "numpy", dtype
        reference = lk.lyapunov_spectrum(
            lk.Henon(), steps=400, seed=0, dtype="float32", backend="numpy"
        )
        np.testing.assert_array_equal(res.exponents, reference.exponents)
    for dtype in (np.float64, torch.float64):  # a dtype object names float64 for every backend
        for backend in ("numpy", "numba", "torch"):
            res = lk.lyapunov_spectrum(lk.Henon(), steps=50, seed=0, dtype=dtype, backend=backend)
            assert res.backend == backend
    plan = lk.TangentPlan(
        x0, np.eye(2)[None], np.zeros((1, 10, 0)), 0, 10, 1, np.array([], int), device="cuda:1"
    )
    with pytest.raises(lk.BackendError, match="no installed backend can run .* device='cuda:1'"):
        lk.get_backend("auto", lk.from_numpy(lambda x: x, 1, lambda x: np.eye(1)), plan=plan)
    assert lk.get_backend("auto", lk.Henon(), plan=plan).name == "torch"


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_a_finite_state_whose_sum_overflows_is_no_blow_up(backend):
    res = lk.lyapunov_spectrum(
        lk.LinearMap(np.eye(2)), x0=[1e308, 1e308], steps=50, seed=0, backend=backend
    )
    assert res.blowup_steps[0] == -1 and np.all(np.abs(res.exponents) < 1e-12)


def test_x0_of_the_wrong_size_is_named_with_its_own_shape():
    with pytest.raises(ValueError, match=r"x0 must have shape \(2,\) .*got \(3,\)"):
        lk.lyapunov_spectrum(lk.Henon(), x0=np.zeros(3), steps=10)


def test_unknown_and_incapable_backends_are_named():
    with pytest.raises(lk.BackendError, match=r"backend must be 'auto' or one of \['numpy'"):
        lk.lyapunov_spectrum(lk.Henon(), steps=10, backend="jax")
    with pytest.raises(lk.BackendError, match="float64"):
        lk.lyapunov_spectrum(lk.Henon(), steps=10, backend="numba", dtype="float32")
    with pytest.raises(lk.BackendError, match="CPU only"):
        lk.lyapunov_spectrum(lk.Henon(), steps=10, backend="numpy", device="cuda")


def test_import_lyapkit_imports_neither_numba_nor_torch():
    code = "import sys, lyapkit; print('numba' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_third_party_backend_plugin_via_entry_point(tmp_path):
    """A plugin registered in the `lyapkit.backends` entry-point group is found and used; one whose
    dependencies are missing says what to install; a broken one warns instead of crashing."""
    (tmp_path / "fastlyap.py").write_text(
        textwrap.dedent("""
        from lyapkit.backends.numpy_backend import NumpyBackend
        from lyapkit import Backend

        class FastBackend(NumpyBackend):
            name = "fast"
            description = "a third-party backend"

        class NeedsMissing(NumpyBackend):
            name = "needs"
            requires = ("module_that_does_not_exist_xyz",)
            extra = "needs-extra"
    """)
    )
    dist = tmp_path / "fastlyap-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fastlyap\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lyapkit.backends]\nfast = fastlyap:FastBackend\nneeds = fastlyap:NeedsMissing\n"
        "broken = fastlyap:DoesNotExist\n"
    )
    code = textwrap.dedent("""
        import warnings, lyapkit as lk
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            names = lk.backend_names()
        print(names)
        print(any("broken" in str(w.message) for w in caught))
        print(lk.lyapunov_spectrum(lk.CatMap(), steps=50, transient=20, backend="fast").backend)
        print("needs" in lk.available_backends())
        try:
            lk.get_backend("needs")
        except lk.BackendError as err:
            print(err)
    """)
    env = {"PYTHONPATH": str(tmp_path)}

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    ).stdout.splitlines()
    assert "'fast'" in out[0] and "'needs'" in out[0] and "broken" not in out[0]
    assert out[1] == "True"
    assert out[2] == "fast"
    assert out[3] == "False"
    assert "pip install lyapkit[needs-extra]" in out[4]


def test_missing_optional_dependency_names_the_extra():
    from lyapkit._array import import_optional

    with pytest.raises(ImportError, match=r"pip install lyapkit\[somextra\]"):
        import_optional("a_module_that_is_not_installed", "somextra")


torch = pytest.importorskip("torch")


def test_cuda_on_a_cpu_only_torch_is_named(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    config = write_config(tmp_path)
    text = config.read_text().replace("threads = 0", 'threads = 0\ndevice = "cuda"')
    config.write_text(text)
    assert_refused(cli("train", str(config)), "run.device='cuda'", "no CUDA device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]  # nothing written
    torch_map = lk.from_torch(lambda x: torch.tanh(x), dim=3)
    with pytest.raises(lk.BackendError, match="device='cuda'.*no CUDA device"):
        lk.lyapunov_spectrum(torch_map, steps=10, backend="torch", device="cuda")


def test_unknown_device_strings_are_named():
    with pytest.raises(lk.BackendError, match="device must be a torch device.*'gpu'"):
        lk.lyapunov_spectrum(lk.Henon(), steps=10, backend="torch", device="gpu")


def test_numba_typing_errors_are_one_backend_error():
    numba = pytest.importorskip("numba")

    @numba.njit
    def step(x, u, p, out):
        out[0] = p[0] * x[0] * "a"  # no float × str

    @numba.njit
    def jacobian(x, u, p, out):
        out[0, 0] = p[0]

    system = lk.from_numba(step, jacobian, 1, params=(2.0,), name="typo")
    with pytest.raises(lk.BackendError) as info:
        lk.lyapunov_spectrum(system, steps=10, backend="numba")
    message = str(info.value)
    assert "\n" not in message and message.startswith("typo: numba cannot compile")
    assert "mul(float64" in message and "backend='numpy'" in message


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_a_basis_underflowing_between_renormalisations_is_told_apart_from_a_singular_map(backend):
    # diag(0.01, 0.001)^200 is below the smallest float: the same -inf as a singular Jacobian
    A = np.diag([0.01, 0.001])
    kwargs = dict(x0=np.zeros(2), steps=2000, seed=0, backend=backend)
    with pytest.warns(lk.lyapunov.SingularJacobianWarning, match="smaller reortho_every"):
        lk.lyapunov_spectrum(lk.LinearMap(A), reortho_every=200, **kwargs)
    res = lk.lyapunov_spectrum(lk.LinearMap(A), reortho_every=20, transient=200, **kwargs)
    np.testing.assert_allclose(res.exponents, np.log([0.01, 0.001]), rtol=1e-12)
