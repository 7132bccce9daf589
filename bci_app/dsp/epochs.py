"""Event-locked epochs cut from the filtered model-rate signal (ERP paradigms).

An epoch is asked for with the model-rate position of its stimulus and is cut as soon as its
last sample is in the ring, so the live app and offline training cut the same samples: epoch
``[round(position + start_s * rate), ... + length)``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from bci_app.dsp.windows import Window, WindowReader, seconds_to_samples
from bci_app.stream.ring import RingBuffer, RingOverrun

__all__ = ["EpochCutter", "PendingEpochsFull"]

Tag = TypeVar("Tag")

#: Epochs that may wait for their samples at once (a speller flashes ~6 times a second).
MAX_PENDING = 512


class PendingEpochsFull(RuntimeError):
    """More epochs are waiting for samples than :data:`MAX_PENDING`: the signal stopped."""


@dataclass(frozen=True)
class _Pending(Generic[Tag]):
    start: int
    tag: Tag


class EpochCutter(Generic[Tag]):
    """Cuts epochs of ``[start_s, stop_s)`` seconds around stimuli from a model-rate
    :class:`RingBuffer`. ``missed`` counts epochs whose samples had left the ring already."""

    def __init__(self, ring: RingBuffer, rate_hz: float, start_s: float, stop_s: float) -> None:
        self.ring = ring
        self.rate_hz = float(rate_hz)
        self.start_s = float(start_s)
        self.length = seconds_to_samples(stop_s - start_s, rate_hz, "epoch length")
        if self.length > ring.capacity:
            raise ValueError(
                f"an epoch of {self.length} samples does not fit a ring of {ring.capacity}; "
                "raise ring.capacity"
            )
        self._pending: collections.deque[_Pending[Tag]] = collections.deque()
        self.next_seq = 0
        self.missed = 0
        self._reader = WindowReader(ring, self.length)

    def request(self, position: float, tag: Tag) -> None:
        """Ask for the epoch of a stimulus at model-rate sample ``position`` (fractional), in
        stimulus order; ``tag`` comes back with the epoch."""
        if len(self._pending) >= MAX_PENDING:
            raise PendingEpochsFull(
                f"{MAX_PENDING} epochs are waiting for samples that do not arrive; the EEG "
                "stream stopped while stimuli went on"
            )
        start = int(np.floor(position + self.start_s * self.rate_hz + 0.5))
        self._pending.append(_Pending(start, tag))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def cut(self, now: float) -> list[tuple[Tag, Window]]:
        """Every asked-for epoch whose last sample is in the ring, with its tag, in order."""
        epochs: list[tuple[Tag, Window]] = []
        written = self.ring.written
        while self._pending and self._pending[0].start + self.length <= written:
            item = self._pending.popleft()
            try:
                epochs.append((item.tag, self._reader.read(item.start, self.next_seq, now)))
            except RingOverrun:
                self.missed += 1
                continue
            self.next_seq += 1
        return epochs
