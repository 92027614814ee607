"""The ``lyapkit`` command line: in process, and as the installed command in real subprocesses,
also in an environment where the optional dependencies cannot be imported."""

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from cases import assert_refused, cli, interrupted_run, write_config

import lyapkit as lk
from lyapkit.cli import main

#: The optional dependencies: `pip install lyapkit` installs none of them.
OPTIONAL = ("torch", "numba", "h5py", "h5netcdf", "netCDF4", "matplotlib", "tqdm", "sklearn")
#: What of torch, numba, matplotlib, h5py, h5netcdf, netCDF4 and the trainers a process imported.
LOADED = (
    "sorted(m for m in sys.modules if m.split('.')[0] in "
    "('torch','numba','matplotlib','h5py','h5netcdf','netCDF4') or m.startswith('lyapkit.trainers'))"
)


def lyapkit_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m lyapkit.cli``."""
    script = shutil.which("lyapkit", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "lyapkit.cli"]


def without(blocked: Sequence[str], directory: Path) -> dict[str, str]:
    """An environment in which the modules ``blocked`` cannot be imported, as if not installed: a
    ``sitecustomize`` on PYTHONPATH sets ``sys.modules[name] = None``, so ``import name`` raises
    ModuleNotFoundError and ``importlib.util.find_spec(name)`` returns None."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        f"import sys\nfor name in {tuple(blocked)!r}:\n    sys.modules[name] = None\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}


def run(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [*lyapkit_command(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def bare(tmp_path_factory) -> dict[str, str]:
    """The environment of `pip install lyapkit` alone (numpy, scipy, xarray)."""
    return without(OPTIONAL, tmp_path_factory.mktemp("bare"))


def test_spectrum_prints_table_and_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "henon.nc"
    code = main(
        [
            "-q",
            "spectrum",
            "henon",
            "-p",
            "a=1.4",
            "-p",
            "b=0.3",
            "--steps",
            "20000",
            "--backend",
            "numpy",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "Kaplan-Yorke dimension" in text
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds["exponent_value"].shape == (2,)
    assert abs(float(ds["exponent_value"][0]) - 0.4192) < 0.01
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind
    ds.close()


def test_list_parameters(capsys):
    assert (
        main(
            [
                "-q",
                "spectrum",
                "coupled_standard_maps",
                "-p",
                "M=2",
                "-p",
                "k=1,1.5",
                "--steps",
                "2000",
                "--backend",
                "numpy",
            ]
        )
        == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    values = np.array([float(r.split()[1]) for r in rows])
    assert len(values) == 4 and abs(values.sum()) < 1e-9  # symplectic: exponents sum to zero


def test_usage_errors_exit_2_and_name_the_problem(capsys):
    assert main(["spectrum", "nonsense"]) == 2
    assert "unknown map 'nonsense'" in capsys.readouterr().err
    assert main(["spectrum", "henon", "-p", "zz=1"]) == 2
    assert "no parameter ['zz']" in capsys.readouterr().err
    assert main(["spectrum", "linear"]) == 2
    assert "needs array parameters ['A']" in capsys.readouterr().err
    assert main(["spectrum", "henon", "--k", "3"]) == 2
    assert "k must be an integer between 1 and dim=2" in capsys.readouterr().err
    assert main(["spectrum", "henon", "--backend", "jax"]) == 2
    assert "backend must be" in capsys.readouterr().err


def test_quiet_and_verbose_work_after_the_subcommand(capsys):
    assert main(["spectrum", "henon", "--steps", "2000", "--backend", "numpy", "-q"]) == 0
    assert "Kaplan-Yorke dimension" in capsys.readouterr().out
    assert main(["-q", "spectrum", "henon", "--steps", "2000", "--backend", "numpy", "-v"]) == 0


def test_loading_the_command_line_imports_no_optional_dependency():
    """`import lyapkit.cli` and building the parser of every command load neither torch, numba,
    matplotlib, h5py, h5netcdf, netCDF4 nor the trainers (which the handlers import when they
    run), and neither does a numpy spectrum."""
    code = f"import lyapkit.cli, sys; print({LOADED})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = (
        "import lyapkit.cli, sys; lyapkit.cli.make_parser(); "
        "lyapkit.cli.main(['-q', 'spectrum', 'henon', '--steps', '200', '--backend', 'numpy']); "
        f"print({LOADED})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_bare_environment_hides_the_optional_dependencies(bare):
    """The premise of the tests below: in `bare`, the optional dependencies look uninstalled."""
    code = (
        "import importlib.util\n"
        f"for name in {OPTIONAL!r}:\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(name)\n"
        "import lyapkit\n"
        "print(lyapkit.available_backends())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=bare, check=True
    )
    assert out.stdout.split() == ["['numpy']"]


def test_installed_command_lists_every_command(bare):
    for env in (None, bare):
        out = run(["--help"], env=env)
        assert out.returncode == 0, out.stderr
        for command in ("spectrum", "train", "report", "demo"):
            assert command in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "lyapkit.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("lyapkit ")


def test_spectrum_without_extras(bare):
    """`pip install lyapkit` alone runs `lyapkit spectrum` (on the numpy backend)."""
    out = run(["spectrum", "henon", "--steps", "200"], env=bare)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"]
    assert float(rows[0][1]) > 0 > float(rows[1][1])
    assert "backend numpy" in out.stdout and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["train", "run.toml"], "lyapkit[torch]"),
        (["demo", "--steps", "5"], "lyapkit[torch]"),
        (["report", "run.nc"], "lyapkit[torch]"),
        (["spectrum", "run.nc"], "lyapkit[torch]"),
        (["spectrum", "henon", "--steps", "200", "-o", "henon.nc"], "lyapkit[store]"),
        (["spectrum", "henon", "--steps", "200", "--backend", "numba"], "lyapkit[numba]"),
        (["spectrum", "henon", "--steps", "200", "--backend", "torch"], "lyapkit[torch]"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(bare, tmp_path, args, extra):
    out = run(args, env=bare, cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"lyapkit {args[0]}: error: ") and extra in lines[0]
    assert not list(tmp_path.iterdir())  # stopped before writing anything


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("torch", "netCDF4", "sklearn")),
    reason="needs lyapkit[torch,store,tasks]",
)
def test_demo_stops_before_training_when_one_extra_is_missing(tmp_path):
    """With torch installed but not matplotlib, `lyapkit demo` fails at once (not after training,
    when it writes its report sheet), naming the extra."""
    env = without(["matplotlib"], tmp_path / "site")
    out = run(["demo", "--steps", "5", "--dir", str(tmp_path / "runs")], env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "lyapkit demo: error: matplotlib is not installed; install it with "
        "`pip install lyapkit[plot]`"
    ]
    assert not (tmp_path / "runs").exists()


def test_cli_unwritable_output_is_a_clean_error(tmp_path, capsys):
    out = tmp_path / "missing" / "x.nc"
    argv = ["-q", "spectrum", "henon", "--steps", "50", "--backend", "numpy", "-o", str(out)]
    assert main(argv) != 0
    assert "error" in capsys.readouterr().err


def test_cli_invalid_arguments_exit_2(capsys):
    assert main(["-q", "spectrum", "henon", "--steps", "0", "--backend", "numpy"]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err
    assert main(["-q", "spectrum", "henon", "--k", "3", "--backend", "numpy"]) == 2
    assert "k must be an integer between 1 and dim=2" in capsys.readouterr().err


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


def test_report_is_written_where_it_says(tmp_path):
    pytest.importorskip("matplotlib")
    run = interrupted_run(tmp_path)
    sheet = tmp_path / "sheet"  # no suffix: matplotlib alone would write sheet.png
    proc = cli("report", str(run), "-o", str(sheet))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sheet)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not sheet.with_suffix(".png").exists()
