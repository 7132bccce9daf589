"""An ensemble: the mean of its members' class probabilities (and of their electrode weights)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bci_app.decoders.base import Decoder, DecoderError

__all__ = ["EnsembleDecoder"]


class EnsembleDecoder(Decoder):
    """Each member prepares windows its own way (band, alignment); a checkpoint holds each
    member's arrays as ``member<i>.<name>``."""

    kind = "ensemble"
    weights_meaning = "the mean of the members' electrode weights (each scaled so its largest = 1)"

    def __init__(self, members: Sequence[Decoder]) -> None:
        if len(members) < 2:
            raise DecoderError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        if any((m.n_channels, m.n_classes) != (first.n_channels, first.n_classes) for m in members):
            raise DecoderError("ensemble members differ in their number of channels or classes")
        super().__init__(first.n_channels, first.n_classes)
        self.members = list(members)

    def reset(self) -> None:
        for member in self.members:
            member.reset()

    def settle(self) -> None:
        for member in self.members:
            member.settle()

    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The members' :meth:`~Decoder.predict` (each prepares the windows its own way)."""
        outputs = [member.predict(x) for member in self.members]
        probabilities = np.mean([p for p, _ in outputs], axis=0)
        weights = np.mean(
            [w / np.maximum(w.max(axis=1, keepdims=True), 1e-12) for _, w in outputs], axis=0
        )
        return probabilities.astype(np.float32), weights.astype(np.float32)

    def tensors(self) -> dict[str, np.ndarray]:
        """Empty: the members. arrays are saved by ``decoder_arrays``."""
        return {}

    def params(self) -> dict[str, Any]:
        """Empty: the members. specs are saved by ``decoder_spec``."""
        return {}
