"""Reproducible numbers across machines: CPU kernel paths pinned to AVX2.

Matrix products, ``exp`` and GELU round differently on CPUs with AVX-512 or AMX than on AVX2
CPUs, because MKL, oneDNN, OpenBLAS and NumPy pick their code path by the CPU they find. The
SAE's training then drifts apart within a few hundred steps, and the committed notebook outputs,
which nbval compares, would only reproduce on one kind of machine. :data:`PINNED_CPU_ENV` pins
all four libraries to their AVX2 paths (available on every x86-64 CPU of the last decade). It
has to be in the environment before those libraries load, so it is set for the notebook kernels
the runner and nbval start (``cytosae notebooks``, ``make figures``, ``make test``), not inside a
running process. It costs speed on AVX-512 machines, nothing on AVX2 ones.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["PINNED_CPU_ENV", "pin_cpu_kernels"]

#: environment variable -> value; each library reads its variable when it loads
PINNED_CPU_ENV: dict[str, str] = {
    "MKL_CBWR": "AVX2",  # MKL: conditional numerical reproducibility, AVX2 branch (GEMM, exp)
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions, GELU)
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy/SciPy's OpenBLAS (AVX2 kernels)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy's AVX-512 dispatch
}


def pin_cpu_kernels(env: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :data:`PINNED_CPU_ENV` into ``env`` (default ``os.environ``) where not already set.

    Returns:
        The values now in force for those variables.
    """
    env = os.environ if env is None else env
    for key, value in PINNED_CPU_ENV.items():
        env.setdefault(key, value)
    return {k: env[k] for k in PINNED_CPU_ENV}
