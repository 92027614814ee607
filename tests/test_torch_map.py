"""Torch maps: ``from_torch`` of RNN/GRU/LSTM cells and generic callables, against direct calls of
the cell, ``torch.autograd.functional.jacobian`` and trajectories reconstructed here."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import lyapkit as lk

torch = pytest.importorskip("torch")
nn = torch.nn

IN, HID = 3, 4
CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}


@pytest.fixture(autouse=True)
def _quiet_vmap_fallback():
    # torch warns that rnn cells have no vmap batching rule (a performance note, not an error).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        yield


def _cell(kind: str, seed: int = 0, inp: int = IN, hid: int = HID):
    torch.manual_seed(seed)
    return CELLS[kind](inp, hid)


def _cell_step(cell, kind: str, hid: int):
    """The cell as a map of its state (h, or concat(h, c) for an LSTM), written out here."""
    if kind == "lstm":
        return lambda x, u: torch.cat(cell(u, (x[..., :hid], x[..., hid:])), -1)
    return lambda x, u: cell(u, x)


def _snapshot(module):
    return [
        (name, p.detach().clone(), p.dtype, p.requires_grad, p)
        for name, p in module.named_parameters()
    ]


def _assert_unchanged(module, snap):
    now = list(module.named_parameters())
    assert [n for n, _ in now] == [s[0] for s in snap]
    for (name, p), (_, value, dtype, req, obj) in zip(now, snap, strict=True):
        assert p is obj, name
        assert p.dtype == dtype == torch.float32, name
        assert p.requires_grad == req, name
        assert p.grad is None, name
        assert torch.equal(p.detach(), value), name


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_map_dims(kind):
    cell = _cell(kind)
    m = lk.from_torch(cell)
    dim = 2 * HID if kind == "lstm" else HID
    assert (m.dim, m.input_dim) == (dim, IN)
    assert m.jacobian_method == "autodiff" and m.namespaces == {"torch"}
    assert lk.get_backend("auto", m).name == "torch"


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_cell_map_step_equals_cell(kind):
    cell = _cell(kind)
    m = lk.from_torch(cell)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(6, m.dim, generator=gen, dtype=torch.float64)
    U = torch.randn(6, IN, generator=gen, dtype=torch.float64)
    # float64: equals the float64 copy of the cell called directly on the batch.
    ref = _cell_step(copy.deepcopy(cell).double(), kind, HID)
    with torch.no_grad():
        expect = ref(X, U)
    y = m.step(X, U)
    assert y.shape == (6, m.dim) and y.dtype == torch.float64
    torch.testing.assert_close(y, expect, rtol=1e-12, atol=1e-13)
    # One unbatched state.
    torch.testing.assert_close(m.step(X[2], U[2]), expect[2], rtol=1e-12, atol=1e-13)
    # float32: equals the user's (float32) cell itself.
    with torch.no_grad():
        expect32 = _cell_step(cell, kind, HID)(X.float(), U.float())
    y32 = m.step(X.float(), U.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32, expect32, rtol=1e-5, atol=1e-6)
    # No input means a zero input.
    torch.testing.assert_close(m.step(X), m.step(X, torch.zeros_like(U)), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_twin_method_runs_on_cell_map(kind):
    """max_lyapunov_twin only calls step(): it must run, and agree with the QR estimate."""
    cell = _cell(kind, seed=12)
    m = lk.from_torch(cell)
    rng = np.random.default_rng(13)
    T = 60
    kw = dict(steps=T, inputs=rng.standard_normal((T, IN)), x0=np.zeros(m.dim), seed=14)
    twin = lk.max_lyapunov_twin(m, **kw)
    qr = lk.lyapunov_spectrum(m, k=1, **kw)
    assert twin.backend == qr.backend == "torch"
    assert twin.exponents[0] == pytest.approx(qr.exponents[0], abs=0.1)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_map_jacobian_matches_autograd(kind):
    cell = _cell(kind, seed=2)
    m = lk.from_torch(cell)
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(5, m.dim, generator=gen, dtype=torch.float64)
    U = torch.randn(5, IN, generator=gen, dtype=torch.float64)
    ref = _cell_step(copy.deepcopy(cell).double(), kind, HID)
    J = m.jacobian(X, U)
    assert J.shape == (5, m.dim, m.dim) and J.dtype == torch.float64
    y, J2 = m.step_and_jacobian(X, U)
    torch.testing.assert_close(J2, J, rtol=0, atol=0)
    for e in range(5):
        Je = torch.autograd.functional.jacobian(lambda x, e=e: ref(x, U[e]), X[e])
        torch.testing.assert_close(J[e], Je, rtol=1e-10, atol=1e-12)
        with torch.no_grad():
            torch.testing.assert_close(y[e], ref(X[e], U[e]), rtol=1e-12, atol=1e-13)
    # A shared input (input_dim,) broadcasts over the batch.
    Jshared = m.jacobian(X, U[0])
    Je = torch.autograd.functional.jacobian(lambda x: ref(x, U[0]), X[3])
    torch.testing.assert_close(Jshared[3], Je, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", list(CELLS))
def test_user_module_is_not_modified(kind):
    cell = _cell(kind, seed=4)
    snap = _snapshot(cell)
    m = lk.from_torch(cell)
    X = torch.randn(3, m.dim, dtype=torch.float64)
    U = torch.randn(3, IN, dtype=torch.float64)
    m.step_and_jacobian(X, U)
    m.jacobian(X, U)
    m.jacobian(X.float(), U.float())
    lk.lyapunov_spectrum(m, steps=5, inputs=np.zeros((5, IN)), x0=np.zeros(m.dim), seed=0)
    _assert_unchanged(cell, snap)


def _lstm_setup():
    cell = _cell("lstm", seed=5, inp=3, hid=5)
    rng = np.random.default_rng(6)
    T = 120
    return cell, rng.standard_normal((T, 3)), 0.3 * rng.standard_normal(10), T


@pytest.fixture(scope="module")
def lstm_runs():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        cell, inputs, x0, T = _lstm_setup()
        snap = _snapshot(cell)
        m = lk.from_torch(cell)
        kw = dict(steps=T, inputs=inputs, x0=x0, seed=7)
        r64 = lk.lyapunov_spectrum(m, **kw)  # backend "auto"
        r32 = lk.lyapunov_spectrum(m, dtype="float32", backend="torch", **kw)
        return dict(cell=cell, snap=snap, m=m, inputs=inputs, x0=x0, T=T, r64=r64, r32=r32)


def test_lstm_spectrum_sum_is_mean_log_det(lstm_runs):
    r, cell, inputs, x0, T = (lstm_runs[k] for k in ("r64", "cell", "inputs", "x0", "T"))
    assert r.exponents.shape == (10,)
    assert r.backend == "torch"
    assert np.all(np.diff(r.exponents) <= 0)
    # Reconstruct the trajectory from the same x0 and inputs by iterating a float64 copy of the
    # cell, with Jacobians by autograd of that copy: independent of the map's code.
    ref = _cell_step(copy.deepcopy(cell).double(), "lstm", 5)
    x = torch.as_tensor(x0, dtype=torch.float64)
    logdet = []
    for t in range(T):
        u = torch.as_tensor(inputs[t], dtype=torch.float64)
        J = torch.autograd.functional.jacobian(lambda z, u=u: ref(z, u), x)
        sign, ld = torch.linalg.slogdet(J)
        assert sign != 0
        logdet.append(ld.item())
        with torch.no_grad():
            x = ref(x, u)  # the cell itself, independent of the map
    assert r.exponents.sum() == pytest.approx(np.mean(logdet), abs=1e-9)
    np.testing.assert_allclose(r.final_state[0], x.numpy(), rtol=1e-12, atol=1e-12)
    _assert_unchanged(cell, lstm_runs["snap"])


def test_float32_run_agrees_with_float64(lstm_runs):
    r32, r64 = lstm_runs["r32"], lstm_runs["r64"]
    assert r32.exponents.shape == (10,) and r32.backend == "torch"
    assert np.all(np.isfinite(r32.exponents))
    np.testing.assert_allclose(r32.exponents, r64.exponents, rtol=0, atol=1e-4)
    assert not np.array_equal(r32.exponents, r64.exponents)  # it really ran in float32
    _assert_unchanged(lstm_runs["cell"], lstm_runs["snap"])


def test_generic_callable_equals_tanh_network():
    n = 6
    rng = np.random.default_rng(8)
    W = 1.8 * rng.standard_normal((n, n)) / np.sqrt(n)
    Wt = torch.as_tensor(W)
    generic = lk.from_torch(lambda x: torch.tanh(Wt @ x), dim=n)
    assert (generic.dim, generic.input_dim) == (n, 0)
    builtin = lk.TanhNetwork(n, g=1.0, W=W)
    X = torch.as_tensor(rng.uniform(-1, 1, (4, n)))
    torch.testing.assert_close(generic.step(X), builtin.step(X), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(generic.jacobian(X), builtin.jacobian(X), rtol=1e-12, atol=1e-14)
    assert lk.get_backend("auto", generic).name == "torch"
    kw = dict(steps=150, x0=rng.uniform(-0.5, 0.5, (2, n)), ensemble=2, seed=9, backend="torch")
    a = lk.lyapunov_spectrum(generic, **kw)
    b = lk.lyapunov_spectrum(builtin, **kw)
    assert a.backend == b.backend == "torch"
    np.testing.assert_allclose(a.member_exponents, b.member_exponents, rtol=0, atol=1e-9)
    assert a.jacobian_method == "autodiff" and b.jacobian_method == "analytic"


def test_generic_callable_with_input():
    n, m_in = 3, 2
    rng = np.random.default_rng(10)
    W, V = (
        torch.as_tensor(rng.standard_normal((n, n))),
        torch.as_tensor(rng.standard_normal((n, m_in))),
    )

    def f(x, u):
        return torch.sin(W @ x) + V @ u

    m = lk.from_torch(f, dim=n, input_dim=m_in)
    X, U = (
        torch.as_tensor(rng.standard_normal((4, n))),
        torch.as_tensor(rng.standard_normal((4, 2))),
    )
    for e in range(4):
        torch.testing.assert_close(m.step(X, U)[e], f(X[e], U[e]), rtol=1e-13, atol=1e-14)
        Je = torch.autograd.functional.jacobian(lambda x, e=e: f(x, U[e]), X[e])
        torch.testing.assert_close(m.jacobian(X, U)[e], Je, rtol=1e-10, atol=1e-12)
    # Independently: J = diag(cos(W x)) W.
    torch.testing.assert_close(
        m.jacobian(X, U), torch.cos(X @ W.T)[..., :, None] * W, rtol=1e-12, atol=1e-14
    )


def test_from_torch_validation():
    with pytest.raises(ValueError, match="dim"):
        lk.from_torch(lambda x: x)
    with pytest.raises(TypeError, match="fn"):
        lk.from_torch(3, dim=2)
    with pytest.raises(ValueError, match="dim"):
        lk.from_torch(lambda x: x, dim=0)


def test_from_torch_of_a_module_holding_one_cell_is_the_cells_map():
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.head = torch.nn.LSTMCell(2, 4), torch.nn.Linear(4, 1)

    holder = Holder().double()
    held, direct = lk.from_torch(holder), lk.from_torch(holder.cell)
    assert (held.dim, held.input_dim) == (direct.dim, direct.input_dim) == (8, 2)
    x, u = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(held.step(x, u), direct.step(x, u))
