"""Profile overrides: dotted keys, validated, recorded, and part of the cache keys."""

from __future__ import annotations

import pytest

from cytosae.cli import main
from cytosae.workflow.profiles import apply_overrides, get_profile, override_keys


def test_overrides_set_the_named_fields_and_are_recorded():
    p = get_profile(
        "default", {"sae.expansion_factor": "16", "train.lr": "4e-5", "backbone.layer": 5}
    )
    assert (p.sae.expansion_factor, p.train.lr, p.backbone.layer) == (16, 4e-5, 5)
    assert p.overrides == (
        ("backbone.layer", "5"),
        ("sae.expansion_factor", "16"),
        ("train.lr", "4e-05"),
    )
    base = get_profile("default")
    assert p.sae.digest() != base.sae.digest() and p.train.digest() != base.train.digest()
    assert p.backbone.digest() != base.backbone.digest()  # the token-store key hashes it
    assert apply_overrides(base, {}) is base


def test_backbone_arch_carries_the_sae_width():
    p = get_profile("paper", {"backbone.arch": "tiny-test"})
    assert p.sae.d_in == 64
    with pytest.raises(ValueError, match=r"sae.d_in=768 does not match the width 64"):
        get_profile("paper", {"backbone.arch": "tiny-test", "sae.d_in": 768})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"sae.expansin_factor": 3},
            r"unknown override key 'sae.expansin_factor'.*sae.expansion_factor",
        ),
        ({"foo": 1}, r"unknown override key 'foo'.*valid keys: .*threshold"),
        ({"sae.expansion_factor": "x"}, r"sae.expansion_factor='x': expected int"),
        ({"sae.use_ghost_grads": 1}, r"expected bool"),
        ({"sae.activation": "gelu"}, r"choose one of \['relu', 'topk', 'batchtopk'\]"),
        ({"train.lr": -1.0}, r"TrainConfig.lr"),
        ({"tau": float("nan")}, r"Profile.tau"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_profile("default", overrides)


def test_paper_has_no_synthetic_keys_and_profile_must_be_a_name():
    assert not any(k.startswith("synth.") for k in override_keys(get_profile("paper")))
    with pytest.raises(ValueError, match=r"unknown override key 'synth.seed'"):
        get_profile("paper", {"synth.seed": 1})
    with pytest.raises(ValueError, match="profile must be a name"):
        get_profile(3)  # type: ignore[arg-type]


def test_cli_set(capsys):
    assert (
        main(["pipeline", "--profile", "smoke", "--set", "sae.expansion_factor=3", "--show"]) == 0
    )
    assert '"expansion_factor": 3' in capsys.readouterr().out
    assert main(["pipeline", "--set", "nonsense", "--show"]) == 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err
