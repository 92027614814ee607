"""Stochastic Lanczos quadrature: the spectral density of a symmetric operator from Lanczos runs
on random probes, and the result type :class:`lyapkit.SpectralDensity`.

References
----------
.. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature",
   SIAM Journal on Matrix Analysis and Applications 38(4), 1075–1099, 2017.
.. [2] C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
   differential and integral operators", Journal of Research of the National Bureau of Standards
   45(4), 255–282, 1950.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lyapkit._checks import integer
from lyapkit.hutchpp import rademacher

__all__ = ["SpectralDensity", "lanczos_quadrature"]


@dataclass(frozen=True, repr=False)
class SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017).

    For each unit probe ``q``, ``m`` Lanczos steps give the Gauss quadrature
    ``qᵀ f(A) q ≈ Σ_j w_j f(θ_j)`` (exact for polynomials of degree ``< 2m``); the density estimate is
    the probe average ``φ(x) = (1/n_v) Σ_q Σ_j w_{qj} δ(x − θ_{qj})``, which integrates to 1.

    Parameters
    ----------
    nodes, weights : (num_probes, m) float64
        Ritz values ``θ`` and weights ``w`` (each row of weights sums to 1; unused slots after an
        early Lanczos breakdown have weight 0).
    dim : int
        Dimension ``P`` of the operator.
    kind : str, default "operator"
        What the operator is ("ggn", "hessian", or "operator").

    See Also
    --------
    lyapkit.lanczos_quadrature : Computes it for any symmetric operator.
    lyapkit.LinearOperator.spectral_density : For a Hessian, a GGN or any lyapkit operator.

    References
    ----------
    .. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM Journal on Matrix Analysis and Applications 38(4), 1075–1099, 2017.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> sd = lk.lanczos_quadrature(np.diag([1.0, 2.0, 3.0, 4.0]), num_probes=3, lanczos_steps=4)
    >>> round(sd.moment(1), 3), round(sd.moment(2), 3)  # tr A / P, tr A² / P
    (2.5, 7.5)
    >>> sd.density(np.array([0.0, 2.0]), width=0.1).round(3)
    array([0.   , 0.997])
    >>> dict(sd.to_xarray().sizes)
    {'probe': 3, 'node': 4}
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    kind: str = "operator"

    def moment(self, order: int) -> float:
        """Estimate of ``tr(A^order) / P``: ``(1/n_v) Σ_q Σ_j w_{qj} θ_{qj}^order``.

        Parameters
        ----------
        order : int
            The power of ``A`` (the quadrature is exact for ``order < 2m``; the estimate then
            carries only the probes' variance).

        Returns
        -------
        float
            The moment estimate.
        """
        return float((self.weights * self.nodes**order).sum(1).mean())

    def density(self, grid: np.ndarray, width: float | None = None) -> np.ndarray:
        """The density smoothed by Gaussians of standard deviation ``width`` on ``grid``.

        ``φ_σ(x) = (1/n_v) Σ_q Σ_j w_{qj} exp(−(x − θ_{qj})²/2σ²) / (σ √(2π))``.

        Parameters
        ----------
        grid : (g,) array_like
            Points ``x`` at which to evaluate the density.
        width : float, optional
            ``σ`` (default: 1% of the range of the nodes, 1e-3 when they all coincide).

        Returns
        -------
        numpy.ndarray
            ``(g,)`` float64 density on ``grid``.
        """
        grid = np.asarray(grid, dtype=np.float64)
        used = self.weights > 0
        if width is None:
            span = np.ptp(self.nodes[used]) if used.any() else 1.0
            width = 0.01 * span if span > 0 else 1e-3
        z = (grid[:, None, None] - self.nodes[None]) / width
        kernel = np.exp(-0.5 * z * z) / (width * math.sqrt(2 * math.pi))
        return (kernel * self.weights[None]).sum(2).mean(1)

    def to_xarray(self) -> Any:
        """Dataset of nodes and weights with dims ``("probe", "node")``.

        Returns
        -------
        xarray.Dataset
            ``nodes`` and ``weights``; ``dim`` and ``kind`` as attributes.
        """
        import xarray as xr

        return xr.Dataset(
            {
                "nodes": (
                    ("probe", "node"),
                    self.nodes,
                    {"long_name": "Ritz value", "units": "loss"},
                ),
                "weights": (
                    ("probe", "node"),
                    self.weights,
                    {"long_name": "quadrature weight", "units": "1"},
                ),
            },
            attrs={"dim": self.dim, "kind": self.kind},
        )

    def plot(self, ax: Any = None, *, width: float | None = None, log: bool = True) -> Any:
        """The smoothed density on 1000 points over the nodes' range (log scale by default).

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current axes).
        width : float, optional
            Smoothing width, as in :meth:`lyapkit.SpectralDensity.density`.
        log : bool, default True
            Logarithmic density axis.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        lo, hi = self.nodes.min(), self.nodes.max()
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        grid = np.linspace(lo - pad, hi + pad, 1000)
        (ax.semilogy if log else ax.plot)(grid, self.density(grid, width))
        ax.set_xlabel(f"{self.kind} eigenvalue")
        ax.set_ylabel("spectral density")
        return ax


def lanczos_quadrature(
    operator: Any,
    num_probes: int = 8,
    lanczos_steps: int = 64,
    *,
    seed: int = 0,
    kind: str = "operator",
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of a symmetric operator (Ubaru, Chen & Saad 2017).

    Each Rademacher probe ``q`` (normalised) starts ``m`` Lanczos steps with full
    re-orthogonalisation, ``A Q_m = Q_m T_m + β_m q_{m+1} e_mᵀ``; the eigen-decomposition
    ``T_m = Σ_j θ_j y_j y_jᵀ`` gives nodes ``θ_j`` and weights ``w_j = (e_1ᵀ y_j)²``. The probes run
    in lockstep, so each Lanczos step is one product with a block of vectors (``matmat``); a probe
    whose Krylov space is exhausted (``β_j ≈ 0``) stops early.

    Parameters
    ----------
    operator : array_like or scipy.sparse.linalg.LinearOperator
        A symmetric ``(P, P)`` operator: anything ``scipy.sparse.linalg.aslinearoperator``
        accepts (symmetry is assumed, not checked).
    num_probes : int, default 8
        Number of Rademacher probes ``n_v``.
    lanczos_steps : int, default 64
        Lanczos steps ``m`` per probe (capped at ``P``): nodes per probe.
    seed : int, default 0
        Seed of the probes.
    kind : str, default "operator"
        Label stored in the result ("ggn", "hessian", ...).

    Returns
    -------
    SpectralDensity
        ``(num_probes, m)`` nodes and weights.

    Raises
    ------
    ValueError
        ``num_probes`` or ``lanczos_steps`` not a positive integer.

    See Also
    --------
    lyapkit.LinearOperator.spectral_density : For a Hessian, a GGN or any lyapkit operator.
    lyapkit.hutchpp_trace : The trace alone, more accurately per product.

    References
    ----------
    .. [1] S. Ubaru, J. Chen, Y. Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos
       quadrature", SIAM Journal on Matrix Analysis and Applications 38(4), 1075–1099, 2017.
    .. [2] C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear
       differential and integral operators", Journal of Research of the National Bureau of
       Standards 45(4), 255–282, 1950.

    Examples
    --------
    With ``m ≥ P`` steps the nodes are the eigenvalues and a Rademacher probe weighs each by
    ``1/P``:

    >>> import numpy as np
    >>> import lyapkit as lk
    >>> sd = lk.lanczos_quadrature(np.diag([1.0, 2.0, 3.0, 4.0]), num_probes=2, lanczos_steps=4)
    >>> sd.nodes.round(3)
    array([[1., 2., 3., 4.],
           [1., 2., 3., 4.]])
    >>> sd.weights.round(3)
    array([[0.25, 0.25, 0.25, 0.25],
           [0.25, 0.25, 0.25, 0.25]])
    """
    from scipy.sparse.linalg import aslinearoperator

    A = aslinearoperator(operator)
    P = A.shape[0]
    for name, value in (("num_probes", num_probes), ("lanczos_steps", lanczos_steps)):
        integer(value, name, 1)
    m = min(int(lanczos_steps), P)
    rng = np.random.default_rng(seed)
    basis = np.zeros((num_probes, m, P))
    basis[:, 0] = rademacher(rng, (num_probes, P)) / math.sqrt(P)
    alpha, beta = np.zeros((num_probes, m)), np.zeros((num_probes, m))
    steps = np.zeros(num_probes, dtype=np.int64)
    active = np.ones(num_probes, dtype=bool)
    for j in range(m):
        live = np.flatnonzero(active)
        q = basis[live, j]
        w = A.matmat(q.T).T
        alpha[live, j] = (w * q).sum(1)
        steps[live] = j + 1
        Q = basis[live, : j + 1]
        for _ in range(2):  # full re-orthogonalisation, twice is enough
            w -= np.einsum("ajp,aj->ap", Q, np.einsum("ajp,ap->aj", Q, w))
        if j == m - 1:
            break
        b = np.linalg.norm(w, axis=1)
        going = b > 1e-12 * np.maximum(1.0, np.abs(alpha[live, j]))
        beta[live[going], j] = b[going]
        basis[live[going], j + 1] = w[going] / b[going, None]
        active[live[~going]] = False
        if not active.any():
            break
    nodes, weights = np.zeros((num_probes, m)), np.zeros((num_probes, m))
    for p, s in enumerate(steps):
        T = np.diag(alpha[p, :s]) + np.diag(beta[p, : s - 1], 1) + np.diag(beta[p, : s - 1], -1)
        theta, Y = np.linalg.eigh(T)
        nodes[p, :s], weights[p, :s] = theta, Y[0] ** 2
    return SpectralDensity(nodes=nodes, weights=weights, dim=P, kind=kind)
