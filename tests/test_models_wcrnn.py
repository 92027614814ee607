"""WCRNN modules, residual constructors and the weak-coupling prediction."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit
from lyapkit.theory import memory_regime, residual_exponents
from lyapkit.trainers.models import WCRNN, residuals

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("torch_float64"),
]


def _run(model, inputs, state, reference):
    """Readout, parameter gradients and state gradient of a quadratic loss."""
    model.zero_grad()
    state = state.clone().requires_grad_(True)
    if reference:
        with model.reference_path():
            y = model(inputs, state)
    else:
        y = model(inputs, state)
    (y**2).sum().backward()
    return y.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}, state.grad


@pytest.mark.parametrize("variant", ["linear", "A", "B"])
@pytest.mark.parametrize("train_residual", [False, True])
def test_fast_path_equals_reference_loop(variant, train_residual):
    torch.manual_seed(0)
    R = residuals.rotational(6, [0.3, 1.1, 2.0], 0.95)
    model = WCRNN(3, 6, 2, "sequence", residual=R, gamma=np.linspace(0.02, 0.1, 6),
                  variant=variant, train_residual=train_residual)  # fmt: skip
    inputs, state = torch.randn(4, 11, 3), torch.randn(4, 6)
    fast, reference = _run(model, inputs, state, False), _run(model, inputs, state, True)
    torch.testing.assert_close(fast[0], reference[0], rtol=0, atol=1e-12)
    assert fast[1].keys() == reference[1].keys()
    assert ("R" in fast[1]) == train_residual
    for name in fast[1]:
        torch.testing.assert_close(fast[1][name], reference[1][name], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(fast[2], reference[2], rtol=1e-10, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 7),
    m=st.integers(1, 3),
    T=st.integers(1, 20),
    variant=st.sampled_from(["linear", "A", "B"]),
    seed=st.integers(0, 2**16),
)
def test_fast_path_property(n, m, T, variant, seed):
    torch.manual_seed(seed)
    model = WCRNN(m, n, 1, "last", residual=torch.randn(n, n) / n**0.5, gamma=0.3, variant=variant)
    inputs, state = torch.randn(2, T, m), torch.randn(2, n)
    fast, reference = _run(model, inputs, state, False), _run(model, inputs, state, True)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-12, atol=1e-12)
    for name in fast[1]:
        torch.testing.assert_close(fast[1][name], reference[1][name], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("gamma", [0.07, np.linspace(0.01, 0.2, 5)])
def test_type_b_equals_nn_rnn_with_coupled_recurrent_matrix(gamma):
    """Type B is the Elman RNN with W_hh = R + γW, W_ih = γV, bias γb (the paper's claim)."""
    torch.manual_seed(1)
    R = residuals.random_orthogonal(5, seed=3)
    model = WCRNN(2, 5, 1, "sequence", residual=R, gamma=gamma, variant="B")
    g = torch.as_tensor(np.broadcast_to(gamma, (5,)))
    rnn = torch.nn.RNN(2, 5, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.as_tensor(R) + g[:, None] * model.recurrent.weight)
        rnn.weight_ih_l0.copy_(g[:, None] * model.encoder.weight)
        rnn.bias_ih_l0.copy_(g * model.encoder.bias)
        rnn.bias_hh_l0.zero_()
    inputs = torch.randn(3, 50, 2)
    expected, _ = rnn(inputs)
    torch.testing.assert_close(model.states(inputs), expected, rtol=0, atol=1e-10)
    with model.reference_path():
        torch.testing.assert_close(model.states(inputs), expected, rtol=0, atol=1e-10)


def test_initialisation_is_pytorch_default_linear():
    torch.manual_seed(7)
    model = WCRNN(3, 8, 4)
    torch.manual_seed(7)
    decoder, encoder, recurrent = (
        torch.nn.Linear(8, 4),
        torch.nn.Linear(3, 8),
        torch.nn.Linear(8, 8, bias=False),
    )
    torch.testing.assert_close(model.decoder.weight, decoder.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.encoder.weight, encoder.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.encoder.bias, encoder.bias, rtol=0, atol=0)
    torch.testing.assert_close(model.recurrent.weight, recurrent.weight, rtol=0, atol=0)
    assert {name for name, _ in model.named_parameters()} == {
        "encoder.weight",
        "encoder.bias",
        "recurrent.weight",
        "decoder.weight",
        "decoder.bias",
    }
    torch.testing.assert_close(model.R, torch.eye(8), rtol=0, atol=0)


def test_readout_shapes_and_state_argument():
    model = WCRNN(2, 4, 3, "last")
    inputs = torch.randn(5, 7, 2)
    assert model(inputs).shape == (5, 3)
    seq = WCRNN(2, 4, 3, "sequence")
    assert seq(inputs).shape == (5, 7, 3)
    states = model.states(inputs)
    continued = model.states(inputs[:, 3:], states[:, 2])
    torch.testing.assert_close(continued, states[:, 3:], rtol=0, atol=1e-14)


@pytest.mark.parametrize("variant", ["linear", "A", "B"])
def test_as_map_jacobian_equals_autodiff_of_step(variant):
    torch.manual_seed(2)
    model = WCRNN(3, 5, 1, residual=residuals.heterogeneous(5, 0.9, 0.1, seed=0),
                  gamma=np.linspace(0.05, 0.5, 5), variant=variant)  # fmt: skip
    system = model.as_map()
    assert isinstance(system, lyapkit.WCRNNMap) and system.input_dim == 3
    x, u = torch.randn(5), torch.randn(3)
    expected = torch.func.jacrev(model.step)(x, u)
    J = system.jacobian(x.numpy(), u.numpy())
    np.testing.assert_allclose(J, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(system.step(x.numpy(), u.numpy()), model.step(x, u).detach().numpy(),
                               rtol=1e-13, atol=1e-15)  # fmt: skip


def test_callable_residual_uses_autodiff_map_and_reference_loop():
    torch.manual_seed(3)
    residual = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())
    model = WCRNN(2, 4, 1, "sequence", residual=residual, gamma=0.1)
    assert any(name.startswith("residual_fn.") for name, _ in model.named_parameters())
    inputs = torch.randn(3, 6, 2)
    torch.testing.assert_close(model.states(inputs), model.loop_states(inputs, torch.zeros(3, 4)))
    system = model.as_map()
    assert system.jacobian_method == "autodiff"
    x, u = torch.randn(4), torch.randn(2)
    torch.testing.assert_close(system.jacobian(x, u), torch.func.jacrev(model.step)(x, u))
    with pytest.raises(ValueError, match="callable residual"):
        model.theory()


# --- residual constructors -------------------------------------------------------------------


def _sorted_eigs(R):
    eig = np.linalg.eigvals(R)
    return eig[np.lexsort((eig.imag, eig.real))]


def test_homogeneous_and_heterogeneous_spectra():
    np.testing.assert_allclose(np.linalg.eigvals(residuals.homogeneous(4, 0.8)), 0.8)
    R = residuals.heterogeneous(1000, 0.9, 0.05, seed=4)
    r = np.diag(R)
    assert np.array_equal(R, np.diag(r)) and r.min() >= 0.85 and r.max() <= 0.95
    # uniform on [0.85, 0.95]: the mean is within 5 standard errors of 0.9
    assert abs(r.mean() - 0.9) < 5 * 0.1 / np.sqrt(12 * 1000)
    np.testing.assert_array_equal(R, residuals.heterogeneous(1000, 0.9, 0.05, seed=4))


@pytest.mark.parametrize("n", [6, 7])
def test_rotational_spectrum_per_block(n):
    phis = np.array([0.2, 1.0, 2.5])
    R = residuals.rotational(n, phis, r=0.9)
    expected = np.concatenate([0.9 * np.exp(1j * phis), 0.9 * np.exp(-1j * phis), [0.9] * (n % 2)])
    np.testing.assert_allclose(_sorted_eigs(R), _sorted_eigs(np.diag(expected)), atol=1e-12)
    single = residuals.rotational(n, 2 * np.pi / 28)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(single)), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.sort(np.abs(np.angle(np.linalg.eigvals(single))))[n % 2 :],
                               2 * np.pi / 28, atol=1e-12)  # fmt: skip


def test_informed_heterogeneity():
    R, gamma = residuals.informed(8, (0.1, 0.5), (0.9, 0.99), (0.01, 0.05), seed=5)
    assert gamma.shape == (8,) and gamma.min() >= 0.01 and gamma.max() <= 0.05
    for i in range(4):
        block = R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2]
        radii = np.linalg.norm(block, axis=0)  # R = O D: column norms are the r_i
        assert np.all((radii >= 0.9) & (radii <= 0.99))
        rotation = block / radii
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(2), atol=1e-12)
        angle = np.arctan2(rotation[1, 0], rotation[0, 0])
        assert 0.1 <= angle <= 0.5
    off_block = R.copy()
    for i in range(4):
        off_block[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = 0
    assert not off_block.any()


def test_random_orthogonal():
    R = residuals.random_orthogonal(9, seed=6)
    np.testing.assert_allclose(R.T @ R, np.eye(9), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(R)), 1.0, atol=1e-12)
    np.testing.assert_array_equal(R, residuals.random_orthogonal(9, seed=6))
    assert not np.allclose(R, residuals.random_orthogonal(9, seed=7))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: residuals.homogeneous(0), "n must"),
        (lambda: residuals.rotational(6, [0.1, 0.2]), "phi must"),
        (lambda: residuals.heterogeneous(4, 0.9, -0.1), "delta must"),
        (lambda: residuals.informed(4, (0.5, 0.1), (0.9, 1), (0.01, 0.1)), "phi_range"),
        (lambda: WCRNN(1, 4, 1, variant="C"), "variant"),
        (lambda: WCRNN(1, 4, 1, gamma=np.ones(3)), "gamma"),
        (lambda: WCRNN(1, 4, 1, residual=np.eye(3)), "residual"),
        (lambda: WCRNN(1, 4, 1, residual="identity"), "residual"),
        (lambda: WCRNN(0, 4, 1), "input_size"),
        (lambda: WCRNN(1, None, 1), "hidden_size"),
        (lambda: WCRNN(1, 4.5, 1), "hidden_size"),
        (lambda: residuals.informed(4, 1.0, (0.9, 1), (0.01, 0.1)), "phi_range"),
        (lambda: WCRNN(1, 4, 1, readout="all"), "readout"),
        (lambda: WCRNN(2, 4, 1)(torch.randn(3, 5, 1)), "inputs"),
        (lambda: WCRNN(2, 4, 1)(torch.randn(3, 5, 2), torch.zeros(3, 5)), "state"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --- theory ------------------------------------------------------------------------------------


def test_regime_and_exponents_of_homogeneous_residuals():
    for r, regime in [(0.9, "sub-critical"), (1.0, "critical"), (1.1, "super-critical")]:
        prediction = WCRNN(1, 4, 1, residual=residuals.homogeneous(4, r)).theory()
        assert prediction.regime == regime == memory_regime(residuals.homogeneous(4, r))
        np.testing.assert_allclose(prediction.exponents, np.log(r), atol=1e-15)
    np.testing.assert_allclose(
        residual_exponents(np.diag([0.5, 2.0, -1.0])), np.log([2.0, 1.0, 0.5])
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_critical_rotation_stays_critical_in_the_precision_it_is_stored_in(dtype):
    # float32 cos φ, sin φ move |eig(R)| off 1 by ~1e-8: more than a float64 tolerance
    for R in (residuals.rotational(8, 2 * np.pi / 28, r=1.0), residuals.random_orthogonal(8, 0)):
        model = WCRNN(1, 8, 2, residual=R).to(dtype)
        assert model.theory().regime == "critical" == memory_regime(R.astype(np.float32))
    for r, regime in [(1 - 1e-4, "sub-critical"), (1 + 1e-4, "super-critical")]:
        R = residuals.rotational(8, 2 * np.pi / 28, r=r)
        assert WCRNN(1, 8, 2, residual=R).to(dtype).theory().regime == regime
    assert memory_regime(np.eye(2) * (1 + 1e-8)) == "super-critical"  # float64: 1e-9
    with pytest.raises(ValueError, match="tol"):
        memory_regime(np.eye(2), tol=-1)


@pytest.mark.parametrize(
    "variant, R",
    [
        ("linear", residuals.heterogeneous(6, 0.9, 0.08, seed=1)),
        ("linear", residuals.rotational(6, [0.2, 0.7, 1.3], 0.97)),
        ("linear", 0.95 * residuals.random_orthogonal(6, seed=2)),
        ("linear", residuals.informed(6, (0.1, 1.0), (0.9, 0.99), (0.01, 0.1), seed=3)[0]),
        ("A", residuals.rotational(6, 0.4, 0.9)),
        ("B", residuals.heterogeneous(6, 0.85, 0.1, seed=4)),
    ],
)
def test_measured_exponents_approach_theory_as_coupling_vanishes(variant, R):
    """|λ_i − log|eig_i R|| shrinks with γ, within the first-order bound γ ‖W‖₂ / min|eig R| (×2 for
    the finite-sample error): each Jacobian is R + γ D W with ‖D‖ ≤ 1."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((2100, 2))
    deviations = []
    for gamma in (0.1, 0.01, 0.001):
        torch.manual_seed(0)
        model = WCRNN(2, 6, 1, residual=R, gamma=gamma, variant=variant)
        spectrum = lyapkit.lyapunov_spectrum(model.as_map(), steps=2000, transient=100,
                                             inputs=inputs, backend="numpy", seed=0)  # fmt: skip
        prediction = model.theory()
        assert prediction.regime == "sub-critical"
        deviation = np.max(np.abs(spectrum.exponents - prediction.exponents))
        W = model.recurrent.weight.detach().numpy()
        bound = 2 * gamma * np.linalg.norm(W, 2) / np.min(np.abs(np.linalg.eigvals(R)))
        assert deviation <= bound, (gamma, deviation, bound)
        deviations.append(deviation)
    # γ dominates the error from 0.1 to 0.01; below, the finite-sample error (~1/steps) takes over
    assert deviations[1] < deviations[0]


def test_residual_and_gamma_tensors_are_copied_out_of_the_callers_graph():
    R = torch.eye(3).requires_grad_()
    model = WCRNN(2, 3, 1, residual=R, gamma=torch.tensor(0.1, requires_grad=True))
    assert model.R.grad_fn is None and not model.R.requires_grad and model.gamma.grad_fn is None
    model(torch.randn(2, 4, 2)).sum().backward()
    assert R.grad is None
    import copy

    copy.deepcopy(model)  # a non-leaf buffer would make this raise
    with pytest.raises(ValueError, match="residual must be real"):
        WCRNN(2, 3, 1, residual=np.eye(3) * (1 + 1j))


def test_trainable_gamma_falls_back_to_the_reference_loop():
    model = WCRNN(2, 3, 1, gamma=0.2)
    model.gamma.requires_grad_(True)
    model(torch.randn(2, 5, 2)).sum().backward()
    assert model.gamma.grad is not None and torch.all(torch.isfinite(model.gamma.grad))


def test_fast_paths_refuse_double_backward_clearly():
    model = WCRNN(2, 3, 1)
    loss = model(torch.randn(2, 5, 2)).sum()
    (grad,) = torch.autograd.grad(loss, model.recurrent.weight, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        grad.sum().backward()


def test_mismatched_dtypes_are_named():
    model = WCRNN(2, 3, 1)
    with pytest.raises(ValueError, match="inputs must have the model's dtype"):
        model(torch.randn(2, 5, 2, dtype=torch.float32))
    with pytest.raises(ValueError, match="state must have the dtype"):
        model(torch.randn(2, 5, 2), torch.zeros(2, 3, dtype=torch.float32))


def test_residual_constructors_refuse_bad_numbers_by_name():
    with pytest.raises(ValueError, match="radii needs n // 2 \\+ 1 = 2"):
        residuals.rotation_blocks(np.array([0.0]), np.array([0.5]), 3)  # no 1×1 radius
    with pytest.raises(ValueError, match="delta"):
        residuals.heterogeneous(3, 0.9, np.nan)
    with pytest.raises(ValueError, match="r0"):
        residuals.heterogeneous(3, np.inf, 0.1)
    with pytest.raises(ValueError, match="r"):
        residuals.homogeneous(2, np.nan)
