from __future__ import annotations

import pytest

from cytosae.pipeline import DONE, cached_dir


def test_cached_dir_builds_once_and_reuses(tmp_path):
    calls = []

    def build(d):
        calls.append(d)
        (d / "x.txt").write_text("42")

    a = cached_dir(tmp_path, "k1", build)
    b = cached_dir(tmp_path, "k1", build)
    assert a == b == tmp_path / "k1"
    assert len(calls) == 1 and (a / DONE).is_file() and (a / "x.txt").read_text() == "42"


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
