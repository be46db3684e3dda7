"""The harness itself: it fails fast and says why, and a missing browser is an error, not a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from browser_harness import HERE, REPO, SKIP_ENV, parameterized_copy, write_notebook
from explorer_page import ExplorerPage


def test_a_failing_cell_fails_fast_with_its_traceback_and_the_voila_log(
    voila, page, page_log, tmp_path
) -> None:
    path = write_notebook(tmp_path / "broken.ipynb", "raise RuntimeError('no latents today')")
    ex = ExplorerPage(page, voila(path), page_log)
    with pytest.raises(pytest.fail.Exception) as info:
        ex.open()
    msg = str(info.value)
    assert "a cell failed" in msg and "no latents today" in msg
    assert "--- Voila log (tail) ---" in msg and "Error at server while executing cell" in msg


def _run_tier(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rsE",
            str(HERE / "test_standin.py::test_first_render"),
        ],
        cwd=REPO,
        check=False,
        env={**os.environ, "CYTOSAE_ARTIFACTS": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_missing_browser_is_an_error_unless_skipping_is_asked_for(tmp_path) -> None:
    missing = {"CYTOSAE_CHROMIUM": str(tmp_path / "no-chromium"), SKIP_ENV: "require"}
    run = _run_tier(tmp_path, **missing)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout and "no-chromium not found" in run.stdout, run.stdout

    run = _run_tier(tmp_path, **{**missing, SKIP_ENV: "skip-if-missing"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 skipped" in run.stdout and "no-chromium not found" in run.stdout, run.stdout


def test_parameterized_copy_injects_parameters(tmp_path) -> None:
    src = REPO / "notebooks" / "10_latent_explorer.ipynb"
    dest = parameterized_copy(src, tmp_path, profile="smoke")
    nb = nbformat.read(dest, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'profile = "smoke"' in injected[0].source
