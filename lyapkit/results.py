"""Result objects: numpy arrays, ``to_xarray()`` with named dims and units, and ``plot(ax=)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNIT = "1/step"


def kaplan_yorke_dimension(exponents: np.ndarray, dim: int | None = None) -> float:
    """Kaplan–Yorke (Lyapunov) dimension of a spectrum.

    With the exponents sorted in descending order and ``j`` the largest index with
    ``Σ_{i≤j} λ_i ≥ 0`` (Kaplan & Yorke 1979 [1]_)::

        D_KY = j + Σ_{i≤j} λ_i / |λ_{j+1}|

    ``D = 0`` when ``λ_1 < 0``; ``D = dim`` when all partial sums are non-negative and the full
    spectrum is given; NaN when they are and only part of the spectrum is (more exponents are
    needed), or when an exponent is NaN or ``+inf``. An exponent ``−inf`` (a direction collapsed
    by a singular Jacobian) is a number like any other: ``λ_{j+1} = −inf`` gives ``D = j``.

    Parameters
    ----------
    exponents : array_like of shape (k,)
        Lyapunov exponents, in any order.
    dim : int, optional
        State dimension; when given and larger than ``k``, the spectrum is known to be partial.
        When omitted the exponents are taken as the full spectrum.

    Returns
    -------
    float
        ``D_KY``, or NaN as above.

    See Also
    --------
    lyapkit.ks_entropy : The sum of the positive exponents.
    lyapkit.LyapunovSpectrum : Its ``kaplan_yorke_dimension`` property applies this function.

    References
    ----------
    .. [1] J. L. Kaplan and J. A. Yorke, "Chaotic behavior of multidimensional difference
       equations", in *Functional Differential Equations and Approximation of Fixed Points*,
       Lecture Notes in Mathematics 730, Springer, 204–227 (1979).

    Examples
    --------
    >>> import lyapkit as lk
    >>> round(lk.kaplan_yorke_dimension([0.4192, -1.6232]), 3)  # Hénon: 1 + 0.4192/1.6232
    1.258
    >>> lk.kaplan_yorke_dimension([-0.1, -0.5])
    0.0
    >>> lk.kaplan_yorke_dimension([0.5, 0.1], dim=3)  # partial spectrum, sums still >= 0
    nan
    """
    lam = np.sort(np.asarray(exponents, dtype=np.float64))[::-1]
    if np.isnan(lam).any() or np.isposinf(lam).any():
        return float("nan")
    sums = np.cumsum(lam)
    nonneg = np.flatnonzero(sums >= 0)
    if len(nonneg) == 0:
        return 0.0
    j = nonneg[-1] + 1
    if j == len(lam):
        return float(len(lam)) if dim is None or dim == len(lam) else float("nan")
    return float(j + sums[j - 1] / abs(lam[j]))


def ks_entropy(exponents: np.ndarray) -> float:
    """Kolmogorov–Sinai entropy from the positive Lyapunov exponents (Pesin's identity).

    The sum of the positive exponents::

        h_KS = Σ_{λ_i > 0} λ_i

    is the Kolmogorov–Sinai entropy by Pesin's identity (Pesin 1977 [1]_) for SRB measures;
    Ruelle's inequality (Ruelle 1978 [2]_) makes it an upper bound on ``h_KS`` in general.
    When only part of the spectrum was computed and all of it is positive, the sum of all
    positive exponents is underestimated. NaN when an exponent is NaN or ``+inf``; ``−inf``
    exponents (collapsed directions) do not contribute.

    Parameters
    ----------
    exponents : array_like of shape (k,)
        Lyapunov exponents (nats per step), in any order.

    Returns
    -------
    float
        The sum of the positive exponents, in nats per step; NaN as above.

    See Also
    --------
    lyapkit.kaplan_yorke_dimension : The attractor dimension from the same spectrum.
    lyapkit.LyapunovSpectrum : Its ``ks_entropy`` property applies this function.

    References
    ----------
    .. [1] Ya. B. Pesin, "Characteristic Lyapunov exponents and smooth ergodic theory",
       *Russian Mathematical Surveys* 32(4), 55–114 (1977).
    .. [2] D. Ruelle, "An inequality for the entropy of differentiable maps", *Boletim da
       Sociedade Brasileira de Matemática* 9(1), 83–87 (1978).

    Examples
    --------
    >>> import numpy as np
    >>> import lyapkit as lk
    >>> round(lk.ks_entropy([0.4192, -1.6232]), 4)
    0.4192
    >>> round(lk.ks_entropy([0.3, 0.1, -np.inf]), 3)
    0.4
    """
    lam = np.asarray(exponents, dtype=np.float64)
    bad = np.isnan(lam).any() or np.isposinf(lam).any()
    return float("nan") if bad else float(lam[lam > 0].sum())


@dataclass(frozen=True, repr=False)
class LyapunovSpectrum:
    """Lyapunov exponents (nats per step) with their uncertainty and convergence history.

    The result of :func:`lyapkit.lyapunov_spectrum` (QR method, ``λ_i = (1/T) Σ_t log (R_t)_ii``)
    and of :func:`lyapkit.max_lyapunov_twin` (``λ_1 = (1/T) Σ log(d/δ0)``). Derived properties:
    :attr:`lyapkit.LyapunovSpectrum.kaplan_yorke_dimension`,
    ``D_KY = j + Σ_{i≤j} λ_i / |λ_{j+1}|``; :attr:`lyapkit.LyapunovSpectrum.ks_entropy`,
    ``Σ_{λ_i > 0} λ_i``; and :attr:`lyapkit.LyapunovSpectrum.ensemble`, the number of
    trajectories. The constructor's parameters are the attributes of the same names (frozen).

    Parameters
    ----------
    exponents : ndarray of shape (k,), float64
        Ensemble-mean exponents, descending; NaN for members that blew up, ``−inf`` (``log 0``)
        for directions that a singular Jacobian collapsed.
    stderr : ndarray of shape (k,), float64
        Standard errors: over ensemble members (``ensemble >= 2``) or from batch means; 0 for an
        exponent that is ``−inf`` in every member.
    member_exponents : ndarray of shape (ensemble, k), float64
        Exponents of each trajectory.
    history_steps : ndarray of shape (H,), int64
        Post-transient steps of the running estimates (log-spaced, at most 200).
    history : ndarray of shape (H, k), float64
        Running estimates ``(1/s) Σ_{t<s} log R_ii``, ensemble mean.
    finite_time : ndarray of shape (ensemble, W, k), float64, or None
        Finite-time exponents over consecutive windows of ``finite_time_window`` steps.
    finite_time_window : int or None
        Window length (steps) of ``finite_time``.
    max_condition : float
        Largest ``max R_ii / min R_ii`` at a re-orthonormalisation (a lower bound on the condition
        number of the un-normalised basis); re-orthonormalisations at which a direction
        collapsed are left out.
    blowup_steps : ndarray of shape (ensemble,), int64
        Step at which a trajectory was found non-finite (counted from the start, transient
        included), −1 if never.
    final_state, final_basis : ndarray
        State ``(ensemble, dim)`` and orthonormal tangent basis ``(ensemble, dim, k)`` at the end
        (for the twin method the unit separation direction, ``k = 1``).
    dim, steps, transient, reortho_every, seed : int
        State dimension and the run's settings (``seed`` reproduces the run; for the twin
        method ``reortho_every`` holds ``renorm_every``).
    backend, backend_reason, system, jacobian_method, method : str
        Backend used and why (``"requested"``, or how ``backend="auto"`` chose it), ``repr`` of
        the map, how its Jacobian was computed, and ``"qr"`` or ``"twin"``.

    See Also
    --------
    lyapkit.lyapunov_spectrum : Computes it by the QR method.
    lyapkit.max_lyapunov_twin : Computes the largest exponent by the twin method.
    lyapkit.CovariantVectors : The result of :func:`lyapkit.covariant_vectors`.

    Examples
    --------
    >>> import lyapkit as lk
    >>> res = lk.lyapunov_spectrum(lk.Henon(), steps=1000, transient=100, seed=0, backend="numpy")
    >>> res.ensemble, res.member_exponents.shape, res.history.shape[1]
    (1, (1, 2), 2)
    >>> bool(abs(res.kaplan_yorke_dimension - 1.258) < 0.02)  # Hénon: D_KY = 1.258
    True
    >>> bool(res.ks_entropy == res.exponents[0])  # one positive exponent
    True
    >>> dict(res.to_xarray().sizes)
    {'exponent': 2, 'member': 1, 'step': 130}
    """

    exponents: np.ndarray
    stderr: np.ndarray
    member_exponents: np.ndarray
    history_steps: np.ndarray
    history: np.ndarray
    finite_time: np.ndarray | None
    finite_time_window: int | None
    max_condition: float
    blowup_steps: np.ndarray
    final_state: np.ndarray
    final_basis: np.ndarray
    dim: int
    steps: int
    transient: int
    reortho_every: int
    seed: int
    backend: str
    backend_reason: str
    system: str
    jacobian_method: str
    method: str

    @property
    def kaplan_yorke_dimension(self) -> float:
        """Kaplan–Yorke dimension of ``exponents`` (:func:`lyapkit.kaplan_yorke_dimension`).

        ``D_KY = j + Σ_{i≤j} λ_i / |λ_{j+1}|``, ``j`` the largest index with ``Σ_{i≤j} λ_i ≥ 0``;
        NaN when all partial sums are non-negative but ``k < dim``.
        """
        return kaplan_yorke_dimension(self.exponents, self.dim)

    @property
    def ks_entropy(self) -> float:
        """Sum of the positive exponents, ``Σ_{λ_i > 0} λ_i`` (:func:`lyapkit.ks_entropy`).

        The Kolmogorov–Sinai entropy by Pesin's identity, in nats per step.
        """
        return ks_entropy(self.exponents)

    @property
    def ensemble(self) -> int:
        """Number of trajectories (ensemble members)."""
        return self.member_exponents.shape[0]

    def __repr__(self) -> str:
        pairs = ", ".join(
            f"{v:.6g} ± {e:.2g}" for v, e in zip(self.exponents, self.stderr, strict=True)
        )
        return (
            f"LyapunovSpectrum([{pairs}], method={self.method!r}, steps={self.steps}, "
            f"ensemble={self.ensemble}, backend={self.backend!r}, system={self.system})"
        )

    def to_xarray(self) -> Any:
        """The result as an ``xarray.Dataset`` with named dims and units.

        Returns
        -------
        xarray.Dataset
            Variables ``exponent_value`` and ``stderr`` (dim ``exponent``, numbered from 1),
            ``member_exponent`` (``member``, ``exponent``), ``running_estimate`` (``step``,
            ``exponent``), ``blowup_step`` (``member``) and, with finite-time exponents,
            ``finite_time_exponent`` (``member``, ``window``, ``exponent``); units ``1/step``;
            the run's settings, ``kaplan_yorke_dimension`` and ``ks_entropy`` as attributes.
        """
        import xarray as xr

        from lyapkit import __version__

        def var(dims, data, long_name, units=UNIT):
            return xr.Variable(dims, data, {"long_name": long_name, "units": units})

        k = len(self.exponents)
        data = {
            "exponent_value": var(("exponent",), self.exponents, "Lyapunov exponent"),
            "stderr": var(("exponent",), self.stderr, "standard error of the Lyapunov exponent"),
            "member_exponent": var(
                ("member", "exponent"), self.member_exponents, "Lyapunov exponent per trajectory"
            ),
            "running_estimate": var(
                ("step", "exponent"), self.history, "running estimate of the Lyapunov exponent"
            ),
            "blowup_step": var(
                ("member",),
                self.blowup_steps,
                "step at which the trajectory overflowed (-1: never)",
                "step",
            ),
        }
        coords = {
            "exponent": var(("exponent",), np.arange(1, k + 1), "exponent index", "1"),
            "member": var(("member",), np.arange(self.ensemble), "ensemble member", "1"),
            "step": var(("step",), self.history_steps, "steps after the transient", "step"),
        }
        if self.finite_time is not None:
            W = self.finite_time.shape[1]
            data["finite_time_exponent"] = var(
                ("member", "window", "exponent"), self.finite_time, "finite-time Lyapunov exponent"
            )
            coords["window_end"] = var(
                ("window",),
                np.arange(1, W + 1) * self.finite_time_window,
                "last step of the window (after the transient)",
                "step",
            )
        attrs = {
            "title": "Lyapunov spectrum",
            "method": self.method,
            "system": self.system,
            "jacobian_method": self.jacobian_method,
            "backend": self.backend,
            "backend_reason": self.backend_reason,
            "steps": self.steps,
            "transient": self.transient,
            "reortho_every": self.reortho_every,
            "seed": str(self.seed),
            "max_condition": self.max_condition,
            "kaplan_yorke_dimension": self.kaplan_yorke_dimension,
            "ks_entropy": self.ks_entropy,
            "lyapkit_version": __version__,
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Plot the running estimates against steps (log axis), the final values dashed.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on (default: the current Axes, ``plt.gca()``).
        **kwargs
            Passed to ``ax.plot`` for the running estimates.

        Returns
        -------
        matplotlib.axes.Axes
            The Axes drawn on.
        """
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        lines = ax.plot(self.history_steps, self.history, **kwargs)
        for line, value in zip(lines, self.exponents, strict=True):
            ax.axhline(value, color=line.get_color(), lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("steps after transient")
        ax.set_ylabel(f"Lyapunov exponent ({UNIT})")
        ax.set_title(f"{self.method} convergence: {self.system}", fontsize="small")
        return ax
