"""Closed-form predictions of the source papers.

Curse of memory (Zucchet & Orvieto 2024): the linear recurrence ``h_t = λ h_{t−1} + x_t`` driven by
stationary unit-variance inputs with autocorrelation ``E[x_t x_{t+Δ}] = ρ^|Δ|`` has, in the
stationary regime, the second moments of its state and of its sensitivity ``∂_λ h`` given by
:func:`hidden_second_moment` and :func:`sensitivity_second_moment`; both explode as ``|λ| → 1``,
the sensitivity faster, which is the curse of memory. :func:`input_normalization` is the remedy
``γ(λ) = sqrt(1 − |λ|²)`` that keeps ``E|γ h|²`` at 1 for i.i.d. inputs.

Weakly coupled residual RNNs (Dubinin & Effenberger 2023): as the coupling ``γ → 0`` the variational
term of ``x' = R x + γ σ(W x + V s + b)`` tends to ``R^T``, so the Lyapunov exponents tend to
``log|eig(R)|`` and the memory regime is set by the spectral radius ``ρ(R)``: sub-critical
(``ρ < 1``, fading memory), critical (``ρ = 1``, the edge of chaos) or super-critical (``ρ > 1``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "WCRNNPrediction",
    "hidden_second_moment",
    "input_normalization",
    "memory_regime",
    "residual_exponents",
    "sensitivity_second_moment",
    "wcrnn_prediction",
]

Regime = Literal["sub-critical", "critical", "super-critical"]


class WCRNNPrediction(NamedTuple):
    """Predicted Lyapunov exponents (descending, per step) and memory regime of a WCRNN."""

    exponents: np.ndarray
    regime: Regime


def _square(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square matrix, got shape {R.shape}")
    if not np.all(np.isfinite(R)):
        raise ValueError("R must be finite")
    return R


def residual_exponents(R: np.ndarray) -> np.ndarray:
    """``log|eig(R)|`` sorted in descending order: the WCRNN exponents in the limit ``γ → 0``."""
    with np.errstate(divide="ignore"):
        return np.sort(np.log(np.abs(np.linalg.eigvals(_square(R)))))[::-1]


def memory_regime(R: np.ndarray, tol: float = 1e-9) -> Regime:
    """``"sub-critical"``, ``"critical"`` or ``"super-critical"`` as ``ρ(R) = max|eig(R)|`` is below,
    within ``tol`` of, or above 1."""
    radius = float(np.max(np.abs(np.linalg.eigvals(_square(R)))))
    if abs(radius - 1.0) <= tol:
        return "critical"
    return "sub-critical" if radius < 1.0 else "super-critical"


def wcrnn_prediction(R: np.ndarray, tol: float = 1e-9) -> WCRNNPrediction:
    """The weak-coupling prediction for a WCRNN with residual ``R``: exponents ``log|eig(R)|`` and regime."""
    return WCRNNPrediction(residual_exponents(R), memory_regime(R, tol))


def _stable(lam: complex | np.ndarray, rho: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam, rho = np.asarray(lam), np.asarray(rho, dtype=np.float64)
    if not np.all(np.abs(lam) < 1):
        raise ValueError(f"lam must satisfy |lam| < 1 (a stable recurrence), got {lam!r}")
    if not np.all((rho >= 0) & (rho < 1)):
        raise ValueError(f"rho must be in [0, 1) (input autocorrelation ρ^|Δ|), got {rho!r}")
    return lam, rho


def hidden_second_moment(lam: complex | np.ndarray, rho: float | np.ndarray = 0.0) -> np.ndarray:
    """Stationary ``E|h|²`` of ``h_t = λ h_{t−1} + x_t`` for unit-variance inputs with autocorrelation ``ρ^|Δ|``.

    With ``q = |λ|²`` and ``z = ρλ``::

        E|h|² = Σ_{k,l≥0} λ^k λ̄^l ρ^|k−l| = (1 − |z|²) / ((1 − q) |1 − z|²)

    which for real ``λ`` is ``(1 + ρλ) / ((1 − ρλ)(1 − λ²))`` and for i.i.d. inputs ``1 / (1 − |λ|²)``.
    Broadcasts over arrays of ``lam`` (real or complex, ``|λ| < 1``) and ``rho`` (in ``[0, 1)``).
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    return (1 - np.abs(z) ** 2) / ((1 - q) * np.abs(1 - z) ** 2)


def sensitivity_second_moment(lam: complex | np.ndarray, rho: float | np.ndarray = 0.0) -> np.ndarray:
    """Stationary ``E|∂_λ h|²`` of ``h_t = λ h_{t−1} + x_t`` (inputs as in :func:`hidden_second_moment`).

    With ``∂_λ h_t = Σ_k k λ^{k−1} x_{t−k}``, ``q = |λ|²`` and ``z = ρλ``::

        E|∂_λ h|² = (1 + q)(1 − |z|²) / ((1 − q)³ |1 − z|²) + 2 Re[z / (1 − z)²] / (1 − q)²

    which for real ``λ`` is ``[(1 + λ²)(1 − λ²ρ²) + 2λρ(1 − λ²)] / [(1 − λ²)³ (1 − λρ)²]`` and for
    i.i.d. inputs ``(1 + |λ|²) / (1 − |λ|²)³``.
    """
    lam, rho = _stable(lam, rho)
    q, z = np.abs(lam) ** 2, rho * lam
    direct = (1 + q) * (1 - np.abs(z) ** 2) / ((1 - q) ** 3 * np.abs(1 - z) ** 2)
    return direct + 2 * np.real(z / (1 - z) ** 2) / (1 - q) ** 2


def input_normalization(lam: complex | np.ndarray) -> np.ndarray:
    """``γ(λ) = sqrt(1 − |λ|²)``: scaling the input by it keeps ``E|h|² = 1`` for i.i.d. unit-variance inputs."""
    lam, _ = _stable(lam, 0.0)
    return np.sqrt(1 - np.abs(lam) ** 2)
