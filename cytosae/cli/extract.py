"""``cytosae extract``: DinoBloom tokens of one dataset folder into a resumable token store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cytosae.cli.fields import add_config_arguments, config_from_args
from cytosae.data.adapters import DATASET_KINDS
from cytosae.model.backbone import BackboneConfig
from cytosae.store.extract import ExtractConfig

_ALIASES = {
    "num_workers": ("--workers",),
    "num_threads": ("--threads",),
    "wait_timeout_s": ("--wait",),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae extract``."""
    parser.add_argument("--dataset", required=True, choices=DATASET_KINDS, help="dataset layout")
    parser.add_argument("--root", required=True, type=Path, help="dataset root (csv: the CSV file)")
    parser.add_argument(
        "--runs", type=Path, default=None, help="cache root (default $CYTOSAE_RUNS or <repo>/runs)"
    )
    parser.add_argument(
        "--allow-outside-root",
        action="store_true",
        help="follow symlinks and read csv paths that lead outside the dataset root (by default "
        "they are refused and listed in skipped.csv)",
    )
    add_config_arguments(parser.add_argument_group("backbone"), BackboneConfig)
    add_config_arguments(
        parser.add_argument_group("extraction"),
        ExtractConfig,
        aliases=_ALIASES,
        defaults={
            "rank": "$RANK or 0",
            "world_size": "$WORLD_SIZE or 1",
            "wait_timeout_s": "86400 when world size > 1, else 0",
        },
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run ``cytosae extract``; prints the store path (or the folder, for a partial rank)."""
    import torch

    from cytosae.data.adapters import load_manifest
    from cytosae.paths import runs_root
    from cytosae.store.extract import extract_rank, extract_tokens

    if args.rank is None:
        args.rank = int(os.environ.get("RANK", "0"))
    if args.world_size is None:
        args.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.wait_timeout_s is None:
        args.wait_timeout_s = 86400.0 if args.world_size > 1 else 0.0
    device = args.device or "auto"
    if (
        args.world_size > 1
        and device in ("auto", "cuda")
        and torch.cuda.is_available()
        and "LOCAL_RANK" in os.environ
    ):
        args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"  # one GPU per torchrun process
    manifest = load_manifest(args.dataset, args.root, allow_outside_root=args.allow_outside_root)
    bb = config_from_args(BackboneConfig, args)
    cfg = config_from_args(ExtractConfig, args)
    runs = args.runs if args.runs is not None else runs_root()
    progress = not args.no_progress
    if cfg.world_size > 1 and cfg.rank != 0:
        print(extract_rank(manifest, bb, runs, cfg, progress=progress))
        return 0
    store = extract_tokens(manifest, bb, runs, cfg, progress=progress)
    print(store.path)
    weights = (
        "RANDOM-INIT backbone"
        if store.is_random_init
        else "weights " + store.metadata["backbone"]["weights_digest"][:20]
    )
    print(
        f"{store.n_images} images x {store.n_tokens} tokens x {store.d_model} ({weights}), "
        f"{store.metadata['n_skipped']} skipped"
    )
    _print_skipped(store)
    return 0


def _print_skipped(store, limit: int = 10) -> None:
    """The first ``limit`` skipped files and their reasons (all are in ``skipped.csv``)."""
    sk = store.skipped
    for path, reason in zip(sk["path"][:limit], sk["reason"][:limit]):
        print(f"  skipped {path}: {reason}")
    if len(sk) > limit:
        print(f"  ... and {len(sk) - limit} more")
    if len(sk):
        print(f"  (all listed in {store.path / 'skipped.csv'})")
