"""Screenshot the latent explorer as a reader sees it: the committed notebook 10 served by Voila on
the ``default`` profile (the README's picture), in Debian's Chromium.

Maintainers run it after ``make figures`` (the default pipeline and its explorer cache must be in
``runs/``; the page only loads them)::

    .ci/install-browser
    .venv/bin/python tests/browser/screenshot_explorer.py figures/latent_explorer_voila.png

It opens the page, waits until the dashboard's images have decoded, steps the slider once with
the keyboard (so the picture shows a latent reached through the widget, not only the opening
one) and writes a PNG of the explorer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser_harness import CHROMIUM, CHROMIUM_ARGS, REPO, PageLog, start_voila  # noqa: E402
from explorer_page import ExplorerPage  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument(
        "--notebook", type=Path, default=REPO / "notebooks" / "10_latent_explorer.ipynb"
    )
    ap.add_argument("--steps", type=int, default=1, help="right-arrow presses on the slider")
    a = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = start_voila(
            a.notebook.resolve(),
            root / "voila.log",
            root,
            env={"CYTOSAE_RUNS": str(REPO / "runs"), "CYTOSAE_FIGURES": str(root / "figures")},
        )
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                page = browser.new_page(viewport={"width": 1440, "height": 2200})
                ex = ExplorerPage(page, server, PageLog())
                shown = ex.open()
                for _ in range(a.steps):
                    before = shown
                    ex.press_on_slider("ArrowRight")
                    shown = ex.wait_changed(before, "the slider's right arrow")
                root_el = page.locator(".cytosae-explorer").first
                root_el.scroll_into_view_if_needed()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.cytosae-explorer img.cytosae-image')]"
                    ".every(i => i.complete && i.naturalWidth > 0)"
                )
                a.out.parent.mkdir(parents=True, exist_ok=True)
                root_el.screenshot(path=str(a.out))
                browser.close()
        finally:
            server.stop()
    print(f"wrote {a.out}: {shown.caption.splitlines()[0] if shown.caption else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
