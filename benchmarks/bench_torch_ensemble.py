"""Ensemble throughput (trajectory-steps per second) of the torch backend vs the numba backend.

For the Hénon map and a 32-unit tanh network, ensembles of 1, 16, 256 and 4096 members on the CPU
(and on CUDA when ``torch.cuda.is_available()``), full spectrum with reortho_every=1. The torch
backend batches the members into one array; the numba backend runs them in parallel with
``prange``. The step count of each case is calibrated so that one call takes about a second
(``--quick``: 20 ms), then the best of the repeats counts. Ratios: against ensemble=1 of the same
backend and device, and against numba for the same ensemble.

    python benchmarks/bench_torch_ensemble.py [--quick] [--repeats N]
"""

from __future__ import annotations

import numba
import torch
from _timing import (
    best_of,
    calibrate_steps,
    cli,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    use_all_cores_in_torch,
)

import lyapkit

ENSEMBLES = (1, 16, 256, 4096)
QUICK_ENSEMBLES = (1, 16, 256)


def backends() -> list[tuple[str, str | None]]:
    """(backend, device) pairs: numba first (it is the reference of the torch/numba ratio)."""
    pairs = [("numba", None), ("torch", "cpu")]
    if torch.cuda.is_available():
        pairs.append(("torch", "cuda"))
    return pairs


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    ensembles = QUICK_ENSEMBLES if args.quick else ENSEMBLES
    target_s = 0.02 if args.quick else 1.0
    threads = use_all_cores_in_torch()
    print_header(
        "Ensemble throughput, torch vs numba backend", args,
        torch_threads=threads, numba_threads=numba.get_num_threads(),
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else "not available",
        seconds_per_call=target_s,
    )  # fmt: skip

    systems = {"henon": lyapkit.Henon(), "tanh_network(32)": lyapkit.TanhNetwork(32)}
    rows, throughput = [], {}
    for label, system in systems.items():
        for backend, device in backends():
            where = device or "cpu"
            for E in ensembles:

                def run(steps: int, backend=backend, device=device, E=E, system=system):
                    extra = {} if device is None else {"device": device, "dtype": "float64"}
                    return lyapkit.lyapunov_spectrum(
                        system, steps=steps, ensemble=E, backend=backend, history=False,
                        seed=0, **extra,
                    )  # fmt: skip

                run(2)  # warm-up: numba compilation, torch and CUDA initialisation
                steps = calibrate_steps(run, target_s=target_s)
                # The calibration calls warmed it up as well.
                t = best_of(lambda run=run, steps=steps: run(steps), args.repeats, lambda: None)
                rate = throughput[label, backend, where, E] = E * steps / t.best
                vs_one = rate / throughput[label, backend, where, ensembles[0]]
                vs_numba = rate / throughput[label, "numba", "cpu", E]
                rows.append([label, backend, where, E, steps, fmt_seconds(t.best), f"{rate:.3g}",
                             fmt_ratio(vs_one), fmt_ratio(vs_numba), f"{t.spread:.2f}",
                             fmt_float(t.result.exponents[0])])  # fmt: skip
    print_table(
        ["map", "backend", "device", "ensemble", "steps", "best time", "traj-steps/s",
         f"vs E={ensembles[0]}", "vs numba", "spread", "lambda1"], rows,
        title="Throughput = ensemble * steps / best time (float64, reortho_every=1)",
    )  # fmt: skip
    print("vs E=1: throughput over the same backend and device at ensemble=1; vs numba: over the")
    print("numba backend at the same ensemble size; spread = slowest/fastest repeat.")
    print_footer()


if __name__ == "__main__":
    main()
