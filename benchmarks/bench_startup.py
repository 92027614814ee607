"""Start-up: whole ``lyapkit`` processes, against ``python -c "import numpy"`` timed in the same run.

Every case starts a fresh process and is timed from outside (wall clock, start to exit). The numba
cases run with their own empty ``NUMBA_CACHE_DIR``: the first process compiles the loops (the
first-ever call's cost, printed once), every later one loads them from numba's disk cache.
Targets: ``lyapkit --help`` <= 0.5 s; a second process of ``lyapkit spectrum henon --steps 1000
--backend numba`` <= 2 s.

    python benchmarks/bench_startup.py [--quick] [--repeats N]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import cli, fmt_ratio, fmt_seconds, print_footer, print_header, print_table, verdict

HELP_TARGET, CACHED_TARGET = 0.5, 2.0


def _lyapkit() -> list[str]:
    script = Path(sys.executable).with_name("lyapkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lyapkit.cli"]


def wall(cmd: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of ``cmd`` (which must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def main() -> None:
    args = cli(__doc__.splitlines()[0], repeats=5, quick_repeats=2)
    print_header("Start-up of lyapkit processes", args)
    cache = tempfile.mkdtemp(prefix="lyapkit-bench-numba-cache-")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    lyapkit = _lyapkit()
    henon = [*lyapkit, "-q", "spectrum", "henon", "--steps", "1000"]
    network = [*lyapkit, "-q", "spectrum", "tanh_network", "-p", "n=32", "--steps", "200"]
    cases = [
        ("python -c 'import numpy' (baseline)", [sys.executable, "-c", "import numpy"]),
        ("lyapkit --help", [*lyapkit, "--help"]),
        ("spectrum henon --steps 1000 --backend numpy", [*henon, "--backend", "numpy"]),
        ("spectrum henon --steps 1000 (auto)", henon),
    ]
    compiled = [("spectrum henon --steps 1000 --backend numba", [*henon, "--backend", "numba"])]
    if not args.quick:  # the BLAS loop (n² k >= 2^13)
        compiled.append(
            ("spectrum tanh_network n=32 --backend numba", [*network, "--backend", "numba"])
        )
    try:
        first = {name: wall(cmd, env) for name, cmd in compiled}  # compiles, fills the cache
        for _, cmd in cases:  # warm-up: the operating system's file cache
            wall(cmd, env)
        best = {
            name: min(wall(cmd, env) for _ in range(args.repeats)) for name, cmd in cases + compiled
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    base = best[cases[0][0]]
    rows = [[name, fmt_seconds(best[name]), fmt_ratio(best[name] / base), ""] for name, _ in cases]
    rows += [
        [f"{name}, cached", fmt_seconds(best[name]), fmt_ratio(best[name] / base),
         fmt_seconds(first[name])]
        for name, _ in compiled
    ]  # fmt: skip
    print_table(["process", "best wall", "vs baseline", "first-ever (compiles)"], rows)
    help_s, cached_s = best["lyapkit --help"], best[compiled[0][0]]
    print(f"target: lyapkit --help <= {HELP_TARGET:g} s: {fmt_seconds(help_s)} -> "
          f"{verdict(help_s <= HELP_TARGET)}")  # fmt: skip
    print(f"target: second process of '{compiled[0][0]}' <= {CACHED_TARGET:g} s: "
          f"{fmt_seconds(cached_s)} -> {verdict(cached_s <= CACHED_TARGET)} "
          f"(first-ever call: {fmt_seconds(first[compiled[0][0]])})")  # fmt: skip
    print_footer()


if __name__ == "__main__":
    main()
