"""Sweeps over SAE settings (Fig. 2A, Sec. 3.4): the grid, one tidy row per trained SAE, summaries.

A sweep is a mapping from an *axis* (``"expansion"``, ``"l1"``, ...) to a list of *settings*; each
setting is a dict of dotted profile overrides (:func:`cytosae.workflow.profiles.apply_overrides`),
optionally with a label and the paper's setting it stands for::

    {"expansion": [{"sae.expansion_factor": f} for f in (1, 2, 4)],
     "l1": [{"label": "8e-4", "paper": "8e-4", "set": {"sae.l1_coefficient": 8e-4}}, ...]}

:func:`expand` crosses every setting with the seeds (``sae.seed``) into :class:`Variant` s.
:meth:`cytosae.workflow.pipeline.Pipeline.sweep` trains them, as few passes over the tokens as the
settings allow (all SAEs that share the token store and the ``TrainConfig`` train on one pass), and
returns :func:`sweep_row` s: one row per SAE, with the concept count at every threshold, the dead
fraction, L0 and explained variance. :func:`summarise` gives mean and sd over the seeds, and
:func:`paper_ablation` the paper's published numbers (Sec. 3.4) to set beside them.

This module does no training; it only describes the grid and tabulates results.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cytosae.analysis.thresholds import above_threshold

__all__ = [
    "ABLATION_SEEDS",
    "EXPANSION_SEEDS",
    "PAPER_CHOICE",
    "THRESHOLDS",
    "Variant",
    "ablation_grid",
    "ablation_table",
    "concept_column",
    "diverged_row",
    "expand",
    "expansion_grid",
    "long_counts",
    "normalise_setting",
    "paper_ablation",
    "summarise",
    "sweep_row",
]

#: the concept thresholds of Fig. 2A (log10 mean activation)
THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in range(-6, 1))

#: seeds of the ablation axes per profile (the expansion axis always has three: Fig. 2A)
ABLATION_SEEDS: dict[str, tuple[int, ...]] = {
    "paper": (42, 43, 44),
    "default": (42,),
    "smoke": (42,),
}
EXPANSION_SEEDS: tuple[int, ...] = (42, 43, 44)

#: the paper's chosen setting per axis (Sec. 2, marked *)
PAPER_CHOICE: dict[str, str] = {
    "expansion": "64",
    "l1": "8e-5",
    "lr": "4e-4",
    "layer": "11",
    "ghost_grads": "on",
    "b_dec": "geometric median",
}


def concept_column(threshold: float) -> str:
    """Name of the column holding the concept count at ``threshold`` (``concepts_-3``)."""
    return f"concepts_{float(threshold):g}"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One SAE of a sweep: a setting of one axis, at one seed.

    Attributes:
        axis: the axis of variation (``"expansion"``).
        setting: our label of the setting (``"x4"``).
        paper: the paper's setting it stands for (``"64"``; empty when none).
        seed: the SAE's seed (``sae.seed``).
        overrides: the dotted profile overrides, the seed included, sorted by key.
    """

    axis: str
    setting: str
    paper: str
    seed: int
    overrides: tuple[tuple[str, Any], ...]

    def as_overrides(self) -> dict[str, Any]:
        return dict(self.overrides)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def normalise_setting(setting: Any) -> tuple[str, str, dict[str, Any]]:
    """``(label, paper, overrides)`` of one grid entry.

    Accepted forms: a dict of overrides (label made from its values); ``{"label": ..., "paper":
    ..., "set": {overrides}}``; a pair ``[label, {overrides}]`` (what JSON makes of a tuple).
    """
    if isinstance(setting, Mapping) and "set" in setting:
        extra = set(setting) - {"label", "paper", "set"}
        if extra:
            raise ValueError(f"sweep setting {setting!r}: unknown field(s) {sorted(extra)}")
        ov = dict(setting["set"])
        label = str(setting.get("label") or _auto_label(ov))
        return label, str(setting.get("paper", "")), ov
    if isinstance(setting, Mapping):
        ov = dict(setting)
        return _auto_label(ov), "", ov
    if (
        isinstance(setting, (list, tuple))
        and len(setting) == 2
        and isinstance(setting[0], str)
        and isinstance(setting[1], Mapping)
    ):
        return setting[0], "", dict(setting[1])
    raise ValueError(
        f"sweep setting {setting!r}: expected a dict of overrides, "
        '{"label": ..., "paper": ..., "set": {...}} or [label, {...}]'
    )


def _auto_label(overrides: Mapping[str, Any]) -> str:
    overrides = {k: v for k, v in overrides.items() if k != "sae.seed"}
    if not overrides:
        return "profile"
    if len(overrides) == 1:
        return _fmt(next(iter(overrides.values())))
    return ", ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in overrides.items())


def expand(
    grid: Mapping[str, Sequence[Any]], seeds: Iterable[int], *, seed_key: str = "sae.seed"
) -> list[Variant]:
    """Every (axis, setting, seed) of ``grid`` as a :class:`Variant`, in grid order.

    A setting that sets ``seed_key`` itself is taken at that seed only.

    Raises:
        ValueError: an empty grid, an axis without settings, no seeds, or two settings of one
            axis with the same label.
    """
    seeds = [int(s) for s in seeds]
    if not grid:
        raise ValueError("a sweep needs at least one axis")
    if not seeds:
        raise ValueError("a sweep needs at least one seed")
    out = []
    for axis, settings in grid.items():
        if not settings:
            raise ValueError(f"sweep axis {axis!r} has no settings")
        labels = set()
        for s in settings:
            label, paper, ov = normalise_setting(s)
            if label in labels:
                raise ValueError(f"sweep axis {axis!r}: two settings labelled {label!r}")
            labels.add(label)
            own = [int(ov[seed_key])] if seed_key in ov else seeds
            for seed in own:
                full = {**ov, seed_key: seed}
                out.append(Variant(axis, label, paper, seed, tuple(sorted(full.items()))))
    return out


def expansion_grid(factors: Iterable[int], paper: Iterable[int] | None = None) -> dict[str, list]:
    """The Fig. 2A grid: ``{"expansion": [x f for f in factors]}`` (``paper``: the paper's factor
    each stands for, in the same order)."""
    factors = [int(f) for f in factors]
    papers = [str(p) for p in paper] if paper is not None else [""] * len(factors)
    if len(papers) != len(factors):
        raise ValueError(f"{len(papers)} paper factors for {len(factors)} factors")
    return {
        "expansion": [
            {"label": f"x{f}", "paper": p, "set": {"sae.expansion_factor": f}}
            for f, p in zip(factors, papers)
        ]
    }


# ------------------------------------------------------------------------------------- rows
def _row_head(variant: Variant, d_sae: int) -> dict[str, Any]:
    return {
        "axis": variant.axis,
        "setting": variant.setting,
        "paper": variant.paper,
        "seed": variant.seed,
        "d_sae": int(d_sae),
    }


def sweep_row(
    variant: Variant,
    stats: Any,
    history: pd.DataFrame,
    *,
    thresholds: Iterable[float] = THRESHOLDS,
    sae: str = "",
    last_rows: int = 1,
) -> dict[str, Any]:
    """One row of a sweep table: the variant, its concept counts and its last training metrics.

    Args:
        variant: what was trained.
        stats: its ``LatentStats`` (``mean_acts``, ``sparsity``) on the evaluation dataset.
        history: its training history (``dead_frac``, ``l0``, ``explained_variance``, ``mse``).
        thresholds: concept thresholds (log10 mean activation).
        sae: the SAE's cache key (its folder name).
        last_rows: training metrics are averaged over this many last log rows.

    Returns:
        ``axis``, ``setting``, ``paper``, ``seed``, ``d_sae``, one ``concepts_<t>`` per threshold,
        ``dead_frac`` (training: no firing for more than the dead window, at the end),
        ``never_fired`` (fraction of latents firing on no image of the dataset), ``l0``,
        ``explained_variance``, ``mse``, ``sae``, ``overrides`` (JSON), ``status`` (``"ok"``;
        :func:`diverged_row` for a run that diverged) and ``note``.
    """
    mean_acts = np.asarray(stats.mean_acts, dtype=np.float64)
    sparsity = np.asarray(stats.sparsity, dtype=np.float64)
    tail = history.tail(max(1, last_rows))
    row = _row_head(variant, int(mean_acts.shape[0]))
    for t in thresholds:
        row[concept_column(t)] = int(above_threshold(mean_acts, float(t)).sum())
    row["dead_frac"] = float(tail["dead_frac"].mean())
    row["never_fired"] = float((~(sparsity > 0)).mean())
    for col in ("l0", "explained_variance", "mse"):
        row[col] = float(tail[col].mean()) if col in tail else float("nan")
    row["sae"] = sae
    row["overrides"] = json.dumps(variant.as_overrides(), sort_keys=True)
    row["status"] = "ok"
    row["note"] = ""
    return row


def diverged_row(
    variant: Variant,
    *,
    d_sae: int,
    step: int | None,
    reason: str,
    thresholds: Iterable[float] = THRESHOLDS,
    sae: str = "",
) -> dict[str, Any]:
    """The row of an SAE whose training diverged: its columns as :func:`sweep_row`'s, with NaN
    counts and metrics (a diverged SAE has no final weights), ``status`` ``"diverged"`` and the
    ``note`` saying at which step and why (the paper reports such a setting as "unstable
    training", e.g. its lr 4e-3)."""
    row = _row_head(variant, d_sae)
    for t in thresholds:
        row[concept_column(t)] = float("nan")
    for col in METRICS:
        row[col] = float("nan")
    row["sae"] = sae
    row["overrides"] = json.dumps(variant.as_overrides(), sort_keys=True)
    row["status"] = "diverged"
    row["note"] = (
        f"diverged at step {step}: {reason}" if step is not None else f"diverged: {reason}"
    )
    return row


#: the numeric columns :func:`summarise` averages (besides the concept counts)
METRICS = ("dead_frac", "never_fired", "l0", "explained_variance", "mse")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (axis, setting), in the table's order.

    The sd is the sample sd (``ddof=1``, NaN for one seed), as ``mean ± sd`` over three seeds in
    the paper; seeds that diverged (NaN) are left out of both. Columns: ``axis``, ``setting``,
    ``paper``, ``n_seeds``, ``n_diverged``, ``note`` (the first diverged seed's), then
    ``<col>_mean`` and ``<col>_sd`` for every concept column and metric.
    """
    cols = [c for c in table.columns if c.startswith("concepts_")] + [
        c for c in METRICS if c in table.columns
    ]
    keys = ["axis", "setting"]
    order = table[keys].drop_duplicates()
    g = table.groupby(keys, sort=False)
    mean = g[cols].mean().add_suffix("_mean")
    sd = g[cols].std(ddof=1).add_suffix("_sd")
    n = g.size().rename("n_seeds")
    paper = g["paper"].first()
    n_div = g["status"].apply(lambda x: int((x == "diverged").sum())).rename("n_diverged")
    note = g["note"].apply(lambda x: next((v for v in x if v), "")).rename("note")
    out = pd.concat([paper, n, n_div, note, mean, sd], axis=1)
    out = out.reindex(pd.MultiIndex.from_frame(order)).reset_index()
    inter = ["axis", "setting", "paper", "n_seeds", "n_diverged", "note"]
    for c in cols:
        inter += [f"{c}_mean", f"{c}_sd"]
    return out[inter]


def long_counts(table: pd.DataFrame) -> pd.DataFrame:
    """The concept counts of a sweep table in long form: ``axis``, ``setting``, ``seed``,
    ``threshold``, ``n_concepts`` (one row per SAE and threshold; for seaborn)."""
    cols = [c for c in table.columns if c.startswith("concepts_")]
    long = table.melt(
        id_vars=["axis", "setting", "seed"], value_vars=cols, var_name="c", value_name="n_concepts"
    )
    long["threshold"] = long["c"].str.slice(len("concepts_")).astype(float)
    return long.drop(columns="c")[["axis", "setting", "seed", "threshold", "n_concepts"]]


# ------------------------------------------------------------------------------ the paper
#: Sec. 3.4 of the paper (and Sec. 3.1 for the expansion factors): concepts at threshold -3 on
#: MLL23 (mean ± sd over three seeds) and the dead fraction where published. None: not published.
_PAPER_ROWS: tuple[
    tuple[str, str, float | None, float | None, float | None, float | None, str], ...
] = (
    ("expansion", "16", 1748, 56, None, None, ""),
    ("expansion", "32", 2170, 61, None, None, ""),
    ("expansion", "64", 2936, 114, None, None, "chosen"),
    ("expansion", "128", 3518, 145, None, None, ""),
    ("l1", "8e-4", 128, 83, None, None, "low L0"),
    ("l1", "8e-5", 2936, 114, None, None, "chosen"),
    ("l1", "8e-6", None, None, None, None, "L0 two orders of magnitude higher"),
    ("lr", "4e-3", None, None, None, None, "unstable training"),
    ("lr", "4e-4", 2936, 114, None, None, "chosen"),
    ("lr", "4e-5", 2755, 108, None, None, ""),
    ("layer", "2", 85, 4, None, None, ""),
    ("layer", "5", None, None, None, None, "in the methods' grid; no number (Sec. 3.4 reports 7)"),
    ("layer", "7", 1253, 34, None, None, "reported in Sec. 3.4, not in the methods' grid"),
    ("layer", "11", 2936, 114, None, None, "chosen (blocks[-2])"),
    ("layer", "12", 15161, 3477, None, None, "last layer"),
    ("ghost_grads", "on", 2936, 114, 0.57, 0.03, "chosen"),
    ("ghost_grads", "off", 2907, 133, 0.92, 0.03, ""),
    ("b_dec", "geometric median", 2936, 114, None, None, "chosen; no comparison published"),
    ("b_dec", "mean", None, None, None, None, "no number published"),
)


def paper_ablation() -> pd.DataFrame:
    """The paper's ablation numbers: ``axis``, ``paper`` (its setting), ``concepts_mean``,
    ``concepts_sd`` (at threshold -3, MLL23, three seeds), ``dead_frac_mean``, ``dead_frac_sd``,
    ``note``. NaN where the paper gives no number."""
    cols = ["axis", "paper", "concepts_mean", "concepts_sd", "dead_frac_mean", "dead_frac_sd"]
    df = pd.DataFrame([r[:6] for r in _PAPER_ROWS], columns=cols)
    df["note"] = [r[6] for r in _PAPER_ROWS]
    for c in cols[2:]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _pm(mean: float, sd: float, fmt: str) -> str:
    if not np.isfinite(mean):
        return ""
    if not np.isfinite(sd):
        return format(mean, fmt)
    return f"{format(mean, fmt)} ± {format(sd, fmt)}"


def ablation_table(summary: pd.DataFrame, *, threshold: float = -3.0) -> pd.DataFrame:
    """Ours beside the paper's, one row per setting: the printed Sec. 3.4 table.

    Args:
        summary: :func:`summarise` of a sweep whose settings name the paper's setting they stand
            for (``paper``).
        threshold: the concept threshold of our column (the paper's is -3).

    Returns:
        ``axis``, ``setting`` (ours), ``paper setting``, ``seeds``, ``concepts`` (ours, mean ± sd),
        ``paper concepts``, ``dead frac``, ``paper dead frac``, ``L0``, ``expl. var.``,
        ``paper note``. Paper rows without one of our settings are not listed.
    """
    ref = paper_ablation().set_index(["axis", "paper"])
    c = concept_column(threshold)
    rows = []
    for r in summary.to_dict("records"):
        key = (r["axis"], r["paper"])
        p = ref.loc[key] if key in ref.index else None
        diverged = int(r["n_diverged"])
        ours = _pm(r[f"{c}_mean"], r[f"{c}_sd"], ".0f")
        if diverged == int(r["n_seeds"]):
            ours = str(r["note"]).split(":", 1)[0]  # "diverged at step N"
        elif diverged:
            ours = f"{ours} ({diverged} of {int(r['n_seeds'])} seeds diverged)"
        rows.append(
            {
                "axis": r["axis"],
                "setting": r["setting"],
                "paper setting": r["paper"],
                "seeds": int(r["n_seeds"]),
                "concepts": ours,
                "paper concepts": ""
                if p is None
                else _pm(p["concepts_mean"], p["concepts_sd"], ".0f"),
                "dead frac": _pm(r["dead_frac_mean"], r["dead_frac_sd"], ".2f"),
                "paper dead frac": ""
                if p is None
                else _pm(p["dead_frac_mean"], p["dead_frac_sd"], ".2f"),
                "L0": _pm(r["l0_mean"], r["l0_sd"], ".1f"),
                "expl. var.": _pm(r["explained_variance_mean"], r["explained_variance_sd"], ".3f"),
                "paper note": "" if p is None else str(p["note"]),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ the grids
def ablation_grid(profile: str, *, depth: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The Sec. 3.4 grid of a profile (each setting names the paper's setting it stands for).

    * ``paper``: the paper's grid (expansion 16/32/64*/128, L1 8e-4/8e-5*/8e-6, lr
      4e-3/4e-4*/4e-5, layers 2/5/11*/12 (1-based; ``blocks[1]``, ``[4]``, ``[10]``, ``[11]``),
      ghost grads on*/off, b_dec geometric median*/mean).
    * ``default`` and ``smoke``: scaled for a CPU; see :func:`_cpu_grid`.

    Args:
        depth: the backbone's number of blocks; layers it does not have are left out of the
            paper's layer axis (a miniature backbone, e.g. ``backbone.arch=tiny-test``).
    """
    if profile == "paper":
        layers = [n for n in (2, 5, 11, 12) if depth is None or n <= depth]
        return {
            **expansion_grid((16, 32, 64, 128), (16, 32, 64, 128)),
            "l1": [
                _s(f"{v:g}", p, {"sae.l1_coefficient": v})
                for v, p in ((8e-4, "8e-4"), (8e-5, "8e-5"), (8e-6, "8e-6"))
            ],
            "lr": [
                _s(f"{v:g}", p, {"train.lr": v})
                for v, p in ((4e-3, "4e-3"), (4e-4, "4e-4"), (4e-5, "4e-5"))
            ],
            "layer": [_s(f"layer {n}", str(n), {"backbone.layer": n - 1}) for n in layers],
            "ghost_grads": [
                _s("on", "on", {"sae.use_ghost_grads": True}),
                _s("off", "off", {"sae.use_ghost_grads": False}),
            ],
            "b_dec": [
                _s(
                    "geometric median",
                    "geometric median",
                    {"sae.b_dec_init": "geometric_median_image"},
                ),
                _s("mean", "mean", {"sae.b_dec_init": "mean"}),
            ],
        }
    if profile in ("default", "smoke"):
        return _cpu_grid(profile)
    raise ValueError(f"no ablation grid for profile {profile!r}")


def _s(label: str, paper: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"label": label, "paper": paper, "set": overrides}


#: the settings of the CPU profiles' grids, relative to the profile (see :func:`_cpu_grid`)
CPU_LAYER_SUBSET: dict[str, dict[str, Any]] = {
    "default": {
        "synth.datasets": ["mll23"],
        "synth.mll23_per_class": 1,
        "train.total_images": 240,
    },
    "smoke": {"synth.datasets": ["mll23"]},
}


def _cpu_grid(profile: str) -> dict[str, list[dict[str, Any]]]:
    """The grid of the CPU profiles (``default``; ``smoke`` is the same at its own sizes).

    Sized for a 2-core CPU (every SAE of ``default`` is ~15-30 s there):

    * ``expansion``: x1, x2, x4 standing for the paper's 16, 32, 64 (x4 is the profile's SAE, as
      64 is the paper's; the paper's 128 has no x8 counterpart here, for time). Fig. 2A.
    * ``l1``, ``lr`` and ``b_dec`` vary one setting of the x1 SAE (the cheapest; its seed-42 run
      is the expansion axis's x1): L1 8e-4 / 8e-5 / 8e-6 (the paper's values); lr x10 and /10
      around the profile's (2e-2 / 2e-3 / 2e-4 for the default's 2e-3, which stands for the
      paper's 4e-4); b_dec geometric median / mean.
    * ``ghost_grads``: the profile's own SAE with and without ghost grads (the pair notebook 01
      trains), at the profile's dead window (8 steps on ``default``, scaled to its 180 steps).
    * ``layer``: blocks[1], [4], [10], [11] (the paper's layers 2, 5, 11, 12), on a reduced world
      (:data:`CPU_LAYER_SUBSET`: 1 MLL23 image per class, 18 in all, 60 steps), because each
      deeper extraction costs more (a forward through up to 12 blocks) and a random-init
      network's later blocks barely change the tokens (LayerScale 1e-5), so the axis can only
      show that.
    """
    from cytosae.workflow.profiles import get_profile

    p = get_profile(profile)
    f0 = p.sae.expansion_factor
    lr0 = p.train.lr
    x1 = {"sae.expansion_factor": 1}
    factors = [(1, "16"), (2, "32"), (4, "64")] if f0 == 4 else [(1, "16"), (f0, "64")]
    grid: dict[str, list[dict[str, Any]]] = {
        "expansion": [_s(f"x{f}", paper, {"sae.expansion_factor": f}) for f, paper in factors],
        "l1": [
            _s(f"{v:g}", paper, {**x1, "sae.l1_coefficient": v})
            for v, paper in ((8e-4, "8e-4"), (8e-5, "8e-5"), (8e-6, "8e-6"))
        ],
        "lr": [
            _s(f"{v:.3g}", paper, {**x1, "train.lr": v})
            for v, paper in ((lr0 * 10, "4e-3"), (lr0, "4e-4"), (lr0 / 10, "4e-5"))
        ],
        "layer": [
            _s(
                f"blocks[{b}]",
                str(b + 1),
                {**x1, **CPU_LAYER_SUBSET[profile], "backbone.layer": b},
            )
            for b in (1, 4, 10, 11)
        ],
        "ghost_grads": [  # the profile's SAE and its twin without ghost grads (notebook 01)
            _s("on", "on", {"sae.use_ghost_grads": True}),
            _s("off", "off", {"sae.use_ghost_grads": False}),
        ],
        "b_dec": [
            _s(
                "geometric median",
                "geometric median",
                {**x1, "sae.b_dec_init": "geometric_median_image"},
            ),
            _s("mean", "mean", {**x1, "sae.b_dec_init": "mean"}),
        ],
    }
    return grid
