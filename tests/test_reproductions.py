"""Smoke tests: every reproduction script runs its items at the ``--smoke`` size and writes each
item's figure and its table (paper, ours, verdict, criterion) as JSON."""

import importlib
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


def test_full_wcrnn_budget_reads_mnist_where_its_files_are(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(SCRIPTS[0].parent))
    wcrnn = importlib.import_module("wcrnn")
    monkeypatch.setenv("LYAPKIT_DATA", str(tmp_path))
    assert wcrnn.image_tasks() == ("sdigits", "psdigits")
    folder = tmp_path / "mnist"
    folder.mkdir()
    names = [name for pair in wcrnn.MNIST_FILES.values() for name in pair]
    for name in names[:-1]:
        (folder / name).touch()
    assert wcrnn.image_tasks() == ("sdigits", "psdigits")  # one file missing
    (folder / f"{names[-1]}.gz").touch()
    assert wcrnn.image_tasks() == ("smnist", "psmnist")
