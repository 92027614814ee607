"""Smoke tests: every benchmark script runs at its ``--quick`` size (timings are not asserted)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "benchmarks").glob("bench_*.py"))


@pytest.mark.slow  # minutes on 2 cores: a fresh process per script, each compiling its numba loops
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_runs_quick(script):
    pytest.importorskip("torch")
    pytest.importorskip("numba")
    if script.stem == "bench_clv":
        pytest.importorskip("pynamicalsys")  # its baseline (a dev dependency)
    out = subprocess.run(
        [sys.executable, str(script), "--quick", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "target" in out.stdout or "traj-steps/s" in out.stdout


def test_every_benchmark_is_documented():
    """Each script has its row in ``benchmarks/README.md`` (what it measures, its target)."""
    readme = (SCRIPTS[0].parent / "README.md").read_text()
    assert SCRIPTS and [p.name for p in SCRIPTS if f"| `{p.name}` |" not in readme] == []
