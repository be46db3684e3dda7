"""Run profiles: ``smoke``, ``default`` and ``paper`` (a papermill parameter of every notebook).

* ``smoke``   -- seconds per notebook: a tiny synthetic world and a tiny SAE; used by tests.
* ``default`` -- the embedded default: the SYNTHETIC blood-smear world through a RANDOMLY
  INITIALISED DinoBloom-B architecture on a CPU, in minutes.  Because the random network's
  later blocks barely change its tokens (LayerScale starts at 1e-5) while costing 5x the time
  on a 2-core CPU, the default reads the residual stream after block 2 (``blocks[1]``, an
  ablation setting of the paper) and trains a x4 SAE for one pass over the 720 MLL23-like images
  (180 steps of 4 images = 1,028 tokens) at lr 2e-3 with the paper's L1 coefficient 8e-5; the
  paper's 15,625 steps at lr 4e-4 would take hours on a CPU.
* ``paper``   -- the real datasets and DinoBloom-B weights from folders the user names
  (``$CYTOSAE_DATA``, ``$CYTOSAE_DINOBLOOM_WEIGHTS``), the paper's hyper-parameters
  (``blocks[-2]``, x64, 1M training images of 257 tokens); meant for a GPU.

Any profile takes a pretrained SAE instead of training one (``pretrained_sae``: the authors'
``.pt`` or a cytosae SAE folder; ``"env"``: ``$CYTOSAE_SAE``) and extra datasets of the user's own
cells (``custom_datasets``: names read from ``$CYTOSAE_DATA_<NAME>`` or ``$CYTOSAE_DATA/<name>``, a
folder of class sub-folders (``imagefolder`` layout) or a ``.csv`` manifest (``csv`` layout)).

Nothing here imports the synthetic world (:mod:`cytosae.synth`): the synthetic profiles import
its config when they are built, so the real path never loads it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cytosae.config import JsonConfig, _coerce
from cytosae.data.catalog import DATASET_ROOTS
from cytosae.model.backbone import ARCHS, BackboneConfig
from cytosae.model.sae import SAEConfig
from cytosae.store.extract import ExtractConfig
from cytosae.train import TrainConfig

PROFILES = ("smoke", "default", "paper")

#: what a custom dataset's name may look like (it names ``$CYTOSAE_DATA_<NAME>``)
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class Profile(JsonConfig):
    """Everything a run needs; hashed pieces of it name the cache folders.

    Attributes:
        name: ``smoke`` | ``default`` | ``paper``.
        synth: the synthetic world's :class:`cytosae.synth.SynthConfig`, or None for real data
            (typed loosely so that this module never imports :mod:`cytosae.synth`).
        backbone, extract, sae, train: the stages' configs.
        train_dataset: the dataset the SAE is trained on (Fig. 2A's and Fig. 3's dataset).
        eval_datasets: the datasets encoded for statistics and reference images.
        tau, top_k, threshold, seed: the encode pass's Eq. 2 threshold and reference images per
            latent; the log10 mean-activation threshold; the probe's seed.
        pretrained_sae: use this SAE instead of training one: the authors' ``.pt`` or a cytosae
            SAE folder; ``"env"``: ``$CYTOSAE_SAE``; ``""`` (default): train ``sae`` on
            ``train_dataset``. Cache keys downstream use the file's sha256.
        custom_datasets: extra datasets of the user's own cells, by name (lowercase, e.g.
            ``mycells``), each read from ``$CYTOSAE_DATA_<NAME>`` (else ``$CYTOSAE_DATA/<name>``):
            a folder ``<label>/**/<image>`` (``imagefolder``), or a ``.csv`` file or a folder
            holding ``manifest.csv`` (``csv``: a ``path`` column, optional ``label``,
            ``patient``, ``disease``). Name them in ``eval_datasets`` (or ``train_dataset``) to
            use them.
        overrides: the dotted-key overrides applied (recorded by :func:`apply_overrides`).
    """

    name: str
    synth: JsonConfig | None
    backbone: BackboneConfig
    extract: ExtractConfig
    sae: SAEConfig
    train: TrainConfig
    train_dataset: str = "mll23"
    eval_datasets: tuple[str, ...] = ("mll23", "acevedo", "matek19", "bmc", "hehr")
    tau: float = 0.2
    top_k: int = 10
    threshold: float = -3.0
    seed: int = 42
    pretrained_sae: str = ""
    custom_datasets: tuple[str, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()

    def validate(self) -> None:
        for d in self.custom_datasets:
            if d in DATASET_ROOTS or not _DATASET_NAME.match(d):
                raise ValueError(
                    f"Profile.custom_datasets: {d!r} must be a new lowercase name "
                    f"([a-z][a-z0-9_]*, not one of {list(DATASET_ROOTS)})"
                )
        known = [*DATASET_ROOTS, *self.custom_datasets]
        for d in (self.train_dataset, *self.eval_datasets):
            if d not in known:
                raise ValueError(
                    f"Profile.eval_datasets: unknown dataset {d!r}; known {known} "
                    "(a folder of your own cells: add its name to custom_datasets)"
                )
        if not math.isfinite(self.tau) or self.tau < 0:
            raise ValueError(f"Profile.tau must be a finite number >= 0, got {self.tau}")
        if self.top_k < 1:
            raise ValueError(f"Profile.top_k must be >= 1, got {self.top_k}")
        width = ARCHS[self.backbone.arch].embed_dim
        if self.sae.d_in != width:
            raise ValueError(
                f"Profile.sae.d_in={self.sae.d_in} does not match the width {width} of "
                f"backbone.arch={self.backbone.arch!r}"
            )

    def real_root(self, name: str) -> Path:
        """Root of a real dataset: ``$CYTOSAE_DATA_<NAME>`` or ``$CYTOSAE_DATA/<layout>``.

        A custom dataset's default root is ``$CYTOSAE_DATA/<name>``.
        """
        env = os.environ.get(f"CYTOSAE_DATA_{name.upper()}")
        if env:
            return Path(env).expanduser()
        base = os.environ.get("CYTOSAE_DATA")
        if not base:
            what = (
                f"your {name} cells"
                if name in self.custom_datasets
                else ", ".join(DATASET_ROOTS.values())
            )
            raise RuntimeError(
                f"profile {self.name!r} reads real data: set CYTOSAE_DATA to the folder holding "
                f"{what} (or CYTOSAE_DATA_{name.upper()} for {name})"
            )
        return Path(base).expanduser() / DATASET_ROOTS.get(name, name)

    def dataset_kind(self, name: str, root: Path) -> str:
        """The adapter that reads ``name`` at ``root``: its own layout for the five datasets; for a
        custom dataset ``csv`` when ``root`` is a ``.csv`` file or holds ``manifest.csv``, else
        ``imagefolder``."""
        if name in DATASET_ROOTS:
            return name
        if root.suffix.lower() == ".csv" or (root / "manifest.csv").is_file():
            return "csv"
        return "imagefolder"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """As :meth:`JsonConfig.from_dict`; ``synth`` is rebuilt as a ``SynthConfig`` (which
        imports :mod:`cytosae.synth`) only when present."""
        data = dict(data)
        synth = data.pop("synth", None)
        base = super().from_dict({**data, "synth": None})
        if synth is None:
            return base
        from cytosae.synth import SynthConfig

        return dataclasses.replace(base, synth=SynthConfig.from_dict(synth))


#: Profile fields that overrides may not set
_FIXED = ("name", "overrides")


def override_keys(profile: Profile) -> list[str]:
    """Every dotted key :func:`apply_overrides` accepts for ``profile`` (``sae.lr`` style)."""
    keys = []
    for f in dataclasses.fields(profile):
        if f.name in _FIXED:
            continue
        value = getattr(profile, f.name)
        if isinstance(value, JsonConfig):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(value)]
        elif value is None and f.name == "synth":
            continue
        else:
            keys.append(f.name)
    return keys


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (``16``, ``4e-5``, ``true``, ``["a"]``), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _typed(cls: type, field: str, value: Any, key: str) -> Any:
    hint = typing.get_type_hints(cls)[field]
    value = _coerce(hint, list(value) if isinstance(value, tuple) else value, key)
    base = hint
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        base = rest[0] if len(rest) == 1 else hint
    if typing.get_origin(base) is typing.Literal:
        choices = typing.get_args(base)
        if value not in choices:
            raise ValueError(f"override {key}={value!r}: choose one of {list(choices)}")
        return value
    expected = typing.get_origin(base) or base
    ok = isinstance(value, expected) if isinstance(expected, type) else True
    if (expected is int and isinstance(value, bool)) or (
        expected is float and isinstance(value, bool)
    ):
        ok = False
    if not ok:
        raise ValueError(
            f"override {key}={value!r}: expected {getattr(expected, '__name__', expected)}"
        )
    return value


def apply_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """``profile`` with dotted-key overrides applied and validated.

    Keys name a config field (``sae.expansion_factor``, ``train.lr``, ``backbone.layer``,
    ``extract.batch_size``, ``synth.mll23_per_class``) or a top-level field (``tau``,
    ``eval_datasets``, ...). String values are parsed as JSON where they parse (the command
    line's ``--set key=value``). When ``backbone.arch`` changes and ``sae.d_in`` is not given, the
    SAE's input width follows the architecture. The overrides are recorded in
    ``Profile.overrides``; cache keys change with them because every cache key hashes the
    configs they changed.

    Raises:
        ValueError: an unknown key (the message names it and lists the valid ones), a value of
            the wrong type, or a value its config rejects.
    """
    if not overrides:
        return profile
    valid = override_keys(profile)
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    record = []
    for key, raw in sorted(overrides.items()):
        value = parse_value(raw) if isinstance(raw, str) else raw
        if key not in valid:
            head = key.split(".", 1)[0]
            near = [k for k in valid if k.startswith(head + ".")] or valid
            raise ValueError(
                f"unknown override key {key!r} for profile {profile.name!r}; valid keys: "
                + ", ".join(near)
            )
        if "." in key:
            section, field = key.split(".", 1)
            cls = type(getattr(profile, section))
            sections.setdefault(section, {})[field] = _typed(cls, field, value, key)
        else:
            top[key] = _typed(Profile, key, value, key)
        record.append((key, json.dumps(value, sort_keys=True)))
    arch = sections.get("backbone", {}).get("arch")
    if arch is not None and "d_in" not in sections.get("sae", {}) and arch in ARCHS:
        sections.setdefault("sae", {})["d_in"] = ARCHS[arch].embed_dim
    changes: dict[str, Any] = dict(top)
    for section, fields in sections.items():
        changes[section] = dataclasses.replace(getattr(profile, section), **fields)
    changes["overrides"] = tuple(sorted({*profile.overrides, *record}))
    return dataclasses.replace(profile, **changes)


def get_profile(name: str, overrides: Mapping[str, Any] | None = None) -> Profile:
    """The named profile, with ``overrides`` applied (:func:`apply_overrides`).

    An unknown name is an error listing the known ones.
    """
    if not isinstance(name, str):
        raise ValueError(f"profile must be a name, one of {PROFILES}; got {name!r}")
    return apply_overrides(_base_profile(name), overrides or {})


def _base_profile(name: str) -> Profile:
    if name in ("smoke", "default"):
        from cytosae.synth import SynthConfig  # only the synthetic profiles load the world
    if name == "smoke":
        return Profile(
            name="smoke",
            synth=SynthConfig.for_profile(
                "smoke", hehr_patients_per_disease=5, hehr_images_per_patient=2
            ),
            backbone=BackboneConfig(arch="dinobloom-s", weights="random", layer=1),
            extract=ExtractConfig(batch_size=16, precision="fp32"),
            sae=SAEConfig(d_in=384, expansion_factor=2),
            train=TrainConfig(
                lr=2e-3,
                total_images=48,
                batch_images=4,
                lr_warmup_steps=3,
                log_every=3,
                checkpoint_every=6,
                b_dec_init_images=16,
            ),
            top_k=5,
        )
    if name == "default":
        return Profile(
            name="default",
            synth=SynthConfig.for_profile("default"),
            backbone=BackboneConfig(arch="dinobloom-b", weights="random", layer=1),
            extract=ExtractConfig(batch_size=32, precision="fp32"),
            # dead window scaled to the 180-step run (the paper's 64 steps are 0.4% of its
            # 15,625; here they would be a third of the run and hide the ghost-grads effect)
            sae=SAEConfig(d_in=768, expansion_factor=4, dead_feature_window=8),
            train=TrainConfig(
                lr=2e-3,
                total_images=720,
                batch_images=4,
                lr_warmup_steps=10,
                log_every=5,
                checkpoint_every=60,
            ),
        )
    if name == "paper":
        return Profile(
            name="paper",
            synth=None,
            backbone=BackboneConfig(arch="dinobloom-b", weights="env", layer=-2),
            extract=ExtractConfig(batch_size=128),
            sae=SAEConfig(d_in=768, expansion_factor=64),
            train=TrainConfig(total_images=1_000_000, batch_images=64, lr_warmup_steps=500),
        )
    raise ValueError(f"unknown profile {name!r}; choose one of {PROFILES}")
