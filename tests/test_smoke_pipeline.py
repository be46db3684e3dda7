"""The walking skeleton end to end on the smoke profile: synth -> tokens -> SAE -> stats -> notebook."""

from __future__ import annotations

import numpy as np
import pytest

from cytosae.workflow.pipeline import Pipeline
from cytosae.workflow.profiles import PROFILES, get_profile


def test_profiles_round_trip_and_unknown_is_an_error():
    for name in PROFILES:
        p = get_profile(name)
        assert type(p).from_json(p.to_json()) == p
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        get_profile("fast")
    assert get_profile("default").backbone.weights == "random"
    assert (
        get_profile("paper").backbone.layer == -2
        and get_profile("paper").sae.expansion_factor == 64
    )


def test_every_stage_is_cached_and_reused(smoke_pipeline, monkeypatch):
    pipe = smoke_pipeline
    stats = pipe.stats("mll23")
    store = pipe.tokens("mll23")
    n = len(pipe.manifest("mll23"))
    assert store.n_images == n == stats.n_images
    assert store.n_tokens == 257 and store.d_model == 384
    assert stats.sparsity.shape == (pipe.profile.sae.d_sae,)
    assert np.all((stats.sparsity >= 0) & (stats.sparsity <= 1))
    # a fresh pipeline over the same runs folder recomputes nothing
    import cytosae.analysis.latents
    import cytosae.store.extract
    import cytosae.synth
    import cytosae.train

    def boom(*a, **k):
        raise AssertionError("a cached stage was recomputed")

    for mod, name in [
        (cytosae.synth, "write_all"),
        (cytosae.train, "train_sae"),
        (cytosae.analysis.latents, "encode_pass"),
    ]:
        monkeypatch.setattr(mod, name, boom)
    again = Pipeline("smoke", runs=pipe.runs, progress=False)
    s2 = again.stats("mll23")
    np.testing.assert_array_equal(s2.sparsity, stats.sparsity)
    assert again.sae_dir() == pipe.sae_dir()


def test_banner_says_synthetic_and_random_init(smoke_pipeline):
    b = smoke_pipeline.banner()
    assert "SYNTHETIC" in b and "RANDOM-INIT" in b
    assert "SYNTHETIC" in smoke_pipeline.tag()


@pytest.mark.slow
def test_every_notebook_runs_on_smoke_and_writes_its_figures(smoke_pipeline, smoke_env):
    from cytosae.workflow.runner import default_notebook_dir, list_notebooks, run_notebooks

    folder = default_notebook_dir()
    times = run_notebooks(folder, profile="smoke", out_dir=smoke_env["CYTOSAE_RUNS"] / "executed")
    assert list(times) == [p.name for p in list_notebooks(folder)] and len(times) >= 9
    figs = smoke_env["CYTOSAE_FIGURES"]
    for name in (
        "synthetic_gallery",
        "sae_training",
        "fig2a_latent_landscape",
        "fig2b_reference_images",
        "fig3_patch_retrieval",
        "fig4_probe",
        "fig5_differential_latents",
        "concept_recovery",
    ):
        for ext in ("png", "pdf"):
            assert (figs / f"{name}_smoke.{ext}").stat().st_size > 1000, name
