"""``cytosae train``: train a sparse autoencoder on a token store (resumes an interrupted run).

``--init PATH`` starts from given weights (the authors' ``.pt`` or a cytosae SAE folder; ``env``:
``$CYTOSAE_SAE``) instead of the random init; ``--n-latents N`` sets any width.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cytosae.cli.fields import add_config_arguments, config_from_args
from cytosae.model.sae import SAEConfig
from cytosae.train import TrainConfig

log = logging.getLogger(__name__)

#: historical short flags, kept beside the generated ones
_SAE_ALIASES = {
    "expansion_factor": ("--expansion",),
    "l1_coefficient": ("--l1",),
    "use_ghost_grads": ("--ghost-grads",),
    "dead_feature_window": ("--dead-window",),
}
_TRAIN_ALIASES = {"lr_warmup_steps": ("--warmup",)}


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae train``."""
    parser.add_argument("--store", required=True, type=Path, help="token store folder")
    parser.add_argument(
        "--out", required=True, type=Path, help="run folder (resumed if it holds a trainer state)"
    )
    parser.add_argument(
        "--init",
        default=None,
        metavar="PATH",
        help="start from these weights: the authors' .pt or a cytosae SAE folder (env: "
        "$CYTOSAE_SAE); without --n-latents/--expansion-factor the width follows the file",
    )
    add_config_arguments(
        parser.add_argument_group("SAE"), SAEConfig, skip=("d_in",), aliases=_SAE_ALIASES
    )
    group = parser.add_argument_group("training")
    add_config_arguments(group, TrainConfig, aliases=_TRAIN_ALIASES)
    group.add_argument(
        "--bf16",
        dest="autocast",
        action="store_const",
        const="bf16",
        help="the same as --autocast bf16 (fast on GPUs; slow on CPUs without AMX)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``cytosae train``; returns the exit status."""
    from cytosae.store.reader import TokenStore
    from cytosae.train import train_sae

    store = TokenStore(args.store)
    width: dict[str, int] = {}
    if args.init is not None and args.n_latents is None and args.expansion_factor is None:
        from cytosae.train.pretrained import sae_config_of

        init_cfg = sae_config_of(args.init)  # the width of the file being continued
        width = {"expansion_factor": init_cfg.expansion_factor, "n_latents": init_cfg.n_latents}
    sae_cfg = config_from_args(SAEConfig, args, d_in=int(store.d_model), **width)
    tcfg = config_from_args(TrainConfig, args)
    res = train_sae(store, sae_cfg, tcfg, args.out, progress=not args.quiet, init=args.init)
    if len(res.history):
        last = res.history.iloc[-1]
        log.info(
            "done: %s  mse=%.4g  l0=%.1f  ev=%.3f  dead=%.3f",
            res.path,
            last["mse"],
            last["l0"],
            last["explained_variance"],
            last["dead_frac"],
        )
    return 0
