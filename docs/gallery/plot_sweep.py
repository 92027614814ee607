"""
A sweep: best performance against the residual strength
=======================================================

A small grid of WCRNNs on the adding problem, r × seed, trained by one call and read back as
one xarray dataset over the swept keys; the figure is the papers' kind: a metric against one
key, mean ± standard deviation over seeds. The budget is tiny (150 steps, 8 units, ADD(20)), so
the networks have barely started learning; ``docs/howto/sweeps.md`` and the reproductions run
real grids.
"""

import tempfile

import matplotlib.pyplot as plt

import lyapkit as lk
from lyapkit.trainers.sweep import plot_sweep, run_sweep, sweep_spec

directory = tempfile.mkdtemp()
spec = sweep_spec(
    {
        "task": {"name": "adding", "T": 20},
        "model": {"name": "WCRNN", "hidden_size": 8, "residual": {"kind": "homogeneous", "r": 1.0}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"steps": 150, "batch_size": 32, "eval_every": 50, "checkpoint_every": 150},
        "sweep": {
            "dir": directory,
            "grid": {"model.residual.r": [0.8, 0.9, 1.0], "run.seed": [0, 1]},
        },
    }
)
result = run_sweep(spec, workers=1, group=6)
print(result.counts())

summary = lk.open_sweep(directory).summary
print(summary["best_metric"])

fig, ax = plt.subplots(figsize=(6, 3.5))
plot_sweep(summary, "best_metric", x="r", ax=ax)
fig.tight_layout()
