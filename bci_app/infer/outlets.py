"""Prediction sinks: the LSL outlets through which the app publishes what it decided (so other
programs and LabRecorder see it), and the JSON-lines log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pylsl

from bci_app.config import OutletsConfig
from bci_app.infer.latency import STAGE_NAMES
from bci_app.io.lslinfo import make_stream_info
from bci_app.stream.selector import StreamSelector

if TYPE_CHECKING:  # only for annotations: the worker module loads torch
    from bci_app.infer.worker import Prediction

__all__ = ["OUTLET_SUFFIXES", "JsonlLog", "PredictionOutlets", "outlet_selectors"]

#: The app's outlets: ``<name_prefix>-<suffix>`` with source_id ``<source_id_prefix>-<suffix>``.
OUTLET_SUFFIXES: tuple[str, ...] = ("predictions", "electrode-weights", "latency")


def outlet_selectors(config: OutletsConfig) -> list[StreamSelector]:
    """Selectors of the app's own outlets (by name and source_id), e.g. to record them."""
    return [
        StreamSelector(
            name=f"{config.name_prefix}-{suffix}", source_id=f"{config.source_id_prefix}-{suffix}"
        )
        for suffix in OUTLET_SUFFIXES
    ]


def _outlet(
    config: OutletsConfig, suffix: str, stream_type: str, labels: Sequence[str], unit: str
) -> pylsl.StreamOutlet:
    info = make_stream_info(
        f"{config.name_prefix}-{suffix}",
        stream_type,
        f"{config.source_id_prefix}-{suffix}",
        labels=labels,
        unit=unit,
        manufacturer="bci-app",
    )
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
        self.classes = tuple(classes)
        predictions, weights, latency = OUTLET_SUFFIXES
        self.predictions = _outlet(
            config, predictions, "Predictions", [*self.classes, "class_index"], "probability"
        )
        self.weights = _outlet(config, weights, "ElectrodeWeights", list(electrodes), "weight")
        self.latency = _outlet(config, latency, "Latency", list(STAGE_NAMES), "ms")
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


class JsonlLog:
    """Appends one JSON line per prediction (window end time, probabilities, weights, latency)."""

    def __init__(self, path: str | Path, classes: list[str], labels: list[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._file.write(json.dumps({"classes": classes, "electrodes": labels}) + "\n")

    def __call__(self, prediction: Prediction) -> None:
        record = {
            "seq": prediction.seq,
            "time": prediction.timestamp,
            "class": prediction.class_name,
            "probabilities": [round(float(p), 6) for p in prediction.probabilities],
            "weights": [round(float(w), 6) for w in prediction.weights],
            "latency_ms": {k: round(v, 4) for k, v in prediction.latency_ms.items()},
        }
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()
