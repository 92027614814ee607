"""File writing (``lyapkit._files``): output paths checked and named before anything is computed,
atomic writes that keep the old file on failure, and files written with the umask's mode."""

from __future__ import annotations

import os
import stat

import pytest
from cases import cli, interrupted_run

from lyapkit._files import atomic_write, check_writable


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
