"""Benchmark of the latent explorer (notebook 10): render time per latent, one-off cache build.

Reports, on a profile whose pipeline stages are cached (``cytosae pipeline --profile P`` first):

* the one-off explorer pass (:func:`cytosae.analysis.explorer.build_explorer_cache`) per dataset,
  built into a temporary folder so the pipeline's own cache is left alone (``--no-build``: skip);
* loading the explorer's data from the warm cache (``Pipeline.explorer_data``);
* per latent, over ``--latents`` latents drawn at random among those that fired (seeded), plus
  every latent that passes both filters: the look-up (``ExplorerData.view``), the drawing
  (mosaic PNG, caption and side panels) and a whole widget step (setting the slider's value as
  the front end does, until the widget's image and HTML are set), median / p95 / max;
* the static matplotlib figure (``dashboard_figure`` + PNG), for a few latents, for comparison.

Usage::

    python benchmarks/bench_explorer.py [--profile default] [--latents 200] [--no-build] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def stats(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {
        "n": int(a.size),
        "median_ms": float(np.median(a)),
        "p95_ms": float(np.percentile(a, 95)),
        "max_ms": float(a.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--latents", type=int, default=200, help="random latents timed")
    ap.add_argument("--static", type=int, default=3, help="static figures timed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-build", action="store_true", help="skip timing the one-off pass")
    ap.add_argument("--json", action="store_true", help="also print one JSON line")
    args = ap.parse_args()

    import torch

    from cytosae.analysis.explorer import build_explorer_cache
    from cytosae.plotting import dashboard
    from cytosae.plotting.widget import LatentExplorer
    from cytosae.workflow.notebook import pin_determinism
    from cytosae.workflow.pipeline import Pipeline

    pin_determinism(0)
    out: dict[str, object] = {
        "profile": args.profile,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "loadavg_1min": os.getloadavg()[0],
    }
    pipe = Pipeline(args.profile, progress=False)
    pipe.ensure_all()
    names = list(pipe.profile.eval_datasets)

    if not args.no_build:
        build: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for d in names:
                store, st = pipe.tokens(d), pipe.stats(d)
                pf = concepts = None
                if pipe.synthetic and d == pipe.profile.train_dataset:
                    from cytosae.analysis.recovery import align_patch_fractions

                    gt = pipe.groundtruth(d)
                    pf = align_patch_fractions(gt, pipe.dataset_root(d), store.manifest)
                    concepts = gt.concepts
                t0 = time.perf_counter()
                build_explorer_cache(
                    pipe.sae,
                    store,
                    st,
                    Path(tmp) / d,
                    patch_fractions=pf,
                    concepts=concepts,
                    progress=False,
                )
                build[d] = time.perf_counter() - t0
                print(
                    f"one-off explorer pass {d}: {build[d]:.1f} s ({store.n_images} images"
                    f"{', with concept AUROC' if pf is not None else ''})"
                )
        out["build_s"] = build
        out["build_total_s"] = sum(build.values())
        print(f"one-off explorer pass, all datasets: {out['build_total_s']:.1f} s")

    t0 = time.perf_counter()
    data = pipe.explorer_data()  # the pipeline's cache (built here if it was not yet)
    out["load_s"] = time.perf_counter() - t0
    print(f"explorer data loaded in {out['load_s']:.2f} s ({data.d_sae} latents)")

    rng = np.random.default_rng(args.seed)
    fired = np.flatnonzero(~data.dead())
    sample = rng.choice(fired, size=min(args.latents, fired.size), replace=False)
    latents = np.unique(np.concatenate([sample, data.ordered(data.default_ordering())]))
    look, draw, total = [], [], []
    for s in latents:
        t0 = time.perf_counter()
        v = data.view(int(s))
        t1 = time.perf_counter()
        dashboard.mosaic_png(v)
        dashboard.caption_html(v, "rank 0")
        dashboard.side_html(v)
        dashboard.cohort_html(v)
        t2 = time.perf_counter()
        look.append(t1 - t0)
        draw.append(t2 - t1)
        total.append(t2 - t0)
    out["view"] = stats(look)
    out["draw"] = stats(draw)
    out["render"] = stats(total)

    ex = LatentExplorer(data)
    ex.threshold_filter.value = False
    ex.everywhere_filter.value = False
    ex.ordering.value = "latent index"
    steps = []
    for s in latents:
        ex.slider.value = int(np.flatnonzero(ex.latents == s)[0])
        steps.append(ex.last_render_s)
    out["widget_step"] = stats(steps)

    static = []
    for s in latents[: args.static]:
        t0 = time.perf_counter()
        fig, _ = dashboard.dashboard_figure(data.view(int(s)), pyplot=False)
        fig.savefig(io.BytesIO(), format="png", dpi=150)
        static.append(time.perf_counter() - t0)
    out["static_figure"] = stats(static)

    for key, what in (
        ("view", "look-up (ExplorerData.view)"),
        ("draw", "drawing (mosaic PNG + caption + panels)"),
        ("render", "render per latent (look-up + drawing)"),
        ("widget_step", "widget step (slider -> image and HTML set)"),
        ("static_figure", "static matplotlib figure + PNG (not used by the widget)"),
    ):
        r = out[key]
        print(
            f"{what:58s} median {r['median_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
            f"max {r['max_ms']:7.1f} ms  (n={r['n']})"
        )
    print(
        f"({out['cpus']} CPUs, {out['threads']} torch threads, 1-min load average at start "
        f"{out['loadavg_1min']:.1f})"
    )
    if args.json:
        print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
