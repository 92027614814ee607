"""The training commands of ``lyapkit``: ``train``, ``report``, ``demo`` and the ``spectrum`` of a
run file.

Their parser is the core's (:func:`lyapkit.cli.make_parser`), whose handlers import this module
(and with it torch) only when one of these commands runs; the core never imports it otherwise.
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import lyapkit as lk
from lyapkit import cli as core_cli
from lyapkit._checks import integer
from lyapkit._files import check_writable
from lyapkit.store import open_run
from lyapkit.theory import residual_exponents
from lyapkit.trainers.config import load_config
from lyapkit.trainers.report import make_report
from lyapkit.trainers.sweep import load_sweep, run_sweep, save_sweep_figure
from lyapkit.trainers.trainer import Trainer

log = logging.getLogger("lyapkit")


def cmd_train(args: argparse.Namespace) -> int:
    trainer = Trainer(load_config(args.config), progress=not args.quiet)
    try:
        result = trainer.train(resume=args.resume, overwrite=getattr(args, "overwrite", False))
    except FloatingPointError as err:
        log.error("%s", err)
        return core_cli.EXIT_FAILURE
    if result.already_finished:
        print(f"{result.path}: the run is finished; nothing to do")
    print(
        f"{result.path}: best test {result.metric} {result.best_metric:.4g}, "
        f"{result.describe_threshold()}"
    )
    return core_cli.EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.run).exists():
        raise FileNotFoundError(f"run file or sweep directory {args.run!r} does not exist")
    options = {
        name: value
        for name in ("metric", "x", "hue", "over")
        if (value := getattr(args, name)) is not None
    }
    if options and not Path(args.run).is_dir():
        flags = ", ".join(f"--{name}" for name in options)
        raise core_cli.UsageError(f"{flags}: for a sweep directory; {args.run!r} is a run file")
    if Path(args.run).is_dir():
        figure = save_sweep_figure(args.run, args.output, **options)
        print(figure)
        return core_cli.EXIT_OK
    print(make_report(args.run, args.output))
    return core_cli.EXIT_OK


def cmd_sweep(args: argparse.Namespace) -> int:
    """``lyapkit sweep SWEEP.toml``: every unfinished run of the grid; exit 1 unless all finished."""
    if args.workers is not None:
        integer(args.workers, "--workers", 1)
    integer(args.group, "--group", 0)
    spec = load_sweep(args.sweep, args.dir)
    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    try:
        result = run_sweep(
            spec,
            executor=client.get_executor() if client else None,
            workers=args.workers,
            retry_failed=args.retry_failed,
            group=args.group,
            progress=not args.quiet,
        )
    finally:
        if client is not None:
            client.close()
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
    print(f"{spec.directory}: {len(result.status)} runs: {counts}")
    for name, error in result.errors.items():
        if error:
            print(f"  {name}: {result.status[name]}: {error}")
    return core_cli.EXIT_OK if result.ok else core_cli.EXIT_FAILURE


def demo_config(directory: str, steps: int, seed: int) -> dict[str, Any]:
    """The demo's run: a critical WCRNN (rotational residual, r = 1) on the 8×8 digits read pixel
    by pixel (64 steps), SGD with momentum, every diagnostic on a light schedule."""
    return {
        "run": {"name": "demo", "dir": directory, "seed": seed},
        "task": {"name": "sdigits"},
        "model": {
            "name": "WCRNN",
            "hidden_size": 32,
            "gamma": 0.1,
            "residual": {"kind": "rotational", "phi": 2 * math.pi / 8, "r": 1.0},
        },
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "clip_grad_norm": 1.0},
        "training": {
            "steps": steps,
            "batch_size": 64,
            "eval_every": max(1, steps // 12),
            "checkpoint_every": max(1, steps // 3),
        },
        "diagnostics": {
            "lyapunov": {"logspaced": 4, "steps": 256, "transient": 64},
            "gradients": {"every": max(1, steps // 6)},
            "curvature": {"every": steps, "k": 3, "batch": 16},  # before and after training
            "effective_lr": {"every": steps, "k": 3, "batch": 16},
        },
    }


def weak_coupling_table(seed: int, steps: int) -> None:
    """Measured exponents of driven WCRNN maps against ``log|eig R|`` as the coupling γ shrinks."""
    rng = np.random.default_rng(seed)
    n, phi = 16, 2 * math.pi / 28  # sMNIST's characteristic frequency (Dubinin & Effenberger)
    R = np.zeros((n, n))
    for i, a in enumerate(phi * (1 + np.arange(n // 2) / n)):
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = 0.98 * np.array(
            [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
        )
    W, V = rng.standard_normal((n, n)) / math.sqrt(n), rng.standard_normal((n, 1))
    inputs = rng.uniform(0, 1, (steps + 200, 1))
    theory = residual_exponents(R)
    print(f"1. Analysis: WCRNN maps, n={n}, rotational residual r=0.98, driven by U(0,1) inputs")
    print(f"   theory (gamma -> 0): every exponent is log 0.98 = {theory[0]:.5f} per step")
    print(f"   {'gamma':>7}  {'lambda_1':>9}  {'lambda_n':>9}  {'max |lambda - theory|':>22}")
    for gamma in (0.3, 0.1, 0.03, 0.01):
        res = lk.lyapunov_spectrum(
            lk.WCRNNMap(R, W, gamma, V=V),
            steps=steps,
            transient=200,
            inputs=inputs,
            seed=seed,
            backend="numpy",  # no compilation: the fastest start for a short run
            # |λ| ≤ 0.06 per step: 8 steps grow the basis by < e^0.5, and the QR of every step
            # was two thirds of the time (the table is the same to the digits shown)
            reortho_every=8,
        )
        err = np.abs(res.exponents - theory).max()
        print(
            f"   {gamma:>7.2f}  {res.exponents[0]:>9.5f}  {res.exponents[-1]:>9.5f}  {err:>22.2e}"
        )


def cmd_demo(args: argparse.Namespace) -> int:
    """Analyse WCRNN maps against theory, then train one with diagnostics and report."""
    integer(args.steps, "--steps", 1)
    integer(args.analysis_steps, "--analysis-steps", 1)
    weak_coupling_table(args.seed, args.analysis_steps)
    directory = args.dir or tempfile.mkdtemp(prefix="lyapkit-demo-")
    config = demo_config(directory, args.steps, args.seed)
    print("\n2. Training: WCRNN (32 units, critical rotational residual) on 8x8 digits as 64-step")
    print(
        f"   sequences, {args.steps} SGD steps with diagnostics, recorded into {directory}/demo.nc"
    )
    trainer = Trainer(config, progress=not args.quiet)
    result = trainer.train(overwrite=True)  # the demo's own run: a rerun replaces it
    run = open_run(result.path)
    lyap = run["lyapunov"].to_dataset()
    measured, theory = np.asarray(lyap["exponents"][-1]), np.asarray(lyap["theory"][-1])
    curvature = run["curvature"].to_dataset()
    diagnostics = sum(v for k, v in result.seconds.items() if k not in ("training", "evaluation"))
    print(
        f"   best test accuracy {result.best_metric:.3f} (chance 0.1); "
        f"{result.describe_threshold()}"
    )
    print(
        f"   Lyapunov exponents after training: {measured[0]:+.4f} … {measured[-1]:+.4f} per step;"
        f" theory log|eig R| = {theory[0]:+.4f}; max deviation {np.abs(measured - theory).max():.3f}"
    )
    print(
        f"   top GGN eigenvalue {float(curvature['eigenvalues'][-1, 0]):.3g} against the SGD "
        f"stability bound (2+2β)/η = {(2 + 2 * 0.9) / 0.1:.3g}"
    )
    print(
        f"   time: training {result.seconds['training']:.1f} s, diagnostics {diagnostics:.1f} s "
        f"({', '.join(f'{k} {v:.1f}' for k, v in result.seconds.items() if k != 'training')})"
    )
    print(f"   report: {make_report(result.path)}")
    return core_cli.EXIT_OK


def cmd_run_spectrum(args: argparse.Namespace) -> int:
    """``lyapkit spectrum RUN.nc``: the spectrum of the model saved in a run file (its checkpoint
    beside it), driven by the run's test sequences."""
    if not Path(args.map).exists():
        raise FileNotFoundError(f"run file {args.map!r} does not exist")
    if args.output:  # before the computation, not after it
        check_writable(args.output, "--output")
    trainer = Trainer.from_run(args.map)
    res = trainer.spectrum(
        args.steps,
        transient=args.transient,
        sequences=args.ensemble or 4,
        k=args.k,
        backend="numpy" if args.backend == "auto" else args.backend,
    )
    print(core_cli.format_spectrum(res))
    if args.output:
        core_cli.save_dataset(res.to_xarray(), args.output)
    return core_cli.EXIT_OK if np.isfinite(res.exponents).all() else core_cli.EXIT_FAILURE


# The one entry point is lyapkit.cli.main; it is also reachable here for code that imported it
# from this module.
main = core_cli.main
