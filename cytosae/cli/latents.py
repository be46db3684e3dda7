"""``cytosae latents``: one encode pass of an SAE over a token store -> latent statistics."""

from __future__ import annotations

import argparse
from pathlib import Path

from cytosae.analysis.latents import EncodeConfig
from cytosae.cli.fields import add_config_arguments, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae latents``."""
    parser.add_argument(
        "--sae",
        required=True,
        type=Path,
        help="folder written by cytosae.train.checkpoint.save_sae",
    )
    parser.add_argument("--store", required=True, type=Path, help="token store folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the LatentStats")
    add_config_arguments(parser, EncodeConfig)
    parser.add_argument("--device", default=None, help="where to encode (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from cytosae.analysis.latents import encode_pass
    from cytosae.store.reader import TokenStore
    from cytosae.train.checkpoint import load_sae

    cfg = config_from_args(EncodeConfig, args)
    sae = load_sae(args.sae)
    if args.device:
        sae = sae.to(args.device)
    stats = encode_pass(sae, TokenStore(args.store), **cfg.to_dict())
    stats.save(args.out)
    print(args.out)
    return 0
