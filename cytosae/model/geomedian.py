"""Geometric median (Weiszfeld) and the b_dec initialisations of the SAE.

The authors' code (inherited from mats_sae_training) runs Weiszfeld iterations over the first 64
images, each image's whole ``(T, D)`` token grid being ONE point, then averages the resulting
``(T, D)`` median over token positions.  The paper's text reads as the geometric median of the
training tokens; ``"geometric_median_token"`` computes that (every token one point).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

log = logging.getLogger(__name__)


def geometric_median(
    points: Tensor,
    weights: Tensor | None = None,
    *,
    eps: float = 1e-6,
    maxiter: int = 100,
    ftol: float = 1e-20,
) -> Tensor:
    """Weiszfeld's algorithm as in the authors' code.

    Args:
        points: ``(n, ...)``; each slice ``points[i]`` is one point (any trailing shape).
        weights: ``(n,)`` non-negative weights (default: ones).
        eps: Lower clamp of the distances (avoids division by zero at a data point).
        maxiter: Maximum number of iterations.
        ftol: Stop when the objective changes by at most ``ftol * objective``.

    Returns:
        The median, shape ``points.shape[1:]``, in ``points.dtype`` (computed in float64).
    """
    if points.ndim < 1 or points.shape[0] == 0:
        raise ValueError(
            f"geometric_median needs at least one point, got shape {tuple(points.shape)}"
        )
    p = points.detach().to(torch.float64).reshape(points.shape[0], -1)
    w = (
        torch.ones(p.shape[0], dtype=torch.float64, device=p.device)
        if weights is None
        else weights.to(p)
    )

    def wavg(ws: Tensor) -> Tensor:
        return (ws[:, None] * p).sum(0) / ws.sum()

    def objective(m: Tensor) -> Tensor:
        return ((p - m).norm(dim=1) * w).sum()

    median = wavg(w)
    obj = objective(median)
    new_w = w
    for _ in range(maxiter):
        prev = obj
        new_w = w / (p - median).norm(dim=1).clamp(min=eps)
        median = wavg(new_w)
        obj = objective(median)
        if abs(float(prev) - float(obj)) <= ftol * float(obj):
            break
    return median.reshape(points.shape[1:]).to(points.dtype)


def init_b_dec(tokens: Tensor, method: str) -> Tensor:
    """Initial decoder bias from a sample of tokens.

    Args:
        tokens: ``(B, T, D)`` images x tokens (or ``(N, D)`` tokens, treated as ``T = 1``).
        method: "geometric_median_image" | "geometric_median_token" | "mean" | "zeros".

    Returns:
        ``(D,)`` float32.
    """
    x = tokens.detach().float()
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise ValueError(
            f"init_b_dec expects (B, T, D) or (N, D) tokens, got shape {tuple(tokens.shape)}"
        )
    D = x.shape[-1]
    if method == "zeros":
        return torch.zeros(D)
    if method == "mean":
        return x.reshape(-1, D).to(torch.float64).mean(0).float()
    if method == "geometric_median_image":
        return geometric_median(x).to(torch.float64).mean(0).float()
    if method == "geometric_median_token":
        return geometric_median(x.reshape(-1, D)).float()
    raise ValueError(f"unknown b_dec_init method {method!r}")


__all__ = ["geometric_median", "init_b_dec"]
