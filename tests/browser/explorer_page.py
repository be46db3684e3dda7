"""Driving a latent-explorer widget in a Voila page (Playwright, sync API): a page object.

The explorer is found by CSS classes its widgets carry (``widget.add_class(...)``; see
``standin_explorer.CLASSES``): a root box, an ``IntSlider`` (ipywidgets 8 draws it with
noUiSlider: a focusable ``.noUi-handle`` on a ``.noUi-base`` track), a ``Dropdown`` (a ``<select>``),
a caption (``HTML``/``Label``) and an image: either an ``ipywidgets.Image`` (the ``<img>`` itself
carries the class) or an ``Output`` holding a displayed figure (an ``<img>`` inside it).

Every wait is on the page's own state (a selector, a text, an image's bytes), never a fixed sleep;
a wait that runs out fails with the Voila log tail and what the page logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from browser_harness import RENDER_TIMEOUT_MS, UPDATE_TIMEOUT_MS


class Server(Protocol):
    url: str

    def log_tail(self, lines: int = 60) -> str: ...


@dataclass(frozen=True)
class Selectors:
    root: str = ".cytosae-explorer"
    slider: str = ".cytosae-rank"
    ordering: str = ".cytosae-ordering select"
    caption: str = ".cytosae-caption"
    image: str = "img.cytosae-image, .cytosae-image img"


@dataclass(frozen=True)
class Shown:
    """What the explorer shows: the caption's text and the displayed image."""

    caption: str
    image_src: str
    image_sha256: str
    image_bytes: int
    image_size: tuple[int, int]  # natural width, height: > 0 once the browser decoded it


# a cell's error in a Voila page (its traceback with show_tracebacks, else Voila's notice)
CELL_ERROR = (
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback"),'
    ' :text("There was an error when executing cell")'
)

# the bytes of the displayed <img> as the browser has them (blob: or data: URL), hashed there
_IMAGE_JS = """async (sel) => {
  const el = document.querySelector(sel);
  if (!el || !el.src || !el.complete || el.naturalWidth === 0) return null;
  let buf;
  try {
    buf = await (await fetch(el.src)).arrayBuffer();
  } catch (e) {
    return null; // a blob: URL revoked as the widget swapped in the next image: poll again
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
  return {
    src: el.src,
    sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    bytes: buf.byteLength,
    width: el.naturalWidth,
    height: el.naturalHeight,
  };
}"""


class ExplorerPage:
    def __init__(
        self,
        page: Any,
        server: Server,
        page_log: Any = None,
        selectors: Selectors = Selectors(),
        render_timeout_ms: float = RENDER_TIMEOUT_MS,
        update_timeout_ms: float = UPDATE_TIMEOUT_MS,
    ) -> None:
        self.page, self.server, self.page_log, self.sel = page, server, page_log, selectors
        self.render_timeout_ms, self.update_timeout_ms = render_timeout_ms, update_timeout_ms

    # -- diagnostics ---------------------------------------------------------------------------

    def fail(self, what: str) -> None:
        try:
            body = self.page.locator("body").inner_text(timeout=2_000)[-2_000:]
        except Exception as e:  # noqa: BLE001 - diagnostics only
            body = f"(no page text: {e})"
        log = self.page_log.text() if self.page_log is not None else "(not recorded)"
        pytest.fail(
            f"{what}\n--- page text (end) ---\n{body}\n--- browser log ---\n{log}\n"
            f"--- Voila log (tail) ---\n{self.server.log_tail()}",
            pytrace=False,
        )

    def _wait(self, what: str, step: Callable[[], None]) -> None:
        from playwright.sync_api import Error as PlaywrightError

        try:
            step()
        except (AssertionError, PlaywrightError) as e:
            error = e
        else:
            return
        self.fail(f"{what}: {error}")  # outside the except: no "during handling" chain

    # -- reading -------------------------------------------------------------------------------

    def open(self) -> Shown:
        """Load the page and wait until the explorer shows a caption and a decoded image."""
        from playwright.sync_api import expect

        root = self.page.locator(self.sel.root).first
        error = self.page.locator(CELL_ERROR).first

        def load() -> None:
            # the page has loaded once Voila ran every cell (it streams the page as they run);
            # the widgets then render in the browser, or a failed cell shows its traceback
            self.page.goto(self.server.url, timeout=self.render_timeout_ms)
            expect(root.or_(error)).to_be_visible(timeout=self.update_timeout_ms)

        what = f"the explorer did not render at {self.server.url}"
        self._wait(what, load)
        if not root.is_visible():
            self.fail(f"{what}: a cell failed:\n{error.inner_text()}")

        def widgets() -> None:
            for sel in (self.sel.caption, self.sel.slider):
                expect(self.page.locator(sel).first).to_be_visible(timeout=self.update_timeout_ms)
            expect(self.handle).to_be_visible(timeout=self.update_timeout_ms)

        self._wait(f"{what}: the explorer's widgets are missing", widgets)
        return self.wait_image(lambda shown: True, "the first image never loaded")

    @property
    def handle(self) -> Any:
        return self.page.locator(f"{self.sel.slider} .noUi-handle").first

    @property
    def track(self) -> Any:
        return self.page.locator(f"{self.sel.slider} .noUi-base").first

    def caption(self) -> str:
        return self.page.locator(self.sel.caption).first.inner_text().strip()

    def slider_value(self) -> int:
        return int(float(self.handle.get_attribute("aria-valuenow")))

    def slider_range(self) -> tuple[int, int]:
        h = self.handle
        return int(float(h.get_attribute("aria-valuemin"))), int(
            float(h.get_attribute("aria-valuemax"))
        )

    def shown(self) -> Shown | None:
        """The caption and the image as displayed now; None while no image is decoded."""
        img = self.page.evaluate(_IMAGE_JS, self.sel.image)
        if img is None:
            return None
        return Shown(
            self.caption(),
            img["src"],
            img["sha256"],
            img["bytes"],
            (img["width"], img["height"]),
        )

    def wait_image(self, ok: Callable[[Shown], bool], what: str) -> Shown:
        """Poll what is shown until ``ok`` holds (the image's bytes are read in the page)."""
        deadline = time.monotonic() + self.update_timeout_ms / 1000
        last = None
        while time.monotonic() < deadline:
            last = self.shown()
            if last is not None and ok(last):
                return last
            self.page.wait_for_timeout(100)  # a poll interval, not a wait for something
        self.fail(f"{what} within {self.update_timeout_ms / 1000:.0f} s; last shown: {last}")

    def wait_changed(self, before: Shown, what: str) -> Shown:
        """Wait until both the caption and the image's bytes differ from ``before``."""
        from playwright.sync_api import expect

        self._wait(
            f"{what}: the caption stayed {before.caption!r}",
            lambda: expect(self.page.locator(self.sel.caption).first).not_to_have_text(
                before.caption, timeout=self.update_timeout_ms
            ),
        )
        return self.wait_image(
            lambda s: s.image_sha256 != before.image_sha256 and s.caption != before.caption,
            f"{what}: the image did not change (sha256 {before.image_sha256[:12]})",
        )

    # -- acting --------------------------------------------------------------------------------

    def press_on_slider(self, key: str) -> None:
        """Focus the slider's handle (as Tab would) and press ``key`` there."""
        from playwright.sync_api import expect

        self.handle.focus()
        self._wait("the slider handle took no focus", lambda: expect(self.handle).to_be_focused())
        self.page.keyboard.press(key)

    def track_point(self, fraction: float) -> tuple[float, float]:
        box = self.track.bounding_box()
        return box["x"] + fraction * box["width"], box["y"] + box["height"] / 2

    def drag_slider(self, fraction: float) -> None:
        """Drag the handle with the mouse to ``fraction`` (0..1) of the track."""
        hb = self.handle.bounding_box()
        x, y = self.track_point(fraction)
        self.page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(x, y, steps=12)
        self.page.mouse.up()

    def click_track(self, fraction: float) -> None:
        """Click the slider's track at ``fraction`` (0..1): the handle jumps there."""
        x, y = self.track_point(fraction)
        self.page.mouse.click(x, y)

    def select_ordering(self, value: str) -> None:
        self.page.locator(self.sel.ordering).first.select_option(value)

    def screenshot(self, path: Any) -> None:
        self.page.screenshot(path=str(path), full_page=True)
