"""Prediction sinks: the LSL outlets through which the app publishes what it decided (so other
programs and LabRecorder see it), and the JSON-lines log."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pylsl

from bci_app.config import OutletsConfig
from bci_app.infer.latency import STAGE_NAMES
from bci_app.io.lslinfo import make_stream_info
from bci_app.nn.metadata import json_default
from bci_app.stream.selector import StreamSelector

if TYPE_CHECKING:  # only for annotations: the worker module loads torch
    from bci_app.infer.worker import Prediction

__all__ = [
    "CHARACTERS_SUFFIX",
    "OUTLET_SUFFIXES",
    "STATUS_SUFFIX",
    "JsonlLog",
    "PredictionOutlets",
    "outlet_selectors",
    "outlet_source_id",
]

#: The app's outlets: ``<name_prefix>-<suffix>`` with source_id
#: ``<source_id_prefix>-<suffix>-<session_id>``.
OUTLET_SUFFIXES: tuple[str, ...] = ("predictions", "electrode-weights", "latency", "status")
STATUS_SUFFIX = "status"
#: A P300 worker's outlet of decided characters (string, one sample per character).
CHARACTERS_SUFFIX = "characters"


def outlet_source_id(config: OutletsConfig, suffix: str) -> str:
    """The source_id of the outlet ``suffix``: its prefix, suffix and the worker's session."""
    base = f"{config.source_id_prefix}-{suffix}"
    return base if config.session_id is None else f"{base}-{config.session_id}"


def outlet_selectors(
    config: OutletsConfig, characters: bool | None = False
) -> list[StreamSelector]:
    """Selectors of the app's own outlets, e.g. to record them: by name and source_id when the
    session is known, else by name (any worker with that prefix). ``characters``: True, a P300
    worker's decided characters too; None, those too if the worker has them (any paradigm)."""
    suffixes = OUTLET_SUFFIXES + ((CHARACTERS_SUFFIX,) if characters is not False else ())
    return [
        StreamSelector(
            name=f"{config.name_prefix}-{suffix}",
            source_id=None if config.session_id is None else outlet_source_id(config, suffix),
            optional=suffix == CHARACTERS_SUFFIX and characters is None,
        )
        for suffix in suffixes
    ]


def _outlet(
    config: OutletsConfig,
    suffix: str,
    stream_type: str,
    labels: Sequence[str],
    unit: str,
    worker: Mapping[str, str],
    channel_format: str = "float32",
) -> pylsl.StreamOutlet:
    info = make_stream_info(
        f"{config.name_prefix}-{suffix}",
        stream_type,
        outlet_source_id(config, suffix),
        labels=labels,
        unit=unit,
        channel_format=channel_format,
        manufacturer="bci-app",
    )
    described = info.desc().append_child("bci_app")
    for key, value in worker.items():
        described.append_child_value(key, str(value))
    return pylsl.StreamOutlet(info)


class PredictionOutlets:
    """Three irregular-rate float32 outlets, each sample stamped with the LSL time of the newest
    EEG sample of the window it describes, and a status outlet.

    - ``<prefix>-predictions``: one probability per class, then the argmax class index;
    - ``<prefix>-electrode-weights``: one attention weight per electrode (labels in the desc);
    - ``<prefix>-latency``: per-stage latency of that window in milliseconds;
    - ``<prefix>-status``: one JSON string a second (see :meth:`push_status`);
    - ``<prefix>-characters`` (P300, ``characters``): each decided character, stamped with the
      LSL time of the flash that decided it.

    Each description holds ``<bci_app>``: ``session_id`` (also the end of every source_id),
    ``input_name`` / ``input_source_id`` (the EEG stream the worker reads), ``hostname``; the
    status outlet's also ``metadata`` (the checkpoint's metadata.json), for viewers.
    """

    def __init__(
        self,
        config: OutletsConfig,
        classes: Sequence[str],
        electrodes: Sequence[str],
        worker: Mapping[str, str] | None = None,
        metadata_json: str | None = None,
        characters: bool = False,
    ) -> None:
        self.classes = tuple(classes)
        worker = {"session_id": config.session_id or "", **(worker or {})}
        predictions, weights, latency, status = OUTLET_SUFFIXES
        self.predictions = _outlet(
            config,
            predictions,
            "Predictions",
            [*self.classes, "class_index"],
            "probability",
            worker,
        )
        self.weights = _outlet(
            config, weights, "ElectrodeWeights", list(electrodes), "weight", worker
        )
        self.latency = _outlet(config, latency, "Latency", list(STAGE_NAMES), "ms", worker)
        status_desc = dict(worker)
        if metadata_json is not None:
            status_desc["metadata"] = metadata_json
        self.status = _outlet(
            config, status, "Status", ["status"], "json", status_desc, channel_format="string"
        )
        self.characters = (
            _outlet(config, CHARACTERS_SUFFIX, "Markers", ["character"], "", worker, "string")
            if characters
            else None
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

    def push_character(self, symbol: str, timestamp: float) -> None:
        """Publish a decided speller character at ``timestamp`` (P300 workers only)."""
        if self.characters is None:
            raise RuntimeError("this worker has no characters outlet (not a P300 model)")
        self.characters.push_sample([symbol], timestamp)

    def push_status(self, status: Mapping) -> None:
        """Publish one status snapshot (a JSON-able mapping) as a JSON string, stamped now."""
        self.status.push_sample([json.dumps(status, default=json_default)])


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
