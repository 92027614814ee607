"""The decomposition of the curvature over unrolled time (``lyapkit.unrolled``) against a WCRNN
written out with one weight copy per step and differentiated densely, its sums, and the decay that
the weak-coupling theory predicts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from cases import sequences, wcrnn  # noqa: E402
from torch.func import hessian, jacrev  # noqa: E402

from lyapkit import gradient_propagation, temporal_effective_rates  # noqa: E402
from lyapkit.curvature import CurvatureOperator  # noqa: E402
from lyapkit.trainers.models import WCRNN  # noqa: E402

F = torch.nn.functional


def untied_loss(model, x, y, Ws, Vs, bs, C, c):
    """The WCRNN of ``model`` written out with one copy (W_t, V_t, b_t) per step."""
    R, gamma = model.R, model.gamma
    h = torch.zeros(x.shape[0], R.shape[0], dtype=x.dtype)
    for t in range(x.shape[1]):
        h = h @ R.T + gamma * torch.tanh(h @ Ws[t].T + x[:, t] @ Vs[t].T + bs[t])
    return F.cross_entropy(h @ C.T + c, y)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_layer_contributions_against_an_explicitly_untied_network(kind):
    model, (x, y) = wcrnn(hidden=2), sequences(T=4)
    names = ["recurrent.weight", "encoder.weight", "encoder.bias"]
    op = CurvatureOperator(model, (x, y), kind=kind, parameters=names)
    vectors = op.eigenpairs(2).eigenvectors
    got = op.layer_contributions(vectors)
    np.testing.assert_allclose(got.total, op.eigenpairs(2).eigenvalues, rtol=1e-8)
    np.testing.assert_allclose(got.readout, 0, atol=1e-15)  # the readout copy of W, V, b is unused
    T = x.shape[1]
    W, V, b = (dict(model.named_parameters())[n].detach() for n in names)
    C, c = model.decoder.weight.detach(), model.decoder.bias.detach()
    sizes = [W.numel(), V.numel(), b.numel()]

    def split(flat):  # (T·P,) -> per-step copies
        per = flat.reshape(T, -1).split(sizes, dim=1)
        return per[0].reshape(T, *W.shape), per[1].reshape(T, *V.shape), per[2].reshape(T, *b.shape)

    tied = torch.cat([W.flatten(), V.flatten(), b.flatten()]).repeat(T)
    if kind == "hessian":
        H = hessian(lambda f: untied_loss(model, x, y, *split(f), C, c))(tied).numpy()
    else:

        def logits(f):
            Ws, Vs, bs = split(f)
            h = torch.zeros(x.shape[0], 2, dtype=x.dtype)
            for t in range(T):
                h = h @ model.R.T + model.gamma * torch.tanh(
                    h @ Ws[t].T + x[:, t] @ Vs[t].T + bs[t]
                )
            return h @ C.T + c

        out = logits(tied)
        J = jacrev(logits)(tied).reshape(-1, tied.numel())
        Hl = hessian(lambda o: F.cross_entropy(o.reshape(out.shape), y))(out.reshape(-1))
        H = (J.T @ Hl @ J).numpy()
    P = sum(sizes)
    for i in range(vectors.shape[1]):
        v = vectors[:, i]
        rows = H.reshape(T, P, T, P) @ v  # (T, P, T): Σ_q H_{sp,tq} v_q
        expected = np.einsum("p,spt->s", v, rows)
        np.testing.assert_allclose(got.recurrent[i], expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_block_matrix_and_bins_sum_to_the_whole(kind):
    model, (x, y) = wcrnn(hidden=3), sequences(T=6)
    op = CurvatureOperator(model, (x, y), kind=kind)
    top = op.eigenpairs(1)
    v = top.eigenvectors[:, 0]
    per_step = op.layer_contributions(v)
    M = op.block_matrix(v)
    np.testing.assert_allclose(M, M.T, atol=1e-14)
    np.testing.assert_allclose(M.sum(), top.eigenvalues[0], rtol=1e-9)
    np.testing.assert_allclose(
        M.sum(1), np.r_[per_step.recurrent[0], per_step.readout[0]], rtol=1e-9, atol=1e-14
    )
    binned = op.layer_contributions(v, bins=3)
    np.testing.assert_array_equal(binned.bin_edges, [0, 2, 4, 6])
    np.testing.assert_allclose(
        binned.recurrent[0], per_step.recurrent[0].reshape(3, 2).sum(1), rtol=1e-9
    )
    np.testing.assert_allclose(binned.readout, per_step.readout, rtol=1e-9)
    ds = per_step.to_xarray()
    assert ds["recurrent"].dims == ("direction", "layer") and ds["layer"].attrs["units"] == "step"


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_loss_time_contributions(kind):
    model = wcrnn(readout="sequence")
    x, y = sequences(T=4, readout="sequence")
    op = CurvatureOperator(model, (x, y), kind=kind)
    v = op.eigenpairs(1).eigenvectors
    contrib = op.loss_time_contributions(v)
    assert contrib.shape == (1, 4)
    np.testing.assert_allclose(contrib.sum(), op.eigenpairs(1).eigenvalues[0], rtol=1e-9)
    # the curvature of the loss at time τ alone: weights 1 at τ, 0 elsewhere (N stays the total)
    for tau in range(4):

        def loss_at(o, t, tau=tau):
            terms = F.cross_entropy(o.reshape(-1, 2), t.reshape(-1), reduction="none").reshape(
                t.shape
            )
            return terms[:, tau]

        only = CurvatureOperator(model, (x, y), loss_at, kind=kind)
        vv = v[:, 0]
        scale = 4  # N counts one term per sample there
        np.testing.assert_allclose(contrib[0, tau], vv @ only.dense() @ vv / scale, rtol=1e-8)


@pytest.mark.parametrize("r", [0.8, 0.9, 1.0])
def test_layer_contributions_decay_like_the_residual(r):
    """WCRNN eq. 15: for R = r·I and weak coupling, the contribution of unrolled layer s to the
    top GGN eigenvalue scales like r^(T−s), i.e. its log falls at rate log r per step of lag,
    up to the first-order weak-coupling bound 2γ‖W‖₂/r on the per-step rate."""
    torch.manual_seed(0)
    gamma = 0.02
    model = WCRNN(1, 8, 3, residual=torch.eye(8) * r, gamma=gamma).double()
    x, y = torch.randn(32, 30, 1, dtype=torch.float64), torch.randint(0, 3, (32,))
    names = ["recurrent.weight", "encoder.weight", "encoder.bias"]
    op = CurvatureOperator(model, (x, y), kind="ggn", parameters=names)
    c = op.layer_contributions(op.eigenpairs(1).eigenvectors)
    slope = np.polyfit(c.lag, np.log(np.abs(c.recurrent[0])), 1)[0]
    bound = 2 * gamma * float(torch.linalg.matrix_norm(model.recurrent.weight, 2)) / r
    assert abs(slope - np.log(r)) < bound


def test_loss_time_contributions_refuse_a_readout_of_the_last_step():
    # mse per-term losses of a last-step readout are (batch, outputs): no time axis to split
    model = wcrnn()
    x, _ = sequences(T=2)
    y = torch.randn(x.shape[0], 2, dtype=torch.float64)  # outputs = 2 = T: the shapes agree
    op = CurvatureOperator(model, (x, y), "mse")
    with pytest.raises(ValueError, match="needs a sequence loss"):
        op.loss_time_contributions(np.ones(op.num_params))


def test_layer_lags_count_from_zero_at_the_last_step_like_the_other_lag_axes():
    model = wcrnn()
    x, y = sequences(T=5)
    op = CurvatureOperator(model, (x, y), kind="ggn")
    v = np.ones(op.num_params)
    np.testing.assert_array_equal(op.layer_contributions(v).lag, [4, 3, 2, 1, 0])
    np.testing.assert_array_equal(op.layer_contributions(v, bins=5).lag, [4, 3, 2, 1, 0])
    np.testing.assert_array_equal(
        op.layer_contributions(v).lag, gradient_propagation(model, x, y).lags
    )
    edges = op.layer_contributions(v, bins=2).bin_edges  # a bin's lag: its steps' mean lag
    expected = [np.mean(4 - np.arange(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_array_equal(op.layer_contributions(v, bins=2).lag, expected)


def test_temporal_rates_take_single_step_contributions_and_refuse_bins():
    model = wcrnn()
    x, y = sequences(T=6)
    op = CurvatureOperator(model, (x, y), kind="ggn")
    v = op.eigenpairs(1).eigenvectors
    parts = op.layer_contributions(v)
    from_object = temporal_effective_rates(parts, lr=0.1)
    np.testing.assert_array_equal(from_object.rates, 0.1 * parts.recurrent)
    np.testing.assert_array_equal(from_object.lags, parts.lag)
    with pytest.raises(ValueError, match="a rate per step"):  # a bin's rate is not per step
        temporal_effective_rates(op.layer_contributions(v, bins=3), lr=0.1)


@pytest.mark.parametrize("kind", ["ggn", "hessian"])
def test_a_learned_initial_state_counts_in_the_contributions(kind):
    class LearnedInitialState(torch.nn.Module):  # the protocol, with a trainable x_0
        def __init__(self):
            super().__init__()
            self.cell, self.head = torch.nn.RNNCell(2, 3), torch.nn.Linear(3, 1)
            self.h0 = torch.nn.Parameter(torch.randn(3))

        def initial_state(self, inputs):
            return self.h0.expand(inputs.shape[0], -1)

        def step(self, x, u):
            return self.cell(u, x)

        def output(self, states, inputs):
            return self.head(states[:, -1])

        def forward(self, inputs):
            x = self.initial_state(inputs)
            for t in range(inputs.shape[1]):
                x = self.step(x, inputs[:, t])
            return self.output(x[:, None], inputs)

    torch.manual_seed(0)
    model = LearnedInitialState().double()
    with torch.no_grad():
        model.cell.weight_hh.mul_(3)  # x_0 matters to the loss
    x, y = torch.randn(8, 2, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    op = CurvatureOperator(model, (x, y), "mse", kind=kind)
    pairs = op.eigenpairs(k=2)
    parts = op.layer_contributions(pairs.eigenvectors)
    np.testing.assert_allclose(parts.total, pairs.eigenvalues, rtol=1e-9)  # it lost x_0's share
