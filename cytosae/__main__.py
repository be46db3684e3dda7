"""``python -m cytosae`` entry point."""

from cytosae.cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
