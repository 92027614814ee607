"""Training with diagnostics: configs, run stores, exact resume after a kill, report, command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import xarray as xr  # noqa: E402

from lyapkit.store import open_run, run_config  # noqa: E402
from lyapkit.trainers.cli import main  # noqa: E402
from lyapkit.trainers.config import ConfigError, load_config, schedule_steps, validate_config  # noqa: E402
from lyapkit.trainers.models import residuals  # noqa: E402
from lyapkit.trainers.trainer import Trainer  # noqa: E402

CONFIG = """
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


def write_config(
    tmp_path: Path, optimizer: str = "sgd", steps: int = 40, name: str = "run.toml"
) -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(dir=tmp_path.as_posix(), optimizer=optimizer, steps=steps))
    return path


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_records_every_diagnostic(tmp_path, optimizer):
    config = load_config(write_config(tmp_path, optimizer))
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
    killed_cfg = write_config(killed_dir, steps=steps)
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

    clean = Trainer(load_config(write_config(clean_dir, steps=steps)))
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

    result = Trainer(load_config(write_config(tmp_path, steps=10)), callbacks=[weight_norm]).train()
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


def test_report_sheet(tmp_path):
    pytest.importorskip("matplotlib")
    result = Trainer(load_config(write_config(tmp_path, steps=20))).train()
    png = tmp_path / "sheet.png"
    assert main(["-q", "report", str(result.path), "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main(["report", str(tmp_path / "nothing.nc")]) == 2
    # the spectrum of the saved model, driven by the run's test data
    assert main(["-q", "spectrum", str(result.path), "--steps", "50", "--transient", "10"]) == 0
    assert main(["spectrum", str(tmp_path / "nothing.nc")]) == 2


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
