"""Curvature operators against dense float64 matrices built independently with torch.func.

References: the Hessian of the data-set loss by ``torch.func.hessian``; the GGN as ``JᵀH_ℓJ`` from
``jacrev`` of the outputs and the Hessian of the loss in the outputs; the unrolled decomposition
against a WCRNN written out with one weight copy per step, differentiated densely.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.sparse.linalg import LinearOperator, aslinearoperator  # noqa: E402
from torch.func import functional_call, hessian, jacrev  # noqa: E402

from lyapkit.curvature import (  # noqa: E402
    CurvatureOperator,
    hutchpp_trace,
    inverse_participation_ratio,
    lanczos_quadrature,
)
from lyapkit.losses import mean_loss  # noqa: E402
from lyapkit.trainers.models import WCRNN, ElmanRNN  # noqa: E402

F = torch.nn.functional


def wcrnn(seed=0, readout="last", hidden=3, gamma=0.4):
    torch.manual_seed(seed)
    R = 0.9 * torch.linalg.qr(torch.randn(hidden, hidden))[0]
    return WCRNN(2, hidden, 2, readout, residual=R, gamma=gamma).double()


def sequences(seed=1, batch=4, T=5, classes=2, readout="last"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, 2, generator=g, dtype=torch.float64)
    shape = (batch,) if readout == "last" else (batch, T)
    return x, torch.randint(0, classes, shape, generator=g)


def dense_reference(op, batches, loss):
    """Dense Hessian or GGN of the mean loss over all batches' terms, by torch.func."""
    flat0 = op.flatten(op.parameters())

    def outputs(flat, x):
        with op.model.reference_path():
            return functional_call(op.model, op.unflatten(flat), (x,))

    terms = {
        "cross_entropy": lambda o, y: F.cross_entropy(
            o.reshape(-1, o.shape[-1]), y.reshape(-1), reduction="sum"
        ),
        "mse": lambda o, y: ((o - y) ** 2).sum(),
    }[loss]
    n = sum(
        (y.numel() if loss == "cross_entropy" else outputs(flat0, x).numel()) for x, y in batches
    )
    total = np.zeros((op.num_params, op.num_params))
    for x, y in batches:
        if op.kind == "hessian":
            total += hessian(lambda f, x=x, y=y: terms(outputs(f, x), y))(flat0).numpy()
        else:
            out = outputs(flat0, x)
            J = jacrev(lambda f, x=x: outputs(f, x))(flat0).reshape(-1, op.num_params)
            H = hessian(lambda o, y=y, s=out.shape: terms(o.reshape(s), y))(out.reshape(-1))
            total += (J.T @ H @ J).numpy()
    return total / n


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_dense_operator_matches_torch_func(kind, loss):
    model = wcrnn()
    x, labels = sequences()
    y = labels if loss == "cross_entropy" else torch.randn(4, 2, dtype=torch.float64)
    op = CurvatureOperator(model, (x, y), loss, kind=kind)
    ref = dense_reference(op, [(x, y)], loss)
    np.testing.assert_allclose(op.dense(), ref, rtol=1e-6, atol=1e-12 * np.abs(ref).max())
    v = torch.randn(op.num_params, dtype=torch.float64)
    np.testing.assert_allclose((op @ v).numpy(), ref @ v.numpy(), rtol=1e-6, atol=1e-12)
    V = np.random.default_rng(0).standard_normal((op.num_params, 3))
    np.testing.assert_allclose(op.as_linear_operator().matmat(V), ref @ V, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_loader_with_unequal_batches_is_the_whole_data_set(kind):
    """Batches weighted by their number of terms: the operator of the full data set."""
    model = wcrnn(readout="sequence")
    x, y = sequences(batch=10, readout="sequence")
    loader = [(x[:5], y[:5]), (x[5:8], y[5:8]), (x[8:], y[8:])]
    whole = CurvatureOperator(model, (x, y), kind=kind).dense()
    np.testing.assert_allclose(
        CurvatureOperator(model, loader, kind=kind).dense(), whole, rtol=1e-9, atol=1e-14
    )
    ref = dense_reference(CurvatureOperator(model, loader, kind=kind), loader, "cross_entropy")
    np.testing.assert_allclose(whole, ref, rtol=1e-6, atol=1e-13)


def test_ggn_equals_hessian_for_a_linear_model_with_mse():
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 3).double()
    x, y = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 3, dtype=torch.float64)
    G = CurvatureOperator(model, (x, y), "mse", kind="ggn").dense()
    H = CurvatureOperator(model, (x, y), "mse", kind="hessian").dense()
    np.testing.assert_allclose(G, H, rtol=1e-12, atol=1e-14)
    # closed form: H = (2/(N·o)) (I_o ⊗ [x 1]ᵀ[x 1]) for weight rows then biases
    X = torch.cat([x, torch.ones(7, 1, dtype=torch.float64)], 1).numpy()
    block = 2 * X.T @ X / y.numel()
    ref = np.zeros((15, 15))
    for o in range(3):  # weight row o: coordinates 4o..4o+3; bias o: 12+o
        idx = [4 * o + i for i in range(4)] + [12 + o]
        ref[np.ix_(idx, idx)] = block
    np.testing.assert_allclose(G, ref, rtol=1e-12, atol=1e-14)


@settings(max_examples=6)
@given(
    seed=st.integers(0, 10_000),
    gamma=st.floats(0.05, 1.0),
    loss=st.sampled_from(["cross_entropy", "mse"]),
)
def test_ggn_is_positive_semidefinite(seed, gamma, loss):
    model = wcrnn(seed, gamma=gamma)
    x, labels = sequences(seed + 1)
    y = labels if loss == "cross_entropy" else torch.randn(4, 2, dtype=torch.float64)
    G = CurvatureOperator(model, (x, y), loss, kind="ggn").dense()
    eig = np.linalg.eigvalsh(G)
    assert eig.min() >= -1e-12 * max(eig.max(), 1e-30)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_eigenpairs_match_dense_decomposition(kind):
    model = wcrnn(hidden=4)
    x, y = sequences(batch=6)
    op = CurvatureOperator(model, (x, y), kind=kind)
    dense = op.dense()
    values, vectors = np.linalg.eigh(dense)
    top = op.eigenpairs(3)
    np.testing.assert_allclose(top.eigenvalues, values[::-1][:3], rtol=1e-7)
    overlap = np.abs(np.sum(top.eigenvectors * vectors[:, ::-1][:, :3], axis=0))
    np.testing.assert_allclose(overlap, 1, atol=1e-6)
    lanczos = op.eigenpairs(3, method="lanczos", tol=1e-10)
    np.testing.assert_allclose(lanczos.eigenvalues, values[::-1][:3], rtol=1e-8)
    magnitude = op.eigenpairs(2, which="LM")
    np.testing.assert_allclose(
        magnitude.eigenvalues, values[np.argsort(-np.abs(values))][:2], rtol=1e-6
    )
    bottom = op.eigenpairs(2, which="SA")
    np.testing.assert_allclose(bottom.eigenvalues, values[:2], rtol=1e-6, atol=1e-9)
    assert top.parameter_mass.shape == (3, len(op.parameter_names))
    np.testing.assert_allclose(top.parameter_mass.sum(1), 1, rtol=1e-12)
    ds = top.to_xarray()
    assert ds["eigenvalues"].attrs["units"] and list(ds["parameter"].values) == op.parameter_names


def test_inverse_participation_ratio():
    P = 50
    np.testing.assert_allclose(inverse_participation_ratio(np.eye(P)[:, 3]), [1.0])
    np.testing.assert_allclose(inverse_participation_ratio(np.ones(P)), [1 / P])
    V = np.random.default_rng(0).standard_normal((P, 4))
    ipr = inverse_participation_ratio(V)
    assert ((ipr >= 1 / P) & (ipr <= 1)).all()


# --- stochastic estimators on explicit matrices ---------------------------------------------------


def random_symmetric(P, seed=0):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((P, P)))[0]
    eig = np.concatenate([rng.uniform(5, 10, 3), rng.normal(0, 0.3, P - 3)])
    return (Q * eig) @ Q.T, eig


def test_hutchpp_exact_when_the_sketch_spans_the_space():
    A, eig = random_symmetric(12)
    assert hutchpp_trace(A, num_matvecs=36, seed=1) == pytest.approx(eig.sum(), rel=1e-10)


def test_hutchpp_is_unbiased():
    A, eig = random_symmetric(60)
    estimates = np.array([hutchpp_trace(A, num_matvecs=9, seed=s) for s in range(300)])
    stderr = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - eig.sum()) < 4 * stderr + 1e-12


def test_lanczos_quadrature_is_gauss_quadrature_of_each_probe():
    """With m steps, Σ_j w_j θ_j^k = qᵀA^k q exactly for k < 2m; weights sum to 1."""
    A, eig = random_symmetric(40, seed=2)
    m = 6
    sld = lanczos_quadrature(A, num_probes=5, lanczos_steps=m, seed=3)
    np.testing.assert_allclose(sld.weights.sum(1), 1, rtol=1e-12)
    rng = np.random.default_rng(3)  # the same probes
    probes = [rng.choice(np.array([-1.0, 1.0]), size=40) / np.sqrt(40) for _ in range(5)]
    for k in range(2 * m):
        exact = np.mean([q @ np.linalg.matrix_power(A, k) @ q for q in probes])
        assert sld.moment(k) == pytest.approx(exact, rel=1e-8, abs=1e-10)
    grid = np.linspace(eig.min() - 2, eig.max() + 2, 4001)
    assert np.trapezoid(sld.density(grid), grid) == pytest.approx(1, abs=1e-6)


def test_lanczos_quadrature_moments_match_the_spectrum():
    """Many probes: moments approach tr(A^k)/P within their sampling error."""
    A, eig = random_symmetric(30, seed=4)
    sld = lanczos_quadrature(aslinearoperator(A), num_probes=200, lanczos_steps=10, seed=5)
    per_probe = (sld.weights * sld.nodes**2).sum(1)
    stderr = per_probe.std(ddof=1) / np.sqrt(len(per_probe))
    assert abs(per_probe.mean() - np.mean(eig**2)) < 4 * stderr


def test_lanczos_breakdown_on_a_low_rank_operator():
    u = np.random.default_rng(0).standard_normal((20, 2))
    A = LinearOperator((20, 20), matvec=lambda x: u @ (u.T @ x), dtype=np.float64)
    sld = lanczos_quadrature(A, num_probes=3, lanczos_steps=10)
    np.testing.assert_allclose(sld.weights.sum(1), 1, rtol=1e-10)
    assert (sld.weights[:, 3:] == 0).all()  # Krylov spaces of dimension ≤ 3: early breakdown
    exact = np.r_[0.0, np.linalg.eigvalsh(u.T @ u)]
    used = sld.nodes[sld.weights > 1e-12]
    assert np.abs(used[:, None] - exact[None]).min(1).max() < 1e-8 * exact.max()


def test_operator_density_and_trace():
    model = wcrnn(hidden=3)
    x, y = sequences(batch=6)
    op = CurvatureOperator(model, (x, y), kind="ggn")
    dense = op.dense()
    assert op.trace(num_matvecs=3 * op.num_params) == pytest.approx(np.trace(dense), rel=1e-9)
    sld = op.spectral_density(num_probes=2, lanczos_steps=op.num_params, seed=4)
    rng = np.random.default_rng(4)  # the same probes: moments are their exact quadratic forms
    probes = rng.choice(np.array([-1.0, 1.0]), size=(2, op.num_params)) / np.sqrt(op.num_params)
    exact = np.mean([q @ dense @ q for q in probes])
    assert sld.moment(1) == pytest.approx(exact, rel=1e-6)
    assert sld.nodes.max() == pytest.approx(np.linalg.eigvalsh(dense).max(), rel=1e-8)


# --- decomposition over unrolled time ------------------------------------------------------------------


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


def test_redundant_biases_are_flagged_as_null_directions():
    torch.manual_seed(0)
    model = ElmanRNN(2, 3, 2).double()
    x, y = sequences()
    op = CurvatureOperator(model, (x, y), kind="hessian")
    assert op.redundant_parameters() == [("rnn.bias_ih_l0", "rnn.bias_hh_l0")]
    N = op.null_directions()
    assert N.shape == (op.num_params, 3)
    np.testing.assert_allclose(N.T @ N, np.eye(3), atol=1e-15)
    H = op.dense()
    assert np.abs(H @ N).max() < 1e-12 * np.abs(H).max()
    assert CurvatureOperator(wcrnn(), (x, y)).redundant_parameters() == []


def test_mean_loss_conventions_match_torch():
    out = torch.randn(5, 3, 4, dtype=torch.float64)
    labels = torch.randint(0, 4, (5, 3))
    assert mean_loss("cross_entropy", out, labels) == pytest.approx(
        float(F.cross_entropy(out.reshape(-1, 4), labels.reshape(-1)))
    )
    target = torch.randn_like(out)
    assert mean_loss("mse", out, target) == pytest.approx(float(F.mse_loss(out, target)))


def test_bad_input_is_refused_with_a_clear_error():
    model, (x, y) = wcrnn(), sequences()
    with pytest.raises(ValueError, match="kind must be"):
        CurvatureOperator(model, (x, y), kind="fisher")
    with pytest.raises(ValueError, match="not parameters of the model"):
        CurvatureOperator(model, (x, y), parameters=["nope"])
    with pytest.raises(TypeError, match="one-shot iterator"):
        CurvatureOperator(model, iter([(x, y)]))
    with pytest.raises(ValueError, match="loss must be one of"):
        CurvatureOperator(model, (x, y), "hinge")
    op = CurvatureOperator(model, (x, y))
    with pytest.raises(ValueError, match="raise max_size"):
        op.dense(max_size=5)
    with pytest.raises(ValueError, match="vectors must have shape"):
        op.matvec(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sequence loss"):
        op.loss_time_contributions(np.ones(op.num_params))
    with pytest.raises(ValueError, match="bins must be"):
        op.layer_contributions(np.ones(op.num_params), bins=99)
    with pytest.raises(TypeError, match="recurrent model"):
        lin = torch.nn.Linear(2, 2).double()
        CurvatureOperator(
            lin, (torch.randn(3, 2, dtype=torch.float64), torch.tensor([0, 1, 0]))
        ).layer_contributions(np.ones(6))
    with pytest.raises(ValueError, match="targets must be integer class labels"):
        CurvatureOperator(model, (x, torch.randn(4, 2, dtype=torch.float64))).dense()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cudnn_rnn_on_gpu_matches_cpu():
    """A fused cuDNN nn.RNN on the GPU: cuDNN is disabled for the passes, and the result matches."""
    torch.manual_seed(0)
    model = ElmanRNN(2, 4, 2).double()
    x, y = sequences()
    cpu = CurvatureOperator(model, (x, y), kind="hessian").dense()
    gpu = CurvatureOperator(model.cuda(), (x.cuda(), y.cuda()), kind="hessian").dense()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ["ElmanRNN", "LSTM", "GRU", "LRU"])
def test_every_model_family_through_its_reference_path(name):
    """Fused and scan fast paths are replaced by the differentiable loop for the passes."""
    import lyapkit.trainers.models as models

    torch.manual_seed(2)
    model = getattr(models, name)(2, 2, 2).double()
    x, y = sequences(batch=3, T=3)
    op = CurvatureOperator(model, (x, y), kind="hessian")
    ref = dense_reference(op, [(x, y)], "cross_entropy")
    np.testing.assert_allclose(op.dense(), ref, rtol=1e-6, atol=1e-12 * np.abs(ref).max())


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
