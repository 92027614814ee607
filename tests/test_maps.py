"""Built-in maps: Jacobians against autodiff, numpy/torch/numba agreement, closed-form facts and
constructor validation.

Every check compares the map with something computed independently of its own ``jacobian``:
dense float64 autodiff of the map's own ``step`` (``torch.autograd.functional.jacobian``), the
equations written out again here, or exact identities (det, symplecticity).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from cases import assert_refused, cli
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.maps.base import ArrayMap

E = 5  # ensemble members per batched check
N_WC = 5  # WCRNN size
M_IN = 2  # input dimension of the driven maps


# --------------------------------------------------------------------------------------------
# The maps under test, each with a sampler of typical states.
# --------------------------------------------------------------------------------------------


def _wcrnn_params(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_WC
    return {
        "R": rng.standard_normal((n, n)) / math.sqrt(n),
        "W": 1.5 * rng.standard_normal((n, n)) / math.sqrt(n),
        "gamma_vec": rng.uniform(0.05, 0.8, n),
        "V": rng.standard_normal((n, M_IN)),
        "b": 0.3 * rng.standard_normal(n),
    }


def _wcrnn(variant: str, per_unit: bool, driven: bool) -> lk.WCRNNMap:
    p = _wcrnn_params()
    gamma = p["gamma_vec"] if per_unit else 0.3
    return lk.WCRNNMap(
        p["R"], p["W"], gamma=gamma, V=p["V"] if driven else None, b=p["b"], variant=variant
    )


def _linear(with_b: bool) -> lk.LinearMap:
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 4)) / 2
    return lk.LinearMap(A, rng.standard_normal((4, M_IN)) if with_b else None)


def _tanh(driven: bool) -> lk.TanhNetwork:
    rng = np.random.default_rng(4)
    return lk.TanhNetwork(
        6, g=1.7, input_dim=M_IN if driven else 0, b=0.2 * rng.standard_normal(6), seed=11
    )


def _csm(M: int) -> lk.CoupledStandardMaps:
    rng = np.random.default_rng(5 + M)
    return lk.CoupledStandardMaps(M=M, k=rng.uniform(0.3, 2.0, M), coupling=0.27)


MAPS: dict[str, Callable[[], lk.Map]] = {
    "henon": lambda: lk.Henon(a=1.4, b=0.3),
    "logistic": lambda: lk.Logistic(r=3.9),
    "tent": lambda: lk.Tent(mu=1.9),
    "cat": lambda: lk.CatMap(),
    "csm1": lambda: _csm(1),
    "csm2": lambda: _csm(2),
    "csm3": lambda: _csm(3),
    "linear": lambda: _linear(False),
    "linear_B": lambda: _linear(True),
    "tanh": lambda: _tanh(False),
    "tanh_inputs": lambda: _tanh(True),
}
for _variant in ("linear", "A", "B"):
    for _per_unit in (False, True):
        for _driven in (False, True):
            _key = (
                f"wcrnn_{_variant}_{'vec' if _per_unit else 'scalar'}gamma"
                f"{'_inputs' if _driven else ''}"
            )
            MAPS[_key] = lambda v=_variant, pu=_per_unit, d=_driven: _wcrnn(v, pu, d)


def _states(m: lk.Map, rng: np.random.Generator, batch: tuple = (E,)) -> np.ndarray:
    """Random states in the map's domain, away from the tent map's kink."""
    if isinstance(m, lk.Tent):
        x = rng.uniform(0.0, 1.0, batch + (1,))
        return np.where(np.abs(x - 0.5) < 1e-3, 0.25, x)
    if isinstance(m, lk.Logistic | lk.CatMap):
        return rng.uniform(0.0, 1.0, batch + (m.dim,))
    if isinstance(m, lk.CoupledStandardMaps):
        return rng.uniform(0.0, 2 * math.pi, batch + (m.dim,))
    return rng.uniform(-1.0, 1.0, batch + (m.dim,))


def _inputs(m: lk.Map, rng: np.random.Generator, batch: tuple = (E,)) -> np.ndarray | None:
    return rng.standard_normal(batch + (m.input_dim,)) if m.input_dim else None


def _sample(name: str, seed: int = 0):
    m = MAPS[name]()
    rng = np.random.default_rng(seed)
    return m, _states(m, rng), _inputs(m, rng)


def test_every_builtin_map_type_is_covered():
    covered = {type(f()) for f in MAPS.values()}
    assert covered == set(lk.BUILTIN_MAPS.values())


# --------------------------------------------------------------------------------------------
# (a) Jacobian == dense float64 autodiff of the map's own step.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAPS))
def test_jacobian_matches_autodiff_of_step(name):
    torch = pytest.importorskip("torch")
    m, x, u = _sample(name, seed=1)
    xt = torch.as_tensor(x, dtype=torch.float64)
    ut = None if u is None else torch.as_tensor(u, dtype=torch.float64)
    # Autodiff of the batched step: (E, n, E, n), block diagonal (members do not interact).
    full = torch.autograd.functional.jacobian(lambda z: m.step(z, ut), xt).numpy()
    assert full.shape == (E, m.dim, E, m.dim)
    blocks = np.stack([full[e, :, e, :] for e in range(E)])
    off = full.copy()
    for e in range(E):
        off[e, :, e, :] = 0.0
    assert np.all(off == 0.0), "members of a batch must not be coupled"

    J = m.jacobian(x, u)
    assert J.shape == (E, m.dim, m.dim)
    np.testing.assert_allclose(J, blocks, rtol=1e-10, atol=1e-13)
    # And one state at a time (unbatched call).
    for e in range(E):
        ue = None if ut is None else ut[e]
        single = torch.autograd.functional.jacobian(lambda z, ue=ue: m.step(z, ue), xt[e]).numpy()
        np.testing.assert_allclose(
            m.jacobian(x[e], None if u is None else u[e]), single, rtol=1e-10, atol=1e-13
        )


def _shares_work(name: str) -> bool:
    """Whether the map overrides ``_step_and_jacobian`` (the inherited one is step, then
    jacobian: comparing it with them would test nothing)."""
    return type(MAPS[name]())._step_and_jacobian is not ArrayMap._step_and_jacobian


@pytest.mark.parametrize("name", [n for n in MAPS if _shares_work(n)])
def test_step_and_jacobian_is_step_and_jacobian(name):
    m, x, u = _sample(name, seed=2)
    y, J = m.step_and_jacobian(x, u)
    np.testing.assert_array_equal(y, m.step(x, u))
    np.testing.assert_array_equal(J, m.jacobian(x, u))


@pytest.mark.parametrize("name", [n for n in MAPS if MAPS[n]().input_dim > 0])
def test_missing_input_of_driven_map_is_zero(name):
    m, x, u = _sample(name, seed=3)
    zero = np.zeros_like(u)
    np.testing.assert_array_equal(m.step(x), m.step(x, zero))
    np.testing.assert_array_equal(m.jacobian(x), m.jacobian(x, zero))
    # Inputs matter, else the driven case tests nothing.
    assert not np.allclose(m.step(x, u), m.step(x, zero))


# --------------------------------------------------------------------------------------------
# (b) numpy and torch namespaces agree.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAPS))
def test_numpy_and_torch_namespaces_agree(name):
    torch = pytest.importorskip("torch")
    m, x, u = _sample(name, seed=4)
    assert {"numpy", "torch"} <= m.namespaces
    xt = torch.as_tensor(x)
    ut = None if u is None else torch.as_tensor(u)
    y_t, J_t = m.step(xt, ut), m.jacobian(xt, ut)
    assert isinstance(y_t, torch.Tensor) and isinstance(J_t, torch.Tensor)
    assert y_t.dtype == torch.float64 and J_t.dtype == torch.float64
    np.testing.assert_allclose(y_t.numpy(), m.step(x, u), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J_t.numpy(), m.jacobian(x, u), rtol=1e-12, atol=1e-12)
    y2, J2 = m.step_and_jacobian(xt, ut)
    np.testing.assert_allclose(y2.numpy(), y_t.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J2.numpy(), J_t.numpy(), rtol=1e-12, atol=1e-12)
    # Lower precision follows the state's dtype.
    y32 = m.step(xt.float(), None if ut is None else ut.float())
    assert y32.dtype == torch.float32
    J32 = m.jacobian(xt.float(), None if ut is None else ut.float())
    assert J32.dtype == torch.float32
    np.testing.assert_allclose(J32.double().numpy(), m.jacobian(x, u), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# (c) numba kernels agree with numpy.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MAPS))
@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 2**32 - 1))
def test_numba_kernels_match_numpy(name, seed):
    """The numba kernels are a second copy of each built-in map's equations: they equal the
    numpy reference (the equations' one source) at random states and inputs."""
    pytest.importorskip("numba")
    m, x, u = _sample(name, seed=seed)
    kernels = m.numba_kernels()
    assert isinstance(kernels, lk.NumbaKernels)
    for e in range(E):
        ue = np.zeros(0) if u is None else np.ascontiguousarray(u[e])
        xe = np.ascontiguousarray(x[e])
        out = np.full(m.dim, np.nan)
        J = np.full((m.dim, m.dim), np.nan)  # kernels must write every entry
        kernels.step(xe, ue, kernels.params, out)
        kernels.jacobian(xe, ue, kernels.params, J)
        np.testing.assert_allclose(
            out, m.step(x[e], None if u is None else u[e]), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_allclose(
            J, m.jacobian(x[e], None if u is None else u[e]), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_array_equal(xe, x[e])  # the state is not modified


_PERIODS = (1.0, 2.0 * math.pi)
_WRAP_EDGES = [
    y
    for p in _PERIODS
    for c in (0.0, p, -p, 2.0 * p, -2.0 * p, 3.0 * p)
    for y in (c, np.nextafter(c, -np.inf), np.nextafter(c, np.inf))
] + [-0.0, -5e-324, 5e-324, -1e-300, math.inf, -math.inf, math.nan, 1e300, -1e300]


@settings(deadline=None, max_examples=300)
@given(y=st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(_WRAP_EDGES))
def test_numba_wrap_is_python_modulo_bit_for_bit(y):
    """The kernels' fast wrap to the torus is Python's ``%``, to the bit (signed zeros, NaN and
    the edges of each period included): the orbits of the torus maps do not change."""
    pytest.importorskip("numba")
    from lyapkit.maps.numba_kernels import _wrap

    for p in _PERIODS:
        expected, got = np.float64(y % p), np.float64(_wrap(y, p))
        assert expected.view(np.int64) == got.view(np.int64) or (
            np.isnan(expected) and np.isnan(got)
        ), (y, p, expected, got)


# --------------------------------------------------------------------------------------------
# (d) Closed-form facts and the equations written out independently.
# --------------------------------------------------------------------------------------------


def _omega(M: int) -> np.ndarray:
    """Standard symplectic form in the (θ_1..θ_M, p_1..p_M) ordering."""
    Id, Z = np.eye(M), np.zeros((M, M))
    return np.block([[Z, Id], [-Id, Z]])


@settings(deadline=None, max_examples=25)
@given(
    M=st.sampled_from([1, 2, 3, 5]),
    seed=st.integers(0, 2**32 - 1),
    coupling=st.floats(-2.0, 2.0),
    scale=st.floats(0.1, 50.0),
)
def test_coupled_standard_maps_jacobian_is_symplectic(M, seed, coupling, scale):
    rng = np.random.default_rng(seed)
    m = lk.CoupledStandardMaps(M=M, k=rng.uniform(-3, 3, M), coupling=coupling)
    x = rng.uniform(-scale, scale, (4, 2 * M))
    J = m.jacobian(x)
    np.testing.assert_allclose(np.linalg.det(J), 1.0, rtol=0, atol=1e-9)
    Om = _omega(M)
    lhs = np.swapaxes(J, -1, -2) @ Om @ J
    np.testing.assert_allclose(lhs, np.broadcast_to(Om, lhs.shape), rtol=0, atol=1e-10)


@pytest.mark.parametrize("M", [1, 2, 3, 4])
def test_coupled_standard_maps_step_written_out(M):
    rng = np.random.default_rng(20 + M)
    k, g = rng.uniform(0.3, 2.0, M), 0.37
    m = lk.CoupledStandardMaps(M=M, k=k, coupling=g)
    X = rng.uniform(0, 2 * math.pi, (6, 2 * M))
    Y = m.step(X)
    assert np.all((Y >= 0) & (Y < 2 * math.pi))
    for x, y in zip(X, Y, strict=True):
        th, p = x[:M], x[M:]
        p_new = np.empty(M)
        for i in range(M):
            right, left = th[(i + 1) % M], th[(i - 1) % M]
            p_new[i] = (
                p[i]
                + k[i] * math.sin(th[i])
                - g * (math.sin(right - th[i]) + math.sin(left - th[i]))
            )
        th_new = th + p_new
        expect = np.concatenate([np.mod(th_new, 2 * math.pi), np.mod(p_new, 2 * math.pi)])
        # Compare on the circle (both sides reduce mod 2π; tolerate a wrap at 0 ≡ 2π).
        d = (y - expect + math.pi) % (2 * math.pi) - math.pi
        np.testing.assert_allclose(d, 0.0, atol=1e-12)


@pytest.mark.parametrize("M", [1, 2])
def test_coupled_standard_maps_ring_edge_cases(M):
    """M=1: both neighbours are the unit itself (no coupling); M=2: both are the other unit."""
    rng = np.random.default_rng(30 + M)
    k, g = rng.uniform(0.3, 2.0, M), 0.41
    m = lk.CoupledStandardMaps(M=M, k=k, coupling=g)
    x = rng.uniform(0, 2 * math.pi, 2 * M)
    J = m.jacobian(x)
    if M == 1:
        K = np.array([[k[0] * math.cos(x[0])]])  # the coupling term vanishes identically
    else:
        c = math.cos(x[1] - x[0])
        K = np.array(
            [
                [k[0] * math.cos(x[0]) + 2 * g * c, -2 * g * c],
                [-2 * g * c, k[1] * math.cos(x[1]) + 2 * g * c],
            ]
        )
    Id = np.eye(M)
    np.testing.assert_allclose(J, np.block([[Id + K, Id], [K, Id]]), rtol=1e-12, atol=1e-14)
    if M == 1:  # coupling has no effect on a single map
        other = lk.CoupledStandardMaps(M=1, k=k, coupling=5.0)
        np.testing.assert_allclose(other.step(x), m.step(x), rtol=0, atol=1e-14)


@settings(deadline=None, max_examples=30)
@given(
    a=st.floats(0.1, 2.0),
    b=st.floats(-1.0, 1.0),
    x=st.floats(-10, 10),
    y=st.floats(-10, 10),
)
def test_henon_closed_form(a, b, x, y):
    m = lk.Henon(a=a, b=b)
    s = np.array([x, y])
    J = m.jacobian(s)
    assert np.linalg.det(J) == pytest.approx(-b, abs=1e-12)
    np.testing.assert_allclose(J, [[-2 * a * x, 1.0], [b, 0.0]], rtol=1e-15, atol=0)
    np.testing.assert_allclose(m.step(s), [1 - a * x * x + y, b * x], rtol=1e-14, atol=1e-14)


def test_cat_map_closed_form():
    m = lk.CatMap()
    X = np.random.default_rng(8).uniform(0, 1, (20, 2))
    J = m.jacobian(X)
    np.testing.assert_array_equal(J, np.broadcast_to([[2.0, 1.0], [1.0, 1.0]], (20, 2, 2)))
    assert np.all(np.linalg.det(J) == pytest.approx(1.0))
    Y = m.step(X)
    expect = np.stack([np.mod(2 * X[:, 0] + X[:, 1], 1), np.mod(X[:, 0] + X[:, 1], 1)], -1)
    np.testing.assert_allclose(Y, expect, rtol=0, atol=1e-15)
    assert np.all((Y >= 0) & (Y < 1)) and m.period == 1.0


def test_logistic_and_tent_closed_form():
    X = np.random.default_rng(9).uniform(0, 1, (30, 1))
    lo = lk.Logistic(r=3.7)
    np.testing.assert_allclose(lo.step(X), 3.7 * X * (1 - X), rtol=1e-15)
    np.testing.assert_allclose(lo.jacobian(X)[..., 0], 3.7 * (1 - 2 * X), rtol=1e-14, atol=1e-15)
    te = lk.Tent(mu=1.9)
    np.testing.assert_allclose(te.step(X), 1.9 * np.minimum(X, 1 - X), rtol=1e-15)
    np.testing.assert_array_equal(te.jacobian(X)[..., 0], np.where(X < 0.5, 1.9, -1.9))


def test_linear_map_closed_form():
    rng = np.random.default_rng(10)
    A, B = rng.standard_normal((4, 4)), rng.standard_normal((4, 3))
    X, U = rng.standard_normal((7, 4)), rng.standard_normal((7, 3))
    m = lk.LinearMap(A, B)
    assert (m.dim, m.input_dim) == (4, 3)
    expect = np.einsum("ij,ej->ei", A, X) + np.einsum("ij,ej->ei", B, U)
    np.testing.assert_allclose(m.step(X, U), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(m.jacobian(X, U), np.broadcast_to(A, (7, 4, 4)))
    auto = lk.LinearMap(A)
    assert auto.input_dim == 0
    np.testing.assert_allclose(auto.step(X), X @ A.T, rtol=1e-12, atol=1e-12)


def test_tanh_network_closed_form():
    rng = np.random.default_rng(11)
    n, m_in, g = 5, 2, 1.3
    W, U, b = rng.standard_normal((n, n)), rng.standard_normal((n, m_in)), rng.standard_normal(n)
    m = lk.TanhNetwork(n, g=g, input_dim=m_in, W=W, U=U, b=b)
    X, S = rng.standard_normal((6, n)), rng.standard_normal((6, m_in))
    for x, s, y, J in zip(X, S, m.step(X, S), m.jacobian(X, S), strict=True):
        pre = g * (W @ x) + U @ s + b
        np.testing.assert_allclose(y, np.tanh(pre), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(
            J, np.diag(1 - np.tanh(pre) ** 2) @ (g * W), rtol=1e-12, atol=1e-14
        )
    # Default weights are seeded and have variance 1/n.
    d1, d2 = lk.TanhNetwork(200, seed=5), lk.TanhNetwork(200, seed=5)
    np.testing.assert_array_equal(d1.parameters()["gW"], d2.parameters()["gW"])
    assert np.std(d1.parameters()["gW"] / d1.g) == pytest.approx(1 / math.sqrt(200), rel=0.05)


@pytest.mark.parametrize("per_unit", [False, True])
@pytest.mark.parametrize("variant", ["linear", "A", "B"])
def test_wcrnn_written_out(variant, per_unit):
    p = _wcrnn_params(seed=12)
    R, W, V, b = p["R"], p["W"], p["V"], p["b"]
    gamma = p["gamma_vec"] if per_unit else 0.21
    g = np.broadcast_to(gamma, (N_WC,))
    m = lk.WCRNNMap(R, W, gamma=gamma, V=V, b=b, variant=variant)
    assert (m.dim, m.input_dim, m.variant) == (N_WC, M_IN, variant)
    rng = np.random.default_rng(13)
    X, S = rng.standard_normal((6, N_WC)), rng.standard_normal((6, M_IN))
    for x, s, y, J in zip(X, S, m.step(X, S), m.jacobian(X, S), strict=True):
        if variant == "B":
            pre = (R + np.diag(g) @ W) @ x + g * (V @ s + b)
            expect, expect_J = np.tanh(pre), np.diag(1 - np.tanh(pre) ** 2) @ (R + np.diag(g) @ W)
        else:
            a = np.tanh(W @ x + V @ s + b)
            coupling = np.diag(g * (1 - a**2)) @ W
            if variant == "linear":
                expect, expect_J = R @ x + g * a, R + coupling
            else:
                r = np.tanh(R @ x)
                expect, expect_J = r + g * a, np.diag(1 - r**2) @ R + coupling
        np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(J, expect_J, rtol=1e-12, atol=1e-14)


def test_wcrnn_small_gamma_linear_variant_tends_to_R():
    rng = np.random.default_rng(14)
    R, W = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    m = lk.WCRNNMap(R, W, gamma=0.0, variant="linear")
    X = rng.standard_normal((3, 4))
    np.testing.assert_allclose(m.step(X), X @ R.T, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(m.jacobian(X), np.broadcast_to(R, (3, 4, 4)))


def test_builtin_maps_report_analytic_jacobians():
    for f in MAPS.values():
        m = f()
        assert m.jacobian_method == "analytic"
        assert m.dim >= 1 and m.initial_state(np.random.default_rng(0)).shape == (m.dim,)


# --------------------------------------------------------------------------------------------
# (e) Constructor validation names the argument.
# --------------------------------------------------------------------------------------------

_I3 = np.eye(3)

BAD_CONSTRUCTORS = {
    "A non-square": ("A", lambda: lk.LinearMap(np.ones((2, 3)))),
    "A vector": ("A", lambda: lk.LinearMap(np.ones(3))),
    "B wrong rows": ("B", lambda: lk.LinearMap(_I3, np.ones((2, 1)))),
    "B vector": ("B", lambda: lk.LinearMap(_I3, np.ones(3))),
    "R non-square": ("R", lambda: lk.WCRNNMap(np.ones((3, 2)), _I3)),
    "W wrong shape": ("W", lambda: lk.WCRNNMap(_I3, np.ones((3, 2)))),
    "W wrong size": ("W", lambda: lk.WCRNNMap(_I3, np.eye(4))),
    "gamma wrong length": ("gamma", lambda: lk.WCRNNMap(_I3, _I3, gamma=np.ones(2))),
    "gamma 2-d": ("gamma", lambda: lk.WCRNNMap(_I3, _I3, gamma=np.ones((3, 1)))),
    "V wrong rows": ("V", lambda: lk.WCRNNMap(_I3, _I3, V=np.ones((2, 1)))),
    "V vector": ("V", lambda: lk.WCRNNMap(_I3, _I3, V=np.ones(3))),
    "b wrong length": ("b", lambda: lk.WCRNNMap(_I3, _I3, b=np.ones(2))),
    "unknown variant": ("variant", lambda: lk.WCRNNMap(_I3, _I3, variant="C")),
    "M=0": ("M", lambda: lk.CoupledStandardMaps(M=0)),
    "M<0": ("M", lambda: lk.CoupledStandardMaps(M=-2)),
    "tanh W": ("W", lambda: lk.TanhNetwork(3, W=np.ones((2, 2)))),
    "tanh U": ("U", lambda: lk.TanhNetwork(3, input_dim=2, U=np.ones((3, 1)))),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTORS))
def test_constructor_validation_names_argument(case):
    arg, make = BAD_CONSTRUCTORS[case]
    with pytest.raises(ValueError, match=rf"(?<![A-Za-z_]){arg}(?![A-Za-z_])"):
        make()


def test_coupled_standard_maps_rejects_non_integer_M():
    with pytest.raises(ValueError, match="M"):
        lk.CoupledStandardMaps(M=1.5)


def test_coupled_standard_maps_wrong_k_names_argument():
    with pytest.raises(ValueError, match=r"(?<![A-Za-z_])k(?![A-Za-z_])"):
        lk.CoupledStandardMaps(M=3, k=[1.0, 2.0])


def test_a_list_for_a_scalar_map_parameter_is_refused():
    """It used to reach numba as a list: a 61-line TypingError."""
    line = assert_refused(cli("spectrum", "henon", "-p", "a=1.4,2", "--backend", "numba"))
    assert "a must be a finite number" in line
    with pytest.raises(ValueError, match="coupling must be a finite number"):
        lk.CoupledStandardMaps(coupling=[0.1, 0.2])
