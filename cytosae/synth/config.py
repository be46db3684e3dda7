"""Configuration of the synthetic world (sizes per dataset, cohort, seed)."""

from __future__ import annotations

import dataclasses

from cytosae.config import JsonConfig
from cytosae.data.catalog import PAPER_DATASETS

SYNTH_DATASETS: tuple[str, ...] = PAPER_DATASETS


@dataclasses.dataclass(frozen=True)
class SynthConfig(JsonConfig):
    """Sizes and seed of the five synthetic datasets.

    Attributes:
        seed: fixes every pixel (per-image generators derive from (seed, dataset, index)).
        datasets: which datasets :func:`write_all` writes.
        mll23_per_class: images per MLL23 class (18 classes).
        acevedo_per_group: images per Acevedo group (8 groups; split over the file-name prefixes).
        matek19_per_class: images per Matek19 class (15 classes).
        bmc_per_class: images per BMC class (21 classes).
        hehr_patients_per_disease: patients per Hehr bag label (5 labels).
        hehr_images_per_patient: images per Hehr patient.
        hehr_concentration: Dirichlet concentration of patient differentials around the disease mean.
        hehr_subtle_fraction: share of AML patients pulled towards the healthy differential.
        matek19_rgba_fraction: share of Matek19 TIFFs written with an alpha channel.
        hehr_rgba_fraction: share of Hehr TIFFs written with an alpha channel.
        jpeg_quality: quality of the Acevedo/BMC JPEGs.
    """

    seed: int = 0
    datasets: tuple[str, ...] = SYNTH_DATASETS
    mll23_per_class: int = 40
    acevedo_per_group: int = 20
    matek19_per_class: int = 12
    bmc_per_class: int = 8
    hehr_patients_per_disease: int = 8
    hehr_images_per_patient: int = 16
    hehr_concentration: float = 50.0
    hehr_subtle_fraction: float = 0.25
    matek19_rgba_fraction: float = 0.25
    hehr_rgba_fraction: float = 0.1
    jpeg_quality: int = 92

    def validate(self) -> None:
        for name in self.datasets:
            if name not in SYNTH_DATASETS:
                raise ValueError(
                    f"SynthConfig.datasets: unknown dataset {name!r}; known: {SYNTH_DATASETS}"
                )
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"SynthConfig.datasets: duplicates in {self.datasets}")
        for f in (
            "mll23_per_class",
            "acevedo_per_group",
            "matek19_per_class",
            "bmc_per_class",
            "hehr_patients_per_disease",
            "hehr_images_per_patient",
        ):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"SynthConfig.{f} must be a positive int, got {v!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"SynthConfig.seed must be a non-negative int, got {self.seed!r}")
        if self.hehr_concentration <= 0:
            raise ValueError(
                f"SynthConfig.hehr_concentration must be > 0, got {self.hehr_concentration!r}"
            )
        for f in ("hehr_subtle_fraction", "matek19_rgba_fraction", "hehr_rgba_fraction"):
            v = getattr(self, f)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"SynthConfig.{f} must be in [0, 1], got {v!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"SynthConfig.jpeg_quality must be in [1, 100], got {self.jpeg_quality!r}"
            )

    @classmethod
    def for_profile(cls, name: str, **overrides: object) -> SynthConfig:
        """``smoke`` (a handful of images per dataset, < 3 s) or ``default`` (the embedded default)."""
        if name == "smoke":
            base = cls(
                mll23_per_class=1,
                acevedo_per_group=2,
                matek19_per_class=1,
                bmc_per_class=1,
                hehr_patients_per_disease=2,
                hehr_images_per_patient=3,
            )
        elif name == "default":
            base = cls()
        else:
            raise ValueError(f"unknown synth profile {name!r}; known: 'smoke', 'default'")
        return base.replace(**overrides) if overrides else base

    def n_images(self) -> dict[str, int]:
        """Images per dataset that :func:`write_all` writes."""
        from cytosae.synth.layouts import plan_dataset

        return {name: len(plan_dataset(name, self)) for name in self.datasets}
