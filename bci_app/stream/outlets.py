"""LSL outlets through which the app publishes what it decided, so other programs (and
LabRecorder) see it: class probabilities, electrode weights and per-stage latency."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pylsl

from bci_app.config import OutletsConfig
from bci_app.infer.latency import STAGE_NAMES


def _outlet(
    name: str, stream_type: str, source_id: str, labels: Sequence[str], unit: str
) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(
        name, stream_type, len(labels), pylsl.IRREGULAR_RATE, pylsl.cf_float32, source_id
    )
    desc = info.desc()
    desc.append_child_value("manufacturer", "bci-app")
    channels = desc.append_child("channels")
    for label in labels:
        node = channels.append_child("channel")
        node.append_child_value("label", label)
        node.append_child_value("unit", unit)
        node.append_child_value("type", stream_type)
    return pylsl.StreamOutlet(info)


class PredictionOutlets:
    """Three irregular-rate float32 outlets, each sample stamped with the LSL time of the newest
    EEG sample of the window it describes.

    - ``<prefix>-predictions``: one probability per class, then the argmax class index;
    - ``<prefix>-electrode-weights``: one attention weight per electrode (labels in the desc);
    - ``<prefix>-latency``: per-stage latency of that window in milliseconds.
    """

    def __init__(
        self, config: OutletsConfig, classes: Sequence[str], electrodes: Sequence[str]
    ) -> None:
        name, sid = config.name_prefix, config.source_id_prefix
        self.classes = tuple(classes)
        self.predictions = _outlet(
            f"{name}-predictions",
            "Predictions",
            f"{sid}-predictions",
            [*self.classes, "class_index"],
            "probability",
        )
        self.weights = _outlet(
            f"{name}-electrode-weights",
            "ElectrodeWeights",
            f"{sid}-electrode-weights",
            list(electrodes),
            "weight",
        )
        self.latency = _outlet(
            f"{name}-latency", "Latency", f"{sid}-latency", list(STAGE_NAMES), "ms"
        )
        self._prediction = np.zeros(len(self.classes) + 1, dtype=np.float32)
        self._latency = np.zeros(len(STAGE_NAMES), dtype=np.float32)

    def push_decision(
        self, timestamp: float, probabilities: np.ndarray, weights: np.ndarray
    ) -> None:
        """Publish one decision (``probabilities (K,)``, ``weights (C,)``) at ``timestamp``."""
        self._prediction[:-1] = probabilities
        self._prediction[-1] = float(np.argmax(probabilities))
        self.predictions.push_sample(self._prediction, timestamp)
        self.weights.push_sample(np.asarray(weights, dtype=np.float32), timestamp)

    def push_latency(self, timestamp: float, latency_ms: dict[str, float]) -> None:
        """Publish the per-stage latency (ms) of the window stamped ``timestamp``."""
        for i, name in enumerate(STAGE_NAMES):
            self._latency[i] = latency_ms[name]
        self.latency.push_sample(self._latency, timestamp)
