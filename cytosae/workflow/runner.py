"""Run the figure notebooks headlessly with papermill, in order, and say where one failed.

``cytosae notebooks --profile default`` executes ``notebooks/NN_*.ipynb`` one by one with the
notebook folder as working directory, writing executed copies to ``runs/executed/`` (or back
into the notebooks with ``--inplace``, which is how the committed outputs are refreshed).
Unknown parameters are an error, not papermill's warning.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cytosae.paths import repo_root, runs_root
from cytosae.workflow.determinism import pin_cpu_kernels

log = logging.getLogger(__name__)

NOTEBOOK_RE = re.compile(r"^\d\d_.*\.ipynb$")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names the notebook and the cell."""


def default_notebook_dir() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError("not inside a cytosae checkout: pass --notebooks DIR")
    return root / "notebooks"


def list_notebooks(folder: Path, select: Sequence[str] = ()) -> list[Path]:
    """Ordered ``NN_*.ipynb`` notebooks of ``folder``, optionally those whose name contains a selector."""
    nbs = sorted(p for p in Path(folder).iterdir() if NOTEBOOK_RE.match(p.name))
    if select:
        nbs = [p for p in nbs if any(s in p.name for s in select)]
        if not nbs:
            raise FileNotFoundError(f"no notebook in {folder} matches {list(select)}")
    return nbs


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its ``parameters`` cell (papermill's inspection)."""
    import papermill as pm

    pm_log = logging.getLogger("papermill")
    level = pm_log.level
    pm_log.setLevel(logging.WARNING)  # not an "Input Notebook:" line per inspection
    try:
        return dict(pm.inspect_notebook(str(path)))
    finally:
        pm_log.setLevel(level)


_ASSIGNMENT_RE = re.compile(r"^(\w+)\s*(?::[^=]*)?=", re.MULTILINE)


def undeclared_assignments(path: Path) -> list[str]:
    """Names assigned in the ``parameters`` cell that papermill cannot parse as parameters.

    papermill skips a line its pattern does not match (with a warning only), so such a name is
    silently not a parameter: ``-p name value`` would be refused as unknown. A ``[]`` or ``=`` in
    the line's comment is enough to cause it.
    """
    nb = json.loads(Path(path).read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return []
    source = "".join(cells[0]["source"])
    return sorted(set(_ASSIGNMENT_RE.findall(source)) - set(declared_parameters(path)))


def check_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    declared = declared_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"{path.name}: unknown parameter(s) {unknown}; it declares {sorted(declared)}"
        )


def stripped(nb: dict[str, Any]) -> dict[str, Any]:
    """``nb`` without papermill's timings and the kernel's volatile metadata (outputs are kept)."""
    nb = json.loads(json.dumps(nb))
    nb.get("metadata", {}).pop("papermill", None)
    for cell in nb.get("cells", []):
        md = cell.get("metadata", {})
        md.pop("papermill", None)
        md.pop("execution", None)
        if md.get("tags") == []:
            md.pop("tags")
    return nb


def _dump(nb: dict[str, Any]) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def strip_volatile(path: Path) -> bool:
    """Rewrite ``path`` through :func:`stripped` so reruns diff cleanly; True if it changed."""
    text = path.read_text()
    clean = _dump(stripped(json.loads(text)))
    if clean != text:
        path.write_text(clean)
    return clean != text


def check_clean(folder: Path) -> list[str]:
    """Problems of the committed notebooks: volatile metadata, or a ``.py`` pair out of sync.

    Returns:
        One line per problem (empty when clean); ``make lint`` fails on any.
    """
    import jupytext

    problems = []
    for nb_path in list_notebooks(folder):
        text = nb_path.read_text()
        if _dump(stripped(json.loads(text))) != text:
            problems.append(
                f"{nb_path}: volatile metadata (run: cytosae notebooks --strip {nb_path})"
            )
        for name in undeclared_assignments(nb_path):
            problems.append(
                f"{nb_path}: parameter {name!r} is not parsed by papermill (reword its comment)"
            )
        py = nb_path.with_suffix(".py")
        if not py.is_file():
            problems.append(
                f"{nb_path}: no paired {py.name} (run: jupytext --set-formats ipynb,py:percent)"
            )
            continue
        want = jupytext.writes(jupytext.reads(text, fmt="ipynb"), fmt="py:percent")
        if want != py.read_text():
            problems.append(f"{py}: out of sync with {nb_path.name} (run: jupytext --sync {py})")
    return problems


def _same(declared: Mapping[str, Any] | None, value: Any) -> bool:
    if declared is None:
        return False
    try:
        return ast.literal_eval(str(declared.get("default"))) == value
    except (ValueError, SyntaxError):
        return False


def check_profile_parameter(parameters: Mapping[str, Any]) -> None:
    """The ``profile`` parameter must name a profile (a notebook would fail on anything else
    deep inside, e.g. ``'int' object has no attribute 'backbone'`` for ``-p profile 3``)."""
    from cytosae.workflow.profiles import PROFILES

    value = parameters.get("profile")
    if not isinstance(value, str) or value not in PROFILES:
        raise ValueError(
            f"notebook parameter 'profile' must be the name of a profile, one of "
            f"{list(PROFILES)}; got {value!r} ({type(value).__name__}): use --profile NAME"
        )


def run_notebook(path: Path, output: Path, parameters: Mapping[str, Any]) -> float:
    """Execute one notebook; return seconds. Raises :class:`NotebookFailed` naming the cell."""
    import papermill as pm

    check_parameters(path, parameters)
    pin_cpu_kernels()  # the kernel inherits this environment
    defaults = declared_parameters(path)
    # inject only what differs from the notebook's own values, so a default run adds no cell
    inject = {k: v for k, v in parameters.items() if not _same(defaults.get(k), v)}
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(output),
            parameters=inject,
            kernel_name="python3",
            cwd=str(path.parent),
            progress_bar=False,
            log_output=False,
        )
    except pm.PapermillExecutionError as exc:
        raise NotebookFailed(
            f"{path.name}: cell {exc.cell_index} (execution count {exc.exec_count}) raised "
            f"{exc.ename}: {exc.evalue}; the executed notebook is at {output}"
        ) from exc
    return time.perf_counter() - t0


def run_notebooks(
    folder: Path,
    *,
    profile: str = "default",
    select: Sequence[str] = (),
    inplace: bool = False,
    out_dir: Path | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Run notebooks in order; return seconds per notebook."""
    from tqdm.auto import tqdm

    logging.getLogger("papermill").setLevel(logging.WARNING)  # one line per notebook is ours
    params = {"profile": profile, **(extra or {})}
    check_profile_parameter(params)
    if inplace and params["profile"] != "default":
        raise ValueError(
            "--inplace refreshes committed outputs, which come from the 'default' profile"
        )
    nbs = list_notebooks(folder, select)
    for nb in nbs:  # validate everything before running anything
        check_parameters(nb, params)
    out_dir = out_dir or runs_root() / "executed" / params["profile"]
    out_dir.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    for nb in tqdm(nbs, desc="notebooks", unit="nb"):
        output = nb if inplace else out_dir / nb.name
        times[nb.name] = run_notebook(nb, output, params)
        if inplace:
            strip_volatile(nb)
        log.info("%s: %.1f s", nb.name, times[nb.name])
    return times
