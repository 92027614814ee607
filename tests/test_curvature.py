"""Curvature operators (``lyapkit.curvature``) against dense float64 matrices built independently
with torch.func.

References: the Hessian of the data-set loss by ``torch.func.hessian``; the GGN as ``JᵀH_ℓJ`` from
``jacrev`` of the outputs and the Hessian of the loss in the outputs. The unrolled decomposition is
in ``test_unrolled.py``, the estimators in ``test_eigensolvers.py``, ``test_hutchpp.py`` and
``test_slq.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from cases import sequences, wcrnn  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.func import functional_call, hessian, jacrev  # noqa: E402

import lyapkit as lk  # noqa: E402
from lyapkit.curvature import CurvatureOperator  # noqa: E402
from lyapkit.trainers.models import ElmanRNN  # noqa: E402

F = torch.nn.functional


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
    np.testing.assert_allclose(op.to_scipy().matmat(V), ref @ V, rtol=1e-6, atol=1e-12)


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


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_a_grus_bias_null_directions_are_its_reset_and_update_gates(kind):
    # r = σ(W_ir x + b_ir + W_hr h + b_hr) sums the biases; n = tanh(… + b_in + r ⊙ (… + b_hn))
    # does not: 2H of the 3H entries are exact null directions
    torch.manual_seed(0)
    H = 3
    model = lk.adapt(torch.nn.GRU(2, H, batch_first=True), head=torch.nn.Linear(H, 2))
    x, y = sequences()
    op = CurvatureOperator(model.double(), (x, y), kind=kind)
    assert op.redundant_parameters() == [("rnn.bias_ih_l0", "rnn.bias_hh_l0")]
    N = op.null_directions()
    assert N.shape == (op.num_params, 2 * H)
    start = op.parameter_names.index("rnn.bias_ih_l0")
    offset = sum(int(np.prod(s)) for s in op.parameter_shapes[:start])
    np.testing.assert_array_equal(np.flatnonzero(N.any(1))[: 2 * H], offset + np.arange(2 * H))
    C = op.dense()
    assert np.abs(C @ N).max() < 1e-12 * np.abs(C).max()
    new_gate = np.zeros(op.num_params)  # the new gate's biases are no null direction
    new_gate[offset + 2 * H], new_gate[offset + 3 * H + 2 * H] = 1, -1
    assert np.abs(C @ new_gate).max() > 1e-6 * np.abs(C).max()


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


def test_operators_of_one_model_combine():
    """The second-order term ``H − G`` of the network and Adam's preconditioned Hessian, as
    compositions of operators, against their dense matrices."""
    import lyapkit as lk

    model, (x, y) = wcrnn(hidden=2), sequences(T=3)
    H = CurvatureOperator(model, (x, y), kind="hessian")
    G = CurvatureOperator(model, (x, y), kind="ggn")
    np.testing.assert_allclose((H - G).dense(), H.dense() - G.dense(), rtol=1e-12, atol=1e-14)
    P = torch.rand(H.num_params, dtype=torch.float64) + 0.5
    pre = lk.PreconditionedOperator(H, P)
    d = 1 / np.sqrt(P.numpy())
    np.testing.assert_allclose(pre.dense(), d[:, None] * H.dense() * d, rtol=1e-10, atol=1e-14)
    assert (pre @ torch.ones(H.num_params)).dtype == torch.float32


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
