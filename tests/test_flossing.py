"""Differentiable finite-time Lyapunov exponents (lyapkit.flossing) and gradient flossing in the
trainer: gradients against central differences, values against lyapunov_spectrum, closed forms
of linear maps, the determinant identity over random networks, long windows, the trainer option
(validation, it moves the exponents to the target, exact resume)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import lyapkit  # noqa: E402
from lyapkit.flossing import finite_time_exponents, flossing_loss  # noqa: E402
from lyapkit.store import open_run  # noqa: E402
from lyapkit.trainers.config import ConfigError, validate_config  # noqa: E402
from lyapkit.trainers.models import WCRNN, ElmanRNN  # noqa: E402
from lyapkit.trainers.trainer import Trainer  # noqa: E402

F64 = torch.float64


def wcrnn6() -> WCRNN:
    """A 6-unit linear-residual WCRNN with a strong coupling (the Jacobian varies along the orbit)."""
    torch.manual_seed(0)
    R = 0.9 * np.linalg.qr(np.random.default_rng(1).standard_normal((6, 6)))[0]
    return WCRNN(2, 6, 1, residual=R, gamma=0.6).double()


def gru5() -> nn.Module:
    torch.manual_seed(2)
    return lyapkit.adapt(nn.GRU(2, 5, batch_first=True).double())


def drive(E: int, T: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(E, T, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))


# --- gradients and values --------------------------------------------------------------------


@pytest.mark.parametrize("make", [wcrnn6, gru5], ids=["WCRNN", "nn.GRU"])
def test_gradient_matches_central_differences(make):
    """d/dε L(θ + ε v) by central differences equals ⟨∇L, v⟩ along random directions, and per
    entry of the recurrent weights, in float64."""
    net = make()
    inputs = drive(2, 40)
    weights = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.7, -1.0]], dtype=F64)

    def loss() -> torch.Tensor:
        return (finite_time_exponents(net, inputs, 3, transient=5, seed=3) * weights).sum()

    net.zero_grad()
    loss().backward()
    params = [p for p in net.parameters() if p.grad is not None]  # the readout has no say
    assert len(params) >= 3
    grads = [p.grad.clone() for p in params]
    rng = torch.Generator().manual_seed(7)
    eps = 1e-6
    for _ in range(2):
        direction = [torch.randn(p.shape, dtype=F64, generator=rng) for p in params]
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p += eps * d
            up = loss().item()
            for p, d in zip(params, direction, strict=True):
                p -= 2 * eps * d
            down = loss().item()
            for p, d in zip(params, direction, strict=True):
                p += eps * d
        analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction, strict=True))
        assert (up - down) / (2 * eps) == pytest.approx(analytic, rel=1e-6, abs=1e-9)
    recurrent = dict(net.named_parameters())[
        "recurrent.weight" if make is wcrnn6 else "rnn.weight_hh_l0"
    ]
    g = dict(zip([id(p) for p in params], grads, strict=True))[id(recurrent)]
    for i, j in [(0, 1), (3, 2), (4, 4)]:
        with torch.no_grad():
            recurrent[i, j] += eps
            up = loss().item()
            recurrent[i, j] -= 2 * eps
            down = loss().item()
            recurrent[i, j] += eps
        assert (up - down) / (2 * eps) == pytest.approx(float(g[i, j]), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("make", [wcrnn6, gru5], ids=["WCRNN", "nn.GRU"])
def test_values_equal_lyapunov_spectrum(make):
    """The jvp path through the network's step equals the numpy backend's QR method on the
    network's analytic map (``as_map()``), member by member, for the same x0, inputs and seed."""
    net = make()
    E, T, n = 3, 60, net.state_size
    inputs = drive(E, T + 10, seed=1)
    x0 = 0.3 * torch.rand(E, n, dtype=F64, generator=torch.Generator().manual_seed(4))
    ours = finite_time_exponents(net, inputs, 4, transient=10, x0=x0, seed=5).detach().numpy()
    ref = lyapkit.lyapunov_spectrum(
        net.as_map(), steps=T, transient=10, x0=x0.numpy(), inputs=inputs.numpy(), k=4, seed=5,
        backend="numpy", history=False,
    )  # fmt: skip
    order = np.argsort(-ours.mean(0), kind="stable")
    np.testing.assert_allclose(ours[:, order], ref.member_exponents, rtol=1e-10, atol=1e-12)


def test_map_path_equals_lyapunov_spectrum_and_draws_the_same_start():
    """A built-in map on torch tensors (its analytic Jacobian): with x0 and basis drawn from the
    seed as lyapunov_spectrum draws them, the exponents are the same."""
    henon = lyapkit.Henon()
    ours = finite_time_exponents(henon, None, 2, steps=500, transient=50, seed=11)
    ref = lyapkit.lyapunov_spectrum(
        henon, steps=500, transient=50, ensemble=1, seed=11, backend="numpy", history=False
    )
    np.testing.assert_allclose(ours.numpy()[0], ref.member_exponents[0], rtol=1e-10)


# --- linear maps: closed forms ---------------------------------------------------------------


class Linear(nn.Module):
    """``x → O diag(a) Oᵀ x``: a normal matrix with eigenvalues ``a`` (``O = rotation``, orthogonal)."""

    def __init__(self, a: np.ndarray, rotation: np.ndarray):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=F64))
        self.register_buffer("rotation", torch.tensor(rotation, dtype=F64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation @ (self.a * (self.rotation.T @ x))


def test_diagonal_linear_map_gives_log_entries_and_inverse_gradients():
    """x → diag(a) x from the basis (e_1 … e_k), |a| descending: λ_i = log|a_i| over any window
    and ∂λ_i/∂a_j = δ_ij / a_j, exactly (autodiff Jacobians of a from_torch map)."""
    a = np.array([1.3, -0.9, 0.5, -0.2])
    module = Linear(a, np.eye(4))
    system = lyapkit.from_torch(module, dim=4)
    x0 = torch.ones(1, 4, dtype=F64)
    lam = finite_time_exponents(system, None, 3, steps=7, x0=x0, basis=torch.eye(4, 3, dtype=F64))[
        0
    ]
    np.testing.assert_allclose(lam.detach().numpy(), np.log(np.abs(a[:3])), rtol=1e-13)
    jac = torch.stack(
        [torch.autograd.grad(lam[i], module.a, retain_graph=True)[0] for i in range(3)]
    )
    expected = np.zeros((3, 4))
    expected[range(3), range(3)] = 1 / a[:3]
    np.testing.assert_allclose(jac.numpy(), expected, rtol=1e-12, atol=1e-14)


def test_normal_linear_map_tends_to_log_eigenvalues_over_long_windows():
    """A normal A = O diag(a) Oᵀ from a random basis: λ_i → log|a_i| and ∂λ_i/∂a_i → 1/a_i like
    1/T (the alignment of the basis costs O(1) in the sum)."""
    a = np.array([0.95, -0.7, 0.4])
    rotation = np.linalg.qr(np.random.default_rng(3).standard_normal((3, 3)))[0]
    module = Linear(a, rotation)
    T = 2000
    lam = finite_time_exponents(
        lyapkit.from_torch(module, dim=3), None, 2, steps=T, x0=torch.ones(3, dtype=F64), seed=1
    )[0]
    np.testing.assert_allclose(lam.detach().numpy(), np.log(np.abs(a[:2])), atol=10 / T)
    for i in range(2):
        grad = torch.autograd.grad(lam[i], module.a, retain_graph=True)[0].numpy()
        assert grad[i] == pytest.approx(1 / a[i], abs=10 / T)
        assert np.abs(np.delete(grad, i)).max() < 10 / T


@settings(max_examples=12)
@given(
    n=st.integers(2, 5),
    scale=st.floats(0.3, 2.5),
    seed=st.integers(0, 2**16),
)
def test_sum_of_all_exponents_is_the_mean_log_determinant(n, scale, seed):
    """Σ_i λ_i (k = n) = (1/T) Σ_t log|det J_t| for random small Elman networks, and the two
    sides have the same gradient: QR-and-jvp against dense jacrev Jacobians and slogdet."""
    torch.manual_seed(seed)
    net = ElmanRNN(2, n, 1).double()
    with torch.no_grad():
        net.rnn.weight_hh_l0.mul_(scale * math.sqrt(n))
    inputs = drive(2, 25, seed=seed)
    total = finite_time_exponents(net, inputs, n, seed=seed).sum(-1).mean()
    x, logdets = net.initial_state(inputs), []
    for t in range(inputs.shape[1]):
        u = inputs[:, t]
        J = torch.func.vmap(torch.func.jacrev(lambda s, v: net.step(s, v)))(x, u)
        logdets.append(torch.linalg.slogdet(J)[1])
        x = net.step(x, u)
    expected = torch.stack(logdets, 1).mean()
    assert float(total) == pytest.approx(float(expected), rel=1e-9, abs=1e-11)
    W = net.rnn.weight_hh_l0
    g1, g2 = (torch.autograd.grad(v, W)[0] for v in (total, expected))
    torch.testing.assert_close(g1, g2, rtol=1e-7, atol=1e-9)


# --- long windows, errors ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_a_300_step_window_has_finite_gradients(dtype):
    """λ ≈ log 0.3 ≈ −1.2 per step: the raw product J_300 ⋯ J_1 would be e^{−360}, far below
    float32's range (e^{−87}); the factorised one keeps the gradient finite."""
    torch.manual_seed(0)
    net = WCRNN(2, 16, 1, residual=0.3 * np.eye(16), gamma=0.2).to(dtype)
    lam = finite_time_exponents(net, drive(4, 300).to(dtype), 4, seed=0)
    assert (lam < -1).all()
    flossing_loss(lam).backward()
    for name in ("recurrent.weight", "encoder.weight", "encoder.bias"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all(), name
    assert net.recurrent.weight.grad.abs().max() > 0


def test_errors_name_the_argument():
    net = wcrnn6()
    inputs = drive(2, 10)
    with pytest.raises(ValueError, match="k must be an integer between 1 and the state size 6"):
        finite_time_exponents(net, inputs, 7)
    with pytest.raises(ValueError, match="inputs are required"):
        finite_time_exponents(net, None, 2, steps=5)
    with pytest.raises(ValueError, match="transient \\+ steps = 12"):
        finite_time_exponents(net, inputs, 2, steps=10, transient=2)
    with pytest.raises(ValueError, match="dtype of the network's parameters"):
        finite_time_exponents(net, inputs.float(), 2)
    with pytest.raises(ValueError, match="basis must have shape"):
        finite_time_exponents(net, inputs, 2, basis=torch.eye(6, 3, dtype=F64))
    with pytest.raises(ValueError, match="x0 must be"):
        finite_time_exponents(net, inputs, 2, x0=torch.zeros(3, 6, dtype=F64))
    with pytest.raises(TypeError, match="lyapkit.adapt"):
        finite_time_exponents(nn.GRU(2, 3, batch_first=True), inputs.float(), 1)
    with pytest.raises(TypeError, match="no torch kernels"):
        finite_time_exponents(lyapkit.from_numpy(lambda x: 0.5 * x, dim=2), None, 1, steps=3)
    with pytest.raises(ValueError, match="target must be a finite"):
        flossing_loss(torch.zeros(2, 1), target=math.nan)


def test_blow_up_warns():
    system = lyapkit.from_torch(lambda x: x**3, dim=2)  # x_t = x_0^(3^t): 2^(3^7) overflows
    x0 = torch.tensor([[0.9, 0.95], [2.0, 1.0]], dtype=F64)
    with pytest.warns(lyapkit.NonFiniteTrajectoryWarning, match="members \\[1\\] became"):
        lam = finite_time_exponents(system, None, 2, steps=7, x0=x0)
    assert torch.isfinite(lam[0]).all() and not torch.isfinite(lam[1]).all()


def test_flossing_loss_is_the_mean_over_members_of_the_squared_distances():
    lam = torch.tensor([[-0.3, -0.5], [0.1, -0.1]])
    expected = ((0.2**2 + 0.4**2) + (0.2**2 + 0.0)) / 2
    assert float(flossing_loss(lam, target=-0.1)) == pytest.approx(expected)
    assert float(flossing_loss(lam[0])) == pytest.approx(0.3**2 + 0.5**2)


# --- the trainer option ----------------------------------------------------------------------


def flossing_config(directory: Path, weight: float, steps: int = 30) -> dict:
    """An Elman RNN at the weakly coupled residual init R = 0.74 I (λ ≈ log 0.74 ≈ −0.3) on
    ADD(20), flossing its top 2 exponents over 40 steps of 8 sequences at every step."""
    return validate_config(
        {
            "run": {"name": "floss", "dir": str(directory), "seed": 1},
            "task": {"name": "adding", "T": 20, "n_train": 128, "n_test": 32},
            "model": {
                "name": "ElmanRNN",
                "hidden_size": 8,
                "gamma": 0.1,
                "residual": {"kind": "homogeneous", "r": 0.74},
            },
            "optimizer": {"name": "sgd", "lr": 0.05, "clip_grad_norm": 1.0},
            "training": {
                "steps": steps,
                "batch_size": 16,
                "eval_every": 10,
                "checkpoint_every": 10,
            },
            "diagnostics": {
                "flossing": {"every": 1, "k": 2, "steps": 40, "sequences": 8, "weight": weight}
            },
        }
    )


def test_config_validation_names_the_key(tmp_path):
    config = flossing_config(tmp_path, 1.0)
    assert config["diagnostics"]["flossing"]["target"] == 0.0  # the defaults are filled in
    for key, value, message in [
        ("k", 0, "diagnostics.flossing.k must be a positive integer"),
        ("steps", 2.5, "diagnostics.flossing.steps must be a positive integer"),
        ("weight", -1, "diagnostics.flossing.weight must be a non-negative number"),
        ("target", "zero", "diagnostics.flossing.target must be a finite number"),
        ("transient", -1, "diagnostics.flossing.transient must be a non-negative integer"),
        ("window", 10, "unknown key"),
    ]:
        raw = {"diagnostics": {"flossing": {"every": 1, key: value}}}
        with pytest.raises(ConfigError, match=message):
            validate_config(raw)
    with pytest.raises(ConfigError, match="exactly one schedule key"):
        validate_config({"diagnostics": {"flossing": {"k": 1}}})
    config["diagnostics"]["flossing"]["k"] = 9
    with pytest.raises(
        ConfigError, match="diagnostics.flossing.k must be at most the model's state size 8"
    ):
        Trainer(config).train()
    assert not (tmp_path / "floss.nc").exists()


def test_flossing_moves_the_exponents_to_the_target(tmp_path):
    """From λ ≈ −0.3 the flossed exponents approach 0 within 30 steps; with weight 0 (recorded,
    not flossed) the task alone drives them further down (to ≈ −0.45)."""
    runs = {}
    for weight in (1.0, 0.0):
        directory = tmp_path / f"w{weight}"
        directory.mkdir()
        Trainer(flossing_config(directory, weight)).train()
        runs[weight] = open_run(directory / "floss.nc")["flossing"].to_dataset()
    flossed, control = runs[1.0]["exponents"].values, runs[0.0]["exponents"].values
    assert runs[1.0]["step"].values.tolist() == list(range(31))
    np.testing.assert_allclose(flossed[0], control[0])  # the same start
    assert np.abs(flossed[0] - np.log(0.74)).max() < 0.1
    late = slice(-5, None)  # the last five records: finite-time exponents are noisy
    assert np.abs(flossed[late]).mean() < 0.6 * np.abs(flossed[0]).mean()
    assert control[late].mean() < flossed[late].mean() - 0.15
    penalty = runs[1.0]["penalty"].values
    assert penalty[late].mean() < 0.4 * penalty[0]


class Interrupt(Exception):
    """Stands for a kill in the middle of a run."""


def test_resume_with_flossing_is_bit_identical(tmp_path):
    """A run stopped after its checkpoint at step 10 and resumed ends with the weights and the
    records of an uninterrupted run, bit for bit."""
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean_dir.mkdir(), killed_dir.mkdir()
    clean = Trainer(flossing_config(clean_dir, 1.0, steps=20))
    clean.train()

    def stop(trainer, step, store):
        if step == 15:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(flossing_config(killed_dir, 1.0, steps=20), callbacks=[stop]).train()
    resumed = Trainer(flossing_config(killed_dir, 1.0, steps=20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed.train(resume=True)
    for name, value in clean.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
    a, b = open_run(clean_dir / "floss.nc"), open_run(killed_dir / "floss.nc")
    for group in ("flossing", "metrics"):
        da, db = a[group].to_dataset(), b[group].to_dataset()
        np.testing.assert_array_equal(da["step"], db["step"])
        for var in da.data_vars:
            np.testing.assert_array_equal(da[var].values, db[var].values, err_msg=f"{group}.{var}")
