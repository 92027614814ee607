"""Every model honours the RecurrentModel contract: fast path = reference loop (values and
gradients), as_map() = autodiff of step, and lyapunov_spectrum runs on the map on every backend
that can run it."""

import numpy as np
import pytest
import torch

import lyapkit
from lyapkit.trainers.models import (
    GRU,
    LRU,
    LSTM,
    WCRNN,
    BlockDiagonalRNN,
    ComplexDiagonalRNN,
    DenseLinearRNN,
    ElmanRNN,
    RealDiagonalRNN,
    RecurrentModel,
    linear_teacher,
    residuals,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# State sizes 4 and 8 only (8 for the WCRNNs, 4 for the others): the numba backend compiles its
# loop once per process for each map's kernels and each (dimension, number of exponents), several
# seconds each, and test_backends, test_models_gated and test_models_linear use the same ones.
FACTORIES = {
    "wcrnn-linear": lambda: WCRNN(2, 8, 3, residual=residuals.rotational(8, 0.4, 0.95)),
    "wcrnn-A": lambda: WCRNN(2, 8, 3, variant="A", gamma=np.linspace(0.1, 0.4, 8)),
    "wcrnn-B": lambda: WCRNN(2, 8, 3, variant="B", residual=residuals.random_orthogonal(8, seed=0)),
    "wcrnn-callable": lambda: WCRNN(2, 4, 3, residual=torch.nn.Linear(4, 4), variant="A"),
    "elman": lambda: ElmanRNN(2, 4, 3),
    "elman-wcr": lambda: ElmanRNN(2, 4, 3, residual=residuals.homogeneous(4, 0.9), gamma=0.1),
    "lstm": lambda: LSTM(2, 4, 3),
    "gru": lambda: GRU(2, 4, 3),
    "lru": lambda: LRU(2, 2, 3, seed=0),  # complex units: state 4
    "complex-polar": lambda: ComplexDiagonalRNN(2, 2, 3, parametrization="polar", seed=0),
    "complex-unnormalised": lambda: ComplexDiagonalRNN(2, 2, 3, normalization=False, seed=0),
    "real-diagonal": lambda: RealDiagonalRNN(2, 4, 3, seed=0),
    "block-diagonal": lambda: BlockDiagonalRNN(2, 4, 3, seed=0),
    "dense-linear": lambda: DenseLinearRNN(2, 4, 3, seed=0),
    "teacher": lambda: linear_teacher(2, 4, 3, nu0=0.5, seed=0),
}


@pytest.fixture(params=sorted(FACTORIES), name="model")
def model_fixture(request):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    model = FACTORIES[request.param]().double()
    yield model
    torch.set_default_dtype(previous)


def test_is_a_recurrent_model(model):
    assert isinstance(model, RecurrentModel)
    assert model.input_size == 2 and model.output_size == 3


def test_fast_path_equals_reference_loop_with_gradients(model):
    inputs = torch.randn(3, 13, 2)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def run(reference: bool):
        if reference:
            with model.reference_path():
                states = model.states(inputs)
                y = model(inputs)
        else:
            states, y = model.states(inputs), model(inputs)
        grads = torch.autograd.grad((y**2).sum(), trainable) if trainable else ()
        return states.detach(), y.detach(), grads

    fast, reference = run(False), run(True)
    assert fast[0].shape == (3, 13, model.state_size)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast[1], reference[1], rtol=1e-10, atol=1e-12)
    for g_fast, g_ref in zip(fast[2], reference[2], strict=True):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-8, atol=1e-10)


def _graph_nodes(tensor):
    names, stack, seen = set(), [tensor.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(parent for parent, _ in node.next_functions)
    return names


def test_reference_path_of_a_last_readout_keeps_only_the_last_state(model):
    """Double backward through ``s_T`` sliced from stacked states costs O(T²); the reference path
    of a ``readout="last"`` model loops without stacking."""
    if model.readout != "last":
        pytest.skip("a sequence readout needs every state")
    inputs = torch.randn(2, 5, 2)
    with model.reference_path():
        assert "StackBackward0" not in _graph_nodes(model(inputs))
    sequence = WCRNN(2, 4, 3, readout="sequence").double()
    with sequence.reference_path():
        assert "StackBackward0" in _graph_nodes(sequence(inputs))  # the check can fail


def test_as_map_is_the_cell_with_exact_jacobian(model):
    system = model.as_map()
    assert system.dim == model.state_size and system.input_dim == model.input_size
    x, u = 0.5 * torch.randn(model.state_size), torch.randn(2)
    expected_step = model.step(x, u).detach()
    expected_J = torch.func.jacrev(model.step)(x, u).detach()
    if "numpy" in system.namespaces:
        x_, u_ = x.numpy(), u.numpy()
        np.testing.assert_allclose(
            system.step(x_, u_), expected_step.numpy(), rtol=1e-12, atol=1e-14
        )
        np.testing.assert_allclose(
            system.jacobian(x_, u_), expected_J.numpy(), rtol=1e-10, atol=1e-13
        )
    else:
        torch.testing.assert_close(system.step(x, u), expected_step, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(system.jacobian(x, u), expected_J, rtol=1e-10, atol=1e-13)


def test_spectrum_of_the_map_on_every_capable_backend(model):
    system = model.as_map()
    inputs = np.random.default_rng(1).standard_normal((60, 2))
    names = ["numpy", "numba", "torch"] if "numpy" in system.namespaces else ["torch"]
    results = [
        lyapkit.lyapunov_spectrum(
            system,
            steps=60,
            inputs=inputs,
            x0=np.full(system.dim, 0.1),
            backend=name,
            seed=0,
            history=False,
        )  # fmt: skip
        for name in names
    ]
    for result in results:
        assert result.exponents.shape == (system.dim,) and np.all(np.isfinite(result.exponents))
        np.testing.assert_allclose(result.exponents, results[0].exponents, rtol=0, atol=1e-9)
