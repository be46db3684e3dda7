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
# # Fig. 2B: reference images of sampled concepts across datasets
#
# As in the paper, latents above the log10 mean-activation threshold are clustered with KMeans
# (k = 10) on (log mean activation, log frequency) and 5 are sampled per cluster (seed 42). For a
# few of them we show the maximally activating images in four datasets, and we write an expert
# review sheet (HTML + CSV) for all sampled latents. On the `default` profile the images are
# SYNTHETIC.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
n_show: int = 4  # latents drawn in the figure
n_images: int = 4  # reference images per latent and dataset

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals(), ["profile", "n_show", "n_images"], profile=profile)

# %%
import matplotlib.pyplot as plt
import numpy as np

from cytosae.analysis import review, thresholds
from cytosae.analysis.retrieval import load_image, reference_images
from cytosae.plotting import panels as plots

train_stats = pipe.stats(pipe.profile.train_dataset)
sample = thresholds.sample_latents_for_review(
    train_stats, threshold=pipe.profile.threshold, seed=42
)
print(f"{len(sample)} latents sampled from {sample['cluster'].nunique()} clusters")
print(sample.head(10).round(3).to_string(index=False))

# %%
datasets = [d for d in ("acevedo", "matek19", "bmc", "hehr") if d in pipe.profile.eval_datasets]
refs = {d: (pipe.stats(d), pipe.tokens(d).manifest) for d in datasets}
show = sample.groupby("cluster").head(1)["latent"].to_numpy()[:n_show]
fig, axes = plt.subplots(
    len(show),
    len(datasets) * n_images,
    figsize=(1.1 * len(datasets) * n_images, 1.3 * len(show)),
    squeeze=False,
)
for r, latent in enumerate(show):
    for c, d in enumerate(datasets):
        stats, man = refs[d]
        ref = reference_images(stats, int(latent), n_images, man)
        imgs = [np.asarray(load_image(p)) for p in ref["path"]]
        titles = [
            f"{d if r == 0 and j == 0 else ''}\n{str(lab)[:14]}\n{a:.2f}"
            for j, (lab, a) in enumerate(zip(ref["label"], ref["activation"]))
        ]
        plots.plot_reference_images(axes[r, c * n_images : (c + 1) * n_images], imgs, titles)
    axes[r, 0].text(
        -0.25,
        0.5,
        f"latent {latent}",
        transform=axes[r, 0].transAxes,
        rotation=90,
        va="center",
        fontsize=8,
    )
fig.suptitle(f"Fig. 2B reference images per dataset ({pipe.tag()})", y=1.02)
pipe.save_figure(fig, "fig2b_reference_images")
plt.show()

# %% [markdown]
# The expert review sheet: one row per sampled latent with its reference images in every dataset,
# and empty columns for the expert's verdict (what the authors did by hand).

# %%
html, csv = review.write_review_sheet(
    sample,
    refs,
    pipe.runs / "review" / pipe.profile.name,
    title=f"CytoSAE latent review ({pipe.tag()})",
)
print("review sheet:", html.name, "and", csv.name, "in runs/review/" + pipe.profile.name)
