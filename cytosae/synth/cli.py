"""``cytosae synth``: write the five synthetic datasets (the embedded default) under a folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cytosae.synth.config import SYNTH_DATASETS, SynthConfig
from cytosae.synth.layouts import write_all

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae synth``."""
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--profile", choices=("smoke", "default"), default="default",
                        help="sizes: 'smoke' (a handful per dataset) or 'default' (the embedded default)")
    parser.add_argument("--seed", type=int, default=0, help="seed that fixes every pixel")
    parser.add_argument("--datasets", nargs="+", choices=SYNTH_DATASETS, default=None,
                        help="write only these datasets (default: all five)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_cli(args: argparse.Namespace) -> int:
    """Write the datasets; prints dataset -> root.  Returns the exit status."""
    overrides: dict[str, object] = {"seed": int(args.seed)}
    if getattr(args, "datasets", None):
        overrides["datasets"] = tuple(args.datasets)
    try:
        cfg = SynthConfig.for_profile(args.profile, **overrides)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    roots = write_all(args.out, cfg, progress=not getattr(args, "no_progress", False))
    for name, root in roots.items():
        print(f"{name}\t{root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m cytosae.synth.cli``)."""
    parser = argparse.ArgumentParser(prog="cytosae synth", description=__doc__)
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
