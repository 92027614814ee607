"""Linear recurrent models: the parallel scan against the sequential loop, each model's fast path
against its own ``step``, the LRU against its equations in complex arithmetic, the stationary
variance at ring initialisation, ``as_map`` against autodiff and Lyapunov spectra against
``log|λ|``, the teacher, and argument validation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lyapkit as lk
from lyapkit.trainers.models.linear import (
    LRU,
    BlockDiagonalRNN,
    ComplexDiagonalRNN,
    DenseLinearRNN,
    RealDiagonalRNN,
    linear_recurrence,
    linear_scan,
    linear_teacher,
    ring_sample,
)

F64 = torch.float64
C128 = torch.complex128


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small tensors run much faster with one intra-op thread (and do not depend on load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tensor(rng: np.random.Generator, *shape: int, complex_: bool = False) -> torch.Tensor:
    x = torch.as_tensor(rng.standard_normal(shape))
    return torch.complex(x, torch.as_tensor(rng.standard_normal(shape))) if complex_ else x


def _decay(rng: np.random.Generator, kind: str, n: int) -> torch.Tensor:
    """A stable recurrence: real or complex diagonal, or dense with spectral radius 0.9."""
    if kind == "dense":
        A = rng.standard_normal((n, n))
        return torch.as_tensor(0.9 * A / np.abs(np.linalg.eigvals(A)).max())
    radius = torch.as_tensor(rng.uniform(0.2, 0.99, n))
    if kind == "real":
        return radius * torch.as_tensor(rng.choice([-1.0, 1.0], n))
    return torch.polar(radius, torch.as_tensor(rng.uniform(0, 2 * math.pi, n)))


def _loop(decay: torch.Tensor, drive: torch.Tensor, state: torch.Tensor | None) -> torch.Tensor:
    h = torch.zeros_like(drive[:, 0]) if state is None else state
    out = []
    for t in range(drive.shape[1]):
        h = (decay * h if decay.ndim == 1 else h @ decay.T) + drive[:, t]
        out.append(h)
    return torch.stack(out, 1)


def _check_scan(
    kind: str, n: int, T: int, batch: int, with_state: bool, seed: int, method=linear_scan
) -> None:
    rng = np.random.default_rng(seed)
    complex_ = kind == "complex"
    decay = _decay(rng, kind, n).requires_grad_()
    drive = _tensor(rng, batch, T, n, complex_=complex_).requires_grad_()
    state = _tensor(rng, batch, n, complex_=complex_).requires_grad_() if with_state else None
    weight = _tensor(rng, batch, T, n, complex_=complex_)
    leaves = [x for x in (decay, drive, state) if x is not None]
    results = []
    for run in (method, _loop):
        h = run(decay, drive, state)
        loss = (weight.conj() * h).real.sum()  # a real loss of h and its conjugate
        grads = torch.autograd.grad(loss, leaves, allow_unused=True, materialize_grads=True)
        results.append((h.detach(), grads))
    (h_scan, g_scan), (h_loop, g_loop) = results
    assert h_scan.shape == (batch, T, n)
    torch.testing.assert_close(h_scan, h_loop, rtol=0, atol=1e-12)
    for a, b in zip(g_scan, g_loop, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", [linear_scan, linear_recurrence], ids=lambda f: f.__name__)
@pytest.mark.parametrize("kind", ["real", "complex", "dense"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("T", [1, 2, 7, 16, 37])
def test_scan_matches_loop(method, kind, with_state, T):
    _check_scan(kind, n=4, T=T, batch=3, with_state=with_state, seed=T, method=method)


@settings(max_examples=30)
@given(
    kind=st.sampled_from(["real", "complex", "dense"]),
    n=st.integers(1, 5),
    T=st.integers(1, 40),
    batch=st.integers(1, 3),
    with_state=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from([linear_scan, linear_recurrence]),
)
def test_scan_matches_loop_property(kind, n, T, batch, with_state, seed, method):
    _check_scan(kind, n, T, batch, with_state, seed, method)


def test_scan_real_decay_complex_drive_promotes():
    rng = np.random.default_rng(0)
    decay, drive = _decay(rng, "real", 3), _tensor(rng, 2, 5, 3, complex_=True)
    for method in (linear_scan, linear_recurrence):
        h = method(decay, drive)
        assert h.dtype == C128
        torch.testing.assert_close(h, _loop(decay.to(C128), drive, None), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------------

M_IN, H, N_OUT = 3, 4, 2
MODELS = {
    "complex-exponential": lambda **kw: ComplexDiagonalRNN(M_IN, H // 2, N_OUT, **kw),
    "complex-polar-skip": lambda **kw: ComplexDiagonalRNN(
        M_IN, H // 2, N_OUT, parametrization="polar", skip=True, **kw
    ),
    "complex-unnormalised": lambda **kw: ComplexDiagonalRNN(
        M_IN, H // 2, N_OUT, normalization=False, **kw
    ),
    "lru": lambda **kw: LRU(M_IN, H // 2, N_OUT, **kw),
    "real-diagonal": lambda **kw: RealDiagonalRNN(M_IN, H, N_OUT, **kw),
    "block-diagonal": lambda **kw: BlockDiagonalRNN(M_IN, H, N_OUT, **kw),
    "dense": lambda **kw: DenseLinearRNN(M_IN, H, N_OUT, **kw),
}  # every state has dimension H = 4: one numba loop for the spectra (as in test_models_base)


def _model(name: str, readout: str = "last", **kw):
    torch.manual_seed(0)
    return MODELS[name](readout=readout, r_min=0.4, r_max=0.95, seed=1, **kw).double()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("with_state", [False, True])
def test_states_equal_iterated_step(name, with_state):
    model = _model(name)
    g = torch.Generator().manual_seed(2)
    u = torch.randn(4, 11, M_IN, generator=g, dtype=F64)
    s0 = torch.randn(4, model.state_size, generator=g, dtype=F64) if with_state else None
    s = torch.zeros(4, model.state_size, dtype=F64) if s0 is None else s0
    expected = []
    for t in range(u.shape[1]):
        s = model.step(s, u[:, t])
        expected.append(s)
    torch.testing.assert_close(model.states(u, s0), torch.stack(expected, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_forward_shapes(name):
    u = torch.randn(5, 9, M_IN, dtype=F64)
    assert _model(name, "last")(u).shape == (5, N_OUT)
    assert _model(name, "sequence")(u).shape == (5, 9, N_OUT)
    assert _model(name).states(u).shape == (5, 9, _model(name).state_size)


@pytest.mark.parametrize("readout", ["last", "sequence"])
def test_lru_matches_complex_recurrence(readout):
    model = _model("lru", readout)
    u = torch.randn(3, 13, M_IN, generator=torch.Generator().manual_seed(4), dtype=F64)
    with torch.no_grad():
        lam = model.eigenvalues()
        assert torch.allclose(lam, torch.exp(-torch.exp(model.nu) + 1j * torch.exp(model.theta)))
        gamma = torch.sqrt(1 - lam.abs() ** 2)
        B = model.B_re + 1j * model.B_im
        W, c = model.decoder.weight, model.decoder.bias
        C, D = W[:, : model.hidden_size] - 1j * W[:, model.hidden_size :], model.skip.weight
        h = torch.zeros(3, model.hidden_size, dtype=C128)
        ys = []
        for t in range(u.shape[1]):
            h = lam * h + gamma * (u[:, t].to(C128) @ B.T)
            ys.append((h @ C.T).real + c + u[:, t] @ D.T)
        y = torch.stack(ys, 1) if readout == "sequence" else ys[-1]
        torch.testing.assert_close(model(u), y, rtol=0, atol=1e-12)


def _stationary_second_moment(model, batch: int, T: int, seed: int):
    """Monte-Carlo ``E|h_j(T)|²`` over ``batch`` sequences of i.i.d. N(0, 1) inputs, its standard
    error, and the prediction ``γ_j² Σ_k |B_jk|² (1 − |λ_j|^{2T}) / (1 − |λ_j|²)`` from ``h_0 = 0``."""
    u = torch.randn(
        batch, T, model.input_size, generator=torch.Generator().manual_seed(seed), dtype=F64
    )
    with torch.no_grad():
        s = model.states(u)[:, -1]
        power = s[:, : model.hidden_size] ** 2 + s[:, model.hidden_size :] ** 2
        q = model.eigenvalues().abs() ** 2
        gB = model.recurrence()[1]  # γ ⊙ B
        predicted = (gB.abs() ** 2).sum(1) * (1 - q**T) / (1 - q)
    return power.mean(0), power.std(0) / math.sqrt(batch), predicted


def test_stationary_variance_with_normalisation():
    """With γ = sqrt(1 − |λ|²), E|h_j|² = Σ_k |B_jk|² whatever |λ_j|; ≈ 1 on average for the LRU's B."""
    m, hidden, batch, T = 16, 64, 2000, 40
    model = LRU(m, hidden, 1, r_min=0.3, r_max=0.8, seed=5).double()
    mean, se, predicted = _stationary_second_moment(model, batch, T, seed=6)
    B2 = (model.B_re**2 + model.B_im**2).sum(1).detach()
    torch.testing.assert_close(predicted, B2 * (1 - model.eigenvalues().abs().detach() ** (2 * T)))
    assert torch.all((mean - B2).abs() <= 5 * se)
    # Σ_k |B_jk|² = χ²_{2m} / (2m): mean 1, variance 1/m; averaged over the units with the MC error.
    tolerance = 5 * math.sqrt(1 / (m * hidden) + float((se**2).sum()) / hidden**2)
    assert abs(float(mean.mean()) - 1) <= tolerance


def test_stationary_variance_without_normalisation():
    model = ComplexDiagonalRNN(4, 32, 1, normalization=False, r_min=0.3, r_max=0.8, seed=7).double()
    mean, se, predicted = _stationary_second_moment(model, 2000, T=40, seed=8)
    q = model.eigenvalues().abs().detach() ** 2
    B2 = (model.B_re**2 + model.B_im**2).sum(1).detach()
    torch.testing.assert_close(predicted, B2 / (1 - q), rtol=1e-6, atol=0)  # 0.64^40 ≈ 2e-8
    assert torch.all((mean - predicted).abs() <= 5 * se)


@pytest.mark.parametrize("name", MODELS)
def test_as_map_matches_autodiff(name):
    model = _model(name)
    system = model.as_map()
    assert isinstance(system, lk.LinearMap)
    assert (system.dim, system.input_dim) == (model.state_size, model.input_size)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(model.state_size, generator=g, dtype=F64)
    u = torch.randn(model.input_size, generator=g, dtype=F64)
    J = torch.func.jacrev(model.step)(x, u).detach().numpy()
    np.testing.assert_allclose(system.jacobian(x.numpy(), u.numpy()), J, rtol=0, atol=1e-13)
    X = torch.randn(5, model.state_size, generator=g, dtype=F64)
    U = torch.randn(5, model.input_size, generator=g, dtype=F64)
    with torch.no_grad():
        expected = model.step(X, U)
        torch.testing.assert_close(torch.func.vmap(model.step)(X, U), expected)
    np.testing.assert_allclose(
        system.step(X.numpy(), U.numpy()), expected.numpy(), rtol=0, atol=1e-13
    )


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
@pytest.mark.parametrize(
    "name", ["lru", "complex-polar-skip", "real-diagonal", "block-diagonal", "dense"]
)
def test_lyapunov_spectrum_is_log_modulus(name, backend):
    model = MODELS[name](r_min=0.1, r_max=0.95, seed=1).double()
    log_modulus = np.log(np.abs(model.eigenvalues().detach().numpy()))
    if model.complex_units:
        log_modulus = np.repeat(log_modulus, 2)  # λ and λ̄
    expected = np.sort(log_modulus)[::-1]
    # After the transient the basis is aligned with the eigenspaces up to (ratio of consecutive
    # distinct moduli)^transient, and the exponents of a normal linear map are then exact (each
    # rotation–scaling pair included); the seed's moduli are far enough apart for that to be tiny.
    transient = 500
    gap = np.diff(np.unique(np.round(expected, 9))).min()
    assert math.exp(-gap * transient) < 1e-8, "moduli too close for this transient"
    spectrum = lk.lyapunov_spectrum(
        model.as_map(), steps=100, transient=transient, backend=backend, seed=0
    )
    np.testing.assert_allclose(spectrum.exponents, expected, rtol=0, atol=1e-8)


# --------------------------------------------------------------------------------------------
# Initialisation and the teacher
# --------------------------------------------------------------------------------------------


def test_ring_sample_is_uniform_on_the_ring():
    r_min, r_max, max_phase, n = 0.5, 0.9, 1.0, 20000
    radius, phase = ring_sample(n, r_min, r_max, max_phase, np.random.default_rng(0))
    assert np.all((radius >= r_min) & (radius <= r_max) & (phase >= 0) & (phase <= max_phase))
    # |λ|² ~ U(r_min², r_max²) and arg λ ~ U(0, max_phase): means within 5 standard errors.
    for x, lo, hi in ((radius**2, r_min**2, r_max**2), (phase, 0, max_phase)):
        assert abs(x.mean() - (lo + hi) / 2) <= 5 * (hi - lo) / math.sqrt(12 * n)


@pytest.mark.parametrize("name", ["lru", "complex-polar-skip", "block-diagonal", "dense"])
def test_ring_initialisation_bounds(name):
    r_min, r_max, max_phase = 0.6, 0.7, 0.5
    model = MODELS[name](r_min=r_min, r_max=r_max, max_phase=max_phase, seed=3).double()
    lam = model.eigenvalues().detach()
    assert torch.all((lam.abs() >= r_min - 1e-6) & (lam.abs() <= r_max + 1e-6))
    angle = lam.angle() if model.complex_units else lam.angle().abs()  # real blocks: e^{±iφ}
    assert torch.all((angle >= -1e-6) & (angle <= max_phase + 1e-6))


def test_real_diagonal_initialisation_bounds():
    a = RealDiagonalRNN(2, 50, 1, r_min=0.2, r_max=0.3, seed=0).a
    assert torch.all((a >= 0.2) & (a <= 0.3))


def test_polar_and_exponential_give_the_same_eigenvalues():
    radius, phase = ring_sample(16, 0.3, 0.99, 3.0, np.random.default_rng(11))
    expected = torch.polar(torch.as_tensor(radius), torch.as_tensor(phase))
    for parametrization in ("polar", "exponential"):
        model = ComplexDiagonalRNN(
            2, 16, 1, parametrization=parametrization, r_min=0.3, r_max=0.99, max_phase=3.0, seed=11
        )
        torch.testing.assert_close(
            model.eigenvalues().detach().to(C128), expected, rtol=0, atol=1e-6
        )


def test_seed_makes_models_reproducible():
    for factory in MODELS.values():
        a, b, c = (factory(seed=s).state_dict() for s in (4, 4, 5))
        for key, value in a.items():
            if key.startswith(("decoder", "skip")):  # torch's global RNG
                continue
            assert torch.equal(value, b[key]) and not torch.equal(value, c[key]), key


def test_linear_teacher():
    nu0 = 0.95
    teacher = linear_teacher(nu0=nu0, seed=0)
    assert isinstance(teacher, DenseLinearRNN) and teacher.readout == "sequence"
    assert (teacher.input_size, teacher.hidden_size, teacher.output_size) == (1, 10, 1)
    eig = np.linalg.eigvals(teacher.as_map().parameters()["A"])
    assert np.all((np.abs(eig) >= nu0 - 1e-12) & (np.abs(eig) < 1))
    assert np.all(np.abs(eig.imag) > 1e-9)  # even size: only complex pairs
    np.testing.assert_allclose(np.sort_complex(eig.conj()), np.sort_complex(eig), atol=1e-12)
    assert not any(p.requires_grad for p in teacher.parameters())
    same, other = linear_teacher(nu0=nu0, seed=0), linear_teacher(nu0=nu0, seed=1)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, same.state_dict()[key])
    assert not torch.equal(teacher.A, other.A)
    u = torch.randn(2, 30, 1)
    assert teacher(u).shape == (2, 30, 1)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

BAD = [
    (lambda: ComplexDiagonalRNN(2, 4, 1, parametrization="cartesian"), "parametrization"),
    (lambda: ComplexDiagonalRNN(2, 4, 1, r_min=0.8, r_max=0.5), "r_min"),
    (lambda: ComplexDiagonalRNN(2, 4, 1, r_max=1.5), "r_max"),
    (lambda: LRU(2, 4, 1, r_min=-0.1), "r_min"),
    (lambda: LRU(2, 4, 1, max_phase=7.0), "max_phase"),
    (lambda: LRU(2, 0, 1), "hidden_size"),
    (lambda: LRU(2, 4, 1, readout="all"), "readout"),
    (lambda: RealDiagonalRNN(2, 4, 1, r_min=0.6, r_max=0.5), "r_min"),
    (lambda: BlockDiagonalRNN(2, 5, 1), "hidden_size"),
    (lambda: DenseLinearRNN(0, 4, 1), "input_size"),
    (lambda: DenseLinearRNN(2, 4, 1, r_max=2.0), "r_max"),
    (lambda: linear_teacher(nu0=1.0), "nu0"),
    (lambda: LRU(2, 4, 1)(torch.zeros(3, 5, 4)), "inputs"),
    (lambda: LRU(2, 4, 1).states(torch.zeros(3, 5, 2), torch.zeros(3, 4)), "state"),
    (lambda: linear_scan(torch.ones(3), torch.zeros(2, 5, 4)), "decay"),
    (lambda: linear_scan(torch.ones(4, 3), torch.zeros(2, 5, 4)), "decay"),
    (lambda: linear_scan(torch.ones(4), torch.zeros(4)), "drive"),
    (lambda: linear_scan(torch.ones(4), torch.zeros(2, 5, 4), torch.zeros(3, 4)), "state"),
]


@pytest.mark.parametrize("call, name", BAD)
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("n", [1, 3, 7])
def test_odd_hidden_sizes_for_dense_models_and_teacher(n):
    model = DenseLinearRNN(2, n, 1, r_min=0.5, r_max=0.9, seed=0)
    moduli = np.abs(model.eigenvalues().detach().numpy())
    assert moduli.shape == (n,) and np.all((moduli >= 0.5 - 1e-12) & (moduli <= 0.9 + 1e-12))
    teacher = linear_teacher(hidden_size=n, nu0=0.8, seed=1)
    moduli = np.abs(teacher.eigenvalues().detach().numpy())
    assert np.all((moduli >= 0.8 - 1e-12) & (moduli < 1))


@pytest.mark.parametrize("factory", [LRU, RealDiagonalRNN, DenseLinearRNN, linear_teacher])
def test_torch_manual_seed_makes_unseeded_models_reproducible(factory):
    def build():
        torch.manual_seed(3)
        model = factory(1, 4, 1) if factory is not linear_teacher else factory(hidden_size=4)
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(build(), build(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(r_min=1.0, r_max=1.0),
        dict(r_min=1.0, r_max=1.0, parametrization="polar"),
        dict(r_min=0.0, r_max=0.0),
    ],
)
def test_ring_endpoints_that_break_gradients_are_refused(kwargs):
    with pytest.raises(ValueError, match="r_max"):
        ComplexDiagonalRNN(2, 3, 1, seed=0, **kwargs)
    assert ComplexDiagonalRNN(2, 3, 1, r_min=1.0, r_max=1.0, parametrization="polar",
                              normalization=False, seed=0) is not None  # fmt: skip
