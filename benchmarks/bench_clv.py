"""Covariant Lyapunov vectors: lyapkit (numba backend) against pynamicalsys on the same map and steps.

Both run Ginelli's method for every CLV at every step of the window: a forward QR warm-up of
1000 steps (lyapkit's ``transient``, pynamicalsys's ``warmup_time``), the window (pynamicalsys's
``total_time + 1`` states, lyapkit's ``steps``), and 1000 tail steps for the backward start
(``tail``, ``tail_time``). Cases: the Hénon map (n = 2) and three coupled standard maps (n = 6).
First both run a short window from the same state, on which their orbits agree, and the largest
difference of their CLVs (up to sign) is printed. Target: lyapkit >= 5x faster on every case, with
numba's default threads (one trajectory uses two: its state chain runs ahead of its QR chain); the
one-thread figure is printed beside it. The three timings' repeats are taken in turn (lyapkit,
lyapkit on one thread, pynamicalsys, again …), and the best of each counts.

    python benchmarks/bench_clv.py [--quick] [--repeats N]
"""

from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
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

import lyapkit

TARGET = 5.0  # pynamicalsys time / lyapkit time
WARMUP = TAIL = 1000


def coupled_standard_maps(M: int):
    """lyapkit's ``CoupledStandardMaps`` equations as pynamicalsys ``(mapping, jacobian)``, with
    parameters ``(k_1 … k_M, coupling)``."""

    @numba.njit
    def mapping(u, p):
        out = np.empty(2 * M)
        for i in range(M):
            th = u[i]
            kick = p[i] * math.sin(th) - p[M] * (
                math.sin(u[(i + 1) % M] - th) + math.sin(u[(i - 1) % M] - th)
            )
            mom = u[M + i] + kick
            out[i] = (th + mom) % (2.0 * math.pi)
            out[M + i] = mom % (2.0 * math.pi)
        return out

    @numba.njit
    def jacobian(u, p, *args):
        J = np.zeros((2 * M, 2 * M))
        for i in range(M):
            th, right, left = u[i], (i + 1) % M, (i - 1) % M
            c_right, c_left = p[M] * math.cos(u[right] - th), p[M] * math.cos(u[left] - th)
            J[M + i, i] += p[i] * math.cos(th) + c_right + c_left
            J[M + i, right] -= c_right
            J[M + i, left] -= c_left
        for i in range(M):
            for j in range(M):
                J[i, j] = J[M + i, j]
            J[i, i] += 1.0
            J[i, M + i] = 1.0
            J[M + i, M + i] = 1.0
        return J

    return mapping, jacobian


@contextlib.contextmanager
def one_thread():
    """numba on one thread (lyapkit's forward pass then runs its two chains in turn)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def cases():
    """``(name, lyapkit map, pynamicalsys system, its parameters, x0, short)``; ``short`` is the
    warm-up (and tail) of the agreement check: the Hénon orbit of the numba backend (FMAs) departs
    from pynamicalsys's by rounding within ~60 steps, the coupled maps' stays bit-identical."""
    from pynamicalsys import DiscreteDynamicalSystem

    henon = DiscreteDynamicalSystem(model="henon map")
    yield "Henon (n=2)", lyapkit.Henon(), henon, [1.4, 0.3], np.array([0.1, -0.05]), 25
    k, coupling = np.array([6.0, 4.0, 5.0]), 0.5
    mapping, jacobian = coupled_standard_maps(3)
    csm = DiscreteDynamicalSystem(
        mapping=mapping, jacobian=jacobian, system_dimension=6, number_of_parameters=4
    )
    x0 = np.array([0.3, 1.1, 2.0, 4.0, 0.5, 2.5])
    system = lyapkit.CoupledStandardMaps(M=3, k=k, coupling=coupling)
    yield "coupled standard maps (n=6)", system, csm, [*k, coupling], x0, 80


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=5, quick_repeats=1)
    window = 10**4 if args.quick else 10**5
    print_header(
        "CLVs, lyapkit numba backend vs pynamicalsys", args,
        window=window, warmup=WARMUP, tail=TAIL,
    )  # fmt: skip

    def ours(system, x0, steps, warm=WARMUP, tail=TAIL):
        return lambda: lyapkit.covariant_vectors(
            system, x0=x0, steps=steps + 1, transient=warm, tail=tail, seed=0, backend="numba"
        )

    def theirs(pds, params, x0, steps, warm=WARMUP, tail=TAIL):
        return lambda: pds.CLV(
            x0, total_time=steps, parameters=params, warmup_time=warm, tail_time=tail
        )

    rows, ratios = [], []
    for name, system, pds, params, x0, warm in cases():
        # Agreement on a short window over which both follow the same orbit (pynamicalsys applies
        # its tail factors in forward order, so only its early window steps are converged).
        short = ours(system, x0, 2 * warm, warm=warm, tail=warm)()
        clvs, _ = theirs(pds, params, x0, 2 * warm, warm=warm, tail=warm)()
        dots = np.abs((short.vectors[0, : warm // 2] * clvs[: warm // 2]).sum(-2))
        agreement = float(np.max(1 - dots))
        mine, single, ref = best_of_interleaved(
            [ours(system, x0, window), one_thread()(ours(system, x0, window)),
             theirs(pds, params, x0, window)],
            args.repeats,
            [ours(system, x0, 10), theirs(pds, params, x0, 10)],
        )  # fmt: skip
        ratio = ref.best / mine.best
        ratios.append(ratio)
        rows.append([
            name, fmt_seconds(ref.best), fmt_seconds(mine.best), fmt_ratio(ratio),
            fmt_seconds(single.best), fmt_ratio(ref.best / single.best), f"{agreement:.1e}",
            " ".join(f"{v:.4f}" for v in mine.result.exponents),
        ])  # fmt: skip
    print_table(
        [
            "case",
            "pynamicalsys",
            "lyapkit numba",
            "speed-up",
            "1 thread",
            "speed-up",
            "max 1-|v.v'|",
            "lyapkit exponents",
        ],
        rows,
    )
    print(f"lyapkit numba: default threads ({numba.get_num_threads()}; one trajectory runs its "
          "state chain and its QR chain on two), and 1 thread; pynamicalsys runs on one.")  # fmt: skip
    print("max 1-|v.v'|: CLVs of both on a short common window from x0: warm-up and tail w "
          "(25 Henon, 80 coupled), window 2w + 1, steps 0 to w/2 compared.")  # fmt: skip
    worst = min(ratios)
    print(f"target: lyapkit >= {TARGET:g}x faster than pynamicalsys on every case: "
          f"{fmt_ratio(worst)} (slowest case) -> {verdict(worst >= TARGET)}")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
