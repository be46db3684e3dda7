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
# SYNTHETIC. The columns are the profile's other datasets (on the paper's five: Acevedo, Matek19,
# BMC, AML Hehr; your own cells too when they are in `eval_datasets`).

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
n_show: int = 4  # latents drawn in the figure
n_images: int = 4  # reference images per latent and dataset

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis import review, thresholds
from cytosae.analysis.retrieval import load_image, reference_table
from cytosae.plotting import figures

train_stats = pipe.stats(pipe.profile.train_dataset)
sample = thresholds.sample_latents_for_review(
    train_stats, threshold=pipe.profile.threshold, seed=42
)
print(f"{len(sample)} latents sampled from {sample['cluster'].nunique()} clusters")
print(sample.head(10).round(3).to_string(index=False))

# %%
train_ds = pipe.profile.train_dataset
datasets = [d for d in pipe.profile.eval_datasets if d != train_ds] or [train_ds]
sources = {d: (pipe.stats(d), pipe.tokens(d).manifest) for d in datasets}
show = sample.groupby("cluster").head(1)["latent"].to_numpy()[:n_show]
fig, _ = figures.reference_image_grid(
    reference_table(sources, show, n_images),
    load_image,
    n_images=n_images,
    row_order=show,
    group_order=datasets,
    title=f"Fig. 2B reference images per dataset ({pipe.tag()})",
)
pipe.show(fig, "fig2b_reference_images")

# %% [markdown]
# The expert review sheet: one row per sampled latent with its reference images in every dataset,
# and empty columns for the expert's verdict (what the authors did by hand).

# %%
html, csv = review.write_review_sheet(
    sample,
    sources,
    pipe.runs / "review" / pipe.profile.name,
    title=f"CytoSAE latent review ({pipe.tag()})",
)
print("review sheet:", html.name, "and", csv.name, "in runs/review/" + pipe.profile.name)
