"""environment.yml must agree with pyproject.toml (conda cannot run here, so we check the text)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


def _env_lines() -> list[str]:
    return [
        ln.split("#")[0].rstrip()
        for ln in (ROOT / "environment.yml").read_text().splitlines()
        if ln.split("#")[0].strip()
    ]


def test_environment_yml_only_python_and_pip_from_conda_forge():
    lines = _env_lines()
    assert "  - conda-forge" in lines
    conda = [
        ln.strip()[2:] for ln in lines if re.match(r"^  - ", ln) and ln.strip() != "- conda-forge"
    ]
    names = [re.split(r"[=<>: ]", c)[0] for c in conda]
    assert names == ["python", "pip", "pip"], conda  # python, pip, and the pip: section


def test_environment_yml_pip_section_installs_this_package_with_real_extras():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(py["project"]["optional-dependencies"])
    pip_lines = [ln.strip()[2:] for ln in _env_lines() if re.match(r"^      - ", ln)]
    assert len(pip_lines) == 1, "everything else must come from pyproject.toml"
    m = re.fullmatch(r"-e \.\[([a-z,]+)\]", pip_lines[0])
    assert m, pip_lines
    asked = set(m.group(1).split(","))
    assert asked <= extras, f"extras {asked - extras} are not in pyproject.toml"
    assert {"notebooks", "tests"} <= asked


def test_python_version_agrees_with_requires_python():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    req = py["project"]["requires-python"]
    conda_py = next(ln for ln in _env_lines() if "python=" in ln).split("=")[1]
    lo = req.removeprefix(">=")
    assert tuple(map(int, conda_py.split("."))) >= tuple(map(int, lo.split(".")))


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)```", quick, flags=re.DOTALL)
    test_cmd = [c.strip() for c in commands if "test" in c]
    assert test_cmd, "README Quick start must show the test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd[-1].splitlines()[-1] in ci


def test_make_install_asks_only_for_extras_that_exist():
    """`make install` installs `-e .[$(EXTRAS)]`; pip only warns about an extra that does not
    exist, so a missing one (CI once lacked `lint`, hence ruff) surfaces much later."""
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(py["project"]["optional-dependencies"])
    make = (ROOT / "Makefile").read_text()
    m = re.search(r"^EXTRAS\s*\?=\s*(\S+)", make, flags=re.MULTILINE)
    assert m, "Makefile has no EXTRAS"
    asked = set(m.group(1).split(","))
    assert asked <= extras, f"Makefile asks for extras {sorted(asked - extras)} not in pyproject"
    assert "ruff" in " ".join(py["project"]["optional-dependencies"]["lint"])
