"""The ``cytosae`` command line: lazy sub-commands, flags generated from the configs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from cytosae import __version__
from cytosae.cli import COMMANDS, build_parser, main
from cytosae.cli.fields import field_docs


def test_every_command_builds_its_parser():
    for name, (module, _) in COMMANDS.items():
        parser = build_parser(name)
        sub = next(a for a in parser._actions if a.dest == "command")
        assert set(sub.choices) == set(COMMANDS)
        assert sub.choices[name].get_default("_module") == module


def test_python_dash_m_prints_version():
    out = subprocess.run(
        [sys.executable, "-m", "cytosae", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"cytosae {__version__}"


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from cytosae.cli import build_parser; build_parser().format_help(); print('torch' in sys.modules)"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    subprocess.run([sys.executable, "-m", "cytosae", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t0 < 10  # generous: the point is that torch is not imported


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "synth" in capsys.readouterr().out


def test_train_flags_come_from_the_configs(capsys):
    from cytosae.model.sae import SAEConfig
    from cytosae.train import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for cls, skip in ((SAEConfig, {"d_in"}), (TrainConfig, set())):
        for name in set(field_docs(cls)) - skip:
            assert "--" + name.replace("_", "-") in text, name
    assert "(default: 64)" in text and "--expansion" in text and "--no-ghost-grads" in text
    assert "{relu,topk,batchtopk}" in text  # Literal choices


def test_field_docs_reads_the_attributes_section():
    from cytosae.store.extract import ExtractConfig

    docs = field_docs(ExtractConfig)
    assert docs["shard_size"].startswith("images per shard file")
    assert docs["rank"] == docs["world_size"]  # "rank, world_size: ..." documents both


def test_a_bad_value_is_one_line_with_status_2(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--datasets", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "SynthConfig.datasets" in err and "nope" in err and "Traceback" not in err
