"""Which cue markers are which class, and the raw epochs around the cues.

Conventions: epochs are ``(n_epochs, n_channels, n_times)`` float64 µV straight from
``Recording.data`` (no filter: the time-frequency and band-power estimates choose their own
bands); times are seconds relative to the cue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bci_app.errors import UserError
from bci_app.io import Recording
from bci_app.train.commands import class_items
from bci_app.train.data import parse_class_map

__all__ = ["APP_MARKER_PREFIX", "CueEpochs", "ReportError", "cue_epochs", "resolve_class_map"]

#: Markers the app itself writes during a calibration (not cues); same prefix as
#: ``bci_app.calibrate.controller.MARKER_PREFIX``, which this layer may not import.
APP_MARKER_PREFIX = "bci-app:"


class ReportError(UserError, ValueError):
    """A report cannot be made from this input; the message names the problem and the fix."""


def _found(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{label} ({n}x)" for label, n in counts.items()) or "none"


def resolve_class_map(
    recording: Recording,
    classes: Sequence[str] | None = None,
    model_class_map: Mapping[str, str] | None = None,
    model_classes: Sequence[str] | None = None,
    model_name: str = "the model",
) -> dict[str, str]:
    """Event label -> class name, in class order.

    ``classes``: ``LABEL:CLASS`` items as ``bci-app train --classes`` (``LABEL`` alone means
    ``LABEL:LABEL``); with a model its class names must be the model's. Else the model's class
    map (``model_class_map``, ordered by ``model_classes``), else every cue label of the file
    (app markers left out). Raises :class:`ReportError` for a file without cue markers, labels
    the file does not have, class names the model does not know, or fewer than two classes.
    """
    counts = Counter(label for _, label in recording.events)
    cues = {
        label: n for label, n in sorted(counts.items()) if not label.startswith(APP_MARKER_PREFIX)
    }
    if classes:
        wanted = parse_class_map(class_items(list(classes)))
        where = "--classes"
    elif model_class_map is not None:
        wanted = dict(model_class_map)
        where = f"the class map of {model_name}"
    else:
        wanted = {label: label for label in cues}
        where = "the file's cue labels"
    if not cues:
        need = ", ".join(wanted) if wanted else "one marker per trial, e.g. T1 and T2"
        raise ReportError(
            f"{recording.source}: no cue markers, but the report cuts its trials at them ({need}); "
            "record the marker stream with the EEG (LabRecorder / bci-app record), or use a file "
            "with annotations such as EEGMMIDB's T0/T1/T2"
        )
    unknown = [label for label in wanted if label not in cues]
    if unknown:
        raise ReportError(
            f"{recording.source}: no cue marker {', '.join(unknown)} (from {where}); the file's "
            f"cue markers are {_found(cues)}. Name them with --classes, e.g. "
            + " ".join(f"{label}:NAME" for label in list(cues)[:2])
        )
    if model_classes is not None:
        strange = sorted(set(wanted.values()) - set(model_classes))
        if strange:
            raise ReportError(
                f"class(es) {', '.join(strange)} ({where}) are not classes of {model_name}, "
                f"which knows {', '.join(model_classes)}; map the markers to those, e.g. "
                f"--classes {' '.join(f'LABEL:{c}' for c in model_classes)}"
            )
        order = {name: i for i, name in enumerate(model_classes)}
        wanted = dict(sorted(wanted.items(), key=lambda item: order[item[1]]))
    if len(set(wanted.values())) < 2:
        raise ReportError(
            f"{recording.source}: only one class ({', '.join(wanted)} from {where}); the report "
            f"compares at least two. The file's cue markers are {_found(cues)}; give two or more "
            "with --classes, e.g. T1:hands T2:feet"
        )
    return wanted


@dataclass(frozen=True, eq=False)
class CueEpochs:
    """Raw epochs around the cues of the classes.

    ``data (n_epochs, n_channels, n_times)`` float64 µV; ``y (n_epochs,)`` class index into
    ``classes``; ``tmin_s``: time of the first sample after the cue (s); ``dropped``: cues
    whose epoch would leave the recording or holds non-finite samples (a gap).
    """

    data: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    tmin_s: float
    rate_hz: float
    dropped: int

    def times(self) -> np.ndarray:
        """``(n_times,)`` seconds relative to the cue."""
        return self.tmin_s + np.arange(self.data.shape[2]) / self.rate_hz

    def counts(self) -> dict[str, int]:
        """Epochs per class, in class order."""
        n = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n[i]) for i, name in enumerate(self.classes)}


def cue_epochs(
    recording: Recording, class_map: Mapping[str, str], tmin_s: float, tmax_s: float
) -> CueEpochs:
    """Epochs ``[cue + tmin_s, cue + tmax_s)`` of every cue in ``class_map``; cues too near an
    end of the recording, or whose epoch holds non-finite samples, are dropped and counted.
    Raises :class:`ReportError` when none is left."""
    classes = tuple(dict.fromkeys(class_map.values()))
    rate = recording.rate_hz
    first = math.floor(tmin_s * rate + 0.5)
    n_times = math.floor(tmax_s * rate + 0.5) - first
    starts, ys = [], []
    dropped = 0
    for cue, label in recording.events:
        if label not in class_map:
            continue
        start = cue + first
        if start < 0 or start + n_times > recording.n_samples:
            dropped += 1
            continue
        starts.append(start)
        ys.append(classes.index(class_map[label]))
    if not starts:
        raise ReportError(
            f"{recording.source}: every cue of {', '.join(class_map)} is within "
            f"{-tmin_s:g} s of the start or {tmax_s:g} s of the end of the "
            f"{recording.duration_s:.1f} s recording; the report needs whole trials"
        )
    index = np.asarray(starts)[:, None] + np.arange(n_times)[None, :]
    data = np.ascontiguousarray(recording.data[index].transpose(0, 2, 1), dtype=np.float64)
    finite = np.isfinite(data).all(axis=(1, 2))
    dropped += int((~finite).sum())
    if not finite.any():
        raise ReportError(
            f"{recording.source}: every trial epoch holds non-finite samples (gaps in the "
            "recording); the report needs trials with data"
        )
    y = np.asarray(ys, dtype=np.int64)[finite]
    return CueEpochs(data[finite], y, classes, first / rate, float(rate), dropped)
