"""Attention over the electrode axis of EEG windows.

Every module takes ``(batch, n_electrodes, n_samples)`` or ``(batch, 1, n_electrodes,
n_samples)`` and returns ``(output, weights)``: ``output`` has the shape of the input,
``weights`` is ``(batch, n_electrodes)`` with one gate per electrode **in input order**, and
electrode ``j`` of the output is electrode ``j`` of the input times ``weights[:, j]`` (CBAM also
applies a temporal gate afterwards). Gates of SE/ECA/CBAM lie strictly inside (0, 1): they are
``eps + (1 - 2 eps) * sigmoid(z)`` with ``eps = 1e-6`` so that float32 saturation never returns
exactly 0 or 1.

Electrode descriptors ("squeeze"): ``"mean"`` is the temporal mean of each electrode (SE-Net /
ECA-Net as published). Band-passed EEG has a temporal mean close to zero, so with ``"mean"`` the
gates hardly depend on the window and act as learned per-electrode gains; ``"rms"`` (root mean
square over time) describes the electrode by its amplitude instead and gives gates that follow
the signal.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from bci_app.io.montage import positions

__all__ = [
    "ATTENTION_KINDS",
    "SQUEEZE_MODES",
    "CBAMAttention",
    "ECAAttention",
    "NoAttention",
    "SEAttention",
    "eca_kernel_size",
    "make_attention",
    "neighbourhood_order",
]

log = logging.getLogger(__name__)

ATTENTION_KINDS: tuple[str, ...] = ("se", "eca", "cbam", "none")
SQUEEZE_MODES: tuple[str, ...] = ("mean", "rms")

_GATE_EPS = 1e-6
_RMS_EPS = 1e-8


def _open_sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Sigmoid squeezed into ``[eps, 1 - eps]`` so the gate is strictly inside (0, 1)."""
    return _GATE_EPS + (1.0 - 2.0 * _GATE_EPS) * torch.sigmoid(z)


def _as_3d(x: torch.Tensor, n_electrodes: int, who: str) -> torch.Tensor:
    """``(B, C, T)`` or ``(B, 1, C, T)`` -> a ``(B, C, T)`` view; clear errors otherwise."""
    if x.dim() == 4:
        if x.shape[1] != 1:
            raise ValueError(
                f"{who}: a 4-D input must be (batch, 1, n_electrodes, n_samples); "
                f"got shape {tuple(x.shape)}"
            )
        x = x[:, 0]  # index, never squeeze(): batch size 1 must survive
    elif x.dim() != 3:
        raise ValueError(
            f"{who}: expected (batch, n_electrodes, n_samples) or (batch, 1, n_electrodes, "
            f"n_samples); got shape {tuple(x.shape)}"
        )
    if x.shape[1] != n_electrodes:
        raise ValueError(
            f"{who}: built for {n_electrodes} electrodes but the input has {x.shape[1]} "
            f"(shape {tuple(x.shape)})"
        )
    return x


def _squeeze_time(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Electrode descriptor ``(B, C)`` from ``(B, C, T)`` (see the module doc for ``mode``)."""
    if mode == "mean":
        return x.mean(dim=-1)
    return torch.sqrt(x.square().mean(dim=-1) + _RMS_EPS)


def _check_squeeze(squeeze: str) -> str:
    if squeeze not in SQUEEZE_MODES:
        raise ValueError(f"unknown squeeze {squeeze!r}; allowed values: {', '.join(SQUEEZE_MODES)}")
    return squeeze


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _hidden_size(n_electrodes: int, reduction: int) -> int:
    return max(1, n_electrodes // _check_positive_int(reduction, "reduction"))


class SEAttention(nn.Module):
    """Squeeze-and-excitation over electrodes (Hu et al. 2018).

    Descriptor ``(B, C)`` (temporal mean, or RMS) -> Linear(C, h) -> ReLU -> Linear(h, C) ->
    sigmoid gate per electrode, ``h = max(1, C // reduction)``; the input is rescaled by it.
    """

    def __init__(self, n_electrodes: int, reduction: int = 4, squeeze: str = "mean") -> None:
        super().__init__()
        self.n_electrodes = _check_positive_int(n_electrodes, "n_electrodes")
        self.squeeze = _check_squeeze(squeeze)
        hidden = _hidden_size(n_electrodes, reduction)
        self.fc1 = nn.Linear(n_electrodes, hidden)
        self.fc2 = nn.Linear(hidden, n_electrodes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, C, T) or (B, 1, C, T) -> (output like ``x``, weights (B, C))."""
        x3 = _as_3d(x, self.n_electrodes, type(self).__name__)
        descriptor = _squeeze_time(x3, self.squeeze)
        weights = _open_sigmoid(self.fc2(torch.relu(self.fc1(descriptor))))
        return (x3 * weights.unsqueeze(-1)).reshape(x.shape), weights


def eca_kernel_size(n_electrodes: int, gamma: float = 2.0, b: float = 1.0) -> int:
    """ECA kernel size for ``n_electrodes`` descriptors.

    ``t = |log2(C) / gamma + b / gamma|`` rounded to the nearest odd integer (ties go up), then
    clipped to ``[3, C_odd]`` where ``C_odd`` is the largest odd number <= C (C if C is odd,
    else C - 1); for C < 3 the kernel is 1. Examples (gamma=2, b=1): C=8 -> 3, C=64 -> 3
    (t = 3.5), C=256 -> 5 (t = 4.5).
    """
    n = _check_positive_int(n_electrodes, "n_electrodes")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    if n < 3:
        return 1
    t = abs(math.log2(n) / gamma + b / gamma)
    k = 2 * math.floor((t - 1.0) / 2.0 + 0.5) + 1  # nearest odd, ties up
    largest = n if n % 2 else n - 1
    return int(min(max(k, 3), largest))


def _two_opt(path: np.ndarray, dist: np.ndarray, max_passes: int = 100) -> np.ndarray:
    """Shorten an open path by segment reversals until no reversal helps (2-opt)."""
    path = path.copy()
    n = len(path)
    for _ in range(max_passes):
        improved = False
        for i in range(n - 1):
            js = np.arange(i + 1, n)
            c = path[js]
            gain = np.zeros(len(js))
            if i > 0:  # edge (a, b) becomes (a, c)
                a, b = path[i - 1], path[i]
                gain += dist[a, c] - dist[a, b]
            inner = js < n - 1  # edge (c, e) becomes (b, e)
            e = path[js[inner] + 1]
            gain[inner] += dist[path[i], e] - dist[c[inner], e]
            best = int(np.argmin(gain))
            if gain[best] < -1e-12:
                j = int(js[best])
                path[i : j + 1] = path[i : j + 1][::-1]
                improved = True
        if not improved:
            break
    return path


def neighbourhood_order(labels: Sequence[str]) -> list[int]:
    """Indices into ``labels`` so that consecutive electrodes are scalp neighbours.

    Method: a short open path through the montage positions (an approximate shortest
    Hamiltonian path, i.e. a travelling-salesman path): greedy nearest neighbour starting from
    the most anterior-left electrode (largest ``y - x``), then 2-opt segment reversals (either
    end may move) until no reversal shortens it. For a 10-10 cap the path snakes along the
    electrode rows; for the 64 EEGMMIDB labels every step goes to one of the 8 nearest
    electrodes. Deterministic for a given label list; ~5 ms for 64, ~20 ms for 256 labels.

    Labels that :func:`bci_app.io.montage.positions` cannot place give the identity order
    (with a logged warning).
    """
    labels = list(labels)
    n = len(labels)
    if n < 3:
        return list(range(n))
    try:
        pos = positions(labels)
    except ValueError as exc:
        log.warning(
            "cannot place the electrodes on the scalp (%s); ECA attention uses the input "
            "channel order instead of a neighbourhood order",
            exc,
        )
        return list(range(n))
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    start = int(np.argmax(pos[:, 1] - pos[:, 0]))
    visited = np.zeros(n, dtype=bool)
    path = [start]
    visited[start] = True
    for _ in range(n - 1):
        row = np.where(visited, np.inf, dist[path[-1]])
        nxt = int(np.argmin(row))
        path.append(nxt)
        visited[nxt] = True
    return [int(i) for i in _two_opt(np.array(path), dist)]


class ECAAttention(nn.Module):
    """Efficient channel attention (Wang et al. 2020) over electrodes.

    The descriptor ``(B, C)`` is permuted into ``order`` (scalp neighbours next to each other,
    see :func:`neighbourhood_order`), convolved with a 1-D kernel of :func:`eca_kernel_size`
    (no bias, zero padding), passed through a sigmoid and permuted back to input order. The
    order is a persistent buffer, so it is saved with the weights.
    """

    order: torch.Tensor

    def __init__(
        self,
        n_electrodes: int,
        order: Sequence[int] | None = None,
        gamma: float = 2.0,
        b: float = 1.0,
        squeeze: str = "mean",
    ) -> None:
        super().__init__()
        self.n_electrodes = _check_positive_int(n_electrodes, "n_electrodes")
        self.squeeze = _check_squeeze(squeeze)
        if order is None:
            order = range(n_electrodes)
        order_list = [int(i) for i in order]
        if sorted(order_list) != list(range(n_electrodes)):
            raise ValueError(
                f"order must be a permutation of 0..{n_electrodes - 1}, got {order_list}"
            )
        self.register_buffer("order", torch.tensor(order_list, dtype=torch.long))
        self.kernel_size = eca_kernel_size(n_electrodes, gamma, b)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, C, T) or (B, 1, C, T) -> (output like ``x``, weights (B, C))."""
        x3 = _as_3d(x, self.n_electrodes, type(self).__name__)
        descriptor = _squeeze_time(x3, self.squeeze).index_select(1, self.order)
        gate = self.conv(descriptor.unsqueeze(1))[:, 0]
        weights = _open_sigmoid(gate).index_select(1, torch.argsort(self.order))
        return (x3 * weights.unsqueeze(-1)).reshape(x.shape), weights


class CBAMAttention(nn.Module):
    """CBAM (Woo et al. 2018) with electrodes as channels and time as the spatial axis.

    Electrode gate: ``sigmoid(MLP(mean_t x) + MLP(max_t x))`` with a shared MLP
    (C -> max(1, C // reduction) -> C); then a temporal gate ``sigmoid(conv1d([mean_C, max_C]))``
    (kernel ``temporal_kernel``, odd, "same" padding) per time sample. Returns the electrode
    gate ``(B, C)`` as weights.
    """

    def __init__(self, n_electrodes: int, reduction: int = 4, temporal_kernel: int = 7) -> None:
        super().__init__()
        self.n_electrodes = _check_positive_int(n_electrodes, "n_electrodes")
        _check_positive_int(temporal_kernel, "temporal_kernel")
        if temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd, got {temporal_kernel}")
        hidden = _hidden_size(n_electrodes, reduction)
        self.mlp = nn.Sequential(
            nn.Linear(n_electrodes, hidden), nn.ReLU(), nn.Linear(hidden, n_electrodes)
        )
        self.temporal = nn.Conv1d(2, 1, temporal_kernel, padding=temporal_kernel // 2)
        # Start from constant gates (0.5 everywhere) and let training move them. Randomly
        # initialised, the electrode gate followed each window's max (artifacts reach 10x the
        # typical amplitude) and spread from 0.01 to 0.99 per window, and the temporal gate
        # amplitude-modulated the EEG sample by sample: training stayed at chance on EEGMMIDB.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        nn.init.zeros_(self.temporal.weight)
        nn.init.zeros_(self.temporal.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, C, T) or (B, 1, C, T) -> (output like ``x``, electrode weights (B, C))."""
        x3 = _as_3d(x, self.n_electrodes, type(self).__name__)
        weights = _open_sigmoid(self.mlp(x3.mean(dim=-1)) + self.mlp(x3.amax(dim=-1)))
        gated = x3 * weights.unsqueeze(-1)
        pooled = torch.stack([gated.mean(dim=1), gated.amax(dim=1)], dim=1)  # (B, 2, T)
        time_gate = _open_sigmoid(self.temporal(pooled))  # (B, 1, T)
        return (gated * time_gate).reshape(x.shape), weights


class NoAttention(nn.Module):
    """Identity; weights are ones ``(B, C)``."""

    def __init__(self, n_electrodes: int) -> None:
        super().__init__()
        self.n_electrodes = _check_positive_int(n_electrodes, "n_electrodes")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, C, T) or (B, 1, C, T) -> (``x``, ones (B, C))."""
        x3 = _as_3d(x, self.n_electrodes, type(self).__name__)
        return x, x3.new_ones(x3.shape[:2])


def make_attention(
    kind: str,
    n_electrodes: int,
    labels: Sequence[str] | None = None,
    reduction: int = 4,
    squeeze: str = "mean",
) -> nn.Module:
    """Build ``"se"``, ``"eca"``, ``"cbam"`` or ``"none"`` attention for ``n_electrodes``.

    ``labels`` (one per electrode, input order) give ECA its scalp-neighbourhood order; without
    them ECA uses the input order. ``squeeze`` applies to SE and ECA (CBAM uses mean and max).
    """
    if kind not in ATTENTION_KINDS:
        raise ValueError(
            f"unknown attention kind {kind!r}; allowed values: {', '.join(ATTENTION_KINDS)}"
        )
    if labels is not None and len(labels) != n_electrodes:
        raise ValueError(f"got {len(labels)} labels for {n_electrodes} electrodes")
    if kind == "se":
        return SEAttention(n_electrodes, reduction=reduction, squeeze=squeeze)
    if kind == "eca":
        order = neighbourhood_order(labels) if labels is not None else None
        return ECAAttention(n_electrodes, order=order, squeeze=squeeze)
    if kind == "cbam":
        return CBAMAttention(n_electrodes, reduction=reduction)
    return NoAttention(n_electrodes)
