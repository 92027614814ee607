"""Produce the figures of docs/reproductions.md (``python docs/figures/make_figures.py``)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import lyapkit as lk  # noqa: E402
from lyapkit.theory import sensitivity_second_moment, wcrnn_prediction  # noqa: E402

HERE = Path(__file__).parent
SEED = 0


def rotational_residual(n: int, r: float, phi: float) -> np.ndarray:
    """Block-diagonal ``r [[cos φ, −sin φ], [sin φ, cos φ]]`` residual."""
    R = np.zeros((n, n))
    block = r * np.array([[math.cos(phi), -math.sin(phi)], [math.sin(phi), math.cos(phi)]])
    for i in range(0, n, 2):
        R[i : i + 2, i : i + 2] = block
    return R


def wcrnn_weak_coupling(path: Path, steps: int = 20_000) -> None:
    """Exponents of linear-residual WCRNNs against γ: they approach log|eig R| as γ → 0."""
    n = 16
    rng = np.random.default_rng(SEED)
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    V = rng.standard_normal((n, 1))
    inputs = rng.uniform(0, 1, (steps + 500, 1))  # pixel-like intensities in [0, 1]
    gammas = np.geomspace(1e-3, 1.0, 13)
    residuals = {
        "homogeneous  R = 0.95 I": 0.95 * np.eye(n),
        "rotational  r = 0.98, φ = 2π/28": rotational_residual(n, 0.98, 2 * math.pi / 28),
    }
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, (label, R) in zip(axes, residuals.items(), strict=True):
        spectra = np.array([
            lk.lyapunov_spectrum(lk.WCRNNMap(R, W, g, V=V), steps=steps, transient=500,
                                 inputs=inputs, seed=SEED).exponents
            for g in gammas
        ])  # fmt: skip
        theory = np.log(np.abs(np.linalg.eigvals(R)))
        ax.plot(gammas, spectra, color="tab:blue", lw=0.8, alpha=0.7)
        ax.axhline(theory.max(), color="k", ls="--", lw=1, label="log|eig R| (theory, γ → 0)")
        ax.set_xscale("log")
        ax.set_xlabel("coupling γ")
        ax.set_title(label, fontsize="medium")
        ax.legend(fontsize="small", loc="lower left")
    axes[0].set_ylabel("Lyapunov exponents (1/step)")
    fig.suptitle(
        "WCRNN, n = 16, driven by U(0, 1) inputs: all 16 exponents against γ", fontsize="medium"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def henon_convergence(path: Path, steps: int = 10**7) -> None:
    """Running estimates of Hénon's exponents converging to the published values."""
    res = lk.lyapunov_spectrum(lk.Henon(), steps=steps, transient=1000, ensemble=4, seed=SEED)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    res.plot(ax=ax)
    for value in (0.4192, -1.6232):
        ax.axhline(value, color="k", lw=0.6, ls=":")
    ax.set_title(
        f"Hénon a=1.4, b=0.3: {res.exponents[0]:.5f} ± {res.stderr[0]:.1g}, "
        f"{res.exponents[1]:.5f} ± {res.stderr[1]:.1g}",
        fontsize="small",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sensitivity_moment(path: Path, samples: int = 4000, steps: int = 800) -> None:
    """E[(∂_λ h)²] of h_t = λ h_{t−1} + x_t against λ for AR(1) inputs, with Monte-Carlo points."""
    rng = np.random.default_rng(SEED)
    grid = np.linspace(0.0, 0.98, 200)
    points = np.array([0.2, 0.5, 0.7, 0.85, 0.93])  # 0.93^800 < 1e-25: the start is forgotten
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for rho, color in zip((0.0, 0.5, 0.9), ("tab:blue", "tab:orange", "tab:green"), strict=True):
        ax.plot(grid, sensitivity_second_moment(grid, rho), color=color, label=f"ρ = {rho}")
        h = dh = np.zeros((points.size, samples))
        x = rng.standard_normal(samples)
        for _ in range(steps):  # forward-mode derivative: ∂h_t = λ ∂h_{t−1} + h_{t−1}
            h, dh = points[:, None] * h + x, points[:, None] * dh + h
            x = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(samples)
        moment = dh**2
        ax.errorbar(points, moment.mean(axis=1), 2 * moment.std(axis=1) / math.sqrt(samples),
                    fmt="o", ms=3.5, color=color)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("λ")
    ax.set_ylabel("E[(∂h/∂λ)²]")
    ax.set_title(
        f"closed form (lines) and Monte Carlo ({samples} sequences, ± 2 s.e.)", fontsize="small"
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def wcrnn_exponents_vs_theory(path: Path, steps: int = 4000) -> None:
    """Measured WCRNN exponents against log|eig R| as γ grows: weak coupling breaks down."""
    n = 12
    rng = np.random.default_rng(SEED)
    moduli = rng.uniform(0.3, 0.97, n // 2)
    D = np.zeros((n, n))
    for i, (r, phi) in enumerate(zip(moduli, rng.uniform(0.2, 3.0, n // 2), strict=True)):
        D[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = rotational_residual(2, r, phi)
    D[:4, :4] = np.diag(np.r_[moduli[:2], -moduli[:2]])  # two pairs with real eigenvalues
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    R = Q @ D @ Q.T
    W = rng.standard_normal((n, n)) / math.sqrt(n)
    V = rng.standard_normal((n, 1))
    inputs = rng.uniform(0, 1, (steps + 300, 1))
    theory = wcrnn_prediction(R).exponents
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    lo, hi = theory.min() - 0.15, 0.15
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="log|eig R| (γ → 0)")
    for gamma, color in zip((0.01, 0.1, 0.3, 1.0), plt.cm.viridis(np.linspace(0, 0.9, 4)),
                            strict=True):  # fmt: skip
        res = lk.lyapunov_spectrum(lk.WCRNNMap(R, W, gamma, V=V), steps=steps, transient=300,
                                   inputs=inputs, seed=SEED, backend="numpy")  # fmt: skip
        ax.plot(theory, res.exponents, "o", ms=4, color=color, label=f"γ = {gamma}")
    ax.set_xlabel("log|eig R| (prediction)")
    ax.set_ylabel("measured exponent (1/step)")
    ax.set_title("linear-residual WCRNN, n = 12, normal R", fontsize="small")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    wcrnn_weak_coupling(HERE / "wcrnn_weak_coupling.png")
    henon_convergence(HERE / "henon_convergence.png")
    sensitivity_moment(HERE / "sensitivity_moment.png")
    wcrnn_exponents_vs_theory(HERE / "wcrnn_exponents_vs_theory.png")
