"""The five datasets of the paper: where each sits under a data folder.

One table for everything that names a dataset's root: the profiles (``$CYTOSAE_DATA/<root>``)
and the synthetic world (which writes the same layout under its own folder).
"""

from __future__ import annotations

__all__ = ["DATASET_ROOTS", "PAPER_DATASETS"]

#: dataset name -> its root relative to a data folder (the folder the adapter of that name reads)
DATASET_ROOTS: dict[str, str] = {
    "mll23": "mll23",
    "acevedo": "acevedo/PBC_dataset_normal_DIB",
    "matek19": "matek19/AML-Cytomorphology",
    "bmc": "bmc",
    "hehr": "hehr",
}

#: the paper's datasets, in its order
PAPER_DATASETS: tuple[str, ...] = tuple(DATASET_ROOTS)
