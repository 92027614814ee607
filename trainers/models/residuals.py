"""Residual matrices ``R`` of weakly coupled residual RNNs (Dubinin & Effenberger 2023).

Each constructor returns a float64 ``(n, n)`` numpy array (``informed`` also returns per-unit
couplings). The eigenvalues of ``R`` set the predicted Lyapunov exponents ``log|eig(R)|``
(:func:`lyapkit.theory.wcrnn_prediction`) of a :class:`lyapkit.trainers.models.WCRNN`.
"""

from __future__ import annotations

import numpy as np

from lyapkit._checks import integer, interval, number

__all__ = [
    "homogeneous",
    "rotational",
    "heterogeneous",
    "informed",
    "random_orthogonal",
    "rotation_blocks",
]


def homogeneous(n: int, r: float = 1.0) -> np.ndarray:
    """Homogeneous residual ``R = r I``.

    It gives ``n`` equal exponents ``log|r|`` (sub-critical ``r < 1``, critical 1, super-critical
    ``r > 1``).

    Parameters
    ----------
    n : int
        Size of ``R``.
    r : float, default 1.0
        The common eigenvalue.

    Returns
    -------
    numpy.ndarray
        ``r I``, float64, shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``n`` is not an integer ≥ 1, or ``r`` is not a finite number.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> from lyapkit.trainers.models import residuals
    >>> residuals.homogeneous(2, 0.9)
    array([[0.9, 0. ],
           [0. , 0.9]])
    """
    return number(r, "r") * np.eye(integer(n, "n", 1))


def rotation_blocks(angles: np.ndarray, radii: np.ndarray, n: int) -> np.ndarray:
    """Block-diagonal ``R`` with 2×2 blocks ``r_i [[cos φ_i, −sin φ_i], [sin φ_i, cos φ_i]]``.

    An odd ``n`` ends with the 1×1 block ``r_last`` (the last entry of ``radii``). Eigenvalues
    ``r_i e^{±iφ_i}``.

    Parameters
    ----------
    angles : numpy.ndarray
        The angles ``φ_i``, shape ``(n // 2,)``.
    radii : numpy.ndarray
        The radii ``r_i``; the first ``n // 2`` scale the blocks and, for odd ``n``, the last one
        is the 1×1 block.
    n : int
        Size of ``R``.

    Returns
    -------
    numpy.ndarray
        ``R``, float64, shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``angles`` and the first ``n // 2`` radii differ in length, or an odd ``n`` has no
        radius left for its 1×1 block (fewer than ``n // 2 + 1``).

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.models import residuals
    >>> residuals.rotation_blocks(np.array([np.pi / 2]), np.array([0.5, 2.0]), 3).round(3)
    array([[ 0. , -0.5,  0. ],
           [ 0.5,  0. ,  0. ],
           [ 0. ,  0. ,  2. ]])
    """
    if n % 2 and len(radii) <= n // 2:
        raise ValueError(
            f"radii needs n // 2 + 1 = {n // 2 + 1} entries for odd n = {n} (the last one is the "
            f"1×1 block), got {len(radii)}"
        )
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

    Parameters
    ----------
    n : int
        Size of ``R``.
    phi : float or numpy.ndarray
        The rotation angle ``φ`` (radians per step), scalar or one per block.
    r : float, default 1.0
        The common modulus of the eigenvalues.

    Returns
    -------
    numpy.ndarray
        ``R``, float64, shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``n`` is not an integer ≥ 1 or ``phi`` is neither a scalar nor of shape ``(n // 2,)``.

    See Also
    --------
    lyapkit.theory.characteristic_frequency : A data set's characteristic angle for ``phi``.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.models import residuals
    >>> R = residuals.rotational(4, 2 * np.pi / 28, r=0.9)
    >>> np.round(np.abs(np.linalg.eigvals(R)), 3)
    array([0.9, 0.9, 0.9, 0.9])
    """
    n = integer(n, "n", 1)
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
    """Heterogeneous diagonal residual ``R = diag(r_i)``, ``r_i ~ U(r0 − δ, r0 + δ)``.

    The exponents ``log|r_i|`` spread the memory timescales of the units.

    Parameters
    ----------
    n : int
        Size of ``R``.
    r0 : float
        Centre of the distribution of the ``r_i``.
    delta : float
        Half-width ``δ ≥ 0`` of the distribution.
    seed : int or numpy.random.Generator, optional
        Seed of the draws (default: fresh entropy).

    Returns
    -------
    numpy.ndarray
        ``diag(r_i)``, float64, shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``r0`` or ``delta`` is not a finite number, ``delta < 0``, or ``n`` is not an integer
        ≥ 1.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.models import residuals
    >>> np.round(np.diag(residuals.heterogeneous(4, 0.95, 0.05, seed=0)), 3)
    array([0.964, 0.927, 0.904, 0.902])
    """
    r0, delta = number(r0, "r0"), number(delta, "delta", non_negative=True)
    rng = np.random.default_rng(seed)
    return np.diag(rng.uniform(r0 - delta, r0 + delta, integer(n, "n", 1)))


def informed(
    n: int,
    phi_range: tuple[float, float],
    r_range: tuple[float, float],
    gamma_range: tuple[float, float],
    seed: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Informed heterogeneity: ``R = O · D`` and per-unit couplings ``γ_i``.

    ``O`` is rotational with per-block angles ``φ_i ~ U(phi_range)``, ``D = diag(r_i)`` with
    ``r_i ~ U(r_range)``, and ``γ_i ~ U(gamma_range)``, all independent.

    Parameters
    ----------
    n : int
        Number of units (size of ``R``).
    phi_range : tuple of float
        Interval ``(low, high)`` of the block angles ``φ_i``.
    r_range : tuple of float
        Interval ``(low, high)`` of the diagonal entries ``r_i``.
    gamma_range : tuple of float
        Interval ``(low, high)`` of the couplings ``γ_i``.
    seed : int or numpy.random.Generator, optional
        Seed of the draws (default: fresh entropy).

    Returns
    -------
    R : numpy.ndarray
        ``O · D``, float64, shape ``(n, n)``.
    gamma : numpy.ndarray
        The per-unit couplings, shape ``(n,)`` (the ``gamma`` of a
        :class:`lyapkit.trainers.models.WCRNN`).

    Raises
    ------
    ValueError
        If ``n`` is not an integer ≥ 1 or a range is not an interval ``(low, high)`` with
        ``low ≤ high``.

    References
    ----------
    .. [1] I. Dubinin and F. Effenberger, "Fading memory as inductive bias in residual recurrent
       networks", arXiv:2307.14823, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.models import residuals
    >>> R, gamma = residuals.informed(4, (0.1, 0.3), (0.9, 1.0), (0.01, 0.1), seed=0)
    >>> R.shape, np.round(gamma, 3)
    ((4, 4), array([0.065, 0.076, 0.059, 0.094]))
    """
    n = integer(n, "n", 1)
    rng = np.random.default_rng(seed)
    phis = rng.uniform(*interval(phi_range, "phi_range"), n // 2)
    radii = rng.uniform(*interval(r_range, "r_range"), n)
    gamma = rng.uniform(*interval(gamma_range, "gamma_range"), n)
    return rotation_blocks(phis, np.ones(n // 2 + 1), n) @ np.diag(radii), gamma


def random_orthogonal(n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """A Haar-random orthogonal ``R`` (``scipy.stats.ortho_group``).

    All ``|eig(R)| = 1`` (critical: every exponent 0), with uniformly spread angles.

    Parameters
    ----------
    n : int
        Size of ``R``.
    seed : int or numpy.random.Generator, optional
        Seed of the draw (default: fresh entropy).

    Returns
    -------
    numpy.ndarray
        ``R`` with ``R Rᵀ = I``, float64, shape ``(n, n)``.

    Raises
    ------
    ValueError
        If ``n`` is not an integer ≥ 1.

    References
    ----------
    .. [1] F. Mezzadri, "How to generate random matrices from the classical compact groups",
       Notices of the AMS 54(5), 592–604, 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from lyapkit.trainers.models import residuals
    >>> R = residuals.random_orthogonal(4, seed=0)
    >>> bool(np.allclose(R @ R.T, np.eye(4)))
    True
    """
    from scipy.stats import ortho_group  # scipy.stats takes most of a second to import

    n = integer(n, "n", 1)
    rng = np.random.default_rng(seed)
    if n == 1:  # Haar measure on O(1) = {−1, +1}
        return np.array([[rng.choice([-1.0, 1.0])]])
    return ortho_group.rvs(n, random_state=rng)
