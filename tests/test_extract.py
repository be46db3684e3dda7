"""Extraction: kill-and-resume byte identity, ranks == single process, skipping, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cytosae.cli import main
from cytosae.data.adapters import load_manifest
from cytosae.data.imageio import ImageReadError, read_rgb
from cytosae.hardware import cpu_has_fast_bf16, resolve_precision
from cytosae.model.backbone import BackboneConfig, load_backbone, preprocess
from cytosae.store.extract import ExtractConfig, extract_rank, extract_tokens, store_path
from cytosae.store.reader import IncompleteStoreError, TokenStore

BB = BackboneConfig(arch="tiny-test", init_seed=7)
CFG = ExtractConfig(
    batch_size=2, shard_size=3, num_workers=0, device="cpu", precision="fp32", num_threads=1
)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLL23-layout folder: 10 readable TIFFs of 2 classes + 1 zero-byte file."""
    root = tmp_path_factory.mktemp("mll23")
    rng = np.random.default_rng(0)
    for cls, n in (("basophil", 4), ("myeloblast", 6)):
        d = root / cls / cls
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                d / f"{cls}_{i}.tif"
            )
    (root / "myeloblast" / "myeloblast" / "myeloblast_3b.tif").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def manifest(data_root: Path) -> pd.DataFrame:
    return load_manifest("mll23", data_root)


@pytest.fixture(scope="module")
def reference(manifest: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> TokenStore:
    torch.set_num_threads(1)
    return extract_tokens(manifest, BB, tmp_path_factory.mktemp("runs_ref"), CFG, progress=False)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_store_contents(reference: TokenStore, manifest: pd.DataFrame) -> None:
    assert len(manifest) == 11
    assert reference.n_images == 10 and reference.n_tokens == 257 and reference.d_model == 64
    assert list(reference.manifest["label"]) == ["basophil"] * 4 + ["myeloblast"] * 6
    assert "myeloblast/myeloblast/myeloblast_3b" not in set(reference.manifest["image_id"])
    sk = reference.skipped
    assert (
        list(sk["image_id"]) == ["myeloblast/myeloblast/myeloblast_3b"]
        and sk["reason"][0] == "zero-byte file"
    )
    meta = reference.metadata
    assert meta["is_random_init"] and meta["backbone"]["is_random_init"]
    assert (
        meta["n_skipped"] == 1
        and meta["n_input_images"] == 11
        and meta["shard_sizes"] == [3, 3, 2, 2]
    )
    assert (
        meta["dtype"] == "float16"
        and meta["layer"] == 1
        and meta["backbone"]["blocks_computed"] == 2
    )
    assert np.load(reference.path / "shard_00000.npy", mmap_mode="r").dtype == np.float16
    # the stored tokens are the backbone's tokens of the preprocessed images (to float16 precision)
    model = load_backbone(BB)
    rows = [0, 5, 9]
    x = torch.stack([preprocess(read_rgb(reference.manifest["path"][i])) for i in rows])
    with torch.inference_mode():
        ref = model(x).to(torch.float16).float()
    torch.testing.assert_close(reference.get(rows), ref, rtol=2e-3, atol=2e-3)


def test_kill_and_resume_is_byte_identical(
    reference: TokenStore, manifest: pd.DataFrame, tmp_path: Path
) -> None:
    written: list[int] = []

    def crash_after_shard_1(k: int) -> None:
        written.append(k)
        if k == 1:
            raise KeyboardInterrupt("simulated kill after shard 1")

    with pytest.raises(KeyboardInterrupt):
        extract_tokens(
            manifest, BB, tmp_path, CFG, progress=False, on_shard_written=crash_after_shard_1
        )
    folder = tmp_path / "tokens" / reference.path.name
    assert (folder / "shard_00001.npy").is_file() and not (folder / "shard_00002.npy").exists()
    assert not (folder / "COMPLETE").exists()
    with pytest.raises(IncompleteStoreError):
        TokenStore(folder)
    resumed = extract_tokens(
        manifest, BB, tmp_path, CFG, progress=False, on_shard_written=written.append
    )
    assert written == [0, 1, 2, 3]  # shards 0 and 1 were not recomputed
    assert resumed.path == folder
    assert _files(folder) == _files(reference.path)  # every file, byte for byte, no temp files left
    # a complete store is reused without computing anything
    again = extract_tokens(
        manifest, BB, tmp_path, CFG, progress=False, on_shard_written=written.append
    )
    assert again.path == folder and written == [0, 1, 2, 3]


def test_two_ranks_equal_single_process(
    reference: TokenStore, manifest: pd.DataFrame, tmp_path: Path
) -> None:
    cfgs = [CFG.replace(rank=r, world_size=2) for r in (0, 1)]
    folder = extract_rank(manifest, BB, tmp_path, cfgs[0], progress=False)
    assert sorted(p.name for p in folder.glob("shard_*.npy")) == [
        "shard_00000.npy",
        "shard_00002.npy",
    ]
    with pytest.raises(IncompleteStoreError, match="other ranks"):
        extract_tokens(manifest, BB, tmp_path, cfgs[0], progress=False)
    store = extract_tokens(manifest, BB, tmp_path, cfgs[1], progress=False)  # last rank finalises
    assert _files(store.path) == _files(reference.path)


def test_workers_give_same_bytes(
    reference: TokenStore, manifest: pd.DataFrame, tmp_path: Path
) -> None:
    store = extract_tokens(manifest, BB, tmp_path, CFG.replace(num_workers=1), progress=False)
    assert _files(store.path) == _files(reference.path)


def test_strict_raises_and_key_changes(
    manifest: pd.DataFrame, tmp_path: Path, reference: TokenStore
) -> None:
    with pytest.raises(ImageReadError, match=r"myeloblast_3b.tif: zero-byte file"):
        extract_tokens(manifest, BB, tmp_path, CFG.replace(strict=True), progress=False)
    assert store_path(manifest, BB, tmp_path, CFG) == tmp_path / "tokens" / reference.path.name
    assert store_path(manifest, BB.replace(layer=0), tmp_path, CFG) != store_path(
        manifest, BB, tmp_path, CFG
    )
    assert store_path(manifest, BB.replace(init_seed=8), tmp_path, CFG) != store_path(
        manifest, BB, tmp_path, CFG
    )
    assert store_path(manifest.iloc[:5], BB, tmp_path, CFG) != store_path(
        manifest, BB, tmp_path, CFG
    )
    # batch size and workers do not change the store's identity
    assert store_path(
        manifest, BB, tmp_path, CFG.replace(batch_size=3, num_workers=2)
    ) == store_path(manifest, BB, tmp_path, CFG)


def test_precision_auto() -> None:
    assert resolve_precision("auto", torch.device("cpu")) == (
        "bf16" if cpu_has_fast_bf16() else "fp32"
    )
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match=r"ExtractConfig.precision"):
        ExtractConfig(precision="fp8")


def test_cli(
    data_root: Path, tmp_path: Path, reference: TokenStore, capsys: pytest.CaptureFixture
) -> None:
    assert (
        main(
            [
                "extract",
                "--dataset",
                "mll23",
                "--root",
                str(data_root),
                "--arch",
                "tiny-test",
                "--init-seed",
                "7",
                "--batch-size",
                "2",
                "--shard-size",
                "3",
                "--workers",
                "0",
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--threads",
                "1",
                "--runs",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "tokens" / reference.path.name)
    assert "RANDOM-INIT" in out[1] and "1 skipped" in out[1]
    assert _files(Path(out[0])) == _files(reference.path)


def test_failure_keeps_completed_shards(manifest: pd.DataFrame, tmp_path: Path) -> None:
    """A strict failure in shard j leaves shards 0..j-1 on disk, including shard j-1, which is
    completed by the batch still in flight when the failure happens; a lenient rerun reuses them
    and ends byte-identical to an uninterrupted run."""
    cfg = CFG.replace(
        shard_size=4
    )  # the broken file (row 8) opens shard 2; batch [6, 7] closes shard 1
    bad_row = int(manifest.index[manifest["path"].str.endswith("myeloblast_3b.tif")][0])
    assert bad_row == 8 and bad_row % cfg.shard_size == 0, "fixture layout changed"
    reference = extract_tokens(manifest, BB, tmp_path / "ref", cfg, progress=False)
    with pytest.raises(ImageReadError):
        extract_tokens(manifest, BB, tmp_path, cfg.replace(strict=True), progress=False)
    folder = tmp_path / "tokens" / reference.path.name
    assert sorted(p.name for p in folder.glob("shard_*.json")) == [
        "shard_00000.json",
        "shard_00001.json",
    ]
    written: list[int] = []
    store = extract_tokens(
        manifest, BB, tmp_path, cfg, progress=False, on_shard_written=written.append
    )
    assert written == [2]
    assert _files(store.path) == _files(reference.path)


def test_writer_error_stops_later_shards(manifest: pd.DataFrame, tmp_path: Path) -> None:
    """An error on the writer thread reaches the caller and no later shard is written."""

    def fail_at_0(k: int) -> None:
        raise OSError(f"disk full after shard {k}")

    with pytest.raises(OSError, match="disk full after shard 0"):
        extract_tokens(manifest, BB, tmp_path, CFG, progress=False, on_shard_written=fail_at_0)
    folder = store_path(manifest, BB, tmp_path, CFG)
    assert [p.name for p in folder.glob("shard_*.npy")] == ["shard_00000.npy"]


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from cytosae.store import loader

    monkeypatch.setattr(loader, "available_cpus", lambda: 16)
    assert loader.default_workers(torch.device("cpu")) == 2
    assert loader.default_workers(torch.device("cuda")) == 15
    monkeypatch.setattr(loader, "available_cpus", lambda: 1)
    assert loader.default_workers(torch.device("cpu")) == 1
    assert loader.default_workers(torch.device("cuda")) == 1


def test_fp16_overflow_is_an_error(manifest: pd.DataFrame, tmp_path: Path) -> None:
    """Tokens beyond float16's range stop the run with the shard named; nothing is written."""
    model = load_backbone(BB)
    with torch.no_grad():
        model.vit.patch_embed.proj.weight.mul_(1e9)
    with pytest.raises(
        FloatingPointError, match=r"non-finite tokens \(fp16 overflow\?\) in shard 0"
    ):
        extract_tokens(manifest, BB, tmp_path, CFG, progress=False, model=model)
    assert not list(store_path(manifest, BB, tmp_path, CFG).glob("shard_*"))


@pytest.mark.slow
def test_torchrun_two_concurrent_ranks(
    data_root: Path, tmp_path: Path, reference: TokenStore
) -> None:
    """``torchrun --nproc_per_node 2 -m cytosae extract``: two ranks writing the same folder at
    the same time (RANK/WORLD_SIZE from the environment) give one store, byte-identical to a
    single process."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "cytosae",
        "extract",
        "--dataset",
        "mll23",
        "--root",
        str(data_root),
        "--arch",
        "tiny-test",
        "--init-seed",
        "7",
        "--batch-size",
        "2",
        "--shard-size",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--runs",
        str(tmp_path),
        "--no-progress",
        "--wait",
        "120",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "tokens" / reference.path.name
    assert str(folder) in out.stdout  # rank 0 prints the finished store
    assert _files(folder) == _files(reference.path)
    shard_json = sorted(p.name for p in folder.glob("shard_*.json"))
    assert len(shard_json) == reference.metadata["n_shards"]


def test_fp32_turns_tf32_off_during_the_forward(
    manifest: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """precision='fp32' means float32 throughout: TF32 is off while the backbone runs (cuDNN
    enables it for convolutions by default) and the previous flags come back afterwards."""
    model = load_backbone(BB)
    seen: list[tuple[bool, bool]] = []
    forward = model.forward

    def spy(pixels: torch.Tensor) -> torch.Tensor:
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return forward(pixels)

    monkeypatch.setattr(model, "forward", spy)
    prev = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        extract_tokens(manifest, BB, tmp_path, CFG, progress=False, model=model)
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev
    assert seen and set(seen) == {(False, False)}
