from __future__ import annotations

import subprocess
import sys

from cytosae import __version__
from cytosae.cli import SUBCOMMANDS, build_parser, main


def test_every_subcommand_is_wired():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(SUBCOMMANDS)
    for name, p in sub.choices.items():
        assert p.get_default("_import_error") is None, p.get_default("_import_error")
        assert p.get_default("_module") == SUBCOMMANDS[name][0]


def test_python_dash_m_prints_version():
    out = subprocess.run([sys.executable, "-m", "cytosae", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"cytosae {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "synth" in capsys.readouterr().out
