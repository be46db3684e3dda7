"""Throughput of the synthetic-world renderer (images per second, one process).

    python benchmarks/bench_synth.py [--n 300] [--size 288]

Prints images/s for: render only (scene + colouring), render + ground truth (masks' patch
fractions), and render + ground truth + TIFF(LZW) write, plus the ratios between them.
Timings are noisy on a shared machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cytosae.synth import CELL_TYPES, render_scene
from cytosae.synth.groundtruth import scene_patch_fractions
from cytosae.synth.render import _bank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300, help="images per measurement")
    ap.add_argument("--size", type=int, default=288, help="crop size in px")
    ap.add_argument("--domain", default="metafer")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass
    _bank()  # build the noise bank outside the timings
    types = [CELL_TYPES[i % len(CELL_TYPES)] for i in range(args.n)]

    t0, c0 = time.perf_counter(), time.process_time()
    for i, ct in enumerate(types):
        render_scene(ct, args.domain, args.size, np.random.default_rng(i)).paint()
    t_render, c_render = time.perf_counter() - t0, time.process_time() - c0

    t0 = time.perf_counter()
    for i, ct in enumerate(types):
        sc = render_scene(ct, args.domain, args.size, np.random.default_rng(i))
        sc.paint()
        scene_patch_fractions(sc.owner, sc.tagbits)
    t_gt = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        for i, ct in enumerate(types):
            sc = render_scene(ct, args.domain, args.size, np.random.default_rng(i))
            Image.fromarray(sc.paint()).save(Path(d) / f"{i}.tif", compression="tiff_lzw")
            scene_patch_fractions(sc.owner, sc.tagbits)
        t_write = time.perf_counter() - t0

    n = args.n
    print(
        f"synthetic renderer, {n} images of {args.size} px ({args.domain}), one process / one BLAS thread"
    )
    print(
        f"  render only                 : {n / t_render:8.1f} images/s  ({n / c_render:.1f} per CPU-second)"
    )
    print(
        f"  render + ground truth       : {n / t_gt:8.1f} images/s  (x{t_render / t_gt:.2f} of render only)"
    )
    print(
        f"  render + ground truth + TIFF: {n / t_write:8.1f} images/s  (x{t_render / t_write:.2f} of render only)"
    )


if __name__ == "__main__":
    main()
