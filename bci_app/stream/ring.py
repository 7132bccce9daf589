"""Preallocated ring buffer of samples addressed by absolute sample index.

One thread writes; any number of readers copy out ranges ``[start, stop)`` of absolute sample
indices (counted from the first sample ever written). Nothing is consumed by reading, so readers
never disturb each other. A reader asking for samples that were already overwritten gets
:class:`RingOverrun` instead of silently wrong data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

#: Per-sample flag bits stored beside the data.
FLAG_GAP = np.uint8(1)  # a discontinuity (gap, reconnect, clock jump) lies just before this sample
FLAG_NONFINITE = np.uint8(2)  # this sample contained NaN or Inf in at least one channel


class RingOverrun(RuntimeError):
    """The requested samples were overwritten before the reader copied them."""

    def __init__(self, start: int, oldest: int) -> None:
        super().__init__(
            f"ring overrun: sample {start} was requested but the oldest sample still held is "
            f"{oldest}; the reader fell more than the ring capacity behind (raise ring.capacity "
            "or read more often)"
        )
        self.start = start
        self.oldest = oldest


@dataclass(frozen=True)
class RingSlice:
    """A copy of samples ``[start, start + n)`` out of a ring."""

    start: int
    data: np.ndarray  # (n, n_channels) float32
    timestamps: np.ndarray  # (n,) LSL seconds
    flags: np.ndarray  # (n,) uint8 FLAG_* bits
    arrival: np.ndarray  # (n,) local_clock seconds when written


class RingBuffer:
    """Samples ``(capacity, n_channels)`` float32 plus, per sample, the LSL timestamp, the local
    arrival time (``pylsl.local_clock()`` seconds when it was written) and uint8 flags.

    ``written`` is the absolute index one past the newest sample; samples
    ``[max(0, written - capacity), written)`` are readable.
    """

    def __init__(self, capacity: int, n_channels: int) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1 sample, got {capacity}")
        if n_channels < 1:
            raise ValueError(f"ring needs at least 1 channel, got {n_channels}")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        # np.empty + fill touches every page now: np.zeros would leave the pages to be faulted
        # in (and zeroed) by the writer on the hot path, which showed up as ms-long writes.
        self._data = np.empty((self.capacity, self.n_channels), dtype=np.float32)
        self._timestamps = np.empty(self.capacity, dtype=np.float64)
        self._arrival = np.empty(self.capacity, dtype=np.float64)
        self._flags = np.empty(self.capacity, dtype=np.uint8)
        for array in (self._data, self._timestamps, self._arrival, self._flags):
            array.fill(0)
        self._written = 0
        # Index up to which the writer may be overwriting right now; readers validate against it.
        self._claimed = 0
        # First sample of the current timeline: after a backward clock step, the samples before
        # it carry times of the old clock (see restart_timeline)
        self._timeline_start = 0
        self._new_data = threading.Condition(threading.Lock())

    @property
    def written(self) -> int:
        """Absolute index one past the newest sample."""
        return self._written

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._written - self.capacity)

    def newest_timestamp(self) -> float | None:
        """LSL timestamp of the newest sample (seconds), or None before the first write."""
        written = self._written
        if written == 0:
            return None
        return float(self._timestamps[(written - 1) % self.capacity])

    def restart_timeline(self, index: int) -> None:
        """The source's clock stepped back at absolute sample ``index``: the samples before it
        carry times of the old clock, which :meth:`position_of` no longer searches."""
        self._timeline_start = max(self._timeline_start, int(index))

    def position_of(self, timestamp: float) -> float | None:
        """Fractional absolute sample index at LSL time ``timestamp`` (s), interpolated between
        the held samples around it (of the current timeline, :meth:`restart_timeline`); None
        when it is later than the newest sample (not there yet); raises :class:`RingOverrun`
        when it is older than every sample held."""
        written = self._written
        if written == 0 or timestamp > self._timestamps[(written - 1) % self.capacity]:
            return None
        low = max(0, written - self.capacity, min(self._timeline_start, written - 1))
        if timestamp < self._timestamps[low % self.capacity]:
            raise RingOverrun(-1, low)
        high = written - 1  # timestamps[low] <= timestamp <= timestamps[high]
        while high - low > 1:
            middle = (low + high) // 2
            if self._timestamps[middle % self.capacity] <= timestamp:
                low = middle
            else:
                high = middle
        before = self._timestamps[low % self.capacity]
        after = self._timestamps[high % self.capacity]
        if after <= before:
            return float(low)
        return low + min(1.0, (timestamp - before) / (after - before))

    def write(
        self,
        data: np.ndarray,
        timestamps: np.ndarray,
        flags: np.ndarray | None = None,
        arrival: float | np.ndarray = 0.0,
    ) -> int:
        """Append ``data (n, n_channels)`` with ``timestamps (n,)``; returns the new ``written``.

        ``arrival`` is one time for the whole chunk or one per sample; ``flags`` default to 0.

        Copies into the preallocated arrays (two slices at the wrap point); allocates nothing.
        Chunks longer than the capacity keep only their newest ``capacity`` samples.
        """
        n = data.shape[0]
        if data.ndim != 2 or data.shape[1] != self.n_channels:
            raise ValueError(
                f"ring expects chunks of shape (n_samples, {self.n_channels}), got {data.shape}"
            )
        if timestamps.shape[0] != n:
            raise ValueError(f"{n} samples but {timestamps.shape[0]} timestamps")
        if n == 0:
            return self._written
        skip = max(0, n - self.capacity)
        start = self._written + skip
        stop = self._written + n
        self._claimed = stop
        first = start % self.capacity
        count = n - skip
        head = min(count, self.capacity - first)
        self._data[first : first + head] = data[skip : skip + head]
        self._timestamps[first : first + head] = timestamps[skip : skip + head]
        if head < count:
            tail = count - head
            self._data[:tail] = data[skip + head :]
            self._timestamps[:tail] = timestamps[skip + head :]
        self._put(self._flags, first, head, count, 0 if flags is None else flags[skip:])
        self._put(
            self._arrival, first, head, count, arrival if np.isscalar(arrival) else arrival[skip:]
        )
        with self._new_data:
            self._written = stop
            self._new_data.notify_all()
        return stop

    @staticmethod
    def _put(target: np.ndarray, first: int, head: int, count: int, values) -> None:
        """Write ``count`` values (or one scalar) at ring position ``first``, wrapping once."""
        if np.isscalar(values):
            target[first : first + head] = values
            target[: count - head] = values
        else:
            target[first : first + head] = values[:head]
            target[: count - head] = values[head:count]

    def wait_for(self, index: int, timeout: float) -> bool:
        """Block until ``written > index`` or ``timeout`` seconds pass; True if data is there."""
        if self._written > index:
            return True
        with self._new_data:
            return self._new_data.wait_for(lambda: self._written > index, timeout)

    def wake_readers(self) -> None:
        """Wake every waiting reader, e.g. so it can notice a stop request."""
        with self._new_data:
            self._new_data.notify_all()

    def read_into(
        self,
        start: int,
        stop: int,
        data_out: np.ndarray,
        timestamps_out: np.ndarray | None = None,
        flags_out: np.ndarray | None = None,
        arrival_out: np.ndarray | None = None,
    ) -> None:
        """Copy samples ``[start, stop)`` into the first ``stop - start`` rows of the outputs.

        Raises :class:`RingOverrun` if any of them was overwritten before or during the copy,
        and ``IndexError`` if ``stop`` is beyond the newest sample.
        """
        if start > stop:
            raise ValueError(f"start {start} is after stop {stop}")
        if stop > self._written:
            raise IndexError(
                f"sample {stop - 1} has not been written yet (written: {self._written})"
            )
        n = stop - start
        self._check_held(start)
        first = start % self.capacity
        head = min(n, self.capacity - first)
        data_out[:head] = self._data[first : first + head]
        data_out[head:n] = self._data[: n - head]
        if timestamps_out is not None:
            timestamps_out[:head] = self._timestamps[first : first + head]
            timestamps_out[head:n] = self._timestamps[: n - head]
        if flags_out is not None:
            flags_out[:head] = self._flags[first : first + head]
            flags_out[head:n] = self._flags[: n - head]
        if arrival_out is not None:
            arrival_out[:head] = self._arrival[first : first + head]
            arrival_out[head:n] = self._arrival[: n - head]
        # The writer may have started overwriting these slots while we copied.
        self._check_held(start)

    def read(self, start: int, stop: int) -> RingSlice:
        """Allocating convenience form of :meth:`read_into`."""
        n = max(stop - start, 0)
        out = RingSlice(
            start=start,
            data=np.empty((n, self.n_channels), dtype=np.float32),
            timestamps=np.empty(n, dtype=np.float64),
            flags=np.empty(n, dtype=np.uint8),
            arrival=np.empty(n, dtype=np.float64),
        )
        self.read_into(start, stop, out.data, out.timestamps, out.flags, out.arrival)
        return out

    def _check_held(self, start: int) -> None:
        oldest_safe = max(0, self._claimed - self.capacity)
        if start < oldest_safe:
            raise RingOverrun(start, oldest_safe)
