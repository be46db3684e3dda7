"""CytoSAE companion: sparse autoencoders on DinoBloom tokens for haematology.

The embedded default runs on a *synthetic* blood-smear world through a *randomly
initialised* DinoBloom architecture; see README.md.

The package is laid out by stage, in the order of the data flow (``docs/architecture.md``)::

    data -> model -> store -> train -> analysis -> plotting     (interop: the authors' formats)
    workflow (cached pipeline, profiles, notebooks)   cli (the ``cytosae`` command)   synth

The names most code needs are importable from here; they load on first use, so
``import cytosae`` stays cheap (torch is imported only when one of them is touched).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: public name -> the module that defines it
_LAZY: dict[str, str] = {
    "Pipeline": "cytosae.workflow.pipeline",
    "get_profile": "cytosae.workflow.profiles",
    "load_manifest": "cytosae.data.adapters",
    "BackboneConfig": "cytosae.model.backbone",
    "load_backbone": "cytosae.model.backbone",
    "SAEConfig": "cytosae.model.sae",
    "SparseAutoencoder": "cytosae.model.sae",
    "ExtractConfig": "cytosae.store",
    "extract_tokens": "cytosae.store",
    "TokenStore": "cytosae.store",
    "TrainConfig": "cytosae.train",
    "train_sae": "cytosae.train",
    "train_many": "cytosae.train",
    "save_sae": "cytosae.train.checkpoint",
    "load_sae": "cytosae.train.checkpoint",
    "load_any_sae": "cytosae.train.pretrained",
    "EncodeConfig": "cytosae.analysis.latents",
    "LatentStats": "cytosae.analysis.latents",
    "encode_pass": "cytosae.analysis.latents",
    "load_official": "cytosae.interop",
    "export_official": "cytosae.interop",
    "load_official_stats": "cytosae.interop",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cytosae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
