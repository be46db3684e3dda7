from __future__ import annotations

import json
import types

import nbformat
import pytest

from cytosae.workflow.notebook import (
    UnknownParameterError,
    declared_parameters,
    setup,
    unknown_parameters,
)
from cytosae.workflow.runner import NotebookFailed, check_parameters, run_notebook, strip_volatile


def _nb(path, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for src, tags in cells:
        c = nbformat.v4.new_code_cell(src)
        if tags:
            c.metadata["tags"] = tags
        nb.cells.append(c)
    nbformat.write(nb, str(path))
    return path


def test_unknown_parameters_flags_injected_values_only():
    ns = {"In": [], "profile": "smoke", "np": types, "f": len, "_x": 1, "profle": "typo", "n": 3}
    assert unknown_parameters(ns, ["profile"]) == ["n", "profle"]


def test_setup_reads_the_declared_parameters_from_the_annotations():
    # the parameters cell `profile: str = "default"` / `n: int = 3` annotates its names; papermill
    # injects plain assignments (`profile = "smoke"`, `profle = "typo"`), which annotate nothing
    ns = {
        "__annotations__": {"profile": str, "n": int},
        "In": [],
        "np": types,
        "profile": "smoke",
        "n": 3,
        "profle": "typo",
    }
    assert declared_parameters(ns) == ["n", "profile"]
    with pytest.raises(UnknownParameterError, match=r"\['profle'\].*declares \['n', 'profile'\]"):
        setup(ns)
    with pytest.raises(ValueError, match="must declare the profile"):
        setup({"__annotations__": {"n": int}, "n": 3})


def test_setup_takes_the_profile_from_the_namespace(capsys, monkeypatch):
    import logging

    import matplotlib

    from cytosae.workflow import notebook

    # setup() pins global state for a notebook's kernel; keep it out of the test session
    monkeypatch.setattr(notebook, "pin_determinism", lambda seed: None)
    logger = logging.getLogger("cytosae")
    level = logger.level
    try:
        with matplotlib.rc_context():
            pipe = setup({"__annotations__": {"profile": str}, "profile": "smoke"})
    finally:
        logger.setLevel(level)
    assert pipe.profile.name == "smoke" and "profile=smoke" in capsys.readouterr().out


def test_runner_rejects_unknown_parameter_before_running(tmp_path):
    nb = _nb(tmp_path / "01_x.ipynb", [('profile = "default"', ["parameters"]), ("1/0", None)])
    check_parameters(nb, {"profile": "smoke"})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['oops'\]"):
        check_parameters(nb, {"profile": "smoke", "oops": 1})


@pytest.mark.slow
def test_runner_names_the_failing_notebook_and_cell(tmp_path):
    nb = _nb(
        tmp_path / "01_fail.ipynb",
        [
            ('profile = "default"', ["parameters"]),
            ("x = 1", None),
            ("raise KeyError('boom')", None),
        ],
    )
    with pytest.raises(NotebookFailed, match=r"01_fail.ipynb: cell 2 .*KeyError.*boom"):
        run_notebook(nb, tmp_path / "out.ipynb", {"profile": "default"})
    out = json.loads((tmp_path / "out.ipynb").read_text())
    # default parameters inject no extra cell
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in out["cells"])
    strip_volatile(tmp_path / "out.ipynb")
    assert "papermill" not in json.loads((tmp_path / "out.ipynb").read_text())["metadata"]
