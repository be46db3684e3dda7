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

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals(), ["profile"], profile=profile)

# %%
import matplotlib.pyplot as plt
import numpy as np

from cytosae.synth import gallery

fig, ax = plt.subplots(figsize=(7.5, 22))
ax, grid = gallery.plot_gallery(ax, size=112)
pipe.save_figure(fig, "synthetic_gallery")
plt.show()
print(f"{len(grid['rows'])} cell types x {len(grid['cols'])} stain domains")

# %% [markdown]
# Realism check: renders beside the real MLL23 eosinophil of the paper's Fig. 3 (shown when the
# reference image is available next to the repository; the renders are drawn either way).

# %% tags=["nbval-ignore-output"]
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
axes, realism = gallery.plot_realism(axes)
pipe.save_figure(fig, "synthetic_realism")
plt.show()

# %% [markdown]
# Ground truth of one synthetic MLL23-like eosinophil: the image and its concept masks.

# %%
gt = pipe.groundtruth("mll23")
i = int(np.flatnonzero(gt.index["cell_type"].to_numpy() == "eosinophil")[0])
from PIL import Image

rgb = np.asarray(Image.open(gt.root / gt.index["relpath"][i]).convert("RGB"))
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
axes, drawn = gallery.plot_masks(axes, rgb, gt.masks(i))
pipe.save_figure(fig, "synthetic_masks")
plt.show()
print("concepts present:", ", ".join(drawn["concepts"]))

# %% [markdown]
# The AML Hehr-like cohort: each patient's cell-type make-up, grouped by disease.

# %%
import pandas as pd

meta = pd.read_csv(pipe.dataset_root("hehr") / "metadata.csv")
print(
    meta.groupby("bag_label")
    .agg(patients=("patient_id", "count"), images=("instance_count", "sum"))
    .to_string()
)
fig, ax = plt.subplots(figsize=(11, 3.6))
from cytosae.synth.layouts import hehr_cohort

ax, cohort = gallery.plot_cohort(ax, hehr_cohort(pipe.profile.synth))
pipe.save_figure(fig, "synthetic_cohort")
plt.show()

# %%
sizes = {name: len(pipe.manifest(name)) for name in pipe.profile.eval_datasets}
print("images per synthetic dataset:", sizes)
