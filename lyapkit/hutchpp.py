"""Hutch++: the trace of a square operator from products with random sketches.

References
----------
.. [1] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
   estimation", Symposium on Simplicity in Algorithms (SOSA), 2021.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lyapkit._checks import integer

__all__ = ["hutchpp_trace"]


def rademacher(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Independent ±1 entries of equal probability."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def hutchpp_trace(operator: Any, num_matvecs: int = 30, *, seed: int = 0) -> float:
    """Hutch++ estimate of ``tr A`` from ``num_matvecs`` products (Meyer et al. 2021)::

        S, G ~ Rademacher (P, m/3);  Q = orth(A S);  G' = (I − QQᵀ) G
        tr A ≈ tr(Qᵀ A Q) + (3/m) tr(G'ᵀ A G')

    Exact when ``m/3 ≥ P``; unbiased otherwise, with error ``O(1/m)`` relative to ``‖A‖_*``.

    Parameters
    ----------
    operator : array_like or scipy.sparse.linalg.LinearOperator
        A square ``(P, P)`` operator: anything ``scipy.sparse.linalg.aslinearoperator`` accepts
        (an array, a sparse matrix, an object with ``shape`` and ``matvec``/``matmat``).
    num_matvecs : int, default 30
        Budget ``m ≥ 3`` of products; ``3 (m // 3)`` are used.
    seed : int, default 0
        Seed of the Rademacher sketches.

    Returns
    -------
    float
        The estimate of ``tr A``.

    Raises
    ------
    ValueError
        ``num_matvecs`` is not an integer ``≥ 3``.

    See Also
    --------
    lyapkit.LinearOperator.trace : The trace of a Hessian, a GGN or any lyapkit operator.
    lyapkit.lanczos_quadrature : The whole spectral density (its first moment is ``tr A / P``).

    References
    ----------
    .. [1] R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal stochastic trace
       estimation", Symposium on Simplicity in Algorithms (SOSA), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> lk.hutchpp_trace(np.diag(np.arange(1.0, 11.0)), num_matvecs=30)  # m/3 ≥ P: exact
    55.0
    >>> A = np.diag(1.0 / np.arange(1, 201) ** 2)
    >>> bool(abs(lk.hutchpp_trace(A, num_matvecs=30) - np.trace(A)) < 0.01 * np.trace(A))
    True
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    num_matvecs = integer(num_matvecs, "num_matvecs", 3)
    P = A.shape[0]
    third = min(num_matvecs // 3, P)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(A.matmat(rademacher(rng, (P, third))))
    G = rademacher(rng, (P, num_matvecs // 3))
    G -= Q @ (Q.T @ G)
    low_rank = np.trace(Q.T @ A.matmat(Q))
    return float(low_rank + np.trace(G.T @ A.matmat(G)) / G.shape[1])
