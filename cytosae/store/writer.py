"""The background shard writer of extraction: completed shards reach the disk in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cytosae.store.layout import write_shard


class ShardWriter:
    """Writes completed shards on a background thread, in order, so that decoding and the next
    forward overlap the write and its fsync; at most ``depth`` shards wait in memory.

    The first error (including one raised by ``on_written``) stops the writer for good: no later
    shard is written, and the error is raised in the caller at its next :meth:`put` or at
    :meth:`close`.
    """

    def __init__(
        self, folder: Path, on_written: Callable[[int], None] | None, depth: int = 2
    ) -> None:
        self._folder, self._on_written = folder, on_written
        self._queue: queue.Queue[tuple[int, np.ndarray, dict[str, Any]] | None] = queue.Queue(
            maxsize=depth
        )
        self._error: BaseException | None = None
        self._error_raised = False
        self._thread = threading.Thread(target=self._run, name="cytosae-shard-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain without writing after a failure
            k, tokens_NTD, info = item
            try:
                write_shard(self._folder, k, tokens_NTD, info)
                if self._on_written is not None:
                    self._on_written(k)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e

    def _raise(self) -> None:
        """Raise the writer's error in the caller, once."""
        if self._error is not None and not self._error_raised:
            self._error_raised = True
            raise self._error

    def put(self, k: int, tokens_NTD: np.ndarray, info: dict[str, Any]) -> None:
        """Queue shard ``k`` (waits while ``depth`` shards are queued)."""
        self._raise()
        self._queue.put((k, tokens_NTD, info))

    def close(self, *, reraise: bool = True) -> None:
        """Wait until every queued shard is written (or dropped after an error)."""
        self._queue.put(None)
        self._thread.join()
        if reraise:
            self._raise()
