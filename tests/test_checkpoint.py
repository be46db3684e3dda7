"""Our safetensors format, and the authors' pickled format through the restricted loader."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch

from cytosae.interop.official_sae import export_official, load_official, read_official
from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.train.checkpoint import CheckpointError, load_sae, save_sae


def _trained_like_sae(seed: int = 1) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=8, expansion_factor=3, seed=seed, l1_coefficient=1e-3))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(24, generator=g))
        sae.b_dec.copy_(torch.randn(8, generator=g))
    return sae


def test_save_load_round_trip_and_validation(tmp_path: Path) -> None:
    sae = _trained_like_sae()
    save_sae(sae, tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "cfg.json").read_text())
    assert cfg["schema_version"] == 1 and cfg["sae"]["expansion_factor"] == 3
    back = load_sae(tmp_path / "s")
    assert back.cfg == sae.cfg
    for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back, k), getattr(sae, k))
    # a config that disagrees with the weights: the error names the weights file
    cfg["sae"]["expansion_factor"] = 4
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"sae\.safetensors.*W_enc"):
        load_sae(tmp_path / "s")
    cfg["schema_version"] = 99
    (tmp_path / "s" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="schema_version"):
        load_sae(tmp_path / "s")
    with pytest.raises(CheckpointError, match="missing file"):
        load_sae(tmp_path / "nowhere")


def _with_fake_official_module():
    """A throwaway ``src.sae_training.config.ViTSAERunnerConfig`` dataclass registered in sys.modules."""
    names = ["src", "src.sae_training", "src.sae_training.config"]
    mods = {n: types.ModuleType(n) for n in names}

    @dataclasses.dataclass
    class ViTSAERunnerConfig:
        d_in: int = 8
        expansion_factor: int = 3
        d_sae: int = 24
        l1_coefficient: float = 8e-5
        use_ghost_grads: bool = True
        dead_feature_window: int = 64
        b_dec_init_method: str = "geometric_median"
        seed: int = 42
        model_name: str = "dinov2_vitb14"
        device: torch.device = torch.device("cpu")  # noqa: RUF009 - the authors' field, as pickled
        dtype: torch.dtype = torch.float32

    ViTSAERunnerConfig.__module__ = "src.sae_training.config"
    ViTSAERunnerConfig.__qualname__ = "ViTSAERunnerConfig"
    mods["src.sae_training.config"].ViTSAERunnerConfig = ViTSAERunnerConfig
    return mods, ViTSAERunnerConfig


def test_load_authors_file_without_their_module(tmp_path: Path) -> None:
    mods, Cfg = _with_fake_official_module()
    sae = _trained_like_sae(2)
    sd = {k: getattr(sae, k).detach().clone() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    path = tmp_path / "final_sparse_autoencoder_dinov2_vitb14_-2_resid_24.pt"
    sys.modules.update(mods)
    try:
        torch.save({"cfg": Cfg(l1_coefficient=1e-3, seed=7), "state_dict": sd}, path)
    finally:
        for n in mods:
            sys.modules.pop(n, None)
    assert "src.sae_training.config" not in sys.modules
    loaded, cfg = load_official(path)
    assert isinstance(cfg, dict) and not isinstance(cfg, Cfg)
    assert cfg["device"] == "cpu" and cfg["dtype"] == "float32" and cfg["seed"] == 7
    assert loaded.cfg.expansion_factor == 3 and loaded.cfg.l1_coefficient == 1e-3
    assert loaded.cfg.b_dec_init == "geometric_median_image" and loaded.cfg.seed == 7
    for k, v in sd.items():
        assert torch.equal(getattr(loaded, k), v)


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"cfg": _Evil(marker), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt.*refusing.*(posix|os)\.system"):
        read_official(path)
    assert not marker.exists()
    # any other class is refused as well, even harmless ones
    torch.save({"cfg": {"x": collections.Counter("ab")}, "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"refusing.*collections\.Counter"):
        read_official(tmp_path / "other.pt")


def test_export_official_round_trip_and_readable_by_their_code(tmp_path: Path) -> None:
    sae = _trained_like_sae(3)
    path = export_official(sae, tmp_path / "export.pt", {"model_name": "dinov2_vitb14", "lr": 4e-4})
    back, cfg = load_official(path)
    assert (
        cfg["d_sae"] == 24
        and cfg["lr"] == 4e-4
        and cfg["device"] == "cpu"
        and cfg["dtype"] == "float32"
    )
    assert back.cfg.replace(b_dec_init="geometric_median_image") == sae.cfg.replace(
        b_dec_init="geometric_median_image"
    )
    for k in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(back, k), getattr(sae, k))
    # the authors' own loader (plain torch.load with their class importable) reads it into their dataclass
    mods, Cfg = _with_fake_official_module()
    sys.modules.update(mods)
    try:
        obj = torch.load(path, weights_only=False)
    finally:
        for n in mods:
            sys.modules.pop(n, None)
    assert (
        isinstance(obj["cfg"], Cfg) and obj["cfg"].d_sae == 24 and obj["cfg"].dtype is torch.float32
    )
    assert obj["cfg"].device == torch.device("cpu")
    assert torch.equal(obj["state_dict"]["W_dec"], sae.W_dec.detach())
