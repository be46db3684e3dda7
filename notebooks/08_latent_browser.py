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
# # Browse the latents with a slider
#
# Move the slider to walk through the latents (sorted by mean activation, above the threshold);
# each shows its reference images and statistics. The rendering is a plain function
# (`LatentBrowser.render`), so the same view is drawn below for one latent without a live kernel.
# On the `default` profile the images are SYNTHETIC.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
dataset: str = "mll23"

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
import numpy as np

from cytosae.analysis.retrieval import load_image
from cytosae.plotting.widget import LatentBrowser

stats = pipe.stats(dataset)
paths = pipe.tokens(dataset).manifest["path"].to_numpy()
browser = LatentBrowser(
    stats, lambda i: np.asarray(load_image(paths[i])), threshold=pipe.profile.threshold
)
print(f"{len(browser.latents)} latents above log10 mean activation {pipe.profile.threshold}")

# %% tags=["nbval-ignore-output"]
browser.show()

# %%
fig = browser.render(int(browser.latents[0]), tag=pipe.tag())
pipe.show(fig, "latent_browser_example")
