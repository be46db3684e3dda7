"""The ``cytosae`` command line (also ``python -m cytosae``).

One module per sub-command in this package; each defines ``configure(parser)`` and
``run(args) -> int`` and keeps domain logic in the library. Flags that set a config field are
generated from the config dataclass (:mod:`cytosae.cli.fields`), so every default lives in the
config. Only the chosen sub-command's module is imported, so ``cytosae --help`` does not load
torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cytosae import __version__

#: sub-command -> (module, one-line help), in the order of the data flow
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("cytosae.cli.synth", "write the five synthetic datasets (the embedded default)"),
    "check-data": (
        "cytosae.cli.check_data",
        "check a data folder before a run: counts, classes, unreadable images, disk",
    ),
    "extract": ("cytosae.cli.extract", "extract DinoBloom tokens of a dataset into a token store"),
    "train": ("cytosae.cli.train", "train a sparse autoencoder on a token store"),
    "latents": (
        "cytosae.cli.latents",
        "one encode pass: latent statistics, patch counts, reference images",
    ),
    "pipeline": ("cytosae.cli.pipeline", "compute (or reuse) every cached stage of a profile"),
    "notebooks": ("cytosae.cli.notebooks", "run the figure notebooks headlessly with papermill"),
}

#: errors a sub-command reports as one line (exit status 2) instead of a traceback (``-vv``
#: logs it): bad values, missing files, locked folders, diverged runs, a full disk (OSError)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError)


def _chosen(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (the first token that is not an option)."""
    for tok in argv:
        if not tok.startswith("-"):
            return tok if tok in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and only its flags are added."""
    parser = argparse.ArgumentParser(
        prog="cytosae",
        description="CytoSAE companion: sparse autoencoders on DinoBloom tokens for haematology.",
    )
    parser.add_argument("--version", action="version", version=f"cytosae {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).configure(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen(argv))
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    mod = importlib.import_module(args._module)
    try:
        return int(mod.run(args) or 0)
    except USER_ERRORS as exc:
        logging.getLogger("cytosae").debug("error", exc_info=True)
        print(f"cytosae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"cytosae {args.command}: interrupted; what was finished is on disk: rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130


__all__ = ["COMMANDS", "build_parser", "main"]
