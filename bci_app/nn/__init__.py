"""Neural network: electrode attention, the EEGNet-style classifier and checkpoint folders."""

from __future__ import annotations

from bci_app.nn.attention import (
    ATTENTION_KINDS,
    CBAMAttention,
    ECAAttention,
    NoAttention,
    SEAttention,
    eca_kernel_size,
    make_attention,
    neighbourhood_order,
)
from bci_app.nn.checkpoint import (
    CheckpointError,
    CheckpointMetadata,
    check_stream_compatibility,
    current_versions,
    load_checkpoint,
    read_metadata,
    render_model_card,
    save_checkpoint,
)
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier, temporal_kernel_size

__all__ = [
    "ATTENTION_KINDS",
    "CBAMAttention",
    "CheckpointError",
    "CheckpointMetadata",
    "ClassifierConfig",
    "ECAAttention",
    "EEGClassifier",
    "NoAttention",
    "SEAttention",
    "check_stream_compatibility",
    "current_versions",
    "eca_kernel_size",
    "load_checkpoint",
    "make_attention",
    "neighbourhood_order",
    "read_metadata",
    "render_model_card",
    "save_checkpoint",
    "temporal_kernel_size",
]
