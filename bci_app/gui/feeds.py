"""What the GUI reads from other threads, without ever touching a widget there.

* :class:`BackgroundCall` runs one blocking call (stream resolve, pipeline start) on a daemon
  thread; the GUI timer polls ``done`` and reads ``result`` / ``error``.
* :class:`MarkerReader` reads a string marker stream (cue names) through a pylsl inlet on its
  own thread into a bounded deque of ``(lsl_time_s, text)``; :class:`ScheduleMarkers` gives the
  embedded simulator's cues straight from its schedule.
* :class:`PredictionFeed` keeps the last predictions: a sink on the worker thread appends to a
  bounded deque (O(1), never blocks); without a sink it polls ``worker.latest``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pylsl

from bci_app.infer.worker import Prediction
from bci_app.sources.simulator import SimulatorStream

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


class BackgroundCall:
    """``fn()`` on a daemon thread named ``name``; poll :attr:`done`, then read the outcome."""

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread to show
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the call has finished."""
        self._thread.join(timeout)
        return self.done


class MarkerReader:
    """Reads the marker stream with ``source_id`` into :attr:`markers` until :meth:`stop`.

    Marker times are LSL seconds (clock-synchronised), comparable with sample timestamps.
    """

    def __init__(self, source_id: str, maxlen: int = 256) -> None:
        self.source_id = source_id
        self.markers: deque[tuple[float, str]] = deque(maxlen=maxlen)
        self.connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bci-gui-markers", daemon=True)
        self._thread.start()

    def snapshot(self, since: float) -> list[tuple[float, str]]:
        """Markers with LSL time >= ``since`` (seconds), oldest first."""
        return [m for m in copy_items(self.markers) if m[0] >= since]

    def request_stop(self) -> None:
        """Ask the thread to end (returns at once; :meth:`stop` also joins)."""
        self._stop.set()

    def stop(self, timeout: float = 1.0) -> None:
        """End the thread and join it (within ``timeout`` seconds)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        predicate = f"source_id='{self.source_id}'"
        while not self._stop.is_set():
            found = pylsl.resolve_bypred(predicate, 1, 0.5)
            if not found or found[0].channel_format() != pylsl.cf_string:
                self._stop.wait(MARKER_RETRY_S)
                continue
            try:
                self._read(pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync))
            except Exception:  # noqa: BLE001 - a vanished outlet: look for it again
                log.debug("marker stream %s lost", self.source_id, exc_info=True)
            self.connected = False

    def _read(self, inlet: pylsl.StreamInlet) -> None:
        self.connected = True
        try:
            while not self._stop.is_set():
                sample, timestamp = inlet.pull_sample(timeout=MARKER_PULL_S)
                if sample is not None:
                    self.markers.append((float(timestamp), str(sample[0])))
        finally:
            inlet.close_stream()


class ScheduleMarkers:
    """The embedded simulator's cues, taken from its schedule: exact, and none missed while the
    GUI was still connecting. Same interface as :class:`MarkerReader`."""

    connected = True

    def __init__(self, simulator: SimulatorStream) -> None:
        self.simulator = simulator

    def snapshot(self, since: float) -> list[tuple[float, str]]:
        """Cues already pushed with LSL time >= ``since`` (seconds), oldest first."""
        sim = self.simulator
        if sim.t0 is None:
            return []
        rate = sim.settings.rate_hz
        first = max(0, math.ceil((since - sim.t0) * rate))
        stop = sim.next_sample_index
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
        """GUI thread: without a sink, add ``worker.latest`` when it is new."""
        if not self.attached and latest is not None and latest.seq > self._last_seq:
            self._items.append(latest)
            self._last_seq = latest.seq

    def since(self, lsl_time: float) -> list[Prediction]:
        """Predictions whose window ends at or after ``lsl_time`` (LSL seconds)."""
        return [p for p in copy_items(self._items) if p.timestamp >= lsl_time]

    def clear(self) -> None:
        self._items.clear()
        self._last_seq = -1
