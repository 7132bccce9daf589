"""Sliding windows cut from the filtered model-rate signal, aligned by absolute sample index.

Window ``k`` covers model-rate samples ``[k * hop, k * hop + length)``, counted from the first
filtered sample, so its position never depends on how the data arrived in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer, RingOverrun


@dataclass(frozen=True)
class Window:
    """One window of filtered EEG at the model rate."""

    seq: int  # window number k; the window starts at model-rate sample k * hop
    start_index: int  # absolute model-rate index of the first sample
    data: np.ndarray  # (n_samples, n_channels) float32 microvolts, filtered
    first_timestamp: float  # LSL time (s) of the stream sample behind the first sample
    last_timestamp: float  # LSL time (s) of the newest stream sample in the window
    arrival_time: float  # local_clock (s) when that newest sample reached the ring
    cut_time: float  # local_clock (s) when the window was cut
    flags: int  # FLAG_GAP | FLAG_NONFINITE bits of any sample after the first

    @property
    def has_gap(self) -> bool:
        """A discontinuity lies inside: the window must not be classified."""
        return bool(self.flags & FLAG_GAP)

    @property
    def has_nonfinite(self) -> bool:
        """NaN/Inf samples (held at the last finite value before filtering) lie inside."""
        return bool(self.flags & FLAG_NONFINITE)

    @property
    def usable(self) -> bool:
        return self.flags == 0


def seconds_to_samples(seconds: float, rate_hz: float, what: str) -> int:
    """Round a duration to whole samples; refuses durations shorter than one sample."""
    samples = round(seconds * rate_hz)
    if samples < 1:
        raise ValueError(
            f"{what} {seconds:g} s is shorter than one sample at {rate_hz:g} Hz; make it longer"
        )
    return samples


class WindowReader:
    """Reads ``length`` samples of a model-rate ring into a new :class:`Window` (one set of
    scratch buffers for the timestamps, flags and arrival times, reused)."""

    def __init__(self, ring: RingBuffer, length: int) -> None:
        self.ring = ring
        self.length = length
        self._flags = np.zeros(length, dtype=np.uint8)
        self._timestamps = np.zeros(length, dtype=np.float64)
        self._arrival = np.zeros(length, dtype=np.float64)

    def read(self, start: int, seq: int, now: float) -> Window:
        """Window ``seq`` of samples ``[start, start + length)``, cut at ``now``; raises
        :class:`RingOverrun` when they are no longer (or, for ``start < 0``, never were) held."""
        if start < 0:
            raise RingOverrun(start, self.ring.oldest)
        data = np.empty((self.length, self.ring.n_channels), dtype=np.float32)
        self.ring.read_into(
            start, start + self.length, data, self._timestamps, self._flags, self._arrival
        )
        return Window(
            seq=seq,
            start_index=start,
            data=data,
            first_timestamp=float(self._timestamps[0]),
            last_timestamp=float(self._timestamps[-1]),
            arrival_time=float(self._arrival[-1]),
            cut_time=now,
            # A gap mark on the first sample only says what came before the window.
            flags=int(np.bitwise_or.reduce(self._flags[1:])) | int(self._flags[0] & FLAG_NONFINITE),
        )


class WindowCutter:
    """Cuts windows from a model-rate :class:`RingBuffer` as soon as their last sample is there."""

    def __init__(self, ring: RingBuffer, rate_hz: float, length_s: float, hop_s: float) -> None:
        self.ring = ring
        self.rate_hz = rate_hz
        self.length = seconds_to_samples(length_s, rate_hz, "window length")
        self.hop = seconds_to_samples(hop_s, rate_hz, "window hop")
        if self.length > ring.capacity:
            raise ValueError(
                f"window of {self.length} samples does not fit a ring of {ring.capacity}; "
                "raise ring.capacity"
            )
        self.next_seq = 0
        self.overruns = 0
        self._reader = WindowReader(ring, self.length)

    def cut(self, now: float) -> list[Window]:
        """Every window whose last sample has been written since the previous call."""
        windows = []
        written = self.ring.written
        while self.next_seq * self.hop + self.length <= written:
            start = self.next_seq * self.hop
            if start < self.ring.oldest:
                # Fell behind by more than the ring: skip to the oldest window still held.
                self.overruns += 1
                self.next_seq = -(-self.ring.oldest // self.hop)
                continue
            try:
                windows.append(self._reader.read(start, self.next_seq, now))
            except RingOverrun:
                self.overruns += 1
                continue
            self.next_seq += 1
        return windows
