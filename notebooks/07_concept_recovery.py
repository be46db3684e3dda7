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
# # Beyond the paper: measured concept recovery on the synthetic world
#
# The paper validated latents by one expert's review. The SYNTHETIC world knows, for every 14-px
# patch, how much of each concept (nucleus, granules by type, Auer rod, vacuole, red cell, ...) it
# covers. For each ground-truth concept we find the latent whose patch activations best separate
# patches with the concept (fraction >= 0.5) from those without (AUROC), report the IoU of its
# thresholded map, the fraction of concepts recovered above AUROC 0.9, and the number of
# monosemantic latents. This notebook needs ground truth, so it runs on synthetic profiles only;
# on real data (`profile=paper`) the next cell says so and the cells are skipped.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default (synthetic profiles only)
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
datasets: list = ["mll23", "bmc"]  # in-domain and out-of-domain
max_patches: int = 50000  # seeded subsample of patches per dataset

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis import recovery
from cytosae.plotting import figures

if not pipe.synthetic:
    print("real data has no pixel ground truth, which concept recovery needs (skipped)")
results = {}
for ds in datasets if pipe.synthetic else []:
    gt, store = pipe.groundtruth(ds), pipe.tokens(ds)
    pf = recovery.align_patch_fractions(gt, pipe.dataset_root(ds), store.manifest)
    results[ds] = recovery.concept_recovery(
        pipe.sae, store, pf, gt.concepts, max_patches=max_patches, progress=False
    )
    r = results[ds]
    print(
        f"{ds}: {r.n_patches} patches, {100 * r.recovered_fraction:.0f}% of concepts with a latent above AUROC 0.9, "
        f"{r.n_monosemantic} monosemantic latents"
    )
    print(r.per_concept.round(2).to_string(index=False))

# %%
if results:
    fig, _ = figures.recovery_figure(results, tag=pipe.tag())
    pipe.show(fig, "concept_recovery")

# %% [markdown]
# ## What limits recovery
#
# Two measurements: the recovered fraction for SAEs of several sizes (the expansion axis of
# notebook 02, seed 42), and, per concept, the best latent's AUROC against a ceiling: the AUROC
# of the best linear direction of the tokens for that concept, found WITH supervision (Fisher's
# discriminant on the same patches, fitted on half the images and scored on the other half;
# `recovery.linear_ceiling`). A latent is a ReLU of one linear direction, so a concept that no
# direction separates cannot be recovered by any SAE of these tokens, however wide.

# %%
import pandas as pd

from cytosae.analysis import sweep

if results:  # the synthetic world only
    settings = sweep.ablation_grid(pipe.profile.name)["expansion"]
    rows, ceilings = [], {}
    for ds in datasets:
        gt, store = pipe.groundtruth(ds), pipe.tokens(ds)
        pf = recovery.align_patch_fractions(gt, pipe.dataset_root(ds), store.manifest)
        ceilings[ds] = recovery.linear_ceiling(store, pf, gt.concepts, max_patches=max_patches)
        for s in settings:
            label, _, ov = sweep.normalise_setting(s)
            q = pipe.variant(ov)
            r = (
                results[ds]
                if q.train_key() == pipe.train_key()
                else recovery.concept_recovery(
                    q.sae, store, pf, gt.concepts, max_patches=max_patches, progress=False
                )
            )
            rows.append(
                {"setting": label, "dataset": ds, "recovered_fraction": r.recovered_fraction}
            )
    curve = pd.DataFrame(rows)
    print(curve.pivot(index="setting", columns="dataset", values="recovered_fraction").round(2))
    for ds in datasets:
        c = ceilings[ds][ceilings[ds]["evaluated"]]
        print(
            f"{ds}: {100 * c['separable'].mean():.0f}% of the evaluated concepts have a linear "
            f"direction above AUROC 0.9 (the ceiling)"
        )
    ds = datasets[0]
    per = results[ds].per_concept.merge(ceilings[ds][["concept", "linear_auroc"]], on="concept")
    per = per[per["evaluated"]]
    print(
        per[["concept", "best_latent", "auroc", "linear_auroc", "n_positive"]].round(2).to_string()
    )

# %%
if results:
    ceiling = {d: float(c.loc[c["evaluated"], "separable"].mean()) for d, c in ceilings.items()}
    fig, _ = figures.recovery_limits_figure(curve, per, ceiling=ceiling, tag=f"{ds}; {pipe.tag()}")
    pipe.show(fig, "recovery_limits")
