"""The real latent explorer (notebook 10) in a real browser: Voila serves it, Chromium drives it.

The notebook is served on the smoke profile (a parameterised copy; its pipeline and explorer
caches are computed once by the ``explorer_notebook`` fixture, so each page only loads them).
On the smoke run every latent fires on every image, so the copy sets the "fires everywhere"
limits to 1 (nothing is hidden) and the slider has all 768 latents to walk.

After each interaction (the slider's keys, dragging and clicking its track, the ordering
dropdown, the -/+ buttons, the text box, "next interesting") the test waits until the caption
and the displayed image changed, and checks them against the explorer computed here, in the
test process, from the same cache: the caption names the latent the slider points at, and the
image's bytes as the browser holds them are exactly the PNG the pure renderer makes for it.
Screenshots go to the artifacts folder (``explorer-*.png``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
from browser_harness import REPO, parameterized_copy
from explorer_page import ExplorerPage, Shown

PARAMETERS = {
    "profile": "smoke",
    "max_frequency": 1.0,
    "max_patch_frequency": 1.0,
}


@pytest.fixture(scope="module")
def explorer_notebook(
    tmp_path_factory: pytest.TempPathFactory, smoke_pipeline, smoke_env
) -> dict[str, Any]:
    """The notebook's copy on the smoke profile, its caches warm, and the expected explorer."""
    from cytosae.analysis.explorer import Filters
    from cytosae.plotting.widget import LatentExplorer

    filters = Filters(
        threshold=smoke_pipeline.profile.threshold,
        max_frequency=PARAMETERS["max_frequency"],
        max_patch_frequency=PARAMETERS["max_patch_frequency"],
    )
    data = smoke_pipeline.explorer_data(filters=filters)  # builds the explorer caches once
    folder = tmp_path_factory.mktemp("explorer-notebook")
    nb = parameterized_copy(REPO / "notebooks" / "10_latent_explorer.ipynb", folder, **PARAMETERS)
    env = {k: str(v) for k, v in smoke_env.items()}
    return {"path": nb, "env": env, "data": data, "expected": LatentExplorer(data)}


@pytest.fixture
def explorer(voila, page, page_log, explorer_notebook) -> ExplorerPage:
    server = voila(explorer_notebook["path"], env=explorer_notebook["env"])
    ex = ExplorerPage(page, server, page_log)
    ex.open()
    return ex


def snapshot(ex: ExplorerPage, path: Path) -> None:
    """A screenshot of the whole explorer, in a window tall and wide enough to hold it.

    Voila scrolls the notebook inside its own container, which paints only what is in the
    window: the window grows for the shot (and the dashboard's three columns sit side by side).
    """
    size = ex.page.viewport_size
    ex.page.set_viewport_size({"width": 1440, "height": 2200})
    try:
        root = ex.page.locator(".cytosae-explorer").first
        root.scroll_into_view_if_needed()
        ex.page.wait_for_function(
            "() => [...document.querySelectorAll('.cytosae-explorer img.cytosae-image')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        root.screenshot(path=str(path))
    finally:
        ex.page.set_viewport_size(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_png(nb: dict[str, Any], latent: int) -> bytes:
    from cytosae.plotting import dashboard

    want = nb["expected"]
    return dashboard.mosaic_png(nb["data"].view(latent, want.n_images), want.n_images)


def shown_latent(shown: Shown) -> int:
    m = re.match(r"latent (-?\d+)", shown.caption)
    assert m, shown.caption
    return int(m.group(1))


def assert_consistent(ex: ExplorerPage, nb: dict[str, Any], shown: Shown) -> int:
    """The caption names the slider's latent, and the image is that latent's PNG, byte for byte."""
    latents = nb["expected"].latents

    def agree(s: Shown) -> bool:
        rank = ex.slider_value()
        latent = int(latents[rank])
        return (
            shown_latent(s) == latent
            and f"rank {rank} of {len(latents)}" in s.caption
            and s.image_sha256 == sha(expected_png(nb, latent))
        )

    if not agree(shown):  # the slider may have moved on while the kernel still answers
        shown = ex.wait_image(agree, "the page never agreed with its slider")
    assert "frequency" in shown.caption and "mean activation" in shown.caption
    return shown_latent(shown)


def test_opens_on_an_interesting_latent(explorer, explorer_notebook, artifacts_dir) -> None:
    nb = explorer_notebook
    shown = explorer.wait_image(lambda s: True, "no image")
    want = nb["expected"]
    assert explorer.slider_range() == (0, len(want.latents) - 1)
    assert explorer.slider_value() == want.rank
    latent = assert_consistent(explorer, nb, shown)
    assert latent == want.latent and nb["data"].interesting()[latent]
    assert "SYNTHETIC" in shown.caption and "above threshold" in shown.caption
    assert shown.image_size[0] > 500 and shown.image_size[1] > 500  # five rows of five images
    # the statistics-only explorer of the authors' published statistics, further down the page
    captions = explorer.page.locator(".cytosae-caption")
    assert captions.count() == 2
    published = captions.nth(1).inner_text()
    assert "REAL data" in published and "MLL23: frequency" in published
    assert "Statistics per dataset" in explorer.page.locator(".cytosae-side").nth(1).inner_text()
    snapshot(explorer, artifacts_dir / "explorer-first.png")
    assert explorer.page_log.errors == []


def test_keyboard_moves_the_slider(explorer, explorer_notebook, artifacts_dir) -> None:
    nb = explorer_notebook
    n = len(nb["expected"].latents)
    before = explorer.wait_image(lambda s: True, "no image")
    start = explorer.slider_value()
    explorer.press_on_slider("ArrowRight")
    after = explorer.wait_changed(before, "ArrowRight on the slider")
    assert explorer.slider_value() == start + 1
    assert_consistent(explorer, nb, after)

    explorer.press_on_slider("End")
    after = explorer.wait_changed(after, "End on the slider")
    assert explorer.slider_value() == n - 1
    assert_consistent(explorer, nb, after)

    explorer.press_on_slider("ArrowLeft")
    after = explorer.wait_changed(after, "ArrowLeft on the slider")
    assert explorer.slider_value() == n - 2
    assert_consistent(explorer, nb, after)
    snapshot(explorer, artifacts_dir / "explorer-keyboard.png")


def test_mouse_drags_and_clicks_the_slider(explorer, explorer_notebook, artifacts_dir) -> None:
    nb = explorer_notebook
    top = len(nb["expected"].latents) - 1
    before = explorer.wait_image(lambda s: True, "no image")
    explorer.drag_slider(0.75)
    after = explorer.wait_changed(before, "dragging the slider handle")
    assert abs(explorer.slider_value() - 0.75 * top) <= 0.02 * top
    assert_consistent(explorer, nb, after)

    explorer.click_track(0.25)
    after = explorer.wait_changed(after, "clicking the slider track")
    assert abs(explorer.slider_value() - 0.25 * top) <= 0.02 * top
    assert_consistent(explorer, nb, after)
    snapshot(explorer, artifacts_dir / "explorer-mouse.png")


def test_buttons_and_the_text_box(explorer, explorer_notebook, artifacts_dir) -> None:
    nb = explorer_notebook
    page = explorer.page
    before = explorer.wait_image(lambda s: True, "no image")
    start = explorer.slider_value()
    page.locator(".cytosae-plus").first.click()
    after = explorer.wait_changed(before, "the + button")
    assert explorer.slider_value() == start + 1
    assert_consistent(explorer, nb, after)

    page.locator(".cytosae-next").first.click()
    nxt = explorer.wait_changed(after, "next interesting")
    latent = assert_consistent(explorer, nb, nxt)
    assert nb["data"].interesting()[latent] and explorer.slider_value() > start + 1

    box = page.locator(".cytosae-latent input").first
    box.fill("99999")
    box.press("Enter")
    gone = explorer.wait_changed(nxt, "typing an out-of-range latent")
    assert gone.caption.startswith("latent 99999") and "out of range" in gone.caption
    snapshot(explorer, artifacts_dir / "explorer-out-of-range.png")


def test_ordering_and_filters(explorer, explorer_notebook, artifacts_dir) -> None:
    nb = explorer_notebook
    data = nb["data"]
    before = explorer.wait_image(lambda s: True, "no image")
    for ordering, label in (
        ("frequency", "frequency"),
        ("d1 > d2", "CBFB::MYH11 > PML::RARA"),
        ("mean activation", "mean activation"),
    ):
        top = int(data.ordered(ordering)[0])
        explorer.select_ordering(label)
        after = explorer.wait_image(
            lambda s, top=top, label=label: shown_latent(s) == top and f"by {label}" in s.caption,
            f"choosing the ordering {label!r}",
        )
        assert explorer.slider_value() == 0
        assert after.image_sha256 == sha(expected_png(nb, top))
        if top != shown_latent(before):
            assert after.image_sha256 != before.image_sha256
        before = after
        if ordering == "d1 > d2":
            snapshot(explorer, artifacts_dir / "explorer-ordering.png")
    from playwright.sync_api import expect

    n = explorer.slider_range()[1] + 1
    explorer.page.locator(".cytosae-filter-threshold input").first.uncheck()
    caption = explorer.page.locator(".cytosae-caption").first
    expect(caption).to_contain_text("filters: not everywhere", timeout=20_000)
    assert explorer.slider_range()[1] + 1 == len(data.ordered("mean activation", threshold=False))
    assert explorer.slider_range()[1] + 1 >= n
    explorer.page.locator(".cytosae-filter-everywhere input").first.uncheck()
    expect(caption).to_contain_text("no filter", timeout=20_000)
    assert explorer.slider_range()[1] + 1 == data.d_sae
