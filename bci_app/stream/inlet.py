"""LSL inlet thread: resolve the configured stream, pull chunks into the ring, track health.

The thread blocks inside liblsl until data arrives (``pull_chunk(min_samples=1)``), so a sample is
in the ring as soon as it reaches the inlet; the bounded wait only lets the thread update the
stream state and notice a stop request. With ``realtime_priority`` set, this thread and the
receiver thread liblsl starts for the inlet run at that SCHED_FIFO priority
(:mod:`bci_app.scheduling`), so neither waits for a core when data arrives.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from bci_app.config import HealthConfig, StreamConfig
from bci_app.lifecycle import Background
from bci_app.scheduling import check_priority, realtime_for_new_threads, set_realtime_priority
from bci_app.stream.resolve import (
    StreamDescription,
    StreamError,
    describe_stream,
    read_channels,
    resolve_stream,
    sample_dtype,
    stream_selector,
)
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer

log = logging.getLogger(__name__)

PULL_TIMEOUT_S = 0.05  # longest blocking wait; bounds state-update and stop latency
#: While a stream is away, how often the background resolver's list is looked at (s).
RECOVERY_POLL_S = 0.1
#: Longest wait to open a stream that came back, and again for its full description (s): a
#: stream seen a moment ago may be gone again, and stop() must still join within 2 s.
RECOVERY_OPEN_S = 0.5


class StreamState(enum.Enum):
    CONNECTING = "connecting"  # resolving and opening, no sample yet
    LIVE = "live"  # newest sample younger than health.stale_after
    STALE = "stale"  # no sample for stale_after; the inlet is kept
    RECOVERING = "recovering"  # no sample for recover_after or the outlet vanished: re-resolving
    LOST = "lost"  # not back after lost_after; still retrying
    FAILED = "failed"  # came back incompatible (channels, rate): needs the user; thread ends


@dataclass(frozen=True)
class StreamHealth:
    """Snapshot of the inlet's state and counters; cheap to take from any thread."""

    state: StreamState
    samples: int
    gaps: int
    missing_samples: int  # estimated from timestamp jumps
    nonfinite_samples: int
    backward_timestamps: int
    reconnects: int
    overruns: int
    effective_rate_hz: float | None
    newest_sample_age_s: float | None  # local_clock() - newest LSL timestamp
    error: str | None
    realtime_priority: int | None = None  # SCHED_FIFO priority of the inlet thread, if raised
    # A stream matching the selector but from another source, seen while the bound one is away
    foreign_source: str | None = None
    foreign_refusals: int = 0  # reconnect attempts that found only another source


class TimestampDejitter:
    """Smooths LSL timestamps of a regular-rate stream by a forgetting linear fit t = a + b * n.

    liblsl's own dejitter is not used because it smears a timestamp jump over many seconds,
    which hides gaps; this one is reset at every detected gap. Cost is O(1) per chunk. The
    slope is the nominal period until the fit spans :data:`FIT_SPREAD_S` of samples, then the
    fitted one: a device whose clock runs off its nominal rate, or a replay played faster,
    keeps timestamps on its own clock (a slope pinned to nominal drifted by the rate error
    times the fit's memory: 0.4 s for a device 1 % off).
    """

    #: Spread (standard deviation, seconds of samples at the nominal rate) the fit needs
    #: before its slope is used: about 2 s of samples.
    FIT_SPREAD_S = 0.6
    #: Fitted rates outside this factor of nominal are not a clock error: the fit is ignored.
    SANE_RATE_FACTOR = 100.0

    def __init__(self, rate_hz: float, halflife_s: float = 30.0) -> None:
        self.rate_hz = rate_hz
        self.halflife_samples = halflife_s * rate_hz
        self.reset()

    def reset(self) -> None:
        self._count = 0  # samples since the reset
        self._sw = self._sx = self._sy = self._sxx = self._sxy = 0.0

    def apply(self, timestamps: np.ndarray) -> None:
        """Replace ``timestamps (n,)`` in place by their smoothed values."""
        n = timestamps.shape[0]
        if n == 0:
            return
        x_mean = self._count + (n - 1) / 2
        y_mean = float(timestamps.mean())
        decay = 0.5 ** (n / self.halflife_samples)
        weight = float(n)
        self._sw = self._sw * decay + weight
        self._sx = self._sx * decay + weight * x_mean
        self._sy = self._sy * decay + weight * y_mean
        self._sxx = self._sxx * decay + weight * x_mean * x_mean
        self._sxy = self._sxy * decay + weight * x_mean * y_mean
        slope = 1.0 / self.rate_hz
        variance = self._sxx / self._sw - (self._sx / self._sw) ** 2
        if variance > (self.FIT_SPREAD_S * self.rate_hz) ** 2:
            fitted = (self._sxy / self._sw - self._sx * self._sy / self._sw**2) / variance
            factor = fitted * self.rate_hz
            if 1.0 / self.SANE_RATE_FACTOR < factor < self.SANE_RATE_FACTOR:
                slope = fitted
        intercept = self._sy / self._sw - slope * self._sx / self._sw
        np.multiply(np.arange(self._count, self._count + n, dtype=np.float64), slope, timestamps)
        timestamps += intercept
        self._count += n


class InletThread(Background):
    """Reads one LSL stream into a :class:`RingBuffer` from a background thread.

    ``connect()`` resolves and checks the stream in the caller's thread, so configuration
    problems surface as :class:`StreamError` right away; ``start()`` begins acquisition.
    """

    name = "bci-inlet"

    def __init__(
        self,
        stream: StreamConfig,
        health: HealthConfig,
        ring_seconds: float,
        pick: list[str] | None = None,
        dejitter: bool = True,
        realtime_priority: int | None = None,
    ) -> None:
        if realtime_priority is not None:
            check_priority(realtime_priority)
        super().__init__()
        self._stream_config = stream
        self._realtime_priority = realtime_priority
        self._granted_priority: int | None = None
        self._health_config = health
        self._ring_seconds = ring_seconds
        self._pick = pick
        self._use_dejitter = dejitter
        self._inlet: pylsl.StreamInlet | None = None
        self.description: StreamDescription | None = None
        self.ring: RingBuffer | None = None
        self._pick_index: np.ndarray | None = None
        self._to_microvolts: np.ndarray | None = None  # (n_channels,) float32; None: all 1
        self._state = StreamState.CONNECTING
        self._error: str | None = None
        self._samples = 0
        self._gaps = 0
        self._missing = 0
        self._nonfinite = 0
        self._backward = 0
        self._reconnects = 0
        self._overruns = 0
        self._last_arrival: float | None = None
        self._started_at = 0.0
        self._reconnected_at = 0.0
        self._stream_labels: tuple[str, ...] = ()
        self._last_raw_timestamp: float | None = None
        self._gap_pending = False
        self._rate_marks: deque[tuple[float, int]] = deque(maxlen=8)
        self._foreign: str | None = None
        self._foreign_refusals = 0
        # Watches for the stream while it is away. liblsl's one-shot resolve_bypred blocked
        # 5.5 s instead of 0.5 s right after an outlet of the same name had gone (kill and
        # restart recovered in 3-5 s); a ContinuousResolver's list is read without blocking.
        self._resolver: pylsl.ContinuousResolver | None = None
        #: local_clock when the first pull after start() reached the ring: everything it
        #: brought liblsl had buffered since connect() (the connection backlog)
        self.first_arrival: float | None = None

    # -- set-up -------------------------------------------------------------------------------
    def connect(self) -> StreamDescription:
        info = resolve_stream(self._stream_config)
        # The receiver thread liblsl starts when the stream opens inherits this thread's priority.
        with realtime_for_new_threads(self._realtime_priority):
            inlet = self._open(info)
        full = inlet.info(timeout=self._stream_config.resolve_timeout)
        description, pick_index = describe_stream(full, self._stream_config, self._pick)
        self._stream_labels = tuple(c.label for c in read_channels(full))
        n_channels = len(description.channels)
        capacity = max(1, math.ceil(self._ring_seconds * description.rate_hz))
        self.ring = RingBuffer(capacity, n_channels)
        self.description = description
        self._pick_index = pick_index
        # Preallocated staging for liblsl to write into; ~100 ms or 1024 samples per pull.
        self._max_chunk = max(1024, math.ceil(0.1 * description.rate_hz))
        self._staging = np.zeros(
            (self._max_chunk, description.stream_channel_count), dtype=sample_dtype(full)
        )
        self._picked = np.zeros((self._max_chunk, n_channels), dtype=np.float32)
        # the picked channels, in the stream's own type (np.take does not cast integers)
        self._taken = (
            None
            if pick_index is None
            else np.zeros((self._max_chunk, n_channels), dtype=self._staging.dtype)
        )
        self._flags = np.zeros(self._max_chunk, dtype=np.uint8)
        self._dejitter = TimestampDejitter(description.rate_hz) if self._use_dejitter else None
        scale = np.asarray(description.to_microvolts, dtype=np.float32)
        self._to_microvolts = None if np.all(scale == 1.0) else scale
        self._inlet = inlet
        return description

    def _open(self, info: pylsl.StreamInfo, timeout: float | None = None) -> pylsl.StreamInlet:
        # Clock sync only: our own dejitter (above) is gap-aware. recover=False so that a vanished
        # outlet raises LostError and we can check the stream that comes back before using it.
        inlet = pylsl.StreamInlet(
            info,
            max_buflen=max(2, math.ceil(self._ring_seconds)),
            recover=False,
            processing_flags=pylsl.proc_clocksync,
        )
        inlet.open_stream(timeout=timeout or self._stream_config.resolve_timeout)
        return inlet

    def _setup(self) -> None:
        if self.ring is None:
            self.connect()
        self._started_at = pylsl.local_clock()
        self._spawn(self._run, self.name)

    def _teardown(self) -> None:
        if self.ring is not None:
            self.ring.wake_readers()
        self._close_inlet()
        self._resolver = None

    def report_overrun(self) -> None:
        """Called by a reader that fell behind the ring capacity."""
        self._overruns += 1

    def health(self) -> StreamHealth:
        ring = self.ring
        newest = ring.newest_timestamp() if ring is not None else None
        return StreamHealth(
            state=self._state,
            samples=self._samples,
            gaps=self._gaps,
            missing_samples=self._missing,
            nonfinite_samples=self._nonfinite,
            backward_timestamps=self._backward,
            reconnects=self._reconnects,
            overruns=self._overruns,
            effective_rate_hz=self._effective_rate(),
            newest_sample_age_s=None if newest is None else pylsl.local_clock() - newest,
            error=self._error,
            realtime_priority=self._granted_priority,
            foreign_source=self._foreign,
            foreign_refusals=self._foreign_refusals,
        )

    # -- acquisition loop ---------------------------------------------------------------------
    def _run(self) -> None:
        priority = self._realtime_priority
        if priority is not None and set_realtime_priority(priority) is None:
            self._granted_priority = priority
            log.info("inlet thread at real-time priority %d", priority)
        try:
            self._acquire()
        except Exception as exc:  # surface any crash as a visible state
            log.exception("inlet thread crashed")
            self._error = f"inlet thread crashed: {exc!r}"
            self._state = StreamState.FAILED
        finally:
            self._close_inlet()
            if self.ring is not None:
                self.ring.wake_readers()

    def _acquire(self) -> None:
        while not self.stopping:
            if self._inlet is None and not self._try_reconnect():
                self._update_state()
                continue
            try:
                _, timestamps = self._inlet.pull_chunk(
                    timeout=PULL_TIMEOUT_S,
                    max_samples=self._max_chunk,
                    dest_obj=self._staging,
                    min_samples=1,
                    as_numpy=True,
                )
            except LostError:
                log.warning("stream %r vanished; trying to recover", self.description.name)
                self._close_inlet()
                self._gap_pending = True
                self._update_state()
                continue
            except LslTimeoutError:
                # The clock offset could not be measured: the outlet is there but stalls (a
                # hung process, a congested link). Its samples, if any come, arrive later; no
                # sample meanwhile is a stall like any other (stale, then re-resolved).
                log.debug("stream %r: clock sync timed out", self.description.name)
                self._update_state()
                continue
            if len(timestamps):
                self._ingest(np.asarray(timestamps, dtype=np.float64))
            self._update_state()

    def _ingest(self, timestamps: np.ndarray) -> None:
        n = timestamps.shape[0]
        arrival = pylsl.local_clock()
        if self.first_arrival is None:
            self.first_arrival = arrival
        data = self._staging[:n]
        if self._taken is not None:
            np.take(data, self._pick_index, axis=1, out=self._taken[:n], mode="clip")
            data = self._taken[:n]
        if data.dtype != np.float32:  # double / integer streams: the ring holds float32
            self._picked[:n] = data
            data = self._picked[:n]
        if self._to_microvolts is not None:  # the ring holds µV whatever the stream's unit
            np.multiply(data, self._to_microvolts, out=data)  # float32 by now, rewritten per pull
        flags = self._flags[:n]
        flags[:] = 0
        breaks, stepped_back = self._mark_discontinuities(timestamps, flags)
        # A cheap finiteness test for the common case; the exact mask only when it fails.
        if not np.isfinite(np.add.reduce(data, axis=None, dtype=np.float64)):
            bad = ~np.isfinite(data).all(axis=1)
            flags[bad] |= FLAG_NONFINITE
            self._nonfinite += int(bad.sum())
        if self._dejitter is not None:
            # Smooth each continuous run on its own so a jump is never spread over good samples.
            bounds = [0, *breaks, n]
            for first, stop in zip(bounds[:-1], bounds[1:], strict=True):
                if first in breaks:
                    self._dejitter.reset()
                self._dejitter.apply(timestamps[first:stop])
        first = self.ring.written
        self.ring.write(data, timestamps, flags, arrival)
        if stepped_back is not None:  # markers are placed on the new clock's samples
            self.ring.restart_timeline(first + stepped_back)
        self._samples += n
        self._last_arrival = arrival
        if not self._rate_marks or arrival - self._rate_marks[-1][0] >= 0.25:
            self._rate_marks.append((arrival, self._samples))
        if self._state is not StreamState.LIVE:
            log.info("stream %r is live", self.description.name)
            self._state = StreamState.LIVE

    def _mark_discontinuities(
        self, raw: np.ndarray, flags: np.ndarray
    ) -> tuple[list[int], int | None]:
        """Flag samples after a reconnect or a jump of the timestamps; returns their indices,
        and that of the last sample after a step back of the clock (None without one).

        A forward jump beyond one period plus ``health.gap_tolerance`` is a gap (the samples it
        skipped are counted as missing); a step back by more than the tolerance is counted as a
        backward timestamp and also breaks continuity.
        """
        period = 1.0 / self.description.rate_hz
        tolerance = self._health_config.gap_tolerance
        previous = self._last_raw_timestamp
        self._last_raw_timestamp = float(raw[-1])
        steps = np.diff(raw, prepend=raw[0] if previous is None else previous)
        jumps = np.flatnonzero((steps > period + tolerance) | (steps < -tolerance))
        breaks = [int(j) for j in jumps]
        stepped_back = None
        for j in breaks:
            if steps[j] < 0:
                self._backward += 1
                stepped_back = j
            else:
                self._missing += max(0, round(float(steps[j]) / period) - 1)
        if self._gap_pending and 0 not in breaks:
            breaks.insert(0, 0)
        self._gap_pending = False
        self._gaps += len(breaks)
        flags[breaks] |= FLAG_GAP
        return breaks, stepped_back

    def _update_state(self) -> None:
        if self._state is StreamState.FAILED:
            return
        now = pylsl.local_clock()
        health = self._health_config
        seen_data = self._last_arrival is not None
        since_data = now - (self._last_arrival if seen_data else self._started_at)
        since_activity = now - max(self._last_arrival or self._started_at, self._reconnected_at)
        if self._inlet is not None and since_activity >= health.recover_after:
            log.warning("no sample for %.1f s; re-resolving the stream", since_data)
            self._close_inlet()
            self._gap_pending = True
        if since_data >= health.lost_after:
            if self._state is not StreamState.LOST:
                log.warning("stream lost: no sample for %.1f s; still retrying", since_data)
            self._state = StreamState.LOST
        elif not seen_data:
            self._state = StreamState.CONNECTING
        elif self._inlet is None or since_data >= health.recover_after:
            self._state = StreamState.RECOVERING
        elif since_data >= health.stale_after:
            self._state = StreamState.STALE

    def _fail(self, message: str) -> None:
        self._error = message
        log.error(message)
        self._state = StreamState.FAILED
        self._stop_event.set()  # the thread ends; the pipeline's stop() still joins it

    def _is_bound_source(self, info: pylsl.StreamInfo) -> bool:
        """Whether ``info`` is the stream first bound to: its source_id, or (an outlet without
        one) its host and name."""
        old = self.description
        if old.source_id:
            return info.source_id() == old.source_id
        return (info.hostname(), info.name()) == (old.hostname, old.name)

    def _find_bound_source(self) -> pylsl.StreamInfo | None:
        """The bound stream if it is back; notes another source that matches the selector."""
        if self._resolver is None:  # a fresh one: it has never heard from the lost outlet
            predicate = stream_selector(self._stream_config).predicate()
            self._resolver = pylsl.ContinuousResolver(pred=predicate)
        found = self._resolver.results()
        bound = [info for info in found if self._is_bound_source(info)]
        if bound:
            return bound[0]
        if found:
            self._refuse_foreign(found[0])
        self._wait_stop(RECOVERY_POLL_S)
        return None

    def _refuse_foreign(self, info: pylsl.StreamInfo) -> None:
        old = self.description
        note = (
            f"stream {info.name()!r} is back from source_id {info.source_id()!r} (host "
            f"{info.hostname()!r}), not from {old.source_id!r} (host {old.hostname!r}) it was "
            f"bound to: not adopted. Waiting for {old.source_id!r}; restart the acquisition to "
            "read the other source"
        )
        if note != self._foreign:
            log.warning("%s", note)
        self._foreign = note
        self._foreign_refusals += 1

    def _try_reconnect(self) -> bool:
        inlet = None
        try:
            info = self._find_bound_source()
            if info is None or self.stopping:
                return False
            inlet = self._open(info, RECOVERY_OPEN_S)
            full = inlet.info(timeout=RECOVERY_OPEN_S)
        except (StreamError, LostError, LslTimeoutError) as exc:
            # liblsl's TimeoutError (not the builtin): a source seen a moment ago that does not
            # answer (gone again, or stalled) is retried at the next poll
            log.debug("stream not back yet: %s", exc)
            if inlet is not None:
                self._close(inlet)
            return False
        self._foreign = None
        self._resolver = None
        old = self.description
        if full.channel_count() != old.stream_channel_count or not math.isclose(
            full.nominal_srate(), old.rate_hz
        ):
            self._fail(
                f"stream {old.name!r} came back with {full.channel_count()} channels at "
                f"{full.nominal_srate():g} Hz, but it had {old.stream_channel_count} channels at "
                f"{old.rate_hz:g} Hz; the app will not mix them. Restart the acquisition with "
                "the original montage, or restart the app to use the new one."
            )
            return False
        if sample_dtype(full) != self._staging.dtype:
            self._fail(
                f"stream {old.name!r} came back with samples of another type "
                f"({sample_dtype(full)} instead of {self._staging.dtype}); restart the app"
            )
            return False
        labels = tuple(c.label for c in read_channels(full))
        if labels != self._stream_labels:
            self._fail(
                f"stream {old.name!r} came back with other channel labels ({', '.join(labels)}); "
                "restart the app to use the new montage"
            )
            return False
        self._inlet = inlet
        self._reconnects += 1
        self._reconnected_at = pylsl.local_clock()
        self._gap_pending = True
        log.info("stream %r is back (reconnect %d)", old.name, self._reconnects)
        return True

    def _close_inlet(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            self._close(inlet)

    @staticmethod
    def _close(inlet: pylsl.StreamInlet) -> None:
        try:
            inlet.close_stream()
        except Exception:  # closing a broken inlet must not kill the thread
            log.debug("closing inlet failed", exc_info=True)

    def _effective_rate(self) -> float | None:
        marks = list(self._rate_marks)
        if len(marks) < 2 or marks[-1][0] <= marks[0][0]:
            return None
        return (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0])
