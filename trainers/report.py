"""A one-page PNG report of a run: metrics, Lyapunov spectrum, gradient propagation, curvature."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from lyapkit._files import atomic_write, check_writable
from lyapkit.store import open_run, run_config


def _missing(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"{what}\nnot recorded in this run", ha="center", va="center")
    ax.set_axis_off()


def plot_metrics(run: Any, ax: Any) -> None:
    """Training and test loss (log scale) and the test metric on a twin axis."""
    if "metrics" not in run.children:
        return _missing(ax, "metrics")
    ds = run["metrics"].to_dataset()
    ax.semilogy(ds["step"], ds["train_loss"], label="train loss")
    ax.semilogy(ds["step"], ds["test_loss"], label="test loss")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    metric = next(
        (v for v in ds.data_vars if str(v).startswith("test_") and v != "test_loss"), None
    )
    if metric is not None:
        twin = ax.twinx()
        twin.plot(ds["step"], ds[metric], color="k", ls=":", label=str(metric))
        twin.set_ylabel(str(metric).replace("_", " "))
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title("loss and test metric")


def plot_lyapunov(run: Any, ax: Any) -> None:
    """Exponents against the training step; the weak-coupling prediction as dashed lines."""
    if "lyapunov" not in run.children:
        return _missing(ax, "Lyapunov spectrum")
    ds = run["lyapunov"].to_dataset()
    for i in range(ds.sizes["exponent"]):
        line = ax.plot(ds["step"], ds["exponents"][:, i], marker="o", ms=3)[0]
        if "theory" in ds:
            ax.axhline(float(ds["theory"][-1, i]), color=line.get_color(), ls="--", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("exponent (1/step)")
    ax.set_title("Lyapunov spectrum (dashed: log|eig R|)")


def plot_gradients(run: Any, ax: Any) -> None:
    """Heatmap of the batch-mean log gradient norm over (training step, sequence time)."""
    if "gradients" not in run.children:
        return _missing(ax, "gradient propagation")
    ds = run["gradients"].to_dataset()
    values = np.asarray(ds["mean_log"])
    mesh = ax.pcolormesh(np.asarray(ds["time"]), np.asarray(ds["step"]), values, shading="nearest")
    ax.figure.colorbar(mesh, ax=ax, label="mean log ‖∂L/∂x_t‖")
    ax.set_xlabel("sequence time t")
    ax.set_ylabel("training step")
    ax.set_title("gradient propagation")


def plot_curvature(run: Any, ax: Any) -> None:
    """Top curvature eigenvalues against the step, with the SGD stability bound (2 + 2β)/η."""
    if "curvature" not in run.children:
        return _missing(ax, "curvature")
    ds = run["curvature"].to_dataset()
    ax.semilogy(ds["step"], np.abs(np.asarray(ds["eigenvalues"])), marker="o", ms=3)
    config = run_config(run)
    if "metrics" in run.children and config["optimizer"]["name"] == "sgd":
        metrics = run["metrics"].to_dataset()
        beta = config["optimizer"]["momentum"]
        ax.semilogy(
            metrics["step"], (2 + 2 * beta) / metrics["lr"], "k--", label="stability bound (2+2β)/η"
        )
        ax.legend(fontsize="small")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"|top {ds.attrs.get('kind', '')} eigenvalues|")
    ax.set_title("curvature")


def make_report(run_path: str | Path, png_path: str | Path | None = None) -> Path:
    """Write the report sheet of the run file ``run_path`` as a PNG (default: beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_path = Path(run_path)
    png_path = run_path.with_suffix(".png") if png_path is None else Path(png_path)
    check_writable(png_path, "png_path")
    run = open_run(run_path)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for plot, ax in zip(
        (plot_metrics, plot_lyapunov, plot_gradients, plot_curvature), axes.flat, strict=True
    ):
        plot(run, ax)
    fig.suptitle(
        f"{run_path.name}: {run_config(run)['model']['name']} on {run_config(run)['task']['name']}"
    )
    fig.tight_layout()
    # PNG whatever the suffix, at exactly png_path (savefig would append ".png" to a bare name)
    sheet = io.BytesIO()
    fig.savefig(sheet, dpi=110, format="png")
    plt.close(fig)
    atomic_write(png_path, sheet.getbuffer())
    return png_path
