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
# # Fig. 5: latents that differ between CBFB::MYH11 and PML::RARA
#
# The two disease barcodes plotted against each other; the top latents of (d1 - d2) and of
# (d2 - d1) are highlighted and shown through their reference images in the cohort. On the
# `default` profile the cohort is SYNTHETIC: CBFB::MYH11 patients carry abnormal eosinophils and
# monocytic cells, PML::RARA patients hypergranular promyelocytes with Auer rods and faggot cells.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
d1: str = "CBFB_MYH11"
d2: str = "PML_RARA"
top_n: int = 50  # latents each way (paper: 50)
n_show: int = 3  # latents each way drawn with reference images
n_images: int = 5

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis import barcodes, differential
from cytosae.analysis.recovery import groundtruth_cell_types
from cytosae.analysis.retrieval import load_image
from cytosae.plotting import figures

stats = pipe.stats("hehr")
man = pipe.tokens("hehr").manifest
X_PS, patients = barcodes.barcodes_from_stats(stats, man)
D_DS, diseases = barcodes.disease_barcodes(X_PS, patients["disease"].to_numpy())
diff = differential.differential_latents(D_DS, diseases, d1, d2, n=top_n)
print(diff.groupby("direction").head(5).round(3).to_string(index=False))

# %%
refs = differential.differential_reference_images(
    diff.groupby("direction").head(n_show), stats, n_images, man
)
fig, _ = figures.differential_figure(
    D_DS, diseases, d1, d2, diff, refs, load_image, n_show=n_show, n_images=n_images, tag=pipe.tag()
)
pipe.show(fig, "fig5_differential_latents")

# %% [markdown]
# Which cells carry the differential latents? In the synthetic world every image's cell type is
# known, so we count the cell types of their reference images (real data has only the patient's
# diagnosis, which is why the paper asked an expert).

# %%
if pipe.synthetic:
    refs["cell_type"] = groundtruth_cell_types(pipe.groundtruth("hehr"), refs["path"])
    print(refs.groupby("direction")["cell_type"].value_counts().to_string())
else:
    print("real data: no cell type per image to count (skipped); an expert reads the images above")
