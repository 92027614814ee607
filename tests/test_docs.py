"""The documentation never rots: every example of the Markdown pages runs.

Every ```` ```python ```` block of ``docs/index.md``, ``docs/howto/*.md``, ``docs/models/*.md``
and ``docs/theory/*.md`` (but the equations-only ``lyapunov.md``) is executed, in order, in one
namespace per page (later blocks may use names defined by earlier ones). A block that imports an
optional dependency which is not installed (torch, numba, matplotlib) is skipped, and the page is
reported as skipped after its other blocks ran; so no block may use names defined only in a block
that imports an optional dependency. The API reference and the docstrings' examples are checked by
``tests/test_docstrings.py``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = [
    DOCS / "index.md",
    *sorted((DOCS / "howto").glob("*.md")),
    *sorted((DOCS / "models").glob("*.md")),
    *sorted(p for p in (DOCS / "theory").glob("*.md") if p.name != "lyapunov.md"),
]
OPTIONAL = ("torch", "numba", "matplotlib", "sklearn")
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_IMPORT = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line number, source)`` of every ```python block of a Markdown page."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _FENCE.finditer(text)]


def test_every_page_has_examples():
    for page in PAGES:
        assert python_blocks(page), f"{page.relative_to(DOCS)} has no ```python examples"


@pytest.fixture
def quiet_torch_threads():
    """Small tensors run much faster with one intra-op thread (and do not depend on load)."""
    torch = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        import torch
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    yield
    if torch is not None:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_examples_run(page: Path, tmp_path, monkeypatch, quiet_torch_threads):
    monkeypatch.chdir(tmp_path)  # examples may save figures
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs_example_{page.stem.replace('-', '_')}"}
    missing: list[str] = []
    for line, source in python_blocks(page):
        needs = [m for m in _IMPORT.findall(source) if m in OPTIONAL]
        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        if absent:
            missing.append(f"line {line} ({', '.join(absent)})")
            continue
        # pad with blank lines so that tracebacks give line numbers of the Markdown page
        code = compile("\n" * (line - 1) + source, str(page), "exec")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(code, namespace)  # noqa: S102 - executing our own documentation
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    if missing:
        pytest.skip(f"optional dependency missing for blocks at {'; '.join(missing)}")


def test_figure_script_runs(tmp_path):
    """The figures of docs/reproductions.md come from docs/figures/make_figures.py: keep it working."""
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location(
        "make_figures", Path(__file__).parents[1] / "docs" / "figures" / "make_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.wcrnn_weak_coupling(tmp_path / "w.png", steps=200)
    module.henon_convergence(tmp_path / "h.png", steps=2000)
    module.sensitivity_moment(tmp_path / "s.png", samples=200, steps=100)
    module.wcrnn_exponents_vs_theory(tmp_path / "e.png", steps=200)
    for name in ("w", "h", "s", "e"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
