"""The processing stage: raw stream ring -> causal preprocessing -> model-rate ring -> windows.

Reads new raw samples by absolute index, holds NaN/Inf samples at the last finite value so they
cannot poison the filter state (the samples stay flagged), reseeds the filters after every gap,
maps each output sample's timestamp, arrival time and flags from the newest stream sample it
depends on, and cuts windows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bci_app.config import AppConfig
from bci_app.dsp.epochs import EpochCutter
from bci_app.dsp.filters import ChainDelays, Preprocessor
from bci_app.dsp.windows import Window, WindowCutter
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer, RingOverrun


def build_preprocessor(config: AppConfig, stream_rate_hz: float, n_channels: int) -> Preprocessor:
    """The configured causal chain for a stream of ``stream_rate_hz`` and ``n_channels``."""
    filters = config.filters
    return Preprocessor(
        stream_rate_hz=stream_rate_hz,
        model_rate_hz=model_rate(config, stream_rate_hz),
        n_channels=n_channels,
        bandpass_hz=None if filters.bandpass is None else tuple(filters.bandpass),
        order=filters.order,
        notch_hz=None if filters.notch is None else float(filters.notch),
        notch_quality=filters.notch_quality,
        reference=config.channels.reference,
        resampler_phase=filters.resampler_phase,
    )


def model_rate(config: AppConfig, stream_rate_hz: float) -> float:
    """The rate windows are cut at: ``config.model_rate``, or the stream's when unset."""
    return stream_rate_hz if config.model_rate is None else config.model_rate


class DspStage:
    """Turns raw samples of ``raw_ring`` into windows; call :meth:`process` from one thread.

    ``read_seconds`` is the most raw signal filtered per step (s): live 0.5 s, so one call after
    a stall never holds the thread long; offline feeding reads more per step (fewer calls).
    """

    def __init__(
        self,
        raw_ring: RingBuffer,
        stream_rate_hz: float,
        config: AppConfig,
        read_seconds: float = 0.5,
    ) -> None:
        if not read_seconds > 0:
            raise ValueError(f"read_seconds must be > 0, got {read_seconds!r}")
        self.raw_ring = raw_ring
        self.stream_rate_hz = stream_rate_hz
        self.rate_hz = model_rate(config, stream_rate_hz)
        self.preprocessor = build_preprocessor(config, stream_rate_hz, raw_ring.n_channels)
        self._delay_seconds = self.preprocessor.delay_seconds  # scipy computations: once
        self.delays: ChainDelays = self.preprocessor.delays()
        capacity = max(1, round(config.ring.capacity * self.rate_hz))
        self.ring = RingBuffer(capacity, raw_ring.n_channels)
        self.cutter = WindowCutter(
            self.ring, self.rate_hz, config.windows.length, config.windows.hop
        )
        # ERP paradigms: epochs after stimuli, asked for with request_epoch, cut as they complete
        self.epochs: EpochCutter | None = None
        self._epochs_cut: list = []
        if config.paradigm.erp:
            self.epochs = EpochCutter(self.ring, self.rate_hz, *config.paradigm.epoch)
        self.cursor = raw_ring.written  # next raw sample to process
        self._origin = self.cursor  # the preprocessor's input index 0
        self.overruns = 0
        self._fed = 0  # samples given to the preprocessor so far (its input index origin)
        self._started = False
        self._gap_next = False  # an overrun skipped samples: the next one starts after a gap
        self._last_finite = np.zeros(raw_ring.n_channels, dtype=np.float32)
        self._pending_flags = 0  # flags of raw samples not yet behind any output sample
        max_read = max(1, round(read_seconds * stream_rate_hz))
        self._max_read = max_read
        self._data = np.zeros((max_read, raw_ring.n_channels), dtype=np.float32)
        self._timestamps = np.zeros(max_read, dtype=np.float64)
        self._arrival = np.zeros(max_read, dtype=np.float64)
        self._flags = np.zeros(max_read, dtype=np.uint8)

    @property
    def delay_seconds(self) -> float:
        """Group delay of the causal chain (resampler + band-pass), not processing latency."""
        return self._delay_seconds

    def process(self, clock: Callable[[], float]) -> list[Window]:
        """Process every raw sample written since the last call; returns the windows completed.
        ``clock()`` stamps each window's (and epoch's) cut time once its samples are filtered
        (``pylsl.local_clock`` live; a constant offline)."""
        windows: list[Window] = []
        while self.cursor < self.raw_ring.written:
            stop = min(self.raw_ring.written, self.cursor + self._max_read)
            n = stop - self.cursor
            try:
                self.raw_ring.read_into(
                    self.cursor, stop, self._data, self._timestamps, self._flags, self._arrival
                )
            except RingOverrun as exc:
                # Fell behind the raw ring: continue from the oldest sample, marked as a gap.
                self.overruns += 1
                # the preprocessor never sees the skipped samples: raw index -> its input index
                # moves by as many (epochs asked for later land on their own samples)
                self._origin += exc.oldest + 1 - self.cursor
                self.cursor = exc.oldest + 1
                self._gap_next = True
                continue
            self._feed(n)
            self.cursor = stop
            windows.extend(self.cutter.cut(clock()))
            if self.epochs is not None:
                self._epochs_cut.extend(self.epochs.cut(clock()))
        if self.epochs is not None and self.epochs.pending:
            # epochs asked for after their samples came (late markers) are cut even when no
            # sample follows them (the EEG stopped)
            self._epochs_cut.extend(self.epochs.cut(clock()))
        return windows

    def request_epoch(self, raw_index: float, tag: object) -> None:
        """ERP: ask for the epoch of a stimulus at ``raw_index`` (absolute index in the raw
        ring, fractional allowed); it comes out of :meth:`take_epochs` with ``tag`` once its
        last sample is filtered."""
        if self.epochs is None:
            raise ValueError("epochs are cut only for an ERP paradigm (paradigm.kind: p300)")
        resampler = self.preprocessor.resampler
        self.epochs.request((raw_index - self._origin) * resampler.up / resampler.down, tag)

    def take_epochs(self) -> list[tuple[object, Window]]:
        """The ``(tag, epoch)`` pairs cut since the last call, in stimulus order."""
        epochs, self._epochs_cut = self._epochs_cut, []
        return epochs

    def _feed(self, n: int) -> None:
        data, flags = self._data[:n], self._flags[:n]
        if self._gap_next:
            flags[0] |= FLAG_GAP
            self._gap_next = False
        if flags.any():
            self._hold_nonfinite(data, flags)
        self._last_finite[:] = data[-1]
        breaks = np.flatnonzero(flags & FLAG_GAP)
        bounds = [0, *[int(b) for b in breaks if b > 0], n]
        for first, stop in zip(bounds[:-1], bounds[1:], strict=True):
            if flags[first] & FLAG_GAP and self._started:
                self.preprocessor.reset()
            self._started = True
            filtered, source = self.preprocessor.process(data[first:stop])
            self._emit(filtered, source - self._fed, first, stop)
            self._fed += stop - first

    def _emit(self, filtered: np.ndarray, source: np.ndarray, first: int, stop: int) -> None:
        """Write outputs; ``source`` are input indices relative to raw sample ``first``."""
        flags = self._flags[first:stop]
        if filtered.shape[0] == 0:
            self._pending_flags |= int(np.bitwise_or.reduce(flags)) if flags.size else 0
            return
        # The flags of raw samples (previous output's source, this output's source] go to it.
        out_flags = np.zeros(filtered.shape[0], dtype=np.uint8)
        if flags.any():
            for bit in (FLAG_GAP, FLAG_NONFINITE):
                hits = np.cumsum((flags & bit) != 0)
                counts = hits[source] - np.concatenate(([0], hits[source[:-1]]))
                out_flags[counts > 0] |= bit
        out_flags[0] |= self._pending_flags
        tail = flags[source[-1] + 1 :]
        self._pending_flags = int(np.bitwise_or.reduce(tail)) if tail.size else 0
        raw = first + source
        self.ring.write(
            filtered.astype(np.float32, copy=False),
            self._timestamps[raw],
            out_flags,
            self._arrival[raw],
        )

    def _hold_nonfinite(self, data: np.ndarray, flags: np.ndarray) -> None:
        """Replace NaN/Inf values by the channel's previous finite value, in order (rare path)."""
        for row in np.flatnonzero(flags & FLAG_NONFINITE):
            previous = data[row - 1] if row > 0 else self._last_finite
            bad = ~np.isfinite(data[row])
            data[row, bad] = previous[bad]
