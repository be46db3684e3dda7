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
# On the `default` profile the cells are SYNTHETIC, so we can pick the granule patch from ground truth;
# on real data the query is the paper's example, patch 57 of the first `cell_type` image.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
top_n: int = 2  # latents kept
max_patch_frequency: float = (
    0.1  # drop latents firing on more than this fraction of the dataset's patches
)
max_mean_act: float = (
    -1.0
)  # > 0: also drop latents with dataset mean activation above it (official code: 0.1)
n_images: int = 3  # reference images per dataset
cell_type: str = "eosinophil"  # label of the query image (your own cells: one of your labels)

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis import retrieval
from cytosae.analysis.recovery import align_patch_fractions
from cytosae.plotting import figures

ds = pipe.profile.train_dataset
store, stats = pipe.tokens(ds), pipe.stats(ds)
man = store.manifest
granules = None  # without ground truth: the paper's example, patch 57 of the first eosinophil
# synthetic world: the eosinophil patch with the most granule area, from ground truth
if pipe.synthetic and cell_type == "eosinophil":
    gt = pipe.groundtruth(ds)
    granules = align_patch_fractions(gt, pipe.dataset_root(ds), man)[
        :, gt.concept_index("granule_eosinophilic")
    ]
image_index, patch = retrieval.query_patch(man["label"], granules, cell_type=cell_type)
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
datasets = list(pipe.profile.eval_datasets)
latents, fallback = retrieval.retrieval_latents(hits, top_n)
if fallback:  # every active latent fires everywhere (tiny smoke runs)
    print("no latent passed the 'fires everywhere' filter; showing the most active ones instead")
sources = {d: (pipe.stats(d), pipe.tokens(d).manifest) for d in datasets}
fig, _ = figures.patch_retrieval_figure(
    retrieval.load_image(man["path"][image_index]),
    patch,
    retrieval.reference_table(sources, latents, n_images),
    lambda d, i, s: retrieval.latent_patch_map(pipe.sae, pipe.tokens(d).get([i])[0], s),
    retrieval.load_image,
    latents=latents,
    datasets=datasets,
    n_images=n_images,
    tag=pipe.tag(),
)
pipe.show(fig, "fig3_patch_retrieval")
