"""The authors' published latent statistics on the five REAL datasets, shipped with cytosae.

The authors released per-latent statistics of their SAE (49,152 latents, DinoBloom-B
``blocks[-2]``, trained on MLL23) for MLL23, Acevedo, Matek19, BMC and AML Hehr
(github dynamical-inference/cytosae, MIT licence, commit 1b17586,
``out/feature_data/sae_8jsxk3co/custom/``). cytosae ships the three per-latent vectors the
latent landscape and the concept counts need (``cytosae/interop/data/official_stats.npz``, with
the source and licence notice beside it in ``cytosae/interop/data/README.md``), so every clone can
draw Fig. 2A from the authors' own numbers:

* ``sparsity``: fraction of images in which the latent fired (the paper's activation frequency);
* ``mean_acts``: mean image-level activation where it fired (NaN where it never did);
* ``top_entropy``: natural-log label entropy of the latent's top-10 images (-1 with fewer than
  10). For AML Hehr the authors published no entropy file; its vector was computed by cytosae
  from their published top-10 values and label indices (:func:`cytosae.analysis.latents.label_entropy`).

The top-k image files are not shipped (they index the authors' shuffled datasets); load them from
a download with :func:`cytosae.interop.official_stats.load_official_stats`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

from cytosae.analysis.latents import LatentStats

__all__ = ["PUBLISHED_DATASETS", "SOURCE", "published_stats"]

#: our dataset names, in the paper's order (the authors call Matek19 "matek")
PUBLISHED_DATASETS: tuple[str, ...] = ("mll23", "acevedo", "matek19", "bmc", "hehr")

SOURCE = (
    "the authors' published statistics (real data; github dynamical-inference/cytosae @ 1b17586, "
    "MIT)"
)

_FILE = "official_stats.npz"


@cache
def _arrays() -> dict[str, np.ndarray]:
    path = resources.files("cytosae.interop").joinpath("data", _FILE)
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def published_stats(dataset: str) -> LatentStats:
    """The authors' statistics of one dataset as :class:`LatentStats` (no images, no counts).

    Raises:
        ValueError: ``dataset`` is not one of :data:`PUBLISHED_DATASETS`.
    """
    if dataset not in PUBLISHED_DATASETS:
        raise ValueError(
            f"no published statistics for {dataset!r}; choose one of {PUBLISHED_DATASETS}"
        )
    a = _arrays()
    sparsity = a[f"{dataset}.sparsity"]
    S = sparsity.shape[0]
    nan = np.full(S, np.nan, dtype=np.float32)
    return LatentStats(
        sparsity=sparsity,
        mean_acts=a[f"{dataset}.mean_acts"],
        patch_frequency=nan.copy(),
        patch_mean_acts=nan.copy(),
        top_indices=np.full((S, 0), -1, dtype=np.int64),
        top_values=np.zeros((S, 0), dtype=np.float32),
        top_entropy=a[f"{dataset}.top_entropy"],
        counts=None,
        label_names=(),
        labels=np.zeros(0, dtype=np.int64),
        dataset=dataset,
        n_images=-1,
        meta={"source": SOURCE, "real_data": True},
    )
