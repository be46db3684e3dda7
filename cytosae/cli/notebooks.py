"""``cytosae notebooks``: run the figure notebooks headlessly with papermill, in order."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cytosae.cli.fields import add_set_argument, parse_sets


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="smoke | default | paper")
    add_set_argument(parser)
    parser.add_argument(
        "--notebooks", type=Path, default=None, help="folder (default: ./notebooks)"
    )
    parser.add_argument(
        "--only", nargs="*", default=(), help="run notebooks whose name contains these"
    )
    parser.add_argument(
        "--inplace",
        action="store_true",
        help="write outputs back into the notebooks (maintainers; default profile)",
    )
    parser.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="extra notebook parameter (JSON value)",
    )
    parser.add_argument(
        "--strip",
        nargs="+",
        type=Path,
        metavar="NOTEBOOK",
        help="only drop volatile metadata from these notebooks (the pre-commit hook)",
    )
    parser.add_argument(
        "--check-clean",
        action="store_true",
        help="only check that the notebooks carry no volatile metadata and match their .py pairs",
    )


def run(args: argparse.Namespace) -> int:
    from cytosae.workflow.runner import (
        NotebookFailed,
        check_clean,
        default_notebook_dir,
        run_notebooks,
        strip_volatile,
    )

    folder = args.notebooks or default_notebook_dir()
    if args.strip:
        for path in args.strip:
            if path.suffix == ".ipynb" and strip_volatile(path):
                print(f"stripped {path}")
        return 0
    if args.check_clean:
        problems = check_clean(folder)
        for line in problems:
            print(line)
        return 1 if problems else 0
    extra = {}
    for k, v in args.param:
        try:
            extra[k] = json.loads(v)
        except json.JSONDecodeError:
            extra[k] = v
    if args.overrides:
        extra["overrides"] = parse_sets(args.overrides)
    from cytosae.workflow.pipeline import Pipeline

    # fail before the first kernel starts: an unknown --set key, a pretrained SAE that is
    # missing, not an SAE or of the wrong width (the constructor computes no stage)
    Pipeline(args.profile, overrides=extra.get("overrides"), progress=False)
    t0 = time.perf_counter()
    try:
        times = run_notebooks(
            folder, profile=args.profile, select=args.only, inplace=args.inplace, extra=extra
        )
    except NotebookFailed as exc:
        print(f"FAILED: {exc}")
        return 1
    for name, sec in times.items():
        print(f"{name:40s} {sec:7.1f} s")
    print(f"{len(times)} notebooks in {time.perf_counter() - t0:.0f} s")
    return 0
