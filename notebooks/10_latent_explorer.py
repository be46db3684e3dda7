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
# # The latent explorer: one dashboard per latent
#
# Browse the SAE's latents as morphological concepts. For the latent chosen with the slider the
# dashboard shows its statistics (activation frequency, mean activation, label entropy) and
# whether it passes the paper's two filters: **above the threshold** (a log10 mean activation
# above -3, Fig. 2A) and **not firing everywhere** (an activation frequency of at most 0.99
# and, as Fig. 3 filters, firing on at most 10% of the dataset's patches). Then: how its activation is
# distributed over the images, its top images in every dataset with Fig. 3's segmentation map
# (each 14-px patch shaded by its activation; silent patches dimmed), the labels of its top
# images, its place in the latent landscape, the cohort's disease barcodes and the patients
# that use it most, and, on the synthetic world, the ground-truth concepts it detects (patch
# AUROC).
#
# **Controls.** Order the latents by concept AUROC (synthetic runs), mean activation,
# frequency, the CBFB::MYH11 vs PML::RARA barcode difference (either way) or index; tick the
# filters off to list every latent. Click the slider's handle and step with the arrow keys
# (Page Up/Down, Home/End), or use `-`/`+`; type any latent's index in the box. **Next
# interesting** jumps to the next latent of the ordering that passes both filters and has a
# full set of reference images (at least k images activate it) and that was not shown yet: the
# highest remaining score. The explorer opens on the first such latent, never on one that fires
# everywhere. Each step is a look-up in arrays computed once per run (one encode pass, cached
# under `runs/explorer/`), so the dashboard follows the slider at once.
#
# The same dashboard is drawn below as a figure for one latent (`figures/latent_explorer_example.png`),
# and, at the end, an explorer of the authors' published statistics, which has no images.
# Serve this notebook as an app with Voila: `voila notebooks/10_latent_explorer.ipynb`.
# On the `default` profile the images are SYNTHETIC.

# %% tags=["parameters"]
profile: str = "default"  # smoke | default | paper
overrides: dict = {}  # profile settings, e.g. {"sae.expansion_factor": 16} (see the README)
ordering: str = ""  # empty: concept AUROC on synthetic runs, else mean activation
latent: int = -1  # the opening latent (negative: the first interesting one)
n_images: int = 5  # top images per dataset
max_frequency: float = 0.99  # "fires everywhere" above this activation frequency
max_patch_frequency: float = 0.1  # ... or above this fraction of the dataset's patches
published: bool = True  # also open an explorer of the authors' published statistics

# %%
from cytosae.workflow.notebook import setup

pipe = setup(globals())

# %%
from cytosae.analysis.explorer import ExplorerData, Filters
from cytosae.interop.published import PUBLISHED_DATASETS, SOURCE, published_stats
from cytosae.plotting.dashboard import caption_text, dashboard_figure
from cytosae.plotting.widget import LatentExplorer

filters = Filters(
    threshold=pipe.profile.threshold,
    max_frequency=max_frequency,
    max_patch_frequency=max_patch_frequency,
)
data = pipe.explorer_data(filters=filters)
print(
    f"{data.d_sae} latents on {data.reference}: {int(data.above_threshold().sum())} above the "
    f"threshold, {int(data.fires_everywhere().sum())} fire everywhere, "
    f"{len(data.ordered(data.default_ordering()))} pass both filters, "
    f"{int(data.interesting().sum())} interesting, {int(data.dead().sum())} dead"
)
print("orderings:", ", ".join(data.ordering_label(o) for o in data.orderings()))

# %%
explorer = LatentExplorer(
    data, ordering=ordering or None, n_images=n_images, latent=None if latent < 0 else latent
)
print(caption_text(explorer.view, explorer.position) if explorer.view else "no latent listed")

# %% tags=["nbval-ignore-output"]
explorer.show()

# %% [markdown]
# The dashboard of one real concept as a figure: the explorer's opening latent (the first
# interesting latent of the default ordering), which passes both filters.

# %%
example = data.example_latent(ordering or None)
view = data.view(example, n_images)
print(
    f"latent {example}: above threshold {view.above_threshold}, fires everywhere "
    f"{view.fires_everywhere}, interesting {view.interesting}"
)
fig, _ = dashboard_figure(view, n_images=n_images)
pipe.show(fig, "latent_explorer_example")

# %% [markdown]
# Without images: the authors' published statistics of their SAE (49,152 latents, real data)
# open in the same explorer, which then shows what statistics alone can show.

# %% tags=["nbval-ignore-output"]
if published:
    from IPython.display import display

    stats_only = ExplorerData.from_stats(
        {d: published_stats(d) for d in PUBLISHED_DATASETS},
        tag="REAL data: the authors' published statistics (no images)",
    )
    print(SOURCE)
    display(LatentExplorer(stats_only).show())
