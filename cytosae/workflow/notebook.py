"""What every figure notebook does first: check its parameters, pin seeds, say what it runs on."""

from __future__ import annotations

import logging
import os
import random
import types
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cytosae.workflow.pipeline import Pipeline

#: names IPython puts into a notebook's namespace
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class UnknownParameterError(ValueError):
    """A papermill parameter the notebook does not declare."""


def declared_parameters(namespace: Mapping[str, Any]) -> list[str]:
    """The parameters a notebook declares: the names annotated in its ``parameters`` cell.

    Every parameter is written ``name: type = value``, which puts ``name`` into the namespace's
    ``__annotations__``; papermill injects its values as plain assignments, which do not.
    """
    return sorted(namespace.get("__annotations__", {}))


def unknown_parameters(namespace: Mapping[str, Any], declared: Iterable[str]) -> list[str]:
    """Names of plain values in ``namespace`` that are neither declared parameters nor IPython's.

    Papermill injects parameters as assignments in a cell after the ``parameters`` cell; a
    name it injected that the notebook does not declare is a typo papermill only warns about.
    Call this right after the parameters cell, before any other assignment.
    """
    declared = set(declared)
    bad = []
    for name, value in namespace.items():
        if name.startswith("_") or name in declared or name in _IPYTHON_NAMES:
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type)) or callable(value):
            continue
        bad.append(name)
    return sorted(bad)


def pin_determinism(seed: int = 0, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch and pin the number of threads, so numbers reproduce."""
    import numpy as np
    import torch

    threads = threads or min(2, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds the legacy global RNG that user code may use
    torch.manual_seed(seed)


def setup(namespace: Mapping[str, Any], *, seed: int = 0, progress: bool = False) -> Pipeline:
    """Check the parameters, pin seeds/threads and return the profile's :class:`Pipeline`.

    Call it as ``pipe = setup(globals())`` right after the parameters cell. The declared
    parameters are the names annotated there (:func:`declared_parameters`); ``profile`` is one
    of them, and its value (papermill's, if it injected one) names the profile. An ``overrides``
    parameter (a dict of dotted profile settings, ``{"sae.expansion_factor": 16}``) is applied
    to the profile (:func:`cytosae.workflow.profiles.apply_overrides`).

    Raises:
        UnknownParameterError: when papermill injected a parameter the notebook does not declare.
        ValueError: when the parameters cell declares no ``profile``.
    """
    declared = declared_parameters(namespace)
    if "profile" not in declared:
        raise ValueError('the parameters cell must declare the profile: profile: str = "default"')
    bad = unknown_parameters(namespace, declared)
    if bad:
        raise UnknownParameterError(
            f"unknown notebook parameter(s) {bad}; this notebook declares {declared}"
        )
    pin_determinism(seed)
    logging.basicConfig(level=logging.WARNING)
    # What the stages log depends on what was cached (a cold run extracts and trains, a warm one
    # does not), so it stays out of the notebook's outputs, which nbval compares; the banner
    # printed below states what the run is made of (synthetic data, random-init weights).
    logging.getLogger("cytosae").setLevel(logging.ERROR)
    import matplotlib as mpl

    from cytosae.workflow.pipeline import Pipeline

    mpl.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "font.size": 9,
            "svg.hashsalt": "cytosae",
            "pdf.compression": 6,
        }
    )
    pipe = Pipeline(namespace["profile"], progress=progress, overrides=namespace.get("overrides"))
    print(pipe.banner())  # noqa: T201 - the banner is the notebook's first output
    return pipe
