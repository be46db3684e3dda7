"""The browser tier: a notebook served by Voila on 127.0.0.1, driven by Debian's Chromium.

Run it on its own (``tests/conftest.py`` keeps it out of ``pytest tests``)::

    .ci/install-browser                # Debian's chromium + the pinned voila/playwright
    .venv/bin/python -m pytest tests/browser

Playwright drives ``/usr/bin/chromium`` (``CYTOSAE_CHROMIUM`` overrides) through
``executable_path``; Playwright's own browser download is never used. A missing browser, voila or
playwright is a test ERROR, so that CI really runs the tier; ``CYTOSAE_BROWSER_TESTS=skip-if-missing``
turns that into a skip for machines that cannot have them.

Screenshots and the Voila logs go to ``$CYTOSAE_ARTIFACTS`` (default ``tests/browser/artifacts/``,
git-ignored); a failing test also leaves a screenshot of the page there.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HERE,
    LOOPBACK,
    SKIP_ENV,
    WIDGET_EXTENSIONS,
    PageLog,
    VoilaServer,
    missing_requirements,
    shutdown_page_kernel,
    start_voila,
    write_notebook,
)

# -- requirements --------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def browser_requirements() -> None:
    """Every test of the tier needs chromium, playwright and voila: an ERROR (or a skip) if not."""
    mode = os.environ.get(SKIP_ENV, "require")
    if mode not in ("require", "skip-if-missing"):
        pytest.fail(f"{SKIP_ENV}={mode!r}: expected 'require' or 'skip-if-missing'", pytrace=False)
    missing = missing_requirements()
    if not missing:
        return
    msg = "browser tier: missing " + "; ".join(missing) + " (run .ci/install-browser)"
    if mode == "skip-if-missing":
        pytest.skip(msg)
    pytest.fail(msg + f"; {SKIP_ENV}=skip-if-missing skips the tier instead", pytrace=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("CYTOSAE_ARTIFACTS") or HERE / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- Voila ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def voila(
    tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Callable[[Path], VoilaServer]]:
    """``voila(notebook)``: a Voila server for that notebook, one per notebook for the session.

    ``extensions``: the lab extensions the page may load (default: the widget managers only);
    ``env``: extra environment for Voila and its kernels. The log goes to
    ``<artifacts>/voila-<notebook>.log``.
    """
    servers: dict[Any, VoilaServer] = {}
    env_root = tmp_path_factory.mktemp("jupyter-env")

    def get(
        notebook: Path,
        extensions: tuple[str, ...] = WIDGET_EXTENSIONS,
        env: dict[str, str] | None = None,
    ) -> VoilaServer:
        path = Path(notebook).resolve()
        key = (path, tuple(extensions), tuple(sorted((env or {}).items())))
        if key not in servers:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)
            log_path = artifacts_dir / f"voila-{name}.log"
            log_path.write_text("")
            servers[key] = start_voila(path, log_path, env_root, tuple(extensions), env)
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


# -- the notebook under test ---------------------------------------------------------------------

STANDIN_SOURCE = """\
from standin_explorer import StandinExplorer

explorer = StandinExplorer()
explorer.widget
"""


@pytest.fixture(scope="session")
def standin_notebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in explorer notebook, written into a temporary folder (nothing committed)."""
    folder = tmp_path_factory.mktemp("standin")
    shutil.copy(HERE / "standin_explorer.py", folder / "standin_explorer.py")
    return write_notebook(
        folder / "standin_explorer.ipynb", "# Stand-in latent explorer", STANDIN_SOURCE
    )


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(
    browser: Any, page_log: PageLog, request: pytest.FixtureRequest, artifacts_dir: Path
) -> Iterator[Any]:
    """A fresh page (own context) that may reach only 127.0.0.1; screenshot kept on failure."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    log = page_log

    def route(r: Any) -> None:
        url = r.request.url
        if LOOPBACK.match(url) or url.startswith(("data:", "blob:")):
            r.continue_()
        else:  # e.g. a CDN: fail it at once instead of waiting on a closed network
            log.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda m: log.console.append(f"console.{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: log.errors.append(str(e)))
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
            try:
                pg.screenshot(path=str(artifacts_dir / f"FAILED-{name}.png"), full_page=True)
            except Exception as e:  # noqa: BLE001 - a broken page must not hide the failure
                print(f"no failure screenshot: {e}")
        shutdown_page_kernel(pg)  # else it idles until Voila stops
        context.close()
