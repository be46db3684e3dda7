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
# # Training the sparse autoencoder
#
# The SAE of the paper: ReLU + L1 (8e-5), reconstruction loss normalised by the token norm, ghost
# grads with a 64-step dead window, unit-norm decoder, geometric-median decoder bias, Adam with a
# linear warm-up, all 257 tokens of each image. The `default` profile trains a small SAE on the
# tokens of the SYNTHETIC MLL23-like images from a random-init DinoBloom-B (see the banner below).
# With a pretrained SAE (`pretrained_sae`, e.g. the authors' release) there is nothing to train:
# the next cell says so and the training cells are skipped.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
if pipe.pretrained:
    print(f"nothing to train: this run uses {pipe.sae_description()}; the cells below are skipped")

# %%
from cytosae.plotting import figures

if not pipe.pretrained:
    history = pipe.train_history()
    print("SAE:", pipe.profile.sae.to_json(indent=None))
    print("training:", pipe.profile.train.to_json(indent=None))
    cols = [
        c
        for c in ("step", "mse", "explained_variance", "l1", "l0", "dead_frac", "dense_frac")
        if c in history
    ]
    print(history[cols].round(3).iloc[[0, len(history) // 2, -1]].to_string(index=False))

# %%
if not pipe.pretrained:
    fig, _ = figures.training_curves(history, tag=pipe.tag())
    pipe.show(fig, "sae_training")

# %% [markdown]
# Ghost grads: the same run without them. The paper reports a dead fraction of 0.92 without and
# 0.57 with ghost grads at the end of its 15,625 steps (a latent is dead when it has not fired
# for 64 steps, 0.4% of that run). The `default` profile trains 180 steps, where a 64-step window
# would be a third of the run: almost no latent dies in so few steps (dead fraction 0.00 with and
# 0.01 without ghost grads at 64), and ghost grads, which only act on dead latents, would act
# late. Its window is therefore scaled to 8 steps (`sae.dead_feature_window`, 8,224 tokens), the
# dead fraction is read at that window, and ghost grads keep fewer latents dead (numbers below;
# the Sec. 3.4 table in notebook 09 puts them beside the paper's).

# %%
if not pipe.pretrained:
    no_ghost = pipe.train_history(pipe.profile.sae.replace(use_ghost_grads=False))
    fig, _ = figures.ghost_grads_comparison(history, no_ghost, tag=pipe.tag())
    pipe.show(fig, "sae_ghost_grads")
    print(
        f"dead window {pipe.profile.sae.dead_feature_window} steps; final dead fraction: "
        f"{history['dead_frac'].iloc[-1]:.2f} with ghost grads, {no_ghost['dead_frac'].iloc[-1]:.2f} "
        f"without (largest during training {history['dead_frac'].max():.2f} vs "
        f"{no_ghost['dead_frac'].max():.2f}); final L0 {history['l0'].iloc[-1]:.1f} vs "
        f"{no_ghost['l0'].iloc[-1]:.1f}"
    )
