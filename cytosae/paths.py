"""Where cached artifacts and figures live.

* ``CYTOSAE_RUNS`` names the cache root; otherwise ``<repo>/runs`` when run from inside a
  checkout (found by walking up from the working directory to this project's
  ``pyproject.toml``), else ``~/.cache/cytosae/runs``.
* ``CYTOSAE_FIGURES`` names the figure folder; otherwise ``<repo>/figures``, else ``./figures``.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest ancestor of ``start`` (default: cwd) holding cytosae's ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        pp = d / "pyproject.toml"
        if pp.is_file() and 'name = "cytosae"' in pp.read_text(errors="replace"):
            return d
    return None


def runs_root() -> Path:
    env = os.environ.get("CYTOSAE_RUNS")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / "runs"
    return Path.home() / ".cache" / "cytosae" / "runs"


def figures_dir() -> Path:
    env = os.environ.get("CYTOSAE_FIGURES")
    if env:
        p = Path(env).expanduser().resolve()
    else:
        root = repo_root()
        p = (root / "figures") if root is not None else Path.cwd() / "figures"
    p.mkdir(parents=True, exist_ok=True)
    return p
