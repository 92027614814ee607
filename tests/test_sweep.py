"""Sweeps (lyapkit.trainers.sweep): validation before anything runs, a real spawn process pool and a
real Dask LocalCluster, a worker killed by pid mid-sweep, re-runs, recorded failures, and the
combined dataset and figure."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("h5netcdf")

import lyapkit as lk  # noqa: E402
from lyapkit.store import open_run  # noqa: E402
from lyapkit.trainers.config import ConfigError  # noqa: E402
from lyapkit.trainers.sweep import (  # noqa: E402
    _jobs,
    load_sweep,
    plot_sweep,
    run_sweep,
    sweep_spec,
)
from lyapkit.trainers.trainer import Trainer  # noqa: E402


def base(steps: int = 30, **training) -> dict:
    return {
        "task": {"name": "adding", "T": 16},
        "model": {
            "name": "WCRNN",
            "hidden_size": 8,
            "residual": {"kind": "homogeneous", "r": 1.0},
        },
        "training": {
            "steps": steps,
            "batch_size": 16,
            "eval_every": 10,
            "checkpoint_every": 10,
            **training,
        },
    }


def sweep(directory: Path, grid: dict, zips: list | None = None, **config) -> dict:
    raw = {**base(), **config, "sweep": {"dir": str(directory), "grid": grid}}
    if zips is not None:
        raw["sweep"]["zip"] = zips
    return raw


def metrics_steps(path: Path) -> np.ndarray:
    return open_run(path)["metrics"]["step"].values


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"optimizer.lrr": [0.1]}, "optimizer.lrr"),
        ({"optimizer.lr": [0.1, -1.0]}, "optimizer.lr must be a positive number, got -1.0"),
        ({"model.residual.rr": [0.9]}, "model.residual.rr"),
        ({"model.hidden_size": [8, "big"]}, "hidden_size"),
        ({"run.name": ["a"]}, "run.name cannot be swept"),
        ({"optimizer.lr": []}, "sweep.grid.optimizer.lr must be a non-empty list"),
        ({"task.T": [16, 32], "tasks.T": [1]}, "tasks"),
        (
            {"model.gamma": [0.1], "model": {"gamma": [0.2]}},
            "sweep.grid.model.gamma is given twice",
        ),
        ({"model.gamma": [1, 1.0]}, "values 1 and 2 of its list are equal (1 and 1.0); the runs"),
        (
            {"model.residual": [{"kind": "homogeneous", "r": 0.5}], "model.residual.r": [0.9]},
            "sweep keys model.residual and model.residual.r overlap",
        ),
        ({"run": [{"seed": 1}]}, "sweep key run cannot be swept"),
        ({"model": {}}, "sweep.grid.model must be a non-empty list"),
    ],
)
def test_bad_key_or_value_is_refused_before_anything_runs(tmp_path, grid, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sweep_spec(sweep(tmp_path / "s", grid))
    assert not (tmp_path / "s").exists()


def test_zip_lists_must_have_equal_lengths(tmp_path):
    with pytest.raises(ConfigError, match=r"sweep\.zip\[0\].*equal lengths"):
        sweep_spec(sweep(tmp_path, {}, [{"task.T": [8, 16], "training.steps": [10]}]))
    with pytest.raises(ConfigError, match=r"sweep\.zip\[1\] is empty"):
        sweep_spec(sweep(tmp_path, {}, [{"task.T": [8]}, {}]))
    with pytest.raises(ConfigError, match=r"sweep\.zip\[0\]\.task\.T is given twice"):
        sweep_spec(sweep(tmp_path, {}, [{"task.T": [8], "task": {"T": [16]}}]))
    with pytest.raises(
        ConfigError,
        match="task.T: values 1 and 2 of its list are equal .8 and 8.; "
        "they label the axis's points: put a key with distinct values first",
    ):
        sweep_spec(sweep(tmp_path, {}, [{"task.T": [8, 8], "training.steps": [10, 20]}]))
    # with a key of distinct values first, the same points are fine
    spec = sweep_spec(sweep(tmp_path, {}, [{"training.steps": [10, 20], "task.T": [8, 8]}]))
    assert [name for name, _, _ in spec.runs] == ["steps=10", "steps=20"]


def test_grid_and_zip_make_the_product_and_names(tmp_path):
    spec = sweep_spec(
        sweep(
            tmp_path,
            {"model.residual.r": [0.9, 1.0], "run.seed": [0, 1, 2]},
            [{"task.T": [8, 16], "training.steps": [10, 20]}],
        )
    )
    assert spec.shape == (2, 3, 2)
    assert [a.dim for a in spec.axes] == ["r", "seed", "T"]
    name, params, config = spec.runs[5]  # C order: the last axis fastest
    assert name == "r=0.9_seed=2_T=16"
    assert params == {
        "model.residual.r": 0.9,
        "run.seed": 2,
        "task.T": 16,
        "training.steps": 20,
    }
    assert config["task"]["T"] == 16 and config["training"]["steps"] == 20
    assert config["model"]["residual"] == {"kind": "homogeneous", "r": 0.9}
    assert config["run"]["dir"] == str(tmp_path / "runs") and config["run"]["name"] == name


def test_toml_nested_keys_and_default_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rsweep.toml").write_text(
        '[task]\nname = "adding"\nT = 8\n[model]\nname = "WCRNN"\nhidden_size = 4\n'
        '[model.residual]\nkind = "homogeneous"\nr = 1.0\n'
        "[sweep.grid]\nmodel.residual.r = [0.5, 0.75]\n"
    )
    spec = load_sweep(tmp_path / "rsweep.toml")
    # relative to the working directory, and absolute: workers started elsewhere write there too
    assert spec.directory == Path.cwd() / "sweeps" / "rsweep"
    assert spec.runs[0][2]["run"]["dir"] == str(Path.cwd() / "sweeps" / "rsweep" / "runs")
    assert [name for name, _, _ in spec.runs] == ["r=0.5", "r=0.75"]
    assert load_sweep(tmp_path / "rsweep.toml", "elsewhere").directory == Path.cwd() / "elsewhere"


def test_another_sweep_in_the_same_directory_is_refused(tmp_path):
    run_sweep(sweep_spec(sweep(tmp_path, {"run.seed": [0]})), workers=1)
    other = sweep(tmp_path, {"run.seed": [0]})
    other["optimizer"] = {"lr": 0.5}
    with pytest.raises(ConfigError, match=r"holds another sweep \(it differs in optimizer\.lr\)"):
        run_sweep(sweep_spec(other), workers=1)
    # the runs r=1 and r=1.0 have other names: another sweep, not the same one
    run_sweep(sweep_spec(sweep(tmp_path / "r", {"model.residual.r": [1, 0.9]})), workers=1)
    with pytest.raises(ConfigError, match="holds another sweep .it differs in its axes"):
        run_sweep(sweep_spec(sweep(tmp_path / "r", {"model.residual.r": [1.0, 0.9]})), workers=1)
    # a base value that every run overrides changes no run: the same sweep, nothing to do
    same = sweep(tmp_path / "r", {"model.residual.r": [1, 0.9]})
    same["model"]["residual"]["r"] = 0.5
    assert run_sweep(sweep_spec(same), workers=1).counts() == {"finished": 2}


def test_a_zipped_key_whose_name_is_taken_gets_its_whole_key(tmp_path):
    raw = sweep(
        tmp_path,
        {"training.steps": [2, 4]},
        [{"task.T": [6, 8], "diagnostics.lyapunov.steps": [4, 5]}],
        diagnostics={"lyapunov": {"at": [0], "transient": 2}},
    )
    spec = sweep_spec(raw)
    assert [axis.dim for axis in spec.axes] == ["steps", "T"]
    with cf.ThreadPoolExecutor(1) as pool:
        assert run_sweep(spec, executor=pool).ok
    summary = lk.open_sweep(tmp_path).summary
    assert summary["diagnostics.lyapunov.steps"].dims == ("T",)
    assert summary["diagnostics.lyapunov.steps"].values.tolist() == [4, 5]
    np.testing.assert_array_equal(summary["last_step"].sel(steps=4), 4)
    np.testing.assert_array_equal(summary["steps"], [2, 4])


# --- running ---------------------------------------------------------------------------------------


def test_pool_workers_share_the_cores():
    """Each worker of the default pool gets ``cores // workers`` intra-op threads (at least one):
    with torch's default of all cores in every worker, groups and large models oversubscribe the
    cores."""
    import torch

    from lyapkit.trainers.sweep import _process_pool

    for workers in (1, 2):
        with _process_pool(workers) as pool:
            threads = {pool.submit(torch.get_num_threads).result() for _ in range(2 * workers)}
        assert threads == {max(1, (os.cpu_count() or 1) // workers)}


def test_process_pool_sweep_rerun_and_combined_dataset(tmp_path):
    spec = sweep_spec(sweep(tmp_path, {"model.residual.r": [0.9, 1.0], "run.seed": [0, 1]}))
    result = run_sweep(spec, workers=2)
    assert result.ok and result.counts() == {"finished": 4}
    # each run equals the same configuration trained alone, in this process
    name, _, config = spec.runs[3]
    alone = {**config, "run": {**config["run"], "dir": str(tmp_path / "alone")}}
    Trainer(alone).train()
    swept = open_run(tmp_path / "runs" / f"{name}.nc")["metrics"].to_dataset()
    single = open_run(tmp_path / "alone" / f"{name}.nc")["metrics"].to_dataset()
    np.testing.assert_array_equal(swept["test_rms"], single["test_rms"])
    # a re-run trains nothing: every store is left untouched
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.nc")}
    again = run_sweep(spec, workers=2)
    assert again.ok and {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # the combined dataset: swept keys as dimensions, one summary per run
    sw = lk.open_sweep(tmp_path)
    summary = sw.summary
    assert summary["best_metric"].dims == ("r", "seed")
    assert summary["r"].values.tolist() == [0.9, 1.0]
    assert summary["best_metric"].attrs["long_name"] == "best test rms"
    assert (summary["status"] == "finished").all()
    np.testing.assert_array_equal(summary["last_step"], 30)
    assert float(summary["best_metric"].sel(r=1.0, seed=1)) == pytest.approx(
        float(single["test_rms"].min())
    )
    assert sw.run(r=1.0, seed=1)["metrics"]["test_rms"].values.tolist() == (
        single["test_rms"].values.tolist()
    )
    curves = sw.curves("metrics", "test_loss")
    assert curves.dims == ("r", "seed", "step") and curves.sizes["step"] == 4
    np.testing.assert_array_equal(curves.sel(r=1.0, seed=1), single["test_loss"])
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert plot_sweep(summary, ax=ax) is ax
    (line,) = ax.lines
    np.testing.assert_allclose(line.get_ydata(), summary["best_metric"].mean("seed"))
    plt.close(fig)


def test_runs_of_other_tasks_in_one_dataset(tmp_path):
    """An rms task beside an accuracy one: both metrics in the label, NaN curves where a run
    records no such variable."""
    pytest.importorskip("sklearn")
    tasks = [{"name": "adding", "T": 8}, {"name": "sdigits"}]
    training = base(2, eval_every=2, checkpoint_every=2)["training"]
    with cf.ThreadPoolExecutor(1) as pool:
        assert run_sweep(sweep_spec(sweep(tmp_path, {"task": tasks}, training=training)),
                         executor=pool).ok  # fmt: skip
    sw = lk.open_sweep(tmp_path)
    assert sw.summary["best_metric"].attrs["long_name"] == "best test accuracy or rms"
    rms = sw.curves("metrics", "test_rms")
    assert np.isfinite(rms.isel(task=0)).all() and np.isnan(rms.isel(task=1)).all()


def test_runs_of_table_and_boolean_values_are_chosen_by_the_values(tmp_path):
    from lyapkit.store import run_config

    residuals = [{"kind": "homogeneous", "r": 0.9}, {"kind": "homogeneous", "r": 1.0}]
    grid = {"model.residual": residuals, "model.train_residual": [False, True]}
    training = base(2, eval_every=2, checkpoint_every=2)["training"]
    with cf.ThreadPoolExecutor(1) as pool:
        assert run_sweep(sweep_spec(sweep(tmp_path, grid, training=training)), executor=pool).ok
    sw = lk.open_sweep(tmp_path)
    assert sw.summary["train_residual"].values.tolist() == ["false", "true"]  # JSON text
    chosen = sw.run(residual={"r": 1.0, "kind": "homogeneous"}, train_residual=True)
    model = run_config(chosen)["model"]
    assert model["residual"]["r"] == 1.0 and model["train_residual"] is True


def test_a_diverging_run_is_recorded_and_the_others_finish(tmp_path):
    raw = sweep(tmp_path, {"optimizer.lr": [0.01, 1e9]})
    spec = sweep_spec(raw)
    result = run_sweep(spec, workers=1)
    assert not result.ok
    assert result.status == {"lr=0.01": "finished", "lr=1000000000.0": "diverged"}
    record = json.loads((tmp_path / "runs" / "lr=1000000000.0.failed.json").read_text())
    assert record["status"] == "diverged" and "training loss became" in record["error"]
    summary = lk.open_sweep(tmp_path).summary
    assert summary["status"].values.tolist() == ["finished", "diverged"]
    assert np.isnan(float(summary["steps_to_threshold"][1]))
    # kept on a re-run, retried on request (and diverges again: the same seed and data)
    assert run_sweep(spec, workers=1).status["lr=1000000000.0"] == "diverged"
    assert run_sweep(spec, workers=1, retry_failed=True).status["lr=1000000000.0"] == "diverged"


def test_command_line_sweep_and_report(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[task]\nname = "adding"\nT = 8\n[model]\nname = "WCRNN"\nhidden_size = 4\n'
        "[training]\nsteps = 10\nbatch_size = 8\neval_every = 5\ncheckpoint_every = 5\n"
        f'[sweep]\ndir = "{tmp_path / "out"}"\n'
        'grid = { "run.seed" = [0, 1], "optimizer.lr" = [0.01, 1e9] }\n'
    )
    cli = [sys.executable, "-m", "lyapkit.cli"]
    done = subprocess.run(
        [*cli, "sweep", str(tmp_path / "s.toml"), "--workers", "2"], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr  # two runs diverged
    assert "4 runs: 2 finished, 2 diverged" in done.stdout
    drawn = subprocess.run(
        [*cli, "report", str(tmp_path / "out"), "--x", "lr"], capture_output=True, text=True
    )
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run(
        [*cli, "report", str(tmp_path / "out"), "--x", "gamma"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "x 'gamma' is not a swept dimension" in bad.stderr
    same = subprocess.run(
        [*cli, "report", str(tmp_path / "out"), "--hue", "lr"], capture_output=True, text=True
    )
    assert same.returncode == 2 and "no swept dimension is left to draw against" in same.stderr
    same = subprocess.run(
        [*cli, "report", str(tmp_path / "out"), "--x", "lr", "--hue", "lr"],
        capture_output=True,
        text=True,
    )
    assert same.returncode == 2 and "must be different dimensions" in same.stderr
    pdf = subprocess.run(
        [*cli, "report", str(tmp_path / "out"), "-o", str(tmp_path / "f.pdf")], capture_output=True
    )
    assert pdf.returncode == 0 and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    run_file = next((tmp_path / "out" / "runs").glob("*.nc"))
    sheet = subprocess.run(
        [*cli, "report", str(run_file), "--x", "lr"], capture_output=True, text=True
    )
    assert sheet.returncode == 2 and "--x: for a sweep directory" in sheet.stderr
    none = subprocess.run(
        [*cli, "sweep", str(tmp_path / "s.toml"), "--workers", "0"], capture_output=True, text=True
    )
    assert none.returncode == 2 and "--workers must be a positive integer, got 0" in none.stderr


def _summary(values, status=None, **coords):
    """A sweep summary over ``coords`` (dim -> values), seeds marked as ``run.seed``."""
    import xarray as xr

    data = {"best_metric": (tuple(coords), np.asarray(values, float)),
            "steps_to_threshold": (tuple(coords), np.zeros(np.shape(values), int))}  # fmt: skip
    if status is not None:
        data["status"] = (tuple(coords), np.asarray(status))
    keys = {"seed": "run.seed", "r": "model.residual.r", "T": "task.T", "lr": "optimizer.lr"}
    return xr.Dataset(data, coords={d: (d, v, {"sweep_key": keys[d]}) for d, v in coords.items()})


def test_sweep_figure_means_over_finished_runs_in_order(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    status = [["finished", "diverged"], ["finished", "finished"], ["finished", "pending"]]
    summary = _summary([[1.0, 9.0], [2.0, 4.0], [5.0, 7.0]], status, r=[1.0, 0.5, 0.75],
                       seed=[0, 1])  # fmt: skip
    summary["steps_to_threshold"][:] = [[10, -1], [20, 40], [-1, 30]]
    ax = plot_sweep(summary)
    (line,) = ax.lines
    assert line.get_xdata().tolist() == [0.5, 0.75, 1.0]  # ascending, not in file order
    assert line.get_ydata().tolist() == [3.0, 5.0, 1.0]  # the diverged and pending runs left out
    assert ax.get_ylabel().endswith("(mean ± std over seed)")
    ax = plot_sweep(summary, "steps_to_threshold", ax=plt.subplots()[1])
    # −1 (never reached) is no step: r = 0.75 has no finished run that reached the threshold
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [30.0, np.nan, 10.0])
    plt.close("all")


def test_sweep_figure_names_what_it_averages_and_refuses_bad_choices():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = _summary(np.arange(8.0).reshape(2, 2, 2), r=[0.9, 1.0], T=[8, 16], seed=[0, 1])
    ax = plot_sweep(summary, hue=None, x="r")  # T becomes the hue: one line per T
    assert len(ax.lines) == 2 and ax.get_ylabel().endswith("(mean ± std over seed)")
    four = _summary(np.ones((2, 2, 2, 2)), r=[0.9, 1.0], T=[8, 16], lr=[0.1, 0.2], seed=[0, 1])
    ax = plot_sweep(four, x="r", hue="T")  # lr is averaged too, and named
    assert ax.get_ylabel().endswith("(mean ± std over lr, seed)")
    renamed = summary.rename(seed="run.seed")  # another *.seed key is swept too
    assert plot_sweep(renamed, x="r", hue="T").get_ylabel().endswith("over run.seed)")
    for options, message in [
        ({"x": "r", "hue": "r"}, "x, hue and over must be different dimensions"),
        ({"over": "sed"}, "over 'sed' is not a swept dimension"),
        ({"metric": "status"}, "metric 'status' is not a number of the sweep summary"),
        ({"x": "seed"}, "x, hue and over must be different dimensions"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            plot_sweep(summary.assign(status=(summary["best_metric"].dims, np.full((2, 2, 2), "x"))),
                       **options)  # fmt: skip
    plt.close("all")


def _kill_a_worker_mid_run(runs: Path, stop: threading.Event) -> list[int]:
    """Kill -9 the first worker seen holding a run's lock after that run's first checkpoint."""
    killed: list[int] = []
    while not stop.is_set() and not killed:
        for lock in runs.glob("*.lock"):
            checkpoint = lock.with_name(lock.name.replace(".lock", ".ckpt.pt"))
            try:
                pid = json.loads(lock.read_text())["pid"]
            except (OSError, ValueError):
                continue
            if checkpoint.exists() and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
        time.sleep(0.005)
    return killed


def test_a_worker_killed_mid_sweep(tmp_path):
    spec = sweep_spec(
        sweep(tmp_path, {"run.seed": [0, 1, 2]}, training={"steps": 300, "eval_every": 20})
    )
    stop, killed = threading.Event(), []
    watcher = threading.Thread(
        target=lambda: killed.extend(_kill_a_worker_mid_run(tmp_path / "runs", stop))
    )
    watcher.start()
    try:
        result = run_sweep(spec, workers=2)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was killed: the runs were too short to catch"
    assert result.ok, result.errors
    for name, _, _ in spec.runs:
        path = tmp_path / "runs" / f"{name}.nc"
        steps = metrics_steps(path)
        assert steps.tolist() == list(range(0, 301, 20)), name  # each step once
        assert not list((tmp_path / "runs").glob(f"{name}.lock"))
    # the killed runs resumed from their checkpoints: equal to an uninterrupted run
    name, _, config = spec.runs[0]
    Trainer({**config, "run": {**config["run"], "dir": str(tmp_path / "alone")}}).train()
    np.testing.assert_array_equal(
        open_run(tmp_path / "runs" / f"{name}.nc")["metrics"]["test_loss"].values,
        open_run(tmp_path / "alone" / f"{name}.nc")["metrics"]["test_loss"].values,
    )


def _kill_every_holder(lock: Path, stop: threading.Event) -> list[int]:
    """Kill -9 every process seen holding ``lock``: a run that always kills its worker."""
    killed: list[int] = []
    while not stop.is_set():
        try:
            pid = json.loads(lock.read_text())["pid"]
        except (OSError, ValueError):
            pid = None
        if pid not in (None, os.getpid(), *killed):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.005)
    return killed


def test_a_run_that_keeps_killing_its_worker_is_lost_alone(tmp_path):
    """Each death breaks the one-worker pool under the runs queued behind it: they are
    resubmitted without being charged, and only the run that was training is lost."""
    spec = sweep_spec(sweep(tmp_path, {"run.seed": [0, 1, 2]}))
    stop, killed = threading.Event(), []
    lock = tmp_path / "runs" / "seed=0.lock"
    watcher = threading.Thread(target=lambda: killed.extend(_kill_every_holder(lock, stop)))
    watcher.start()
    try:
        result = run_sweep(spec, workers=1, max_restarts=2)
    finally:
        stop.set()
        watcher.join()
    assert len(killed) == 3
    assert result.status == {"seed=0": "lost", "seed=1": "finished", "seed=2": "finished"}
    assert "its worker died 3 times" in result.errors["seed=0"]
    assert [p.name for p in (tmp_path / "runs").glob("*.failed.json")] == ["seed=0.failed.json"]
    assert not list((tmp_path / "runs").glob("*.running"))


def test_dask_local_cluster_with_two_worker_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = sweep_spec(sweep(tmp_path, {"run.seed": [0, 1, 2]}))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = set(client.run(os.getpid).values())
        result = run_sweep(spec, executor=client.get_executor())
    assert len(pids) == 2 and os.getpid() not in pids
    assert result.ok and result.counts() == {"finished": 3}
    for name, _, _ in spec.runs:
        assert "summary" in open_run(tmp_path / "runs" / f"{name}.nc").children


def test_grouped_sweep_equals_one_run_at_a_time(tmp_path):
    grid = {"model.residual.r": [0.95, 1.0], "run.seed": [0, 1], "optimizer.lr": [0.01, 0.02]}
    config = {
        "run": {"dtype": "float64"},
        "diagnostics": {"lyapunov": {"at": [30], "steps": 50, "transient": 10}},
    }
    alone = sweep_spec(sweep(tmp_path / "alone", grid, **config))
    together = sweep_spec(sweep(tmp_path / "together", grid, **config))
    configs = {name: c for name, _, c in together.runs}
    assert [len(job) for job in _jobs(list(configs), configs, 4)] == [4, 4]
    assert run_sweep(alone, workers=2).ok
    assert run_sweep(together, workers=2, group=4).ok
    a, b = lk.open_sweep(tmp_path / "alone"), lk.open_sweep(tmp_path / "together")
    np.testing.assert_allclose(
        a.curves("metrics", "test_loss"), b.curves("metrics", "test_loss"), rtol=1e-10
    )
    assert np.isfinite(a.summary["exponent_max"]).all()
    np.testing.assert_allclose(a.summary["exponent_max"], b.summary["exponent_max"], rtol=1e-8)
