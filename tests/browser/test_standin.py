"""The stand-in explorer in a real browser: keyboard, mouse and dropdown each redraw it.

Each test opens its own page (so its own kernel) and checks, after every interaction, that the
caption and the displayed image changed, and that they are exactly what the pure functions of
``standin_explorer`` give for the slider's new value: the image's bytes as the browser holds them
are compared with ``render``'s PNG.
"""

from __future__ import annotations

import hashlib

import pytest
from explorer_page import ExplorerPage, Shown
from standin_explorer import N_LATENTS, ORDERINGS, caption, latent_at, render

FIRST_ORDERING = next(iter(ORDERINGS))


def expected_sha(rank: int, ordering: str) -> str:
    return hashlib.sha256(render(latent_at(rank, ordering))).hexdigest()


def assert_shows(ex: ExplorerPage, shown: Shown, rank: int, ordering: str) -> None:
    """The page shows ``rank`` under ``ordering``: slider, caption and image bytes agree."""
    assert ex.slider_value() == rank
    want = caption(rank, ordering)
    if shown.caption != want or shown.image_sha256 != expected_sha(rank, ordering):
        # the slider may have moved on while the kernel still answers: wait for that state
        shown = ex.wait_image(
            lambda s: s.caption == want and s.image_sha256 == expected_sha(rank, ordering),
            f"the page never showed rank {rank} under {ordering!r} ({want!r})",
        )
    assert shown.caption == want
    assert shown.image_sha256 == expected_sha(rank, ordering)
    assert shown.image_size == (320, 240)


@pytest.fixture
def explorer(voila, page, page_log, standin_notebook) -> ExplorerPage:
    ex = ExplorerPage(page, voila(standin_notebook), page_log)
    ex.open()
    return ex


def test_first_render(explorer: ExplorerPage, artifacts_dir) -> None:
    shown = explorer.wait_image(lambda s: True, "no image")
    assert explorer.slider_range() == (0, N_LATENTS - 1)
    assert_shows(explorer, shown, 0, FIRST_ORDERING)
    explorer.screenshot(artifacts_dir / "standin-first.png")
    assert explorer.page_log.errors == []  # no uncaught exception in the page


def test_keyboard_moves_the_slider(explorer: ExplorerPage, artifacts_dir) -> None:
    before = explorer.wait_image(lambda s: True, "no image")
    explorer.press_on_slider("ArrowRight")
    after = explorer.wait_changed(before, "ArrowRight on the slider")
    assert_shows(explorer, after, 1, FIRST_ORDERING)

    explorer.press_on_slider("End")
    after = explorer.wait_changed(after, "End on the slider")
    assert_shows(explorer, after, N_LATENTS - 1, FIRST_ORDERING)

    explorer.press_on_slider("ArrowLeft")
    after = explorer.wait_changed(after, "ArrowLeft on the slider")
    assert_shows(explorer, after, N_LATENTS - 2, FIRST_ORDERING)
    explorer.screenshot(artifacts_dir / "standin-keyboard.png")


def test_mouse_drags_and_clicks_the_slider(explorer: ExplorerPage, artifacts_dir) -> None:
    top = N_LATENTS - 1
    before = explorer.wait_image(lambda s: True, "no image")
    explorer.drag_slider(0.75)
    after = explorer.wait_changed(before, "dragging the slider handle")
    rank = explorer.slider_value()
    assert abs(rank - round(0.75 * top)) <= 1, rank
    assert_shows(explorer, after, rank, FIRST_ORDERING)

    explorer.click_track(0.25)
    after = explorer.wait_changed(after, "clicking the slider track")
    rank = explorer.slider_value()
    assert abs(rank - round(0.25 * top)) <= 1, rank
    assert_shows(explorer, after, rank, FIRST_ORDERING)
    explorer.screenshot(artifacts_dir / "standin-mouse.png")


def test_dropdown_changes_the_ordering(explorer: ExplorerPage, artifacts_dir) -> None:
    before = explorer.wait_image(lambda s: True, "no image")
    explorer.press_on_slider("ArrowRight")
    before = explorer.wait_changed(before, "ArrowRight on the slider")
    for ordering in [*list(ORDERINGS)[1:], FIRST_ORDERING]:
        explorer.select_ordering(ordering)
        after = explorer.wait_changed(before, f"choosing the ordering {ordering!r}")
        assert_shows(explorer, after, 1, ordering)
        before = after
        if ordering == "frequency":
            explorer.screenshot(artifacts_dir / "standin-dropdown.png")
