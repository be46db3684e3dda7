"""Frozen dataclass configs that round-trip to JSON and hash stably.

Every stage of the pipeline is described by a frozen dataclass deriving from
:class:`JsonConfig`.  ``to_dict``/``from_dict`` round-trip exactly (tuples are
restored from JSON lists, nested configs from dicts), unknown keys are an error
that names the key, and :meth:`JsonConfig.digest` is a stable content hash used to
name cache folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="JsonConfig")


def stable_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace) used for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, JsonConfig):
        return obj.to_dict()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON: {obj!r}")


def digest(*parts: Any, length: int = 12) -> str:
    """Short sha256 hex digest of the canonical JSON of ``parts``."""
    h = hashlib.sha256()
    for p in parts:
        h.update(stable_json(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:length]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Restore a JSON value to the annotated type (tuples, nested configs, Optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if value is None:
        return None
    if isinstance(tp, type) and issubclass(tp, JsonConfig):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object for {tp.__name__}, got {value!r}")
        return tp.from_dict(value)
    if origin is typing.Union or (
        origin is not None and str(origin) == "<class 'types.UnionType'>"
    ):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, where)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        if args:
            return tuple(_coerce(a, v, where) for a, v in zip(args, value))
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True)
class JsonConfig:
    """Base class: frozen, JSON round-trip, validated, hashable by content."""

    schema_version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Override to raise ``ValueError`` naming the offending field."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, JsonConfig):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = [x.to_dict() if isinstance(x, JsonConfig) else x for x in v]
            elif isinstance(v, Path):
                v = str(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        kwargs = {k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        p = Path(path)
        try:
            return cls.from_json(p.read_text())
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as exc:
            raise ValueError(f"could not read {cls.__name__} from {p}: {exc}") from exc

    def digest(self) -> str:
        return digest(type(self).__name__, self.to_dict())

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)
