"""A grid of small runs trained as one vectorised group against the same runs one after another.

The grid: the demo's run (``lyapkit.trainers.cli.demo_config``: WCRNN, 32 units, rotational
residual, SGD with momentum 0.9 and gradient clipping at 1.0, on the 8×8 digits read as 64-step
sequences, batch 64) without its diagnostics, 300 steps (``--quick``: 30), for 16 members
(``--quick``: 4): residual strength r ∈ {0.9, 0.95, 1.0, 1.05} × 4 seeds. Baseline: each member
by ``Trainer(config).train(overwrite=True)``, one after another in this process (each on the one
CPU thread Trainer picks for a small model). Grouped: ``train_group(configs, resume=False,
overwrite=True)``. Both write every member's run file and checkpoints (same schedule) and include
building the trainers. Target: the group ≥ 5× faster than the baseline.

The same grid as a sweep on a pool of 2 worker processes (``run_sweep(spec, workers=2)``, the
common way to use both cores), one run at a time and in groups of 8 (``group=8``), spawning the
workers and validating the sweep included.

On the CPU the grouped steps run in numba-compiled loops (``lyapkit.backends._numba_group``: one
member per task, a BLAS product and the step's elementwise work per time step).

Ceiling, measured in the same run: the torch loop's batched products alone (one ``bmm`` per time
step forward, three backward, the same shapes and dtype, on the faster of one thread and all
cores), with none of the elementwise work or bookkeeping: the products as MKL runs them at their
best, a reference for the compiled loops (which run the same products through SciPy's BLAS, one
member at a time). The baseline's training-step time over theirs is the steps' speed-up at that
rate; with the rest of the grouped run as measured (building the runs, store flushes,
evaluations, checkpoints), the baseline's time over the products' plus that rest is the whole's.

    python benchmarks/bench_group.py [--quick] [--repeats N]
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

import torch
from _timing import (
    best_of_interleaved,
    cli,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    verdict,
)

from lyapkit.trainers.cli import demo_config
from lyapkit.trainers.group import train_group
from lyapkit.trainers.sweep import run_sweep, sweep_spec
from lyapkit.trainers.trainer import Trainer

TARGET = 5.0
RESIDUALS = (0.9, 0.95, 1.0, 1.05)


def grid(directory: str, steps: int, members: int) -> list[dict]:
    configs = []
    for i in range(members):
        config = demo_config(directory, steps, seed=i // 4)
        config["run"]["name"] = f"member{i:02d}"
        config["model"]["residual"]["r"] = RESIDUALS[i % 4]
        config["diagnostics"] = {}
        configs.append(config)
    return configs


def sweep(steps: int, members: int, group: int) -> None:
    """The grid of :func:`grid` as a new sweep on a pool of 2 worker processes."""
    raw = demo_config("unused", steps, seed=0)
    del raw["run"]
    raw["diagnostics"] = {}
    axes = {"model.residual.r": list(RESIDUALS), "run.seed": list(range(members // 4))}
    raw["sweep"] = {"dir": tempfile.mkdtemp(prefix="lyapkit-bench-sweep-"), "grid": axes}
    result = run_sweep(sweep_spec(raw), workers=2, group=group)
    if not result.ok:
        raise RuntimeError(f"the sweep did not finish: {result.counts()}")


def products_seconds(config: dict, members: int, steps: int) -> float:
    """Seconds that ``steps`` grouped training steps of ``members`` members spend in their batched
    products alone: per time step ``t``, forward ``[x_{t−1}, s_t, 1] (B, n+m+1) @ (n+m+1, 2n)``,
    backward ``δ_tᵀ [x_{t−1}, s_t, 1]``, ``g_t R`` and ``δ_t W`` (``trainers/group.py``'s
    ``_GroupLoop``), each one ``bmm`` over the members; best of 3, on the faster of one thread
    and all cores."""
    trainer = Trainer(config)
    n, (_, T, m) = trainer.model.state_size, trainer._probe[0].shape
    B, width = config["training"]["batch_size"], n + m + 1

    def randn(*shape):
        return torch.randn(*shape, dtype=trainer.dtype)

    xs, weights, row = (
        randn(T + 1, members, B, width),
        randn(members, width, 2 * n),
        randn(members, B, 2 * n),
    )
    delta, g, g_next = randn(members, B, n), randn(members, B, n), randn(members, B, n)
    R, W, grad = randn(members, n, n), randn(members, n, n), randn(members, n, width)

    def one_step() -> None:
        for t in range(T):
            torch.bmm(xs[t], weights, out=row)
        for t in range(T - 1, -1, -1):
            grad.baddbmm_(delta.transpose(1, 2), xs[t])
            if t:
                torch.bmm(g, R, out=g_next).baddbmm_(delta, W)

    previous, best = torch.get_num_threads(), float("inf")
    try:
        for threads in sorted({1, os.cpu_count() or 1}):
            torch.set_num_threads(threads)
            one_step()
            for _ in range(3):
                tick = time.perf_counter()
                for _ in range(10):
                    one_step()
                best = min(best, (time.perf_counter() - tick) / 10)
    finally:
        torch.set_num_threads(previous)
    return best * steps


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=2, quick_repeats=1)
    steps, members = (30, 4) if args.quick else (300, 16)
    logging.getLogger("lyapkit").setLevel(logging.WARNING)
    print_header(
        "Grouped training of a grid vs one run after another", args, members=members,
        steps=steps, model="WCRNN hidden 32 (demo)", task="sdigits", batch=64,
    )  # fmt: skip
    directory = tempfile.mkdtemp(prefix="lyapkit-bench-group-")
    configs = grid(directory, steps, members)

    def one_by_one():
        return [Trainer(config).train(overwrite=True) for config in configs]

    def grouped():
        return train_group(configs, resume=False, overwrite=True)

    def pool():
        sweep(steps, members, group=0)

    def pool_grouped():
        sweep(steps, members, group=8)

    modes = [one_by_one, grouped, pool, pool_grouped]
    baseline, group, pooled, pooled_group = best_of_interleaved(modes, args.repeats, modes)
    differences = [
        abs(a.best_metric - b.best_metric)
        for a, b in zip(baseline.result, group.result, strict=True)
    ]
    training = [sum(r.seconds["training"] for r in t.result) for t in (baseline, group)]
    ratio = baseline.best / group.best
    rows = [
        ["one after another (baseline)", fmt_seconds(baseline.best), f"{baseline.spread:.2f}",
         fmt_seconds(training[0]), "1x"],
        ["train_group", fmt_seconds(group.best), f"{group.spread:.2f}",
         fmt_seconds(training[1]), fmt_ratio(ratio)],
        ["sweep, 2 workers, one run at a time", fmt_seconds(pooled.best),
         f"{pooled.spread:.2f}", "", fmt_ratio(baseline.best / pooled.best)],
        ["sweep, 2 workers, groups of 8", fmt_seconds(pooled_group.best),
         f"{pooled_group.spread:.2f}", "", fmt_ratio(baseline.best / pooled_group.best)],
    ]  # fmt: skip
    print_table(["method", "all runs", "spread", "training steps", "speed-up"], rows)
    print(f"training steps alone (last repeat): {fmt_ratio(training[0] / training[1])} faster")
    floor = products_seconds(configs[0], members, steps)
    # the training seconds are those of each mode's last repeat: take its total with them
    rest = group.times[-1] - training[1]  # the grouped run outside its training steps
    print(f"ceiling: the torch loop's batched products alone take {fmt_seconds(floor)}: training "
          f"steps at that rate would be {fmt_ratio(training[0] / floor)} faster than the "
          f"baseline's; with the rest of the grouped run as measured ({fmt_seconds(rest)}), the "
          f"group would be {fmt_ratio(baseline.times[-1] / (floor + rest))} faster")  # fmt: skip
    print(f"largest difference of a member's best test accuracy: {max(differences):.2g} "
          "(float32 training amplifies rounding over hundreds of steps; in float64 the members "
          "agree to 1e-10, tests/test_group.py)")  # fmt: skip
    best = max(ratio, baseline.best / pooled_group.best)
    print(f"target: {members} members grouped >= {TARGET:g}x faster than one after another: "
          f"{fmt_ratio(best)} (the faster grouped mode) -> {verdict(best >= TARGET)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
