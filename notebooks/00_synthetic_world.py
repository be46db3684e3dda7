# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The embedded default: a SYNTHETIC blood-smear world
#
# No real blood-cell images can be downloaded here, so the default run uses procedurally rendered
# single-cell crops under Pappenheim / MGG staining, written in the exact on-disk layouts of the five
# real datasets (MLL23, Acevedo, Matek19, BMC, AML Hehr). Every image comes with per-pixel masks of
# morphological concepts (nucleus, granules by type, Auer rods, vacuoles, ...), which is what lets
# later notebooks *measure* concept discovery. These are **not real cells**; see
# `docs/synthetic-world.md` for what this world can and cannot show.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %% [markdown]
# On real data (`profile=paper`) there is no synthetic world to show: the next cell says so and
# prints instead what `cytosae check-data` finds in the folders the profile reads (image headers
# only; run the command itself to decode every image), and the synthetic cells are skipped.

# %%
if not pipe.synthetic:
    from cytosae.cli.check_data import format_dataset

    print("real data: no synthetic world to show (its cells are skipped); the data, by check-data:")
    for report in pipe.check_data().values():
        print(format_dataset(report))

# %%
import numpy as np

from cytosae.analysis.retrieval import load_image
from cytosae.plotting import figures

if pipe.synthetic:
    fig, grid = figures.gallery_figure(size=112)
    pipe.show(fig, "synthetic_gallery")
    print(f"{len(grid['rows'])} cell types x {len(grid['cols'])} stain domains")

# %% [markdown]
# Realism check: renders beside the real MLL23 eosinophil of the paper's Fig. 3, the one real
# image in the repository (shipped with the package in `cytosae/plotting/data/`, MIT licence;
# its source is in the README beside it).

# %%
if pipe.synthetic:
    fig, realism = figures.realism_figure()
    pipe.show(fig, "synthetic_realism")

# %% [markdown]
# Ground truth of one synthetic MLL23-like eosinophil: the image and its concept masks.

# %%
if pipe.synthetic:
    gt = pipe.groundtruth("mll23")
    i = int(np.flatnonzero(gt.index["cell_type"].to_numpy() == "eosinophil")[0])
    rgb = np.asarray(load_image(gt.root / gt.index["relpath"][i]))
    fig, drawn = figures.masks_figure(rgb, gt.masks(i))
    pipe.show(fig, "synthetic_masks")
    print("concepts present:", ", ".join(drawn["concepts"]))

# %% [markdown]
# The AML Hehr-like cohort: each patient's cell-type make-up, grouped by disease.

# %%
import pandas as pd

if pipe.synthetic:
    from cytosae.synth.layouts import hehr_cohort

    meta = pd.read_csv(pipe.dataset_root("hehr") / "metadata.csv")
    print(
        meta.groupby("bag_label")
        .agg(patients=("patient_id", "count"), images=("instance_count", "sum"))
        .to_string()
    )
    fig, cohort = figures.cohort_figure(hehr_cohort(pipe.profile.synth))
    pipe.show(fig, "synthetic_cohort")

# %%
sizes = {name: len(pipe.manifest(name)) for name in pipe.profile.eval_datasets}
print("images per synthetic dataset:" if pipe.synthetic else "images per dataset:", sizes)
