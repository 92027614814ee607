"""Extreme eigenpairs of a symmetric :class:`lyapkit.LinearOperator`: LOBPCG (Knyazev 2001) or
implicitly restarted Lanczos (ARPACK; Lehoucq, Sorensen & Yang 1998), dense ``eigh`` for small
operators; and the result type :class:`lyapkit.Eigenpairs`.

References
----------
.. [1] A. V. Knyazev, "Toward the optimal preconditioned eigensolver: Locally optimal block
   preconditioned conjugate gradient method", SIAM Journal on Scientific Computing 23(2),
   517–541, 2001.
.. [2] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide: Solution of Large-Scale
   Eigenvalue Problems with Implicitly Restarted Arnoldi Methods", SIAM, 1998.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lyapkit._checks import integer

if TYPE_CHECKING:
    from lyapkit.operators import LinearOperator

log = logging.getLogger(__name__)

__all__ = ["Eigenpairs", "eigenpairs", "inverse_participation_ratio"]


def eigenpairs(
    operator: LinearOperator,
    k: int = 1,
    *,
    which: Literal["LA", "SA", "LM"] = "LA",
    method: Literal["lobpcg", "lanczos"] | None = None,
    tol: float | None = None,
    maxiter: int = 200,
    seed: int = 0,
) -> Eigenpairs:
    """Extreme eigenpairs of a symmetric operator: largest algebraic ("LA", the sharpness),
    smallest algebraic ("SA") or largest magnitude ("LM").

    ``method="lobpcg"`` (default for "LA" and "SA"; Knyazev 2001, ``scipy.sparse.linalg.lobpcg``)
    iterates a block of ``k + max(4, k // 2)`` vectors, so each iteration is one batched
    product (several times cheaper per vector than single products for recurrent models);
    ``"lanczos"`` (default for "LM") is implicitly restarted Lanczos (ARPACK, ``eigsh``), one
    product at a time. Convergence: residuals ``‖Av − λv‖ ≤ tol · max|λ|``; a warning is
    logged when ``maxiter`` iterations did not reach it. The default ``tol`` is 1e-6 in
    float64 and 1e-4 in float32, whose rounding keeps residuals from going much lower. Small
    operators (``P ≤ 3k + 8``, or up to the operator's ``dense_eigen_max`` when its dense matrix
    is cheap) are decomposed densely.

    Parameters
    ----------
    operator : lyapkit.LinearOperator
        A symmetric operator.
    k : int, default 1
        Number of eigenpairs, ``1 ≤ k ≤ P``.
    which : {"LA", "SA", "LM"}, default "LA"
        Largest algebraic, smallest algebraic or largest magnitude.
    method : {"lobpcg", "lanczos"}, optional
        Default: ``"lobpcg"`` for "LA" and "SA", ``"lanczos"`` for "LM" (LOBPCG cannot do
        "LM").
    tol : float, optional
        Relative residual tolerance (default 1e-6 in float64, 1e-4 in float32; 0 for Lanczos:
        machine precision).
    maxiter : int, default 200
        Iterations of LOBPCG (``maxiter · k`` Arnoldi updates for Lanczos).
    seed : int, default 0
        Seed of the random start vectors.

    Returns
    -------
    Eigenpairs
        ``k`` eigenvalues ordered by ``which`` and their unit eigenvectors ``(P, k)``.

    Raises
    ------
    ValueError
        ``k`` not an integer in ``[1, P]``; ``which`` or ``method`` unknown, or
        ``method="lobpcg"`` with ``which="LM"``.
    """
    from scipy.sparse.linalg import eigsh

    P = operator.num_params
    k = integer(k, "k", 1, P)
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
    method = method or ("lanczos" if which == "LM" else "lobpcg")
    if tol is None:
        tol = 1e-6 if str(operator.dtype).endswith("float64") else 1e-4
    if method not in ("lobpcg", "lanczos") or (method, which) == ("lobpcg", "LM"):
        raise ValueError(
            f"method must be 'lobpcg' (which='LA' or 'SA') or 'lanczos', got {method!r} "
            f"with which={which!r}"
        )
    rng = np.random.default_rng(seed)
    if P <= max(3 * k + 8, operator.dense_eigen_max):
        log.debug("eigenpairs: dense eigh of a %d×%d matrix", P, P)
        values, vectors = np.linalg.eigh(operator.dense())
    elif method == "lanczos":
        A, v0 = operator.to_scipy(), rng.standard_normal(P)
        values, vectors = eigsh(A, k=k, which=which, tol=tol, v0=v0, maxiter=maxiter * k)
    else:
        values, vectors = _lobpcg(operator, k, which == "LA", tol, maxiter, rng)
    key = {"LA": -values, "SA": values, "LM": -np.abs(values)}[which]
    order = np.argsort(key, kind="stable")[:k]
    return Eigenpairs(
        eigenvalues=values[order],
        eigenvectors=vectors[:, order],
        parameter_names=list(operator.parameter_names),
        parameter_shapes=list(operator.parameter_shapes),
        kind=operator.kind,
    )


def _lobpcg(
    operator: LinearOperator,
    k: int,
    largest: bool,
    tol: float,
    maxiter: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """LOBPCG on a block of ``k + max(4, k // 2)`` vectors, restarted every 10 iterations until
    the residuals of the wanted ``k`` pairs (not the guard vectors) are below ``tol · scale``."""
    from scipy.sparse.linalg import lobpcg

    A = operator.to_scipy()
    X = rng.standard_normal((operator.num_params, k + max(4, k // 2)))
    # the scale of the spectrum, for a relative tolerance: ‖CX‖/‖X‖ ≤ max|λ|
    scale = np.max(np.linalg.norm(A.matmat(X), axis=0) / np.linalg.norm(X, axis=0))
    rounds = max(1, -(-maxiter // 10))
    for _ in range(rounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy warns about the guard vectors
            values, X = lobpcg(A, X, largest=largest, tol=tol * scale, maxiter=10)
        wanted = np.argsort(-values if largest else values, kind="stable")[:k]
        V = X[:, wanted]
        residual = np.linalg.norm(A.matmat(V) - V * values[wanted], axis=0).max()
        if residual <= tol * scale:
            return values, X
    log.warning(
        "lobpcg stopped at residual %.3g (tolerance %.3g) after %d iterations",
        residual,
        tol * scale,
        10 * rounds,
    )
    return values, X


def inverse_participation_ratio(vectors: np.ndarray) -> np.ndarray:
    """Inverse participation ratio of each column: 1 on one coordinate, ``1/P`` spread over ``P``.

    ``IPR(v) = Σ_i v_i⁴ / (Σ_i v_i²)²``; ``1/IPR`` counts the coordinates a vector occupies.

    Parameters
    ----------
    vectors : (P,) or (P, k) array_like
        One vector, or ``k`` vectors as columns (need not be normalised; a zero column gives NaN).

    Returns
    -------
    numpy.ndarray
        ``(k,)`` float64 (``(1,)`` for one vector).

    See Also
    --------
    lyapkit.Eigenpairs : Its ``ipr`` property applies this to the eigenvectors.

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> lk.inverse_participation_ratio(np.array([0.0, 3.0, 0.0]))
    array([1.])
    >>> lk.inverse_participation_ratio(np.ones((4, 2)))
    array([0.25, 0.25])
    """
    V = np.asarray(vectors, dtype=np.float64)
    V = V[:, None] if V.ndim == 1 else V
    sq = V * V
    return (sq * sq).sum(0) / sq.sum(0) ** 2


@dataclass(frozen=True, repr=False)
class Eigenpairs:
    """Eigenpairs of a curvature operator.

    Made by :meth:`lyapkit.LinearOperator.eigenpairs`: ``A v_i = λ_i v_i`` with unit ``v_i``.

    Parameters
    ----------
    eigenvalues : (k,) float64
        Ordered as requested (descending for "LA").
    eigenvectors : (P, k) float64
        Unit eigenvectors on the flattened parameters.
    parameter_names : list of str
        The parameters the vectors live on, in order.
    parameter_shapes : list of tuple of int
        Their shapes.
    kind : str
        "ggn" or "hessian".

    See Also
    --------
    lyapkit.LinearOperator.eigenpairs : Computes them.
    lyapkit.CurvatureOperator.layer_contributions : Splits the eigenvalues over unrolled time.
    lyapkit.inverse_participation_ratio : How localised the eigenvectors are.

    Examples
    --------
    >>> import torch
    >>> import lyapkit as lk
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> data = (torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64))
    >>> pairs = lk.CurvatureOperator(model, data, "mse").eigenpairs(k=2)
    >>> pairs
    Eigenpairs(kind='ggn', eigenvalues=[2.9792 2.6182])
    >>> pairs.eigenvectors.shape, pairs.ipr.round(3)
    ((4, 2), array([0.381, 0.418]))
    >>> pairs.parameter_mass.round(3)  # share on (weight, bias)
    array([[0.717, 0.283],
           [0.924, 0.076]])
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    parameter_names: list[str]
    parameter_shapes: list[tuple[int, ...]]
    kind: str

    @property
    def ipr(self) -> np.ndarray:
        """Inverse participation ratio of each eigenvector (:func:`lyapkit.inverse_participation_ratio`)."""
        return inverse_participation_ratio(self.eigenvectors)

    @property
    def parameter_mass(self) -> np.ndarray:
        """``(k, n_parameters)``: the share of each eigenvector's squared norm on each parameter."""
        sizes = [int(np.prod(s)) for s in self.parameter_shapes]
        sq = self.eigenvectors**2
        return np.stack([part.sum(0) for part in np.split(sq, np.cumsum(sizes)[:-1])], 1)

    def to_xarray(self) -> Any:
        """Dataset with dims ``("eigenvalue", "parameter")``.

        Returns
        -------
        xarray.Dataset
            ``eigenvalues`` and ``ipr`` over ``eigenvalue``, ``parameter_mass`` over both dims;
            ``kind`` as an attribute.
        """
        import xarray as xr

        return xr.Dataset(
            {
                "eigenvalues": (
                    "eigenvalue",
                    self.eigenvalues,
                    {"long_name": f"{self.kind} eigenvalue", "units": "loss"},
                ),
                "ipr": (
                    "eigenvalue",
                    self.ipr,
                    {"long_name": "inverse participation ratio", "units": "1"},
                ),
                "parameter_mass": (
                    ("eigenvalue", "parameter"),
                    self.parameter_mass,
                    {"long_name": "share of the eigenvector's squared norm", "units": "1"},
                ),
            },
            coords={
                "eigenvalue": np.arange(len(self.eigenvalues)),
                "parameter": self.parameter_names,
            },
            attrs={"kind": self.kind},
        )

    def __repr__(self) -> str:
        return f"Eigenpairs(kind={self.kind!r}, eigenvalues={np.array2string(self.eigenvalues, precision=4)})"
