"""Committed notebooks stay clean (no volatile metadata, .py pairs in sync); kernels are pinned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cytosae.workflow.determinism import PINNED_CPU_ENV, pin_cpu_kernels
from cytosae.workflow.runner import check_clean, stripped, undeclared_assignments

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_committed_notebooks_are_clean():
    assert check_clean(NOTEBOOKS) == []


def test_check_clean_finds_volatile_metadata_and_a_stale_pair(tmp_path):
    src = sorted(NOTEBOOKS.glob("0[0-9]_*.ipynb"))[0]
    for p in (src, src.with_suffix(".py")):
        shutil.copy(p, tmp_path / p.name)
    nb_path = tmp_path / src.name
    nb = json.loads(nb_path.read_text())
    nb["metadata"]["papermill"] = {"duration": 1.0}
    nb["cells"][0]["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01"}
    nb_path.write_text(json.dumps(nb, indent=1, sort_keys=True) + "\n")
    py = nb_path.with_suffix(".py")
    py.write_text(py.read_text() + "\n# %%\nx = 1\n")
    problems = check_clean(tmp_path)
    assert len(problems) == 2
    assert "volatile metadata" in problems[0] and "out of sync" in problems[1]
    clean = stripped(nb)
    assert "papermill" not in clean["metadata"] and "execution" not in clean["cells"][0]["metadata"]
    assert clean["cells"][1].get("outputs") == nb["cells"][1].get("outputs")  # outputs are kept


def test_pin_cpu_kernels_sets_only_what_is_unset():
    env = {"MKL_CBWR": "COMPATIBLE"}
    got = pin_cpu_kernels(env)
    assert got["MKL_CBWR"] == "COMPATIBLE"  # a user's own choice wins
    assert {k: v for k, v in got.items() if k != "MKL_CBWR"} == {
        k: v for k, v in PINNED_CPU_ENV.items() if k != "MKL_CBWR"
    }


def test_a_parameter_papermill_cannot_parse_is_a_problem(tmp_path):
    src = NOTEBOOKS / "09_ablations.ipynb"
    nb = json.loads(src.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    cell["source"] = ["profile: str = 'default'\n", "axes: list = []  # axes ([] = all)\n"]
    path = tmp_path / src.name
    path.write_text(json.dumps(nb))
    assert undeclared_assignments(path) == ["axes"]  # papermill would drop it with a warning
    cell["source"][1] = "axes: list = []  # axes (empty for all)\n"
    path.write_text(json.dumps(nb))
    assert undeclared_assignments(path) == []
    assert all(undeclared_assignments(p) == [] for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
