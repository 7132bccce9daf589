"""A marker stream read beside the EEG: string samples with their LSL times, in order.

The ERP paradigms need every stimulus marker (a flash is an epoch), so the thread keeps them in
a bounded queue for the pipeline to take; it binds to one source_id and, like the EEG inlet,
re-resolves that source_id when the outlet goes away and comes back.
"""

from __future__ import annotations

import collections
import logging
import threading

import pylsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LslTimeoutError

from bci_app.config import StreamConfig
from bci_app.lifecycle import Background
from bci_app.stream.resolve import StreamError, resolve_stream

__all__ = ["MAX_MARKERS", "MarkerInlet"]

log = logging.getLogger(__name__)

#: Markers held for the pipeline at most (a speller sends ~20 a second); older ones are dropped
#: and counted when the pipeline stops taking them.
MAX_MARKERS = 4096
PULL_TIMEOUT_S = 0.05  # bounds the stop latency
RECONNECT_PERIOD_S = 0.5


class MarkerInlet(Background):
    """Reads the string marker stream of ``source_id`` (LSL time, clock-corrected).

    ``start()`` resolves it within ``resolve_timeout`` s and raises :class:`StreamError` when
    it is not there; :meth:`take` returns the ``(timestamp, label)`` pairs received since the
    last call. ``dropped`` counts markers lost to a full queue."""

    name = "bci-markers"

    def __init__(self, source_id: str, resolve_timeout: float = 5.0) -> None:
        super().__init__()
        self.source_id = source_id
        self._config = StreamConfig(source_id=source_id, resolve_timeout=resolve_timeout)
        self._queue: collections.deque[tuple[float, str]] = collections.deque()
        self._lock = threading.Lock()
        self._inlet: pylsl.StreamInlet | None = None
        self.received = 0
        self.dropped = 0
        self.reconnects = 0

    def _open(self, timeout: float) -> pylsl.StreamInlet:
        info = resolve_stream(self._config, timeout)
        if info.channel_format() != pylsl.cf_string:
            raise StreamError(
                f"stream {info.name()!r} ({self.source_id}) is not a string marker stream; "
                "point stream.markers at the stimulus markers' source_id"
            )
        inlet = pylsl.StreamInlet(
            info, max_buflen=60, recover=False, processing_flags=pylsl.proc_clocksync
        )
        inlet.open_stream(timeout=timeout)
        return inlet

    def _setup(self) -> None:
        self._inlet = self._open(self._config.resolve_timeout)
        self._spawn(self._run, self.name)

    def _teardown(self) -> None:
        self._inlet = None

    def take(self) -> list[tuple[float, str]]:
        """The markers received since the last call, in time order."""
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    def _run(self) -> None:
        while not self.stopping:
            inlet = self._inlet
            if inlet is None:
                if self._wait_stop(RECONNECT_PERIOD_S):
                    return
                try:
                    self._inlet = self._open(RECONNECT_PERIOD_S)
                    self.reconnects += 1
                    log.info("marker stream %s is back", self.source_id)
                except (StreamError, LostError, LslTimeoutError):  # liblsl's, not the builtin
                    continue
                continue
            try:
                samples, stamps = inlet.pull_chunk(timeout=PULL_TIMEOUT_S)
            except LostError:
                log.warning("marker stream %s went away; waiting for it", self.source_id)
                self._inlet = None
                continue
            if not samples:
                continue
            with self._lock:
                for sample, stamp in zip(samples, stamps, strict=True):
                    if len(self._queue) >= MAX_MARKERS:
                        self._queue.popleft()
                        self.dropped += 1
                    self._queue.append((float(stamp), str(sample[0])))
                self.received += len(samples)
