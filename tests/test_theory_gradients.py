"""The weak-coupling prediction of gradient propagation, ``rate = max_i log|eig_i(R)|``, against
:func:`lyapkit.gradients.gradient_propagation` on linear-residual WCRNNs with random residuals."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lyapkit.gradients import gradient_propagation
from lyapkit.theory import gradient_norm_rate
from lyapkit.trainers.models import WCRNN

N, T, BATCH, GAMMA = 6, 80, 8, 0.01


pytestmark = pytest.mark.usefixtures("torch_float64")


def _block(modulus, angle):
    c, s = np.cos(angle), np.sin(angle)
    return modulus * np.array([[c, -s], [s, c]])


def _normal_residual(rho, dominant, kappa, rng):
    """``R = B Λ Bᵀ`` (``B`` random orthogonal) with a dominant eigenvalue ``±ρ`` or pair
    ``ρ e^{±iφ}`` and the other eigenvalues (real or complex pairs) of modulus in ``[0.1ρ, κρ]``.
    Returns ``R``, the orthogonal projector on the dominant eigenspace, ``κρ`` (the largest other
    modulus allowed) and ``B``."""
    blocks = (
        [_block(rho, rng.uniform(0.2, 3.0))]
        if dominant == "complex"
        else [np.array([[rho if dominant == "real+" else -rho]])]
    )
    d = blocks[0].shape[0]
    size = d
    while size < N:
        modulus = rng.uniform(0.1, kappa) * rho
        if N - size >= 2 and rng.random() < 0.5:
            blocks.append(_block(modulus, rng.uniform(0.2, 3.0)))
        else:
            blocks.append(np.array([[modulus * rng.choice([-1.0, 1.0])]]))
        size += blocks[-1].shape[0]
    Lam = np.zeros((N, N))
    i = 0
    for b in blocks:
        Lam[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    basis, _ = np.linalg.qr(rng.standard_normal((N, N)))
    return basis @ Lam @ basis.T, basis[:, :d] @ basis[:, :d].T, kappa * rho, basis


def _rate_interval(rho, rho2, delta, s0, steps):
    """Bounds on the least-squares rate of ``‖v_k‖``, ``v_{k+1} = (Rᵀ + F_k) v_k``, ``‖F_k‖ ≤ δ``,
    over the lags ``k = 0 … steps−1``, for a normal ``R`` with dominant modulus ``ρ`` on the
    eigenspace of the projector ``P`` and ``‖Rᵀ Q‖ ≤ ρ₂`` on its complement ``Q = I − P``.

    With ``p_k = ‖P v_k‖``, ``s_k = ‖Q v_k‖/p_k``, ``c_k = sqrt(1 + s_k²)`` (``‖v_k‖ = p_k c_k``)::

        p_k (ρ − δ c_k) ≤ p_{k+1} ≤ p_k (ρ + δ c_k),   s_{k+1} ≤ (ρ₂ s_k + δ c_k) / (ρ − δ c_k)

    The right side grows with ``s_k``, so iterating it from ``s_0`` bounds every ``s_k`` (the
    first-order weak-coupling term ``δ c_k``). ``log‖v_k‖ = log p_k + e_k`` with
    ``0 ≤ e_k ≤ ½ log(1 + s̄_k²)`` (the finite-T transient of the sub-dominant modes). The
    least-squares slope is ``Σ_j w_j (y_{j+1} − y_j)`` with ``w_j = Σ_{k>j} (k − k̄)/S > 0``,
    ``Σ w_j = 1``, for the increments of ``log p``, plus ``Σ_k (k − k̄) e_k / S`` for ``e``."""
    s = np.empty(steps)
    s[0] = s0
    for k in range(steps - 1):
        c = np.hypot(1.0, s[k])
        assert rho - delta * c > 0, "weak-coupling bound not applicable: δ c ≥ ρ"
        s[k + 1] = (rho2 * s[k] + delta * c) / (rho - delta * c)
    c = np.hypot(1.0, s)
    k = np.arange(steps)
    centred = k - k.mean()
    S = (centred**2).sum()
    w = np.cumsum(centred[::-1])[::-1][1:] / S  # w_j = Σ_{k>j} (k − k̄)/S, j = 0 … steps−2
    e_max = 0.5 * np.log1p(s**2)
    low = w @ np.log(rho - delta * c[:-1]) + (centred * e_max)[centred < 0].sum() / S
    high = w @ np.log(rho + delta * c[:-1]) + (centred * e_max)[centred > 0].sum() / S
    return low, high


@settings(max_examples=12, deadline=None)
@given(
    rho=st.floats(0.85, 1.05),
    dominant=st.sampled_from(["real+", "real-", "complex"]),
    kappa=st.floats(0.3, 0.8),
    seed=st.integers(0, 2**16),
)
def test_gradient_norm_rate_against_wcrnn(rho, dominant, kappa, seed):
    rng = np.random.default_rng(seed)
    R, P, rho2, basis = _normal_residual(rho, dominant, kappa, rng)
    torch.manual_seed(seed)
    model = WCRNN(2, N, 1, residual=R, gamma=GAMMA)
    # the readout c gives every invariant plane of R (columns of basis) equal weight, so
    # ∂L/∂x_T ∝ c has components along the sub-dominant modes (a finite-T transient) and
    # s_0 = ‖Q c‖/‖P c‖ = sqrt((N − d)/d)
    c = basis.sum(axis=1) / np.sqrt(N)
    with torch.no_grad():
        model.decoder.weight.copy_(torch.as_tensor(c)[None])
    inputs, targets = torch.randn(BATCH, T, 2), torch.randn(BATCH, 1)
    measured = gradient_propagation(model, inputs, targets, "mse").rate

    # J_t − R = diag(γ(1 − a_t²)) W, so ‖F_t‖ ≤ δ = γ ‖W‖₂
    delta = GAMMA * np.linalg.norm(model.recurrent.weight.detach().numpy(), 2)
    s0 = np.linalg.norm(c - P @ c) / np.linalg.norm(P @ c)
    low, high = _rate_interval(rho, rho2, delta, s0, T)
    predicted = gradient_norm_rate(R)
    assert predicted == pytest.approx(np.log(rho), abs=1e-12)
    assert low <= predicted <= high
    assert low <= measured <= high, (measured, predicted, low, high)


def test_gradient_norm_rate_closed_forms():
    assert gradient_norm_rate(np.diag([0.5, 0.9, -0.95])) == pytest.approx(np.log(0.95))
    assert gradient_norm_rate(_block(1.1, 0.7)) == pytest.approx(np.log(1.1))
    # a non-normal R: the rate is set by the eigenvalues, not by the norm ‖R‖ > 1
    assert gradient_norm_rate(np.array([[0.5, 10.0], [0.0, 0.4]])) == pytest.approx(np.log(0.5))
    assert gradient_norm_rate(np.zeros((2, 2))) == -np.inf
    with pytest.raises(ValueError, match="R must"):
        gradient_norm_rate(np.ones(3))
