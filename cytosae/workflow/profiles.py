"""Run profiles: ``smoke``, ``default`` and ``paper`` (a papermill parameter of every notebook).

* ``smoke``   -- seconds per notebook: a tiny synthetic world and a tiny SAE; used by tests.
* ``default`` -- the embedded default: the SYNTHETIC blood-smear world through a RANDOMLY
  INITIALISED DinoBloom-B architecture on a CPU, in minutes.  Because the random network's
  later blocks barely change its tokens (LayerScale starts at 1e-5) while costing 5x the time
  on a 2-core CPU, the default reads the residual stream after block 2 (``blocks[1]``, an
  ablation setting of the paper) and trains a x4 SAE for one pass over the 720 MLL23-like images
  (180 steps of 4 images = 1,028 tokens) at lr 2e-3 with the paper's L1 coefficient 8e-5; the
  paper's 15,625 steps at lr 4e-4 would take hours on a CPU.
* ``paper``   -- the real datasets and DinoBloom-B weights from folders the user names
  (``$CYTOSAE_DATA``, ``$CYTOSAE_DINOBLOOM_WEIGHTS``), the paper's hyper-parameters
  (``blocks[-2]``, x64, 1M training images of 257 tokens); meant for a GPU.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from cytosae.config import JsonConfig
from cytosae.data.catalog import DATASET_ROOTS
from cytosae.model.backbone import BackboneConfig
from cytosae.model.sae import SAEConfig
from cytosae.store.extract import ExtractConfig
from cytosae.synth import SynthConfig
from cytosae.train import TrainConfig

PROFILES = ("smoke", "default", "paper")


@dataclasses.dataclass(frozen=True)
class Profile(JsonConfig):
    """Everything a run needs; hashed pieces of it name the cache folders."""

    name: str
    synth: SynthConfig | None
    backbone: BackboneConfig
    extract: ExtractConfig
    sae: SAEConfig
    train: TrainConfig
    train_dataset: str = "mll23"
    eval_datasets: tuple[str, ...] = ("mll23", "acevedo", "matek19", "bmc", "hehr")
    tau: float = 0.2
    top_k: int = 10
    threshold: float = -3.0
    seed: int = 42

    def validate(self) -> None:
        for d in (self.train_dataset, *self.eval_datasets):
            if d not in DATASET_ROOTS:
                raise ValueError(
                    f"Profile.eval_datasets: unknown dataset {d!r}; known {list(DATASET_ROOTS)}"
                )
        if self.tau < 0:
            raise ValueError(f"Profile.tau must be >= 0, got {self.tau}")

    def real_root(self, name: str) -> Path:
        """Root of a real dataset: ``$CYTOSAE_DATA_<NAME>`` or ``$CYTOSAE_DATA/<layout>``."""
        env = os.environ.get(f"CYTOSAE_DATA_{name.upper()}")
        if env:
            return Path(env).expanduser()
        base = os.environ.get("CYTOSAE_DATA")
        if not base:
            raise RuntimeError(
                f"profile {self.name!r} reads real data: set CYTOSAE_DATA to the folder holding "
                f"{', '.join(DATASET_ROOTS.values())} (or CYTOSAE_DATA_{name.upper()} for {name})"
            )
        return Path(base).expanduser() / DATASET_ROOTS[name]


def get_profile(name: str) -> Profile:
    """The named profile; an unknown name is an error listing the known ones."""
    if name == "smoke":
        return Profile(
            name="smoke",
            synth=SynthConfig.for_profile(
                "smoke", hehr_patients_per_disease=5, hehr_images_per_patient=2
            ),
            backbone=BackboneConfig(arch="dinobloom-s", weights="random", layer=1),
            extract=ExtractConfig(batch_size=16, precision="fp32"),
            sae=SAEConfig(d_in=384, expansion_factor=2),
            train=TrainConfig(
                lr=2e-3,
                total_images=48,
                batch_images=4,
                lr_warmup_steps=3,
                log_every=3,
                checkpoint_every=6,
                b_dec_init_images=16,
            ),
            top_k=5,
        )
    if name == "default":
        return Profile(
            name="default",
            synth=SynthConfig.for_profile("default"),
            backbone=BackboneConfig(arch="dinobloom-b", weights="random", layer=1),
            extract=ExtractConfig(batch_size=32, precision="fp32"),
            sae=SAEConfig(d_in=768, expansion_factor=4),
            train=TrainConfig(
                lr=2e-3,
                total_images=720,
                batch_images=4,
                lr_warmup_steps=10,
                log_every=5,
                checkpoint_every=60,
            ),
        )
    if name == "paper":
        return Profile(
            name="paper",
            synth=None,
            backbone=BackboneConfig(arch="dinobloom-b", weights="env", layer=-2),
            extract=ExtractConfig(batch_size=128),
            sae=SAEConfig(d_in=768, expansion_factor=64),
            train=TrainConfig(total_images=1_000_000, batch_images=64, lr_warmup_steps=500),
        )
    raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES}")
