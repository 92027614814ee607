"""Numba Hénon spectrum against the floor: a jitted loop that only iterates the map and Jacobian.

The floor calls the map's own numba kernels (``Henon().numba_kernels()``) for the same number of
steps and sums every Jacobian entry, so the compiler cannot drop the Jacobian. Whatever the
spectrum costs above the floor is the tangent product, the Gram-Schmidt re-orthogonalisation and
lyapkit's per-call overhead. Target: spectrum / floor <= 5x at reortho_every=1.

    python benchmarks/bench_henon_numba.py [--quick] [--repeats N]
"""

from __future__ import annotations

import math

import numba
import numpy as np
from _timing import (
    best_of,
    cli,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    print_footer,
    print_header,
    print_table,
    verdict,
)

import lyapkit

TARGET = 5.0  # spectrum (reortho_every=1) / floor


@numba.njit
def iterate_floor(step, jacobian, params, x0, u, steps):
    """Iterate ``x ← f(x)`` and evaluate ``J(x)`` ``steps`` times; return Σ J entries (and x)."""
    n = x0.shape[0]
    x, xn, J = x0.copy(), np.empty(n), np.empty((n, n))
    acc = 0.0
    for _ in range(steps):
        jacobian(x, u, params, J)
        step(x, u, params, xn)
        for a in range(n):
            for b in range(n):
                acc += J[a, b]
        for a in range(n):
            x[a] = xn[a]
    return acc + x[0]


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=5, quick_repeats=3)
    steps = 10**5 if args.quick else 10**6
    numpy_steps = 10**3 if args.quick else 10**4
    print_header(
        "Henon spectrum, numba backend vs a map+Jacobian floor", args,
        steps=steps, numba_threads=numba.get_num_threads(),
    )  # fmt: skip

    henon = lyapkit.Henon()
    kernels = henon.numba_kernels()
    x0 = henon.initial_state(np.random.default_rng(0))
    u = np.empty(0)

    floor = best_of(
        lambda: iterate_floor(kernels.step, kernels.jacobian, kernels.params, x0, u, steps),
        args.repeats,
    )
    if not math.isfinite(floor.result):
        print("warning: the floor loop left the attractor (non-finite sum)")
    floor_ns = floor.best / steps * 1e9

    def spectrum(n_steps: int, every: int = 1, backend: str = "numba"):
        return lambda: lyapkit.lyapunov_spectrum(
            henon, steps=n_steps, backend=backend, history=False, reortho_every=every, seed=0
        )

    def row(case, n_steps, t, ratio):
        lam = t.result.exponents if n_steps > 1 else (math.nan, math.nan)
        ns = t.best / n_steps * 1e9
        return [case, n_steps, fmt_seconds(t.best), f"{ns:.4g}", fmt_ratio(ratio),
                f"{t.spread:.2f}", fmt_float(lam[0]), fmt_float(lam[1])]  # fmt: skip

    rows = [["floor: njit map + Jacobian", steps, fmt_seconds(floor.best), f"{floor_ns:.4g}",
             "1x", f"{floor.spread:.2f}", "", ""]]  # fmt: skip
    timed = {}
    for every in (1, 2, 4):
        t = timed[every] = best_of(spectrum(steps, every), args.repeats, spectrum(1000, every))
        rows.append(row(f"numba spectrum, reortho_every={every}", steps, t, t.best / floor.best))
    t = best_of(spectrum(numpy_steps, backend="numpy"), 3, spectrum(10, backend="numpy"))
    numpy_ratio = t.best / numpy_steps * 1e9 / floor_ns
    rows.append(row("numpy spectrum (context)", numpy_steps, t, numpy_ratio))
    fixed = best_of(spectrum(1), args.repeats)
    rows.append(row("numba spectrum, steps=1 (per-call cost)", 1, fixed, math.nan))
    print_table(
        ["case", "steps", "best time", "ns/step", "vs floor", "spread", "lambda1", "lambda2"], rows
    )
    print("spread = slowest/fastest repeat. Reference exponents (Sprott 2003): 0.4192, -1.6232; "
          f"lambda1 + lambda2 = log(0.3) = {math.log(0.3):.5f}.")  # fmt: skip

    ratio = timed[1].best / floor.best
    net = max(timed[1].best - fixed.best, 0.0) / floor.best
    print(f"target: numba spectrum (reortho_every=1) <= {TARGET:g}x the floor: "
          f"{fmt_ratio(ratio)} -> {verdict(ratio <= TARGET)}")  # fmt: skip
    print(f"        net of the fixed per-call cost ({fmt_seconds(fixed.best)}): {fmt_ratio(net)}")
    print_footer()


if __name__ == "__main__":
    main()
