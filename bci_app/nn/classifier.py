"""Compact EEGNet-style classifier (Lawhern et al. 2018) with electrode attention in front.

Input: EEG windows in microvolts, ``(batch, n_electrodes, n_samples)`` or ``(batch, 1,
n_electrodes, n_samples)`` float32, electrodes in the order the model was trained with.

Layers (C electrodes, T samples, K temporal kernel, F1/D/F2 filter counts)::

    x / input_scale_uv                                   (B, C, T)     ~unit scale
    attention over electrodes -> weights                 (B, C, T), (B, C)
    spatial conv Cx1, F1*D filters (max-norm)            (B, F1*D, 1, T)
    temporal conv 1xK "same", F1 kernels, each shared by its D spatial filters
      + BN + ELU + avgpool 1x4 + dropout                 (B, F1*D, 1, T//4)
    separable conv: depthwise 1x16 "same", pointwise F2 + BN + ELU + avgpool 1x8 + dropout
                                                         (B, F2, 1, T//32)
    flatten + linear                                     (B, n_classes)

The attention runs first, on the electrodes of the (filtered) input, so each weight belongs to
a named electrode.

Body ``"tangent"`` (``ClassifierConfig.body``) replaces everything after the attention by the
geometry of the gated window's spatial covariance, as tangent-space networks do (TSMNet, Kobler
et al. 2022, without their temporal stage)::

    attention over electrodes -> weights                 (B, C, T), (B, C)
    OAS-shrunk spatial covariance                        (B, C, C)
    matrix logarithm (eigendecomposition)                (B, C, C)
    upper triangle, off-diagonal x sqrt(2)               (B, C (C + 1) / 2)
    linear                                               (B, n_classes)

Its input is expected re-centred (Euclidean alignment), so the logarithm at the identity is the
tangent space at the calibration's mean. On 30 motor-imagery trials it decodes what the EEGNet
body does not find (S001, leave one run out, 6 seeds: left/right 0.76 against 0.58, hands/feet
0.97 against 0.93). ONNX has no eigendecomposition, so this body runs in torch
(:attr:`EEGClassifier.exports_onnx`).

EEGNet filters in time first (F1 filters on every electrode), then in space. Both are linear,
so filtering in space first and then in time with the same kernels gives the same function
class at a fraction of the work: F1*D signals are filtered in time instead of F1*C (64
electrodes: about 10x less compute per training step). EEGNet's batch norm between the two
stages is dropped; in a trained network it is an affine map per temporal filter, which
:func:`upgrade_state` folds into the neighbouring layers when it reads an older checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from bci_app.config import PositiveHz, PositiveSeconds, format_validation_error
from bci_app.nn.attention import ATTENTION_KINDS, SQUEEZE_MODES, make_attention
from bci_app.nn.covariance import oas_covariances, symmetric_log

__all__ = [
    "BODIES",
    "MIN_SAMPLES",
    "ClassifierConfig",
    "EEGClassifier",
    "temporal_kernel_size",
    "upgrade_state",
]

#: Shortest window the pooling (4 x 8) can handle.
MIN_SAMPLES = 32
_POOL1 = 4
_POOL2 = 8
_SEPARABLE_KERNEL = 16

#: What follows the attention: EEGNet's convolutions, or the covariance's tangent space.
BODIES: tuple[str, ...] = ("eegnet", "tangent")
#: Variance added to the tangent body's covariance diagonal (input units squared, i.e. in
#: (input_scale_uv µV)²): keeps an all-zero window (a warm-up, a flat amplifier) positive-definite.
_COVARIANCE_FLOOR = 1e-6

_Count = Annotated[int, Field(ge=1)]
_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def temporal_kernel_size(kernel_seconds: float, rate_hz: float) -> int:
    """Odd temporal kernel length in samples: ``2 * floor(kernel_seconds * rate_hz / 2) + 1``.

    E.g. 0.25 s at 160 Hz -> 41 samples, at 128 Hz -> 33, at 250 Hz -> 63.
    """
    return 2 * math.floor(kernel_seconds * rate_hz / 2.0) + 1


class ClassifierConfig(BaseModel):
    """Architecture of :class:`EEGClassifier`; validated on construction (keywords only).

    ``rate_hz`` is the model sampling rate (Hz), ``kernel_seconds`` the temporal kernel length
    (s), ``input_scale_uv`` the microvolt value that maps to 1.0 at the network input.
    ``squeeze`` ("mean" or "rms") is the SE/ECA electrode descriptor (see
    :mod:`bci_app.nn.attention`). The default is "rms", the time-mean of the squared signal:
    the plain time-mean of band-passed EEG is ~0, which leaves the gates nearly constant from
    window to window. On EEGMMIDB (a since retired benchmark, same folds, two runs) rms
    scored higher than mean (hands vs feet 0.933-1.000 vs 0.900-0.933, left vs right 0.633
    vs 0.600). ``max_norm`` caps the L2 norm of each depthwise
    spatial filter (None: no cap). ``body`` is what follows the attention (see the module doc);
    the tangent body uses none of the convolution settings (``f1`` ... ``max_norm``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    n_electrodes: _Count
    n_samples: Annotated[int, Field(ge=MIN_SAMPLES)]
    n_classes: Annotated[int, Field(ge=2)]
    rate_hz: PositiveHz
    attention: Literal[ATTENTION_KINDS] = "se"  # runtime Literal of the tuple's values
    reduction: _Count = 4
    f1: _Count = 8
    depth: _Count = 2
    f2: _Count = 16
    kernel_seconds: PositiveSeconds = 0.25
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.25
    input_scale_uv: _Positive = 20.0
    squeeze: Literal[SQUEEZE_MODES] = "rms"
    max_norm: _Positive | None = 1.0
    body: Literal[BODIES] = "eegnet"  # runtime Literal of the tuple's values

    @property
    def n_tangent_features(self) -> int:
        """Length of the tangent body's feature vector: ``C (C + 1) / 2``."""
        return self.n_electrodes * (self.n_electrodes + 1) // 2

    @property
    def temporal_kernel(self) -> int:
        """Temporal kernel length in samples (odd), see :func:`temporal_kernel_size`."""
        return temporal_kernel_size(self.kernel_seconds, self.rate_hz)

    @property
    def pooled_samples(self) -> int:
        """Time steps left after both pooling stages: ``(n_samples // 4) // 8``."""
        return (self.n_samples // _POOL1) // _POOL2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields."""
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassifierConfig:
        """Inverse of :meth:`to_dict`; a ValueError names every unknown, missing or bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, "classifier config", cls)) from None


class _MaxNormConv2d(nn.Conv2d):
    """The spatial filters ``(F1*D, 1, C, 1)``, kept as a Conv2d for the saved state's layout,
    applied by :class:`EEGClassifier` as a matrix product of :meth:`capped_weight`.

    The cap (L2 norm <= ``max_norm`` per filter) is applied functionally in every forward pass
    (train and eval alike), so the parameters are never modified in place.
    """

    def __init__(self, *args: Any, max_norm: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_norm = max_norm

    def capped_weight(self) -> torch.Tensor:
        """The weight with each output filter's L2 norm capped at ``max_norm``."""
        if self.max_norm is None:
            return self.weight
        return torch.renorm(self.weight, p=2, dim=0, maxnorm=self.max_norm)


def _same_correlation_fft(signals: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``conv1d(signals, kernels, padding=K // 2, groups=G)`` through the FFT.

    ``signals (B, G, T)``, ``kernels (G, K)`` with K odd. Equal within float32 rounding; in
    training (forward and backward) about 5x faster on CPU than the depthwise convolution.
    """
    n_samples, width = signals.shape[-1], kernels.shape[-1]
    n_fft = 1 << (n_samples + width - 2).bit_length()
    spectrum = torch.fft.rfft(signals, n=n_fft) * torch.fft.rfft(kernels.flip(-1), n=n_fft)
    full = torch.fft.irfft(spectrum, n=n_fft)
    return full[..., width // 2 : width // 2 + n_samples]


class EEGClassifier(nn.Module):
    """Electrode attention, then EEGNet or the tangent body (``config.body``); see the module
    doc for the layer stacks.

    ``channel_labels`` (one per electrode, input order) are only used to give ECA attention its
    scalp-neighbourhood order (saved in the state dict as ``attention.order``).
    """

    input_scale_uv: torch.Tensor

    def __init__(
        self, config: ClassifierConfig, channel_labels: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        if channel_labels is not None and len(channel_labels) != config.n_electrodes:
            raise ValueError(
                f"got {len(channel_labels)} channel labels for {config.n_electrodes} electrodes"
            )
        self.config = config
        c, k = config.n_electrodes, config.temporal_kernel
        f1, f1d, f2 = config.f1, config.f1 * config.depth, config.f2
        self.register_buffer("input_scale_uv", torch.tensor(config.input_scale_uv))
        self.attention = make_attention(
            config.attention,
            c,
            labels=list(channel_labels) if channel_labels is not None else None,
            reduction=config.reduction,
            squeeze=config.squeeze,
        )
        if config.body == "tangent":
            rows, columns = torch.triu_indices(c, c)
            self.register_buffer("_upper_rows", rows, persistent=False)
            self.register_buffer("_upper_columns", columns, persistent=False)
            # sqrt(2) on the off-diagonal: the features' Euclidean norm is the matrix's Frobenius
            self.register_buffer(
                "_upper_scale",
                torch.where(rows == columns, 1.0, math.sqrt(2.0)),
                persistent=False,
            )
            self.head = nn.Linear(config.n_tangent_features, config.n_classes)
            return
        self.spatial = _MaxNormConv2d(1, f1d, (c, 1), bias=False, max_norm=config.max_norm)
        # weight (F1, 1, 1, K): one kernel per temporal filter, shared by its D spatial filters
        self.temporal = nn.Conv2d(1, f1, (1, k), bias=False)
        self.bn2 = nn.BatchNorm2d(f1d)
        self.pool1 = nn.AvgPool2d((1, _POOL1))
        self.drop1 = nn.Dropout(config.dropout)
        pad = _SEPARABLE_KERNEL - 1
        self.separable_pad = nn.ZeroPad2d((pad // 2, pad - pad // 2, 0, 0))  # "same"
        self.separable_depthwise = nn.Conv2d(
            f1d, f1d, (1, _SEPARABLE_KERNEL), groups=f1d, bias=False
        )
        self.separable_pointwise = nn.Conv2d(f1d, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, _POOL2))
        self.drop2 = nn.Dropout(config.dropout)
        self.head = nn.Linear(f2 * config.pooled_samples, config.n_classes)

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate ``(B, C, T)`` / ``(B, 1, C, T)`` and return ``(B, C, T)`` in model dtype."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        cfg = self.config
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]  # index, never squeeze(): batch size 1 must survive
        if x.dim() != 3 or tuple(x.shape[1:]) != (cfg.n_electrodes, cfg.n_samples):
            raise ValueError(
                f"expected input (batch, {cfg.n_electrodes}, {cfg.n_samples}) or (batch, 1, "
                f"{cfg.n_electrodes}, {cfg.n_samples}) [electrodes x samples at "
                f"{cfg.rate_hz:g} Hz], got {tuple(x.shape)}"
            )
        return x.to(dtype=self.input_scale_uv.dtype)

    @torch.no_grad()
    def fold_max_norm(self) -> EEGClassifier:
        """Apply the max-norm cap to the stored spatial filters once and drop it from forward.

        For inference: the renorm is idempotent, so outputs stay the same, and the forward loses
        an op per call (and exports to ONNX, which has no renorm). Do not train afterwards.
        """
        for module in self.modules():
            if isinstance(module, _MaxNormConv2d) and module.max_norm is not None:
                module.weight.copy_(
                    torch.renorm(module.weight, p=2, dim=0, maxnorm=module.max_norm)
                )
                module.max_norm = None
        return self

    @property
    def exports_onnx(self) -> bool:
        """Whether the network has an ONNX form (the tangent body's eigendecomposition has no
        ONNX operator; it runs in torch)."""
        return self.config.body != "tangent"

    def tangent_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tangent body: microvolt windows ``(B, C, T)`` -> (the log-covariance's upper
        triangle ``(B, C (C + 1) / 2)``, electrode weights ``(B, C)``)."""
        x = self._check_input(x) / self.input_scale_uv
        x, weights = self.attention(x)
        covariances = oas_covariances(x, _COVARIANCE_FLOOR)
        logarithm = symmetric_log(covariances, _COVARIANCE_FLOOR)
        upper = logarithm[:, self._upper_rows, self._upper_columns] * self._upper_scale
        return upper, weights

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Microvolt windows ``(B, C, T)`` -> (logits ``(B, K)``, electrode weights ``(B, C)``)."""
        if self.config.body == "tangent":
            features, weights = self.tangent_features(x)
            return self.head(features), weights
        x = self._check_input(x) / self.input_scale_uv
        x, weights = self.attention(x)
        h = torch.matmul(self.spatial.capped_weight().flatten(1), x)  # (B, F1*D, T)
        kernels = self.temporal.weight.flatten(1).repeat_interleave(self.config.depth, dim=0)
        if self.training:
            h = _same_correlation_fft(h, kernels).unsqueeze(2)
        else:
            # A plain convolution exports to ONNX and runs in CUDA graphs. As a 2-D (1 x K)
            # depthwise convolution ONNX Runtime runs it 3x faster than as a 1-D one.
            padding = (0, kernels.shape[-1] // 2)
            h = F.conv2d(
                h.unsqueeze(2), kernels[:, None, None, :], padding=padding, groups=len(kernels)
            )
        h = self.drop1(self.pool1(F.elu(self.bn2(h))))
        h = self.separable_pointwise(self.separable_depthwise(self.separable_pad(h)))
        h = self.drop2(self.pool2(F.elu(self.bn3(h))))
        return self.head(h.flatten(start_dim=1)), weights

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Microvolt windows ``(B, C, T)`` -> (probabilities ``(B, K)``, weights ``(B, C)``)."""
        logits, weights = self.forward_logits(x)
        return torch.softmax(logits, dim=1), weights


@torch.no_grad()
def upgrade_state(
    state: Mapping[str, torch.Tensor], config: ClassifierConfig, eps: float = 1e-5
) -> dict[str, torch.Tensor]:
    """A saved state of the older time-first layout (with ``bn1``) in today's layout, exactly.

    In evaluation, ``bn1`` maps temporal filter f's output z to ``a_f z + b_f``. Its scale goes
    into kernel f; its offset, summed by each spatial filter, into ``bn2``'s running mean. The
    spatial weights keep their values (their max-norm cap still applies as trained). States
    without ``bn1`` are returned unchanged.
    """
    if "bn1.weight" not in state:
        return dict(state)
    upgraded = {k: v for k, v in state.items() if not k.startswith("bn1.")}
    scale = state["bn1.weight"] / torch.sqrt(state["bn1.running_var"] + eps)
    offset = state["bn1.bias"] - state["bn1.running_mean"] * scale
    upgraded["temporal.weight"] = state["temporal.weight"] * scale.view(-1, 1, 1, 1)
    spatial = state["spatial.weight"]
    if config.max_norm is not None:
        spatial = torch.renorm(spatial, p=2, dim=0, maxnorm=config.max_norm)
    summed = spatial.sum(dim=(1, 2, 3))  # (F1*D,)
    upgraded["bn2.running_mean"] = (
        state["bn2.running_mean"] - offset.repeat_interleave(config.depth) * summed
    )
    return upgraded
