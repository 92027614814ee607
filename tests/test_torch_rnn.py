"""PyTorch's nn.RNN / nn.GRU / nn.LSTM (and cells, and modules holding them) through lyapkit.adapt.

References computed another way, in float64: loops over PyTorch cells built from copies of the
module's weights (or, with an LSTM projection, which no cell has, the module itself run one step
at a time), ``torch.func.jacrev`` of those loops, a plain QR loop on them, autograd with
``retain_grad`` on the unrolled loop, and dense ``torch.func.hessian`` of the untied network.
"""

import copy
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, hessian, jacrev

import lyapkit
from lyapkit.curvature import CurvatureOperator
from lyapkit.lyapunov import _random_bases  # the basis lyapunov_spectrum draws from its seed
from lyapkit.trainers.models import WCRNN

pytestmark = pytest.mark.usefixtures("torch_float64")

MODULES = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
CELLS = {nn.RNN: nn.RNNCell, nn.GRU: nn.GRUCell, nn.LSTM: nn.LSTMCell}


def _module(kind, m=2, H=3, layers=2, *, bias=True, batch_first=True, proj=0, seed=0, **kw):
    torch.manual_seed(seed)
    if kind.startswith("rnn"):
        kw["nonlinearity"] = kind[4:]
    if proj:
        kw["proj_size"] = proj
    cls = MODULES[kind]
    return cls(m, H, layers, bias=bias, batch_first=batch_first, **kw).double()


def _cells(module):
    """One PyTorch cell per layer of ``module``, holding copies of that layer's weights."""
    cells = []
    for layer in range(module.num_layers):
        size = module.input_size if layer == 0 else module.hidden_size
        kw = {"nonlinearity": module.nonlinearity} if isinstance(module, nn.RNN) else {}
        cell = CELLS[type(module)](size, module.hidden_size, bias=module.bias, **kw).double()
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if module.bias else 2]:
                getattr(cell, name).copy_(getattr(module, f"{name}_l{layer}"))
        cells.append(cell)
    return cells


def _cell_step(cells, lstm, s, u):
    """One step of the stack of ``cells`` on the state ``(h¹…hᴸ, c¹…cᴸ)`` (documented layout)."""
    L, H = len(cells), cells[0].hidden_size
    hs = s[..., : L * H].split(H, -1)
    cs = s[..., L * H :].split(H, -1) if lstm else None
    x, new_h, new_c = u, [], []
    for layer, cell in enumerate(cells):
        if lstm:
            x, c = cell(x, (hs[layer], cs[layer]))
            new_c.append(c)
        else:
            x = cell(x, hs[layer])
        new_h.append(x)
    return torch.cat(new_h + new_c, -1)


def _module_step(module, s, u):
    """One step of ``module`` itself (a one-step sequence from the state ``s``), batch ``(B, n)``."""
    B, L = s.shape[0], module.num_layers
    P = module.proj_size if getattr(module, "proj_size", 0) else module.hidden_size
    h = s[:, : L * P].reshape(B, L, P).transpose(0, 1).contiguous()
    x = u[:, None] if module.batch_first else u[None]
    if isinstance(module, nn.LSTM):
        c = s[:, L * P :].reshape(B, L, -1).transpose(0, 1).contiguous()
        _, (h, c) = module(x, (h, c))
        parts = [h, c]
    else:
        parts = [module(x, h)[1]]
    return torch.cat([p.transpose(0, 1).reshape(B, -1) for p in parts], -1)


def _reference_step(module):
    """``(s, u) -> s'`` by cells with copied weights, or by the module itself for a projection."""
    if getattr(module, "proj_size", 0):
        ref = copy.deepcopy(module)
        return lambda s, u: _module_step(ref, s, u)
    cells = _cells(module)
    return lambda s, u: _cell_step(cells, isinstance(module, nn.LSTM), s, u)


def _jacobians(step, S, U):
    """``∂step/∂s`` of each sample, by ``torch.func.jacrev`` (one sample at a time)."""
    return torch.stack(
        [jacrev(lambda s, u=u: step(s[None], u[None])[0])(s) for s, u in zip(S, U, strict=True)]
    )


configs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(list(MODULES)),
        "m": st.integers(1, 3),
        "H": st.integers(1, 4),
        "layers": st.integers(1, 3),
        "bias": st.booleans(),
        "batch_first": st.booleans(),
        "proj": st.integers(0, 2),
        "seed": st.integers(0, 2**16),
    }
)


def _build(config):
    config = dict(config)
    if config["kind"] != "lstm" or config["proj"] >= config["H"]:
        config["proj"] = 0
    return _module(**config)


@settings(max_examples=40)
@given(config=configs, T=st.integers(1, 4), batch=st.integers(1, 3))
def test_stacked_module_equals_a_loop_over_cells_with_copied_weights(config, T, batch):
    module = _build(config)
    net = lyapkit.adapt(module)
    gen = torch.Generator().manual_seed(config["seed"])
    u = torch.randn(batch, T, module.input_size, generator=gen)
    s0 = 0.5 * torch.randn(batch, net.state_size, generator=gen)
    reference, s, expected = _reference_step(module), s0, []
    for t in range(T):
        s = reference(s, u[:, t])
        expected.append(s)
    expected = torch.stack(expected, 1)
    with torch.no_grad():
        states = net.states(u, s0)
        torch.testing.assert_close(states, expected, rtol=1e-12, atol=1e-13)
        # the fused pass of the module itself: its outputs are the top layer's h, its h_n/c_n
        # the last state, whichever batch_first
        x = u if module.batch_first else u.transpose(0, 1)
        out, hx = module(x, net.unpack(s0))
        out = out if module.batch_first else out.transpose(0, 1)
        torch.testing.assert_close(net.features(states), out, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(net.pack(hx), states[:, -1], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(net(u, s0), out[:, -1], rtol=1e-12, atol=1e-13)
        # the map: the same step, and Jacobians equal jacrev of the reference step
        system = net.as_map()
        S, U = s0, u[:, 0]
        y, J = system.step_and_jacobian(S, U)
        torch.testing.assert_close(y, expected[:, 0], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(J, _jacobians(reference, S, U), rtol=1e-10, atol=1e-12)
    yn, Jn = system.step_and_jacobian(S.numpy(), U.numpy())
    np.testing.assert_allclose(yn, y.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Jn, J.numpy(), rtol=1e-10, atol=1e-12)
    assert (system.dim, system.input_dim, system.jacobian_method) == (
        net.state_size,
        module.input_size,
        "analytic",
    )


@pytest.mark.parametrize(
    "cell", [nn.RNNCell(2, 3, nonlinearity="relu"), nn.GRUCell(2, 3), nn.LSTMCell(2, 3)]
)
def test_cells_adapt_to_their_own_step(cell):
    cell = cell.double()
    net = lyapkit.adapt(cell)
    torch.manual_seed(1)
    u, s0 = torch.randn(4, 5, 2), 0.5 * torch.randn(4, net.state_size)
    s, H = s0, cell.hidden_size
    with torch.no_grad():
        for t in range(5):
            if isinstance(cell, nn.LSTMCell):
                s = torch.cat(cell(u[:, t], (s[:, :H], s[:, H:])), -1)
            else:
                s = cell(u[:, t], s)
        torch.testing.assert_close(net.states(u, s0)[:, -1], s, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(net(u, s0), s[:, :H], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(net.pack(net.unpack(s0)), s0)
    autodiff = lyapkit.from_torch(cell)  # the cell's autodiff map: an independent Jacobian
    x, v = s0.detach(), u[:, 0]
    torch.testing.assert_close(
        net.as_map().jacobian(x, v), autodiff.jacobian(x, v), rtol=1e-10, atol=1e-12
    )


def _qr_spectrum(step, x0, Q0, inputs):
    """Exponents by the plain loop ``Q ← qr(J_t Q)``, ``J_t`` by jacrev of ``step``."""
    x, Q = torch.as_tensor(x0), torch.as_tensor(Q0)
    acc = torch.zeros(Q.shape[1])
    for u in torch.as_tensor(inputs):
        J = jacrev(lambda s, u=u: step(s[None], u[None])[0])(x).detach()
        x = step(x[None], u[None])[0].detach()
        Q, R = torch.linalg.qr(J @ Q)
        acc += torch.log(torch.abs(torch.diagonal(R)))
    return np.sort(acc.numpy() / len(inputs))[::-1]


@pytest.mark.parametrize(
    "kind, kw",
    [("lstm", {}), ("lstm", {"proj": 2, "bias": False}), ("gru", {}), ("rnn_tanh", {"layers": 3})],
)
def test_spectrum_equals_a_plain_qr_loop_on_the_cells(kind, kw):
    module = _module(kind, H=4, seed=3, **kw)
    system = lyapkit.adapt(module).as_map()
    rng = np.random.default_rng(4)
    steps, n = 40, system.dim
    inputs, x0 = rng.standard_normal((steps, module.input_size)), 0.2 * rng.standard_normal(n)
    Q0 = _random_bases(np.random.default_rng(5), 1, n, n)[0]
    expected = _qr_spectrum(_reference_step(module), x0, Q0, inputs)
    for backend in ("torch", "numpy"):
        result = lyapkit.lyapunov_spectrum(
            system, steps=steps, x0=x0, inputs=inputs, seed=5, backend=backend, history=False
        )
        assert result.backend == backend and result.jacobian_method == "analytic"
        np.testing.assert_allclose(result.exponents, expected, rtol=1e-9, atol=1e-9)


def _unrolled_norms(module, head, inputs, targets, loss):
    """``‖∂L/∂x_t‖`` by autograd with ``retain_grad`` on a loop over cells with copied weights."""
    step = _reference_step(module)
    L, P = module.num_layers, getattr(module, "proj_size", 0) or module.hidden_size
    s = inputs.new_zeros(inputs.shape[0], lyapkit.adapt(module).state_size)
    states = []
    for t in range(inputs.shape[1]):
        s = step(s, inputs[:, t])
        s.retain_grad()
        states.append(s)
    top = torch.stack(states, 1)[..., (L - 1) * P : L * P]
    if loss == "mse":
        value = F.mse_loss(head(top), targets)
    else:
        value = F.cross_entropy(head(top[:, -1]), targets)
    value.backward()
    return torch.stack([s.grad.norm(dim=1) for s in states], 1).numpy()


@pytest.mark.parametrize(
    "kind, loss, kw",
    [("lstm", "cross_entropy", {}), ("gru", "mse", {"batch_first": False}),
     ("rnn_tanh", "cross_entropy", {"layers": 3}), ("lstm", "mse", {"proj": 2})],
)  # fmt: skip
def test_gradient_norms_equal_autograd_on_the_unrolled_cells(kind, loss, kw):
    module = _module(kind, H=4, seed=6, **kw)
    head = nn.Linear(module.proj_size or 4 if kind == "lstm" else 4, 3).double()

    class Classifier(nn.Module):  # what a user trains: the recurrent module and a readout
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = module, head

    readout = "sequence" if loss == "mse" else "last"
    net = lyapkit.adapt(Classifier(), readout=readout)
    assert net.rnn is module and net.head is head
    torch.manual_seed(7)
    inputs = torch.randn(5, 9, 2)
    targets = torch.randn(5, 9, 3) if loss == "mse" else torch.randint(0, 3, (5,))
    result = lyapkit.gradient_propagation(net, inputs, targets, loss)
    expected = _unrolled_norms(copy.deepcopy(module), copy.deepcopy(head), inputs, targets, loss)
    np.testing.assert_allclose(result.norms, expected, rtol=1e-10, atol=1e-15)


def _untied_network(module, head, inputs, T):
    """``(outputs(flat), flat0, R)``: the network with one copy of the recurrent weights per step
    (``flat = (θ_1, …, θ_T, θ_head)``, ``R`` entries per copy), run by ``functional_call`` on
    cells built from copies of its weights (independent of lyapkit's untying)."""
    cells, lstm = _cells(module), isinstance(module, nn.LSTM)
    L, H = len(cells), module.hidden_size
    per_layer = [dict(cell.named_parameters()) for cell in cells]
    names = [(layer, n) for layer in range(L) for n in per_layer[layer]]
    shapes = [per_layer[layer][n].shape for layer, n in names]
    head_named = dict(head.named_parameters())
    sizes = [int(np.prod(s)) for s in shapes]
    R = sum(sizes)
    flat0 = torch.cat(
        [torch.cat([per_layer[layer][n].detach().flatten() for layer, n in names])] * T
        + [p.detach().flatten() for p in head_named.values()]
    )

    def outputs(flat):
        s, tops = inputs.new_zeros(inputs.shape[0], L * 2 * H if lstm else L * H), []
        for t in range(T):
            parts = flat[t * R : (t + 1) * R].split(sizes)
            params = [{} for _ in range(L)]
            for (layer, n), q, shape in zip(names, parts, shapes, strict=True):
                params[layer][n] = q.reshape(shape)
            hs, x, new_h, new_c = s[:, : L * H].split(H, -1), inputs[:, t], [], []
            for layer, cell in enumerate(cells):
                if lstm:
                    c = s[:, L * H + layer * H : L * H + (layer + 1) * H]
                    x, c = functional_call(cell, params[layer], (x, (hs[layer], c)))
                    new_c.append(c)
                else:
                    x = functional_call(cell, params[layer], (x, hs[layer]))
                new_h.append(x)
            s = torch.cat(new_h + new_c, -1)
            tops.append(x)
        hp = flat[T * R :].split([p.numel() for p in head_named.values()])
        hp = {n: q.reshape(p.shape) for (n, p), q in zip(head_named.items(), hp, strict=True)}
        return functional_call(head, hp, (torch.stack(tops, 1)[:, -1],))

    return outputs, flat0, R


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_layer_contributions_sum_to_the_eigenvalue_and_match_the_dense_untied_curvature(kind, rnn):
    module = _module(rnn, m=2, H=2, layers=2, seed=8)
    head = nn.Linear(2, 3).double()
    net = lyapkit.adapt(nn.ModuleDict({"rnn": module, "head": head}), rnn="rnn", head="head")
    torch.manual_seed(9)
    T, inputs = 4, torch.randn(3, 4, 2)
    targets = torch.randint(0, 3, (3,))
    op = CurvatureOperator(net, (inputs, targets), kind=kind)
    pairs = op.eigenpairs(2)
    c = op.layer_contributions(pairs.eigenvectors)
    np.testing.assert_allclose(c.total, pairs.eigenvalues, rtol=1e-8)
    # Dense reference: the Hessian (or GGN) of the untied network; c_s = v_sᵀ (Σ_t C_st) v_t.
    outputs, flat0, R = _untied_network(copy.deepcopy(module), copy.deepcopy(head), inputs, T)

    def loss(out):
        return F.cross_entropy(out, targets)

    if kind == "hessian":
        dense = hessian(lambda f: loss(outputs(f)))(flat0)
    else:
        out = outputs(flat0).detach()
        J = jacrev(outputs)(flat0).reshape(out.numel(), -1)
        H = hessian(lambda o: loss(o.reshape(out.shape)))(out.reshape(-1))
        dense = J.T @ H @ J
    for i, v in enumerate(torch.as_tensor(pairs.eigenvectors).T):
        v_rnn, v_head = v[:R], v[R:]  # the adapter's parameters: the RNN's, then the head's
        Cv = dense @ torch.cat([v_rnn] * T + [v_head])
        per_step = [float(Cv[t * R : (t + 1) * R] @ v_rnn) for t in range(T)]
        np.testing.assert_allclose(c.recurrent[i], per_step, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(c.readout[i], float(Cv[T * R :] @ v_head), rtol=1e-7, atol=1e-12)
    # and the tied curvature is the sum of the untied blocks
    tied = op.dense()
    blocks = dense[: T * R, : T * R].reshape(T, R, T, R).sum((0, 2))
    np.testing.assert_allclose(tied[:R, :R], blocks.numpy(), rtol=1e-8, atol=1e-12)


def test_loss_time_contributions_of_a_sequence_readout_match_the_dense_hessian_per_time():
    module, head = _module("lstm", m=2, H=2, layers=2, seed=10), nn.Linear(2, 1).double()
    net = lyapkit.adapt(nn.Sequential(module, head), readout="sequence")
    torch.manual_seed(11)
    inputs, targets = torch.randn(3, 4, 2), torch.randn(3, 4, 1)
    op = CurvatureOperator(net, (inputs, targets), "mse", kind="hessian")
    pairs = op.eigenpairs(2)
    per_time = op.loss_time_contributions(pairs.eigenvectors)
    np.testing.assert_allclose(per_time.sum(1), pairs.eigenvalues, rtol=1e-8)
    flat0 = op.flatten(op.parameters())
    for tau in range(4):

        def loss_at(flat, tau=tau):
            with net.reference_path():
                out = functional_call(net, op.unflatten(flat), (inputs,))
            return ((out[:, tau] - targets[:, tau]) ** 2).sum() / targets.numel()

        H = hessian(loss_at)(flat0).numpy()
        expected = np.einsum("pk,pq,qk->k", pairs.eigenvectors, H, pairs.eigenvectors)
        np.testing.assert_allclose(per_time[:, tau], expected, rtol=1e-7, atol=1e-12)


def test_effective_learning_rates_of_an_adapted_lstm_trained_with_adam():
    module, head = _module("lstm", m=2, H=3, layers=2, seed=12), nn.Linear(3, 2).double()
    user = nn.ModuleDict({"lstm": module, "head": head})
    net = lyapkit.adapt(user, head="head")
    torch.manual_seed(13)
    inputs, targets = torch.randn(8, 5, 2), torch.randint(0, 2, (8,))
    optimizer = torch.optim.Adam(user.parameters(), lr=1e-2)  # built on the user's module
    for _ in range(3):  # train through the adapter: the same parameters
        optimizer.zero_grad()
        F.cross_entropy(net(inputs), targets).backward()
        optimizer.step()
    assert all(p is q for p, q in zip(net.parameters(), user.parameters(), strict=True))
    op = CurvatureOperator(net, (inputs, targets), kind="hessian")
    P = lyapkit.adam_preconditioner(optimizer)
    sharp = lyapkit.preconditioned_sharpness(op.matvec, P, k=2, lr=1e-2, beta1=0.9)
    d = 1 / np.sqrt(P.numpy())
    dense = np.linalg.eigvalsh(d[:, None] * op.dense() * d[None, :])[::-1][:2]
    np.testing.assert_allclose(sharp.eigenvalues, dense, rtol=1e-6)
    rates = lyapkit.adam_effective_rates(optimizer)
    assert rates.rates.shape == (op.num_params,) and np.all(np.isfinite(rates.rates))
    pairs = op.eigenpairs(2)
    sgd = lyapkit.sgd_effective_rates(pairs.eigenvalues, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(sgd.rates, 0.1 * pairs.eigenvalues)
    c = op.layer_contributions(pairs.eigenvectors)
    temporal = lyapkit.temporal_effective_rates(c.recurrent, lr=0.1)
    np.testing.assert_allclose(temporal.total + 0.1 * c.readout, 0.1 * pairs.eigenvalues, rtol=1e-8)


def test_variational_term_and_profile_of_an_adapted_network():
    module = _module("gru", m=2, H=3, layers=2, seed=14)
    net = lyapkit.adapt(module)
    rng = np.random.default_rng(15)
    inputs, x0 = rng.standard_normal((6, 2)), 0.3 * rng.standard_normal(net.state_size)
    term = lyapkit.variational_term(net, x0, inputs)
    # the explicit product of the reference Jacobians along the reference trajectory
    step, x, V = _reference_step(module), torch.as_tensor(x0), torch.eye(net.state_size)
    for u in torch.as_tensor(inputs):
        V = jacrev(lambda s, u=u: step(s[None], u[None])[0])(x).detach() @ V
        x = step(x[None], u[None])[0].detach()
    expected = np.log(np.linalg.svd(V.numpy(), compute_uv=False))
    np.testing.assert_allclose(term.log_singular_values, expected, rtol=1e-9, atol=1e-9)
    assert term.jacobian_method == "analytic"
    profile = lyapkit.variational_profile(net, x0, inputs)
    np.testing.assert_allclose(profile.log_norm[-1], expected[0], rtol=1e-10)


def test_the_map_shares_the_module_parameters():
    module = _module("lstm", m=2, H=3, layers=2, seed=16)
    net = lyapkit.adapt(module)
    system = net.as_map()
    assert net.rnn is module and system.module is module
    x, u = np.full(system.dim, 0.1), np.ones(2)
    before = system.step(x, u)
    with torch.no_grad():
        module.weight_hh_l1.mul_(2.0)
    system.prepare()  # what every lyapkit computation does first
    after = system.step(x, u)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(
        after,
        _reference_step(module)(torch.tensor(x)[None], torch.tensor(u)[None])[0].detach().numpy(),
        rtol=1e-12,
    )
    assert isinstance(lyapkit.from_torch(module), lyapkit.StackedRNNMap)
    assert lyapkit.from_torch(nn.Sequential(module, nn.Linear(3, 2))).module is module


def test_dropout_is_off_in_analysis_and_training_modes_are_restored():
    module = _module("lstm", m=2, H=3, layers=2, seed=17, dropout=0.5)
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2)).double()
    net = lyapkit.adapt(nn.ModuleDict({"lstm": module, "head": head})).train()
    torch.manual_seed(18)
    inputs, targets = torch.randn(4, 6, 2), torch.randint(0, 2, (4,))
    first = lyapkit.gradient_propagation(net, inputs, targets).norms
    np.testing.assert_array_equal(lyapkit.gradient_propagation(net, inputs, targets).norms, first)
    ggn = CurvatureOperator(net, (inputs, targets))
    np.testing.assert_array_equal(ggn.dense(), ggn.dense())
    assert all(m.training for m in net.modules())
    with net.reference_path():
        assert not any(m.training for m in net.modules())
        reference = net(inputs)
    net.eval()
    torch.testing.assert_close(net(inputs), reference, rtol=1e-12, atol=1e-13)  # fused, no dropout


def test_protocol_and_the_errors_that_say_what_is_missing():
    assert isinstance(lyapkit.adapt(nn.GRU(2, 3)), lyapkit.RecurrentNetwork)
    assert isinstance(WCRNN(2, 3, 2), lyapkit.RecurrentNetwork)
    assert not isinstance(nn.GRU(2, 3), lyapkit.RecurrentNetwork)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.head = nn.GRU(2, 3, batch_first=True), nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.gru(x)[0][:, -1])

    net = Net().double()
    inputs, targets = torch.randn(2, 4, 2), torch.tensor([0, 1])
    with pytest.raises(TypeError, match=r"lacks initial_state, step, output.*lyapkit.adapt"):
        lyapkit.gradient_propagation(net, inputs, targets)
    with pytest.raises(TypeError, match=r"per-time decomposition.*lyapkit.adapt"):
        CurvatureOperator(net, (inputs, targets)).layer_contributions(np.ones(71))
    with pytest.raises(TypeError, match=r"lyapkit Map or a recurrent network.*lyapkit.adapt"):
        lyapkit.variational_term(net, np.zeros(3), np.zeros((4, 2)))
    adapted = lyapkit.adapt(net)  # the convention: the only RNN, the only other child
    assert adapted.rnn is net.gru and adapted.head is net.head
    torch.testing.assert_close(adapted(inputs), net(inputs))
    with pytest.raises(ValueError, match="bidirectional"):
        lyapkit.adapt(nn.LSTM(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match=r"several recurrent modules \['a', 'b'\].*rnn="):
        lyapkit.adapt(nn.ModuleDict({"a": nn.GRU(2, 3), "b": nn.GRU(3, 3)}))
    with pytest.raises(ValueError, match=r"several children.*\['h1', 'h2'\].*head="):
        lyapkit.adapt(
            nn.ModuleDict({"r": nn.GRU(2, 3), "h1": nn.Linear(3, 2), "h2": nn.Linear(3, 2)})
        )
    with pytest.raises(ValueError, match="rnn='nope' is not a submodule"):
        lyapkit.adapt(net, rnn="nope")
    with pytest.raises(TypeError, match="holds none"):
        lyapkit.adapt(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="readout must be one of"):
        lyapkit.adapt(net, readout="first")
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, T ≥ 1, 2\)"):
        adapted(torch.randn(2, 4, 3))


# The numba backend: the kernels of lyapkit.maps.numba_kernels against the map's numpy formulas
# (themselves tested against jacrev above). Every stack below has an 8-dimensional state, so one
# scalar tangent loop (specialised on (n, k) = (8, 8)) serves them all; the 24-dimensional ones
# go through the BLAS loop (compiled once for the kernels, whatever the size).
needs_numba = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba is not installed"
)
NUMBA_STACKS = [
    ("rnn_tanh", {"H": 4}),
    ("rnn_relu", {"H": 4}),
    ("gru", {"H": 4, "bias": False}),
    ("lstm", {"H": 2}),
    ("lstm", {"H": 3, "proj": 1, "bias": False}),
]


@needs_numba
@settings(max_examples=30)
@given(config=configs, points=st.integers(1, 3))
def test_numba_kernels_equal_the_maps_step_and_jacobian(config, points):
    system = lyapkit.adapt(_build(config)).as_map()
    kernels = system.numba_kernels()
    rng = np.random.default_rng(config["seed"])
    for _ in range(points):
        x, u = rng.standard_normal(system.dim), rng.standard_normal(system.input_dim)
        out, J = np.full(system.dim, np.nan), np.full((system.dim, system.dim), np.nan)
        kernels.step(x, u, kernels.params, out)
        kernels.jacobian(x, u, kernels.params, J)
        np.testing.assert_allclose(out, system.step(x, u), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(J, system.jacobian(x, u), rtol=1e-12, atol=1e-14)


@needs_numba
@pytest.mark.parametrize("kind, kw", NUMBA_STACKS + [("lstm", {"H": 6}), ("gru", {"H": 12})])
def test_numba_spectrum_equals_the_numpy_and_torch_spectra(kind, kw):
    module = _module(kind, seed=21, **kw)
    if kind == "rnn_relu":  # every unit on: a relu unit that is off makes J exactly singular,
        with torch.no_grad():  # and exponents of collapsed directions are rounding noise
            for name, value in module.named_parameters():
                value.mul_(0.2).add_(3.0 if name.startswith("bias_ih") else 0.0)
    system = lyapkit.adapt(module).as_map()
    assert lyapkit.get_backend("auto", system).name == "numba"
    rng = np.random.default_rng(22)
    steps = 30
    inputs = rng.standard_normal((steps + 5, module.input_size))
    x0 = 0.3 * rng.standard_normal(system.dim)
    run = dict(steps=steps, transient=5, x0=x0, inputs=inputs, seed=23, history=False)
    numba = lyapkit.lyapunov_spectrum(system, backend="numba", **run)
    assert numba.backend == "numba" and np.isfinite(numba.exponents).all()
    for backend in ("numpy", "torch"):
        other = lyapkit.lyapunov_spectrum(system, backend=backend, **run)
        np.testing.assert_allclose(numba.exponents, other.exponents, rtol=1e-10, atol=1e-10)


@needs_numba
def test_numba_kernels_follow_the_module_after_prepare():
    module = _module("lstm", H=2, seed=24)
    system = lyapkit.adapt(module).as_map()
    x, u = np.full(system.dim, 0.1), np.ones(2)
    before = np.empty(system.dim)
    kernels = system.numba_kernels()
    kernels.step(x, u, kernels.params, before)
    with torch.no_grad():
        module.weight_hh_l1.mul_(2.0)
    system.prepare()
    kernels, after = system.numba_kernels(), np.empty(system.dim)
    kernels.step(x, u, kernels.params, after)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, system.step(x, u), rtol=1e-13)


def test_finite_time_exponents_of_one_trajectory_with_several_directions():
    # k copies of one state along the batch: a stride-0 view, which jvp refuses as a primal
    torch.manual_seed(0)
    net = lyapkit.adapt(nn.GRU(2, 3).double())
    u = torch.randn(2, 20, 2, dtype=torch.float64)
    both = lyapkit.finite_time_exponents(net, u, k=2)
    one = lyapkit.finite_time_exponents(net, u[:1], k=2)
    torch.testing.assert_close(one[0], both[0], rtol=1e-12, atol=1e-12)


def test_a_readout_beside_the_rnn_in_one_container_must_be_named():
    class Stacked(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.GRU(2, 4, batch_first=True), nn.Linear(4, 3)])

    model = Stacked()
    with pytest.raises(ValueError, match=r"Stacked.layers holds the recurrent module .*head="):
        lyapkit.adapt(model)  # it analysed the 4 hidden units instead of the 3 logits
    adapted = lyapkit.adapt(model, head="layers.1")
    x = torch.randn(5, 6, 2)
    torch.testing.assert_close(adapted(x), model.layers[1](model.layers[0](x)[0][:, -1]))


def test_an_external_head_comes_after_the_rnn_as_in_an_optimizer_over_both():
    rnn, head = nn.RNN(2, 3, batch_first=True), nn.Linear(3, 1)
    adapted = list(lyapkit.adapt(rnn, head=head).parameters())
    assert all(
        a is b for a, b in zip(adapted, [*rnn.parameters(), *head.parameters()], strict=True)
    )


def test_inputs_of_the_wrong_size_or_type_are_refused_by_name():
    net = lyapkit.adapt(nn.GRU(2, 3, batch_first=True), head=nn.Linear(3, 2))
    wrong = torch.randn(2, 10, 3)
    with pytest.raises(ValueError, match="inputs must have 2 input features"):
        lyapkit.gradient_propagation(net, wrong, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="inputs must have 2 input features"):
        lyapkit.finite_time_exponents(net, wrong)
    with pytest.raises(ValueError, match="x0 must have 3 columns"):
        lyapkit.finite_time_exponents(net, torch.randn(2, 10, 2), x0=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="got a ndarray"):
        net(np.ones((2, 5, 2)))


def test_pack_and_unpack_refuse_states_of_the_wrong_shape():
    gru = lyapkit.adapt(nn.GRU(3, 4, num_layers=2))  # state_size 8
    with pytest.raises(ValueError, match=r"h must have shape \(2, 'batch', 4\)"):
        gru.pack(torch.zeros(3, 1, 4))  # three layers
    with pytest.raises(ValueError, match=r"h must have shape \(2, 'batch', 4\)"):
        gru.pack(torch.zeros(2, 2, 5))
    with pytest.raises(ValueError, match=r"state must have shape \(batch, 8\)"):
        gru.unpack(torch.zeros(2, 5))  # it was truncated silently
    cell = lyapkit.adapt(nn.GRUCell(2, 3))
    with pytest.raises(ValueError, match=r"h must have shape \('batch', 3\)"):
        cell.pack(torch.zeros(3))  # unbatched
    lstm = lyapkit.adapt(nn.LSTM(2, 4, proj_size=2))
    h, c = torch.randn(1, 5, 2), torch.randn(1, 5, 4)
    back = lstm.unpack(lstm.pack((h, c)))
    assert torch.equal(back[0], h) and torch.equal(back[1], c)
    with pytest.raises(ValueError, match=r"c must have shape \(1, 'batch', 4\)"):
        lstm.pack((h, torch.randn(1, 5, 2)))
