"""Timing helpers shared by the benchmark scripts (not part of the lyapkit package).

Every script measures its baseline in the same run as the thing it compares, takes the best of
several repeats after a warm-up call (which triggers numba compilation and torch's lazy set-up),
prints plain-text tables to stdout and exits 0 whether or not a target is met.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each repeat, and the result of the last call."""

    times: tuple[float, ...]
    result: Any

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """Slowest over fastest repeat (1.0 = perfectly reproducible)."""
        return max(self.times) / self.best


def best_of(fn: Callable[[], Any], repeats: int, warmup: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn()`` ``repeats`` times after one warm-up call (``warmup()``, default ``fn()``)."""
    return best_of_interleaved([fn], repeats, [warmup or fn])[0]


def best_of_interleaved(
    fns: Sequence[Callable[[], Any]], repeats: int, warmups: Sequence[Callable[[], Any]]
) -> list[Timing]:
    """:func:`best_of` for several functions whose repeats are taken in turn (``f, g, f, g, …``),
    so that a slow spell of a shared machine falls on all of them alike."""
    for warmup in warmups:
        warmup()
    times: list[list[float]] = [[] for _ in fns]
    results: list[Any] = [None] * len(fns)
    for _ in range(max(1, repeats)):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [Timing(tuple(t), r) for t, r in zip(times, results, strict=True)]


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def calibrate_steps(
    run: Callable[[int], Any], *, target_s: float, start: int = 2, max_steps: int = 10**8
) -> int:
    """Step count for which ``run(steps)`` takes about ``target_s`` seconds (like timeit.autorange).

    The cost of a call of ``start`` steps (best of two) is taken as the fixed per-call cost; steps
    grow fourfold until the time above it reaches a quarter of the target, and the per-step cost
    so measured sets the count. Fixed costs therefore do not shorten the runs.
    """
    fixed = min(_timed(lambda: run(start)) for _ in range(2))
    if fixed >= target_s / 2:
        return start
    steps, elapsed = start, fixed
    while steps < max_steps and elapsed - fixed < target_s / 4 and elapsed < target_s:
        steps = min(max_steps, steps * 4)
        elapsed = _timed(lambda n=steps: run(n))
    per_step = max(elapsed - fixed, elapsed / 2) / (steps - start) if steps > start else fixed
    return int(min(max_steps, max(steps if elapsed < target_s else start, target_s / per_step)))


def cli(description: str, *, repeats: int, quick_repeats: int) -> argparse.Namespace:
    """Parse ``--quick`` (small sizes for CI smoke tests) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (a CI smoke test)")
    parser.add_argument(
        "--repeats", type=int, default=None,
        help=f"timed repeats per case, the best counts (default {repeats}, quick {quick_repeats})",
    )  # fmt: skip
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else repeats
    return args


def use_all_cores_in_torch() -> int:
    """``torch.set_num_threads(os.cpu_count())``; returns the thread count."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    return torch.get_num_threads()


def _git_revision(where: Path) -> str:
    """``git describe --dirty`` of the checkout at ``where``, and a hash of its uncommitted diff."""

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", *cmd], cwd=where, capture_output=True, timeout=10, check=True)
        return out.stdout.decode(errors="replace").strip()

    try:
        rev = git("describe", "--always", "--dirty")
        if rev.endswith("-dirty"):
            rev += f" (diff sha1 {hashlib.sha1(git('diff', 'HEAD').encode()).hexdigest()[:10]})"
        return rev
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"


def _versions() -> str:
    import numpy

    parts = [f"python {platform.python_version()}", f"numpy {numpy.__version__}"]
    for name in ("numba", "torch"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            parts.append(f"{name} missing")
    return ", ".join(parts)


def print_header(title: str, args: argparse.Namespace, **settings: Any) -> None:
    """Title, machine, versions, revision, load and the run's settings."""
    print(f"== {title} ==")
    print(f"machine : {platform.machine()} {platform.processor() or ''}".rstrip()
          + f", {os.cpu_count()} logical CPUs, {platform.system()}")  # fmt: skip
    print(f"versions: {_versions()}")
    import lyapkit

    where = Path(lyapkit.__file__).resolve().parent.parent
    print(f"lyapkit : {where} @ {_git_revision(where)}")
    print(f"load    : {load_average()} (1/5/15-min load average at start)")
    mode = "quick" if args.quick else "full"
    extra = "".join(f", {k}={v}" for k, v in settings.items())
    print(f"settings: {mode}, best of {args.repeats} repeats after a warm-up{extra}")
    print()


def load_average() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def print_footer() -> None:
    """Load at the end, and numba's threading layer if a parallel kernel ran."""
    layer = ""
    if "numba" in sys.modules:
        try:
            layer = f"; numba threading layer: {sys.modules['numba'].threading_layer()}"
        except ValueError:  # no parallel kernel ran
            pass
    print(f"load at end: {load_average()} (timings on a loaded machine are upper bounds){layer}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        pairs = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs).rstrip()

    if title:
        print(title)
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))
    print()


def fmt_seconds(s: float) -> str:
    """Seconds with a unit that keeps three or four significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def fmt_ratio(r: float) -> str:
    return f"{r:.3g}x" if math.isfinite(r) else ""


def fmt_float(x: float, spec: str = ".5f") -> str:
    """``format(x, spec)``, or an empty cell for NaN."""
    return format(x, spec) if math.isfinite(x) else ""


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
