"""The paper profile end to end, at miniature size, as a researcher runs it on their data.

A data folder in the five published layouts (the synthetic world's writers at smoke size, its
ground truth deleted, as a download has none) and a DinoBloom-format ``.pth`` in the published
``{"teacher": {"backbone.*", heads}}`` layout (of the tiny-test ViT) are named by
``CYTOSAE_DATA`` and ``CYTOSAE_DINOBLOOM_WEIGHTS``; every notebook runs on ``profile=paper`` with
size overrides only. The notebook kernels start with ``tests/realpath_guard`` on their
``PYTHONPATH``: any import of ``cytosae.synth`` fails the notebook and any call of
``Pipeline.groundtruth`` raises; both are also logged, and the log must stay empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from formats import save_dinobloom_format

from cytosae.model.backbone import ARCHS, build_vit
from cytosae.workflow.runner import list_notebooks, run_notebooks

REPO = Path(__file__).resolve().parents[1]
GUARD = Path(__file__).resolve().parent / "realpath_guard"

#: the only overrides: sizes (a tiny ViT, a x2 SAE, 12 training steps, 5 reference images)
SIZE = {
    "backbone.arch": "tiny-test",
    "extract.batch_size": 16,
    "sae.expansion_factor": 2,
    "train.total_images": 48,
    "train.batch_images": 4,
    "train.lr_warmup_steps": 3,
    "train.log_every": 3,
    "top_k": 5,
}
D_SAE = ARCHS["tiny-test"].embed_dim * 2

#: what the paper profile draws (notebooks 01-06 and 08); 00 and 07 draw nothing on real data
PAPER_FIGURES = (
    "sae_training",
    "sae_ghost_grads",
    "fig2a_latent_landscape",
    "fig2b_reference_images",
    "fig3_patch_retrieval",
    "fig4_barcodes",
    "fig4_probe",
    "fig5_differential_latents",
    "latent_explorer_example",
)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What a user has after downloading: five datasets in their layouts, a DinoBloom .pth."""
    from cytosae.synth import SynthConfig, write_all  # the test writes the data; kernels may not

    base = tmp_path_factory.mktemp("downloads")
    cfg = SynthConfig.for_profile("smoke", hehr_patients_per_disease=5, hehr_images_per_patient=2)
    write_all(base / "data", cfg, progress=False)
    for gt in sorted(base.rglob("_groundtruth")):  # a download has no ground truth
        shutil.rmtree(gt)
    torch.manual_seed(0)
    weights = save_dinobloom_format(build_vit("tiny-test"), base / "DinoBloom-tiny.pth")
    return {"data": base / "data", "weights": weights, "base": base}


@pytest.fixture
def paper_env(downloads, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The environment of a paper run: data, weights, private runs/figures, the guard."""
    for key in list(os.environ):
        if key.startswith("CYTOSAE_DATA_") or key == "CYTOSAE_SAE":
            monkeypatch.delenv(key)
    env = {
        "CYTOSAE_DATA": downloads["data"],
        "CYTOSAE_DINOBLOOM_WEIGHTS": downloads["weights"],
        "CYTOSAE_RUNS": tmp_path / "runs",
        "CYTOSAE_FIGURES": tmp_path / "figures",
        "CYTOSAE_GUARD_LOG": tmp_path / "guard.log",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    path = [str(GUARD), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    return {**env, "executed": tmp_path / "executed"}


def _outputs(nb: Path) -> str:
    """The text a notebook printed."""
    cells = json.loads(nb.read_text())["cells"]
    return "".join(
        "".join(o.get("text", ""))
        for c in cells
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )


def _no_guard_hits(env: dict[str, Path]) -> None:
    log = env["CYTOSAE_GUARD_LOG"]
    assert not log.exists(), f"the real-data path touched the synthetic world:\n{log.read_text()}"


def test_the_guard_refuses_the_synthetic_world(paper_env):
    """The guard works: a kernel-like process with its PYTHONPATH cannot import cytosae.synth."""
    import subprocess
    import sys

    code = "import cytosae.synth"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "refused on the real-data path" in run.stderr
    assert "import cytosae.synth" in paper_env["CYTOSAE_GUARD_LOG"].read_text()


@pytest.mark.slow
def test_every_notebook_runs_on_the_paper_profile(paper_env):
    folder = REPO / "notebooks"
    times = run_notebooks(
        folder, profile="paper", out_dir=paper_env["executed"], extra={"overrides": SIZE}
    )
    assert list(times) == [p.name for p in list_notebooks(folder)] and len(times) >= 9
    _no_guard_hits(paper_env)
    figs = paper_env["CYTOSAE_FIGURES"]
    for name in PAPER_FIGURES:
        (png,) = figs.glob(f"{name}_paper_*.png")
        assert png.stat().st_size > 1000, name
    assert not list(figs.glob("synthetic_*")) and not list(figs.glob("concept_recovery*"))
    out = {nb.name[:2]: _outputs(nb) for nb in sorted(paper_env["executed"].glob("*.ipynb"))}
    for text in out.values():
        assert "profile=paper: real datasets" in text and "; SAE x2;" in text
    # the notebooks that cannot run on real data say so in one line
    assert "no synthetic world to show" in out["00"] and "check-data" in out["00"]
    assert "no pixel ground truth" in out["07"]
    # numbers read back: the landscape has d_sae latents over the 18 MLL23 images
    n_images, n_latents = map(int, re.search(r"(\d+) images, (\d+) latents", out["02"]).groups())
    assert (n_images, n_latents) == (18, D_SAE)
    assert re.search(r"25 patients, 5 diseases, \d+ latents", out["05"])
    runs = paper_env["CYTOSAE_RUNS"]
    # the profile's SAE, its no-ghost-grads twin (01) and the sweeps of 02 and 09, all complete
    trained = [d for d in (runs / "sae").iterdir() if d.is_dir()]
    assert len(trained) >= 2 and all((d / "COMPLETE").is_file() for d in trained)


@pytest.mark.slow
def test_the_authors_checkpoint_draws_fig2a_3_4_and_5_without_training(paper_env, tmp_path):
    from cytosae.interop.official_sae import export_official
    from cytosae.model.sae import SAEConfig, SparseAutoencoder

    width = ARCHS["tiny-test"].embed_dim
    pt = export_official(
        SparseAutoencoder(SAEConfig(d_in=width, n_latents=96, seed=1)),
        tmp_path / "final_sparse_autoencoder_dinov2_vitb14_-2_resid_96.pt",
    )
    overrides = {**SIZE, "pretrained_sae": str(pt)}
    folder = REPO / "notebooks"
    select = ("01_", "02_", "03_", "04_", "05_", "06_")
    times = run_notebooks(
        folder,
        profile="paper",
        select=select,
        out_dir=paper_env["executed"],
        extra={"overrides": overrides},
    )
    assert len(times) == len(select)
    _no_guard_hits(paper_env)
    figs = paper_env["CYTOSAE_FIGURES"]
    for name in PAPER_FIGURES[2:-1]:
        (png,) = figs.glob(f"{name}_paper_*.png")
        assert png.stat().st_size > 1000, name
    assert not list(figs.glob("sae_training*"))  # notebook 01 trained nothing
    runs = paper_env["CYTOSAE_RUNS"]
    assert not (runs / "sae").exists()  # nor did anything else
    out = {nb.name[:2]: _outputs(nb) for nb in sorted(paper_env["executed"].glob("*.ipynb"))}
    assert "nothing to train" in out["01"]
    for text in out.values():
        assert f"SAE {pt.name} (authors' .pt, sha256 " in text and "not trained here" in text
    assert re.search(r"18 images, 96 latents", out["02"])


def test_your_own_folder_of_cells_is_a_custom_dataset(paper_env, downloads, tmp_path, monkeypatch):
    """An ``imagefolder`` (or ``csv``) of the user's cells, named to the profile by
    ``custom_datasets`` and found at ``$CYTOSAE_DATA_<NAME>``, encoded by the authors' SAE."""
    from cytosae.interop.official_sae import export_official
    from cytosae.model.sae import SAEConfig, SparseAutoencoder
    from cytosae.workflow.pipeline import Pipeline
    from cytosae.workflow.profiles import get_profile

    cells = tmp_path / "my_cells"
    mll23 = sorted((downloads["data"] / "mll23").rglob("*.tif"))
    for label, src in zip(("blast", "blast", "lymph", "lymph", "mono"), mll23):
        (cells / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, cells / label / src.name)
    monkeypatch.setenv("CYTOSAE_DATA_MYCELLS", str(cells))
    pt = export_official(
        SparseAutoencoder(SAEConfig(d_in=ARCHS["tiny-test"].embed_dim, n_latents=96)),
        tmp_path / "sae.pt",
    )
    mine = {
        "custom_datasets": ["mycells"],
        "eval_datasets": ["mycells"],
        "train_dataset": "mycells",
    }
    pipe = Pipeline("paper", progress=False, overrides={**SIZE, **mine, "pretrained_sae": str(pt)})
    man = pipe.manifest("mycells")
    assert len(man) == 5 and set(man["dataset"]) == {"mycells"}
    assert sorted(set(man["label"])) == ["blast", "lymph", "mono"]
    stats = pipe.stats("mycells")
    assert stats.n_images == 5 and len(stats.mean_acts) == 96
    assert not (paper_env["CYTOSAE_RUNS"] / "sae").exists()
    # the same cells listed in a CSV manifest (a path column, optional label/patient/disease)
    rows = "".join(
        f"{p.relative_to(cells)},{p.parent.name},p{i}\n"
        for i, p in enumerate(sorted(cells.rglob("*.tif")))
    )
    (cells / "manifest.csv").write_text("path,label,patient\n" + rows)
    again = Pipeline("paper", progress=False, overrides={**SIZE, **mine, "pretrained_sae": str(pt)})
    assert list(again.manifest("mycells")["patient"]) == [f"p{i}" for i in range(5)]
    with pytest.raises(ValueError, match="add its name to custom_datasets"):
        get_profile("paper", {"eval_datasets": ["mycells"]})
    with pytest.raises(ValueError, match="must be a new lowercase name"):
        get_profile("paper", {"custom_datasets": ["mll23"]})
