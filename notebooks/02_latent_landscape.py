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
# paper's values. The last section draws the same figure from the authors' own published
# statistics on the REAL datasets, which every clone ships.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
dataset: str = "mll23"  # which dataset's statistics to draw
expansion: list = []  # factors of the Fig. 2A sweep; empty for the profile's (default 1/2/4, paper 16/32/64/128)
seeds: list = [42, 43, 44]  # SAE seeds of the sweep (the paper: three)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
import json

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

# %% [markdown]
# ## Fig. 2A in full: one SAE per expansion factor, three seeds each
#
# The paper trains x16, x32, x64 and x128 SAEs (three seeds each) and reports the concepts above
# -3 as 1748 ± 56, 2170 ± 61, 2936 ± 114 and 3518 ± 145. The `paper` profile runs those factors;
# the `default` profile runs x1, x2 and x4 (its own SAE, as x64 is the paper's) so that the
# nine SAEs fit the CPU time budget; an x8 would cost as much as the other eight together. The
# SAEs that share the token store and the training settings train on one pass over the tokens,
# and each is cached where a single run would be (`Pipeline.sweep`).

# %%
from cytosae.analysis import sweep

if pipe.pretrained:  # the sweep trains SAEs; a run on a given SAE trains none
    print("pretrained SAE: the expansion sweep trains SAEs of its own, skipped")
else:
    grid = (
        sweep.expansion_grid(expansion)
        if expansion
        else {"expansion": sweep.ablation_grid(pipe.profile.name)["expansion"]}
    )
    table = pipe.sweep(grid, seeds=seeds, dataset=dataset)
    summary = sweep.summarise(table)
    cols = [f"{sweep.concept_column(t)}_{m}" for t in (-4, -3, -2) for m in ("mean", "sd")]
    print(summary[["setting", "n_seeds", *cols, "l0_mean", "dead_frac_mean"]].round(2).to_string())

# %%
if not pipe.pretrained:
    first = table.drop_duplicates("setting")
    by_setting = {
        r.setting: pipe.variant(json.loads(r.overrides)).stats(dataset)
        for r in first.itertuples(index=False)
    }
    fig, _ = figures.expansion_figure(
        by_setting,
        table,
        threshold=pipe.profile.threshold,
        dataset=dataset,
        note=(
            f"landscapes: seed {int(first['seed'].iloc[0])}; curves: mean ± sd over seeds "
            f"{list(seeds)}"
            + (
                f"; {'/'.join(first['setting'])} stand for the paper's "
                f"{'/'.join('x' + p for p in first['paper'])} (CPU time)"
                if first["paper"].ne("").all() and pipe.synthetic
                else ""
            )
        ),
        tag=pipe.tag(),
    )
    pipe.show(fig, "fig2a_expansion")

# %% [markdown]
# ## Fig. 2A from the authors' released statistics (REAL data)
#
# The authors released per-latent statistics of their x64 SAE (49,152 latents, DinoBloom-B
# `blocks[-2]`, trained on MLL23) for the five REAL datasets; cytosae ships them
# (`cytosae.interop.published`), so this part needs no data and no GPU. These are the authors'
# numbers on real blood cells, not ours. Their released SAE has 3,801 concepts above -3 on MLL23
# (the paper reports 2936 ± 114 over three seeds of the same setting).

# %%
from cytosae.interop.published import PUBLISHED_DATASETS, SOURCE, published_stats

fig, drawn = figures.published_landscape_figure(
    {ds: published_stats(ds) for ds in PUBLISHED_DATASETS},
    threshold=-3.0,
    source=SOURCE,
)
print("concepts above each threshold, the authors' published statistics (REAL data):")
print(drawn["table"].to_string())
pipe.show(fig, "fig2a_published")
