"""The compiled loops of grouped training (``lyapkit.backends._numba_group``): equal to the torch
loop of ``_GroupLoop`` and to torch autograd through the plain recurrence, in every thread
count; float32 σ within 2 ulp of the correctly rounded value; the caller's denormal mode kept."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
numba = pytest.importorskip("numba")

from lyapkit.backends._numba_group import (  # noqa: E402
    _get_mxcsr,
    _set_mxcsr,
    _sigmoid,
    group_forward,
)
from lyapkit.trainers.group import _GroupLoop  # noqa: E402


@numba.njit
def _sigmoids(z, out):
    for i in range(z.size):
        out[i] = _sigmoid(z[i])


def members(seed: int, M: int, B: int, T: int, n: int, m: int, dtype: torch.dtype) -> tuple:
    """Random inputs ``(T, M, B, m)`` and weights ``V, b, R, W, γ`` of ``M`` members."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).to(dtype)

    inputs = randn(T, M, B, m)
    V, b = randn(M, n, m), randn(M, n, scale=0.3)
    R = randn(M, n, n, scale=0.9 / n**0.5)
    W = randn(M, n, n, scale=1.5 / n**0.5)
    gamma = torch.rand(M, n, generator=g, dtype=torch.float64).to(dtype)
    return inputs, V, b, R, W, gamma


def loop(args: tuple, compiled: bool, threads: int) -> tuple:
    """The last states and the gradients of ``Σ (x_T ⊙ c)`` with respect to ``V, b, W``."""
    inputs, V, b, R, W, gamma = args
    params = [p.clone().requires_grad_() for p in (V, b, W)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        last = _GroupLoop.apply(inputs, params[0], params[1], R, params[2], gamma, compiled)
        weight = torch.linspace(-1, 1, last.numel(), dtype=last.dtype).reshape(last.shape)
        grads = torch.autograd.grad((last * weight).sum(), params)
    finally:
        torch.set_num_threads(previous)
    return (last.detach(), *grads)


def autograd_reference(args: tuple) -> tuple:
    """The same through torch autograd on ``x_t = R x_{t−1} + γ ⊙ tanh(W x_{t−1} + V s_t + b)``
    in float64, one step at a time."""
    inputs, V, b, R, W, gamma = (a.to(torch.float64) for a in args)
    params = [p.clone().requires_grad_() for p in (V, b, W)]
    V_, b_, W_ = params
    x = inputs.new_zeros(*inputs.shape[1:3], R.shape[-1])
    for s in inputs:
        x = x @ R.transpose(1, 2) + gamma[:, None] * torch.tanh(
            x @ W_.transpose(1, 2) + s @ V_.transpose(1, 2) + b_[:, None]
        )
    weight = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).reshape(x.shape)
    return (x.detach(), *torch.autograd.grad((x * weight).sum(), params))


def assert_close(actual: tuple, expected: tuple, tol: float) -> None:
    for name, a, e in zip(("last state", "dV", "db", "dW"), actual, expected, strict=True):
        scale = e.abs().max().item()
        np.testing.assert_allclose(
            a.to(torch.float64).numpy(), e.numpy(), rtol=tol, atol=tol * scale, err_msg=name
        )


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    M=st.integers(1, 5),
    B=st.integers(1, 9),
    T=st.integers(1, 12),
    n=st.integers(1, 9),
    m=st.integers(1, 3),
    threads=st.sampled_from([1, 2]),
)
def test_compiled_loop_equals_the_torch_loop_and_autograd_in_float64(seed, M, B, T, n, m, threads):
    args = members(seed, M, B, T, n, m, torch.float64)
    compiled = loop(args, True, threads)
    assert_close(compiled, loop(args, False, threads), 1e-12)
    assert_close(compiled, autograd_reference(args), 1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_compiled_loop_in_float32_agrees_to_float32_rounding(threads):
    args = members(7, 16, 64, 64, 32, 1, torch.float32)
    compiled, reference = loop(args, True, threads), autograd_reference(args)
    assert_close(compiled, reference, 2e-4)  # 64 steps of float32 rounding
    assert_close(loop(args, False, threads), reference, 2e-4)  # the torch loop, for scale


def test_non_finite_states_propagate_as_in_the_torch_loop():
    inputs, V, b, R, W, gamma = members(3, 3, 4, 6, 5, 2, torch.float32)
    inputs[2, 0, 1, 0] = float("nan")  # member 0, one sequence
    inputs[1, 1, 0, 1] = float("inf")  # member 1
    args = (inputs, V, b, R, W, gamma)
    for compiled, reference in zip(loop(args, True, 2), loop(args, False, 2), strict=True):
        np.testing.assert_array_equal(compiled.isnan().numpy(), reference.isnan().numpy())
        np.testing.assert_array_equal(compiled.isinf().numpy(), reference.isinf().numpy())
    last = loop(args, True, 2)[0]
    assert last[0, 1].isnan().all() and last[0, [0, 2, 3]].isfinite().all()
    assert last[2].isfinite().all()  # member 2 is untouched


def float32_ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between float32 arrays of one sign."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_float32_sigmoid_is_within_2_ulp_of_the_correctly_rounded_value():
    rng = np.random.default_rng(0)
    z = np.concatenate(
        [rng.standard_normal(200_000) * 3, rng.uniform(-104, 90, 200_000), [0.0, -87.0, 88.0]]
    ).astype(np.float32)
    out = np.empty_like(z)
    _sigmoids(z, out)
    exact = 1.0 / (1.0 + np.exp(-z.astype(np.float64)))
    normal = exact >= np.finfo(np.float32).tiny
    assert float32_ulps(out[normal], exact[normal].astype(np.float32)).max() <= 2
    # below the normal range: zero or within one smallest normal of the value
    assert np.all(np.abs(out[~normal] - exact[~normal]) <= np.finfo(np.float32).tiny)


def test_sigmoid_at_the_ends_and_of_non_finite_values():
    z = np.array([np.inf, -np.inf, np.nan, 1e30, -1e30, -88.5, 15.0], dtype=np.float32)
    for dtype in (np.float32, np.float64):
        out = np.empty(z.size, dtype)
        _sigmoids(z.astype(dtype), out)
        assert out[0] == 1 and out[1] == 0 and np.isnan(out[2])
        assert out[3] == 1 and out[4] == 0 and 0 <= out[5] < 1e-38 and out[6] < 1


X86 = pytest.mark.skipif(
    platform.machine().lower() not in {"x86_64", "amd64"},
    reason="the loops set the caller's denormal mode on x86-64 only",
)


def subnormal_pass(threads: int) -> np.ndarray:
    """The last states of 4 members fed ``s_1 = 10⁻³⁹`` (subnormal float32), carried by ``R = I``
    with ``γ = 0``: 10⁻³⁹ where the pass keeps subnormals, 0 where it flushes them."""
    M, B, n = 4, 3, 2
    inputs = np.zeros((2, M, B, 1), np.float32)
    inputs[0] = 1e-39
    xs = np.empty((3, M, B, n + 2), np.float32)
    weights = np.zeros((M, n + 2, 2 * n), np.float32)
    weights[:, :n, :n] = np.eye(n)
    weights[:, n, :n] = 1.0  # x_1 = s_1, then x_2 = x_1
    sigmoids = np.empty((2, M, B, n), np.float32)
    group_forward(inputs, xs, weights, sigmoids, np.zeros((M, n), np.float32), threads)
    return xs[2, ..., :n]


@X86
@pytest.mark.parametrize("threads", [1, 2])
def test_the_loops_run_in_the_callers_denormal_mode(threads):
    for flush in (True, False, True, False):
        assert torch.set_flush_denormal(flush)
        try:
            last = subnormal_pass(threads)
        finally:
            torch.set_flush_denormal(False)
        np.testing.assert_array_equal(last, 0.0 if flush else np.float32(1e-39))


@numba.njit(parallel=True)
def _set_denormal_bits_in_every_thread(bits, threads):
    for _ in numba.prange(threads):
        _set_mxcsr((_get_mxcsr() & ~0x8040) | bits)


@X86
def test_worker_threads_that_flush_run_a_caller_that_does_not_in_its_mode():
    """Numba's worker threads copy the MXCSR of the thread that starts them: started while the
    caller flushed, they flush; a pass whose caller does not flush must not."""
    threads = numba.get_num_threads()
    _set_denormal_bits_in_every_thread(0x8040, threads)
    try:
        torch.set_flush_denormal(False)  # the calling thread keeps subnormals
        np.testing.assert_array_equal(subnormal_pass(2), np.float32(1e-39))
    finally:
        _set_denormal_bits_in_every_thread(0, threads)
