"""The trainer (``lyapkit.trainers.trainer``): training with diagnostics, configs, run stores,
exact resume after a kill, the report, and run safety: a run is never lost, mixed or silently
wrong (one owner per run, no start over an existing run without --resume or --overwrite, options
validated before anything is written, run ids that tie the checkpoint to its run file, resumes
that check the config, finished runs left alone, corrupt checkpoints named)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import xarray as xr  # noqa: E402
from cases import Interrupt, assert_refused, cli, interrupted_run, write_config  # noqa: E402

from lyapkit.store import RunLockedError, RunStore, lock_run, open_run, run_config  # noqa: E402
from lyapkit.trainers.cli import main  # noqa: E402
from lyapkit.trainers.config import (  # noqa: E402
    ConfigError,
    load_config,
    schedule_steps,
    validate_config,
)
from lyapkit.trainers.models import residuals  # noqa: E402
from lyapkit.trainers.trainer import RunError, Trainer, config_differences  # noqa: E402

FULL_CONFIG = """
[run]
name = "small"
dir = "{dir}"
seed = 3

[task]
name = "adding"
T = 16
n_train = 256
n_test = 64

[model]
name = "WCRNN"
hidden_size = 8
gamma = 0.1
residual = {{ kind = "homogeneous", r = 0.95 }}

[optimizer]
name = "{optimizer}"
lr = 0.02
momentum = 0.9
clip_grad_norm = 1.0

[training]
steps = {steps}
batch_size = 32
eval_every = 10
checkpoint_every = 10

[diagnostics.lyapunov]
every = 20
steps = 40
transient = 8

[diagnostics.gradients]
every = 10

[diagnostics.curvature]
every = 20
k = 2

[diagnostics.effective_lr]
every = 20
k = 2
"""


def write_full_config(
    tmp_path: Path, optimizer: str = "sgd", steps: int = 40, name: str = "run.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(FULL_CONFIG.format(dir=tmp_path.as_posix(), optimizer=optimizer, steps=steps))
    return path


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_records_every_diagnostic(tmp_path, optimizer):
    config = load_config(write_full_config(tmp_path, optimizer))
    result = Trainer(config).train()
    assert result.path == tmp_path / "small.nc" and result.metric == "rms"
    run = open_run(result.path)
    assert run_config(run) == config
    metrics = run["metrics"].to_dataset()
    np.testing.assert_array_equal(metrics["step"], [0, 10, 20, 30, 40])
    assert metrics["test_loss"].attrs["long_name"] and np.isfinite(metrics["test_rms"]).all()
    assert float(metrics["test_rms"].min()) == pytest.approx(result.best_metric)
    lyap = run["lyapunov"].to_dataset()
    np.testing.assert_array_equal(lyap["step"], [0, 20, 40])
    assert lyap["exponents"].shape == (3, 8) and lyap["exponents"].attrs["units"] == "1/step"
    np.testing.assert_allclose(lyap["theory"][0], np.log(0.95), rtol=1e-6)  # R in float32
    assert np.abs(lyap["exponents"][0] - np.log(0.95)).max() < 0.2  # weak coupling, γ = 0.1
    grads = run["gradients"].to_dataset()
    assert grads["mean_log"].dims == ("step", "time") and grads["mean_log"].shape == (5, 16)
    curv = run["curvature"].to_dataset()
    assert curv["eigenvalues"].shape == (3, 2) and (np.diff(curv["eigenvalues"], axis=1) <= 0).all()
    assert "effective_lr" in run.children
    # plain xarray reads each group of the file
    with xr.open_dataset(result.path, group="metrics", engine="h5netcdf") as ds:
        assert ds.sizes["step"] == 5
    assert set(result.seconds) >= {"training", "evaluation", "lyapunov", "curvature"}
    # denormals were flushed while training only: the process default is back
    assert torch.tensor(1e-40, dtype=torch.float32).item() != 0


def test_resume_after_kill_equals_an_uninterrupted_run(tmp_path):
    """Kill `lyapkit train` after its first checkpoint; the store still opens; --resume finishes
    with the same weights and the same records as a run that was never interrupted."""
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    killed_dir.mkdir(), clean_dir.mkdir()
    steps = 60
    killed_cfg = write_full_config(killed_dir, steps=steps)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lyapkit.cli", "-q", "train", str(killed_cfg)], env=env
    )
    checkpoint = killed_dir / "small.ckpt.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists()
    partial = open_run(killed_dir / "small.nc")  # the store opens after the kill
    assert partial["metrics"].to_dataset()["step"].values.max() < steps
    assert main(["-q", "train", str(killed_cfg), "--resume"]) == 0

    clean = Trainer(load_config(write_full_config(clean_dir, steps=steps)))
    clean.train()
    resumed = torch.load(checkpoint, weights_only=False)["model"]
    for name, value in clean.model.state_dict().items():
        torch.testing.assert_close(resumed[name], value, rtol=1e-6, atol=1e-7)
    a, b = open_run(killed_dir / "small.nc"), open_run(clean_dir / "small.nc")
    for group in ("metrics", "lyapunov", "gradients", "curvature"):
        da, db = a[group].to_dataset(), b[group].to_dataset()
        np.testing.assert_array_equal(da["step"], db["step"])
        for var in da.data_vars:
            np.testing.assert_allclose(
                da[var], db[var], rtol=1e-5, atol=1e-7, err_msg=f"{group}.{var}"
            )


def test_bad_configs_name_the_key(tmp_path):
    good = validate_config({"model": {"name": "WCRNN", "hidden_size": 4}})
    assert good["optimizer"]["name"] == "sgd"
    cases = [
        ({"optimizer": {"lr": -1}}, "optimizer.lr"),
        ({"optimizer": {"learning_rate": 0.1}}, "unknown config key optimizer.learning_rate"),
        ({"trainer": {}}, "unknown config table"),
        ({"optimizer": {"name": "lbfgs"}}, "optimizer.name"),
        ({"diagnostics": {"lyapunov": {"every": 0}}}, "diagnostics.lyapunov.every"),
        ({"diagnostics": {"lyapunov": {}}}, "exactly one schedule key"),
        ({"diagnostics": {"entropy": {"every": 1}}}, "unknown diagnostic diagnostics.entropy"),
        (
            {"diagnostics": {"curvature": {"every": 1, "kind": "fisher"}}},
            "diagnostics.curvature.kind",
        ),
        ({"training": {"steps": 1.5}}, "training.steps"),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            validate_config(raw)
    cfg = validate_config(
        {
            "task": {"name": "adding", "T": 8, "n_train": 64, "n_test": 8},
            "model": {"name": "WCRNN", "hidden_size": 4, "colour": 1},
        }
    )
    with pytest.raises(ConfigError, match=r"model\.colour"):
        Trainer(cfg)
    cfg["model"] = {"name": "WCRNN", "hidden_size": 4, "residual": {"kind": "spiral"}}
    with pytest.raises(ConfigError, match=r"model\.residual\.kind"):
        Trainer(cfg)
    cfg["model"] = {"name": "WCRNN", "hidden_size": 4}
    cfg["task"] = {"name": "adding", "T": 8, "n_train": 64, "n_test": 8, "colour": 2}
    with pytest.raises(ConfigError, match="colour"):
        Trainer(cfg)
    bad = tmp_path / "bad.toml"
    bad.write_text("[optimizer]\nlr = -0.5\n")
    assert main(["train", str(bad)]) == 2
    bad.write_text("[optimizer\n")
    assert main(["train", str(bad)]) == 2
    assert main(["train", str(tmp_path / "missing.toml")]) == 2


def test_informed_residual_draws_the_couplings_from_the_run_seed():
    task = {"name": "adding", "T": 8, "n_train": 16, "n_test": 8}
    spec = {"kind": "informed", "phi_range": [0.1, 0.5], "r_range": [0.9, 1.0],
            "gamma_range": [0.02, 0.2]}  # fmt: skip
    model = {"name": "WCRNN", "hidden_size": 6, "residual": spec}
    trainer = Trainer(validate_config({"run": {"seed": 3}, "task": task, "model": model}))
    R, gamma = residuals.informed(6, (0.1, 0.5), (0.9, 1.0), (0.02, 0.2), seed=3)
    np.testing.assert_array_equal(trainer.model.R.numpy(), R.astype(np.float32))
    np.testing.assert_array_equal(trainer.model.gamma.numpy(), gamma.astype(np.float32))
    with pytest.raises(ConfigError, match=r"model\.gamma.*informed"):
        Trainer(validate_config({"task": task, "model": {**model, "gamma": 0.1}}))


def test_missing_data_files_get_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "mnist.toml"
    cfg.write_text(
        f'[run]\ndir = "{tmp_path.as_posix()}"\n[task]\nname = "smnist"\nroot = "{tmp_path.as_posix()}"\n'
        '[model]\nname = "WCRNN"\nhidden_size = 4\n'
    )
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "mnist" in err and str(tmp_path) in err


def test_callbacks_record_their_own_group(tmp_path):
    def weight_norm(trainer, step, store):
        if step % 5 == 0:
            norm = float(trainer.model.recurrent.weight.norm())
            store.append("weight_norm", step, {"norm": norm}, attrs={"norm": {"units": "1"}})

    result = Trainer(
        load_config(write_full_config(tmp_path, steps=10)), callbacks=[weight_norm]
    ).train()
    ds = open_run(result.path)["weight_norm"].to_dataset()
    np.testing.assert_array_equal(ds["step"], [5, 10])
    assert (ds["norm"] > 0).all()


def test_schedules():
    assert schedule_steps({"every": 25}, 100) == {0, 25, 50, 75, 100}
    assert schedule_steps({"every": 30}, 100) == {0, 30, 60, 90, 100}
    assert schedule_steps({"at": [0, 5, 500]}, 100) == {0, 5}
    log = sorted(schedule_steps({"logspaced": 5}, 1000))
    assert log[0] == 0 and log[-1] == 1000 and len(log) == 5
    assert np.all(np.diff(np.log1p(log[1:])) > 0)


def test_report_sheet(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    result = Trainer(load_config(write_full_config(tmp_path, steps=20))).train()
    png = tmp_path / "sheet.png"
    assert main(["-q", "report", str(result.path), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main(["report", str(tmp_path / "nothing.nc")]) == 2
    # the spectrum of the saved model, driven by the run's test data
    assert main(["-q", "spectrum", str(result.path), "--steps", "50", "--transient", "10"]) == 0
    assert main(["spectrum", str(tmp_path / "nothing.nc")]) == 2
    # a bad demo option is refused by its flag's name before anything runs or is written
    for option in ("--steps", "--analysis-steps"):
        assert main(["-q", "demo", option, "0", "--dir", str(tmp_path / "demo")]) == 2
        assert option in capsys.readouterr().err and not (tmp_path / "demo").exists()


@pytest.mark.slow  # a smoke test of `lyapkit demo` in a fresh process (~10 s on 2 cores)
def test_demo_runs(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out = subprocess.run(
        [sys.executable, "-m", "lyapkit.cli", "-q", "demo", "--steps", "12",
         "--analysis-steps", "1000", "--dir", str(tmp_path)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert "theory (gamma -> 0)" in out.stdout and "best test accuracy" in out.stdout
    assert (tmp_path / "demo.png").exists() and (tmp_path / "demo.nc").exists()


def test_corrupt_checkpoint_is_named_on_resume_and_in_spectrum(tmp_path):
    run = interrupted_run(tmp_path)
    checkpoint = run.with_name("small.ckpt.pt")
    checkpoint.write_bytes(b"not a checkpoint")
    for args in (("train", str(tmp_path / "run.toml"), "--resume"), ("spectrum", str(run))):
        assert_refused(cli(*args), "cannot read the checkpoint", "small.ckpt.pt", "torn")
    assert checkpoint.read_bytes() == b"not a checkpoint"


def test_string_hidden_size_is_named(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("hidden_size = 8", 'hidden_size = "8"'))
    line = assert_refused(cli("train", str(config)), "model.hidden_size", "'8'")
    assert "residual" not in line


def test_minimal_performance_never_reached_is_said_so(tmp_path):
    """The small adding run does not reach its threshold in 20 steps."""
    proc = cli("train", str(write_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    message = proc.stdout.split(".nc: ", 1)[1]  # the path may hold "-1" (pytest-1…)
    assert "minimal performance not reached" in message and "-1" not in message


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
