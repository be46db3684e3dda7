"""The ``cytosae`` command line (also ``python -m cytosae``).

Each sub-command lives in the module that owns its concept; that module defines
``add_arguments(parser)`` and ``run_cli(args) -> int``. Modules are imported lazily so
``cytosae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cytosae import __version__

#: sub-command -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("cytosae.synth.cli", "write the five synthetic datasets (the embedded default)"),
    "extract": ("cytosae.extract", "extract DinoBloom tokens of a dataset into a token store"),
    "train": ("cytosae.train", "train a sparse autoencoder on a token store"),
    "latents": ("cytosae.latents", "one encode pass: latent statistics, patch counts, reference images"),
    "pipeline": ("cytosae.pipeline", "compute (or reuse) every cached stage of a profile"),
    "notebooks": ("cytosae.runner", "run the figure notebooks headlessly with papermill"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cytosae",
        description="CytoSAE companion: sparse autoencoders on DinoBloom tokens for haematology.",
    )
    parser.add_argument("--version", action="version", version=f"cytosae {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # pragma: no cover - only when a module is broken
            p.set_defaults(_import_error=f"{module}: {exc}")
            continue
        mod.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    err = getattr(args, "_import_error", None)
    if err:
        parser.error(f"sub-command {args.command!r} is unavailable: {err}")
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run_cli(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        logging.getLogger("cytosae").debug("error", exc_info=True)
        print(f"cytosae {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
