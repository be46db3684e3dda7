"""One writer per folder: exclusive lock files for the folders a long job writes.

A token store being extracted, a training run folder and a latents output folder are each
written by one job at a time. The job holds ``<parent>/.<folder name>.<tag>lock``, a small
file beside the folder (so the folder's own files stay exactly those of the artifact) that:

* is locked with ``fcntl.flock`` for as long as the job runs: the kernel releases the lock when
  the process dies, however it dies (``SIGKILL`` included), so a lock is never left held by a
  dead process;
* says who holds it (pid, host, start time, command line) so that a second job is refused with a
  message naming the folder and the holder (:class:`FolderLocked`);
* is removed when the job ends. A file left by a killed job is *stale*: the next job finds it
  unlocked, says so in the log and takes it over.

Where a file system has no ``flock`` (some network file systems), the holder's pid is checked
instead when it ran on this host; a lock of another host is then only taken over by deleting
the file by hand (the message says so).

Ranks of one distributed extraction write disjoint shards of one store: each holds its own lock
(``tag = "rank<r>of<w>."``), see :func:`cytosae.store.layout.store_lock`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

log = logging.getLogger(__name__)

__all__ = [
    "FolderLock",
    "FolderLocked",
    "folder_lock",
    "lock_path",
    "read_lock_info",
    "remove_stale_lock",
]

_SUFFIX = "lock"


class FolderLocked(RuntimeError):
    """Another live process holds the lock of a folder (the message names the folder and it)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


def lock_path(folder: str | Path, tag: str = "") -> Path:
    """The lock file of ``folder``: ``<parent>/.<name>.<tag>lock`` (``tag`` ends with a dot)."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.{tag}{_SUFFIX}"


def read_lock_info(path: str | Path) -> dict[str, Any]:
    """The holder recorded in a lock file ({} when empty or unreadable)."""
    try:
        text = Path(path).read_text()
        info = json.loads(text) if text.strip() else {}
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(info: dict[str, Any]) -> str:
    """``pid 123 on host h, started 2025-...: cytosae train ...`` (what is known of it)."""
    if not info:
        return "an unknown process"
    parts = [f"pid {info.get('pid', '?')} on host {info.get('host', '?')}"]
    if info.get("started"):
        parts.append(f"started {info['started']}")
    text = ", ".join(parts)
    if info.get("command"):
        text += f": {info['command']}"
    return text


def _my_info(what: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[
            :300
        ],
        "what": what,
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


#: locks this process holds: path -> [fd, count, thread id] (re-entrant within one thread)
_HELD: dict[Path, list[int]] = {}
_HELD_GUARD = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child holds none of its parent's locks (it must not take them as its own)."""
    global _HELD_GUARD
    _HELD.clear()
    _HELD_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class FolderLock:
    """An exclusive lock on ``folder`` (see the module docstring); a context manager.

    Args:
        folder: the folder to be written (need not exist; its parent is created).
        what: what the folder is, for messages (``"training run folder"``).
        tag: distinguishes several locks of one folder (ranks); ends with a dot.
    """

    def __init__(self, folder: str | Path, what: str = "folder", tag: str = "") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = lock_path(folder, tag)
        self._fd: int | None = None

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> Self:
        """Take the lock or raise :class:`FolderLocked`; a stale lock is taken over (logged).

        Raises:
            FolderLocked: another live process holds it.
            cytosae.atomic.WriteError: the lock file cannot be written (e.g. a full disk).
        """
        try:
            return self._acquire()
        except OSError as exc:
            from cytosae.atomic import WriteError, free_space

            if isinstance(exc, WriteError):
                raise
            raise WriteError(
                exc.errno or errno.EIO,
                f"could not write the lock file {self.path} of {self.folder}: "
                f"{exc.strerror or exc} ({free_space(self.path.parent)})",
            ) from exc

    def _acquire(self) -> Self:
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is not None:
                if held[2] != threading.get_ident():
                    raise self._locked(read_lock_info(self.path))
                held[1] += 1
                self._fd = held[0]
                return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                ok = self._flock(fd)
                if not ok:
                    raise self._locked(read_lock_info(self.path))
                if not self._same_file(fd):  # removed by its holder meanwhile: start again
                    os.close(fd)
                    continue
                old = self._read(fd)
                if old:
                    log.warning(
                        "taking over the stale lock %s of the %s %s: it was held by %s, which "
                        "is gone (killed or crashed); its unfinished work is resumed",
                        self.path,
                        self.what,
                        self.folder,
                        describe_holder(old),
                    )
                data = json.dumps(_my_info(self.what), sort_keys=True).encode() + b"\n"
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            with _HELD_GUARD:
                _HELD[self.path] = [fd, 1, threading.get_ident()]
            return self
        raise FolderLocked(f"could not lock {self.folder}: {self.path} keeps changing")

    def release(self) -> None:
        """Release the lock (and remove the lock file when this was the outermost hold)."""
        if self._fd is None:
            return
        with _HELD_GUARD:
            held = _HELD.get(self.path)
            if held is not None and held[0] == self._fd:
                held[1] -= 1
                if held[1] > 0:
                    self._fd = None
                    return
                del _HELD[self.path]
        fd, self._fd = self._fd, None
        try:
            if self._same_file(fd):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # releases the flock

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ helpers
    def _flock(self, fd: int) -> bool:
        """True when this process now holds the lock on ``fd``."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                raise
        # no flock on this file system: judge the recorded holder by its pid
        info = self._read(fd)
        if not info:
            return True
        if info.get("host") != socket.gethostname():
            return False
        pid = int(info.get("pid", 0) or 0)
        return not (pid and pid != os.getpid() and _pid_alive(pid))

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        fst = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            size = os.fstat(fd).st_size
            text = os.pread(fd, max(size, 1), 0).decode(errors="replace")
            info = json.loads(text) if text.strip() else {}
            return info if isinstance(info, dict) else {"raw": text[:200]}
        except (OSError, ValueError):
            return {"raw": "unreadable"}

    def locked_error(self) -> FolderLocked:
        """The :class:`FolderLocked` error naming this lock's current holder."""
        return self._locked(read_lock_info(self.path))

    def _locked(self, info: dict[str, Any]) -> FolderLocked:
        return FolderLocked(
            f"the {self.what} {self.folder} is being written by another process "
            f"({describe_holder(info)}; lock file {self.path}). Wait for it to finish or use "
            "another folder; if that process is gone the lock is released by itself (where the "
            "file system has no locks, delete the lock file once it is gone)",
            info,
        )

    def is_held_elsewhere(self) -> bool:
        """True when another live process holds this lock (tries it without keeping it)."""
        if not self.path.exists():
            return False
        with _HELD_GUARD:
            if self.path in _HELD:
                return False
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            return not self._flock(fd)
        finally:
            os.close(fd)  # drops a lock taken only to test


def remove_stale_lock(folder: str | Path, tag: str = "") -> bool:
    """Remove the lock file of ``folder`` if a dead process left it (a job killed after it
    finished its work); a live holder's lock is left alone. Returns True when one was removed."""
    path = lock_path(folder, tag)
    if not path.exists():
        return False
    with _HELD_GUARD:
        if path in _HELD:
            return False
    lock = FolderLock(folder, tag=tag)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not lock._flock(fd) or not lock._same_file(fd):
            return False
        log.info("removing the stale lock %s (%s is gone)", path, describe_holder(lock._read(fd)))
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


@contextmanager
def folder_lock(folder: str | Path, what: str = "folder", tag: str = "") -> Iterator[FolderLock]:
    """``with folder_lock(out, "training run folder"): ...`` (see :class:`FolderLock`)."""
    lock = FolderLock(folder, what, tag).acquire()
    try:
        yield lock
    finally:
        lock.release()
