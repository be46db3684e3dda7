"""``cytosae synth``: write the five synthetic datasets (the embedded default) under a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from cytosae.cli.fields import add_config_arguments, config_from_args
from cytosae.synth.config import SynthConfig
from cytosae.synth.layouts import write_all

_FIELDS = ("seed", "datasets")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae synth``."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--profile",
        choices=("smoke", "default"),
        default="default",
        help="sizes: 'smoke' (a handful per dataset) or 'default' (the embedded default)",
    )
    add_config_arguments(parser, SynthConfig, only=_FIELDS)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Write the datasets; prints dataset -> root.  Returns the exit status."""
    cfg = config_from_args(SynthConfig, args, _FIELDS, base=SynthConfig.for_profile(args.profile))
    roots = write_all(args.out, cfg, progress=not args.no_progress)
    for name, root in roots.items():
        print(f"{name}\t{root}")
    return 0
