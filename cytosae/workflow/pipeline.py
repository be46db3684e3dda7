"""The cached pipeline that notebooks ask for what they need.

Every stage's artifact lives in a folder keyed by a hash of its config and of its
inputs, under the runs root (:func:`cytosae.paths.runs_root`)::

    runs/synth/<hash(SynthConfig)>/                 the five synthetic datasets (+ ground truth)
    runs/tokens/<hash(manifest, backbone, ...)>/     token store (owned by cytosae.store)
    runs/sae/<hash(SAEConfig, TrainConfig, store)>/  trained SAE + history (cytosae.train)
    runs/stats/<hash(sae, store, tau, top_k)>/       latent statistics (cytosae.analysis.latents)
    runs/explorer/<hash(sae weights, store, stats)>/ the latent explorer's arrays (analysis.explorer)

With ``Profile.pretrained_sae`` (the authors' ``.pt`` or a cytosae SAE folder) nothing is trained
and ``runs/sae/`` is not written: the SAE is read from the file, and the statistics' key uses the
file's sha256 (``pretrained-<sha256[:16]>``) in place of the training key.

A stage is reused when its folder is complete and computed otherwise, so each
notebook runs on its own and the second one does not redo the first one's work.
Folders are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cytosae import __version__
from cytosae.atomic import atomic_dir, is_complete, mark_complete
from cytosae.config import digest
from cytosae.data.catalog import DATASET_ROOTS
from cytosae.paths import runs_root
from cytosae.workflow.profiles import Profile, apply_overrides, get_profile

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from cytosae.analysis.latents import LatentStats
    from cytosae.model.sae import SAEConfig, SparseAutoencoder
    from cytosae.store.reader import TokenStore
    from cytosae.train.loop import TrainingDiverged
    from cytosae.train.pretrained import SAEFile

log = logging.getLogger(__name__)


def code_digest(*modules: str) -> str:
    """Digest of the source files of the named modules/packages, so a code change invalidates
    the cached artifacts it produced (the version number alone would not)."""
    import hashlib
    import importlib

    h = hashlib.sha256()
    for name in modules:
        mod = importlib.import_module(name)
        files = (
            [Path(mod.__file__)]
            if not hasattr(mod, "__path__")
            else sorted(Path(next(iter(mod.__path__))).glob("*.py"))
        )
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def cached_dir(root: Path, key: str, build: Callable[[Path], None]) -> Path:
    """Return ``root/key``, building it with ``build(tmp_dir)`` first when incomplete.

    ``build`` writes into a fresh temporary sibling folder which is renamed into place
    only when it returns, followed by the completion marker (:data:`cytosae.atomic.COMPLETE`), so a crash never leaves a
    folder that looks complete.
    """
    final = root / key
    if is_complete(final):
        return final
    with atomic_dir(final) as tmp:
        build(tmp)
        mark_complete(tmp, {"cytosae": __version__})
    return final


_SAE_CODE = (
    "cytosae.model.sae",
    "cytosae.train",
    "cytosae.model.sparse_ops",
    "cytosae.model.geomedian",
)


class Pipeline:
    """Lazily computed, cached artifacts of one profile.

    Args:
        profile: a profile name (``smoke``, ``default``, ``paper``) or a :class:`Profile`.
        runs: cache root; defaults to :func:`cytosae.paths.runs_root`.
        progress: show progress bars.
        overrides: dotted-key settings applied to the profile
            (:func:`cytosae.workflow.profiles.apply_overrides`, e.g. ``{"sae.expansion_factor": 16}``).

    Raises:
        FileNotFoundError, ValueError: with ``Profile.pretrained_sae``, right away (before any
            extraction): no file at the path, a file that is not an SAE, or an SAE whose ``d_in``
            is not the backbone's width.
    """

    def __init__(
        self,
        profile: str | Profile = "default",
        runs: Path | None = None,
        progress: bool = True,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        base = get_profile(profile) if isinstance(profile, str) else profile
        self.profile = apply_overrides(base, overrides or {})
        self.runs = Path(runs) if runs is not None else runs_root()
        self.progress = progress
        self._pretrained: SparseAutoencoder | None = None
        if self.profile.pretrained_sae:
            self._pretrained = self._load_pretrained()

    # ------------------------------------------------------------------ data
    @property
    def synthetic(self) -> bool:
        return self.profile.synth is not None

    def banner(self) -> str:
        """One line saying what this run is made of; printed at the top of every notebook."""
        p = self.profile
        bb = p.backbone
        weights = "RANDOM-INIT weights" if bb.weights == "random" else f"weights {bb.weights}"
        if bb.weights == "env":
            from cytosae.model.backbone import WEIGHTS_ENV

            path = os.environ.get(WEIGHTS_ENV, "").strip()
            weights = f"weights {Path(path).name if path else '(unset)'} from ${WEIGHTS_ENV}"
        data = "SYNTHETIC blood-smear world (not real cells)" if self.synthetic else "real datasets"
        line = (
            f"profile={p.name}: {data}; backbone {bb.arch} ({weights}), "
            f"tokens from blocks[{bb.layer}]; {self.sae_description()}"
        )
        if p.overrides:
            line += "; overrides " + ", ".join(f"{k}={v}" for k, v in p.overrides)
        return line

    def tag(self) -> str:
        """Short label for figure titles."""
        parts = ["SYNTHETIC data" if self.synthetic else "real data"]
        if self.profile.backbone.weights == "random":
            parts.append("random-init DinoBloom")
        if self.sae_source is not None:
            who = "authors'" if self.sae_source.kind == "official" else "pretrained"
            parts.append(f"{who} SAE {self.sae_source.short[:8]}")
        return ", ".join(parts)

    def save_figure(self, fig: Any, name: str) -> tuple[Path, Path]:
        """Write ``fig`` to ``figures/`` as PNG and PDF (suffixed with the profile unless default)."""
        from cytosae.paths import figures_dir
        from cytosae.plotting.panels import save_figure

        if self.profile.name != "default":
            name = f"{name}_{self.profile.name}"
        if self.profile.overrides:  # never overwrite the committed figures with a variant
            name = f"{name}_{digest(self.profile.overrides, length=8)}"
        return save_figure(fig, name, figures_dir())

    def show(self, fig: Any, name: str) -> None:
        """Save ``fig`` as :meth:`save_figure` does, then show it with ``plt.show()``.

        In a notebook the inline backend displays the open pyplot figures and closes them; a
        figure made without pyplot (``matplotlib.figure.Figure(...)``, as
        ``dashboard_figure(..., pyplot=False)`` makes them) is saved but not displayed. Returns nothing, so a
        call that ends a cell adds no output.
        """
        import matplotlib.pyplot as plt

        self.save_figure(fig, name)
        plt.show()

    @functools.cached_property
    def synth_root(self) -> Path:
        from cytosae.synth import write_all

        cfg = self.profile.synth
        if cfg is None:
            raise RuntimeError(f"profile {self.profile.name!r} has no synthetic world")
        key = digest("synth", __version__, code_digest("cytosae.synth"), cfg.to_dict())

        def build(tmp: Path) -> None:
            write_all(tmp, cfg, progress=self.progress)

        return cached_dir(self.runs / "synth", key, build)

    def dataset_root(self, name: str) -> Path:
        """Root folder of a dataset, in the layout its adapter reads.

        A custom dataset (``Profile.custom_datasets``) is always the user's folder, also on a
        synthetic profile.
        """
        if name in self.profile.custom_datasets:
            return self.profile.real_root(name)
        if name not in DATASET_ROOTS:
            raise ValueError(
                f"unknown dataset {name!r}; known: {[*DATASET_ROOTS, *self.profile.custom_datasets]}"
            )
        if self.synthetic:
            return self.synth_root / DATASET_ROOTS[name]
        return self.profile.real_root(name)

    @functools.cache  # noqa: B019 - one Pipeline per notebook; it lives as long as its caches
    def manifest(self, name: str) -> pd.DataFrame:
        from cytosae.data.adapters import load_manifest

        root = self.dataset_root(name)
        kind = self.profile.dataset_kind(name, root)
        if kind == name:
            return load_manifest(name, root)
        return load_manifest(kind, root, name=name)

    def check_data(self, *, decode: bool = False) -> dict[str, Any]:
        """``cytosae check-data`` on every dataset the profile reads (real data), by name.

        Headers only by default (seconds; ``decode=True`` decodes every image, as the command
        does). Returns ``{name: DatasetReport}``; ``cytosae.cli.check_data.format_dataset``
        prints one.
        """
        from cytosae.data.check import check_dataset

        out = {}
        for name in dict.fromkeys((self.profile.train_dataset, *self.profile.eval_datasets)):
            root = self.dataset_root(name)
            out[name] = check_dataset(
                self.profile.dataset_kind(name, root),
                root,
                arch=self.profile.backbone.arch,
                runs_root=self.runs,
                decode=decode,
                progress=False,
            )
        return out

    def groundtruth(self, name: str) -> Any:
        """Ground truth of a synthetic dataset (pixel masks, patch fractions, cell types)."""
        from cytosae.synth import load_groundtruth

        if not self.synthetic:
            raise RuntimeError("ground truth exists only for the synthetic world")
        return load_groundtruth(self.dataset_root(name))

    # ---------------------------------------------------------------- tokens
    @functools.cache  # noqa: B019 - one Pipeline per notebook; it lives as long as its caches
    def tokens(self, name: str) -> TokenStore:
        from cytosae.store.extract import extract_tokens

        return extract_tokens(
            self.manifest(name),
            self.profile.backbone,
            self.runs,
            self.profile.extract,
            progress=self.progress,
        )

    # ------------------------------------------------------------------- SAE
    @functools.cached_property
    def sae_source(self) -> SAEFile | None:
        """The pretrained SAE's file (path, format, sha256), or None when the profile trains one."""
        if not self.profile.pretrained_sae:
            return None
        from cytosae.train.pretrained import sae_file

        return sae_file(self.profile.pretrained_sae)

    @property
    def pretrained(self) -> bool:
        """True when the SAE comes from a file (``Profile.pretrained_sae``): nothing is trained."""
        return bool(self.profile.pretrained_sae)

    def _load_pretrained(self) -> SparseAutoencoder:
        """Read and check the pretrained SAE (the constructor calls it, so errors come first)."""
        from cytosae.model.backbone import ARCHS
        from cytosae.train.checkpoint import CheckpointError

        source = self.sae_source
        assert source is not None
        try:
            sae = source.load()
        except CheckpointError as exc:
            raise CheckpointError(
                f"pretrained_sae={self.profile.pretrained_sae!r} is not an SAE checkpoint: {exc}"
            ) from exc
        arch = self.profile.backbone.arch
        width = ARCHS[arch].embed_dim
        if sae.cfg.d_in != width:
            raise ValueError(
                f"pretrained_sae {source.describe()} takes d_in={sae.cfg.d_in} tokens, but "
                f"backbone.arch={arch!r} makes {width}-wide tokens; use the backbone the SAE was "
                "trained on (the authors' release: dinobloom-b, 768)"
            )
        return sae

    @property
    def sae_config(self) -> SAEConfig:
        """The config of the SAE this run uses: the pretrained file's, else ``profile.sae``."""
        return self._pretrained.cfg if self._pretrained is not None else self.profile.sae

    def sae_description(self) -> str:
        """One phrase naming the SAE, for the banner (no stage is computed)."""
        cfg = self.sae_config
        width = f"x{cfg.expansion_factor}" if not cfg.n_latents else f"{cfg.d_sae:,} latents"
        if self.sae_source is not None:
            return (
                f"SAE {self.sae_source.describe()}, {cfg.d_sae:,} latents, pretrained "
                "(not trained here)"
            )
        return f"SAE {width}"  # trained on train_dataset by notebook 01 or the first stats call

    @property
    def sae_key(self) -> str:
        """What names the SAE in downstream cache keys: the training key (``runs/sae/<key>``), or
        ``pretrained-<sha256[:16]>`` of the pretrained file(s)."""
        if self.sae_source is not None:
            return f"pretrained-{self.sae_source.digest[:16]}"
        return self.train_key()

    def sae_dir(self, sae_cfg: SAEConfig | None = None) -> Path:
        """Folder of the SAE trained with the profile's config (or ``sae_cfg``, e.g. an ablation).

        With a pretrained SAE and no ``sae_cfg``: the pretrained folder itself, or, for the
        authors' ``.pt``, a ``RuntimeError`` (it is one file; use :attr:`sae` and
        :attr:`sae_source`). Ablations (``sae_cfg`` given) are trained as usual.
        """
        from cytosae.train import train_sae

        p = self.profile
        if sae_cfg is None and self.sae_source is not None:
            if self.sae_source.kind == "folder":
                return self.sae_source.path
            raise RuntimeError(
                f"the profile uses the pretrained SAE {self.sae_source.describe()}, a single file "
                "with no SAE folder or training history; use pipe.sae and pipe.sae_source"
            )
        cfg = sae_cfg or p.sae
        store = self.tokens(p.train_dataset)
        key = self.train_key(cfg)
        work = self.runs / "sae" / f"work-{key}"

        def build(tmp: Path) -> None:
            # train in a stable work folder, so that an interrupted run resumes where it stopped
            train_sae(store, cfg, p.train, work, progress=self.progress)
            for f in work.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)

        out = cached_dir(self.runs / "sae", key, build)
        shutil.rmtree(work, ignore_errors=True)
        return out

    @functools.cached_property
    def sae(self) -> SparseAutoencoder:
        """The profile's SAE (eval mode, CPU): the pretrained one, or the one trained here."""
        if self._pretrained is not None:
            return self._pretrained
        from cytosae.train.checkpoint import load_sae

        return load_sae(self.sae_dir()).eval()

    def train_history(self, sae_cfg: SAEConfig | None = None) -> pd.DataFrame:
        """Logged training metrics (one row per log step).

        Raises:
            RuntimeError: for the pretrained SAE (``sae_cfg`` None), which was not trained here.
        """
        import pandas as pd

        if sae_cfg is None and self.sae_source is not None:
            hist = self.sae_source.path / "metrics.jsonl"
            if self.sae_source.kind == "folder" and hist.is_file():
                return pd.read_json(hist, lines=True)
            raise RuntimeError(
                f"no training history: the profile uses the pretrained SAE "
                f"{self.sae_source.describe()}, which was not trained here"
            )
        return pd.read_json(self.sae_dir(sae_cfg) / "metrics.jsonl", lines=True)

    # ----------------------------------------------------------------- stats
    @functools.cache  # noqa: B019 - one Pipeline per notebook; it lives as long as its caches
    def stats(self, name: str) -> LatentStats:
        from cytosae.analysis.latents import LatentStats, encode_pass
        from cytosae.hardware import resolve_device

        p = self.profile
        store = self.tokens(name)
        key = digest(
            "stats",
            __version__,
            code_digest("cytosae.analysis.latents"),
            self.sae_key,
            store.digest,
            p.tau,
            p.top_k,
        )

        def build(tmp: Path) -> None:
            # on the training device (a GPU when there is one): x64 on CPU takes hours
            device = resolve_device(p.train.device)
            stats = encode_pass(
                self.sae, store, tau=p.tau, top_k=p.top_k, progress=self.progress, device=device
            )
            stats.save(tmp)

        return LatentStats.load(cached_dir(self.runs / "stats", key, build))

    def ensure_all(self) -> None:
        """Compute every stage of the profile (what ``cytosae pipeline`` does)."""
        for name in self.profile.eval_datasets:
            self.stats(name)

    # -------------------------------------------------------------- explorer
    def explorer_cache(self, name: str, *, n_maps: int = 5, thumb_px: int = 112) -> Path:
        """Folder of the latent explorer's arrays of one dataset (one encode pass; cached).

        Keyed by content: the SAE's weights (whoever trained it), the token store, the
        statistics' top images, the ground truth's use and the explorer's code
        (:func:`cytosae.analysis.explorer.build_explorer_cache`). On the synthetic world the
        training dataset's cache also holds every latent's concept AUROC.
        """
        from cytosae.analysis.explorer import build_explorer_cache, fingerprint

        p = self.profile
        store, stats = self.tokens(name), self.stats(name)
        with_gt = self.synthetic and name == p.train_dataset
        key = digest(
            "explorer",
            __version__,
            code_digest("cytosae.analysis.explorer"),
            fingerprint(self.sae),
            store.digest,
            fingerprint(stats.top_indices),
            n_maps,
            thumb_px,
            with_gt,
        )

        def build(tmp: Path) -> None:
            pf = concepts = None
            if with_gt:
                from cytosae.analysis.recovery import align_patch_fractions

                gt = self.groundtruth(name)
                pf = align_patch_fractions(gt, self.dataset_root(name), store.manifest)
                concepts = gt.concepts
            build_explorer_cache(
                self.sae,
                store,
                stats,
                tmp,
                n_maps=n_maps,
                thumb_px=thumb_px,
                patch_fractions=pf,
                concepts=concepts,
                progress=self.progress,
            )

        return cached_dir(self.runs / "explorer", key, build)

    def explorer_data(
        self,
        datasets: tuple[str, ...] | None = None,
        *,
        images: bool = True,
        filters: Any = None,
    ) -> Any:
        """The latent explorer's data (:class:`cytosae.analysis.explorer.ExplorerData`).

        Args:
            datasets: the datasets shown (default: the profile's evaluation datasets, the training
                dataset first: it is the reference the filters and orderings use).
            images: build or load the explorer caches (images, patch maps, per-image
                activations); False: statistics only.
            filters: the explorer's :class:`~cytosae.analysis.explorer.Filters` (default: the
                profile's threshold, frequency 0.99, patch frequency 0.1).
        """
        from cytosae.analysis.explorer import Cohort, ExplorerCache, ExplorerData, Filters

        p = self.profile
        names = list(datasets or p.eval_datasets)
        names = [p.train_dataset] + [d for d in names if d != p.train_dataset]
        stats = {d: self.stats(d) for d in names}
        caches = {d: ExplorerCache(self.explorer_cache(d)) for d in names} if images else {}
        cohort = None
        if "hehr" in stats and stats["hehr"].counts is not None:
            cohort = Cohort.from_stats(stats["hehr"], self.tokens("hehr").manifest)
        concepts = caches[p.train_dataset].concepts if caches else None
        return ExplorerData(
            stats,
            caches,
            cohort=cohort,
            concepts=concepts,
            filters=filters or Filters(threshold=p.threshold),
            tag=self.tag(),
        )

    # ---------------------------------------------------------------- sweeps
    def variant(self, overrides: Mapping[str, Any]) -> Pipeline:
        """This pipeline's profile with more ``overrides`` (same cache root): one setting of a sweep.

        Stages the variant shares with this pipeline (the same configs) hit the same cache folders.
        """
        return Pipeline(self.profile, runs=self.runs, progress=self.progress, overrides=overrides)

    def train_key(self, sae_cfg: SAEConfig | None = None) -> str:
        """The cache key (folder name under ``runs/sae/``) of :meth:`sae_dir` for ``sae_cfg``
        (default: the profile's SAE), computed without training: what :meth:`sae_dir` uses."""
        p = self.profile
        return digest(
            "sae",
            __version__,
            code_digest(*_SAE_CODE),
            (sae_cfg or p.sae).to_dict(),
            p.train.to_dict(),
            self.tokens(p.train_dataset).digest,
        )

    def train_saes(self, sae_cfgs: Sequence[SAEConfig]) -> list[Path]:
        """Train several SAEs on ONE pass over the profile's training tokens; cache each one where
        :meth:`sae_dir` would (so a later ``sae_dir(cfg)`` reuses it), and return their folders.

        All configs share the profile's token store and ``TrainConfig`` (an SAE with another
        learning rate or layer is another profile: :meth:`variant`). SAEs already cached are not
        trained again. Each cached folder holds what a single :meth:`sae_dir` run writes (its
        weights and density files, its own ``run.json`` and its rows of ``metrics.jsonl``); the
        numbers are those of a single run, since every SAE of :func:`~cytosae.train.train_many`
        sees the same batches in the same order (``tests/test_sweep.py`` checks it bit for bit).
        """
        import json

        from cytosae.train import train_many
        from cytosae.train.state import RUN_FILE, run_record

        p = self.profile
        cfgs = list(sae_cfgs)
        keys = [self.train_key(c) for c in cfgs]
        todo: dict[str, SAEConfig] = {}
        for k, c in zip(keys, cfgs):
            if not is_complete(self.runs / "sae" / k):
                todo.setdefault(k, c)
        if len(todo) == 1:
            self.sae_dir(next(iter(todo.values())))
        elif todo:
            store = self.tokens(p.train_dataset)
            work = self.runs / "sae" / f"group-{digest('sae-group', sorted(todo))}"
            train_many(store, list(todo.values()), p.train, work, progress=self.progress)
            lines = (work / "metrics.jsonl").read_text().splitlines()
            for i, (key, cfg) in enumerate(todo.items()):
                src = work / f"sae_{i:02d}"

                def build(tmp: Path, src: Path = src, cfg: SAEConfig = cfg, i: int = i) -> None:
                    for f in src.iterdir():
                        if f.is_file():
                            shutil.copy2(f, tmp / f.name)
                    rows = [json.loads(line) for line in lines if line.strip()]
                    mine = [{**r, "sae": 0} for r in rows if r["sae"] == i]
                    (tmp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine))
                    record = run_record(p.train, [cfg], store)
                    (tmp / RUN_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")

                cached_dir(self.runs / "sae", key, build)
            shutil.rmtree(work, ignore_errors=True)
        return [self.runs / "sae" / k for k in keys]

    def sweep(
        self,
        grid: Mapping[str, Sequence[Any]],
        seeds: Sequence[int] = (42,),
        *,
        dataset: str | None = None,
        thresholds: Sequence[float] | None = None,
    ) -> pd.DataFrame:
        """Train and evaluate every SAE of a sweep; one tidy row per SAE.

        Args:
            grid: axis -> settings, each a dict of dotted overrides (or ``{"label", "paper",
                "set"}``; :func:`cytosae.analysis.sweep.expand`), e.g.
                ``{"expansion": [{"sae.expansion_factor": f} for f in (16, 32)]}``.
            seeds: ``sae.seed`` values; every setting is trained at each.
            dataset: where the statistics are computed (default: each variant's training dataset).
            thresholds: concept thresholds (default -6..0).

        SAEs whose inputs agree (same token store and ``TrainConfig``) train on one pass over the
        tokens (:meth:`train_saes`); another learning rate or layer makes another group. Each SAE
        is cached where ``sae_dir`` puts it and each statistics pass where :meth:`stats` does, so a
        sweep rerun, or a single call for one of its settings, computes nothing again.

        Returns:
            :func:`cytosae.analysis.sweep.sweep_row` rows (``axis``, ``setting``, ``paper``,
            ``seed``, ``d_sae``, ``concepts_<t>``, ``dead_frac``, ``never_fired``, ``l0``,
            ``explained_variance``, ``mse``, ``sae``, ``overrides``, ``status``, ``note``). An SAE
            whose training diverges (:class:`~cytosae.train.TrainingDiverged`, e.g. a learning
            rate x10, which the paper calls "unstable training") is a row with ``status``
            ``"diverged"`` and NaN numbers; the others of its group are trained on their own.
            A rerun resumes the diverged run from its last good state and meets the same step.
        """
        import pandas as pd

        from cytosae.analysis import sweep as sw

        variants = sw.expand(grid, seeds)
        pipes = [self.variant(v.as_overrides()) for v in variants]
        groups: dict[str, list[Pipeline]] = {}
        for q in pipes:
            qp = q.profile
            key = digest(qp.synth, qp.backbone, qp.extract, qp.train, qp.train_dataset)
            groups.setdefault(key, []).append(q)
        diverged: dict[str, TrainingDiverged] = {}
        for members in groups.values():
            diverged.update(_train_group(members))
        rows = []
        ts = sw.THRESHOLDS if thresholds is None else thresholds
        for v, q in zip(variants, pipes):
            key = q.train_key(q.profile.sae)
            if key in diverged:
                exc = diverged[key]
                log.warning("sweep %s=%s seed %d: %s", v.axis, v.setting, v.seed, exc.reason)
                rows.append(
                    sw.diverged_row(
                        v,
                        d_sae=q.profile.sae.d_sae,
                        step=exc.step,
                        reason=exc.reason,
                        thresholds=ts,
                        sae=key,
                    )
                )
                continue
            stats = q.stats(dataset or q.profile.train_dataset)
            rows.append(sw.sweep_row(v, stats, q.train_history(), thresholds=ts, sae=key))
        return pd.DataFrame(rows)


def _train_group(members: Sequence[Pipeline]) -> dict[str, TrainingDiverged]:
    """Train the SAEs of ``members`` (one token store and TrainConfig) on one pass; the runs that
    diverge, by training key. When one SAE of a shared pass diverges the pass stops, so the group
    is retrained one SAE at a time to tell the healthy ones (bit-identical to the shared pass)
    from the diverged."""
    from cytosae.train.loop import TrainingDiverged

    try:
        members[0].train_saes([q.profile.sae for q in members])
        return {}
    except TrainingDiverged as exc:
        if len(members) == 1:
            return {members[0].train_key(members[0].profile.sae): exc}
    out: dict[str, TrainingDiverged] = {}
    for q in members:
        out.update(_train_group([q]))
    return out
