"""Sphinx configuration: the gallery (sphinx-gallery), the API reference (autosummary, numpydoc),
a page per command (generated from the parser) and the benchmark results (MyST). Everything is
built offline: no intersphinx, no web fonts, no CDN (checked by docs/check_site.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("MPLBACKEND", "Agg")

from seglab import __version__  # noqa: E402

project = "seglab"
author = "seglab developers"
copyright = "seglab developers, BSD-3-Clause"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "**/*.md5",
                    "auto_examples/*.zip", "sg_execution_times.rst"]  # fmt: skip
templates_path = []
html_theme = "furo"
html_title = f"seglab {version}"
html_static_path = []
html_show_sourcelink = False

autosummary_generate = True
autodoc_default_options = {"members": True, "ignore-module-all": True}  # own members only
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# the house's docstrings are short and say why; where one has a Parameters section, numpydoc
# checks that it names real parameters, in order, each with a type (the build fails otherwise)
numpydoc_validation_checks = {"PR02", "PR03", "PR04"}
numpydoc_validation_exclude = {r"\._[a-z]", r"\.__"}  # private names
myst_heading_anchors = 3

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "capture_repr": (),
    "run_stale_examples": False,
    "abort_on_example_error": True,
}


def _cli_pages(app) -> None:
    """docs/cli/<command>.rst from the parser itself: the pages cannot disagree with --help."""
    from seglab.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    folder = DOCS / "cli"
    folder.mkdir(exist_ok=True)
    names = []
    for name, command in sub.choices.items():
        help_text = command.format_help().replace("usage: seglab", "usage: seglab", 1)
        title = f"seglab {name}"
        body = "\n".join("   " + line if line else "" for line in help_text.splitlines())
        page = f"{title}\n{'=' * len(title)}\n\n{command.description or ''}\n\n.. code-block:: text\n\n{body}\n"
        target = folder / f"{name}.rst"
        if not target.exists() or target.read_text() != page:
            target.write_text(page)
        names.append(name)
    index = "Command line\n============\n\n``seglab COMMAND --help`` prints the same text.\n\n"
    index += ".. toctree::\n   :maxdepth: 1\n\n" + "".join(f"   {n}\n" for n in names)
    target = folder / "index.rst"
    if not target.exists() or target.read_text() != index:
        target.write_text(index)


def setup(app):
    app.connect("builder-inited", _cli_pages)
