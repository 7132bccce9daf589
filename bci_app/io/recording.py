"""One continuous recording, whatever file it came from: :class:`Recording`.

Conventions: signals are ``(n_samples, n_channels)`` float32 microvolts; event positions are
sample indices into ``Recording.data``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from bci_app.errors import UserError
from bci_app.io.labels import label_key

__all__ = ["Recording", "RecordingError", "timestamp_breaks"]


class RecordingError(UserError, ValueError):
    """A recording cannot be read or used; the message names the file and how to fix it."""


@dataclass(frozen=True, eq=False)
class Recording:
    """One continuous recording.

    ``data``: ``(n_samples, n_channels)`` float32 µV. ``rate_hz``: nominal sample rate.
    ``labels``: canonical channel labels. ``events``: ``(sample_index, label)`` in time order.
    ``timestamps``: ``(n_samples,)`` float64 LSL seconds (XDF) or None. ``source``: file path.
    ``run``: short run name (file stem). ``damage``: one description per damaged stream of a
    file read in part (:mod:`bci_app.io.damage`), empty for a whole file. ``meas_date``: the
    start of the measurement (UTC) an EDF/BDF/FIF header holds, else None.
    """

    data: np.ndarray
    rate_hz: float
    labels: tuple[str, ...]
    events: tuple[tuple[int, str], ...]
    timestamps: np.ndarray | None
    source: str
    run: str
    damage: tuple[str, ...] = ()
    meas_date: datetime | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(
                f"{self.source}: data must be (n_samples, n_channels), got {self.data.shape}"
            )
        if len(self.labels) != self.data.shape[1]:
            raise ValueError(
                f"{self.source}: {len(self.labels)} labels for {self.data.shape[1]} channels"
            )
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(
                f"{self.source}: rate_hz must be a positive number, got {self.rate_hz}"
            )
        if self.timestamps is not None and self.timestamps.shape != (self.data.shape[0],):
            raise ValueError(
                f"{self.source}: {self.timestamps.shape[0]} timestamps for "
                f"{self.data.shape[0]} samples"
            )

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz

    def sample_times(self) -> np.ndarray:
        """``(n_samples,)`` seconds: the recorded timestamps, else ``index / rate_hz``."""
        if self.timestamps is not None:
            return self.timestamps
        return np.arange(self.n_samples, dtype=np.float64) / self.rate_hz

    def columns(self, pick: Sequence[str] | None) -> np.ndarray:
        """Column indices of the ``pick`` labels, in that order (all columns when None), matched
        as the live inlet matches them (:func:`~bci_app.io.labels.label_key`). Raises
        :class:`RecordingError` naming the missing labels."""
        if pick is None:
            return np.arange(len(self.labels), dtype=np.intp)
        lookup: dict[str, int] = {}
        for i, label in enumerate(self.labels):
            lookup.setdefault(label_key(label), i)
        missing = [w for w in pick if label_key(w) not in lookup]
        if missing:
            raise RecordingError(
                f"{self.source}: no channel(s) {', '.join(missing)}; its channels are "
                f"{', '.join(self.labels)}. Fix the channel list (channels.pick / --channels) "
                "or leave those recordings out"
            )
        return np.array([lookup[label_key(w)] for w in pick], dtype=np.intp)


def timestamp_breaks(timestamps: np.ndarray, rate: float, tolerance_s: float) -> np.ndarray:
    """Indices of samples after a timestamp jump, by the live inlet's rule: a step beyond one
    period plus ``tolerance_s``, or backwards by more than ``tolerance_s``."""
    steps = np.diff(timestamps)
    return np.flatnonzero((steps > 1.0 / rate + tolerance_s) | (steps < -tolerance_s)) + 1
