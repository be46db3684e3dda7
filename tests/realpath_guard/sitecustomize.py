"""Proof that the real-data path never touches the synthetic world (tests/test_paper_profile.py).

The test puts this folder first on the ``PYTHONPATH`` of the notebook kernels, so Python imports
this module at start-up. It then

* refuses every import of ``cytosae.synth`` (``ImportError``, so the cell and the notebook fail);
* makes ``Pipeline.groundtruth`` raise;

and records each attempt, one line per attempt, in ``$CYTOSAE_GUARD_LOG`` (so that an attempt a
notebook caught still fails the test). Nothing else changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import traceback

REFUSED = "cytosae.synth"
PIPELINE = "cytosae.workflow.pipeline"


def _record(what: str) -> None:
    log = os.environ.get("CYTOSAE_GUARD_LOG")
    if log:
        where = "".join(traceback.format_stack(limit=8)[:-2])
        with open(log, "a") as f:
            f.write(f"{what}\n{where}\n")


class _Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == REFUSED or name.startswith(REFUSED + "."):
            _record(f"import {name}")
            raise ImportError(f"{name} is refused on the real-data path (tests/realpath_guard)")
        if name == PIPELINE:
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchPipeline(spec.loader)
            return spec
        return None


class _PatchPipeline(importlib.abc.Loader):
    """Loads the pipeline module as usual, then replaces ``Pipeline.groundtruth``."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module) -> None:
        self.inner.exec_module(module)

        def groundtruth(self, name):
            _record(f"Pipeline.groundtruth({name!r})")
            raise RuntimeError("Pipeline.groundtruth is refused on the real-data path")

        module.Pipeline.groundtruth = groundtruth


sys.meta_path.insert(0, _Guard())
