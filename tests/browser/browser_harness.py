"""The browser tier's machinery: Debian's Chromium's flags, a Voila server, the page's log.

The fixtures in ``conftest.py`` are built from these; a test that needs more than the fixtures
(another notebook, another profile) uses them directly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHROMIUM = os.environ.get("CYTOSAE_CHROMIUM", "/usr/bin/chromium")
# headless, and nothing that talks to the outside: on a closed network Chromium's background
# connections (component updates, sync, QUIC probes) hang or misbehave. Playwright itself adds a
# fresh temporary --user-data-dir on every launch (and refuses one passed in args).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
SKIP_ENV = "CYTOSAE_BROWSER_TESTS"  # "skip-if-missing" | "require" (the default)
VOILA_START_TIMEOUT_S = 90.0  # cold start on a busy 2-core machine takes a few seconds
RENDER_TIMEOUT_MS = 90_000  # page load + kernel start + first cell execution
UPDATE_TIMEOUT_MS = 20_000  # one widget round trip (browser -> kernel -> browser)


def missing_requirements() -> list[str]:
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"chromium ({CHROMIUM} not found; apt-get install chromium)")
    for module in ("playwright", "voila"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {module} (in {sys.executable})")
    return missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_kernel_env(root: Path) -> dict[str, str]:
    """An isolated Jupyter environment for Voila and its kernels; returns the env vars.

    The kernelspec ``python3`` is this interpreter, given by absolute path: a ``python3`` kernel in
    the user's or the system's Jupyter folders (JUPYTER_PATH comes before them) cannot be picked up
    instead. No user configuration is read (JUPYTER_CONFIG_DIR is empty). The kernel imports the
    project from the work tree (PYTHONPATH) and draws with Agg.
    """
    spec_dir = root / "share" / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (cytosae browser tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    for sub in ("config", "runtime", "ipython"):
        (root / sub).mkdir(exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "JUPYTER_PATH": str(root / "share" / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "IPYTHONDIR": str(root / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONPATH": pythonpath,
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class VoilaServer:
    notebook: Path
    port: int
    log_path: Path
    proc: subprocess.Popen
    log_file: Any = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no Voila log: {e})"
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM Voila (it shuts its kernels down), then SIGKILL whatever of its tree is left.

        Kernels run in sessions of their own (jupyter_client starts them so): they are found
        through the process tree, not the process group.
        """
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            tree = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        _, alive = psutil.wait_procs(tree, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        self.log_file.close()


# the lab extensions Voila may load (ipywidgets 8's manager, and Voila's own for it); a notebook
# with widgets from other packages (ipympl, ...) adds theirs through ``voila(nb, extensions=...)``
WIDGET_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8")


def start_voila(
    notebook: Path,
    log_path: Path,
    env_root: Path,
    extensions: tuple[str, ...] = WIDGET_EXTENSIONS,
    env: dict[str, str] | None = None,
) -> VoilaServer:
    """Voila serving ``notebook`` on a free port of 127.0.0.1, once it answers HTTP.

    Its kernels inherit the environment (``env`` added), so e.g. ``CYTOSAE_RUNS`` reaches them.
    """
    env = {**os.environ, **write_kernel_env(env_root), **(env or {})}
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between the probe and Voila's bind
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "voila",
            str(notebook),
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0",
            "--Voila.log_level=INFO",
            # a cell that runs longer than this fails the page instead of hanging the test
            "--VoilaExecutor.timeout=120",
            "--VoilaExecutor.startup_timeout=60",
            "--VoilaConfiguration.show_tracebacks=True",
            # only the widget managers: the venv's other lab extensions (jupytext, notebook) are
            # built for a newer JupyterLab than the one inside Voila and fail to load there
            *(f"--VoilaConfiguration.extension_allowlist={name}" for name in extensions),
            f"--Voila.connection_dir_root={env_root / 'runtime'}",
        ]
        log_file = open(log_path, "a")  # noqa: SIM115 - closed by VoilaServer.stop
        log_file.write(f"$ {' '.join(cmd)}\n")
        log_file.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=notebook.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = VoilaServer(notebook, port, log_path, proc, log_file)
        # any HTTP answer means it listens; a cheap path (GET / would start a kernel)
        probe = f"http://127.0.0.1:{port}/voila/static/"
        deadline = time.monotonic() + VOILA_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last_error = f"Voila exited with code {proc.returncode}"
                break
            try:
                with urllib.request.urlopen(probe, timeout=2):
                    return server
            except urllib.error.HTTPError:
                return server
            except (urllib.error.URLError, OSError) as e:
                last_error = str(e)
            time.sleep(0.2)
        else:
            last_error = f"Voila did not answer {probe} within {VOILA_START_TIMEOUT_S:.0f} s"
        tail = server.log_tail()
        server.stop()
        if "already in use" not in tail.lower():
            break
    pytest.fail(f"{last_error}\n--- Voila log ({log_path}) ---\n{tail}", pytrace=False)


_PAGE_CONFIG_JS = """() => {
  const el = document.getElementById("jupyter-config-data");
  return el ? JSON.parse(el.textContent) : null;
}"""


def shutdown_page_kernel(page: Any) -> int | None:
    """Shut down the kernel of the Voila page ``page`` shows; the HTTP status (None: no kernel).

    Voila 0.5 does this itself from the page's ``beforeunload``, with a beacon that carries no XSRF
    token, which jupyter_server 2 refuses (voila-dashboards/voila#1458): the kernels of closed
    pages would idle until Voila stops. So the request is made here, with a token of our own
    (the double-submit check wants the same value in the ``_xsrf`` cookie and the header).
    """
    try:
        config = page.evaluate(_PAGE_CONFIG_JS)
    except Exception:  # noqa: BLE001 - a page that is gone or not Voila's has no kernel to stop
        return None
    if not config or not config.get("kernelId"):
        return None
    origin = re.match(r"^https?://[^/]+", page.url)
    if origin is None:
        return None
    token = secrets.token_hex(16)
    page.context.add_cookies([{"name": "_xsrf", "value": token, "url": origin.group(0)}])
    base = config.get("baseUrl") or "/"
    response = page.context.request.post(
        f"{origin.group(0)}{base}voila/api/shutdown/{config['kernelId']}",
        headers={"X-XSRFToken": token},
    )
    return response.status


def write_notebook(path: Path, *cells: str) -> Path:
    """A notebook of code cells (a string starting with "# " alone is a markdown title)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell(c)
        if c.startswith("# ") and "\n" not in c
        else nbformat.v4.new_code_cell(c)
        for c in cells
    ]
    nbformat.write(nb, path)
    return path


def parameterized_copy(src: Path, dest_dir: Path, **parameters: Any) -> Path:
    """``src`` with papermill's injected-parameters cell, written to ``dest_dir`` (not run).

    Voila takes no parameters; this is how a committed notebook (``profile="default"``) is served
    on another profile. The kernel's working folder is then ``dest_dir``: pass the project's folders
    through ``voila(..., env={"CYTOSAE_RUNS": ...})``.
    """
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(src)), parameters)
    dest = Path(dest_dir) / Path(src).name
    write_ipynb(nb, str(dest))
    return dest


@dataclass
class PageLog:
    """What the page said: console messages, uncaught errors, and requests that were blocked."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def text(self, lines: int = 40) -> str:
        out = [f"page error: {e}" for e in self.errors] + [f"blocked: {u}" for u in self.blocked]
        return "\n".join(out + self.console[-lines:]) or "(nothing)"


LOOPBACK = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")
