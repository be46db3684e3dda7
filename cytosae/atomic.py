"""Atomic writes: a file or a folder appears complete or not at all.

Every artifact of the pipeline (token shards, checkpoints, trainer states, synthetic datasets,
cache folders) is written through these, so a killed run never leaves something that looks done.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` for a writer that wants a file name.

    On success the file written there is flushed to disk and renamed onto ``path``; on an
    exception it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """:func:`atomic_path` for a writer that wants a binary file object."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder, then rename."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode())


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder of ``final``; on success it replaces ``final``.

    On an exception the temporary folder is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final folder is an ordinary one
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


#: The one completion marker of every artifact folder (token store, SAE run, cached stage):
#: a file of this name, written atomically and last, holding a small JSON object. A folder
#: without it is unfinished, whatever else it holds (``docs/token-store.md``, "Completion").
COMPLETE = "COMPLETE"


def mark_complete(folder: str | Path, info: dict[str, Any] | None = None) -> None:
    """Write ``folder/COMPLETE`` (atomically, last) with ``info`` as JSON."""
    atomic_write_text(Path(folder) / COMPLETE, json.dumps(info or {}, sort_keys=True) + "\n")


def is_complete(folder: str | Path) -> bool:
    """True when ``folder`` holds the completion marker."""
    return (Path(folder) / COMPLETE).is_file()
