"""Run store: real netCDF4/HDF5 files written by netCDF-C, read back by xarray, h5netcdf, h5py."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("h5netcdf")
h5py = pytest.importorskip("h5py")
from cases import assert_refused, cli  # noqa: E402

import lyapkit as lk  # noqa: E402
from lyapkit import __version__  # noqa: E402
from lyapkit import store as store_module  # noqa: E402
from lyapkit.store import STEP_ATTRS, RunStore, open_run, run_config  # noqa: E402

CONFIG = {
    "model": {"kind": "wcrnn", "hidden": 64, "gamma": 0.05, "residual": "rotational"},
    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
    "task": "smnist",
    "layers": [64, 64],
    "note": "γ small — weakly coupled",
    "clip": None,
}
LOSS_ATTRS = {"loss": {"units": "1", "long_name": "cross-entropy loss"}}


def lyapunov_record(step: int, k: int = 3) -> xr.Dataset:
    """A Lyapunov-spectrum record: dims (exponent,), CF attrs, an ``exponent`` coordinate."""
    values = -np.arange(k, dtype=np.float64) - 0.001 * step
    return xr.Dataset(
        {
            "exponent_value": (
                ("exponent",),
                values,
                {"units": "1/step", "long_name": "Lyapunov exponent"},
            ),
            "stderr": (("exponent",), np.full(k, 0.01), {"units": "1/step"}),
        },
        coords={"exponent": ("exponent", np.arange(1, k + 1), {"long_name": "exponent index"})},
        attrs={"title": "Lyapunov spectrum"},
    )


def fill(store: RunStore, metric_steps, lyapunov_steps) -> None:
    for step in metric_steps:
        store.append("metrics", step, {"loss": 1.0 / (step + 1), "accuracy": 0.5}, attrs=LOSS_ATTRS)
    for step in lyapunov_steps:
        store.append("lyapunov", step, lyapunov_record(step))


@pytest.fixture
def run_path(tmp_path) -> Path:
    return tmp_path / "runs" / "run.nc"


def test_round_trip_of_groups_with_their_own_step_axes(run_path):
    store = RunStore.create(run_path, config=CONFIG, seed=7)
    fill(store, range(0, 50, 5), [0, 20, 40])
    store.flush()
    assert store.groups == ("metrics", "lyapunov")
    assert (store.last_step("metrics"), store.last_step("lyapunov"), store.last_step()) == (
        45,
        40,
        45,
    )

    tree = open_run(run_path)
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == {"metrics", "lyapunov"}
    metrics = tree["metrics"].to_dataset()
    np.testing.assert_array_equal(metrics["step"], np.arange(0, 50, 5))
    np.testing.assert_allclose(metrics["loss"], 1.0 / (np.arange(0, 50, 5) + 1))
    assert metrics["loss"].dims == ("step",)
    assert metrics["step"].dtype == np.int64
    lyap = tree["lyapunov"].to_dataset()
    assert lyap["exponent_value"].dims == ("step", "exponent")
    np.testing.assert_array_equal(lyap["step"], [0, 20, 40])
    np.testing.assert_array_equal(lyap["exponent"], [1, 2, 3])
    np.testing.assert_allclose(
        lyap["exponent_value"].sel(step=20), lyapunov_record(20).exponent_value
    )

    # CF attributes survive: variables, coordinates, the step axis and the group
    assert lyap["exponent_value"].attrs == {"units": "1/step", "long_name": "Lyapunov exponent"}
    assert lyap["exponent"].attrs["long_name"] == "exponent index"
    assert lyap.attrs["title"] == "Lyapunov spectrum"
    assert metrics["loss"].attrs == LOSS_ATTRS["loss"]
    for ds in (metrics, lyap):
        assert (
            ds["step"].attrs == STEP_ATTRS == {"units": "iteration", "long_name": "training step"}
        )

    # root attributes: config as JSON, seed, version, creation time, format
    assert tree.attrs["config"] == json.dumps(CONFIG)
    assert run_config(tree) == CONFIG
    assert tree.attrs["seed"] == "7"
    assert tree.attrs["lyapkit_version"] == __version__
    assert int(tree.attrs["format_version"]) == store_module.FORMAT_VERSION
    assert tree.attrs["created"].endswith("+00:00")
    xr.testing.assert_identical(
        tree["metrics"].to_dataset(), store.to_datatree()["metrics"].to_dataset()
    )


def test_file_opens_with_plain_xarray_and_h5py(run_path):
    with RunStore.create(run_path, config=CONFIG, seed=3) as store:
        fill(store, range(4), [1, 3])

    with xr.open_dataset(run_path, group="lyapunov", engine="h5netcdf") as ds:
        assert ds["exponent_value"].shape == (2, 3)
        assert ds["exponent_value"].attrs["units"] == "1/step"
        np.testing.assert_array_equal(ds["step"], [1, 3])
    with xr.open_dataset(run_path, engine="h5netcdf") as root:
        assert run_config(root) == CONFIG
    with h5py.File(run_path, "r") as f:
        assert set(f) == {"metrics", "lyapunov"}
        assert json.loads(f.attrs["config"]) == CONFIG
        np.testing.assert_array_equal(f["metrics/step"][()], np.arange(4))
        assert f["metrics/loss"].attrs["units"] == b"1"  # netCDF-C writes text as NC_CHAR
        assert f["lyapunov/exponent_value"].shape == (2, 3)


def test_threads_write_and_read_their_own_stores_at_once(tmp_path):
    """netCDF-C is not thread-safe: runs of a sweep on a thread pool (or a Dask worker with several
    threads) flush and read their stores at once. Without lyapkit's lock this crashed the
    process; every thread must read back exactly what it wrote, at every flush."""

    def work(i: int) -> None:
        store = RunStore.create(tmp_path / f"run{i}.nc", config={**CONFIG, "lr": i}, seed=i)
        for step in range(25):
            store.append("metrics", step, {"loss": float(100 * i + step), "accuracy": 0.5})
            store.append("lyapunov", step, lyapunov_record(step))
            store.flush()
            tree = open_run(store.path)
            np.testing.assert_array_equal(tree["metrics"]["loss"], 100 * i + np.arange(step + 1))
            assert run_config(tree)["lr"] == i

    with cf.ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(work, i) for i in range(4)]:
            future.result()
    assert [len(open_run(tmp_path / f"run{i}.nc")["lyapunov"].step) for i in range(4)] == [25] * 4


def test_config_seed_and_dtypes_round_trip_through_reopen(run_path):
    seed = 2**100 + 1  # SeedSequence entropy does not fit in int64: stored as a decimal string
    store = RunStore.create(run_path, config=CONFIG, seed=seed)
    store.append("events", 0, {"phase": "warmup", "clipped": True, "count": 3, "lr": 0.01})
    store.append("events", 1, {"phase": "train", "clipped": False, "count": 4, "lr": 0.02})
    store.flush()

    again = RunStore.open(run_path)
    assert again.config == CONFIG
    assert again.seed == seed
    assert again.groups == ("events",)
    again.append("events", 2, {"phase": "training", "clipped": True, "count": 5, "lr": 0.03})
    again.flush()
    events = open_run(run_path)["events"].to_dataset()
    assert list(events["phase"].values) == ["warmup", "train", "training"]
    assert events["clipped"].dtype == bool
    assert list(events["clipped"].values) == [True, False, True]
    assert events["count"].dtype == np.int64
    np.testing.assert_array_equal(events["lr"], [0.01, 0.02, 0.03])


def test_truncate_drops_later_steps_in_every_group(run_path):
    store = RunStore.create(run_path, config=CONFIG, seed=0)
    fill(store, range(10), range(0, 10, 3))
    store.flush()
    before = run_path.read_bytes()
    store.truncate(5)
    assert store.last_step("metrics") == 5
    assert store.last_step("lyapunov") == 3
    assert run_path.read_bytes() == before  # truncation is persisted by the next flush only
    store.flush()
    tree = open_run(run_path)
    np.testing.assert_array_equal(tree["metrics"]["step"], np.arange(6))
    np.testing.assert_array_equal(tree["lyapunov"]["step"], [0, 3])
    np.testing.assert_allclose(tree["metrics"]["loss"], 1.0 / (np.arange(6) + 1))

    # a group emptied by truncation keeps its variables with a zero-length step axis
    store.truncate(-1)
    assert store.last_step("lyapunov") is None and store.last_step() is None
    store.flush()
    lyap = open_run(run_path)["lyapunov"].to_dataset()
    assert lyap.sizes == {"step": 0, "exponent": 3}
    assert lyap["exponent_value"].attrs["units"] == "1/step"
    again = RunStore.open(run_path)
    again.append("lyapunov", 0, lyapunov_record(0))
    assert again.last_step("lyapunov") == 0


def test_resume_truncates_to_the_checkpoint_and_continues(run_path):
    """A run killed after step 9 with its last checkpoint at step 6 resumes from step 7."""
    store = RunStore.create(run_path, config=CONFIG, seed=1)
    fill(store, range(10), range(0, 10, 2))
    store.flush()
    del store

    resumed = RunStore.open(run_path)
    assert resumed.last_step("metrics") == 9
    resumed.truncate(6)
    with pytest.raises(ValueError, match="not after its last recorded step 6"):
        resumed.append("metrics", 6, {"loss": 0.0, "accuracy": 0.0})
    fill(resumed, range(7, 12), range(8, 12, 2))
    resumed.flush()

    tree = open_run(run_path)
    np.testing.assert_array_equal(tree["metrics"]["step"], np.arange(12))
    np.testing.assert_allclose(tree["metrics"]["loss"], 1.0 / (np.arange(12) + 1))
    np.testing.assert_array_equal(tree["lyapunov"]["step"], [0, 2, 4, 6, 8, 10])
    assert run_config(tree) == CONFIG


def test_failing_write_leaves_the_previous_file_intact(run_path):
    store = RunStore.create(run_path, config=CONFIG, seed=0)
    fill(store, range(3), [0])
    store.flush()
    before = run_path.read_bytes()
    fill(store, range(3, 6), [3])
    tmp = run_path.with_name(f"{run_path.name}.tmp-{os.getpid()}")

    # a real failure: the temporary file cannot be created
    tmp.mkdir()
    with pytest.raises(OSError):
        store.flush()
    tmp.rmdir()
    assert run_path.read_bytes() == before

    # (a disk that fills while writing: tests/test_cli.py, on a real small tmpfs)
    # the records are still in memory: the next flush succeeds
    store.flush()
    np.testing.assert_array_equal(open_run(run_path)["metrics"]["step"], np.arange(6))


WRITER = textwrap.dedent(
    """
    import sys

    import numpy as np
    import xarray as xr

    from lyapkit.store import RunStore

    store = RunStore.open(sys.argv[1])
    step = (store.last_step() or 0) + 1
    print("ready", flush=True)
    while True:
        store.append("metrics", step, {"loss": float(step)})
        big = np.full(20_000, float(step))
        store.append("lyapunov", step, xr.Dataset({"exponent_value": (("exponent",), big)}))
        store.flush()
        step += 1
    """
)


def test_writer_killed_at_random_moments_never_leaves_a_corrupt_file(tmp_path):
    """SIGKILL a writer that flushes in a loop: at a random moment, or while a temporary file
    is being written; the run file must always open, complete and consistent."""
    path = tmp_path / "killed.nc"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    with RunStore.create(path, config=CONFIG, seed=0) as store:
        store.append("metrics", 0, {"loss": 0.0})
        zeros = xr.Dataset({"exponent_value": (("exponent",), np.zeros(20_000))})
        store.append("lyapunov", 0, zeros)
    rng = np.random.default_rng(0)
    env = {**os.environ, "PYTHONPATH": str(Path(store_module.__file__).parents[1])}
    last, torn = 0, 0
    for attempt in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ready = proc.stdout.readline()
        assert ready.strip() == "ready", proc.communicate()[1]
        written = path.stat().st_mtime_ns
        deadline = time.monotonic() + 10  # on a loaded machine a flush may take a while
        while path.stat().st_mtime_ns == written and time.monotonic() < deadline:
            time.sleep(0.001)  # until the writer has replaced the file once
        time.sleep(rng.uniform(0.05, 0.4))
        if attempt % 2:  # wait for a temporary file, then kill mid-write
            deadline = time.monotonic() + 5
            while not list(tmp_path.glob("killed.nc.tmp-*")) and time.monotonic() < deadline:
                time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        torn += bool(list(tmp_path.glob(f"killed.nc.tmp-{proc.pid}")))

        tree = open_run(path)  # the previous flush or the new one, never a torn file
        metrics, lyap = tree["metrics"], tree["lyapunov"]
        steps = metrics["step"].values
        np.testing.assert_array_equal(steps, np.arange(len(steps)))
        np.testing.assert_array_equal(lyap["step"], steps)
        np.testing.assert_array_equal(metrics["loss"], steps.astype(float))
        np.testing.assert_array_equal(lyap["exponent_value"][:, -1], steps.astype(float))
        assert steps[-1] >= last
        last = steps[-1]
    assert last > 0, "the writer never completed a flush"
    assert torn > 0, "no writer was killed while writing"
    RunStore.open(path)  # removes the temporaries left by the killed writers
    assert not list(tmp_path.glob("killed.nc.tmp-*"))


def test_create_refuses_to_overwrite(run_path):
    with RunStore.create(run_path, config=CONFIG, seed=0) as store:
        fill(store, range(3), [])
    before = run_path.read_bytes()
    with pytest.raises(FileExistsError, match=str(run_path)):
        RunStore.create(run_path, config={}, seed=1)
    assert run_path.read_bytes() == before
    fresh = RunStore.create(run_path, config={"new": True}, seed=1, overwrite=True)
    assert fresh.groups == ()
    tree = open_run(run_path)
    assert run_config(tree) == {"new": True} and not tree.children


def test_open_run_loads_into_memory_and_releases_the_file(run_path):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to list open files")
    with RunStore.create(run_path, config=CONFIG, seed=0) as store:
        fill(store, range(3), [0])
    tree = open_run(run_path)
    fds = Path("/proc/self/fd")
    opened = {os.path.realpath(fd) for fd in fds.iterdir() if os.path.exists(fd)}
    assert str(run_path.resolve()) not in opened
    run_path.unlink()
    np.testing.assert_array_equal(tree["metrics"]["step"], [0, 1, 2])


def test_attributes_that_later_records_contradict_are_dropped(run_path):
    store = RunStore.create(run_path, config=CONFIG, seed=0)
    for step in range(3):
        record = lyapunov_record(step)
        record.attrs.update(max_condition=10.0 + step, steps=1000, ky=float("nan"))
        record["stderr"].attrs["units"] = "1/step" if step < 2 else "nats/step"
        store.append("lyapunov", step, record)
    store.append("metrics", 0, {"loss": 0.5}, attrs=LOSS_ATTRS)  # attrs given once are kept
    store.append("metrics", 1, {"loss": 0.4})
    store.flush()
    tree = open_run(run_path)
    lyap = tree["lyapunov"].to_dataset()
    assert lyap.attrs == {
        "title": "Lyapunov spectrum",
        "steps": 1000,
        "ky": pytest.approx(np.nan, nan_ok=True),
    }
    assert "units" not in lyap["stderr"].attrs
    assert lyap["exponent_value"].attrs["units"] == "1/step"
    assert tree["metrics"]["loss"].attrs == LOSS_ATTRS["loss"]


def test_to_datatree_is_a_copy_and_the_store_copies_records(run_path):
    store = RunStore.create(run_path, config=CONFIG, seed=0)
    record = lyapunov_record(0)
    store.append("lyapunov", 0, record)
    record["exponent_value"].values[:] = 99.0  # the caller reuses its buffer
    tree = store.to_datatree()
    tree["lyapunov"]["exponent_value"].values[:] = -99.0
    np.testing.assert_allclose(
        store.to_datatree()["lyapunov"]["exponent_value"][0], lyapunov_record(0).exponent_value
    )


def test_errors_name_the_argument(run_path, tmp_path):
    with pytest.raises(TypeError, match="config must be a mapping"):
        RunStore.create(run_path, config=[("a", 1)], seed=0)
    with pytest.raises(TypeError, match="config must be JSON-serialisable"):
        RunStore.create(run_path, config={"f": object()}, seed=0)
    with pytest.raises(ValueError, match="config must be JSON-serialisable"):
        RunStore.create(run_path, config={"clip": float("inf")}, seed=0)
    for bad_seed in (1.5, True, "0"):
        with pytest.raises(TypeError, match="seed must be an integer"):
            RunStore.create(run_path, config={}, seed=bad_seed)
    assert not run_path.exists()

    store = RunStore.create(run_path, config={}, seed=0)
    metrics = {"loss": 0.5}
    for name in ("a/b", "", "1st", "with space", "step"):
        with pytest.raises(ValueError, match="group"):
            store.append(name, 0, metrics)
    with pytest.raises(TypeError, match="group must be a string"):
        store.append(3, 0, metrics)
    for step in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="step must be finite"):
            store.append("metrics", step, metrics)
    with pytest.raises(ValueError, match="step must be a whole number"):
        store.append("metrics", 2.5, metrics)
    for step in ("3", True, None):
        with pytest.raises(TypeError, match="step must be an integer"):
            store.append("metrics", step, metrics)
    with pytest.raises(ValueError, match="step must fit in int64"):
        store.append("metrics", 2**64, metrics)
    with pytest.raises(TypeError, match="record must be an xarray.Dataset or a dict"):
        store.append("metrics", 0, [0.5])
    with pytest.raises(ValueError, match=r"record\['loss'\] for group 'metrics' must be a scalar"):
        store.append("metrics", 0, {"loss": [0.5, 0.4]})
    with pytest.raises(ValueError, match="has no variables"):
        store.append("metrics", 0, {})
    with pytest.raises(TypeError, match="attrs must map variable names to mappings"):
        store.append("metrics", 0, metrics, attrs={"loss": "1"})
    with pytest.raises(ValueError, match="attrs names variables not in the record"):
        store.append("metrics", 0, metrics, attrs={"los": {"units": "1"}})
    with pytest.raises(ValueError, match="already has 'step'"):
        store.append("lyapunov", 0, lyapunov_record(0).expand_dims(step=[0]))
    # what netCDF cannot store fails at append, with the group's name, not at a later flush
    with pytest.raises(TypeError, match="group 'objects' cannot be written to netCDF"):
        store.append("objects", 0, {"thing": np.array(object())})
    with pytest.raises(TypeError, match="group 'metrics' cannot be written to netCDF"):
        store.append("metrics", 0, metrics, attrs={"loss": {"units": {"not": "an attribute"}}})
    with pytest.raises(ValueError, match="name in the record for group 'metrics'"):
        store.append("metrics", 0, {"a/b": 1.0})
    assert store.groups == ()

    store.append("metrics", 0, metrics)
    store.append("lyapunov", 0, lyapunov_record(0))
    with pytest.raises(ValueError, match="step 0 of group 'metrics' is not after"):
        store.append("metrics", 0, metrics)
    with pytest.raises(ValueError, match=r"has variables \['accuracy', 'loss'\]"):
        store.append("metrics", 1, {"loss": 0.4, "accuracy": 0.9})
    with pytest.raises(ValueError, match="'exponent_value' .* has dims"):
        store.append("lyapunov", 1, lyapunov_record(1, k=4))
    shifted = lyapunov_record(1).assign_coords(exponent=[2, 3, 4])
    with pytest.raises(ValueError, match="coordinate 'exponent' .* differs"):
        store.append("lyapunov", 1, shifted)
    store.append("counts", 0, {"n": 1})
    with pytest.raises(TypeError, match="dtype float64, which cannot be cast safely to int64"):
        store.append("counts", 1, {"n": 1.5})
    store.append("metrics", 1, {"loss": 1})  # an int casts safely to the float of step 0
    with pytest.raises(KeyError, match="no group 'missing'"):
        store.last_step("missing")
    with pytest.raises(ValueError, match="step must be finite"):
        store.truncate(float("nan"))

    # reading: a missing file, a netCDF file that is not a run store
    with pytest.raises(FileNotFoundError, match="no run store"):
        open_run(tmp_path / "absent.nc")
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", [1.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not a lyapkit run store"):
        open_run(other)
    with pytest.raises(ValueError, match="not a lyapkit run store"):
        RunStore.open(other)
    with pytest.raises(ValueError, match="no 'config' attribute"):
        run_config(xr.Dataset())


def test_import_does_not_load_torch():
    code = "import sys, lyapkit.store; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_that_is_not_hdf5_is_named(tmp_path):
    fake = tmp_path / "notes.nc"
    fake.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.nc is not a lyapkit run store.*netCDF4/HDF5"):
        lk.open_run(fake)
    assert_refused(cli("report", str(fake)), "notes.nc", "not a lyapkit run store")
