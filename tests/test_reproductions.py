"""Smoke tests: every reproduction script runs its items at the ``--smoke`` size and writes each
item's figure and its table (paper, ours, verdict, criterion) as JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "docs" / "reproductions").glob("[!_]*.py"))


@pytest.mark.slow  # a fresh process per script, each running every item at a tiny size
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_reproduction_runs_at_smoke_size(script, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    out = subprocess.run(
        [sys.executable, str(script), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    records = sorted(tmp_path.glob("*.json"))
    assert records, "no item wrote its table"
    for path in records:
        record = json.loads(path.read_text())
        assert (tmp_path / f"{path.stem}.png").is_file()
        assert record["rows"] and record["seconds"] > 0
        for row in record["rows"]:
            assert set(row) == {"item", "paper", "ours", "verdict", "criterion"}
            assert row["verdict"].startswith(("reproduced", "partly", "not reproduced"))

