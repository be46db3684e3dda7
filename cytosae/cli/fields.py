"""Command-line flags generated from the fields of a frozen config dataclass.

Each flag's type, choices and help come from the dataclass: its annotation, its ``Literal``
choices and the ``Attributes:`` section of its docstring. Defaults are *not* copied into the
parser (every flag defaults to ``None``, meaning "the config's own default"), so each default
lives in one place, the dataclass, and a command can tell a flag the user gave from one they did
not. ``--help`` still shows the config's default beside each flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "add_config_arguments",
    "add_set_argument",
    "config_from_args",
    "field_docs",
    "flag_name",
    "parse_sets",
]


def flag_name(field: str) -> str:
    """``expansion_factor`` -> ``--expansion-factor``."""
    return "--" + field.replace("_", "-")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its one-paragraph description from the class's Google-style ``Attributes:``."""
    doc = cls.__doc__ or ""
    m = re.search(r"^\s*Attributes:\s*$", doc, re.M)
    if not m:
        return {}
    out: dict[str, str] = {}
    name: str | None = None
    indent: int | None = None
    for line in doc[m.end() :].splitlines():
        if not line.strip():
            continue
        ind = len(line) - len(line.lstrip())
        if indent is None:
            indent = ind
        if ind < indent:
            break
        head = re.match(r"\s*([\w, ]+):\s*(.*)$", line)
        if ind == indent and head:
            names = [n.strip() for n in head.group(1).split(",")]
            for n in names:
                out[n] = head.group(2).strip()
            name = ",".join(names)
        elif name is not None:
            for n in name.split(","):
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _argparse_kwargs(tp: Any, default: Any) -> dict[str, Any]:
    tp = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        return {"type": type(choices[0]), "choices": choices}
    if tp is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": args[0], "nargs": "+"}
        return {"type": args[0] if args else str, "nargs": len(args) or "+"}
    if tp in (int, float, str):
        return {"type": tp}
    raise TypeError(f"no command-line flag for a field of type {tp!r}")


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Iterable[str] = (),
    only: Sequence[str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """Add one flag per field of the dataclass ``cls``; return the field names added.

    Args:
        parser: a parser or argument group.
        cls: a dataclass (typically a :class:`cytosae.config.JsonConfig`).
        skip: fields that get no flag (set by the command itself).
        only: add only these fields (in this order).
        aliases: field -> extra option strings (short or historical names).
        defaults: field -> the default shown in ``--help`` where it is not the dataclass's own
            (e.g. a profile's value); the parsed value stays ``None`` when the flag is not given.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(only) if only is not None else [n for n in fields if n not in set(skip)]
    for name in names:
        f = fields[name]
        if defaults and name in defaults:
            shown = defaults[name]
        elif f.default is not dataclasses.MISSING:
            shown = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            shown = f.default_factory()  # type: ignore[misc]
        else:
            shown = None
        kwargs = _argparse_kwargs(hints[name], shown)
        text = docs.get(name, "")
        if isinstance(shown, tuple):
            shown = " ".join(str(v) for v in shown)
        help_text = f"{text} (default: {shown!s})" if shown is not None else text
        flags = [flag_name(name), *((aliases or {}).get(name, ()))]
        parser.add_argument(
            *flags, dest=name, default=None, help=help_text.replace("%", "%%"), **kwargs
        )
    return names


def config_from_args(
    cls: type,
    args: argparse.Namespace,
    names: Iterable[str] | None = None,
    base: Any = None,
    **fixed: Any,
) -> Any:
    """Build ``cls`` from the flags the user gave (others keep ``base``'s or the class defaults).

    Args:
        cls: the dataclass.
        args: parsed arguments (flags not given are ``None``).
        names: the fields that have flags (default: every field of ``cls``).
        base: an instance whose values stand in for flags not given (default: ``cls``'s defaults).
        **fixed: values set by the command itself.
    """
    field_names = [f.name for f in dataclasses.fields(cls)]
    given = {
        n: getattr(args, n) for n in (names or field_names) if getattr(args, n, None) is not None
    }
    for n, v in list(given.items()):
        if isinstance(v, list):
            given[n] = tuple(v)
    values = {**given, **fixed}
    if base is not None:
        return dataclasses.replace(base, **values)
    return cls(**values)


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): profile overrides, e.g. ``--set sae.expansion_factor=16``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile setting, e.g. sae.expansion_factor=16, train.lr=4e-5, "
        "backbone.layer=5 (repeatable; values are JSON where they parse)",
    )


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """``["a.b=1", ...]`` -> ``{"a.b": "1"}``; a malformed item is an error that names it."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--set expects KEY=VALUE (e.g. sae.expansion_factor=16), got {item!r}"
            )
        out[key.strip()] = value
    return out
