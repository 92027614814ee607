"""Full spectrum of a 128-unit tanh network: lyapkit's backends vs the usual per-step autograd loop.

The baseline is the loop most RNN papers use: every step, ``torch.autograd.functional.jacobian`` of
``x -> tanh(g W x)``, then ``torch.linalg.qr(J @ Q)`` and ``log|diag R|`` accumulated (float64). It
is timed on fewer steps than lyapkit (it is slow) and compared per step:
speed-up = baseline ms/step / lyapkit ms/step. Target: >= 20x.

Before timing, the baseline and every backend run a common short trajectory from the same state
and the same initial basis; their exponents must agree (the maximum difference is printed).

    python benchmarks/bench_tanh_network.py [--quick] [--repeats N]
"""

from __future__ import annotations

import numpy as np
import torch
from _timing import (
    best_of,
    cli,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    use_all_cores_in_torch,
    verdict,
)

import lyapkit
from lyapkit.lyapunov import _random_bases  # the basis lyapunov_spectrum draws from its seed

N, GAIN, SEED = 128, 2.0, 0
TARGET = 20.0  # baseline ms/step / lyapkit ms/step
BACKENDS = {  # name -> extra lyapunov_spectrum arguments
    "torch": {"dtype": "float64", "device": "cpu"},
    "numpy": {},
    "numba": {},
}


def baseline_spectrum(gW: torch.Tensor, x0: torch.Tensor, Q0: torch.Tensor, steps: int):
    """Exponents (descending) by the per-step autograd Jacobian + Householder QR loop."""

    def f(x):
        return torch.tanh(gW @ x)

    x, Q = x0.clone(), Q0.clone()
    acc = torch.zeros(Q.shape[1], dtype=torch.float64)
    for _ in range(steps):
        J = torch.autograd.functional.jacobian(f, x)
        x = f(x)
        Q, R = torch.linalg.qr(J @ Q)
        acc += torch.log(torch.abs(torch.diagonal(R)))
    return np.sort(acc.numpy() / steps)[::-1]


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=3, quick_repeats=1)
    steps = 300 if args.quick else 10**4
    baseline_steps = 10 if args.quick else 300
    check_steps = 30 if args.quick else 100
    threads = use_all_cores_in_torch()
    print_header(
        f"TanhNetwork({N}, g={GAIN}) full spectrum vs per-step autograd + QR", args,
        steps=steps, baseline_steps=baseline_steps, reortho_every=1, torch_threads=threads,
    )  # fmt: skip

    net = lyapkit.TanhNetwork(N, g=GAIN)
    x0 = net.initial_state(np.random.default_rng(SEED))
    # With x0 given, lyapunov_spectrum draws the initial basis as the first use of its seeded rng.
    Q0 = _random_bases(np.random.default_rng(SEED), 1, N, N)[0]
    gW = torch.as_tensor(net.parameters()["gW"], dtype=torch.float64)
    x0_t, Q0_t = torch.as_tensor(x0), torch.as_tensor(Q0)

    def spectrum(backend: str, n_steps: int):
        return lambda: lyapkit.lyapunov_spectrum(
            net, steps=n_steps, x0=x0, seed=SEED, backend=backend, history=False,
            reortho_every=1, **BACKENDS[backend],
        )  # fmt: skip

    # 1. Same exponents on a common short run (before chaos separates the trajectories).
    reference = baseline_spectrum(gW, x0_t, Q0_t, check_steps)
    check_rows = []
    for name in BACKENDS:
        lam = spectrum(name, check_steps)().exponents
        diff = np.abs(lam - reference).max()
        dsum = abs(lam.sum() - reference.sum())
        check_rows.append([name, check_steps, f"{diff:.2e}", f"{dsum:.2e}", f"{lam[0]:.6f}",
                           f"{reference[0]:.6f}", f"{lam[-1]:.6f}",
                           f"{reference[-1]:.6f}"])  # fmt: skip
    print_table(
        ["backend", "steps", "max|dlambda|", "|dsum|", "lambda1", "baseline", "lambda128",
         "baseline"], check_rows,
        title="Check: lyapkit vs baseline on a common run (same x0, same initial basis)",
    )  # fmt: skip

    # 2. Timings.
    base = best_of(
        lambda: baseline_spectrum(gW, x0_t, Q0_t, baseline_steps),
        args.repeats, warmup=lambda: baseline_spectrum(gW, x0_t, Q0_t, 3),
    )  # fmt: skip
    base_ms = base.best / baseline_steps * 1e3
    rows = [["baseline: autograd jacobian + torch QR", baseline_steps, fmt_seconds(base.best),
             f"{base_ms:.4g}", "1x", f"{base.spread:.2f}", fmt_float(base.result[0]),
             fmt_float(base.result.sum(), ".4f")]]  # fmt: skip
    speedups = {}
    for name in BACKENDS:
        t = best_of(spectrum(name, steps), args.repeats, warmup=spectrum(name, 5))
        ms = t.best / steps * 1e3
        speedups[name] = base_ms / ms
        lam = t.result.exponents
        rows.append([f"lyapkit {name}", steps, fmt_seconds(t.best), f"{ms:.4g}",
                     fmt_ratio(speedups[name]), f"{t.spread:.2f}", fmt_float(lam[0]),
                     fmt_float(lam.sum(), ".4f")])  # fmt: skip
    print_table(
        ["method", "steps", "best time", "ms/step", "speed-up", "spread", "lambda1", "sum"], rows,
        title="Timings (speed-up = baseline ms/step / ms/step; spread = slowest/fastest repeat)",
    )  # fmt: skip
    print("lambda1 and the sum differ between rows: runs of different length on a chaotic orbit.")
    auto = lyapkit.get_backend("auto", net).name
    s = speedups[auto]
    print(f"target: lyapkit (backend='auto' runs {auto}) >= {TARGET:g}x the baseline: "
          f"{fmt_ratio(s)} -> {verdict(s >= TARGET)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
