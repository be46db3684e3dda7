"""Shared fixtures. Environment changes are scoped to fixtures (nbval runs in the same session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"

# the browser tier (Voila + Chromium) runs on its own: `pytest tests/browser` (see its conftest)
collect_ignore = ["browser"]


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """``../shared/reference`` when present; tests using it skip cleanly otherwise.

    Only the absence of the whole folder skips: when it is there, a file missing from it or a
    value that disagrees is a failure (CI has the folder).
    """
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("../shared/reference is not present")
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def smoke_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A private runs/ and figures/ folder for the smoke profile, restored afterwards."""
    base = tmp_path_factory.mktemp("smoke")
    env = {"CYTOSAE_RUNS": base / "runs", "CYTOSAE_FIGURES": base / "figures"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        yield env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def smoke_pipeline(smoke_env: dict[str, Path]):
    """The smoke profile with every stage computed once for the session."""
    from cytosae.workflow.pipeline import Pipeline

    pipe = Pipeline("smoke", runs=smoke_env["CYTOSAE_RUNS"], progress=False)
    pipe.ensure_all()
    return pipe
