"""The authors' SAE checkpoint format, read without executing pickled code and written back.

The format is ``torch.save({"cfg": ViTSAERunnerConfig(...), "state_dict": {...}})`` where the
config is a pickled dataclass ``src.sae_training.config.ViTSAERunnerConfig`` holding a
``torch.device`` and ``torch.float32``. :func:`load_official` reads it through a restricted
unpickler that maps exactly that class to a plain record and refuses every other global;
:func:`export_official` writes the class by name, so the authors' code loads the file with a plain
``torch.load``. Our own format is :mod:`cytosae.train.checkpoint`.
"""

from __future__ import annotations

import collections
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from cytosae.atomic import atomic_path
from cytosae.model.sae import SAEConfig, SparseAutoencoder
from cytosae.train.checkpoint import CheckpointError, load_state_into

__all__ = [
    "OFFICIAL_CLASS",
    "OFFICIAL_MODULE",
    "OfficialConfigRecord",
    "RestrictedUnpickler",
    "default_official_fields",
    "export_official",
    "load_official",
    "read_official",
    "refusal_reason",
]

OFFICIAL_MODULE = "src.sae_training.config"
OFFICIAL_CLASS = "ViTSAERunnerConfig"


class OfficialConfigRecord(dict):
    """Plain record standing in for ``src.sae_training.config.ViTSAERunnerConfig`` while unpickling."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            for part in state:
                if isinstance(part, dict):
                    self.update(part)
        elif isinstance(state, dict):
            self.update(state)
        else:
            raise pickle.UnpicklingError(
                f"unexpected state for {OFFICIAL_CLASS}: {type(state).__name__}"
            )


_DTYPE_NAMES = {
    "float32", "float64", "float16", "bfloat16", "float", "double", "half",
    "int64", "int32", "int16", "int8", "uint8", "bool", "long", "int",
}  # fmt: skip
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals an authors' checkpoint needs.

    ``src.sae_training.config.ViTSAERunnerConfig`` becomes :class:`OfficialConfigRecord`; tensors,
    devices, dtypes and ``OrderedDict`` are allowed; any other global raises ``UnpicklingError``
    before it could be called.
    """

    source: str = "<checkpoint>"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (OFFICIAL_MODULE, OFFICIAL_CLASS):
            return OfficialConfigRecord
        if module == "torch" and name in _DTYPE_NAMES:
            return getattr(torch, name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"{self.source}: refusing to unpickle global {module}.{name} "
            f"(only {OFFICIAL_MODULE}.{OFFICIAL_CLASS}, tensors, devices and dtypes are allowed)"
        )


def _restricted_pickle_module(source: str) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler is :class:`RestrictedUnpickler`."""

    class _U(RestrictedUnpickler):
        pass

    _U.source = source
    mod = types.ModuleType("cytosae_restricted_pickle")
    mod.Unpickler = _U  # type: ignore[attr-defined]
    mod.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    mod.load = lambda file, **kw: _U(file, **kw).load()  # type: ignore[attr-defined]
    return mod


def refusal_reason(exc: BaseException) -> str:
    """The reason of a refused or failed load in our words: torch's ``weights_only`` message
    (which suggests loading with ``weights_only=False``, i.e. running the file's code) is cut
    down to the global it refused. Our messages never suggest that."""
    text = str(exc)
    if "weights_only" not in text:
        return text
    import re

    m = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
    what = f"the global {m.group(1)}" if m else "an object that is not a plain tensor"
    return (
        f"it holds a pickled {what}, which would run code when loaded; refused (the file is "
        "damaged, not in the expected format, or malicious)"
    )


def _plain(value: Any) -> Any:
    """Convert devices and dtypes in a record to JSON-friendly strings."""
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).replace("torch.", "")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return value


def read_official(path: str | Path) -> dict[str, Any]:
    """Read an authors'-format file with the restricted unpickler: ``{"cfg": dict, "state_dict": dict}``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"missing file {p}")
    try:
        obj = torch.load(
            str(p),
            map_location="cpu",
            pickle_module=_restricted_pickle_module(str(p)),
            weights_only=False,
        )
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{p}: {refusal_reason(exc)}") from exc
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"could not read authors' checkpoint {p}: {refusal_reason(exc)}"
        ) from exc
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise CheckpointError(
            f"{p}: expected a dict with 'cfg' and 'state_dict', got {type(obj).__name__}"
        )
    cfg = obj.get("cfg")
    return {
        "cfg": _plain(dict(cfg)) if isinstance(cfg, dict) else {},
        "state_dict": dict(obj["state_dict"]),
    }


def load_official(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[SparseAutoencoder, dict[str, Any]]:
    """Load the authors' checkpoint (``final_sparse_autoencoder_*.pt``) without executing pickled code.

    Returns:
        ``(sae, cfg_fields)`` where ``cfg_fields`` is the authors' config as a plain dict (devices and
        dtypes as strings).
    """
    p = Path(path)
    data = read_official(p)
    cfg, sd = data["cfg"], data["state_dict"]
    if "W_enc" not in sd:
        raise CheckpointError(f"{p}: state_dict lacks W_enc (keys: {sorted(sd)})")
    d_in, d_sae = (int(s) for s in sd["W_enc"].shape)
    d_in = int(cfg.get("d_in", d_in))
    if "d_sae" in cfg and int(cfg["d_sae"]) != d_sae:
        raise CheckpointError(
            f"{p}: cfg d_sae={cfg['d_sae']} disagrees with W_enc shape {(d_in, d_sae)}"
        )
    if d_sae % d_in == 0:
        width = {"expansion_factor": d_sae // d_in}
    else:  # any width (the authors' code makes multiples; other implementations need not)
        width = {
            "expansion_factor": int(cfg.get("expansion_factor", 0)) or max(1, d_sae // d_in),
            "n_latents": d_sae,
        }
    b_init = str(cfg.get("b_dec_init_method", "geometric_median"))
    sae_cfg = SAEConfig(
        d_in=d_in,
        **width,
        l1_coefficient=float(cfg.get("l1_coefficient", 8e-5)),
        use_ghost_grads=bool(cfg.get("use_ghost_grads", True)),
        dead_feature_window=int(cfg.get("dead_feature_window", 64)),
        b_dec_init={"geometric_median": "geometric_median_image", "mean": "mean"}.get(
            b_init, "zeros"
        ),
        seed=int(cfg.get("seed", 42)),
    )
    if (
        "expansion_factor" in cfg
        and int(cfg["expansion_factor"]) != sae_cfg.expansion_factor
        and not sae_cfg.n_latents
    ):
        raise CheckpointError(
            f"{p}: cfg expansion_factor={cfg['expansion_factor']} disagrees with W_enc shape {(d_in, d_sae)}"
        )
    sae = SparseAutoencoder(sae_cfg)
    load_state_into(
        sae, {k: v for k, v in sd.items() if k in ("W_enc", "b_enc", "W_dec", "b_dec")}, p
    )
    return sae.to(device).eval(), cfg


class _OfficialCfgStandIn:
    """Pickled under the authors' class name by :class:`_ExportPickler`."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


class _ExportPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _OfficialCfgStandIn:
            self.write(pickle.GLOBAL + f"{OFFICIAL_MODULE}\n{OFFICIAL_CLASS}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


_EXPORT_PICKLE_MODULE = types.ModuleType("cytosae_export_pickle")
_EXPORT_PICKLE_MODULE.Pickler = _ExportPickler  # type: ignore[attr-defined]
_EXPORT_PICKLE_MODULE.Unpickler = pickle.Unpickler  # type: ignore[attr-defined]


def default_official_fields(sae: SparseAutoencoder) -> dict[str, Any]:
    """The authors' config fields that describe ``sae`` (paper values for the rest)."""
    c = sae.cfg
    return {
        "model_name": "dinov2_vitb14",
        "module_name": "resid",
        "block_layer": -2,
        "class_token": None,
        "d_in": c.d_in,
        "expansion_factor": c.expansion_factor,
        "d_sae": c.d_sae,
        "b_dec_init_method": {
            "geometric_median_image": "geometric_median",
            "geometric_median_token": "geometric_median",
        }.get(c.b_dec_init, c.b_dec_init),
        "l1_coefficient": c.l1_coefficient,
        "lr": 4e-4,
        "lr_scheduler_name": "constantwithwarmup",
        "lr_warm_up_steps": 500,
        "batch_size": 64,
        "total_training_tokens": 1_000_000,
        "use_ghost_grads": c.use_ghost_grads,
        "dead_feature_window": c.dead_feature_window,
        "seed": c.seed,
        "device": torch.device("cpu"),
        "dtype": torch.float32,
    }


def export_official(
    sae: SparseAutoencoder, path: str | Path, cfg_fields: dict[str, Any] | None = None
) -> Path:
    """Write ``sae`` in the authors' format (a pickled ``ViTSAERunnerConfig`` + float32 state dict).

    Args:
        sae: A ReLU SAE.
        path: Output ``.pt`` file.
        cfg_fields: Extra/overriding config fields (plain values, ``torch.device`` or ``torch.dtype``).
    """
    if sae.cfg.activation != "relu":
        raise ValueError(
            f"the authors' format holds ReLU SAEs only, got activation={sae.cfg.activation!r}"
        )
    fields = default_official_fields(sae)
    fields.update(cfg_fields or {})
    obj = {
        "cfg": _OfficialCfgStandIn(fields),
        "state_dict": {
            k: getattr(sae, k).detach().float().cpu().clone()
            for k in ("W_enc", "b_enc", "W_dec", "b_dec")
        },
    }
    p = Path(path)
    with atomic_path(p) as tmp:
        torch.save(obj, str(tmp), pickle_module=_EXPORT_PICKLE_MODULE, pickle_protocol=2)
    return p
