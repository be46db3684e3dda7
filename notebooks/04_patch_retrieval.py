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
# # Fig. 3: patch-level retrieval and segmentation maps
#
# Take one eosinophil, one of its patches that covers eosinophilic granules, and list the SAE
# latents active on that patch token. Drop the latents that fire across the whole dataset (here:
# dataset mean activation above `max_mean_act`, the official code's criterion), keep the top
# ones, and retrieve their reference images in every dataset with segmentation maps (patch
# activations times patches, as in the paper; the code's binary variant is `mode="binary"`).
# Patch indices are 0-based on the 16x16 grid, row-major; token = patch + 1 (token 0 is CLS).
# On the `default` profile the cells are SYNTHETIC, so we can pick the granule patch from ground truth.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
top_n: int = 2  # latents kept
max_patch_frequency: float = (
    0.1  # drop latents firing on more than this fraction of the dataset's patches
)
max_mean_act: float = (
    -1.0
)  # > 0: also drop latents with dataset mean activation above it (official code: 0.1)
n_images: int = 3  # reference images per dataset

# %%
from cytosae.workflow.notebook import setup

pipe = setup(
    globals(),
    ["profile", "top_n", "max_patch_frequency", "max_mean_act", "n_images"],
    profile=profile,
)

# %%
import matplotlib.pyplot as plt
import numpy as np

from cytosae.analysis import retrieval
from cytosae.analysis.recovery import align_patch_fractions
from cytosae.plotting import panels as plots

ds = pipe.profile.train_dataset
store, stats = pipe.tokens(ds), pipe.stats(ds)
man = store.manifest
eos = np.flatnonzero(man["label"].to_numpy() == "eosinophil")
if pipe.synthetic:  # choose the eosinophil patch with the most granule area, from ground truth
    gt = pipe.groundtruth(ds)
    pf = align_patch_fractions(gt, pipe.dataset_root(ds), man)[
        :, list(gt.concepts).index("granule_eosinophilic")
    ]
    image_index = int(eos[np.argmax(pf[eos].reshape(len(eos), -1).max(1))])
    patch = int(np.argmax(pf[image_index].reshape(-1)))
else:  # the paper's example: patch 57 of the first eosinophil
    image_index, patch = int(eos[0]), 57
tokens = store.get([image_index])[0]
hits = retrieval.patch_latents(
    pipe.sae,
    tokens,
    patch,
    stats=stats,
    top_n=top_n,
    max_mean_act=max_mean_act if max_mean_act > 0 else None,
    max_patch_frequency=max_patch_frequency,
)
print(
    f"image {man['image_id'][image_index]}, patch {patch} (row {patch // 16}, col {patch % 16}) -> token {retrieval.patch_to_token(patch)}"
)
print(
    f"{len(hits)} latents active on the patch, {int(hits['dropped'].sum())} dropped as firing everywhere"
)
print(hits[~hits["dropped"]].head(8).round(3).to_string(index=False))

# %%
image = retrieval.load_image(man["path"][image_index])
datasets = list(pipe.profile.eval_datasets)
latents = hits.loc[hits["top"], "latent"].to_numpy()
if len(latents) == 0:  # every active latent fires everywhere (tiny smoke runs): show the strongest
    print("no latent passed the 'fires everywhere' filter; showing the most active ones instead")
    latents = hits["latent"].to_numpy()[:top_n]
fig, axes = plt.subplots(
    len(latents),
    1 + len(datasets) * n_images,
    figsize=(1.25 * (1 + len(datasets) * n_images), 1.5 * len(latents)),
    squeeze=False,
)
for r, latent in enumerate(latents):
    ax = axes[r, 0]
    img = np.asarray(image)
    ax.imshow(img)
    h, w = img.shape[0] / 16, img.shape[1] / 16
    ax.add_patch(
        plt.Rectangle(((patch % 16) * w, (patch // 16) * h), w, h, fill=False, ec="yellow", lw=1.5)
    )
    ax.set_title(f"query patch {patch}\nlatent {latent}", fontsize=7)
    ax.axis("off")
    for c, d in enumerate(datasets):
        st, sts = pipe.tokens(d), pipe.stats(d)
        ref = retrieval.reference_images(sts, int(latent), n_images, st.manifest)
        for j, row in enumerate(ref.itertuples(index=False)):
            acts = retrieval.latent_patch_map(
                pipe.sae, st.get([int(row.image_index)])[0], int(latent)
            )
            plots.plot_segmentation(
                axes[r, 1 + c * n_images + j],
                acts,
                retrieval.load_image(row.path),
                mode="scaled",
                title=f"{d}\n{str(row.label)[:14]}",
            )
        for j in range(len(ref), n_images):
            axes[r, 1 + c * n_images + j].axis("off")
fig.suptitle(f"Fig. 3 patch retrieval ({pipe.tag()})", y=1.03)
pipe.save_figure(fig, "fig3_patch_retrieval")
plt.show()
