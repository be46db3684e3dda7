from __future__ import annotations

import pytest

from cytosae.atomic import COMPLETE
from cytosae.workflow.pipeline import cached_dir


def test_cached_dir_builds_once_and_reuses(tmp_path):
    calls = []

    def build(d):
        calls.append(d)
        (d / "x.txt").write_text("42")

    a = cached_dir(tmp_path, "k1", build)
    b = cached_dir(tmp_path, "k1", build)
    assert a == b == tmp_path / "k1"
    assert len(calls) == 1 and (a / COMPLETE).is_file() and (a / "x.txt").read_text() == "42"


def test_cached_dir_crash_leaves_nothing_that_looks_complete(tmp_path):
    def boom(d):
        (d / "partial").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        cached_dir(tmp_path, "k2", boom)
    assert not (tmp_path / "k2").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too
    out = cached_dir(tmp_path, "k2", lambda d: (d / "ok").write_text("1"))
    assert (out / "ok").read_text() == "1"


def test_code_digest_changes_with_the_source(tmp_path, monkeypatch):
    import sys

    from cytosae.workflow.pipeline import code_digest

    pkg = tmp_path / "fakepkg_cd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_digest("fakepkg_cd")
    assert code_digest("fakepkg_cd") == before
    (pkg / "a.py").write_text("X = 2\n")
    sys.modules.pop("fakepkg_cd", None)
    assert code_digest("fakepkg_cd") != before
