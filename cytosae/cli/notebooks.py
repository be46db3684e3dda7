"""``cytosae notebooks``: run the figure notebooks headlessly with papermill, in order."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", help="smoke | default | paper")
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


def run(args: argparse.Namespace) -> int:
    from cytosae.workflow.runner import NotebookFailed, default_notebook_dir, run_notebooks

    extra = {}
    for k, v in args.param:
        try:
            extra[k] = json.loads(v)
        except json.JSONDecodeError:
            extra[k] = v
    folder = args.notebooks or default_notebook_dir()
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
