"""GGN without autodiff (lyapkit.sensitivity) and the WCRNN parameter Jacobian.

The references are computed independently of lyapkit: the WCRNN recurrence is written out again
here in torch (float64), its output Jacobian ``J_y = ∂y/∂θ`` comes from ``torch.func.jacrev``, the
loss Hessian ``H`` from ``torch.func.hessian`` of ``torch.nn.functional``'s mean-reduced losses,
and the reference GGN is ``J_yᵀ H J_y``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.backend import GGNPlan
from lyapkit.sensitivity import MapGGN, map_ggn

torch = pytest.importorskip("torch")
F = torch.nn.functional

ALL = ("b", "W", "gamma", "R", "V")  # every WCRNN parameter, in a non-canonical order
N, M, OUT, E, T = 3, 2, 3, 2, 4  # state, input and output sizes, members, steps


def _weights(seed: int, n: int = N, m: int = M, o: int = OUT) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "R": rng.standard_normal((n, n)) / math.sqrt(n),
        "W": 1.5 * rng.standard_normal((n, n)) / math.sqrt(n),
        "gamma": rng.uniform(0.1, 0.9, n),
        "V": rng.standard_normal((n, m)),
        "b": 0.5 * rng.standard_normal(n),
        "C": rng.standard_normal((o, n)),
        "c": rng.standard_normal(o),
    }


def _wcrnn(w: dict, variant: str, per_unit: bool) -> lk.WCRNNMap:
    gamma = w["gamma"] if per_unit else float(w["gamma"][0])
    V = w["V"] if w["V"].shape[1] else None
    return lk.WCRNNMap(w["R"], w["W"], gamma, V=V, b=w["b"], variant=variant)


def _torch_step(p: dict, x, u, variant: str):
    """One WCRNN step, written out in torch (independent of lyapkit.maps.wcrnn)."""
    pre = x @ p["W"].T + u @ p["V"].T + p["b"]
    if variant == "B":
        return torch.tanh(x @ p["R"].T + p["gamma"] * pre)
    residual = x @ p["R"].T if variant == "linear" else torch.tanh(x @ p["R"].T)
    return residual + p["gamma"] * torch.tanh(pre)


def _reference_ggn(system, w, x0, U, names, loss, outputs) -> np.ndarray:
    """``J_yᵀ H J_y`` by torch.func: jacrev of the unrolled outputs, hessian of the mean loss."""
    p0 = {k: torch.tensor(v) for k, v in w.items()}
    p0["gamma"] = torch.tensor(system.parameters()["gamma"])  # per unit, as the map stores it
    sizes = [p0[k].numel() for k in names]
    X0, U = torch.tensor(x0), torch.tensor(U)

    def outputs_of(flat):
        p = dict(p0)
        for k, part in zip(names, flat.split(sizes), strict=True):
            p[k] = part.reshape(p0[k].shape)
        x, ys = X0, []
        for t in range(U.shape[1]):
            x = _torch_step(p, x, U[:, t], system.variant)
            if outputs == "all" or t == U.shape[1] - 1:
                ys.append(x @ p["C"].T + p["c"])
        return torch.stack(ys, 1)  # (E, outputs, o)

    flat = torch.cat([p0[k].reshape(-1) for k in names])
    Y = outputs_of(flat)
    J = torch.func.jacrev(outputs_of)(flat).reshape(Y.numel(), -1)
    if loss == "mse":
        target = torch.zeros_like(Y)
        H = torch.func.hessian(lambda y: F.mse_loss(y, target))(Y)
    else:
        labels = torch.zeros(Y.shape[:-1], dtype=torch.long)
        H = torch.func.hessian(
            lambda y: F.cross_entropy(y.reshape(-1, y.shape[-1]), labels.reshape(-1))
        )(Y)
    H = H.reshape(Y.numel(), Y.numel())
    return (J.T @ H @ J).numpy()


def _close(actual, expected, rtol):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------------------------
# GGN against torch.func
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("outputs", ["last", "all"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("per_unit", [False, True], ids=["scalar-gamma", "per-unit-gamma"])
@pytest.mark.parametrize("variant", ["linear", "A", "B"])
def test_ggn_matches_torch_func(variant, per_unit, loss, outputs):
    w = _weights(1)
    system = _wcrnn(w, variant, per_unit)
    rng = np.random.default_rng(2)
    x0, U = 0.5 * rng.standard_normal((E, N)), rng.standard_normal((E, T, M))
    ggn = map_ggn(
        system,
        x0,
        U,
        w["C"],
        readout_bias=w["c"],
        loss=loss,
        outputs=outputs,
        parameters=ALL,
        backend="numpy",
    )
    reference = _reference_ggn(system, w, x0, U, ALL, loss, outputs)
    assert ggn.shape == reference.shape == (ggn.num_params, ggn.num_params)
    _close(ggn.dense(), reference, 1e-6)
    V = rng.standard_normal((ggn.num_params, 2))
    _close(ggn.matmat(V), reference @ V, 1e-6)
    _close(ggn.matvec(V[:, 0]), reference @ V[:, 0], 1e-6)


def test_default_parameters_shared_inputs_and_broadcast_x0():
    """Default θ = (W, V, b); one x0 for all members, one input sequence per member."""
    w = _weights(3)
    system = _wcrnn(w, "A", True)
    rng = np.random.default_rng(4)
    x0, U = rng.standard_normal(N), rng.standard_normal((E, T, M))
    ggn = map_ggn(system, x0, U, w["C"], readout_bias=w["c"], outputs="all", backend="numpy")
    assert ggn.parameter_shapes == [(N, N), (N, M), (N,)]
    assert ggn.parameter_names == ["W", "V", "b"]
    reference = _reference_ggn(
        system, w, np.broadcast_to(x0, (E, N)), U, ("W", "V", "b"), "mse", "all"
    )
    _close(ggn.dense(), reference, 1e-6)
    parts = ggn.unflatten(np.arange(ggn.num_params, dtype=float))
    assert [v.shape for v in parts.values()] == [(N, N), (N, M), (N,)]
    assert parts["V"][0, 0] == N * N


def test_targets_do_not_matter_and_bias_only_for_cross_entropy():
    w = _weights(5)
    system = _wcrnn(w, "B", False)
    rng = np.random.default_rng(6)
    args = (system, rng.standard_normal((E, N)), rng.standard_normal((E, T, M)), w["C"])
    for loss, same in (("mse", True), ("cross_entropy", False)):
        G0 = map_ggn(*args, loss=loss, backend="numpy").dense()
        G1 = map_ggn(*args, loss=loss, readout_bias=w["c"], backend="numpy").dense()
        assert np.allclose(G0, G1, rtol=1e-12, atol=0) == same


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(1, 4),
    m=st.integers(0, 2),
    o=st.integers(1, 3),
    members=st.integers(1, 3),
    steps=st.integers(1, 4),
    variant=st.sampled_from(["linear", "A", "B"]),
    per_unit=st.booleans(),
    loss=st.sampled_from(["mse", "cross_entropy"]),
    outputs=st.sampled_from(["last", "all"]),
)
def test_ggn_is_symmetric_psd(seed, n, m, o, members, steps, variant, per_unit, loss, outputs):
    w = _weights(seed, n, m, o)
    rng = np.random.default_rng(seed + 1)
    ggn = map_ggn(
        _wcrnn(w, variant, per_unit),
        rng.standard_normal((members, n)),
        rng.standard_normal((members, steps, m)),
        w["C"],
        readout_bias=w["c"],
        loss=loss,
        outputs=outputs,
        parameters=("R", "W", "gamma", "V", "b"),
        backend="numpy",
    )
    by_products = ggn.matmat(np.eye(ggn.num_params))  # the adjoint scheme, not symmetrised
    G = ggn.dense()  # the forward-sensitivity scheme
    scale = max(np.abs(G).max(), 1e-300)
    assert np.abs(by_products - by_products.T).max() <= 1e-12 * scale
    assert np.abs(by_products - G).max() <= 1e-12 * scale
    assert np.linalg.eigvalsh(G).min() >= -1e-12 * scale


def test_eigenvalues_dense_and_lanczos_agree():
    w = _weights(7, n=12, m=2, o=3)
    system = _wcrnn(w, "linear", True)
    rng = np.random.default_rng(8)
    ggn = map_ggn(
        system,
        rng.standard_normal((2, 12)),
        rng.standard_normal((2, 3, 2)),
        w["C"],
        parameters=("W", "R"),
        outputs="all",
        backend="numpy",
    )
    assert ggn.num_params > MapGGN.dense_eigen_max  # an iterative eigensolver, not eigh
    top = ggn.eigenpairs(3, method="lanczos", tol=0.0).eigenvalues  # to machine precision
    exact = np.linalg.eigvalsh(ggn.dense())[::-1][:3]
    np.testing.assert_allclose(top, exact, rtol=1e-8)
    np.testing.assert_allclose(ggn.eigenpairs(3).eigenvalues, exact, rtol=1e-5)  # LOBPCG, 1e-6
    assert np.all(np.diff(top) <= 0)
    v = rng.standard_normal(ggn.num_params)
    np.testing.assert_allclose(ggn.to_scipy() @ v, ggn.matvec(v), rtol=1e-14)
    small = map_ggn(
        system, rng.standard_normal(12), rng.standard_normal((3, 2)), w["C"], backend="numpy"
    )
    np.testing.assert_allclose(
        small.eigenpairs(2).eigenvalues, np.linalg.eigvalsh(small.dense())[::-1][:2], rtol=1e-12
    )


# --------------------------------------------------------------------------------------------
# numpy and numba backends
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, per_unit, m, loss, outputs",
    [
        ("B", True, 2, "cross_entropy", "all"),
        ("A", False, 2, "mse", "last"),
        ("linear", True, 0, "mse", "all"),
    ],
)
def test_numpy_and_numba_agree(variant, per_unit, m, loss, outputs):
    pytest.importorskip("numba")
    w = _weights(9, m=m)
    rng = np.random.default_rng(10)
    args = (
        _wcrnn(w, variant, per_unit),
        rng.standard_normal((3, N)),
        rng.standard_normal((3, 5, m)),
    )
    kwargs = dict(readout_bias=w["c"], loss=loss, outputs=outputs, parameters=ALL)
    by_numpy = map_ggn(*args, w["C"], backend="numpy", **kwargs)
    by_numba = map_ggn(*args, w["C"], backend="numba", **kwargs)
    assert by_numba.backend.name == "numba"
    V = rng.standard_normal((by_numpy.num_params, 3))
    _close(by_numba.matmat(V), by_numpy.matmat(V), 1e-10)
    _close(by_numba.dense(), by_numpy.dense(), 1e-10)


def test_numba_dense_in_windows(monkeypatch):
    """Outputs after every step are gathered in windows of steps; any window size is exact."""
    pytest.importorskip("numba")
    import lyapkit.backends.numba_backend as nb

    w = _weights(11)
    rng = np.random.default_rng(12)
    args = (_wcrnn(w, "A", True), rng.standard_normal((2, N)), rng.standard_normal((2, 7, M)))
    expected = map_ggn(*args, w["C"], outputs="all", backend="numpy").dense()
    P = N * N + N * M + N  # W, V, b
    monkeypatch.setattr(nb, "_DENSE_BLOCK", 2 * OUT * P * 3)  # windows of 3 steps
    _close(map_ggn(*args, w["C"], outputs="all", backend="numba").dense(), expected, 1e-10)


# --------------------------------------------------------------------------------------------
# The WCRNN parameter Jacobian
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driven", [True, False])
@pytest.mark.parametrize("per_unit", [False, True])
@pytest.mark.parametrize("variant", ["linear", "A", "B"])
def test_wcrnn_parameter_jacobian_matches_jacrev(variant, per_unit, driven):
    w = _weights(13, m=M if driven else 0)
    system = _wcrnn(w, variant, per_unit)
    rng = np.random.default_rng(14)
    x, u = rng.standard_normal((4, N)), rng.standard_normal((4, w["V"].shape[1]))
    p = {k: torch.tensor(v) for k, v in system.parameters().items()}
    jac = torch.func.jacrev(lambda q, xe, ue: _torch_step(q, xe, ue, variant))
    Jx = system.parameter_jacobian(x, u if driven else None, ALL)
    assert Jx.shape == (4, N, sum(p[k].numel() for k in ALL))
    for e in range(4):
        d = jac(p, torch.tensor(x[e]), torch.tensor(u[e]))
        expected = torch.cat([d[k].reshape(N, -1) for k in ALL], 1).numpy()
        np.testing.assert_allclose(Jx[e], expected, rtol=1e-12, atol=1e-14)
    # torch namespace, and the structured products against the dense Jacobian
    xt, ut = torch.tensor(x), torch.tensor(u) if driven else None
    np.testing.assert_allclose(system.parameter_jacobian(xt, ut, ALL).numpy(), Jx, atol=1e-14)
    V, L = rng.standard_normal((Jx.shape[-1], 2)), rng.standard_normal((4, N, 2))
    for xs, us, Vs, Ls, to_np in (
        (x, u if driven else None, V, L, np.asarray),
        (xt, ut, torch.tensor(V), torch.tensor(L), lambda a: a.numpy()),
    ):
        np.testing.assert_allclose(to_np(system.parameter_jvp(xs, us, Vs, ALL)), Jx @ V, atol=1e-13)
        expected = np.einsum("enp,enk->pk", Jx, L)
        np.testing.assert_allclose(
            to_np(system.parameter_vjp(xs, us, Ls, ALL)), expected, atol=1e-13
        )


@pytest.mark.parametrize("variant", ["linear", "A", "B"])
def test_wcrnn_numba_parameter_kernels(variant):
    pytest.importorskip("numba")
    w = _weights(15)
    system = _wcrnn(w, variant, True)
    kernels = system.numba_kernels()
    assert kernels.has_parameter_kernels
    names = ("V", "gamma", "W")
    codes = np.array([system.jacobian_parameters.index(k) for k in names])
    rng = np.random.default_rng(16)
    x, u = rng.standard_normal(N), rng.standard_normal(M)
    expected = system.parameter_jacobian(x, u, names)
    out = np.empty_like(expected)
    kernels.parameter_jacobian(x, u, kernels.params, codes, out)
    np.testing.assert_allclose(out, expected, atol=1e-15)
    V, L = rng.standard_normal((2, expected.shape[1])), rng.standard_normal((2, N))
    jvp, vjp = np.ones((2, N)), np.ones((2, expected.shape[1]))  # the kernels accumulate
    kernels.parameter_jvp(x, u, kernels.params, codes, V, jvp)
    kernels.parameter_vjp(x, u, kernels.params, codes, L, vjp)
    np.testing.assert_allclose(jvp, 1 + V @ expected.T, atol=1e-14)
    np.testing.assert_allclose(vjp, 1 + L @ expected, atol=1e-14)


class _DenseOnly(lk.Map):
    """A user map that provides only ``parameter_jacobian``: the Map defaults give the products."""

    def __init__(self, inner: lk.WCRNNMap, kernels=None):
        self.inner, self.kernels = inner, kernels
        self.dim, self.input_dim = inner.dim, inner.input_dim
        self.jacobian_parameters = inner.jacobian_parameters

    def step(self, x, u=None):
        return self.inner.step(x, u)

    def jacobian(self, x, u=None):
        return self.inner.jacobian(x, u)

    def parameters(self):
        return self.inner.parameters()

    def parameter_jacobian(self, x, u=None, names=None):
        return self.inner.parameter_jacobian(x, u, names)

    def numba_kernels(self):
        return self.kernels


def test_user_map_with_only_a_parameter_jacobian():
    w = _weights(21)
    system = _wcrnn(w, "B", True)
    rng = np.random.default_rng(22)
    args = (rng.standard_normal((E, N)), rng.standard_normal((E, T, M)), w["C"])
    kwargs = dict(loss="cross_entropy", outputs="all", parameters=ALL)
    expected = map_ggn(system, *args, backend="numpy", **kwargs)
    user = map_ggn(_DenseOnly(system), *args, **kwargs)
    assert user.backend.name == "numpy"  # no numba kernels
    V = rng.standard_normal((user.num_params, 2))
    _close(user.matmat(V), expected.matmat(V), 1e-12)
    _close(user.dense(), expected.dense(), 1e-12)


def test_numba_kernels_without_parameter_kernels():
    pytest.importorskip("numba")
    w = _weights(23)
    system = _wcrnn(w, "A", True)
    k = system.numba_kernels()
    user = _DenseOnly(system, lk.NumbaKernels(k.step, k.jacobian, k.params))
    ggn = map_ggn(user, np.zeros(N), np.zeros((T, M)), w["C"], backend="numba")
    with pytest.raises(lk.BackendError, match="backend='numpy'"):
        ggn.matvec(np.zeros(ggn.num_params))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.fixture
def setup():
    w = _weights(17)
    system = _wcrnn(w, "linear", True)
    rng = np.random.default_rng(18)
    return system, rng.standard_normal((E, N)), rng.standard_normal((E, T, M)), w["C"]


def test_map_without_parameter_jacobian():
    henon = lk.Henon()
    with pytest.raises(NotImplementedError, match="no parameter Jacobian"):
        map_ggn(henon, np.zeros(2), np.zeros((3, 0)), np.ones((1, 2)))
    with pytest.raises(NotImplementedError, match="no parameter Jacobian"):
        henon.parameter_jacobian(np.zeros(2))


@pytest.mark.parametrize("parameters", [("W", "Q"), ("W", "W"), (), "gammas"])
def test_bad_parameter_names(setup, parameters):
    with pytest.raises(ValueError, match="distinct parameters"):
        map_ggn(*setup, parameters=parameters)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"x0": np.zeros(N + 1)}, "x0 must have shape"),
        ({"inputs": np.zeros((T, M + 1))}, "inputs must have shape"),
        ({"inputs": np.zeros((0, M))}, "inputs must have shape"),
        ({"inputs": np.zeros((E + 1, T, M))}, "members but inputs has"),
        ({"readout": np.zeros((OUT, N + 1))}, "readout must have shape"),
        ({"readout_bias": np.zeros(OUT + 1)}, "readout_bias must have shape"),
        ({"x0": np.full((E, N), np.nan)}, "x0 must be finite"),
        ({"loss": "hinge"}, "loss must be one of"),
        ({"outputs": "first"}, "outputs must be one of"),
    ],
)
def test_bad_arguments(setup, change, match):
    system, x0, inputs, readout = setup
    kwargs = {"x0": x0, "inputs": inputs, "readout": readout, "backend": "numpy", **change}
    with pytest.raises(ValueError, match=match):
        map_ggn(system, **kwargs)


def test_bad_vectors(setup):
    ggn = map_ggn(*setup, backend="numpy")
    with pytest.raises(ValueError, match="shape"):
        ggn.matvec(np.zeros(ggn.num_params + 1))
    with pytest.raises(ValueError, match="shape"):
        ggn.matmat(np.zeros(ggn.num_params))
    with pytest.raises(ValueError, match="k must be"):
        ggn.eigenpairs(0)


def test_backend_that_cannot(setup):
    with pytest.raises(lk.BackendError, match="autodiff") as err:
        map_ggn(*setup, backend="torch")
    assert "'numpy'" in str(err.value) and "Hessian" in str(err.value)
    system, x0, inputs, readout = setup
    plan = GGNPlan(x0, inputs, ("W",), N * N, readout, np.zeros(OUT), "mse", False)
    with pytest.raises(lk.BackendError, match="'numpy'"):
        lk.get_backend("torch").ggn(system, plan)


def test_overflow_warns():
    w = _weights(19)
    system = lk.WCRNNMap(1e3 * np.eye(N), w["W"], 0.1, variant="linear")
    ggn = map_ggn(system, np.ones(N), np.zeros((200, 0)), w["C"], backend="numpy")
    with pytest.warns(RuntimeWarning, match="not finite"):
        ggn.matvec(np.ones(ggn.num_params))
