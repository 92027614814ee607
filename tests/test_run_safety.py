"""A run is never lost, mixed or silently wrong: one owner per run (lock), no start over an existing
run without --resume or --overwrite, options validated before anything is written, run ids that
tie the checkpoint to its run file, resumes that check the config, finished runs left alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lyapkit.store import RunLockedError, RunStore, lock_run, open_run  # noqa: E402
from lyapkit.trainers.config import load_config  # noqa: E402
from lyapkit.trainers.trainer import RunError, Trainer, config_differences  # noqa: E402

CONFIG = """
[run]
name = "small"
dir = "{dir}"
seed = {seed}
threads = {threads}

[task]
name = "adding"
T = 16
n_train = 256
n_test = 64

[model]
name = "WCRNN"
hidden_size = {hidden}
gamma = 0.1
residual = {{ kind = "homogeneous", r = 0.95 }}

[optimizer]
name = "sgd"
lr = {lr}
momentum = 0.9
clip_grad_norm = 1.0

[training]
steps = {steps}
batch_size = 32
eval_every = 10
checkpoint_every = {checkpoint_every}

[diagnostics.lyapunov]
every = 10
steps = 20
transient = 4
backend = "{backend}"
"""


def write_config(tmp_path: Path, name: str = "run.toml", **changes) -> Path:
    values = dict(
        seed=3, threads=0, hidden=8, lr=0.02, steps=20, checkpoint_every=10, backend="numpy"
    )
    values.update(changes)
    path = tmp_path / name
    path.write_text(CONFIG.format(dir=tmp_path.as_posix(), **values))
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lyapkit.cli", "-q", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with one line on stderr (no traceback) that contains every word."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Interrupt(Exception):
    """Stands for a kill in the middle of a run."""


def interrupted_run(tmp_path: Path, at: int = 15) -> Path:
    """A run stopped after its checkpoint at step 10 (of 20), like a killed one."""

    def stop(trainer, step, store):
        if step == at:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(load_config(write_config(tmp_path)), callbacks=[stop]).train()
    return tmp_path / "small.nc"


def test_existing_run_is_refused_and_bad_options_fail_before_writing(tmp_path):
    """Row 1: no start over an existing run without a flag; a bad diagnostics backend fails
    before the run file is touched, even with --overwrite."""
    result = Trainer(load_config(write_config(tmp_path))).train()
    before = result.path.read_bytes()
    line = assert_refused(cli("train", str(write_config(tmp_path))), "exists", "--resume")
    assert "--overwrite" in line
    bad = write_config(tmp_path, "bad.toml", backend="no-such-backend")
    assert_refused(cli("train", str(bad), "--overwrite"), "diagnostics.lyapunov.backend")
    assert_refused(cli("train", str(bad)), "diagnostics.lyapunov.backend")
    assert result.path.read_bytes() == before
    assert set(open_run(result.path).children) >= {"metrics", "lyapunov", "summary"}
    assert not (tmp_path / "small.lock").exists()  # released on errors too
    # --overwrite replaces the run: a new run id in the store and the checkpoint
    old_id = open_run(result.path).attrs["run_id"]
    assert cli("train", str(write_config(tmp_path)), "--overwrite").returncode == 0
    new_id = open_run(result.path).attrs["run_id"]
    assert new_id != old_id
    checkpoint = torch.load(tmp_path / "small.ckpt.pt", weights_only=False)
    assert checkpoint["run_id"] == new_id
    proc = cli("train", str(write_config(tmp_path)), "--resume", "--overwrite")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_checkpoint_of_another_run_is_refused(tmp_path):
    """Row 2: a new run killed before its first checkpoint leaves the old run's checkpoint beside
    its run file; --resume refuses it instead of continuing from it."""
    config = load_config(write_config(tmp_path))
    Trainer(config).train()
    # the new run's store, as it is before its first checkpoint (a new run id)
    RunStore.create(tmp_path / "small.nc", config=config, seed=3, overwrite=True)
    assert_refused(cli("train", str(write_config(tmp_path)), "--resume"), "another run", "run id")
    # a checkpoint without its run file
    (tmp_path / "small.nc").unlink()
    assert_refused(cli("train", str(write_config(tmp_path)), "--resume"), "no run file")
    with pytest.raises(RunError, match="exists"):
        Trainer(config).train()


def test_a_run_has_one_writer(tmp_path):
    """Row 3: while the lock is held, a second `lyapkit train` exits 2 naming the owner's pid; a
    stale lock of a dead process is recovered."""
    config_path = write_config(tmp_path)
    trainer = Trainer(load_config(config_path))
    with lock_run(trainer.lock_path):
        assert json.loads(trainer.lock_path.read_text())["pid"] == os.getpid()
        assert_refused(cli("train", str(config_path)), f"pid {os.getpid()}", "in use")
        with pytest.raises(RunLockedError, match=str(os.getpid())):
            lock_run(trainer.lock_path)
        assert not (tmp_path / "small.nc").exists()
    assert not trainer.lock_path.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    pid = int(dead.stdout)
    trainer.lock_path.write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    proc = cli("train", str(config_path))
    assert proc.returncode == 0, proc.stderr
    assert "stale lock" in proc.stderr and str(pid) in proc.stderr
    assert not trainer.lock_path.exists()
    assert "summary" in open_run(tmp_path / "small.nc").children


def test_resume_checks_the_config(tmp_path):
    """Row 4: keys that change the result must match the stored ones (all differences listed);
    free keys may change, and the change is noted in the store."""
    path = interrupted_run(tmp_path)
    stored = open_run(path)
    changed = write_config(tmp_path, "changed.toml", lr=0.05, seed=4, steps=30)
    line = assert_refused(cli("train", str(changed), "--resume"), "optimizer.lr: 0.02 → 0.05")
    assert "run.seed: 3 → 4" in line and "training.steps: 20 → 30" in line
    hidden = write_config(tmp_path, "hidden.toml", hidden=16)
    assert_refused(cli("train", str(hidden), "--resume"), "model.hidden_size: 8 → 16")
    assert open_run(path).identical(stored)  # nothing written by the refusals

    free = write_config(tmp_path, "free.toml", threads=1, checkpoint_every=5)
    proc = cli("train", str(free), "--resume")
    assert proc.returncode == 0, proc.stderr
    run = open_run(path)
    assert run["metrics"]["step"].values.tolist() == [0, 10, 20]
    assert json.loads(run.attrs["config"])["run"]["threads"] == 1
    (note,) = json.loads(run.attrs["config_changes"])
    assert note["step"] == 10
    assert note["changed"] == {"run.threads": [0, 1], "training.checkpoint_every": [10, 5]}

    result, free_keys = config_differences({"a": {"b": 1, "c": True}}, {"a": {"b": 1.0, "c": 1}})
    assert result == {"a.c": (True, 1)} and free_keys == {}


def test_resume_of_a_finished_run_is_a_no_op(tmp_path):
    """Row 5: --resume of a finished run exits 0 and says so; a run killed between its last
    checkpoint and its summary is completed."""
    config_path = write_config(tmp_path)
    result = Trainer(load_config(config_path)).train()
    before = result.path.read_bytes()
    proc = cli("train", str(config_path), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout and "Traceback" not in proc.stderr
    assert result.path.read_bytes() == before
    again = Trainer(load_config(config_path)).train(resume=True)
    assert again.already_finished and again.best_metric == result.best_metric
    assert again.final_loss == result.final_loss

    class KilledAtTheEnd(Trainer):
        def _save_checkpoint(self, step):
            super()._save_checkpoint(step)
            if step == self.config["training"]["steps"]:
                raise Interrupt

    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(Interrupt):
        KilledAtTheEnd(load_config(write_config(other))).train()
    assert "summary" not in open_run(other / "small.nc").children
    resumed = Trainer(load_config(write_config(other))).train(resume=True)
    assert not resumed.already_finished
    assert resumed.final_loss == result.final_loss and resumed.best_metric == result.best_metric
    summary = open_run(other / "small.nc")["summary"].to_dataset()
    assert summary["step"].values.tolist() == [20]
