"""Spatial covariances and their matrix logarithm, in torch: one estimator for the network's
tangent body (whose gradients reach the attention) and the classical decoders (numpy arrays
through :func:`torch.from_numpy`)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["oas_covariances", "symmetric_log"]


def oas_covariances(x: torch.Tensor, floor: float) -> torch.Tensor:
    """OAS-shrunk spatial covariances ``(B, C, C)`` of windows ``x (B, C, T)``, in the squared
    units of ``x``, plus ``floor`` on the diagonal (an all-zero window stays positive-definite).

    The estimator of pyRiemann's ``Covariances("oas")`` (scikit-learn's formula: centred
    windows, shrinkage ``min((a + mu^2) / ((T + 1)(a - mu^2 / C)), 1)``), for all windows at
    once: pyRiemann calls scikit-learn once per window, 3.5 ms each.
    """
    n_channels, n_samples = x.shape[1], x.shape[2]
    centred = x - x.mean(dim=2, keepdim=True)
    empirical = centred @ centred.transpose(1, 2) / n_samples
    alpha = empirical.square().mean(dim=(1, 2))
    mu = torch.diagonal(empirical, dim1=1, dim2=2).mean(dim=1)
    denominator = (n_samples + 1) * (alpha - mu.square() / n_channels)
    degenerate = denominator <= 0  # a constant (e.g. all-zero) window
    shrinkage = torch.where(
        degenerate,
        torch.ones_like(mu),
        torch.clamp((alpha + mu.square()) / torch.where(degenerate, 1.0, denominator), max=1.0),
    )
    eye = torch.eye(n_channels, dtype=x.dtype, device=x.device)
    diagonal = (shrinkage * mu + floor)[:, None, None] * eye
    return (1.0 - shrinkage)[:, None, None] * empirical + diagonal


def symmetric_log(matrices: torch.Tensor, floor: float) -> torch.Tensor:
    """Matrix logarithm of symmetric positive-definite ``(B, C, C)``, eigenvalues floored at
    ``floor``; differentiable (see :class:`_SymmetricLog`)."""
    if torch.is_grad_enabled() and matrices.requires_grad:
        return _SymmetricLog.apply(matrices, floor)
    # inference: without the autograd function's bookkeeping (40 µs of 250 at 64 x 64)
    _, logs, vectors = _floored_eigh(matrices, floor)
    return _logarithm(logs, vectors)


def _floored_eigh(
    matrices: torch.Tensor, floor: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues floored at ``floor``, their logarithms, eigenvectors."""
    values, vectors = torch.linalg.eigh(matrices)
    values = values.clamp_min(floor)
    return values, torch.log(values), vectors


def _logarithm(logs: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """``V diag(logs) V^T`` for eigenvectors ``V`` ``(B, C, C)`` and ``logs`` ``(B, C)``."""
    return (vectors * logs[:, None, :]) @ vectors.transpose(1, 2)


class _SymmetricLog(torch.autograd.Function):
    """The backward is the Daleckii-Krein formula with divided differences, as SPDNet's LogEig
    layer computes it: autograd through ``eigh`` divides by eigenvalue gaps and gives NaN when
    two are equal (flat or duplicated electrodes, an all-zero window)."""

    @staticmethod
    def forward(ctx: Any, matrices: torch.Tensor, floor: float) -> torch.Tensor:
        values, logs, vectors = _floored_eigh(matrices, floor)
        ctx.save_for_backward(values, logs, vectors)
        return _logarithm(logs, vectors)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        values, logs, vectors = ctx.saved_tensors
        gap = values[:, :, None] - values[:, None, :]
        close = gap.abs() <= 1e-6 * values[:, :, None]
        # (log a - log b) / (a - b), and its limit 1 / a where a and b (nearly) coincide
        divided = torch.where(
            close,
            1.0 / values[:, :, None].expand_as(gap),
            (logs[:, :, None] - logs[:, None, :]) / torch.where(close, 1.0, gap),
        )
        symmetric = (grad + grad.transpose(1, 2)) / 2
        inner = vectors.transpose(1, 2) @ symmetric @ vectors
        return vectors @ (divided * inner) @ vectors.transpose(1, 2), None
