"""Residual matrices ``R`` of weakly coupled residual RNNs (Dubinin & Effenberger 2023).

Each constructor returns a float64 ``(n, n)`` numpy array (``informed`` also returns per-unit
couplings). The eigenvalues of ``R`` set the predicted Lyapunov exponents ``log|eig(R)|``.
"""

from __future__ import annotations

import numpy as np

from lyapkit.trainers.models.base import positive_int


def _interval(bounds: tuple[float, float], name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an interval (low, high), got {bounds!r}") from None
    if not lo <= hi:
        raise ValueError(f"{name} must be an interval (low, high) with low ≤ high, got {bounds!r}")
    return lo, hi


def homogeneous(n: int, r: float = 1.0) -> np.ndarray:
    """``R = r I``: ``n`` equal exponents ``log|r|`` (sub-critical ``r < 1``, critical 1, super-critical ``r > 1``)."""
    return float(r) * np.eye(positive_int(n, "n"))


def rotation_blocks(angles: np.ndarray, radii: np.ndarray, n: int) -> np.ndarray:
    """Block-diagonal ``R`` with 2×2 blocks ``r_i [[cos φ_i, −sin φ_i], [sin φ_i, cos φ_i]]``;
    an odd ``n`` ends with the 1×1 block ``r_last``. Eigenvalues ``r_i e^{±iφ_i}``."""
    R = np.zeros((n, n))
    for i, (phi, r) in enumerate(zip(angles, radii[: n // 2], strict=True)):
        c, s = np.cos(phi), np.sin(phi)
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = r * np.array([[c, -s], [s, c]])
    if n % 2:
        R[-1, -1] = radii[-1]
    return R


def rotational(n: int, phi: float | np.ndarray, r: float = 1.0) -> np.ndarray:
    """Rotational residual: ``n // 2`` blocks ``r [[cos φ_i, −sin φ_i], [sin φ_i, cos φ_i]]``.

    ``phi`` is one angle for all blocks or one per block (shape ``(n // 2,)``); an odd ``n`` ends with
    the 1×1 block ``r``. Eigenvalues ``r e^{±iφ_i}``; all exponents ``log|r|``.
    """
    n = positive_int(n, "n")
    angles = (
        np.broadcast_to(np.asarray(phi, dtype=np.float64), (n // 2,))
        if np.ndim(phi) == 0
        else np.asarray(phi, dtype=np.float64)
    )
    if angles.shape != (n // 2,):
        raise ValueError(f"phi must be a scalar or have shape ({n // 2},), got {angles.shape}")
    return rotation_blocks(angles, np.full(n // 2 + 1, float(r)), n)


def heterogeneous(
    n: int, r0: float, delta: float, seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Heterogeneous diagonal residual ``R = diag(r_i)``, ``r_i ~ U(r0 − δ, r0 + δ)``."""
    if delta < 0:
        raise ValueError(f"delta must be ≥ 0, got {delta!r}")
    rng = np.random.default_rng(seed)
    return np.diag(rng.uniform(r0 - delta, r0 + delta, positive_int(n, "n")))


def informed(
    n: int,
    phi_range: tuple[float, float],
    r_range: tuple[float, float],
    gamma_range: tuple[float, float],
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Informed heterogeneity: ``R = O · D`` and per-unit couplings ``γ_i``.

    ``O`` is rotational with per-block angles ``φ_i ~ U(phi_range)``, ``D = diag(r_i)`` with
    ``r_i ~ U(r_range)``, and ``γ_i ~ U(gamma_range)``, all independent. Returns ``(R, gamma)``.
    """
    n = positive_int(n, "n")
    rng = np.random.default_rng(seed)
    phis = rng.uniform(*_interval(phi_range, "phi_range"), n // 2)
    radii = rng.uniform(*_interval(r_range, "r_range"), n)
    gamma = rng.uniform(*_interval(gamma_range, "gamma_range"), n)
    return rotation_blocks(phis, np.ones(n // 2 + 1), n) @ np.diag(radii), gamma


def random_orthogonal(n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """A Haar-random orthogonal ``R`` (``scipy.stats.ortho_group``): all ``|eig| = 1``, uniformly spread angles."""
    from scipy.stats import ortho_group  # scipy.stats takes most of a second to import

    n = positive_int(n, "n")
    rng = np.random.default_rng(seed)
    if n == 1:  # Haar measure on O(1) = {−1, +1}
        return np.array([[rng.choice([-1.0, 1.0])]])
    return ortho_group.rvs(n, random_state=rng)
