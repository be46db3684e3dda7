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
# # Fig. 2A: the latent landscape
#
# Each SAE latent is a point: x = log10 of its activation frequency (fraction of images whose
# image-level activation, the mean over all 257 tokens, is > 0), y = log10 of its mean activation
# over the images where it fires, colour = label entropy of its top-10 images. The paper calls
# latents above a log10 mean-activation threshold "concepts" (bottom right: their count).
#
# **On the `default` profile everything here is SYNTHETIC**: procedurally rendered cells, a
# randomly initialised DinoBloom-B, a small SAE. The numbers show the method working, not the
# paper's values. The authors' own statistics can be drawn with `cytosae.interop.official_stats`.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
dataset: str = "mll23"  # which dataset's statistics to draw

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis import thresholds
from cytosae.plotting import figures

stats = pipe.stats(dataset)
counts = thresholds.concept_counts(stats.mean_acts, thresholds=range(-6, 1))
print(
    f"{stats.n_images} images, {len(stats.mean_acts)} latents; "
    f"{int((stats.sparsity > 0).sum())} fire on at least one image"
)
print(counts.to_string(index=False))

# %%
fig, _ = figures.landscape_figure(
    stats, counts, threshold=pipe.profile.threshold, dataset=dataset, tag=pipe.tag()
)
pipe.show(fig, "fig2a_latent_landscape")
