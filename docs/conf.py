"""Sphinx configuration of lyapkit's documentation site.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (installed by the
``docs`` extra). Warnings are errors: a broken cross-reference, a docstring missing a required
numpydoc section or a failing gallery script fails the build.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import lyapkit

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MPLBACKEND", "Agg")

project = "lyapkit"
author = "lyapkit developers"
copyright = "2026, lyapkit developers"  # noqa: A001 - Sphinx's name
release = version = lyapkit.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "gallery/README.rst", "**/README.md"]
templates_path = ["_templates"]
root_doc = "index"

# MyST: the pages' $...$ maths, and headings as link targets
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# API reference: one page per public name, generated from the docstrings
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_default_options = {"members": True, "member-order": "bysource"}
numpydoc_show_class_members = False  # autodoc lists the members on the class page
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# the codes tests/test_docstrings.py requires, but Examples: the build documents methods too, which
# need none (the test requires them of every public function and class and runs them); a
# constructor is documented by its class
_CHECKS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["numpydoc_validation"]
numpydoc_validation_checks = set(_CHECKS["checks"]) - {"EX01"}
numpydoc_validation_exclude = {r"\.__init__$"}

# every cross-reference must resolve; external types are written as plain text in docstrings
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|torch|xarray|xr|h5py|scipy|matplotlib|concurrent|pathlib|typing)\..*"),
]

# the gallery: scripts in docs/gallery, run at build time, figures made by the code
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_gallery",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}

html_theme = "pydata_sphinx_theme"
html_title = f"lyapkit {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
