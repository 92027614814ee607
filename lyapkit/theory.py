"""Closed-form predictions of the source papers.

Weakly coupled residual RNNs (Dubinin & Effenberger 2023): as the coupling ``γ → 0`` the variational
term of ``x' = R x + γ σ(W x + V s + b)`` tends to ``R^T``, so the Lyapunov exponents tend to
``log|eig(R)|`` and the memory regime is set by the spectral radius ``ρ(R)``: sub-critical
(``ρ < 1``, fading memory), critical (``ρ = 1``, the edge of chaos) or super-critical (``ρ > 1``).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

__all__ = ["WCRNNPrediction", "memory_regime", "residual_exponents", "wcrnn_prediction"]

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
