"""Sweeps: the grid, the tidy table, the paper's numbers, and one pass for several SAEs that equals
single runs bit for bit and is cached where ``Pipeline.sae_dir`` looks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cytosae.analysis import sweep
from cytosae.analysis.thresholds import above_threshold
from cytosae.plotting import figures
from cytosae.workflow.profiles import get_profile


# ------------------------------------------------------------------------------ the grid
def test_expand_crosses_settings_with_seeds_and_labels_them():
    grid = {
        "expansion": [{"sae.expansion_factor": 1}, {"sae.expansion_factor": 2}],
        "l1": [{"label": "big", "paper": "8e-4", "set": {"sae.l1_coefficient": 8e-4}}],
        "lr": [["slow", {"train.lr": 1e-5}], {"train.lr": 1e-4, "sae.seed": 7}],
    }
    vs = sweep.expand(grid, seeds=(0, 1))
    assert [(v.axis, v.setting, v.seed) for v in vs] == [
        ("expansion", "1", 0),
        ("expansion", "1", 1),
        ("expansion", "2", 0),
        ("expansion", "2", 1),
        ("l1", "big", 0),
        ("l1", "big", 1),
        ("lr", "slow", 0),
        ("lr", "slow", 1),
        ("lr", "0.0001", 7),  # a setting with its own seed is taken at that seed only
    ]
    assert vs[4].paper == "8e-4"
    assert vs[5].as_overrides() == {"sae.l1_coefficient": 8e-4, "sae.seed": 1}
    assert sweep.normalise_setting({"sae.use_ghost_grads": False}) == (
        "off",
        "",
        {"sae.use_ghost_grads": False},
    )
    assert sweep.normalise_setting({"a.b": 1, "c.d": 2.5})[0] == "b=1, d=2.5"


@pytest.mark.parametrize(
    ("grid", "seeds", "message"),
    [
        ({}, (0,), "at least one axis"),
        ({"a": [{}]}, (), "at least one seed"),
        ({"a": []}, (0,), "has no settings"),
        ({"a": [{"x.y": 1}, {"x.y": 1}]}, (0,), "two settings labelled"),
        ({"a": [3]}, (0,), "expected a dict"),
        ({"a": [{"set": {}, "colour": 1}]}, (0,), "unknown field"),
    ],
)
def test_bad_grids_are_errors(grid, seeds, message):
    with pytest.raises(ValueError, match=message):
        sweep.expand(grid, seeds)


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_every_setting_of_the_profile_grids_is_a_valid_override(name):
    grid = sweep.ablation_grid(name)
    assert set(grid) == {"expansion", "l1", "lr", "layer", "ghost_grads", "b_dec"}
    paper = sweep.paper_ablation().set_index(["axis", "paper"]).index
    for v in sweep.expand(grid, seeds=(42,)):
        p = get_profile(name, v.as_overrides())  # raises on an unknown key or a bad value
        assert p.sae.seed == 42
        assert (v.axis, v.paper) in paper, (v.axis, v.paper)


def test_paper_grid_is_the_papers():
    g = sweep.ablation_grid("paper")
    f = [s["set"]["sae.expansion_factor"] for s in g["expansion"]]
    assert f == [16, 32, 64, 128]
    assert [s["set"]["backbone.layer"] for s in g["layer"]] == [1, 4, 10, 11]
    assert [s["set"]["train.lr"] for s in g["lr"]] == [4e-3, 4e-4, 4e-5]
    assert [s["set"]["sae.l1_coefficient"] for s in g["l1"]] == [8e-4, 8e-5, 8e-6]
    p = get_profile("paper")
    assert (p.sae.expansion_factor, p.train.lr, p.backbone.resolved_layer) == (64, 4e-4, 10)


def test_default_grid_is_what_the_notebooks_say():
    g = sweep.ablation_grid("default")
    assert [s["label"] for s in g["expansion"]] == ["x1", "x2", "x4"]
    assert get_profile("default").sae.expansion_factor == 4  # x4 is the profile's own SAE
    for axis in ("l1", "lr", "b_dec", "layer"):
        assert all(s["set"]["sae.expansion_factor"] == 1 for s in g[axis])
    assert all("sae.expansion_factor" not in s["set"] for s in g["ghost_grads"])  # notebook 01's
    layer = get_profile("default", g["layer"][0]["set"])
    assert layer.synth.datasets == ("mll23",) and layer.synth.mll23_per_class == 1


def test_paper_numbers():
    p = sweep.paper_ablation().set_index(["axis", "paper"])
    assert p.loc[("expansion", "16"), "concepts_mean"] == 1748
    assert p.loc[("expansion", "128"), "concepts_sd"] == 145
    assert p.loc[("l1", "8e-4"), "concepts_mean"] == 128
    assert p.loc[("lr", "4e-5"), "concepts_mean"] == 2755
    assert p.loc[("layer", "12"), "concepts_mean"] == 15161
    assert p.loc[("ghost_grads", "off"), "dead_frac_mean"] == 0.92
    assert p.loc[("ghost_grads", "on"), "dead_frac_mean"] == 0.57
    assert np.isnan(p.loc[("b_dec", "mean"), "concepts_mean"])


# ------------------------------------------------------------------------------ the table
def _table() -> pd.DataFrame:
    rows = []
    for setting, paper, base in (("x1", "16", 10), ("x2", "32", 20)):
        for seed in (0, 1, 2):
            v = sweep.Variant("expansion", setting, paper, seed, (("sae.seed", seed),))
            mean_acts = np.full(base + seed, 0.01)
            mean_acts[:2] = np.nan
            stats = SimpleNamespace(mean_acts=mean_acts, sparsity=np.nan_to_num(mean_acts))
            hist = pd.DataFrame(
                {"dead_frac": [0.5, 0.1 * seed], "l0": [9.0, 3.0], "explained_variance": [0.5, 0.9]}
            )
            rows.append(sweep.sweep_row(v, stats, hist, thresholds=(-3, -1), sae=f"k{seed}"))
    return pd.DataFrame(rows)


def test_rows_summary_and_ablation_table():
    t = _table()
    assert list(t.columns[:7]) == [
        "axis",
        "setting",
        "paper",
        "seed",
        "d_sae",
        "concepts_-3",
        "concepts_-1",
    ]
    assert t["concepts_-3"].tolist() == [8, 9, 10, 18, 19, 20]  # NaN never counts
    assert t["concepts_-1"].tolist() == [0] * 6
    assert t["dead_frac"].tolist() == pytest.approx([0.0, 0.1, 0.2] * 2)  # the last log row
    assert t["never_fired"].iloc[0] == pytest.approx(2 / 10)
    s = sweep.summarise(t)
    assert s["setting"].tolist() == ["x1", "x2"] and s["n_seeds"].tolist() == [3, 3]
    assert s["concepts_-3_mean"].tolist() == [9.0, 19.0]
    assert s["concepts_-3_sd"].tolist() == [1.0, 1.0]  # sample sd over the seeds
    a = sweep.ablation_table(s, threshold=-3)
    assert a["concepts"].tolist() == ["9 ± 1", "19 ± 1"]
    assert a["paper concepts"].tolist() == ["1748 ± 56", "2170 ± 61"]
    long = sweep.long_counts(t)
    assert len(long) == 12 and set(long["threshold"]) == {-3.0, -1.0}


# ------------------------------------------------------------------------------ training
def _same_files(a: Path, b: Path) -> None:
    from safetensors.numpy import load_file

    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    wa, wb = load_file(a / "sae.safetensors"), load_file(b / "sae.safetensors")
    assert set(wa) == set(wb)
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    for name in ("metrics.jsonl", "run.json", "cfg.json", "density_histogram.json"):
        assert (a / name).read_text() == (b / name).read_text(), name


def test_train_saes_equals_single_runs_and_is_reused(smoke_env, tmp_path, monkeypatch):
    from cytosae.workflow.pipeline import Pipeline

    shared = Pipeline("smoke", runs=tmp_path / "a", progress=False)
    shared.tokens("mll23")
    single = Pipeline("smoke", runs=tmp_path / "b", progress=False)
    (tmp_path / "b").mkdir()
    for stage in ("synth", "tokens"):  # the same token store under both roots
        os.symlink(tmp_path / "a" / stage, tmp_path / "b" / stage)
    cfgs = [
        shared.profile.sae.replace(expansion_factor=1, seed=3),
        shared.profile.sae.replace(use_ghost_grads=False, seed=4),
        shared.profile.sae.replace(b_dec_init="mean", seed=5),
    ]
    dirs = shared.train_saes(cfgs)
    assert [d.name for d in dirs] == [shared.train_key(c) for c in cfgs]
    assert not list((tmp_path / "a" / "sae").glob("group-*"))  # the group folder is gone
    for c, d in zip(cfgs, dirs):
        ref = single.sae_dir(c)
        assert ref.name == d.name  # train_key agrees with sae_dir
        _same_files(d, ref)
    # a later single call, or the same group again, trains nothing
    import cytosae.train

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(cytosae.train, "train_sae", boom)
    monkeypatch.setattr(cytosae.train, "train_many", boom)
    assert shared.sae_dir(cfgs[1]) == dirs[1]
    assert shared.train_saes(cfgs) == dirs


def test_sweep_table_on_smoke(smoke_pipeline, monkeypatch):
    grid = {
        "expansion": [{"sae.expansion_factor": 1}, {"sae.expansion_factor": 2}],
        "lr": [{"train.lr": 1e-3}],
    }
    table = smoke_pipeline.sweep(grid, seeds=(42, 43))
    assert len(table) == 6 and table["axis"].tolist() == ["expansion"] * 4 + ["lr"] * 2
    assert table["d_sae"].tolist() == [384, 384, 768, 768, 768, 768]
    for c in [sweep.concept_column(t) for t in sweep.THRESHOLDS]:
        assert c in table
    assert (table[sweep.concept_column(-6)] >= table[sweep.concept_column(0)]).all()
    for col in ("dead_frac", "l0", "explained_variance"):
        assert table[col].notna().all()
    # the profile's own SAE (x2, seed 42) is the one every notebook uses
    row = table[(table["setting"] == "2") & (table["seed"] == 42)].iloc[0]
    assert row["sae"] == smoke_pipeline.sae_dir().name
    mean_acts = smoke_pipeline.stats("mll23").mean_acts
    assert row[sweep.concept_column(-3)] == int(above_threshold(mean_acts, -3).sum())
    assert json.loads(row["overrides"]) == {"sae.expansion_factor": 2, "sae.seed": 42}
    # a rerun computes nothing
    import cytosae.analysis.latents
    import cytosae.train

    def boom(*a, **k):
        raise AssertionError("computed again")

    monkeypatch.setattr(cytosae.train, "train_many", boom)
    monkeypatch.setattr(cytosae.train, "train_sae", boom)
    monkeypatch.setattr(cytosae.analysis.latents, "encode_pass", boom)
    again = smoke_pipeline.sweep(grid, seeds=(42, 43))
    pd.testing.assert_frame_equal(again, table)


def test_a_diverging_setting_is_a_row_not_a_crash(smoke_pipeline):
    """A learning rate the SAE cannot take (the paper's "unstable training" at lr 4e-3) is a
    row with status "diverged", NaN numbers and the step, in the table, the summary, the printed
    ablation table and the figure; the healthy settings are unaffected, and a rerun agrees."""
    grid = {
        "lr": [
            {"label": "1e-3", "paper": "4e-4", "set": {"train.lr": 1e-3}},
            {"label": "50", "paper": "4e-3", "set": {"train.lr": 50.0}},
        ],
        "x": [  # one group of two SAEs (same tokens and TrainConfig) that both diverge
            {"label": f"x{f}", "set": {"train.lr": 50.0, "sae.expansion_factor": f}} for f in (1, 2)
        ],
    }
    table = smoke_pipeline.sweep(grid, seeds=(42,))
    assert table["status"].tolist() == ["ok", "diverged", "diverged", "diverged"]
    ok, bad = table.iloc[0], table.iloc[1]
    assert ok["note"] == "" and np.isfinite(ok["explained_variance"])
    assert bad[[sweep.concept_column(t) for t in sweep.THRESHOLDS]].isna().all()
    assert np.isnan(bad["dead_frac"]) and np.isnan(bad["l0"])
    assert bad["note"].startswith("diverged at step ") and "explained variance" in bad["note"]
    assert "/" not in bad["note"]  # no paths: the note is printed in committed notebooks
    assert table["d_sae"].tolist() == [768, 768, 384, 768]
    s = sweep.summarise(table)
    assert s["n_diverged"].tolist() == [0, 1, 1, 1]
    a = sweep.ablation_table(s, threshold=-3)
    step = bad["note"].split(":", 1)[0]
    assert a["concepts"].iloc[1] == step and a["paper note"].iloc[1] == "unstable training"
    assert a["dead frac"].iloc[1] == "" and a["concepts"].iloc[0].isdigit()
    fig, data = figures.ablation_figure(table, "lr", paper=sweep.paper_ablation(), threshold=-3)
    assert data["diverged"] == ["50"]
    assert "diverged" in [t.get_text() for t in fig.axes[1].texts]
    assert data["concepts"]["50"]["values"].size == 0  # nothing drawn for it...
    fig.canvas.draw()  # ... and the figure renders, every setting in its place
    ticks = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert ticks == ["1e-3", "50"] and fig.axes[1].get_xlim() == (-0.5, 1.5)
    again = smoke_pipeline.sweep(grid, seeds=(42,))  # resumes the diverged runs: same rows
    pd.testing.assert_frame_equal(again, table)
