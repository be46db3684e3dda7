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
# # UMAP maps of patients and latents
#
# Two seeded UMAP maps (umap-learn, `random_state` fixed, one thread, so the coordinates
# reproduce exactly; checked below by computing each map twice):
#
# * patients by their barcode (the latents above the concept threshold, `log1p` of the mean
#   counts: the probe's features), coloured by disease;
# * the latents the expert-review sampling clusters (above the threshold) by their decoder
#   direction (cosine), coloured by the KMeans cluster they were sampled from (Fig. 2B); the
#   sampled latents are ringed.
#
# On the `default` profile the patients and cells are SYNTHETIC.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
seed: int = 42  # seed of UMAP and of the review sampling (the paper's 42)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
import numpy as np

from cytosae.analysis import barcodes, projection, thresholds
from cytosae.plotting import figures

t = pipe.profile.threshold
stats = pipe.stats("hehr")
X_PS, patients = barcodes.barcodes_from_stats(stats, pipe.tokens("hehr").manifest)
patient_map = projection.patient_map(X_PS, patients, stats.mean_acts, threshold=t, seed=seed)

train_stats = pipe.stats(pipe.profile.train_dataset)
sample = thresholds.sample_latents_for_review(train_stats, threshold=t, seed=seed)
W_dec = pipe.sae.W_dec.detach().cpu().numpy()
latent_map = projection.latent_map(
    W_dec, train_stats, threshold=t, seed=seed, sampled=sample["latent"]
)
again_p = projection.patient_map(X_PS, patients, stats.mean_acts, threshold=t, seed=seed)
again_l = projection.latent_map(W_dec, train_stats, threshold=t, seed=seed)
same = np.array_equal(patient_map[["umap_x", "umap_y"]], again_p[["umap_x", "umap_y"]])
same &= np.array_equal(latent_map[["umap_x", "umap_y"]], again_l[["umap_x", "umap_y"]])
print(
    f"{len(patient_map)} patients, {len(latent_map)} latents above {t} in "
    f"{latent_map['cluster'].nunique()} clusters ({int(latent_map['sampled'].sum())} sampled); "
    f"a second run gives identical coordinates: {same}"
)

# %%
fig, _ = figures.umap_figure(patient_map, latent_map, tag=pipe.tag())
pipe.show(fig, "umap_patients_latents")
