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
# # Fig. 5: latents that differ between CBFB::MYH11 and PML::RARA
#
# The two disease barcodes plotted against each other; the top latents of (d1 - d2) and of
# (d2 - d1) are highlighted and shown through their reference images in the cohort. On the
# `default` profile the cohort is SYNTHETIC: CBFB::MYH11 patients carry abnormal eosinophils and
# monocytic cells, PML::RARA patients hypergranular promyelocytes with Auer rods and faggot cells.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
d1: str = "CBFB_MYH11"
d2: str = "PML_RARA"
top_n: int = 50  # latents each way (paper: 50)
n_show: int = 3  # latents each way drawn with reference images
n_images: int = 5

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals(), ["profile", "d1", "d2", "top_n", "n_show", "n_images"], profile=profile)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from cytosae.analysis import barcodes, differential
from cytosae.analysis.retrieval import load_image
from cytosae.plotting import panels as plots

stats = pipe.stats("hehr")
man = pipe.tokens("hehr").manifest
X_PS, patients = barcodes.barcodes_from_stats(stats, man)
D_DS, diseases = barcodes.disease_barcodes(X_PS, patients["disease"].to_numpy())
diff = differential.differential_latents(D_DS, diseases, d1, d2, n=top_n)
print(diff.groupby("direction").head(5).round(3).to_string(index=False))

# %%
refs = differential.differential_reference_images(
    diff.groupby("direction").head(n_show), stats, n_images, man
)
fig = plt.figure(figsize=(12, 7.5))
gs = fig.add_gridspec(
    2 * n_show, 1 + n_images, width_ratios=[4] + [1] * n_images, wspace=0.3, hspace=0.5
)
ax = fig.add_subplot(gs[:, 0])
plots.plot_differential(ax, D_DS, diseases, d1, d2, diff)
ax.set_title(f"Fig. 5A disease barcodes ({pipe.tag()})", fontsize=9)
for r, (latent, grp) in enumerate(refs.groupby(["direction", "latent"], sort=False)):
    axes = [fig.add_subplot(gs[r, 1 + j]) for j in range(n_images)]
    imgs = [np.asarray(load_image(p)) for p in grp["path"]]
    plots.plot_reference_images(axes, imgs, [f"{lab}" for lab in grp["label"]])
    axes[0].text(
        -0.15,
        0.5,
        f"{latent[1]}\n{'more in ' + (d1 if latent[0] == 'd1>d2' else d2)}",
        transform=axes[0].transAxes,
        ha="right",
        va="center",
        fontsize=6,
    )
pipe.save_figure(fig, "fig5_differential_latents")
plt.show()

# %% [markdown]
# Which cells carry the differential latents? In the synthetic world every image's cell type is
# known, so we count the cell types of their reference images (real data has only the patient's
# diagnosis, which is why the paper asked an expert).

# %%
if pipe.synthetic:
    gt = pipe.groundtruth("hehr")
    cell = {
        str((gt.root / r).resolve()): c for r, c in zip(gt.index["relpath"], gt.index["cell_type"])
    }
    refs["cell_type"] = [cell.get(str(Path(p).resolve()), "?") for p in refs["path"]]
    print(refs.groupby("direction")["cell_type"].value_counts().to_string())
