"""``cytosae check-data``: read a data folder before a long run and report what would break it.

See :mod:`cytosae.data.check` for what is checked and which findings are problems (exit 1) and
which are warnings (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from cytosae.data.adapters import DATASET_KINDS
from cytosae.data.check import (
    DataFolderReport,
    DatasetReport,
    DiskEstimate,
    check_data_folder,
    check_dataset,
    human_bytes,
)

#: unreadable files (and other lists) printed before "... N more"
SHOWN = 10


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``cytosae check-data``."""
    parser.add_argument(
        "--dataset",
        action="append",
        choices=DATASET_KINDS,
        metavar="KIND",
        help=f"one of {', '.join(DATASET_KINDS)}; with --root: the layout of that folder; with --data (repeatable): check only these "
        "of the five, and report each one absent as a problem",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help="one dataset's root (csv: the CSV file)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="a data folder holding the five datasets at their usual roots (default $CYTOSAE_DATA)",
    )
    parser.add_argument(
        "--arch",
        default="dinobloom-b",
        metavar="ARCH",
        help="backbone whose token width sizes the token store: dinobloom-s|b|l|g "
        "(default: dinobloom-b)",
    )
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        metavar="DIR",
        help="cache root (default $CYTOSAE_RUNS or <repo>/runs)",
    )
    parser.add_argument(
        "--no-decode",
        action="store_true",
        help="open image headers only (fast; truncated image data goes unnoticed)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="decode processes (default: cores, at most 8)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="the run will be strict: any unreadable image is a problem",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _lines(label: str, rows: list[str]) -> list[str]:
    """``label`` in a 12-wide column before the first row, blanks before the others."""
    return [f"  {label if i == 0 else '':<12}{row}" for i, row in enumerate(rows or ["none"])]


def _first(items: list[str]) -> list[str]:
    more = [f"... {len(items) - SHOWN} more"] if len(items) > SHOWN else []
    return items[:SHOWN] + more


def _table(rows: list[tuple[str, int | None, int | None]], head: tuple[str, str, str]) -> list[str]:
    width = max(len(head[0]), *(len(r[0]) for r in rows))
    return [f"{head[0]:<{width}}  {head[1]:>9}  {head[2]:>9}"] + [
        f"{name:<{width}}  {_n(found):>9}  {_n(published):>9}" for name, found, published in rows
    ]


def format_dataset(r: DatasetReport) -> str:
    """One dataset's block of the table."""
    head = f"== {r.dataset}: {r.root}"
    if not r.present:
        return "\n".join([head, *_lines("absent", [*r.problems] or ["not in this data folder"])])
    out = [head]
    approx = " (approximate)" if r.published_approximate else ""
    if r.published is not None:
        out += _lines("images", [f"{r.n_images:,} found; published {r.published:,}{approx}"])
    else:
        out += _lines("images", [f"{r.n_images:,} found"])
    if r.classes:
        expected = len(r.expected_classes)
        level = "group folders" if r.class_level == "folder" else "classes"
        if expected:
            summary = (
                f"{expected - len(r.missing_classes)} of {expected} expected {level} found; "
                f"missing: {', '.join(r.missing_classes) or '-'}; "
                f"unexpected: {', '.join(r.unexpected_classes) or '-'}"
            )
        else:
            summary = f"{len(r.classes)} {level} (none published to compare with)"
        approx = " (approximate)" if r.class_counts_approximate else ""
        rows = [(c.name, c.found, c.published) for c in r.classes]
        out += _lines("classes", [summary, *_table(rows, ("class", "found", "published" + approx))])
    if r.class_level == "folder":
        out += _lines("labels", [", ".join(f"{k} {v:,}" for k, v in r.labels.items())])
    if r.n_images:
        out += _lines("sizes", [f"{k}: {v:,}" for k, v in r.sizes.items()])
        how = "fully decoded" if r.decoded else "headers only, not decoded"
        bad = [f"{f.path}: {f.reason}" for f in r.unreadable]
        out += _lines("unreadable", [f"{len(bad):,} of {r.n_images:,} ({how})", *_first(bad)])
    if r.refused:
        out += _lines("refused", _first([f"{f.path}: {f.reason}" for f in r.refused]))
    if r.hehr is not None:
        h = r.hehr
        rows = [(k, v, h.published_patients.get(k)) for k, v in h.patients.items()]
        out += _lines("patients", _table(rows, ("bag label", "found", "published")))
        out += _lines(
            "cohort",
            [
                f"metadata: {h.metadata or 'none'}",
                f"patient folders without images: {len(h.empty_patients)}",
                *(f"  {x}" for x in _first(list(h.empty_patients))),
                f"metadata.csv rows without a folder: {len(h.rows_without_folder)}",
                *(f"  {x}" for x in _first(list(h.rows_without_folder))),
                f"folders not in metadata.csv: {len(h.folders_not_in_metadata)}",
                *(f"  {x}" for x in _first(list(h.folders_not_in_metadata))),
            ],
        )
    if r.disk is not None:
        out += _lines("disk", [_disk_line(r.disk)])
    out += _lines("PROBLEMS", list(r.problems))
    out += _lines("warnings", list(r.warnings))
    return "\n".join(out)


def _disk_line(d: DiskEstimate, what: str = "token store") -> str:
    share = f"{d.fraction:.2%}" if d.fraction is not None else "all"
    return (
        f"{human_bytes(d.bytes_needed)} {what} ({d.n_images:,} x {d.n_tokens} x {d.d_model} "
        f"float16, {d.arch}) = {share} of {human_bytes(d.bytes_free)} free under {d.runs_root}"
    )


def format_report(report: DatasetReport | DataFolderReport) -> str:
    """The whole table: one dataset's block, or every dataset's and the folder's total."""
    if not isinstance(report, DataFolderReport):
        blocks = [format_dataset(report)]
        problems, warnings = len(report.problems), len(report.warnings)
    else:
        blocks = [format_dataset(r) for r in report.datasets]
        present = [r for r in report.datasets if r.present]
        total = [f"== all: {report.data}"]
        total += _lines(
            "datasets",
            [
                f"{len(present)} of {len(report.datasets)} present, "
                f"{sum(r.n_images for r in present):,} images; absent: "
                + (", ".join(r.dataset for r in report.datasets if not r.present) or "-")
            ],
        )
        if report.disk is not None:
            total += _lines("disk", [_disk_line(report.disk, "token stores")])
        total += _lines("PROBLEMS", list(report.problems))
        total += _lines("warnings", list(report.warnings))
        blocks.append("\n".join(total))
        problems = len(report.problems) + sum(len(r.problems) for r in report.datasets)
        warnings = len(report.warnings) + sum(len(r.warnings) for r in report.datasets)
    verdict = f"check-data: {problems} problem(s), {warnings} warning(s)"
    return "\n\n".join([*blocks, verdict + (" -> exit 1" if problems else "")])


def run(args: argparse.Namespace) -> int:
    """Run ``cytosae check-data``; 1 when a problem was found, else 0."""
    common = {
        "arch": args.arch,
        "runs_root": args.runs,
        "decode": not args.no_decode,
        "workers": args.workers,
        "strict": args.strict,
        "progress": not args.no_progress,
    }
    if args.root is not None:
        if args.data is not None:
            raise ValueError("give --root (one dataset) or --data (a data folder), not both")
        if not args.dataset or len(args.dataset) != 1:
            raise ValueError("--root needs exactly one --dataset KIND")
        report = check_dataset(args.dataset[0], args.root, **common)
    else:
        data = args.data or os.environ.get("CYTOSAE_DATA")
        if not data:
            raise ValueError(
                "no data folder: pass --data DIR or set CYTOSAE_DATA "
                "(or check one folder with --dataset KIND --root DIR)"
            )
        report = check_data_folder(data, datasets=args.dataset, **common)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.ok else 1
