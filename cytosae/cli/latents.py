"""``cytosae latents``: one encode pass of an SAE over a token store -> latent statistics.

``--sae`` takes either format: a cytosae SAE folder (``sae.safetensors`` + ``cfg.json``) or the
authors' ``.pt`` (read without executing its pickle); ``env`` reads ``$CYTOSAE_SAE``.
"""

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
        metavar="PATH",
        help="the SAE: the authors' .pt (final_sparse_autoencoder_*.pt), a cytosae SAE folder "
        "(sae.safetensors + cfg.json, e.g. a cytosae train --out folder), or env ($CYTOSAE_SAE)",
    )
    parser.add_argument("--store", required=True, type=Path, help="token store folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the LatentStats")
    add_config_arguments(parser, EncodeConfig)
    parser.add_argument("--device", default=None, help="where to encode (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from cytosae.analysis.latents import encode_pass
    from cytosae.store.reader import TokenStore
    from cytosae.train.pretrained import load_any_sae, sae_file

    cfg = config_from_args(EncodeConfig, args)
    source = sae_file(args.sae)
    store = TokenStore(args.store)
    sae = load_any_sae(source)
    if sae.cfg.d_in != store.d_model:
        raise ValueError(
            f"{source.describe()} takes d_in={sae.cfg.d_in} but the tokens in {args.store} are "
            f"{store.d_model} wide: use a token store of the backbone the SAE was trained on"
        )
    if args.device:
        sae = sae.to(args.device)
    stats = encode_pass(sae, store, **cfg.to_dict())
    stats.save(args.out)
    print(args.out)
    return 0
