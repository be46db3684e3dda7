"""The synthetic blood-smear world: procedural single-cell crops with pixel-level ground truth.

Everything here is SYNTHETIC (procedural drawings following textbook morphology), written in the
on-disk layouts of the five real datasets so the same adapters read both.  See
``docs/synthetic-world.md``.
"""

from __future__ import annotations

from cytosae.data.catalog import MLL23_CLASSES
from cytosae.synth.celltypes import CELL_TYPES, SPECS, CellSpec
from cytosae.synth.config import SYNTH_DATASETS, SynthConfig
from cytosae.synth.groundtruth import GroundTruth, load_groundtruth
from cytosae.synth.layouts import NATIVE_SIZE, plan_dataset, write_all, write_dataset
from cytosae.synth.render import CONCEPTS, Scene, render_cell, render_scene
from cytosae.synth.stains import DATASET_DOMAIN, DOMAINS

__all__ = [
    "CELL_TYPES",
    "CONCEPTS",
    "DATASET_DOMAIN",
    "DOMAINS",
    "MLL23_CLASSES",
    "NATIVE_SIZE",
    "SPECS",
    "SYNTH_DATASETS",
    "CellSpec",
    "GroundTruth",
    "Scene",
    "SynthConfig",
    "load_groundtruth",
    "plan_dataset",
    "render_cell",
    "render_scene",
    "write_all",
    "write_dataset",
]
