"""Elman RNN, LSTM and GRU models: the fused kernels against the step loop, the steps against
PyTorch's own cells, the weakly coupled residual initialisation against the type-B WCRNN map, the
maps against autodiff and across backends, training, and argument errors.

Comparisons run in float64 on models converted with ``.double()`` (or, where the initialisation
itself must be exact in float64, built under a float64 default dtype).
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np
import pytest

import lyapkit as lk

torch = pytest.importorskip("torch")
nn = torch.nn

from lyapkit.trainers.models import GRU, LSTM, ElmanRNN, residuals  # noqa: E402

IN, HID, OUT, T, B = 3, 5, 2, 9, 4
MODELS = {"elman": ElmanRNN, "lstm": LSTM, "gru": GRU}
CELLS = {"elman": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


@contextlib.contextmanager
def float64_default():
    """Build modules directly in float64 (so initialisations are computed in float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _model(kind: str, seed: int = 0, readout: str = "last", **kw):
    torch.manual_seed(seed)
    return MODELS[kind](IN, HID, OUT, readout, **kw).double()


def _inputs(seed: int = 1, batch: int = B, steps: int = T) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, steps, IN, generator=gen, dtype=torch.float64)


def _loop(model, inputs, s0):
    """States s_1..s_T by iterating ``model.step`` (the reference for the fused paths)."""
    s, out = s0, []
    for t in range(inputs.shape[1]):
        s = model.step(s, inputs[:, t])
        out.append(s)
    return torch.stack(out, 1)


def _cell_with_layer_weights(model, kind: str):
    """PyTorch's own cell loaded with the model's layer weights: an independent reference step."""
    cell = CELLS[kind](IN, HID).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.rnn, f"{name}_l0"))
    if kind == "lstm":
        return lambda s, u: torch.cat(cell(u, (s[..., :HID], s[..., HID:])), -1)
    return lambda s, u: cell(u, s)


# --------------------------------------------------------------------------------------------
# Fused kernels, steps and readouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODELS))
def test_fused_states_and_forward_equal_step_loop(kind):
    model = _model(kind)
    u = _inputs()
    gen = torch.Generator().manual_seed(2)
    for s0 in (None, 0.5 * torch.randn(B, model.state_size, generator=gen, dtype=torch.float64)):
        start = torch.zeros(B, model.state_size, dtype=torch.float64) if s0 is None else s0
        with torch.no_grad():
            ref = _loop(model, u, start)
            S = model.states(u, s0)
            y = model(u, s0)
        assert S.shape == (B, T, model.state_size) and S.dtype == torch.float64
        torch.testing.assert_close(S, ref, rtol=1e-12, atol=1e-12)
        h_last = ref[:, -1, :HID]  # the readout sees h (all of the state for Elman and GRU)
        torch.testing.assert_close(y, model.decoder(h_last), rtol=1e-12, atol=1e-12)
        # the fused kernel's sequence is h of the full states (for the LSTM too)
        with torch.no_grad():
            h = model.hidden_sequence(u, s0)
        torch.testing.assert_close(h, ref[..., :HID], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("readout", ["last", "sequence"])
def test_reference_path_equals_fused_path_and_is_twice_differentiable(kind, readout):
    model = _model(kind, seed=23, readout=readout)
    u = _inputs(seed=24, batch=2, steps=6)
    with torch.no_grad():
        fused_y, fused_S = model(u), model.states(u)
        with model.reference_path():
            torch.testing.assert_close(model(u), fused_y, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(model.states(u), fused_S, rtol=1e-12, atol=1e-12)
    # double backward (a Hessian-vector product) runs through the reference loop
    W_hh = model.rnn.weight_hh_l0
    with model.reference_path():
        (g,) = torch.autograd.grad((model(u) ** 2).sum(), W_hh, create_graph=True)
        (hv,) = torch.autograd.grad((g * torch.ones_like(g)).sum(), W_hh)
    assert torch.isfinite(hv).all() and hv.abs().sum() > 0


@pytest.mark.parametrize("kind", list(MODELS))
def test_step_equals_pytorch_cell(kind):
    """The plain-tensor step follows PyTorch's gate conventions exactly."""
    model = _model(kind, seed=3)
    ref = _cell_with_layer_weights(model, kind)
    gen = torch.Generator().manual_seed(4)
    S = torch.randn(2, 3, model.state_size, generator=gen, dtype=torch.float64)
    U = torch.randn(2, 3, IN, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expect = ref(S.reshape(6, -1), U.reshape(6, -1)).reshape(2, 3, -1)
        torch.testing.assert_close(model.step(S, U), expect, rtol=1e-12, atol=1e-13)  # 2 batch dims
        torch.testing.assert_close(
            model.step(S[1, 2], U[1, 2]), expect[1, 2], rtol=1e-12, atol=1e-13
        )
    assert model.step(S[0, 0], U[0, 0]).shape == (model.state_size,)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("readout", ["last", "sequence"])
def test_readout_shapes(kind, readout):
    torch.manual_seed(22)
    model = MODELS[kind](IN, HID, OUT, readout)
    u = torch.randn(B, T, IN)
    y = model(u)
    assert y.shape == ((B, OUT) if readout == "last" else (B, T, OUT))
    assert model.states(u).shape == (B, T, model.state_size)
    assert model.output(model.states(u), u).shape == y.shape
    torch.testing.assert_close(model.output(model.states(u), u), y, rtol=1e-5, atol=1e-6)


def test_lstm_state_is_h_and_c_and_readout_uses_h_only():
    model = _model("lstm", seed=5, readout="sequence")
    assert (model.state_size, model.feature_size, model.hidden_size) == (2 * HID, HID, HID)
    assert model.decoder.in_features == HID
    u = _inputs(seed=6)
    with torch.no_grad():
        S = model.states(u)
        # c_t really is the cell state: c_T from the fused kernel's final (h_n, c_n)
        _, (h_n, c_n) = model.rnn(u)
        torch.testing.assert_close(S[:, -1, HID:], c_n[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(S[:, -1, :HID], h_n[0], rtol=1e-12, atol=1e-12)
        changed_c = torch.cat([S[..., :HID], S[..., HID:] + 1.0], -1)
        torch.testing.assert_close(model.output(changed_c, u), model.output(S, u), rtol=0, atol=0)
        torch.testing.assert_close(model(u), model.output(S, u), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The weakly coupled residual initialisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_unit", [False, True], ids=["scalar-gamma", "per-unit-gamma"])
def test_residual_init_is_wcrnn_type_b(per_unit):
    R = residuals.rotational(HID, 0.4, r=0.98)
    gamma = np.linspace(0.05, 0.3, HID) if per_unit else 0.1
    with float64_default():
        torch.manual_seed(7)
        model = ElmanRNN(IN, HID, OUT, residual=R, gamma=gamma)
    init = model.residual_init
    W_ih, W_hh, b_ih, b_hh = (t.detach().numpy() for t in model.layer_weights())
    g = np.broadcast_to(gamma, (HID,))
    np.testing.assert_array_equal(init.R, R)
    np.testing.assert_array_equal(init.gamma, g)
    # W, V, b are recovered from the weights (row-wise division by γ)
    np.testing.assert_allclose((W_hh - R) / g[:, None], init.W, rtol=0, atol=1e-13)
    np.testing.assert_allclose(W_ih / g[:, None], init.V, rtol=0, atol=1e-14)
    np.testing.assert_allclose(b_ih / g, init.b, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(b_hh, 0.0)
    # drawn as PyTorch's default nn.Linear init: U(±1/sqrt(fan_in))
    assert np.abs(init.W).max() <= 1 / np.sqrt(HID)
    assert np.abs(init.V).max() <= 1 / np.sqrt(IN) and np.abs(init.b).max() <= 1 / np.sqrt(IN)
    assert np.std(init.W) > 0.1 / np.sqrt(HID)

    # the model (fused path and step) iterates the type-B WCRNN map built independently
    wc = lk.WCRNNMap(R, (W_hh - R) / g[:, None], gamma, W_ih / g[:, None], b_ih / g, variant="B")
    u = _inputs(seed=8, steps=40)
    x = np.zeros((B, HID))
    expect = []
    for t in range(u.shape[1]):
        x = wc.step(x, u[:, t].numpy())
        expect.append(x)
    expect = np.stack(expect, 1)
    with torch.no_grad():
        np.testing.assert_allclose(model.states(u).numpy(), expect, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            _loop(model, u, torch.zeros(B, HID, dtype=torch.float64)).numpy(), expect, atol=1e-12
        )
    # and the map the init record builds is the same map
    np.testing.assert_allclose(
        init.wcrnn_map().step(x, u[:, 0].numpy()), wc.step(x, u[:, 0].numpy()), atol=1e-13
    )


def test_residual_init_float32_and_deterministic():
    R = residuals.homogeneous(HID, 0.95)
    torch.manual_seed(9)
    a = ElmanRNN(IN, HID, OUT, residual=R, gamma=0.05)
    torch.manual_seed(9)
    b = ElmanRNN(IN, HID, OUT, residual=R, gamma=0.05)
    assert a.rnn.weight_hh_l0.dtype == torch.float32
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    expect = R + 0.05 * a.residual_init.W
    np.testing.assert_allclose(a.rnn.weight_hh_l0.detach().numpy(), expect, rtol=1e-6, atol=1e-7)
    # without a residual: PyTorch's default nn.RNN init, untouched
    torch.manual_seed(10)
    plain = ElmanRNN(IN, HID, OUT)
    torch.manual_seed(10)
    nn.Linear(HID, OUT)  # the base class draws the decoder first
    rnn = nn.RNN(IN, HID, batch_first=True)
    assert plain.residual_init is None
    torch.testing.assert_close(plain.rnn.weight_hh_l0, rnn.weight_hh_l0, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODELS))
def test_as_map_step_and_jacobian_equal_autodiff_of_step(kind):
    model = _model(kind, seed=11)
    m = model.as_map()
    assert (m.dim, m.input_dim) == (model.state_size, IN)
    gen = torch.Generator().manual_seed(12)
    X = 0.7 * torch.randn(6, model.state_size, generator=gen, dtype=torch.float64)
    U = torch.randn(6, IN, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        expect_y = model.step(X, U)
    expect_J = torch.func.vmap(torch.func.jacrev(model.step, argnums=0))(X, U).detach()
    y, J = m.step_and_jacobian(X, U)
    torch.testing.assert_close(y, expect_y, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(J, expect_J, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.jacobian(X, U), expect_J, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.step(X[0], U[0]), expect_y[0], rtol=1e-12, atol=1e-13)
    if kind == "elman":  # analytic snapshot, also on numpy arrays
        assert m.jacobian_method == "analytic"
        yn, Jn = m.step_and_jacobian(X.numpy(), U.numpy())
        np.testing.assert_allclose(yn, expect_y.numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(Jn, expect_J.numpy(), rtol=1e-10, atol=1e-12)


def test_elman_map_is_a_snapshot():
    model = _model("elman", seed=13)
    m = model.as_map()
    x, u = np.full(HID, 0.1), np.ones(IN)
    before = m.step(x, u)
    with torch.no_grad():
        model.rnn.weight_hh_l0.add_(1.0)
    np.testing.assert_array_equal(m.step(x, u), before)
    assert not np.allclose(model.as_map().step(x, u), before)


def test_elman_spectrum_agrees_across_backends():
    n = 4  # numba compiles a loop per state size: 4 is that of test_models_base's Elman RNNs
    R, gamma = residuals.informed(n, (0.2, 0.6), (0.9, 1.05), (0.05, 0.2), seed=14)
    torch.manual_seed(15)
    m = ElmanRNN(IN, n, OUT, residual=R, gamma=gamma).as_map()
    inputs = np.random.default_rng(16).standard_normal((60, IN))
    kw = dict(steps=50, transient=10, inputs=inputs, x0=np.full(n, 0.1), seed=17)
    runs = {b: lk.lyapunov_spectrum(m, backend=b, **kw) for b in ("numpy", "numba", "torch")}
    for b, r in runs.items():
        assert r.backend == b and r.exponents.shape == (n,)
        np.testing.assert_allclose(r.exponents, runs["numpy"].exponents, rtol=0, atol=1e-9)


def test_lstm_spectrum_sum_is_mean_log_det():
    model = _model("lstm", seed=18)
    m = model.as_map()
    steps, rng = 80, np.random.default_rng(19)
    inputs, x0 = rng.standard_normal((steps, IN)), 0.3 * rng.standard_normal(2 * HID)
    r = lk.lyapunov_spectrum(m, steps=steps, inputs=inputs, x0=x0, seed=20)
    assert r.backend == "torch" and r.exponents.shape == (2 * HID,)
    assert np.all(np.diff(r.exponents) <= 0)
    # Trajectory and Jacobians from PyTorch's LSTMCell with the same weights (independent code).
    ref = _cell_with_layer_weights(copy.deepcopy(model), "lstm")
    x, logdet = torch.as_tensor(x0), []
    for t in range(steps):
        u = torch.as_tensor(inputs[t])
        J = torch.autograd.functional.jacobian(lambda z, u=u: ref(z, u), x)
        sign, ld = torch.linalg.slogdet(J)
        assert sign != 0
        logdet.append(ld.item())
        with torch.no_grad():
            x = ref(x, u)
    assert r.exponents.sum() == pytest.approx(np.mean(logdet), abs=1e-9)
    np.testing.assert_allclose(r.final_state[0], x.numpy(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Training and errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("readout", ["last", "sequence"])
def test_sgd_step_trains_every_parameter(kind, readout):
    torch.manual_seed(21)
    kw = {"residual": residuals.rotational(HID, 0.3), "gamma": 0.1} if kind == "elman" else {}
    model = MODELS[kind](IN, HID, OUT, readout, **kw)
    u = torch.randn(8, 12, IN)
    target = u.sum(1)[:, :OUT] if readout == "last" else u.cumsum(1)[..., :OUT]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = ((model(u) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.all(np.isfinite(losses))
    for (name, p), p0 in zip(model.named_parameters(), before, strict=True):
        assert torch.isfinite(p).all(), name
        assert not torch.equal(p.detach(), p0), name


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"residual": np.eye(HID + 1), "gamma": 0.1}, "residual"),
        ({"residual": np.ones(HID), "gamma": 0.1}, "residual"),
        ({"residual": np.full((HID, HID), np.nan), "gamma": 0.1}, "residual"),
        ({"gamma": 0.1}, "gamma"),
        ({"residual": np.eye(HID)}, "gamma"),
        ({"residual": np.eye(HID), "gamma": np.ones(HID + 1)}, "gamma"),
        ({"residual": np.eye(HID), "gamma": np.inf}, "gamma"),
    ],
)
def test_elman_bad_residual_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ElmanRNN(IN, HID, OUT, **kwargs)


@pytest.mark.parametrize("kind", list(MODELS))
def test_bad_sizes_and_inputs(kind):
    cls = MODELS[kind]
    with pytest.raises(ValueError, match="hidden_size"):
        cls(IN, 0, OUT)
    with pytest.raises(ValueError, match="input_size"):
        cls(1.5, HID, OUT)
    with pytest.raises(ValueError, match="readout"):
        cls(IN, HID, OUT, "first")
    model = cls(IN, HID, OUT)
    with pytest.raises(ValueError, match="inputs"):
        model(torch.zeros(B, T, IN + 1))
    with pytest.raises(ValueError, match="state"):
        model(torch.zeros(B, T, IN), torch.zeros(B, model.state_size + 1))
