"""Gradient propagation through time against products of the maps' state Jacobians."""

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lyapkit
from lyapkit._array import to_numpy
from lyapkit.gradients import fit_rate, gradient_propagation
from lyapkit.trainers.models import LSTM, WCRNN, residuals

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("torch_float64")


class CellModel(nn.Module):
    """A duck-typed recurrent model (an ``nn.RNNCell`` with a sequence readout), without
    ``reference_path``."""

    def __init__(self, m=3, n=5, k=2):
        super().__init__()
        self.cell, self.decoder = nn.RNNCell(m, n), nn.Linear(n, k)

    def initial_state(self, inputs):
        return inputs.new_zeros(inputs.shape[0], self.cell.hidden_size)

    def step(self, state, u):
        return self.cell(u, state)

    def output(self, states, inputs):
        return self.decoder(states)


def _loss(name, outputs, targets):
    if name == "mse":
        return F.mse_loss(outputs, targets)
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def _backprop_by_jacobians(model, jacobian, states, inputs, targets, loss):
    """``∂L/∂x_t = J_tᵀ ∂L/∂x_{t+1} + d_t`` in float64 numpy, with ``J_t = ∂x_{t+1}/∂x_t`` from the
    map and ``d_t`` the readout's direct term (autograd of the readout alone, states as leaves)."""
    leaves = states.detach().clone().requires_grad_(True)
    (direct,) = torch.autograd.grad(_loss(loss, model.output(leaves, inputs), targets), leaves)
    direct, x, u = direct.numpy(), states.detach(), inputs.detach()
    T = x.shape[1]
    g = [None] * T
    g[T - 1] = direct[:, T - 1]
    for t in range(T - 2, -1, -1):  # column t holds x_{t+1}; its successor is driven by u_{t+2}
        J = to_numpy(jacobian(x[:, t], u[:, t + 1])).astype(np.float64)
        g[t] = np.einsum("bij,bi->bj", J, g[t + 1]) + direct[:, t]
    return np.linalg.norm(np.stack(g, 1), axis=-1)


def _case(kind, readout, loss, seed=0):
    torch.manual_seed(seed)
    B, T, m, k = 5, 17, 3, 4
    if kind == "cell":
        model = CellModel(m, 5, k)
    elif kind == "lstm":
        model = LSTM(m, 4, k, readout)
    else:
        R = residuals.rotational(6, [0.4, 1.3, 2.2], 1.02)
        model = WCRNN(m, 6, k, readout, residual=R, gamma=np.linspace(0.05, 0.3, 6), variant=kind)
    out_shape = (B, T) if readout == "sequence" or kind == "cell" else (B,)
    targets = (
        torch.randint(0, k, out_shape) if loss == "cross_entropy" else torch.randn(*out_shape, k)
    )
    return model, torch.randn(B, T, m), targets


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
@pytest.mark.parametrize("readout", ["last", "sequence"])
@pytest.mark.parametrize("kind", ["linear", "A", "B", "lstm"])
def test_norms_equal_products_of_map_jacobians(kind, readout, loss):
    model, inputs, targets = _case(kind, readout, loss)
    with torch.no_grad():
        states = model.states(inputs)  # the fast path where there is one
    expected = _backprop_by_jacobians(model, model.as_map().jacobian, states, inputs, targets, loss)
    result = gradient_propagation(model, inputs, targets, loss)
    assert result.norms.shape == expected.shape and result.norms.dtype == np.float64
    np.testing.assert_allclose(result.norms, expected, rtol=1e-10, atol=0)
    if readout == "last":  # no readout term before T: the norms follow the Jacobian products only
        assert np.all(result.norms > 0)


def _loop(model, inputs):
    x, out = model.initial_state(inputs), []
    for t in range(inputs.shape[1]):
        x = model.step(x, inputs[:, t])
        out.append(x)
    return out


def test_duck_typed_model_without_reference_path():
    model, inputs, targets = _case("cell", "sequence", "cross_entropy")
    with torch.no_grad():
        states = torch.stack(_loop(model, inputs), 1)
    jac = lyapkit.from_torch(model.cell).jacobian
    expected = _backprop_by_jacobians(model, jac, states, inputs, targets, "cross_entropy")
    state = torch.randn(inputs.shape[0], 5)
    np.testing.assert_allclose(
        gradient_propagation(model, inputs, targets).norms, expected, rtol=1e-10, atol=0
    )
    # a given initial state changes the trajectory and so the gradients
    assert not np.allclose(
        gradient_propagation(model, inputs, targets, state=state).norms, expected
    )


def test_runs_inside_the_reference_path():
    seen = []

    class Spy(WCRNN):
        def step(self, state, u):
            seen.append(self._reference)
            return super().step(state, u)

    model = Spy(2, 3, 2)
    gradient_propagation(model, torch.randn(2, 4, 2), torch.tensor([0, 1]))
    assert seen == [True] * 4 and model._reference is False


@pytest.mark.parametrize("r", [0.9, 1.0, 1.05])
def test_linear_wcrnn_rate_is_log_r(r):
    """R = r I, so J_t = r I + E_t with E_t = diag(γ(1 − a_t²)) W and ‖E_t‖₂ ≤ δ = γ‖W‖₂: every
    backward step multiplies the norm by a factor in [r − δ, r + δ]. The least-squares slope of a
    sequence against the lag is a positively weighted average of its increments (weights summing
    to 1), so the fitted rate lies in [log(r − δ), log(r + δ)] for any T."""
    torch.manual_seed(1)
    gamma, n = 0.01, 8
    model = WCRNN(2, n, 3, residual=residuals.homogeneous(n, r), gamma=gamma)
    result = gradient_propagation(model, torch.randn(16, 120, 2), torch.randint(0, 3, (16,)))
    delta = gamma * np.linalg.norm(model.recurrent.weight.detach().numpy(), 2)
    assert np.log(r - delta) <= result.rate <= np.log(r + delta), (result.rate, np.log(r), delta)


def test_fit_rate_and_fit_window():
    lags = np.arange(9, -1, -1)
    rate, intercept = fit_rate(0.3 - 0.2 * lags, lags)
    assert rate == pytest.approx(-0.2, abs=1e-12) and intercept == pytest.approx(0.3, abs=1e-12)
    values = 0.3 - 0.2 * lags
    values[:3] = -np.inf  # zero norms are left out of the fit
    assert fit_rate(values, lags)[0] == pytest.approx(-0.2, abs=1e-12)
    assert np.isnan(fit_rate(np.full(10, -np.inf), lags)[0])


def test_states_the_loss_ignores_have_zero_norm():
    """A memoryless cell with a last-step readout: ∂L/∂x_t = 0 for t < T, so only lag 0 is finite
    and the rate is NaN."""

    class Memoryless(CellModel):
        def step(self, state, u):
            return torch.tanh(state * 0 + u @ torch.ones(3, 5))

        def output(self, states, inputs):
            return self.decoder(states[:, -1])

    result = gradient_propagation(Memoryless(), torch.randn(3, 6, 3), torch.tensor([0, 1, 1]))
    assert np.all(result.norms[:, :-1] == 0) and np.all(result.norms[:, -1] > 0)
    assert np.isnan(result.rate) and np.isneginf(result.mean_log[0])


def test_result_views():
    model, inputs, targets = _case("linear", "last", "cross_entropy")
    result = gradient_propagation(model, inputs, targets)
    B, T = inputs.shape[:2]
    np.testing.assert_allclose(result.mean, result.norms.mean(0))
    np.testing.assert_allclose(result.std, result.norms.std(0))
    np.testing.assert_allclose(result.mean_log, np.log(result.norms).mean(0))
    assert result.rate == pytest.approx(np.polyfit(result.lags, result.mean_log, 1)[0], rel=1e-12)
    ds = result.to_xarray()
    assert ds["norm"].dims == ("sample", "time") and ds["norm"].shape == (B, T)
    assert list(ds["lag"].values) == list(range(T - 1, -1, -1))
    assert ds.attrs["rate"] == result.rate and ds.attrs["rate_units"] == "1/step"
    assert all("units" in ds[v].attrs and "long_name" in ds[v].attrs for v in ds.data_vars)
    assert "rate=" in repr(result)
    ax = result.plot()
    assert ax.get_yscale() == "log" and len(ax.lines) == 3
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, u, y: gradient_propagation(object(), u, y), TypeError, "model"),
        (lambda m, u, y: gradient_propagation(nn.Linear(2, 2), u, y), TypeError, "model"),
        (lambda m, u, y: gradient_propagation(m, u[0], y), ValueError, "inputs"),
        (lambda m, u, y: gradient_propagation(m, u.numpy(), y), ValueError, "inputs"),
        (lambda m, u, y: gradient_propagation(m, u[:, :0], y), ValueError, "inputs"),
        (lambda m, u, y: gradient_propagation(m, u.float(), y), ValueError, "inputs must have"),
        (
            lambda m, u, y: gradient_propagation(m, u, y, state=torch.zeros(2, 6)),
            ValueError,
            "state",
        ),
        (
            lambda m, u, y: gradient_propagation(m, u, y, state=m.initial_state(u).float()),
            ValueError,
            "state must have the initial state's dtype torch.float64",
        ),
        (lambda m, u, y: gradient_propagation(m, u, y[:2]), ValueError, "targets"),
        (lambda m, u, y: gradient_propagation(m, u, y, loss="hinge"), ValueError, "loss"),
    ],
)
def test_errors_name_the_argument(call, error, match):
    model, inputs, targets = _case("linear", "last", "cross_entropy")
    with pytest.raises(error, match=match):
        call(model, inputs, targets)
