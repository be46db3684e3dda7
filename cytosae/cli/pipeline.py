"""``cytosae pipeline``: compute (or reuse) every cached stage of a profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from cytosae.cli.fields import add_set_argument, parse_sets


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="smoke | default | paper")
    add_set_argument(parser)
    parser.add_argument("--runs", type=Path, default=None, help="cache root (default: ./runs)")
    parser.add_argument("--show", action="store_true", help="print the profile as JSON and exit")


def run(args: argparse.Namespace) -> int:
    from cytosae.workflow.pipeline import Pipeline

    pipe = Pipeline(args.profile, runs=args.runs, overrides=parse_sets(args.overrides))
    if args.show:
        print(pipe.profile.to_json())
        return 0
    print(pipe.banner())
    pipe.ensure_all()
    print(f"all stages of profile {pipe.profile.name!r} are cached under {pipe.runs}")
    return 0
