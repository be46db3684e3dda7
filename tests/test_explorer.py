"""The latent explorer: its one-pass cache, the per-latent views, the pure drawing, the widget.

A hand-made world of 24 images and 12 latents whose behaviour is known by construction:

* latent 0 fires on every token (fires everywhere); latent 1 never fires (dead);
* latents 2, 3, 4 fire on 10 patches of the images labelled a, b, c (real concepts; latent 2's
  patches are exactly where the ground-truth concept "alpha" is);
* latent 5 fires on one patch of two images (too few for a full set of reference images);
* latent 6 fires everywhere too weakly to pass the threshold;
* latents 7-11 fire on random patches (noise).

The widget is driven headlessly: its controls are set as the front end would set them, and its
state (the image bytes, the caption) is asserted on.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from cytosae.analysis.explorer import (
    Cohort,
    ExplorerCache,
    ExplorerData,
    Filters,
    auroc_all_latents,
    build_explorer_cache,
    fingerprint,
)
from cytosae.analysis.latents import encode_pass
from cytosae.analysis.recovery import collect_patch_sample, recover_concepts
from cytosae.analysis.retrieval import latent_patch_map
from cytosae.plotting import dashboard

N, S, T = 24, 12, 257
LABELS = np.array(["a", "b", "c"] * 8)
PATIENTS = np.array([f"P{i % 6}" for i in range(N)])
DISEASE_OF = {"P0": "CBFB_MYH11", "P1": "CBFB_MYH11", "P2": "PML_RARA", "P3": "PML_RARA"}
DISEASE_OF |= {"P4": "control", "P5": "control"}


class FakeSAE(torch.nn.Module):
    """encode(x) = relu(x + b): token feature k is latent k's pre-activation."""

    def __init__(self) -> None:
        super().__init__()
        self.b = torch.nn.Parameter(torch.zeros(S))
        with torch.no_grad():
            self.b[0] = 0.5
            self.b[1] = -100.0
            self.b[6] = 1e-4
        self.cfg = SimpleNamespace(d_sae=S)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.b)


class FakeStore:
    def __init__(self, tokens: torch.Tensor, manifest: pd.DataFrame) -> None:
        self.tokens = tokens
        self.n_images, self.n_tokens = tokens.shape[:2]
        self.manifest = manifest
        self.digest = "fake"

    def iter_images(self, b: int):
        for s in range(0, self.n_images, b):
            idx = np.arange(s, min(s + b, self.n_images))
            yield idx, self.tokens[idx]

    def get(self, idx):
        return self.tokens[np.asarray(idx)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("explorer-world")
    rng = np.random.default_rng(0)
    tok = np.zeros((N, T, S), dtype=np.float32)
    alpha = np.zeros((N, 1, 16, 16), dtype=np.float32)
    for i in range(N):
        k = 2 + "abc".index(LABELS[i])
        patches = np.arange(10) + 3 * (i % 5)  # 10 patches, placed per image
        tok[i, 1 + patches, k] = 1.0 + 0.1 * i
        if k == 2:
            alpha[i, 0].reshape(-1)[patches] = 1.0
    tok[[3, 7], 1 + 100, 5] = 2.0
    tok[:, 1:, 7:] = (rng.random((N, T - 1, 5)) < 0.01) * rng.random((N, T - 1, 5))
    paths = []
    for i in range(N):
        p = folder / f"img{i}.png"
        Image.fromarray(np.full((40, 40, 3), 10 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    manifest = pd.DataFrame(
        {
            "path": paths,
            "label": LABELS,
            "dataset": "mll23",
            "patient": PATIENTS,
            "disease": [DISEASE_OF[p] for p in PATIENTS],
        }
    )
    store = FakeStore(torch.tensor(tok), manifest)
    sae = FakeSAE()
    stats = encode_pass(sae, store, top_k=5, progress=False, batch_images=5)
    cache = ExplorerCache(
        build_explorer_cache(
            sae,
            store,
            stats,
            folder / "cache",
            n_maps=4,
            thumb_px=32,
            patch_fractions=alpha,
            concepts=["alpha"],
            batch_images=5,
            progress=False,
        )
    )
    cache.concepts.min_positive = 1
    data = ExplorerData(
        {"mll23": stats},
        {"mll23": cache},
        cohort=Cohort.from_stats(stats, manifest),
        concepts=cache.concepts,
        tag="SYNTHETIC data, test world",
    )
    return SimpleNamespace(
        store=store, sae=sae, stats=stats, cache=cache, data=data, alpha=alpha, folder=folder
    )


def text(markup: str) -> str:
    """What a browser shows of an HTML caption."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


# ----------------------------------------------------------------------------- the cache
def test_auroc_all_latents_equals_recover_concepts_on_its_candidates() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((300, 40)) < 0.2) * rng.random((300, 40))
    dense[:, 5] = 0  # a latent that never fires
    dense[:50, 6] = 0.5  # ties
    Y = rng.random((300, 3)) < 0.3
    got = auroc_all_latents(sp.csr_matrix(dense), Y)
    ref = recover_concepts(dense, Y, ["x", "y", "z"], n_candidates=40, min_positive=1)
    np.testing.assert_allclose(got[:, ref.auroc.columns], ref.auroc.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(got[:, 5], 0.5)


def test_one_pass_cache_agrees_with_the_statistics_and_the_patch_maps(world) -> None:
    c, st = world.cache, world.stats
    fired = np.diff(c.acts.indptr)
    np.testing.assert_allclose(fired / N, st.sparsity, rtol=1e-6)
    for s in np.flatnonzero(fired):
        np.testing.assert_allclose(c.activations(s).mean(), st.mean_acts[s], rtol=1e-5)
    for s in (2, 3, 5):
        for j in range(c.n_maps):
            i = st.top_indices[s, j]
            if i < 0:
                assert np.isnan(c.maps[s, j]).all()
                continue
            want = latent_patch_map(world.sae, world.store.get([i])[0], s)[1:]
            np.testing.assert_allclose(c.patch_map(s, j).ravel(), want, rtol=1e-3)
    assert c.thumbnail(int(st.top_indices[2, 0])).shape == (32, 32, 3)
    assert c.thumbnail(10**6) is None
    assert c.meta["acts_nnz"] == c.acts.nnz and c.meta["thumbnails_missing"] == 0


def test_concept_auroc_uses_the_recovery_patch_sample(world) -> None:
    A, Y = collect_patch_sample(world.sae, world.store, world.alpha, batch_images=5, progress=False)
    np.testing.assert_allclose(world.cache.concepts.auroc, auroc_all_latents(A, Y), atol=1e-6)
    assert world.cache.concepts.auroc[0, 2] == pytest.approx(1.0)
    best = world.cache.concepts.ranked(2)
    assert list(best["concept"]) == ["alpha"] and best["auroc"][0] == pytest.approx(1.0)


def test_fingerprint_follows_the_weights() -> None:
    a, b = FakeSAE(), FakeSAE()
    assert fingerprint(a) == fingerprint(b)
    with torch.no_grad():
        b.b[3] = 1.0
    assert fingerprint(a) != fingerprint(b)


# ------------------------------------------------------------------------- the filters
def test_filters_dead_and_interesting(world) -> None:
    d = world.data
    assert d.fires_everywhere()[0] and not d.fires_everywhere()[2:6].any()
    assert d.dead()[1] and d.dead().sum() == 1
    assert not d.above_threshold()[6] and d.above_threshold()[2:6].all()
    interesting = set(np.flatnonzero(d.interesting()))
    assert {2, 3, 4} <= interesting and not interesting & {0, 1, 5, 6}


def test_orderings(world) -> None:
    d = world.data
    assert d.orderings() == [
        "concept AUROC",
        "mean activation",
        "frequency",
        "d1 > d2",
        "d2 > d1",
        "latent index",
    ]
    assert d.ordering_label("d1 > d2") == "CBFB::MYH11 > PML::RARA"
    assert d.default_ordering() == "concept AUROC"
    assert d.ordered("concept AUROC")[0] == 2  # the ground-truth latent first
    idx = d.ordered("latent index", threshold=False, everywhere=False)
    np.testing.assert_array_equal(idx, np.arange(S))
    listed = d.ordered("mean activation")
    assert 0 not in listed and 1 not in listed and 6 not in listed
    m = world.stats.mean_acts[listed]
    assert (np.diff(m) <= 0).all()
    diff = d.cohort.difference()
    by_diff = d.ordered("d1 > d2", threshold=False, everywhere=False)
    assert (np.diff(diff[by_diff]) <= 0).all()
    with pytest.raises(ValueError, match="unknown ordering"):
        d.ordered("alphabetical")


def test_next_interesting_walks_the_ordering_once(world) -> None:
    d = world.data
    lat = d.ordered("latent index", threshold=False, everywhere=False)
    seen: set[int] = set()
    r, visited = -1, []
    while (r := d.next_interesting(lat, r, seen)) is not None:
        visited.append(int(lat[r]))
        seen.add(int(lat[r]))
    assert visited == sorted(np.flatnonzero(d.interesting()))
    assert d.next_interesting(np.zeros(0, dtype=int), 0) is None


# ------------------------------------------------------------------------------ the views
@pytest.mark.parametrize("bad", [-1, S, 10**6, 2.5, "x", None])
def test_out_of_range_latents_are_a_message(world, bad) -> None:
    v = world.data.view(bad)
    assert (
        v.status == "out of range" and "out of range" in v.message and f"{S} latents" in v.message
    )
    assert dashboard.mosaic_png(v)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "out of range" in dashboard.caption_text(v)
    assert dashboard.side_html(v) == "" and dashboard.cohort_html(v) == ""
    fig, _ = dashboard.dashboard_figure(v, pyplot=False)
    assert fig is not None


def test_dead_latent_is_a_message(world) -> None:
    v = world.data.view(1)
    assert v.status == "dead" and "never fired" in v.message
    assert "latent 1 is dead" in dashboard.caption_text(v)


def test_view_of_a_concept(world) -> None:
    v = world.data.view(2, n_images=3)
    assert v.ok and v.above_threshold and not v.fires_everywhere and v.interesting
    assert v.row()["frequency"] == pytest.approx(8 / N)
    assert list(v.label_mix["mll23"].index) == ["a"]
    assert len(v.top["mll23"]) == 3 and all(t.label == "a" for t in v.top["mll23"])
    acts = [t.activation for t in v.top["mll23"]]
    assert acts == sorted(acts, reverse=True)
    assert v.histogram["mll23"].sum() == 8 and v.n_zero["mll23"] == N - 8
    assert v.concepts["concept"][0] == "alpha"
    assert v.diseases is not None and v.patients is not None and v.difference is not None
    assert set(v.patients["disease"]) <= set(DISEASE_OF.values())
    everywhere = world.data.view(0)
    assert everywhere.fires_everywhere and "frequency 1 > 0.99" in everywhere.everywhere_reason


def test_drawing_is_pure_and_differs_per_latent(world) -> None:
    d = world.data
    a, b = dashboard.mosaic_png(d.view(2)), dashboard.mosaic_png(d.view(2))
    assert a == b and a != dashboard.mosaic_png(d.view(3))
    assert a != dashboard.mosaic_png(d.view(2), overlay=False)
    img = dashboard.mosaic_image(d.view(2), 4)
    assert img.dtype == np.uint8 and img.shape[2] == 3
    cap = dashboard.caption_text(d.view(2), "rank 0 of 5")
    assert cap.startswith("latent 2 | rank 0 of 5 | MLL23: frequency 0.333 (8 of 24)")
    assert "mean activation" in cap and "above threshold" in cap and "alpha" in cap
    assert "fires everywhere" in dashboard.caption_text(d.view(0))
    side, cohort = dashboard.side_html(d.view(2)), dashboard.cohort_html(d.view(2))
    assert "<svg" in side and "Labels of its top" in side
    assert "CBFB::MYH11" in cohort and "alpha" in cohort


def test_static_figure(world) -> None:
    fig, data = dashboard.dashboard_figure(world.data.view(2), pyplot=False)
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "Latent 2" in texts and "SYNTHETIC DATA" in texts and "above threshold" in texts
    assert data["mosaic"] is not None and set(data["panels"]) >= {"histogram", "cohort"}


# ----------------------------------------------------------------------------- the widget
@pytest.fixture
def explorer(world):
    pytest.importorskip("ipywidgets")
    from cytosae.plotting.widget import LatentExplorer

    return LatentExplorer(world.data, n_images=3)


def test_opening_latent_passes_the_filters(explorer, world) -> None:
    d = world.data
    s = explorer.latent
    assert s == 2 and d.interesting()[s]
    assert not d.fires_everywhere()[s] and d.above_threshold()[s]
    assert explorer.rank == 0 and explorer.slider.value == 0
    assert explorer.latent_box.value == 2
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    cap = text(explorer.caption.value)
    assert "latent 2" in cap and "rank 0 of" in cap and "frequency 0.333" in cap
    assert "SYNTHETIC" in cap


def test_slider_and_ordering_change_the_image_and_the_caption(explorer) -> None:
    first_img, first_cap = explorer.image.value, explorer.caption.value
    explorer.slider.value = 1
    s = int(explorer.latents[1])
    assert explorer.latent == s and explorer.image.value != first_img
    cap = text(explorer.caption.value)
    assert f"latent {s}" in cap and "rank 1 of" in cap and "mean activation" in cap
    assert explorer.caption.value != first_cap
    before = explorer.image.value
    explorer.ordering.value = "frequency"
    top = int(explorer.data.ordered("frequency")[0])
    assert explorer.slider.value == 0 and explorer.latent == top
    assert "by frequency" in text(explorer.caption.value)
    if top != s:
        assert explorer.image.value != before
    explorer.ordering.value = "d1 > d2"
    assert "by CBFB::MYH11 > PML::RARA" in text(explorer.caption.value)
    assert explorer.last_render_s < 5


def test_buttons_and_text_box(explorer, world) -> None:
    n = len(explorer.latents)
    explorer.plus.click()
    assert explorer.rank == 1
    explorer.minus.click()
    explorer.minus.click()  # clamped at 0
    assert explorer.rank == 0
    explorer.latent_box.value = 10**6
    assert "out of range" in text(explorer.caption.value) and explorer.latent == 10**6
    explorer.latent_box.value = 1
    assert "dead" in text(explorer.caption.value)
    explorer.latent_box.value = 0  # fires everywhere: shown, but not in the list
    cap = text(explorer.caption.value)
    assert "latent 0" in cap and "not in the list" in cap and "fires everywhere" in cap
    assert explorer.rank is None and len(explorer.latents) == n
    explorer.plus.click()  # back into the list
    assert explorer.rank is not None
    before = explorer.image.value
    explorer.overlay.value = False
    assert explorer.image.value != before


def test_filters_change_the_list(explorer, world) -> None:
    n = len(explorer.latents)
    explorer.slider.value = 1
    kept = explorer.latent
    explorer.everywhere_filter.value = False
    assert len(explorer.latents) > n and 0 in explorer.latents
    assert explorer.latent == kept  # still listed: the same latent
    explorer.threshold_filter.value = False
    assert len(explorer.latents) == S and "no filter" in text(explorer.caption.value)
    explorer.latent_box.value = 0
    assert explorer.rank is not None  # listed now
    explorer.everywhere_filter.value = True  # latent 0 is dropped: back to rank 0
    assert explorer.rank == 0 and 0 not in explorer.latents


def test_next_interesting(explorer, world) -> None:
    explorer.everywhere_filter.value = False
    explorer.threshold_filter.value = False
    explorer.ordering.value = "latent index"
    assert explorer.latent == 0  # the top of the new ordering, whatever it is
    shown = []
    while (s := explorer.next_interesting()) is not None:
        shown.append(s)
        assert world.data.interesting()[s] and explorer.latent == s
    assert sorted(shown) == sorted(set(np.flatnonzero(world.data.interesting())) - {2})
    assert "no further interesting latent" in explorer.caption.value
    explorer.next_button.click()  # still none left: no error
    assert explorer.latent == shown[-1]


def test_nothing_listed_is_a_message(world) -> None:
    pytest.importorskip("ipywidgets")
    from cytosae.plotting.widget import LatentExplorer

    data = ExplorerData(
        world.data.stats,
        world.data.caches,
        filters=Filters(threshold=5.0),
        tag="SYNTHETIC data, test world",
    )
    ex = LatentExplorer(data)
    assert ex.latent is None and ex.slider.disabled
    assert "no latent passes the filters" in ex.caption.value
    ex.threshold_filter.value = False
    assert ex.latent is not None and not ex.slider.disabled


def test_a_real_run_without_ground_truth_or_cohort(world) -> None:
    """No ground truth (real data) and no cohort: those parts and their orderings are hidden."""
    pytest.importorskip("ipywidgets")
    from cytosae.plotting.widget import LatentExplorer

    data = ExplorerData(world.data.stats, world.data.caches, tag="real data")
    assert data.orderings() == ["mean activation", "frequency", "latent index"]
    ex = LatentExplorer(data)
    assert ex.ordering.value == "mean activation" and data.interesting()[ex.latent]
    assert ex.view.concepts is None and ex.view.diseases is None
    assert "no cohort or ground truth" in ex.cohort.value and "SYNTHETIC" not in ex.caption.value
    fig, out = dashboard.dashboard_figure(ex.view, pyplot=False)
    assert "SYNTHETIC DATA" not in " ".join(t.get_text() for t in fig.texts)
    assert out["panels"]["concepts"] == {}


def test_images_not_at_hand(world, tmp_path: Path) -> None:
    """Images moved away after the pass: their patch maps are drawn as heat maps instead."""
    man = world.store.manifest.copy()
    man["path"] = [str(tmp_path / "gone" / Path(p).name) for p in man["path"]]
    store = FakeStore(world.store.tokens, man)
    cache = ExplorerCache(
        build_explorer_cache(world.sae, store, world.stats, tmp_path / "c", progress=False)
    )
    assert cache.meta["thumbnails_missing"] == len(cache.thumb_index)
    v = ExplorerData({"mll23": world.stats}, {"mll23": cache}).view(2)
    assert all(t.image is None and t.patch_map is not None for t in v.top["mll23"])
    img = dashboard.mosaic_image(v, 3)
    assert img is not None and img.std() > 0


def test_statistics_alone_published(tmp_path: Path) -> None:
    """The authors' published statistics: no images, no barcodes, no ground truth."""
    pytest.importorskip("ipywidgets")
    from cytosae.interop.published import PUBLISHED_DATASETS, published_stats
    from cytosae.plotting.widget import LatentExplorer

    data = ExplorerData.from_stats(
        {d: published_stats(d) for d in PUBLISHED_DATASETS}, tag="real data (published)"
    )
    assert data.orderings() == ["mean activation", "frequency", "latent index"]
    ex = LatentExplorer(data)
    s = ex.latent
    assert data.interesting()[s] and not data.fires_everywhere()[s]
    cap = text(ex.caption.value)
    assert f"latent {s}" in cap and "MLL23: frequency" in cap and "SYNTHETIC" not in cap
    assert ex.view.top == {} and ex.view.histogram_edges is None
    assert dashboard.mosaic_image(ex.view) is None  # the card says: statistics only
    assert "Statistics per dataset" in ex.side.value and "Acevedo" in ex.side.value
    first = ex.image.value
    ex.slider.value = 5
    assert ex.latent != s and ex.image.value != first  # the card names the latent
    _, out = ex.figure(pyplot=False)
    assert out["mosaic"] is None


# ---------------------------------------------------------------------- on the pipeline
def test_pipeline_explorer_cache_is_reused(smoke_pipeline, monkeypatch) -> None:
    pipe = smoke_pipeline
    data = pipe.explorer_data()  # builds every dataset's cache once
    path = pipe.explorer_cache("mll23")
    assert (path / "concepts.npz").is_file()  # the training dataset of a synthetic run
    assert not (pipe.explorer_cache("bmc") / "concepts.npz").exists()

    import cytosae.analysis.explorer as ex

    def boom(*a, **k):
        raise AssertionError("rebuilt a cached explorer pass")

    monkeypatch.setattr(ex, "build_explorer_cache", boom)
    assert pipe.explorer_cache("mll23") == path
    again = pipe.explorer_data(filters=ex.Filters(threshold=-3.0, max_frequency=1.0))
    assert again.filters.max_frequency == 1.0
    assert data.reference == pipe.profile.train_dataset and data.concepts is not None
    assert data.cohort is not None and "SYNTHETIC" in data.tag
    v = data.view(int(data.ordered("latent index", threshold=False, everywhere=False)[0]))
    assert v.ok and set(v.top) == set(pipe.profile.eval_datasets)
    assert all(t.image is not None and t.patch_map is not None for t in v.top["hehr"])
    stats_only = pipe.explorer_data(images=False)
    assert stats_only.caches == {} and stats_only.concepts is None


def test_a_single_label_entropy_reads_zero_not_minus_zero() -> None:
    # -sum(p log p) with one label of p = 1 is -0.0 in floating point; the dashboard wrote -0.00
    assert dashboard._entropy(-0.0) == "0.00"
    assert dashboard._entropy(float(-(1.0 * np.log(1.0)))) == "0.00"
    assert dashboard._entropy(0.5612) == "0.56"
