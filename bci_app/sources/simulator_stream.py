"""The simulator as LSL outlets: :class:`SimulatorStream` pushes an
:class:`~bci_app.sources.simulator.EEGSimulator` to an EEG outlet plus a string marker outlet from
a background thread, paced by ``pylsl.local_clock()`` without drift (sample ``n`` has timestamp
exactly ``t0 + n / rate_hz``); :class:`SimulatorClock` is what another process needs to follow
it (its settings, ``t0``, source_id and cue schedule). The marker outlet carries the schedule's
every marker (:func:`~bci_app.sources.simulator.make_schedule`): the class name at each cue (mi,
ssvep) or ``char:<X>``, ``code<N>`` and ``target``/``nontarget`` at each flash (p300).
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import threading
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pylsl

from bci_app.io.lslinfo import make_stream_info
from bci_app.lifecycle import STOP_TIMEOUT_S, Background
from bci_app.sources.simulator import EEGSimulator, Schedule, SimulatorSettings, make_schedule

__all__ = ["InjectFn", "SimulatorClock", "SimulatorStream"]

log = logging.getLogger(__name__)


InjectFn = Callable[[int, np.ndarray], None]

_RUNNING: weakref.WeakSet[SimulatorStream] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop streams still running at interpreter exit (before liblsl is torn down)."""
    for stream in list(_RUNNING):
        stream.stop()


@dataclass
class _Counters:
    samples: int = 0
    markers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@functools.lru_cache(maxsize=8)
def _schedule_of(settings: SimulatorSettings) -> Schedule:
    return make_schedule(settings)  # lazy and thread-safe, so one per settings can be shared


@dataclass(frozen=True)
class SimulatorClock:
    """What another process needs to follow a started simulator: its settings, ``t0`` and
    source_id (picklable). Its :attr:`schedule` is the simulator's own, rebuilt from the seed."""

    settings: SimulatorSettings
    t0: float  # local_clock() timestamp of sample 0
    source_id: str

    @property
    def marker_source_id(self) -> str:
        return self.source_id + "-markers"

    @property
    def schedule(self) -> Schedule:
        return _schedule_of(self.settings)

    def timestamp_of(self, sample_index: int) -> float:
        """LSL timestamp of ``sample_index``: ``t0 + sample_index / rate_hz``."""
        return self.t0 + sample_index / self.settings.rate_hz

    def samples_due(self, now: float) -> int:
        """Samples whose timestamp is at or before LSL time ``now`` (pushed by then, give or
        take one chunk)."""
        return max(0, math.floor((now - self.t0) * self.settings.rate_hz) + 1)


class SimulatorStream(Background):
    """Runs an :class:`EEGSimulator` as two LSL outlets from a background thread.

    * EEG outlet: type ``"EEG"``, name ``settings.name``, float32, nominal rate
      ``settings.rate_hz``, ``source_id``; desc has ``<channels>`` (label, unit microvolts,
      type EEG) and ``<manufacturer>bci-app simulator</manufacturer>``.
    * Marker outlet: type ``"Markers"``, name ``settings.name + "-markers"``, 1 string channel,
      irregular rate, source_id ``source_id + "-markers"``; one sample per marker of the
      schedule (mi/ssvep: the class name at each cue; p300: ``char:<X>`` at a character's first
      flash, ``code<N>``, ``target``/``nontarget``, as separate samples in that order), each
      stamped with the timestamp of its cue/flash sample.

    Sample ``n`` (0-based since ``start()``) carries timestamp ``t0 + n / rate_hz`` with
    ``t0 = pylsl.local_clock()`` taken in ``start()``; a chunk of ``settings.chunk_samples`` is
    pushed as soon as ``local_clock()`` reaches the timestamp of its last sample.

    ``inject(first_sample_index, chunk)`` (optional) is called right before each push and may
    modify ``chunk`` (``(n, n_channels)`` float32) in place, e.g. to write NaN. If it raises,
    the push thread ends (the outlets stay until ``stop()``) and the exception is in ``error``.

    ``pause()`` drops data (the clock and sample counter keep running: a gap in the stream, as
    with a wireless dropout) until ``resume()``. To simulate an amplifier disappearing and
    coming back, ``stop()`` and start a new instance with the same ``settings.source_id``.
    """

    def __init__(self, settings: SimulatorSettings | None = None, inject: InjectFn | None = None):
        super().__init__()
        s = settings if settings is not None else SimulatorSettings()
        self._settings = s
        self._source_id = s.source_id or f"{s.name}-{uuid.uuid4().hex}"
        self.name = f"SimulatorStream[{self._source_id}]"
        self._inject = inject
        self._sim = EEGSimulator(s)
        self._paused = threading.Event()
        self._outlet: pylsl.StreamOutlet | None = None
        self._marker_outlet: pylsl.StreamOutlet | None = None
        self._t0: float | None = None
        self._counters = _Counters()
        self._next_sample = 0

    # -- properties ---------------------------------------------------------------------------
    @property
    def settings(self) -> SimulatorSettings:
        return self._settings

    @property
    def source_id(self) -> str:
        """source_id of the EEG outlet (the marker outlet's is this + ``"-markers"``)."""
        return self._source_id

    @property
    def marker_source_id(self) -> str:
        return self._source_id + "-markers"

    @property
    def labels(self) -> tuple[str, ...]:
        return self._sim.labels

    @property
    def schedule(self) -> Schedule:
        """The simulator's cue / flash schedule (sample indices; timestamp = ``t0 + index /
        rate``)."""
        return self._sim.schedule

    @property
    def t0(self) -> float | None:
        """``local_clock()`` timestamp of sample 0, set by ``start()`` (None before)."""
        return self._t0

    def clock(self) -> SimulatorClock:
        """The started stream's :class:`SimulatorClock` (for a viewer in another process)."""
        if self._t0 is None:
            raise RuntimeError("stream not started")
        return SimulatorClock(self._settings, self._t0, self._source_id)

    @property
    def samples_pushed(self) -> int:
        """Samples pushed to the EEG outlet so far (excludes samples dropped while paused)."""
        with self._counters.lock:
            return self._counters.samples

    @property
    def markers_pushed(self) -> int:
        with self._counters.lock:
            return self._counters.markers

    @property
    def next_sample_index(self) -> int:
        """Index of the next sample the thread will produce (pushed or dropped)."""
        return self._next_sample

    @property
    def is_running(self) -> bool:
        return self.running

    @property
    def is_paused(self) -> bool:
        return self._paused.is_set()

    def timestamp_of(self, sample_index: int) -> float:
        """LSL timestamp of ``sample_index``: ``t0 + sample_index / rate_hz`` (after start)."""
        return self.clock().timestamp_of(sample_index)

    # -- lifecycle ----------------------------------------------------------------------------
    def _setup(self) -> SimulatorStream:
        """Create the outlets, take ``t0`` and start the push thread. Returns ``self``."""
        s = self._settings
        info = make_stream_info(
            s.name,
            "EEG",
            self._source_id,
            rate_hz=float(s.rate_hz),
            labels=self.labels,
            unit="microvolts",
            manufacturer="bci-app simulator",
        )
        markers = make_stream_info(
            s.name + "-markers",
            "Markers",
            self.marker_source_id,
            channel_format="string",
            n_channels=1,
            manufacturer="bci-app simulator",
        )
        self._outlet = pylsl.StreamOutlet(info, max_buffered=60)
        self._marker_outlet = pylsl.StreamOutlet(markers)
        self._t0 = pylsl.local_clock()
        self._spawn(self._loop, self.name)
        _RUNNING.add(self)
        return self

    def _teardown(self) -> None:
        # Dropping the last references destroys the liblsl outlets (streams vanish).
        self._outlet = None
        self._marker_outlet = None
        _RUNNING.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Stop the thread (joins within ``timeout`` s) and destroy the outlets. Idempotent."""
        return super().stop(timeout)

    def pause(self) -> None:
        """Stop pushing (samples and markers falling in the pause are dropped)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    # -- thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        s = self._settings
        rate = float(s.rate_hz)
        t0 = self._t0
        assert t0 is not None
        # Outlets are looked up on self (not held in locals) so that a traceback kept in
        # ``self.error`` cannot keep them alive after stop().
        chunk = s.chunk_samples
        sched = self._sim.schedule
        clock = pylsl.local_clock
        n = 0
        while not self.stopping:
            deadline = t0 + (n + chunk - 1) / rate  # timestamp of the chunk's last sample
            wait = deadline - clock()
            if wait > 0:
                self._wait_stop(wait)
                continue  # re-check the clock (and the stop flag) after waking
            data = self._sim.generate(chunk)
            cues = sched.cues_between(n, n + chunk)
            if not self._paused.is_set():
                if self._inject is not None:
                    self._inject(n, data)
                stamps = [t0 + (n + i) / rate for i in range(chunk)]
                self._outlet.push_chunk(data, stamps)  # type: ignore[union-attr]
                for cue, name in cues:
                    self._marker_outlet.push_sample([name], t0 + cue / rate)  # type: ignore[union-attr]
                with self._counters.lock:
                    self._counters.samples += chunk
                    self._counters.markers += len(cues)
            n += chunk
            self._next_sample = n
