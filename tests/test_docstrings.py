"""Every public name has a numpydoc docstring whose sections match its signature, and its examples run.

The public names are those of ``__all__`` of :data:`NAMESPACES` (the API reference documents each
of them, checked by ``tests/test_docs.py``). Functions and classes must have no numpydoc
validation error among the codes of ``[tool.numpydoc_validation]`` in ``pyproject.toml`` (the
documentation build fails on the same codes); their public methods must pass the same codes but
Examples. The ``Examples``
of every public name and of its methods run as doctests.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
import sys
import tomllib
from pathlib import Path

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")
pytest.importorskip("torch")

NAMESPACES = (
    "lyapkit",
    "lyapkit.theory",
    "lyapkit.testing",
    "lyapkit.trainers.models",
    "lyapkit.trainers.models.residuals",
    "lyapkit.trainers.tasks",
    "lyapkit.trainers.config",
    "lyapkit.trainers.trainer",
    "lyapkit.trainers.sweep",
    "lyapkit.trainers.group",
)
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
#: numpydoc codes every public function and class must pass (``[tool.numpydoc_validation]``)
REQUIRED = tuple(tomllib.loads(PYPROJECT.read_text())["tool"]["numpydoc_validation"]["checks"])
#: the codes a public method (or property) of a public class must pass: all but Examples
METHOD_REQUIRED = tuple(code for code in REQUIRED if code != "EX01")
_OWN = ("lyapkit", "backends", "trainers")


def _public_objects() -> list[tuple[str, object]]:
    """``(qualified name, object)`` of every public function and class, in ``__all__`` order."""
    found: dict[int, tuple[str, object]] = {}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and id(obj) not in found:
                found[id(obj)] = (f"{namespace}.{name}", obj)
    return list(found.values())


def _public_methods(cls: type) -> list[str]:
    """Names of the public methods and properties that ``cls`` or a base of ours defines."""
    names = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith(_OWN):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or name in names:
                continue
            if isinstance(member, (property, staticmethod, classmethod)) or inspect.isfunction(
                member
            ):
                names.append(name)
    return names


PUBLIC = _public_objects()
METHODS = [
    f"{qualified}.{method}"
    for qualified, obj in PUBLIC
    if inspect.isclass(obj)
    for method in _public_methods(obj)
]


def _errors(qualified: str, codes: tuple[str, ...]) -> list[str]:
    report = numpydoc_validate.validate(qualified)
    return [f"{code}: {message}" for code, message in report["errors"] if code in codes]


@pytest.mark.parametrize("qualified", [q for q, _ in PUBLIC])
def test_public_docstring_is_complete(qualified: str):
    errors = _errors(qualified, REQUIRED)
    assert not errors, f"{qualified}:\n" + "\n".join(errors)


@pytest.mark.parametrize("qualified", METHODS)
def test_public_method_docstring_is_complete(qualified: str):
    errors = _errors(qualified, METHOD_REQUIRED)
    assert not errors, f"{qualified}:\n" + "\n".join(errors)


@pytest.mark.parametrize("qualified,obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_examples_run(qualified: str, obj: object, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write run stores and figures
    monkeypatch.setenv("MPLBACKEND", "Agg")
    finder = doctest.DocTestFinder(exclude_empty=True)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    tests = [t for t in finder.find(obj, qualified, globs={}) if t.examples]
    assert tests, f"{qualified} has no examples"
    try:
        for test in tests:
            runner.run(test)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")  # examples draw on the current axes
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) of {qualified} failed (see above)"


API_PAGES = sorted((Path(__file__).resolve().parent.parent / "docs" / "api").glob("*.md"))
_CURRENT = re.compile(r"^\.\. currentmodule:: (\S+)", re.MULTILINE)
_ENTRY = re.compile(r"^\.\. autosummary::\n(?:   :.*\n)*\n((?:   \S+\n)+)", re.MULTILINE)
_DATA = re.compile(r"^\.\. py:data:: (\S+)", re.MULTILINE)


def _documented() -> dict[int, list[str]]:
    """Objects the API pages document (autosummary entries, ``py:data`` and the modules of
    ``currentmodule``), by ``id``."""
    documented: dict[int, list[str]] = {}
    for page in API_PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.split(r"(?=^\.\. currentmodule:: )", text, flags=re.MULTILINE)[1:]:
            module = importlib.import_module(_CURRENT.match(block).group(1))
            documented.setdefault(id(module), []).append(f"{page.name}:{module.__name__}")
            names = [n for m in _ENTRY.finditer(block) for n in m.group(1).split()]
            names += _DATA.findall(block)
            for name in names:
                documented.setdefault(id(getattr(module, name)), []).append(f"{page.name}:{name}")
    return documented


def test_api_reference_documents_every_public_name_once():
    documented = _documented()
    missing, repeated = [], []
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            if name == "__version__":
                continue
            obj = getattr(module, name)
            where = documented.get(id(obj), [])
            if not where:
                missing.append(f"{namespace}.{name}")
            elif len(where) > 1 and not inspect.ismodule(obj):
                repeated.append(f"{namespace}.{name}: {where}")
    assert not missing, f"public names missing from docs/api/*.md: {missing}"
    assert not repeated, f"public names documented more than once: {repeated}"
