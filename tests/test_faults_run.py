"""Fault injection on the RUN side: kills, concurrent writers, NaN/inf, full disks, damaged and
malicious files, bad configs. Every test injects a fault and checks the outcome *and* that the
work completed before it survived byte for byte (docs/sae.md and docs/token-store.md, "faults").

The interrupted and failing runs go through the real command line (``cytosae.cli.main``) in a
forked child process, which is killed with SIGKILL at an injected point (the n-th ``os.replace``
or ``fsync`` of a file, the n-th training step, the middle of a metrics line) or after a delay,
or which runs under a full disk: a small tmpfs where the machine lets us mount one, and always
``RLIMIT_FSIZE`` with SIGXFSZ ignored (writes past the limit fail with EFBIG), which needs no
privileges and so also runs in CI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import timm.models.vision_transformer  # noqa: F401 - imported once: every forked child has it
import torch
from PIL import Image

# imported once, like timm above: every forked child starts with them (3 s each otherwise)
import cytosae.cli.extract
import cytosae.cli.latents
import cytosae.cli.train  # noqa: F401
from cytosae.analysis.latents import EncodeConfig, LatentStats, encode_pass
from cytosae.atomic import COMPLETE, WriteError, atomic_dir, atomic_write_text, is_complete
from cytosae.cli import main
from cytosae.locks import FolderLock, FolderLocked, lock_path
from cytosae.model.backbone import BackboneConfig
from cytosae.model.sae import SAEConfig, SparseAutoencoder, check_fits, memory_estimate
from cytosae.store.extract import ExtractConfig
from cytosae.store.layout import shard_path, verify_store
from cytosae.store.reader import IncompleteStoreError, TokenStore
from cytosae.train import TrainConfig, train_sae
from cytosae.train.checkpoint import CheckpointError, load_sae, save_sae
from cytosae.train.metrics import DivergenceWatch, read_history

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


#: (fault, outcome) rows collected by the tests, printed at the end (-s) for the report
FAULTS: list[tuple[str, str]] = []


def _record(fault: str, outcome: str) -> None:
    FAULTS.append((fault, outcome))


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# =========================================================================== helpers


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _install_fault(kill: tuple | None) -> None:
    """In the child: SIGKILL this process at an injected point."""
    if kill is None:
        return
    kind, n = kill[0], int(kill[1])
    count = [0]

    def hit() -> bool:
        count[0] += 1
        return count[0] == n

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if kind in ("replace", "replace_after"):
        real = os.replace

        def replace(a, b, **kw):  # type: ignore[no-untyped-def]
            if kind == "replace" and hit():
                die()
            out = real(a, b, **kw)
            if kind == "replace_after" and hit():
                die()
            return out

        os.replace = replace  # type: ignore[assignment]
    elif kind in ("exchange", "exchange_after"):  # the atomic swap of a folder
        from cytosae import atomic

        real_exchange = atomic._exchange

        def exchange(a, b):  # type: ignore[no-untyped-def]
            if kind == "exchange" and hit():
                die()
            out = real_exchange(a, b)
            if kind == "exchange_after" and hit():
                die()
            return out

        atomic._exchange = exchange
    elif kind == "fsync":
        real_fsync = os.fsync

        def fsync(fd):  # type: ignore[no-untyped-def]
            if hit():
                die()
            return real_fsync(fd)

        os.fsync = fsync  # type: ignore[assignment]
    elif kind in ("step", "step_at"):  # the n-th step call / the 0-based step n
        from cytosae.train.trainer import SAETrainer

        real_step = SAETrainer.step

        def step(self, x, s):  # type: ignore[no-untyped-def]
            if (kind == "step" and hit()) or (kind == "step_at" and s == n):
                die()
            return real_step(self, x, s)

        SAETrainer.step = step  # type: ignore[method-assign]
    elif kind == "torn":  # die in the middle of a metrics line
        from cytosae.train import metrics

        real_append = metrics.append_rows

        def append_rows(out_dir, rows):  # type: ignore[no-untyped-def]
            if hit():
                line = json.dumps(rows[0])
                with open(out_dir / metrics.METRICS_FILE, "a") as fh:
                    fh.write(line[: len(line) // 2])
                die()
            return real_append(out_dir, rows)

        metrics.append_rows = append_rows
    elif kind == "pause_step":  # hold the run (and its lock) at step n until `go` exists
        from cytosae.train.trainer import SAETrainer

        flag, go = Path(kill[2]), Path(kill[3])
        real_step = SAETrainer.step

        def step(self, x, s):  # type: ignore[no-untyped-def]
            if hit():
                flag.touch()
                t0 = time.monotonic()
                while not go.exists() and time.monotonic() - t0 < 60:
                    time.sleep(0.02)
            return real_step(self, x, s)

        SAETrainer.step = step  # type: ignore[method-assign]
    elif kind != "delay":
        raise ValueError(kind)


def run_cli(
    argv: list[str],
    *,
    kill: tuple | None = None,
    fsize: int | None = None,
    umask: int | None = None,
    timeout: float = 120.0,
    wait: bool = True,
) -> Any:
    """Run ``cytosae <argv>`` in a forked child; return ``(returncode, output)``.

    ``returncode`` is ``-9`` when the child was SIGKILLed. ``kill``: an injected fault (see
    :func:`_install_fault`) or ``("delay", seconds)``; ``fsize``: RLIMIT_FSIZE in bytes (writes
    beyond it fail with EFBIG, SIGXFSZ ignored). With ``wait=False`` return ``(pid, logfile)``.
    """
    log_file = Path(os.environ.get("PYTEST_TMP_LOGS", "/tmp")) / f"cytosae-child-{os.getpid()}"
    log_file = log_file.with_name(f"{log_file.name}-{random.getrandbits(32):08x}.log")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # ------------------------------------------------------------- child
        rc = 99
        try:
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            logging.root.handlers[:] = []  # let main() configure logging to this stderr
            if umask is not None:
                os.umask(umask)
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            torch.set_num_threads(1)
            _install_fault(kill)
            rc = main(argv)
        except BaseException:  # noqa: BLE001 - report anything to the parent
            traceback.print_exc()
            rc = 99
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(rc)
    # ---------------------------------------------------------------------------- parent
    if not wait:
        return pid, log_file
    return _wait_child(pid, log_file, kill, timeout)


def _wait_child(pid: int, log_file: Path, kill: tuple | None, timeout: float) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    kill_at = time.monotonic() + kill[1] if kill is not None and kill[0] == "delay" else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            os.kill(pid, signal.SIGKILL)
            kill_at = None
        if now > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} timed out: {log_file.read_text()[-3000:]}")
        time.sleep(0.01)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    log_file.unlink(missing_ok=True)
    return rc, text


def _no_locks_left(parent: Path) -> None:
    assert not [p.name for p in parent.glob(".*lock")], "a lock file was left behind"


# ---------------------------------------------------------------------------- inputs

EXTRACT = ["--arch", "tiny-test", "--init-seed", "7", "--batch-size", "2", "--shard-size", "3",
           "--workers", "0", "--device", "cpu", "--precision", "fp32", "--threads", "1",
           "--no-progress"]  # fmt: skip
TRAIN = ["--expansion", "2", "--total-images", "40", "--batch-images", "4", "--log-every", "2",
         "--checkpoint-every", "3", "--b-dec-init-images", "8", "--warmup", "2", "--device", "cpu",
         "--quiet"]  # fmt: skip
#: steps of TRAIN on the 10-image store: 40 // 4 (two batches per pass, the same order each pass)
N_STEPS = 10


def extract_argv(root: Path, runs: Path) -> list[str]:
    return ["extract", "--dataset", "mll23", "--root", str(root), "--runs", str(runs), *EXTRACT]


def train_argv(store: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--store", str(store), "--out", str(out), *TRAIN, *extra]


def latents_argv(sae: Path, store: Path, out: Path, *extra: str) -> list[str]:
    return ["latents", "--sae", str(sae), "--store", str(store), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLL23-layout folder: 10 readable TIFFs of 2 classes + 1 zero-byte file."""
    root = tmp_path_factory.mktemp("mll23")
    rng = np.random.default_rng(0)
    for cls, n in (("basophil", 4), ("myeloblast", 6)):
        d = root / cls / cls
        d.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                d / f"{cls}_{i}.tif"
            )
    (root / "myeloblast" / "myeloblast" / "myeloblast_3b.tif").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def ref_store(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of an uninterrupted extraction (through the CLI, in a child)."""
    runs = tmp_path_factory.mktemp("runs_ref")
    rc, out = run_cli(extract_argv(data_root, runs))
    assert rc == 0, out
    (folder,) = (runs / "tokens").iterdir()
    return folder


@pytest.fixture(scope="module")
def ref_run(ref_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of an uninterrupted training run (through the CLI, in a child)."""
    out = tmp_path_factory.mktemp("train_ref") / "run"
    rc, text = run_cli(train_argv(ref_store, out))
    assert rc == 0, text
    return out


@pytest.fixture(scope="module")
def ref_latents(ref_run: Path, ref_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two uninterrupted latents results (top-k 3 and 5)."""
    base = tmp_path_factory.mktemp("lat_ref")
    for k in (3, 5):
        rc, text = run_cli(latents_argv(ref_run, ref_store, base / f"k{k}", "--top-k", str(k)))
        assert rc == 0, text
    return {3: base / "k3", 5: base / "k5"}


def _copy_store(ref_store: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "store_copy" / ref_store.name
    shutil.copytree(ref_store, dst)
    return dst


# =========================================================================== interruptions


def _check_partial_store(folder: Path, ref: Path) -> None:
    """A killed extraction's folder is never taken for a complete store."""
    if not folder.exists():
        return
    if is_complete(folder):
        assert {k: v for k, v in _tree(folder).items() if not k.startswith(".")} == _tree(ref)
    else:
        with pytest.raises(IncompleteStoreError):
            TokenStore(folder)


def _extract_kill_resume(data_root: Path, ref: Path, tmp: Path, kill: tuple) -> str:
    runs = tmp / "runs"
    rc, _ = run_cli(extract_argv(data_root, runs), kill=kill)
    folder = runs / "tokens" / ref.name
    _check_partial_store(folder, ref)
    rc2, text = run_cli(extract_argv(data_root, runs))
    assert rc2 == 0, text
    assert _tree(folder) == _tree(ref), f"resume after {kill} differs"
    _no_locks_left(runs / "tokens")
    return "killed" if rc == -9 else "finished before the kill point"


@pytest.mark.parametrize("seed", [0])
def test_extract_killed_at_random_points_resumes_byte_identical(
    seed: int, data_root: Path, ref_store: Path, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    for i, kill in enumerate(
        [("replace", rng.randint(1, 14)), ("fsync", rng.randint(1, 14)), ("replace_after", 5)]
    ):
        how = _extract_kill_resume(data_root, ref_store, tmp_path / str(i), kill)
        _record(f"SIGKILL extraction at {kill}", f"{how}; resume byte-identical")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_extract_kill_loop(seed: int, data_root: Path, ref_store: Path, tmp_path: Path) -> None:
    rng = random.Random(seed)
    kills = [(k, rng.randint(1, 15)) for k in ("replace", "replace_after", "fsync")]
    kills.append(("delay", rng.uniform(0.02, 0.3)))
    for i, kill in enumerate(kills):
        how = _extract_kill_resume(data_root, ref_store, tmp_path / str(i), kill)
        _record(f"SIGKILL extraction at {kill} (seed {seed})", f"{how}; resume byte-identical")


def _train_kill_resume(ref_store: Path, ref_run: Path, tmp: Path, kills: list[tuple]) -> str:
    out = tmp / "run"
    outcomes = []
    for kill in kills:  # several kills of the same run in a row, then a clean resume
        rc, text = run_cli(train_argv(ref_store, out), kill=kill)
        outcomes.append("killed" if rc == -9 else f"rc {rc}")
        if rc not in (0, -9):
            raise AssertionError(text)
        if is_complete(out):  # a finished folder is whole
            assert (out / "sae.safetensors").is_file()
    rc, text = run_cli(train_argv(ref_store, out))
    assert rc == 0, text
    assert _tree(out) == _tree(ref_run), f"resume after {kills} differs"
    _no_locks_left(out.parent)
    return ", ".join(outcomes)


def test_train_killed_at_random_points_resumes_byte_identical(
    ref_store: Path, ref_run: Path, tmp_path: Path
) -> None:
    rng = random.Random(0)
    for i, kill in enumerate([("step", rng.randint(2, N_STEPS)), ("torn", rng.randint(1, 5)),
                              ("replace", rng.randint(1, 12))]):  # fmt: skip
        how = _train_kill_resume(ref_store, ref_run, tmp_path / str(i), [kill])
        _record(f"SIGKILL training at {kill}", f"{how}; resume byte-identical")
    # killed again and again while resuming: each time early in what is left
    kills = [("step", 5), ("torn", 1), ("fsync", 1), ("step", 2), ("replace_after", 2)]
    how = _train_kill_resume(ref_store, ref_run, tmp_path / "chain", kills)
    assert how == ", ".join(["killed"] * len(kills))
    _record(f"SIGKILL training 5x in a row at {kills}", f"{how}; resume byte-identical")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_train_kill_loop(seed: int, ref_store: Path, ref_run: Path, tmp_path: Path) -> None:
    rng = random.Random(seed)
    kills = [
        ("step", rng.randint(1, N_STEPS)),
        ("torn", rng.randint(1, 5)),
        (rng.choice(["replace", "replace_after", "fsync"]), rng.randint(1, 14)),
        ("delay", rng.uniform(0.02, 0.3)),
    ]
    for i, kill in enumerate(kills):
        how = _train_kill_resume(ref_store, ref_run, tmp_path / str(i), [kill])
        _record(f"SIGKILL training at {kill} (seed {seed})", f"{how}; resume byte-identical")


def _latents_kill(ref_run: Path, ref_store: Path, ref_latents: dict, tmp: Path, kill: tuple) -> str:
    out = tmp / "lat"
    shutil.copytree(ref_latents[3], out)  # the previous result
    rc, _ = run_cli(latents_argv(ref_run, ref_store, out, "--top-k", "5"), kill=kill)
    # the folder is the old result or the new one, whole: never a mixture
    got = _tree(out)
    assert got in (_tree(ref_latents[3]), _tree(ref_latents[5])), f"mixed folder after {kill}"
    assert LatentStats.load(out).meta["top_k"] in (3, 5)
    state = "old result intact" if got == _tree(ref_latents[3]) else "new result complete"
    rc2, text = run_cli(latents_argv(ref_run, ref_store, out, "--top-k", "5"))
    assert rc2 == 0, text
    assert _tree(out) == _tree(ref_latents[5])
    assert not [p for p in tmp.iterdir() if p.name.startswith(".")], "temp or lock left"
    return ("killed" if rc == -9 else f"rc {rc}") + f", {state}"


def test_latents_killed_while_saving_keeps_old_or_new_whole(
    ref_run: Path, ref_store: Path, ref_latents: dict, tmp_path: Path
) -> None:
    kills = [("replace", 1), ("fsync", 2), ("exchange", 1), ("exchange_after", 1)]
    for i, kill in enumerate(kills):
        how = _latents_kill(ref_run, ref_store, ref_latents, tmp_path / str(i), kill)
        _record(f"SIGKILL cytosae latents at {kill} over a previous result", how)


@pytest.mark.slow
def test_latents_kill_loop(ref_run: Path, ref_store: Path, ref_latents: dict, tmp_path: Path):
    rng = random.Random(4)
    kills = [("replace_after", 1), ("fsync", 1), ("fsync", 3)] + [
        ("delay", rng.uniform(0.0, 0.3)) for _ in range(4)
    ]
    for i, kill in enumerate(kills):
        how = _latents_kill(ref_run, ref_store, ref_latents, tmp_path / str(i), kill)
        _record(f"SIGKILL cytosae latents at {kill}", how)


# =========================================================================== one writer


def test_second_train_into_same_folder_is_refused(ref_store: Path, ref_run: Path, tmp_path: Path):
    """Two ``cytosae train`` into one --out: the second (equal or other config) is refused,
    naming the folder and the holder; the first ends byte-identical to an undisturbed run."""
    out = tmp_path / "run"
    flag, go = tmp_path / "paused", tmp_path / "go"
    pid, log_a = run_cli(train_argv(ref_store, out), kill=("pause_step", 4, flag, go), wait=False)
    t0 = time.monotonic()
    while not flag.exists():
        assert time.monotonic() - t0 < 60
        time.sleep(0.02)
    for extra in ((), ("--expansion", "4")):
        rc, text = run_cli(train_argv(ref_store, out, *extra))
        assert rc == 2, text
        assert "is being written by another process" in text and str(out) in text
        assert f"pid {pid}" in text, text
    go.touch()
    rc, text = _wait_child(pid, log_a, None, 120)
    assert rc == 0, text
    assert _tree(out) == _tree(ref_run)
    _no_locks_left(tmp_path)
    # the x4 command on the finished x2 folder is an error, never the x2 SAE
    rc, text = run_cli(train_argv(ref_store, out, "--expansion", "4"))
    assert rc == 2 and "different run" in text, text
    _record("second cytosae train (same and x4 config) while one runs", "refused rc 2, naming "
            "folder and pid; first run byte-identical")  # fmt: skip


def test_finished_folder_disagreeing_with_its_run_json_is_an_error(
    ref_store: Path, ref_run: Path, tmp_path: Path
) -> None:
    """What two unlocked writers used to leave: run.json says x2, the SAE files are x4."""
    out = tmp_path / "run"
    shutil.copytree(ref_run, out)
    save_sae(SparseAutoencoder(SAEConfig(d_in=64, expansion_factor=4)), out)
    rc, text = run_cli(train_argv(ref_store, out))
    assert rc == 2 and "cfg.json" in text and "expansion_factor" in text, text
    _record("finished folder whose SAE files disagree with run.json", "error naming cfg.json")


def test_stale_lock_of_a_killed_run_is_taken_over(ref_store: Path, ref_run: Path, tmp_path):
    out = tmp_path / "run"
    rc, _ = run_cli(train_argv(ref_store, out), kill=("step", 5))
    assert rc == -9
    lock = lock_path(out)
    holder = json.loads(lock.read_text())  # left behind by the killed process
    assert holder["pid"] != os.getpid() and holder["host"]
    rc, text = run_cli(train_argv(ref_store, out))
    assert rc == 0, text
    assert "taking over the stale lock" in text and f"pid {holder['pid']}" in text
    assert not lock.exists() and _tree(out) == _tree(ref_run)
    _record("stale lock of a SIGKILLed training run", "taken over (logged); byte-identical")


def test_folder_lock_unit(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    with FolderLock(folder, "test folder") as lk:
        with FolderLock(folder, "test folder"):  # re-entrant in one thread
            pass
        assert lk.path.exists()
        pid = os.fork()
        if pid == 0:  # another process is refused
            try:
                FolderLock(folder, "test folder").acquire()
                os._exit(1)
            except FolderLocked as exc:
                os._exit(0 if str(os.getppid()) in str(exc) and str(folder) in str(exc) else 2)
        assert os.waitpid(pid, 0)[1] == 0
    assert not lk.path.exists()
    # garbage in a lock file nobody holds: taken over
    lk.path.write_text("not json")
    with FolderLock(folder, "test folder"):
        assert json.loads(lk.path.read_text())["pid"] == os.getpid()


def test_second_extraction_refused_ranks_share(data_root: Path, ref_store: Path, tmp_path: Path):
    """One extraction per store; the ranks of one distributed extraction each hold their own
    lock (the concurrent torchrun test in test_extract.py shows they write one store)."""
    from cytosae.store.layout import store_lock

    folder = tmp_path / "runs" / "tokens" / ref_store.name
    folder.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:
        with store_lock(folder, 0, 2):  # rank 0 of a 2-rank job, busy
            time.sleep(5)
        os._exit(0)
    try:
        t0 = time.monotonic()
        while not list(folder.parent.glob(".*rank0of2.lock")):
            assert time.monotonic() - t0 < 10
            time.sleep(0.01)
        time.sleep(0.1)
        with store_lock(folder, 1, 2):  # rank 1 of the same job: fine
            pass
        rc, text = run_cli(extract_argv(data_root, tmp_path / "runs"))  # a 1-process job
        assert rc == 2 and "token store" in text and "being written" in text, text
        assert "rank0of2" in text
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    rc, text = run_cli(extract_argv(data_root, tmp_path / "runs"))  # the holder is gone
    assert rc == 0, text
    assert _tree(folder) == _tree(ref_store)
    _record("second extraction of a store while a rank holds it", "refused rc 2; ranks share")


# =========================================================================== NaN / divergence


def _poison(store: Path, row: int, value: float = float("nan")) -> str:
    """Write ``value`` into the tokens of store image ``row`` (size kept); return its image id."""
    meta = json.loads((store / "metadata.json").read_text())
    offsets = np.concatenate([[0], np.cumsum(meta["shard_sizes"])])
    k = int(np.searchsorted(offsets, row, side="right") - 1)
    arr = np.load(shard_path(store, k, "npy"), mmap_mode="r+")
    arr[row - offsets[k], 5, 3] = value
    arr.flush()
    del arr
    return pd.read_csv(store / "manifest.csv", dtype=str)["image_id"][row]


def test_nan_in_a_shard_stops_training_naming_the_image(ref_store, ref_run, tmp_path):
    """Train to step 6 on a clean store (killed), poison an image the stream reads next in the
    9th step, resume: stopped in step 9 naming the image, state of step 6 kept byte for byte, no
    marker; fixed store: the run ends byte-identical to an undisturbed one."""
    store = _copy_store(ref_store, tmp_path)
    out = tmp_path / "run"
    rc, text = run_cli(train_argv(store, out), kill=("step_at", 6))  # states 3 and 6 written
    assert rc == -9, text
    state_before = _tree(out / "trainer_state")
    clean = {p: p.read_bytes() for p in store.glob("shard_*.npy")}
    # the stream reads positions 8 + 4 s .. 11 + 4 s of the repeated 10-image order: steps 6 and 7
    # read order[2:10], step 8 reads order[0:4], so order[0] is first read again in step 8 (0-based;
    # messages count steps from 1: "step 9")
    row = int(TokenStore(store).epoch_order(seed=42)[0])
    image = _poison(store, row)
    rc, text = run_cli(train_argv(store, out))
    assert rc == 2, text
    assert "diverged at step 9" in text and repr(image) in text and f"store row {row}" in text, text
    assert "last good trainer state (step 6" in text
    assert not is_complete(out) and _tree(out / "trainer_state") == state_before
    problems = verify_store(store)
    assert any(image in p for p in problems) and any("sha256" in p for p in problems)
    for p, data in clean.items():  # the store repaired
        p.write_bytes(data)
    rc, text = run_cli(train_argv(store, out))
    assert rc == 0, text
    assert _tree(out) == _tree(ref_run)
    _record("NaN token in a shard (mid-run)", f"stopped in step 9 naming {image!r}; state of "
            "step 6 kept byte-identical; after the fix the run ends byte-identical")  # fmt: skip


def test_nan_in_b_dec_sample_and_encode_pass_name_the_image(ref_store, ref_run, tmp_path):
    store = _copy_store(ref_store, tmp_path)
    row = int(TokenStore(store).epoch_order(seed=42)[0])
    image = _poison(store, row, float("inf"))
    out = tmp_path / "run"
    rc, text = run_cli(train_argv(store, out))
    assert rc == 2 and repr(image) in text and "diverged at step 0" in text, text
    assert not is_complete(out)
    rc, text = run_cli(latents_argv(ref_run, store, tmp_path / "lat"))
    assert rc == 2 and "non-finite" in text and image in text, text
    assert not (tmp_path / "lat").exists()
    _record("inf token at the b_dec init / in the encode pass", "stopped naming the image; "
            "no latents folder made")  # fmt: skip


def test_diverging_lr_stops_and_keeps_the_last_good_state(ref_store: Path, tmp_path: Path):
    out = tmp_path / "run"
    rc, text = run_cli(
        train_argv(ref_store, out, "--lr", "10", "--checkpoint-every", "1", "--log-every", "1")
    )
    assert rc == 2 and "diverged" in text and "explained variance" in text, text
    assert not is_complete(out)
    st = json.loads((out / "trainer_state" / "LATEST").read_text())["state"]
    hist = read_history(out)
    first_bad = int(hist[hist["explained_variance"] < -10]["step"].min())
    assert int(st.split("_")[1]) < first_bad  # no state was written once the run went bad
    _record("--lr 10 (explained variance -1e3 .. -1e4)", f"stopped by the divergence rule; kept "
            f"state {st} (before the first bad row, step {first_bad}); no marker")  # fmt: skip


def test_divergence_rule_unit() -> None:
    w = DivergenceWatch()
    row = {"step": 1, "loss": 1.0, "explained_variance": 0.5}
    assert w.update(row) is None
    for s in (2, 3):
        assert w.update(dict(row, step=s, explained_variance=-50)) is None
    assert "3 consecutive" in w.update(dict(row, step=4, explained_variance=-50))
    w = DivergenceWatch()
    w.update(row)
    w.update(dict(row, loss=5e4))
    assert w.streak == 1 and w.update(dict(row, loss=2.0)) is None and w.streak == 0
    assert "nan" in DivergenceWatch().update(dict(row, loss=float("nan")))


def test_nonfinite_loss_in_process_keeps_state(tmp_path: Path) -> None:
    """A loss that becomes non-finite mid-run (here: the data turn to inf at step 5)."""
    x = torch.randn(32, 3, 8, generator=torch.Generator().manual_seed(0))
    sae = SAEConfig(d_in=8, expansion_factor=2, b_dec_init="zeros")
    tcfg = TrainConfig(batch_images=8, total_images=80, lr=1e-2, lr_warmup_steps=1, log_every=2,
                       checkpoint_every=4, b_dec_init_images=8)  # fmt: skip
    from cytosae.train import trainer

    real = trainer.SAETrainer.step

    def step(self, x_ND, s):  # type: ignore[no-untyped-def]
        return real(self, x_ND * (math.inf if s == 5 else 1.0), s)

    trainer.SAETrainer.step = step  # type: ignore[method-assign]
    try:
        from cytosae.train.loop import TrainingDiverged

        with pytest.raises(TrainingDiverged, match=r"step 6.*non-finite loss in step 6.*step 4"):
            train_sae(x, sae, tcfg, tmp_path / "r", progress=False)
    finally:
        trainer.SAETrainer.step = real  # type: ignore[method-assign]
    assert (tmp_path / "r" / "trainer_state" / "step_000000004").is_dir()
    assert not is_complete(tmp_path / "r")


# =========================================================================== disk full


def _fill(mount: Path, leave: int) -> None:
    """Fill the tmpfs at ``mount`` so that about ``leave`` bytes stay free."""
    free = shutil.disk_usage(mount).free
    with open(mount / ".filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


@pytest.fixture(params=["rlimit", "tmpfs"])
def full_disk(request: pytest.FixtureRequest, tmp_path: Path):
    """``(folder, fsize)``: run under ``fsize`` (RLIMIT_FSIZE) or in a tmpfs to fill."""
    if request.param == "rlimit":
        yield "rlimit", tmp_path / "disk"
        return
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                       capture_output=True, check=False)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the rlimit "
                    "variant covers this")  # fmt: skip
    try:
        yield "tmpfs", mnt / "disk"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_extraction_keeps_shards(full_disk, data_root, ref_store):
    kind, base = full_disk
    runs = base / "runs"
    rc, _ = run_cli(extract_argv(data_root, runs), kill=("replace_after", 6))  # shards 0, 1
    folder = runs / "tokens" / ref_store.name
    done = {p.name: p.read_bytes() for p in folder.glob("shard_0000[01].*")}
    assert len(done) == 4
    if kind == "tmpfs":
        _fill(base.parent, 40_000)
        rc, text = run_cli(extract_argv(data_root, runs))
    else:
        rc, text = run_cli(extract_argv(data_root, runs), fsize=50_000)
    assert rc == 2, text
    assert "could not write" in text and "shard_00002.npy" in text and "free on" in text, text
    assert ("No space left" if kind == "tmpfs" else "File too large") in text, text
    assert "Traceback" not in text
    assert {p.name: p.read_bytes() for p in folder.glob("shard_0000[01].*")} == done
    assert not (folder / "shard_00002.json").exists() and not is_complete(folder)
    if kind == "tmpfs":
        (base.parent / ".filler").unlink()
    rc, text = run_cli(extract_argv(data_root, runs))
    assert rc == 0, text
    assert _tree(folder) == _tree(ref_store)
    _record(f"disk full ({kind}) while writing shard 2", "error names the file and free space; "
            "shards 0-1 intact; resume byte-identical")  # fmt: skip


def test_disk_full_while_saving_trainer_state_and_sae(full_disk, ref_store, ref_run):
    kind, base = full_disk
    store = base / "store"
    shutil.copytree(ref_store, store)
    out = base / "run"
    rc, text = run_cli(train_argv(store, out), kill=("step_at", 4))  # state of step 3 on disk
    assert rc == -9, text
    before = _tree(out / "trainer_state")
    # 1) the state of step 6 cannot be written: the state of step 3 is kept
    if kind == "tmpfs":
        _fill(base.parent, 30_000)
        rc, text = run_cli(train_argv(store, out))
    else:
        rc, text = run_cli(train_argv(store, out), fsize=30_000)
    assert rc == 2 and "could not write" in text and "free on" in text, text
    assert "step_000000006" in text and "Traceback" not in text, text
    assert _tree(out / "trainer_state") == before
    if kind == "tmpfs":
        (base.parent / ".filler").unlink()
    # 2) the final SAE cannot be written: the state of step 9 is kept, no marker
    rc, text = run_cli(train_argv(store, out), kill=("step_at", 9))
    assert rc == -9, text
    before = _tree(out / "trainer_state")
    if kind == "tmpfs":
        _fill(base.parent, 20_000)
        rc, text = run_cli(train_argv(store, out))
    else:
        rc, text = run_cli(train_argv(store, out), fsize=20_000)
    assert rc == 2 and "could not write" in text and "sae.safetensors" in text, text
    assert _tree(out / "trainer_state") == before and not is_complete(out)
    if kind == "tmpfs":
        (base.parent / ".filler").unlink()
    rc, text = run_cli(train_argv(store, out))
    assert rc == 0, text
    assert _tree(out) == _tree(ref_run)
    _record(f"disk full ({kind}) while saving a trainer state / the final SAE", "error names "
            "the file; previous state intact; resume byte-identical")  # fmt: skip


def test_disk_full_while_writing_latents_keeps_previous(full_disk, ref_run, ref_store, ref_latents):
    kind, base = full_disk
    out = base / "lat"
    base.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ref_latents[3], out)
    argv = latents_argv(ref_run, ref_store, out, "--top-k", "5")
    if kind == "tmpfs":
        _fill(base.parent, 6_000)  # one page: the lock file fits, the arrays do not
        rc, text = run_cli(argv)
        (base.parent / ".filler").unlink()
    else:
        rc, text = run_cli(argv, fsize=2_000)
    assert rc == 2 and "could not write" in text and "left as it was" in text, text
    assert _tree(out) == _tree(ref_latents[3])
    assert LatentStats.load(out).meta["top_k"] == 3
    _record(f"disk full ({kind}) while writing latents over a result", "error; previous result "
            "byte-identical and loadable")  # fmt: skip


def test_atomic_write_failure_leaves_old_file(tmp_path: Path, monkeypatch) -> None:
    """The same without a child: os.replace fails with ENOSPC; the error is a WriteError."""
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(WriteError, match=r"could not write .*f\.txt: No space left.*free on"):
        atomic_write_text(p, "new")
    with pytest.raises(OSError, match="No space left") as e, atomic_dir(tmp_path / "d") as tmp:
        (tmp / "x").write_text("x")
    assert e.value.errno == 28
    monkeypatch.undo()
    assert p.read_text() == "old" and [q.name for q in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_swaps_whole_folders_with_and_without_rename_exchange(
    tmp_path: Path, monkeypatch
) -> None:
    from cytosae import atomic

    final = tmp_path / "out"
    for exchange in (True, False):
        if not exchange:  # a file system without RENAME_EXCHANGE: two renames
            monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
        with atomic_dir(final) as tmp:
            (tmp / "a").write_text("old")
        with atomic_dir(final) as tmp:
            (tmp / "b").write_text("new")
        assert [p.name for p in final.iterdir()] == ["b"]
        assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left
        shutil.rmtree(final)


# =========================================================================== damaged files


def test_truncated_shard_is_named_and_recomputed(data_root: Path, ref_store: Path, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(ref_store, runs / "tokens" / ref_store.name)
    folder = runs / "tokens" / ref_store.name
    npy = folder / "shard_00001.npy"
    npy.write_bytes(npy.read_bytes()[:-1000])
    with pytest.raises(ValueError, match=r"shard_00001\.npy is truncated"):
        TokenStore(folder)
    rc, text = run_cli(train_argv(folder, tmp_path / "run"))
    assert rc == 2 and "shard_00001.npy" in text and "truncated" in text, text
    assert not (tmp_path / "run").exists()
    rc, text = run_cli(extract_argv(data_root, runs))
    assert rc == 0 and "damaged" in text, text
    assert _tree(folder) == _tree(ref_store)
    _record("truncated shard in a complete store", "named on open; extraction recomputes it; "
            "byte-identical")  # fmt: skip


def test_bit_flip_in_a_done_shard_is_recomputed_on_resume(data_root, ref_store, tmp_path):
    runs = tmp_path / "runs"
    rc, _ = run_cli(extract_argv(data_root, runs), kill=("replace_after", 8))  # shards 0-2
    folder = runs / "tokens" / ref_store.name
    npy = folder / "shard_00000.npy"
    b = bytearray(npy.read_bytes())
    b[-7] ^= 0x40
    npy.write_bytes(bytes(b))
    assert any("sha256" in p for p in verify_store(folder))
    rc, text = run_cli(extract_argv(data_root, runs))
    assert rc == 0 and "shard 0 is damaged" in text, text
    assert _tree(folder) == _tree(ref_store) and verify_store(folder) == []
    _record("flipped bit in a done shard before resume", "sha256 mismatch; recomputed; "
            "byte-identical")  # fmt: skip


def test_torn_metrics_line(tmp_path: Path, caplog) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "sae": 0}\n{"step": 2, "sa')
    with caplog.at_level(logging.WARNING):
        assert list(read_history(tmp_path)["step"]) == [1]
    assert "torn last line 2" in caplog.text
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"st\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 2"):
        read_history(tmp_path)


# =========================================================================== untrusted files


class _Evil:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _evil_files(tmp: Path, marker: Path) -> dict[str, Path]:
    """A malicious pickle in every shape our readers might meet."""
    out = {}
    out["zip .pt"] = tmp / "zip.pt"
    torch.save({"cfg": _Evil(marker), "state_dict": {}}, out["zip .pt"])
    out["legacy .pt"] = tmp / "legacy.pt"
    torch.save({"cfg": _Evil(marker), "state_dict": {}}, out["legacy .pt"],
               _use_new_zipfile_serialization=False)  # fmt: skip
    for proto in (0, 2, 5):
        out[f"raw pickle p{proto}"] = tmp / f"raw{proto}.pkl"
        out[f"raw pickle p{proto}"].write_bytes(pickle.dumps(_Evil(marker), protocol=proto))
    out["evil in state_dict"] = tmp / "sd.pt"
    torch.save({"cfg": {}, "state_dict": {"W_enc": _Evil(marker)}}, out["evil in state_dict"])
    out["eval via builtins"] = tmp / "eval.pt"
    out["eval via builtins"].write_bytes(
        b"\x80\x02cbuiltins\neval\nq\x00X\x11\x00\x00\x00__import__('os')q\x01\x85q\x02Rq\x03."
    )
    return out


def test_authors_pt_refuses_every_malicious_pickle(tmp_path: Path) -> None:
    from cytosae.interop.official_sae import read_official
    from cytosae.interop.official_stats import load_official_stats

    marker = tmp_path / "pwned"
    for name, path in _evil_files(tmp_path, marker).items():
        with pytest.raises(CheckpointError) as e:
            read_official(path)
        assert "weights_only" not in str(e.value) and str(path) in str(e.value), name
        assert not marker.exists(), name
    # the authors' published statistics (plain tensors, read with weights_only=True)
    stats = tmp_path / "stats"
    stats.mkdir()
    for f in ("sae_sparsity.pt", "sae_mean_acts.pt", "max_activating_image_indices.pt",
              "max_activating_image_values.pt", "max_activating_image_label_indices.pt"):  # fmt: skip
        torch.save(torch.zeros(4), stats / f)
    torch.save(_Evil(marker), stats / "sae_mean_acts.pt")
    with pytest.raises(ValueError, match=r"sae_mean_acts\.pt") as e:
        load_official_stats(stats)
    assert "posix.system" in str(e.value) and "weights_only" not in str(e.value)
    assert not marker.exists()
    _record("malicious pickle (zip/legacy .pt, raw p0/p2/p5, eval, nested) as the authors' SAE / "
            "stats", "refused before any code ran; no weights_only hint")  # fmt: skip


def test_nothing_of_ours_is_unpickled(ref_store: Path, ref_run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(marker))
    out = tmp_path / "run"
    rc, text = run_cli(train_argv(ref_store, out), kill=("step_at", 6))
    assert rc == -9, text
    state = out / "trainer_state" / "step_000000006"
    # a .pt or pickle dropped beside our files is ignored
    for name in ("evil.pt", "state.pkl", "optimizer.pt"):
        (state / name).write_bytes(evil)
        (out / name).write_bytes(evil)
    rc, text = run_cli(train_argv(ref_store, out))
    assert rc == 0, text and not marker.exists()
    ref = _tree(ref_run)
    assert {k: v for k, v in _tree(out).items() if k in ref} == ref
    assert load_sae(out).cfg.expansion_factor == 2 and not marker.exists()
    # a pickle under one of our names is refused by the safetensors parser
    out2 = tmp_path / "run2"
    rc, text = run_cli(train_argv(ref_store, out2), kill=("step_at", 6))
    (out2 / "trainer_state" / "step_000000006" / "sae_0.safetensors").write_bytes(evil)
    rc, text = run_cli(train_argv(ref_store, out2))
    assert rc == 2 and "sae_0.safetensors" in text, text
    (ref_copy := tmp_path / "sae").mkdir()
    shutil.copy(ref_run / "cfg.json", ref_copy / "cfg.json")
    (ref_copy / "sae.safetensors").write_bytes(evil)
    with pytest.raises(CheckpointError, match=r"sae\.safetensors"):
        load_sae(ref_copy)
    # a LATEST pointer out of the state folder is refused
    (out2 / "trainer_state" / "LATEST").write_text('{"state": "../../elsewhere"}')
    rc, text = run_cli(train_argv(ref_store, out2))
    assert rc == 2 and "LATEST" in text and "weights_only" not in text, text
    # object arrays (pickles) in our .npy / .npz files are refused
    lat = tmp_path / "lat"
    np.savez(tmp_path / "obj.npz", sparsity=np.array([_Evil(marker)], dtype=object))
    lat.mkdir()
    (lat / "meta.json").write_text("{}")
    (lat / COMPLETE).write_text("{}")
    shutil.copy(tmp_path / "obj.npz", lat / "arrays.npz")
    with pytest.raises(ValueError, match="could not read"):
        LatentStats.load(lat)
    store = _copy_store(ref_store, tmp_path)
    np.save(store / "shard_00001.npy", np.array([_Evil(marker)] * 3, dtype=object))
    with pytest.raises(ValueError, match=r"shard_00001\.npy"):
        TokenStore(store)
    assert not marker.exists()
    _record("pickle dropped into / renamed as our state, SAE, stats, shard files", "ignored or "
            "refused (safetensors/npy parsers); no code ran")  # fmt: skip


# =========================================================================== bad configs

BAD = [
    (TrainConfig, "lr", [0, -1e-3, float("nan"), float("inf")]),
    (TrainConfig, "batch_images", [0, -4]),
    (TrainConfig, "total_images", [0]),
    (TrainConfig, "lr_warmup_steps", [-1]),
    (TrainConfig, "log_every", [0]),
    (TrainConfig, "checkpoint_every", [-1]),
    (TrainConfig, "b_dec_init_images", [-1]),
    (TrainConfig, "density_window_steps", [0]),
    (TrainConfig, "data_seed", [-1]),
    (TrainConfig, "dense_threshold", [float("nan"), -0.1]),
    (TrainConfig, "adam_betas", [(0.9, 1.0), (float("nan"), 0.9)]),
    (TrainConfig, "stop_after_steps", [-1]),
    (SAEConfig, "d_in", [0, -8]),
    (SAEConfig, "expansion_factor", [0, -2, 2.5]),
    (SAEConfig, "l1_coefficient", [float("inf"), float("nan"), -1.0]),
    (SAEConfig, "dead_feature_window", [0]),
    (SAEConfig, "aux_k", [-1]),
    (SAEConfig, "aux_k_coefficient", [float("nan"), -1.0]),
    (ExtractConfig, "batch_size", [0, -1]),
    (ExtractConfig, "shard_size", [0, -1]),
    (ExtractConfig, "num_workers", [-2]),
    (ExtractConfig, "num_threads", [-1]),
    (ExtractConfig, "wait_timeout_s", [-1.0, float("nan")]),
    (EncodeConfig, "tau", [float("nan"), float("inf"), -0.1]),
    (EncodeConfig, "top_k", [0, -1]),
    (EncodeConfig, "batch_images", [0]),
    (BackboneConfig, "img_size", [0, -14, 20]),
    (BackboneConfig, "layer", [12, -13]),
]


@pytest.mark.parametrize(
    ("cls", "field", "values"), BAD, ids=[f"{c.__name__}.{f}" for c, f, _ in BAD]
)
def test_bad_config_values_are_refused_naming_the_field(cls, field, values) -> None:
    for v in values:
        with pytest.raises(ValueError, match=field) as e:
            cls(**{field: v})
        assert f"{cls.__name__}.{field}" in str(e.value), (field, v, str(e.value))


def test_bad_values_at_the_command_line_make_no_folder(ref_store, ref_run, data_root, tmp_path):
    cases = [
        (train_argv(ref_store, tmp_path / "a", "--l1", "inf"), "l1_coefficient"),
        (train_argv(ref_store, tmp_path / "b", "--lr", "nan"), "TrainConfig.lr"),
        (train_argv(ref_store, tmp_path / "c", "--lr", "0"), "TrainConfig.lr"),
        (train_argv(ref_store, tmp_path / "d", "--expansion", "10000000"), "expansion_factor"),
        (latents_argv(ref_run, ref_store, tmp_path / "e", "--tau", "nan"), "EncodeConfig.tau"),
        (latents_argv(ref_run, ref_store, tmp_path / "f", "--top-k", "0"), "EncodeConfig.top_k"),
        ([*extract_argv(data_root, tmp_path / "g"), "--layer", "7"], "BackboneConfig.layer"),
        ([*extract_argv(data_root, tmp_path / "h"), "--batch-size", "0"], "batch_size"),
    ]
    for argv, needle in cases:
        rc, text = run_cli(argv)
        assert rc == 2 and needle in text and "Traceback" not in text, (argv, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a refused input left a folder"
    _record("--l1 inf, --lr nan/0, --tau nan, --top-k 0, --layer 7, --batch-size 0, "
            "--expansion 1e7", "refused rc 2 naming the field; no folder made")  # fmt: skip


def test_memory_estimate_refuses_before_allocating(monkeypatch) -> None:
    from cytosae.model import sae as sae_mod

    cfg = SAEConfig(d_in=64, expansion_factor=100_000)
    est = memory_estimate(cfg, tokens_per_step=4 * 257, training=True)
    assert est["params"] == 4 * (2 * 64 * 6_400_000 + 6_400_000 + 64)
    monkeypatch.setattr(sae_mod, "available_memory", lambda device: 8 << 30)
    with pytest.raises(ValueError, match="needs at least") as e:
        check_fits([cfg], torch.device("cpu"), tokens_per_step=4 * 257, training=True)
    msg = str(e.value)
    assert "expansion_factor=100000" in msg and "GiB" in msg and "8.0 GiB is available" in msg
    assert "would fit" in msg
    with pytest.raises(ValueError, match="an SAE with d_in=64"):
        SparseAutoencoder(SAEConfig(d_in=64, expansion_factor=10_000_000))
    check_fits([SAEConfig(d_in=64, expansion_factor=2)], torch.device("cpu"), tokens_per_step=999)
    _record("--expansion 100000 (64-wide store) with 8 GiB free", "refused before allocating, "
            "with the estimate and the largest factor that fits")  # fmt: skip


def test_width_mismatch_in_latents_names_both_files(ref_store: Path, tmp_path: Path) -> None:
    sae_dir = tmp_path / "sae32"
    save_sae(SparseAutoencoder(SAEConfig(d_in=32, expansion_factor=2)), sae_dir)
    rc, text = run_cli(latents_argv(sae_dir, ref_store, tmp_path / "out"))
    assert rc == 2 and "d_in=32" in text and "d_model=64" in text, text
    assert str(sae_dir / "cfg.json") in text and str(ref_store / "metadata.json") in text
    assert not (tmp_path / "out").exists()
    _record("SAE d_in 32 on a 64-wide store (latents)", "error naming both files")


def test_top_k_larger_than_the_dataset_warns(caplog) -> None:
    class Store:
        n_images, n_tokens, d_model, digest = 3, 2, 4, "x"
        manifest = pd.DataFrame({"label": ["a", "b", "a"]})

        def iter_images(self, b):
            yield np.arange(3), torch.rand(3, 2, 4)

    sae = SparseAutoencoder(SAEConfig(d_in=4, expansion_factor=2))
    with caplog.at_level(logging.WARNING):
        st = encode_pass(sae, Store(), top_k=10, progress=False)
    assert "top_k=10 exceeds the 3 image(s)" in caplog.text and st.top_indices.shape == (8, 10)
    with pytest.raises(ValueError, match=r"EncodeConfig\.tau"):
        encode_pass(sae, Store(), tau=float("nan"), progress=False)


def test_tau_nan_is_refused_everywhere() -> None:
    from cytosae.workflow.profiles import get_profile

    with pytest.raises(ValueError, match="tau"):
        get_profile("smoke", {"tau": "NaN"})
    with pytest.raises(ValueError, match="tau"):
        get_profile("smoke", {"tau": float("inf")})
    with pytest.raises(ValueError, match="tau"):
        EncodeConfig(tau=float("nan"))


def test_probe_empty_thresholds_and_missing_class(monkeypatch, caplog) -> None:
    from cytosae.analysis import probe
    from cytosae.analysis.thresholds import above_threshold, concept_counts

    rng = np.random.default_rng(0)
    y = np.repeat(["A", "B", "C"], 10)
    X = rng.poisson(1.0, size=(30, 6)).astype(float)
    for i, c in enumerate("ABC"):
        X[y == c, i] += 6
    m = np.array([1.0, 1.0, 1.0, 1e-5, 1e-5, np.nan])
    with caplog.at_level(logging.WARNING):
        df = probe.sweep(X, y, m, thresholds=[-6, 0, 1], progress=False)
    assert df.attrs["thresholds_without_latents"] == [0.0, 1.0]
    assert "threshold 0 keeps no latent" in caplog.text
    assert list(probe.sweep(X, y, m, [-6, 0], progress=False, empty="drop")["threshold"]) == [-6]
    with pytest.raises(ValueError, match="keeps no latent"):
        probe.sweep(X, y, m, [0], progress=False, empty="raise")
    for bad in (float("nan"),):
        with pytest.raises(ValueError, match="NaN"):
            above_threshold(m, bad)
        with pytest.raises(ValueError, match="NaN"):
            concept_counts(m, [bad])
    with pytest.raises(ValueError, match=r"at least 2 classes.*'A'"):
        probe.cross_validate(X[:10], y[:10])
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf.*rows \[3\]"):
        probe.cross_validate(Xn, y)
    # a fold without a class (a splitter that does not stratify): the error names the class
    import sklearn.model_selection
    from sklearn.model_selection import KFold

    monkeypatch.setattr(sklearn.model_selection, "StratifiedKFold",
                        lambda n_splits, shuffle, random_state: KFold(n_splits))  # fmt: skip
    y2 = np.array(["A"] * 2 + ["B"] * 8)
    with pytest.raises(ValueError, match=r"training fold 0 has no sample of class\(es\) \['A'\]"):
        probe.cross_validate(rng.random((10, 3)), y2, n_splits=2)
    _record("threshold sweep leaving 0 latents", "marked (attrs + warning); drop/raise options")
    _record("probe fold with a missing class / 1 class / NaN barcodes", "error naming the class")


def test_notebook_parameters_and_profiles(tmp_path: Path) -> None:
    import nbformat

    from cytosae.workflow.runner import run_notebooks

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    cell = nbformat.v4.new_code_cell('profile = "default"')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("raise SystemExit('must not run')")]
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['nope'\]"):
        run_notebooks(tmp_path, profile="smoke", extra={"nope": 1}, out_dir=tmp_path / "o")
    for argv, needle in [
        (["-p", "profile", "3"], "must be the name of a profile"),
        (["--profile", "fast"], "unknown profile 'fast'; choose one of"),
    ]:
        rc, text = run_cli(["notebooks", "--notebooks", str(tmp_path), *argv])
        assert rc == 2 and needle in text and "'int' object" not in text, text
    rc, text = run_cli(["pipeline", "--profile", "fast", "--runs", str(tmp_path / "r")])
    assert rc == 2 and "unknown profile 'fast'" in text, text
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()
    _record("-p profile 3, --profile fast, unknown papermill parameter", "error before any "
            "notebook runs, naming the value")  # fmt: skip


# =========================================================================== file modes


def test_files_get_the_umask_mode(data_root: Path, tmp_path: Path) -> None:
    runs, out = tmp_path / "runs", tmp_path / "run"
    assert run_cli(extract_argv(data_root, runs), umask=0o027)[0] == 0
    (store,) = (runs / "tokens").iterdir()
    for argv in (train_argv(store, out, "--stop-after-steps", "4"), train_argv(store, out),
                 latents_argv(out, store, tmp_path / "lat"),
                 train_argv(store, tmp_path / "st", "--stop-after-steps", "4")):  # fmt: skip
        rc, text = run_cli(argv, umask=0o027)
        assert rc == 0, text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    dirs = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert any(p.suffix == ".safetensors" for p in files) and any(p.suffix == ".npy" for p in files)
    wrong = [
        (str(p), oct(p.stat().st_mode & 0o777)) for p in files if p.stat().st_mode & 0o777 != 0o640
    ]
    assert not wrong, wrong
    wrong = [
        (str(p), oct(p.stat().st_mode & 0o777)) for p in dirs if p.stat().st_mode & 0o777 != 0o750
    ]
    assert not wrong, wrong
    _record("file modes under umask 027", "every file 0640, every folder 0750 (was 0600 for "
            "shards, checkpoints, states)")  # fmt: skip


def test_print_fault_table() -> None:
    """Last: the faults injected by this module and their outcomes (visible with -s)."""
    print(f"\n{len(FAULTS)} fault scenarios:")
    for fault, outcome in FAULTS:
        print(f"  {fault}: {outcome}")
