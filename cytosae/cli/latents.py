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
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="output folder for the LatentStats (replaced as a whole when the pass is done)",
    )
    add_config_arguments(parser, EncodeConfig)
    parser.add_argument("--device", default=None, help="where to encode (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from cytosae.analysis.latents import check_save_target, encode_pass
    from cytosae.atomic import remove_stale_temps
    from cytosae.locks import folder_lock
    from cytosae.store.reader import TokenStore
    from cytosae.train.pretrained import load_any_sae, sae_file

    cfg = config_from_args(EncodeConfig, args)
    source = sae_file(args.sae)
    store = TokenStore(args.store)
    sae = load_any_sae(source)
    if sae.cfg.d_in != store.d_model:
        where = source.path if source.kind == "official" else source.path / "cfg.json"
        raise ValueError(
            f"the SAE {where} ({source.describe()}) reads tokens of width d_in={sae.cfg.d_in}, "
            f"but the token store {args.store / 'metadata.json'} holds width "
            f"d_model={store.d_model}: use the SAE trained on this store's backbone and layer "
            "(or the matching store)"
        )
    check_save_target(args.out)
    # one writer per output folder; the result is written whole, then swapped into place
    with folder_lock(args.out, "latents output folder"):
        remove_stale_temps(args.out.absolute().parent, prefix=f"{args.out.absolute().name}.")
        if args.device:
            sae = sae.to(args.device)
        stats = encode_pass(sae, store, **cfg.to_dict())
        stats.save(args.out)
    print(args.out)
    return 0
