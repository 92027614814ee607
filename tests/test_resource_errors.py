"""Resource and user errors are one line and exit 2, and leave what was written as it was.

The rows of issue 20's table that are about resources and messages: a full disk (a small tmpfs,
when the tests run as root), a read-only or missing folder, a CUDA device on a CPU-only torch,
output paths checked before computing and written with the umask's mode, report sheets named as
written, corrupt checkpoints and foreign files named, typed map parameters, and the messages of
row 11 (a string hidden size, out-of-range class labels, minimal performance never reached).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_run_safety import assert_refused, cli, interrupted_run, write_config  # noqa: E402

import lyapkit as lk  # noqa: E402
from lyapkit import losses  # noqa: E402
from lyapkit._files import atomic_write, check_writable  # noqa: E402

ROOT = os.name == "posix" and os.geteuid() == 0


@contextlib.contextmanager
def mounted(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` with ``options`` (needs root), unmounted afterwards."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(folder: Path, spare: int = 0) -> None:
    """Write zeros into ``folder`` until its file system is full, then free ``spare`` bytes."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    os.truncate(filler, max(filler.stat().st_size - spare, 0))


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "filler"}


# ------------------------------------------------------------------ a full disk, read-only folders


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
@pytest.mark.parametrize("spare", [0, 8192])  # no room for the lock; room for it, not the store
def test_full_disk_is_one_line_and_keeps_the_last_good_store(tmp_path, spare):
    with mounted(tmp_path / "disk", "size=1m") as disk:
        run = interrupted_run(disk)  # stopped after its checkpoint at step 10 of 20
        fill(disk, spare)
        before = contents(disk)
        line = assert_refused(
            cli("train", str(disk / "run.toml"), "--resume"), "No space left on device"
        )
        assert str(disk) in line and ".tmp-" not in line  # names the target, not the temporary
        assert contents(disk) == before  # run file, checkpoint and config untouched, no lock left
        (disk / "filler").unlink()
        proc = cli("train", str(disk / "run.toml"), "--resume")  # space again: it finishes
        assert proc.returncode == 0, proc.stderr
        assert int(lk.open_run(run)["metrics"]["step"][-1]) == 20


@pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")
def test_spectrum_output_on_a_full_disk_is_one_line(tmp_path):
    with mounted(tmp_path / "disk", "size=64k") as disk:
        fill(disk)
        line = assert_refused(
            cli("spectrum", "henon", "--steps", "100", "-o", str(disk / "h.nc")),
            "No space left on device",
        )
        assert "h.nc" in line and ".tmp-" not in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no temporary left behind


@pytest.mark.skipif(not ROOT, reason="mounting a read-only tmpfs needs root")
def test_read_only_folder_fails_before_computing(tmp_path):
    with mounted(tmp_path / "ro", "size=64k,ro") as ro:
        assert_refused(cli("spectrum", "henon", "--steps", "100", "-o", str(ro / "h.nc")), "h.nc")
        config = write_config(tmp_path)
        config.write_text(config.read_text().replace(f'"{tmp_path.as_posix()}"', f'"{ro}"'))
        assert_refused(cli("train", str(config)), str(ro))


def test_output_paths_are_checked_before_computing(tmp_path):
    """A missing folder or a folder given as the file: refused at once (the 10⁹ steps asked for
    would take minutes), naming the option."""
    missing = tmp_path / "no" / "such" / "h.nc"
    for target in (missing, tmp_path):
        line = assert_refused(
            cli("spectrum", "henon", "--steps", "1000000000", "-o", str(target)), "--output"
        )
        assert str(target) in line
    assert not missing.parent.exists()


def test_check_writable_names_the_argument(tmp_path):
    assert check_writable(tmp_path / "a.nc", "out") == tmp_path / "a.nc"
    with pytest.raises(FileNotFoundError, match=r"out '.*no/a\.nc': the folder .* does not exist"):
        check_writable(tmp_path / "no" / "a.nc", "out")
    with pytest.raises(IsADirectoryError, match="out .* is a folder"):
        check_writable(tmp_path, "out")


def test_atomic_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):  # fails half-way: the temporary exists, then goes
        atomic_write(target, object())
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [target]


def test_written_files_get_the_umask_mode(tmp_path):
    """netCDF results, run stores, checkpoints and report sheets: 0644 under umask 022 (a
    temporary file made by mkstemp would be 0600)."""
    old = os.umask(0o022)
    try:
        out = tmp_path / "h.nc"
        assert cli("spectrum", "henon", "--steps", "100", "-o", str(out)).returncode == 0
        run = interrupted_run(tmp_path)
        files = [out, run, run.with_name("small.ckpt.pt")]
        assert [stat.S_IMODE(p.stat().st_mode) for p in files] == [0o644] * 3
    finally:
        os.umask(old)


# ------------------------------------------------------------------ devices, parameters, files


def test_cuda_on_a_cpu_only_torch_is_named(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    config = write_config(tmp_path)
    text = config.read_text().replace("threads = 0", 'threads = 0\ndevice = "cuda"')
    config.write_text(text)
    assert_refused(cli("train", str(config)), "run.device='cuda'", "no CUDA device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]  # nothing written
    torch_map = lk.from_torch(lambda x: torch.tanh(x), dim=3)
    with pytest.raises(lk.BackendError, match="device='cuda'.*no CUDA device"):
        lk.lyapunov_spectrum(torch_map, steps=10, backend="torch", device="cuda")


def test_unknown_device_strings_are_named():
    with pytest.raises(lk.BackendError, match="device must be a torch device.*'gpu'"):
        lk.lyapunov_spectrum(lk.Henon(), steps=10, backend="torch", device="gpu")


def test_a_list_for_a_scalar_map_parameter_is_refused():
    """It used to reach numba as a list: a 61-line TypingError."""
    line = assert_refused(cli("spectrum", "henon", "-p", "a=1.4,2", "--backend", "numba"))
    assert "a must be a finite number" in line
    with pytest.raises(ValueError, match="coupling must be a finite number"):
        lk.CoupledStandardMaps(coupling=[0.1, 0.2])


def test_numba_typing_errors_are_one_backend_error():
    numba = pytest.importorskip("numba")

    @numba.njit
    def step(x, u, p, out):
        out[0] = p[0] * x[0] * "a"  # no float × str

    @numba.njit
    def jacobian(x, u, p, out):
        out[0, 0] = p[0]

    system = lk.from_numba(step, jacobian, 1, params=(2.0,), name="typo")
    with pytest.raises(lk.BackendError) as info:
        lk.lyapunov_spectrum(system, steps=10, backend="numba")
    message = str(info.value)
    assert "\n" not in message and message.startswith("typo: numba cannot compile")
    assert "mul(float64" in message and "backend='numpy'" in message


def test_corrupt_checkpoint_is_named_on_resume_and_in_spectrum(tmp_path):
    run = interrupted_run(tmp_path)
    checkpoint = run.with_name("small.ckpt.pt")
    checkpoint.write_bytes(b"not a checkpoint")
    for args in (("train", str(tmp_path / "run.toml"), "--resume"), ("spectrum", str(run))):
        assert_refused(cli(*args), "cannot read the checkpoint", "small.ckpt.pt", "torn")
    assert checkpoint.read_bytes() == b"not a checkpoint"


def test_a_file_that_is_not_hdf5_is_named(tmp_path):
    fake = tmp_path / "notes.nc"
    fake.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.nc is not a lyapkit run store.*netCDF4/HDF5"):
        lk.open_run(fake)
    assert_refused(cli("report", str(fake)), "notes.nc", "not a lyapkit run store")


def test_report_is_written_where_it_says(tmp_path):
    pytest.importorskip("matplotlib")
    run = interrupted_run(tmp_path)
    sheet = tmp_path / "sheet"  # no suffix: matplotlib alone would write sheet.png
    proc = cli("report", str(run), "-o", str(sheet))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sheet)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not sheet.with_suffix(".png").exists()


# ------------------------------------------------------------------ row 11: messages


def test_string_hidden_size_is_named(tmp_path):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("hidden_size = 8", 'hidden_size = "8"'))
    line = assert_refused(cli("train", str(config)), "model.hidden_size", "'8'")
    assert "residual" not in line


def test_out_of_range_class_labels_are_named():
    outputs = torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\).*from 0 to 3"):
        losses.mean_loss("cross_entropy", outputs, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="from -1 to 2"):
        losses.mean_loss("cross_entropy", outputs, torch.tensor([-1, 1, 2, 0]))
    good = losses.mean_loss("cross_entropy", outputs, torch.tensor([0, 1, 2, 2]))
    assert float(good) == pytest.approx(np.log(3), rel=1e-12)


def test_minimal_performance_never_reached_is_said_so(tmp_path):
    """The small adding run does not reach its threshold in 20 steps."""
    proc = cli("train", str(write_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    message = proc.stdout.split(".nc: ", 1)[1]  # the path may hold "-1" (pytest-1…)
    assert "minimal performance not reached" in message and "-1" not in message
