"""Stage 3, token store: extraction of backbone tokens into a resumable sharded store, and its reader."""

# One module per concept: layout (the folder's on-disk protocol), loader (decoding), device
# (forward pass and host copy), writer (the shard writer thread), extract (the driver), reader
# (TokenStore). The names below are imported from their owner on first use, so importing one
# submodule (e.g. the reader) does not load the others.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cytosae.store.extract import ExtractConfig, extract_rank, extract_tokens, store_path
    from cytosae.store.layout import finalize_store
    from cytosae.store.reader import IncompleteStoreError, TokenStore

_OWNERS = {
    "ExtractConfig": "cytosae.store.extract",
    "extract_rank": "cytosae.store.extract",
    "extract_tokens": "cytosae.store.extract",
    "store_path": "cytosae.store.extract",
    "finalize_store": "cytosae.store.layout",
    "IncompleteStoreError": "cytosae.store.reader",
    "TokenStore": "cytosae.store.reader",
}

__all__ = [
    "ExtractConfig",
    "IncompleteStoreError",
    "TokenStore",
    "extract_rank",
    "extract_tokens",
    "finalize_store",
    "store_path",
]


def __getattr__(name: str) -> Any:
    if name in _OWNERS:
        return getattr(importlib.import_module(_OWNERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
