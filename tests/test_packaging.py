"""Packaging: the distribution installs one import name, ``lyapkit``.

The repository keeps three folders, ``lyapkit/``, ``backends/`` and ``trainers/``; pyproject.toml maps
the last two to ``lyapkit.backends`` and ``lyapkit.trainers`` (setuptools ``package-dir``), so that
installing lyapkit never provides (or clobbers) a top-level ``backends`` or ``trainers`` package,
names that other distributions on PyPI use.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lyapkit

REPO = Path(__file__).resolve().parents[1]
#: Repository folder -> package path in the installed distribution.
FOLDERS = {"lyapkit": "lyapkit", "backends": "lyapkit/backends", "trainers": "lyapkit/trainers"}
#: Files that must be in the wheel (one of each folder and subpackage).
REQUIRED = [
    "lyapkit/cli.py",
    "lyapkit/maps/builtin.py",
    "lyapkit/backends/numba_backend.py",
    "lyapkit/trainers/trainer.py",
    "lyapkit/trainers/models/wcrnn.py",
    "lyapkit/trainers/tasks/images.py",
]
SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}


def source_files() -> list[Path]:
    """The files of the working tree as a fresh checkout plus new files would have them (tracked and
    untracked but not ignored: no build outputs, caches or virtual environment)."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True,
        )  # fmt: skip
        names = [Path(os.fsdecode(n)) for n in out.stdout.split(b"\0") if n]
    else:
        names = [
            p.relative_to(REPO)
            for p in REPO.rglob("*")
            if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in p.relative_to(REPO).parts)
        ]  # fmt: skip
    return [n for n in names if (REPO / n).is_file()]  # a file deleted in the work tree is gone


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel of the repository, built (offline, about 3 s) from a copy of its source, so that
    the build leaves nothing (build/, *.egg-info) in the working tree."""
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        pytest.skip("building the wheel needs pip and setuptools in this environment")
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "out"
    for name in source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    (path,) = out.glob("*.whl")
    assert path.name == f"lyapkit-{lyapkit.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_installs_only_the_lyapkit_package(wheel):
    dist_info = f"lyapkit-{lyapkit.__version__}.dist-info/"
    names = wheel.namelist()
    strays = [n for n in names if not n.startswith(("lyapkit/", dist_info))]
    assert not strays, f"files outside lyapkit/ in the wheel: {strays}"
    for name in REQUIRED:
        assert name in names
    if dist_info + "top_level.txt" in names:
        assert wheel.read(dist_info + "top_level.txt").decode().split() == ["lyapkit"]


def test_wheel_holds_every_module_of_the_three_folders(wheel):
    """A new module or subpackage in backends/ or trainers/ that pyproject.toml's package list
    misses would be absent from installs (and only from installs: editable ones find it)."""
    names = set(wheel.namelist())
    missing = [
        f"{FOLDERS[path.parts[0]]}/{Path(*path.parts[1:]).as_posix()}"
        for path in source_files()
        if path.parts[0] in FOLDERS and path.suffix == ".py"
    ]
    missing = [name for name in missing if name not in names]
    assert not missing, f"modules missing from the wheel: {missing}"


def test_wheel_entry_point_is_the_core_cli(wheel):
    entry_points = configparser.ConfigParser()
    dist_info = f"lyapkit-{lyapkit.__version__}.dist-info/"
    entry_points.read_string(wheel.read(dist_info + "entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"lyapkit": "lyapkit.cli:main"}


def test_editable_install_maps_the_folders(tmp_path):
    """Outside the repository (so that its root is not on sys.path), ``lyapkit.backends`` and
    ``lyapkit.trainers`` resolve to the repository's folders, and there is no top-level
    ``backends`` or ``trainers``."""
    code = (
        "import importlib.util, json, lyapkit\n"
        "spec = importlib.util.find_spec\n"
        "print(json.dumps({\n"
        "    'lyapkit': lyapkit.__file__,\n"
        "    'backends': spec('lyapkit.backends').origin,\n"
        "    'trainers': spec('lyapkit.trainers').origin,\n"
        "    'models': spec('lyapkit.trainers.models').origin,\n"
        "    'top_backends': spec('backends') is not None,\n"
        "    'top_trainers': spec('trainers') is not None,\n"
        "}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    found = json.loads(out.stdout)
    if Path(found["lyapkit"]).resolve() != REPO / "lyapkit" / "__init__.py":
        pytest.skip(f"lyapkit is not installed editable from this repository: {found['lyapkit']}")
    assert Path(found["backends"]).resolve() == REPO / "backends" / "__init__.py"
    assert Path(found["trainers"]).resolve() == REPO / "trainers" / "__init__.py"
    assert Path(found["models"]).resolve() == REPO / "trainers" / "models" / "__init__.py"
    assert not found["top_backends"] and not found["top_trainers"]
