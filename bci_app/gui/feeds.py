"""What the GUI reads from other threads, without ever touching a widget there.

* :class:`MarkerReader` reads a string marker stream (cue names) through a pylsl inlet on its
  own thread into a bounded deque of ``(lsl_time_s, text)``; :class:`ScheduleMarkers` gives the
  built-in simulator's cues straight from its schedule.
* :class:`PredictionFeed` keeps the last predictions: a sink on the worker thread appends to a
  bounded deque (O(1), never blocks); without a sink it polls the latest prediction.
"""

from __future__ import annotations

import logging
import math
from collections import deque

import pylsl

from bci_app.infer.worker import Prediction
from bci_app.lifecycle import Background
from bci_app.sources.simulator_stream import SimulatorClock
from bci_app.stream.selector import StreamSelector

log = logging.getLogger(__name__)

MARKER_RETRY_S = 5.0  # between attempts to find the marker stream
MARKER_PULL_S = 0.1  # longest blocking pull; bounds the stop latency


def copy_items(items: deque) -> list:
    """A list copy of a deque another thread appends to (retried if it changed meanwhile)."""
    while True:
        try:
            return list(items)
        except RuntimeError:  # "deque mutated during iteration"
            continue


class MarkerReader(Background):
    """Reads the marker stream with ``source_id`` into :attr:`markers` until :meth:`stop`.

    Marker times are LSL seconds (clock-synchronised), comparable with sample timestamps.
    """

    name = "bci-gui-markers"

    def __init__(self, source_id: str, maxlen: int = 256) -> None:
        super().__init__()
        self.source_id = source_id
        self.markers: deque[tuple[float, str]] = deque(maxlen=maxlen)
        self.connected = False
        self.start()

    def snapshot(self, since: float) -> list[tuple[float, str]]:
        """Markers with LSL time >= ``since`` (seconds), oldest first."""
        return [m for m in copy_items(self.markers) if m[0] >= since]

    def _setup(self) -> None:
        self._spawn(self._run, self.name)

    def _run(self) -> None:
        predicate = StreamSelector(source_id=self.source_id).predicate()
        while not self.stopping:
            found = pylsl.resolve_bypred(predicate, 1, 0.5)
            if not found or found[0].channel_format() != pylsl.cf_string:
                self._wait_stop(MARKER_RETRY_S)
                continue
            try:
                self._read(pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync))
            except Exception:  # a vanished outlet: look for it again
                log.debug("marker stream %s lost", self.source_id, exc_info=True)
            self.connected = False

    def _read(self, inlet: pylsl.StreamInlet) -> None:
        self.connected = True
        try:
            while not self.stopping:
                sample, timestamp = inlet.pull_sample(timeout=MARKER_PULL_S)
                if sample is not None:
                    self.markers.append((float(timestamp), str(sample[0])))
        finally:
            inlet.close_stream()


class ScheduleMarkers:
    """The built-in simulator's cues, taken from its schedule: exact, and none missed while the
    GUI was still connecting. Same interface as :class:`MarkerReader`."""

    connected = True

    def __init__(self, simulator: SimulatorClock) -> None:
        self.simulator = simulator

    def snapshot(self, since: float) -> list[tuple[float, str]]:
        """Cues already pushed with LSL time >= ``since`` (seconds), oldest first."""
        sim = self.simulator
        first = max(0, math.ceil((since - sim.t0) * sim.settings.rate_hz))
        stop = sim.samples_due(pylsl.local_clock())
        return [
            (sim.timestamp_of(cue), name) for cue, name in sim.schedule.cues_between(first, stop)
        ]

    def request_stop(self) -> None:
        pass

    def stop(self, timeout: float = 1.0) -> None:
        pass


class PredictionFeed:
    """The last ``maxlen`` predictions, oldest first, each once (by window ``seq``)."""

    def __init__(self, maxlen: int = 512) -> None:
        self._items: deque[Prediction] = deque(maxlen=maxlen)
        self._last_seq = -1
        self.attached = False  # True once registered as the pipeline's prediction sink

    def __call__(self, prediction: Prediction) -> None:
        """The prediction sink (worker thread): one deque append."""
        self._items.append(prediction)

    def poll(self, latest: Prediction | None) -> None:
        """GUI thread: without a sink, add the pipeline's latest prediction when it is new."""
        if not self.attached and latest is not None and latest.seq > self._last_seq:
            self._items.append(latest)
            self._last_seq = latest.seq

    def since(self, lsl_time: float) -> list[Prediction]:
        """Predictions whose window ends at or after ``lsl_time`` (LSL seconds)."""
        return [p for p in copy_items(self._items) if p.timestamp >= lsl_time]

    def clear(self) -> None:
        self._items.clear()
        self._last_seq = -1
