"""Result objects: numpy arrays, ``to_xarray()`` with named dims and units, and ``plot(ax=)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNIT = "1/step"


def kaplan_yorke_dimension(exponents: np.ndarray, dim: int | None = None) -> float:
    """Kaplan–Yorke dimension ``D = j + Σ_{i≤j} λ_i / |λ_{j+1}|`` (Kaplan & Yorke 1979).

    ``j`` is the largest index with ``Σ_{i≤j} λ_i ≥ 0``. ``D = 0`` when ``λ_1 < 0``; ``D = dim`` when all
    partial sums are non-negative and the full spectrum is given; NaN when they are and only part
    of the spectrum is (more exponents are needed), or when an exponent is NaN or ``+inf``. An
    exponent ``−inf`` (a direction collapsed by a singular Jacobian) is a number like any other:
    ``λ_{j+1} = −inf`` gives ``D = j``.
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
    """Sum of the positive exponents, ``Σ_{λ_i > 0} λ_i``: the Kolmogorov–Sinai entropy by Pesin's
    identity (Ruelle's inequality makes it an upper bound on ``h_KS`` in general; equality holds
    for SRB measures). When only part of the spectrum was computed and all of it is positive, the
    sum of all positive exponents is underestimated. NaN when an exponent is NaN or ``+inf``;
    ``−inf`` exponents (collapsed directions) do not contribute."""
    lam = np.asarray(exponents, dtype=np.float64)
    bad = np.isnan(lam).any() or np.isposinf(lam).any()
    return float("nan") if bad else float(lam[lam > 0].sum())


@dataclass(frozen=True, repr=False)
class LyapunovSpectrum:
    """Lyapunov exponents (nats per step) with their uncertainty and convergence history.

    Attributes
    ----------
    exponents : (k,) float64
        Ensemble-mean exponents, descending; NaN for members that blew up, ``−inf`` (``log 0``)
        for directions that a singular Jacobian collapsed.
    stderr : (k,) float64
        Standard errors: over ensemble members (``ensemble >= 2``) or from batch means; 0 for an
        exponent that is ``−inf`` in every member.
    member_exponents : (ensemble, k) float64
        Exponents of each trajectory.
    history_steps : (H,) int64
        Post-transient steps of the running estimates (log-spaced, at most 200).
    history : (H, k) float64
        Running estimates ``(1/s) Σ_{t<s} log R_ii``, ensemble mean.
    finite_time : (ensemble, W, k) float64 or None
        Finite-time exponents over consecutive windows of ``finite_time_window`` steps.
    max_condition : float
        Largest ``max R_ii / min R_ii`` at a re-orthonormalisation (a lower bound on the condition
        number of the un-normalised basis); re-orthonormalisations at which a direction
        collapsed are left out.
    blowup_steps : (ensemble,) int64
        Step at which a trajectory was found non-finite, −1 if never.
    final_state, final_basis : arrays
        State ``(ensemble, dim)`` and orthonormal tangent basis ``(ensemble, dim, k)`` at the end.
    finite_time_window : int or None
        Window length (steps) of ``finite_time``.
    dim, steps, transient, reortho_every, seed : int
        State dimension and the run's settings (``seed`` reproduces the run).
    backend, backend_reason, system, jacobian_method, method : str
        Backend used and why (``"requested"``, or how ``backend="auto"`` chose it), ``repr`` of
        the map, how its Jacobian was computed, and ``"qr"`` or ``"twin"``.
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
        """See :func:`lyapkit.results.kaplan_yorke_dimension`."""
        return kaplan_yorke_dimension(self.exponents, self.dim)

    @property
    def ks_entropy(self) -> float:
        """See :func:`lyapkit.results.ks_entropy`."""
        return ks_entropy(self.exponents)

    @property
    def ensemble(self) -> int:
        """Number of trajectories."""
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
        """An ``xarray.Dataset`` with dims ``exponent``, ``member``, ``step``, ``window``."""
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
        """Plot the running estimates against steps (log axis); returns the matplotlib Axes."""
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
