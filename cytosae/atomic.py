"""Atomic writes: a file or a folder appears complete or not at all.

Every artifact of the pipeline (token shards, checkpoints, trainer states, synthetic datasets,
cache folders, latent statistics) is written through these, so a killed run never leaves
something that looks done, and a failed write (a full disk) leaves the previous version in place.

* Temporary names are ``.<name>.<random>.tmp`` beside the target (:func:`is_temp_name`); a writer
  that holds the folder's lock (:mod:`cytosae.locks`) removes the ones a killed run left behind
  (:func:`remove_stale_temps`).
* Files and folders get the ordinary permissions of the process (``0o666`` / ``0o777`` minus the
  umask), like any file the process opens, never the private ``0o600`` of ``tempfile.mkstemp``.
* A write that fails with an ``OSError`` (no space left, file too large, quota, read-only file
  system) raises :class:`WriteError`, an ``OSError`` with the same ``errno`` whose message names
  the file, the free space left on its file system and that the previous file was kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "COMPLETE",
    "WriteError",
    "atomic_dir",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "free_space",
    "is_complete",
    "is_temp_name",
    "mark_complete",
    "normal_mode",
    "remove_stale_temps",
]

_TMP_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file or folder could not be written; the message names it and the free disk space.

    ``errno`` is the one of the failed system call (e.g. ``ENOSPC``, ``EFBIG``, ``EDQUOT``), so
    code that catches ``OSError`` keeps working.
    """


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def free_space(path: str | Path) -> str:
    """Free space on the file system of ``path`` (or of its nearest existing parent), in words."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return f"{_human(shutil.disk_usage(p).free)} free on the file system of {p}"
    except OSError:  # pragma: no cover - e.g. a vanished mount
        return f"free space on the file system of {p} unknown"


def _write_error(exc: OSError, target: Path, existed: bool, what: str = "file") -> WriteError:
    kept = (
        f"the previous {what} {target} was left as it was"
        if existed
        else f"nothing was written to {target}"
    )
    reason = exc.strerror or str(exc)
    return WriteError(
        exc.errno or _errno.EIO,
        f"could not write {target}: {reason} ({free_space(target.parent)}); {kept}",
    )


def _umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting it back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - not Linux
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def normal_mode(path: str | Path) -> None:
    """Give a file the permissions of any file the process creates (``0o666`` minus the umask):
    some writers (safetensors) create theirs private (``0o600``)."""
    os.chmod(path, 0o666 & ~_umask())


def is_temp_name(name: str) -> bool:
    """True for the temporary names of this module (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(_TMP_SUFFIX)


def _tmp_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(4)}{_TMP_SUFFIX}"


def _new_tmp_file(target: Path) -> Path:
    """Create an empty temporary file beside ``target`` (mode ``0o666`` minus the umask)."""
    for _ in range(100):
        tmp = _tmp_name(target)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 32 random bits
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")  # pragma: no cover


def _new_tmp_dir(target: Path) -> Path:
    """Create an empty temporary folder beside ``target`` (mode ``0o777`` minus the umask)."""
    for _ in range(100):
        tmp = _tmp_name(target)
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:  # pragma: no cover
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {target}")  # pragma: no cover


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` for a writer that wants a file name.

    On success the file written there is flushed to disk and renamed onto ``path``; on an
    exception it is removed and ``path`` is left as it was (an ``OSError`` becomes a
    :class:`WriteError` naming ``path`` and the free space).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    tmp: Path | None = None
    try:
        tmp = _new_tmp_file(path)
        yield tmp
        normal_mode(tmp)  # the writer may have replaced the file with a private one
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, (WriteError, FileNotFoundError)):
            raise _write_error(exc, path, existed) from exc
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


# --------------------------------------------------------------------------- folders

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _load_renameat2() -> Any:
    global _renameat2
    if _renameat2 is None:
        fn: Any = False
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            fn.argtypes += [ctypes.c_uint]
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):  # not Linux / old glibc
            fn = False
        _renameat2 = fn
    return _renameat2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False where the system or the file system does not support it.
    """
    fn = _load_renameat2()
    if not fn:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (_errno.ENOSYS, _errno.EINVAL, _errno.ENOTSUP, _errno.EOPNOTSUPP, _errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put the folder ``tmp`` in the place of ``final`` (which may exist)."""
    if not final.exists():
        os.replace(tmp, final)
        return
    if _exchange(tmp, final):  # final now holds the new folder, tmp the old one
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = _tmp_name(final)  # two renames: the old folder stays complete until the new one is in
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder of ``final``; on success it replaces ``final``.

    The swap is one atomic rename where the system supports it (Linux ``RENAME_EXCHANGE``), so a
    reader sees the old folder or the new one, never a mixture. On an exception the temporary
    folder is removed and ``final`` is left as it was (an ``OSError`` becomes a
    :class:`WriteError` naming ``final`` and the free space).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    existed = final.exists()
    tmp: Path | None = None
    try:
        tmp = _new_tmp_dir(final)
        yield tmp
        _replace_dir(tmp, final)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, (WriteError, FileNotFoundError)):
            raise _write_error(exc, final, existed, "folder") from exc
        raise


def remove_stale_temps(folder: str | Path, *, recursive: bool = False, prefix: str = "") -> int:
    """Remove the temporary files and folders of this module left in ``folder`` by a killed
    writer (only those whose name starts with ``.<prefix>``). Call it only while holding the
    folder's lock: another writer's temporary files look the same. Returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in list(folder.iterdir()):
        if is_temp_name(p.name) and p.name.startswith("." + prefix):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
        elif recursive and p.is_dir() and not p.is_symlink():
            n += remove_stale_temps(p, recursive=True)
    return n


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
