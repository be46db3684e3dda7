# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
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

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper

# %%
from cytosae.notebook import setup

pipe = setup(globals(), ["profile"], profile=profile)

# %%
import json

import matplotlib.pyplot as plt

history = pipe.train_history()
print(json.dumps({"sae": pipe.profile.sae.to_dict(), "train": pipe.profile.train.to_dict()}, indent=1)[:1500])
cols = [c for c in ("step", "mse", "explained_variance", "l1", "l0", "dead_frac", "dense_frac") if c in history]
print(history[cols].round(3).iloc[[0, len(history) // 2, -1]].to_string(index=False))

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 2.8))
for ax, col in zip(axes, ["mse", "l0", "explained_variance", "dead_frac"]):
    ax.plot(history["step"], history[col])
    ax.set_xlabel("step")
    ax.set_title(col)
fig.suptitle(f"SAE training ({pipe.tag()})", y=1.05)
pipe.save_figure(fig, "sae_training")
plt.show()
