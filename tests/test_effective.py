"""Effective learning rates against the optimizers' own updates, simulations and dense algebra."""

import logging

import matplotlib
import numpy as np
import pytest
import torch
from torch.func import grad, hessian, jvp

from lyapkit.effective import (
    adam_effective_rates,
    adam_preconditioner,
    edge_of_stability,
    preconditioned_sharpness,
    sgd_effective_rates,
    temporal_effective_rates,
)

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("torch_float64")


# ---------------------------------------------------------------- Adam and AdamW


def _adam_setup(optimizer_class, **options):
    """Three tensors in two groups; the third never gets a gradient (no state)."""
    torch.manual_seed(0)
    a, b, frozen = (torch.nn.Parameter(torch.randn(*s)) for s in [(3, 4), (5,), (2,)])
    groups = [
        {"params": [a, frozen]},
        {"params": [b], "lr": 0.03, "betas": (0.8, 0.99), "eps": 1e-3},
    ]
    # a short β₂ memory in group 0, so that v falls with the gradients and AMSGrad's max differs
    return [a, b, frozen], optimizer_class(groups, lr=0.01, betas=(0.9, 0.6), **options)


def _gradients(params, k):
    """Known gradients whose size shrinks over the steps (so AMSGrad's max matters)."""
    g = torch.Generator().manual_seed(100 + k)
    scale = 10.0 / (1 + 3 * k)
    return [scale * torch.randn(p.shape, generator=g) for p in params[:2]]


@pytest.mark.parametrize(
    "optimizer_class, options",
    [
        (torch.optim.Adam, {}),
        (torch.optim.Adam, {"weight_decay": 0.1}),
        (torch.optim.Adam, {"amsgrad": True}),
        (torch.optim.Adam, {"maximize": True}),
        (torch.optim.AdamW, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.1, "amsgrad": True}),
    ],
)
def test_adam_rates_reproduce_the_optimizer_step(optimizer_class, options):
    """After each real ``optimizer.step()``: ``Δθ = −rate · m̂ − η λ_wd θ [AdamW]`` with ``m̂`` the
    optimizer's own ``exp_avg / (1 − β₁^t)``."""
    params, opt = _adam_setup(optimizer_class, **options)
    decoupled = optimizer_class is torch.optim.AdamW
    for k in range(6):
        for p, g in zip(params, _gradients(params, k), strict=False):
            p.grad = g
        before = [p.detach().clone() for p in params]
        opt.step()
        rates = adam_effective_rates(opt)
        assert rates.sizes.sum() == len(rates.rates) == sum(p.numel() for p in params)
        for i, (p, old) in enumerate(zip(params[:2], before, strict=False)):
            group = opt.param_groups[0 if i == 0 else 1]
            state = opt.state[p]
            m_hat = state["exp_avg"] / (1 - group["betas"][0] ** state["step"])
            expected = -torch.as_tensor(rates.tensor_rates(2 * i).reshape(p.shape)) * m_hat
            if decoupled:
                expected -= group["lr"] * group["weight_decay"] * old
            torch.testing.assert_close(p.detach() - old, expected, rtol=1e-12, atol=1e-15)
        assert np.all(np.isnan(rates.tensor_rates(1)))  # the frozen tensor has no state
        assert rates.steps.tolist() == [k + 1, 0, k + 1]
    if options.get("amsgrad"):  # the max was in use, not the running average
        state = opt.state[params[0]]
        assert torch.all(state["max_exp_avg_sq"] >= state["exp_avg_sq"])
        assert torch.any(state["max_exp_avg_sq"] > 2 * state["exp_avg_sq"])
    assert rates.decoupled.tolist() == [decoupled] * 2
    assert rates.amsgrad.tolist() == [bool(options.get("amsgrad"))] * 2


def test_adam_summaries_order_and_preconditioner(caplog):
    params, opt = _adam_setup(torch.optim.Adam)
    for p, g in zip(params, _gradients(params, 0), strict=False):
        p.grad = g
    opt.step()
    with caplog.at_level(logging.INFO, logger="lyapkit.effective"):
        rates = adam_effective_rates(opt)
    assert "group0.param1" in caplog.text  # the tensor without state is logged
    assert rates.names == ("group0.param0", "group0.param1", "group1.param0")
    assert rates.groups.tolist() == [0, 0, 1] and rates.sizes.tolist() == [12, 2, 5]
    ds = rates.to_xarray()
    assert ds["rate"].dims == ("parameter",) and ds["tensor_mean"].dims == ("tensor",)
    a, b = rates.tensor_rates(0), rates.tensor_rates(2)
    for stat, fn in [("mean", np.mean), ("median", np.median), ("min", np.min), ("max", np.max)]:
        np.testing.assert_allclose(ds[f"tensor_{stat}"].values, [fn(a), np.nan, fn(b)])
        np.testing.assert_allclose(ds[f"group_{stat}"].values, [fn(a), fn(b)])
    assert ds["group_lr"].values.tolist() == [0.01, 0.03]
    assert all("long_name" in ds[v].attrs and "units" in ds[v].attrs for v in ds.data_vars)
    # P = sqrt(v̂) + ε is η / rate, flat in param_groups order, in the parameters' dtype
    P = adam_preconditioner(opt)
    assert P.dtype == params[0].dtype and P.shape == (19,)
    lr = np.repeat(rates.lr[rates.groups], rates.sizes)
    np.testing.assert_allclose(P.numpy(), lr / rates.rates, rtol=1e-14)
    # named parameters label the tensors
    model = torch.nn.Linear(3, 2)
    named = torch.optim.AdamW(model.named_parameters())
    model(torch.randn(4, 3)).sum().backward()
    named.step()
    assert adam_effective_rates(named).names == ("weight", "bias")


# ---------------------------------------------------------------- gradient descent with momentum


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_stability_bound_by_simulating_torch_sgd(momentum):
    """Minimise ``½ Σ λ_i x_i²`` with ``torch.optim.SGD(momentum=β)`` (heavy ball, no dampening);
    curvatures 1 % below the bound converge, 1 % above diverge, as the mask says."""
    lr = 0.1
    bound = sgd_effective_rates([1.0], lr, momentum).bound
    lam = bound * np.array([0.3, 0.7, 0.99, 1.01, 1.3])
    result = sgd_effective_rates(lam, lr, momentum)
    assert result.bound == pytest.approx((2 + 2 * momentum) / lr)
    x = torch.nn.Parameter(torch.ones(len(lam)))
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    for _ in range(1000):
        opt.zero_grad()
        (0.5 * torch.as_tensor(lam) * x**2).sum().backward()
        opt.step()
    final = np.abs(x.detach().numpy())
    converged = final < 1e-6
    diverged = ~np.isfinite(final) | (final > 1e6)
    assert np.all(converged | diverged)
    assert result.unstable.tolist() == diverged.tolist() == [False, False, False, True, True]
    np.testing.assert_allclose(result.rates, lr * lam)


def test_steady_state_rate_by_simulation():
    """Under a constant gradient heavy ball's step settles at ``−η g/(1 − β)``."""
    lr, momentum, g = 0.01, 0.9, 2.5
    x = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([x], lr=lr, momentum=momentum)
    for _ in range(500):
        before = x.item()
        opt.zero_grad()
        (g * x).sum().backward()
        opt.step()
    step = x.item() - before
    expected = sgd_effective_rates([0.0], lr, momentum).steady_state_lr
    assert -step / g == pytest.approx(expected, rel=1e-12)


def test_effective_rates_views():
    result = sgd_effective_rates([3.0, 25.0], lr=0.1, momentum=0.2)
    ds = result.to_xarray()
    assert ds["rate"].dims == ("eigenvalue",) and ds.attrs["bound"] == pytest.approx(24.0)
    assert ds["unstable"].values.tolist() == [False, True] and "unstable=1" in repr(result)
    assert len(result.plot().lines) == 2
    matplotlib.pyplot.close("all")


# ---------------------------------------------------------------- preconditioned sharpness


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A @ A.T / n + 0.1 * np.eye(n), np.exp(rng.uniform(-3, 1, n))


@pytest.mark.parametrize("k", [1, 3, 30])  # k = n takes the dense path
def test_preconditioned_sharpness_equals_dense_eigendecomposition(k):
    H, P = _spd(30, k)
    Ht = torch.as_tensor(H)
    scaled = H / np.sqrt(np.outer(P, P))  # P^{-1/2} H P^{-1/2}
    expected, vectors = np.linalg.eigh(scaled)
    result = preconditioned_sharpness(lambda v: Ht @ v, P, k=k, lr=0.01, beta1=0.9)
    np.testing.assert_allclose(result.eigenvalues, expected[::-1][:k], rtol=1e-10)
    np.testing.assert_allclose(
        np.abs(np.sum(result.eigenvectors * vectors[:, ::-1][:, :k], axis=0)), 1.0, rtol=1e-8
    )
    assert result.threshold == pytest.approx(38 / 0.01)  # Cohen et al.: 38/η for β₁ = 0.9
    assert result.sharpness == result.eigenvalues[0]
    assert result.to_xarray()["eigenvector"].shape == (30, k)


def test_preconditioned_sharpness_tensor_preconditioner_and_thresholds():
    H, P = _spd(12, 7)
    seen = []

    def matvec(v):
        seen.append((v.dtype, v.ndim))
        return torch.as_tensor(H, dtype=v.dtype) @ v

    result = preconditioned_sharpness(matvec, torch.as_tensor(P, dtype=torch.float32), k=2, lr=0.5)
    assert set(seen) == {(torch.float32, 1)}
    expected = np.linalg.eigvalsh(H / np.sqrt(np.outer(P, P)))[::-1][:2]
    np.testing.assert_allclose(result.eigenvalues, expected, rtol=1e-5)
    assert result.threshold == pytest.approx(4.0)  # no momentum: 2/η
    assert np.isnan(preconditioned_sharpness(matvec, P).threshold)
    assert not preconditioned_sharpness(matvec, P).above_threshold.any()


def test_adam_preconditioner_with_autodiff_hessian():
    """End to end: Adam's own ``P`` and the Hessian of a small regression by ``torch.func``."""
    torch.manual_seed(3)
    X, y = torch.randn(20, 4), torch.randn(20)
    w = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.Adam([w], lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        loss = torch.mean(torch.tanh(X @ w) - y) ** 2
        loss.backward()
        opt.step()

    def loss_fn(theta):
        return torch.mean(torch.tanh(X @ theta) - y) ** 2

    theta = w.detach()
    H = hessian(loss_fn)(theta).numpy()
    P = adam_preconditioner(opt).numpy()
    result = preconditioned_sharpness(lambda v: jvp(grad(loss_fn), (theta,), (v,))[1], P, k=1)
    expected = np.linalg.eigvalsh(H / np.sqrt(np.outer(P, P)))[-1]
    assert result.sharpness == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- temporal effective rates


def test_temporal_rates_of_geometric_contributions():
    T, lr = 30, 0.1
    lags = np.arange(T - 1, -1, -1)
    c = np.stack([2.0 * 0.9**lags, -0.5 * 1.05**lags * np.where(lags % 3, 1, -1)])
    result = temporal_effective_rates(c, lr)
    np.testing.assert_allclose(result.rates, lr * c)
    np.testing.assert_allclose(result.total, lr * c.sum(1))
    np.testing.assert_allclose(result.rate, np.log([0.9, 1.05]), atol=1e-12)
    np.testing.assert_allclose(result.intercept, np.log([2.0 * lr, 0.5 * lr]), atol=1e-12)
    ds = result.to_xarray()
    assert ds["rate"].dims == ("eigenvalue", "layer") and ds["lag"].values[0] == T - 1
    assert len(result.plot().lines) == 4
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize(
    "r, bias, batch, exponent", [(0.9, True, 32, 1), (1.05, True, 32, 1), (0.9, False, 512, 2)]
)
def test_temporal_rate_of_untied_wcrnn_contributions(r, bias, batch, exponent):
    """Eq. 15 checked on the exact Hessian of a linear-residual WCRNN (``R = r I``, ``x_0 = 0``,
    ``γ = 0.01``): untie the input weights ``V`` (and the bias ``b``) into per-layer copies, take
    the top eigenvector ``v`` of the tied Hessian, and ``c_s = vᵀ (Σ_t H_{st}) v`` from one
    Hessian-vector product of the untied loss with ``v`` on every layer. The contributions sum
    to the eigenvalue.

    The targets are the network's outputs, so ``θ`` is a minimum and ``H`` is the GGN,
    ``Σ_{s,t} r^{(T−s)+(T−t)} K_{st}`` with ``K_{st}`` the correlation of the layers'
    sensitivities. A bias makes them coherent in time (``∂pre/∂b = I`` at every layer): then
    ``c_s ∝ r^{T−s}``, one factor of the propagated gradient. Zero-mean i.i.d. inputs without a
    bias make ``K`` nearly diagonal: then ``c_s ∝ r^{2(T−s)}`` (the diagonal block; a large batch
    averages the off-diagonal terms away). The assertion is the decision between the two
    exponents: the fitted rate is nearer ``exponent · log r``, i.e. within ``|log r|/2`` of it;
    the weak-coupling shift of the rate, at most ``γ‖W‖₂/r`` per step, is far inside that."""
    T, n, m, gamma = 30, 4, 2, 0.01
    g = torch.Generator().manual_seed(0)
    W, V = torch.randn(n, n, generator=g) / n**0.5, torch.randn(n, m, generator=g)
    b, C = 0.1 * torch.randn(n, generator=g), torch.randn(1, n, generator=g)
    u = torch.randn(batch, T, m, generator=g)

    def outputs(thetas):  # (T, n·m [+ n]): one copy of V (and b) per layer
        x = torch.zeros(batch, n)
        for t in range(T):
            pre = x @ W.T + u[:, t] @ thetas[t, : n * m].reshape(n, m).T
            x = r * x + gamma * torch.tanh(pre + thetas[t, n * m :] if bias else pre)
        return x @ C.T

    theta = torch.cat([V.flatten(), b]) if bias else V.flatten()
    y = outputs(theta.expand(T, -1))

    def untied_loss(thetas):
        return torch.mean((outputs(thetas) - y) ** 2)

    values, vectors = torch.linalg.eigh(hessian(lambda th: untied_loss(th.expand(T, -1)))(theta))
    v = vectors[:, -1]
    _, hv = jvp(grad(untied_loss), (theta.expand(T, -1).clone(),), (v.expand(T, -1),))
    contributions = (hv @ v).numpy()[None]
    assert contributions.sum() == pytest.approx(values[-1].item(), rel=1e-10)
    rate = temporal_effective_rates(contributions, lr=0.1).rate[0]
    assert abs(rate - exponent * np.log(r)) < abs(np.log(r)) / 2, (rate, np.log(r))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: sgd_effective_rates([1.0], lr=-0.1), ValueError, "lr"),
        (lambda: sgd_effective_rates([1.0], lr=0.0), ValueError, "lr"),
        (lambda: sgd_effective_rates([1.0], lr="fast"), ValueError, "lr"),
        (lambda: sgd_effective_rates([1.0], lr=0.1, momentum=1.0), ValueError, "momentum"),
        (lambda: sgd_effective_rates([1.0], lr=0.1, momentum=-0.1), ValueError, "momentum"),
        (lambda: edge_of_stability(0.0), ValueError, "lr"),
        (lambda: edge_of_stability(0.1, momentum=1.0), ValueError, "momentum"),
        (lambda: sgd_effective_rates([1j], lr=0.1), ValueError, "eigenvalues"),
        (lambda: sgd_effective_rates([np.nan], lr=0.1), ValueError, "eigenvalues"),
        (lambda: temporal_effective_rates(np.ones(5), 0.1), ValueError, "contributions"),
        (lambda: temporal_effective_rates(np.ones((2, 5)), -1), ValueError, "lr"),
        (lambda: preconditioned_sharpness(lambda v: v, -np.ones(3)), ValueError, "preconditioner"),
        (lambda: preconditioned_sharpness(lambda v: v, np.ones(3), k=4), ValueError, "k must"),
        (lambda: preconditioned_sharpness(lambda v: v, np.ones(3), k=0), ValueError, "k must"),
        (lambda: preconditioned_sharpness(lambda v: v, np.ones(3), beta1=0.9), ValueError, "lr"),
        (
            lambda: preconditioned_sharpness(lambda v: v, np.ones(3), lr=0.1, beta1=1.0),
            ValueError,
            "beta1",
        ),
        (lambda: preconditioned_sharpness(lambda v: v[:2], np.ones(3)), ValueError, "matvec"),
        (lambda: preconditioned_sharpness("H", np.ones(3)), TypeError, "matvec"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_optimizers_that_are_not_adam_or_never_stepped():
    p = torch.nn.Parameter(torch.ones(2))
    for fn in (adam_effective_rates, adam_preconditioner):
        with pytest.raises(TypeError, match="optimizer must be a torch.optim.Adam"):
            fn(torch.optim.SGD([p], lr=0.1))
        with pytest.raises(TypeError, match="optimizer"):
            fn(torch.optim.RMSprop([p]))
        with pytest.raises(ValueError, match="no Adam state"):
            fn(torch.optim.Adam([p]))
