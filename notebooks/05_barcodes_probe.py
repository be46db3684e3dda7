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
# # Fig. 4: patient and disease barcodes, and the AML-subtype probe
#
# Eq. 2-3 of the paper: a patch counts for latent s when its activation exceeds tau; an image's
# count is the number of such patches (CLS excluded); a patient's barcode is the mean over their
# images, a disease's barcode the mean over its patients. A logistic-regression probe (L2,
# C = c·n/100) classifies patients from their barcodes in stratified 5-fold CV over patients; Fig.
# 4A sweeps the log10 mean-activation threshold below which latents are zeroed. On the `default`
# profile the cohort is SYNTHETIC (five disease groups of the AML Hehr-like world).

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
variant: str = "paper"  # "paper" (mean over images) or "official" (the code's counts / 49152)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
import numpy as np

from cytosae.analysis import barcodes, probe
from cytosae.plotting import figures

stats = pipe.stats("hehr")
man = pipe.tokens("hehr").manifest
X_PS, patients = barcodes.barcodes_from_stats(stats, man, variant=variant)
D_DS, diseases = barcodes.disease_barcodes(X_PS, patients["disease"].to_numpy())
print(
    f"{len(patients)} patients, {len(diseases)} diseases, {X_PS.shape[1]} latents, tau = {stats.meta.get('tau', pipe.profile.tau)}"
)
print(
    patients.groupby("disease")
    .agg(patients=("patient", "count"), images=("n_images", "sum"))
    .to_string()
)

# %%
fig, _ = figures.barcode_figure(X_PS, patients, D_DS, diseases, n_latents=64, tag=pipe.tag())
pipe.show(fig, "fig4_barcodes")

# %%
y = patients["disease"].to_numpy()
sweep = probe.sweep(
    X_PS, y, stats.mean_acts, thresholds=range(-6, 1), seed=pipe.profile.seed, progress=False
)
print(sweep.round(3).to_string(index=False))
res = probe.confusion_at(
    X_PS, y, stats.mean_acts, threshold=pipe.profile.threshold, seed=pipe.profile.seed
)
chance = (np.unique(y, return_counts=True)[1] / len(y)).max()
print(
    f"threshold {pipe.profile.threshold}: weighted F1 {res['f1_mean']:.3f} ± {res['f1_sd']:.3f} "
    f"with {res['n_latents_kept']} latents (majority-class rate {chance:.2f})"
)
print(res["per_class_f1"].round(3).to_string())

# %%
fig, _ = figures.probe_figure(
    sweep, res["confusion"], threshold=pipe.profile.threshold, tag=pipe.tag()
)
pipe.show(fig, "fig4_probe")
