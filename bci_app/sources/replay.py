"""Replay recorded sessions as LSL outlets with their true timing.

An XDF file (read with pyxdf) becomes one outlet per stream, with the stream's name, type,
channel count, channel format and description (channel labels, units), string marker streams
included. An EDF/BDF/FIF file (read with MNE) becomes one EEG outlet in microvolts plus a string
marker outlet with its annotations.

Timing: sample time ``t`` (the file's clock, after pyxdf's clock synchronisation, not
dejittered) is mapped to ``local = local_start + (t - origin) / speed``, where ``origin`` is the
earliest replayed sample. A sample is pushed once the local clock has reached its mapped time and
is stamped with exactly that time, so a stamp is never in the future (chunked players stamp a
whole chunk ahead of time). Relative timing between streams is kept. With ``loop``, each pass
starts ``LOOP_GAP_S`` after the previous one ended, so readers see a timestamp gap at the
boundary instead of the end stitched to the start.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pylsl

from bci_app.errors import InvalidArgument
from bci_app.io.session import ReplaySession, ReplayStream, stream_info
from bci_app.lifecycle import Background

__all__ = ["LOOP_GAP_S", "ReplayProgress", "Replayer", "format_progress"]

log = logging.getLogger(__name__)

LOOP_GAP_S = 0.2  # pause between loop passes: a timestamp gap well beyond any jitter tolerance,
# yet shorter than the time after which readers call a stream stale
SOURCE_ID_PREFIX = "bci-app-replay"
MAX_PUSH_SAMPLES = 4096  # per stream and push: bounds one push when the replayer fell behind
TIMING_HISTORY = 100_000  # lateness values kept for the timing report (bounded)


@dataclass
class ReplayProgress:
    """Where a replay stands: position and duration in file seconds, loop pass, samples."""

    position_s: float
    duration_s: float
    passes: int
    pushed: dict[str, int] = field(default_factory=dict)


class Replayer(Background):
    """Pushes a :class:`ReplaySession` through LSL outlets in real time, from one thread.

    ``speed``: time factor (2 = twice as fast; timestamps follow the replayed time).
    ``loop``: start over after the end (with a ``LOOP_GAP_S`` gap). ``start_s``: skip this many
    seconds from the session start. ``keep_source_id``: reuse the recorded source_ids (so a
    config bound to the recorded device connects to the replay); otherwise they get the prefix
    ``bci-app-replay:`` so a replay is never mistaken for the live device.
    ``wait_for_consumers``: seconds to wait until every numeric outlet has a reader before the
    clock starts (0: start at once).
    Outlets exist from construction, so readers can resolve and connect before :meth:`start`.
    """

    name = "bci-replay"

    def __init__(
        self,
        session: ReplaySession,
        speed: float = 1.0,
        loop: bool = False,
        start_s: float = 0.0,
        keep_source_id: bool = False,
        wait_for_consumers: float = 0.0,
    ) -> None:
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
            raise InvalidArgument(f"speed must be a positive number (1 = real time), got {speed!r}")
        if not (math.isfinite(start_s) and 0 <= start_s < session.duration_s):
            hint = "at least 0" if start_s < 0 else f"below {session.duration_s:.3f}"
            raise InvalidArgument(
                f"start offset {start_s!r} s is outside the recording "
                f"(0 to {session.duration_s:.3f} s); pass a --start {hint}"
            )
        if not (math.isfinite(wait_for_consumers) and wait_for_consumers >= 0):
            raise InvalidArgument(f"wait_for_consumers must be >= 0 s, got {wait_for_consumers!r}")
        super().__init__()
        self.session = session
        self.speed = float(speed)
        self.loop = loop
        self.start_s = float(start_s)
        self.wait_for_consumers = float(wait_for_consumers)
        self.source_ids = {
            s.name: s.source_id if keep_source_id else f"{SOURCE_ID_PREFIX}:{s.source_id}"
            for s in session.streams
        }
        self.outlets = [
            pylsl.StreamOutlet(stream_info(s, self.source_ids[s.name])) for s in session.streams
        ]
        # Push lateness (local push time minus the sample's stamp, s), bounded.
        self.lateness: deque[float] = deque(maxlen=TIMING_HISTORY)
        self.pushed = {s.name: 0 for s in session.streams}
        self.passes = 0
        self._position = self.start_s
        self._done = threading.Event()

    # -- control ----------------------------------------------------------------------------

    def _setup(self) -> None:
        self._spawn(self._play, self.name)

    def _teardown(self) -> None:
        self.outlets = []  # dropping them closes the outlets

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the replay has pushed its last sample (never with ``loop``)."""
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def progress(self) -> ReplayProgress:
        return ReplayProgress(
            self._position, self.session.duration_s, self.passes, dict(self.pushed)
        )

    def source_id_of(self, name: str) -> str:
        return self.source_ids[name]

    # -- the replay loop --------------------------------------------------------------------

    def _play(self) -> None:
        try:
            self._run()
        finally:
            self._done.set()

    def _await_consumers(self) -> None:
        deadline = pylsl.local_clock() + self.wait_for_consumers
        for stream, outlet in zip(self.session.streams, self.outlets, strict=True):
            if stream.is_string:
                continue
            left = deadline - pylsl.local_clock()
            if left <= 0 or not outlet.wait_for_consumers(left):
                log.warning("replay: no reader of %r yet; starting anyway", stream.name)

    def _run(self) -> None:
        if self.wait_for_consumers > 0:
            self._await_consumers()
        session = self.session
        first_time = session.origin + self.start_s
        # Local time of file time ``t`` in pass 0: local_start + (t - first_time) / speed.
        local_start = pylsl.local_clock()
        while not self.stopping:
            self._play_pass(local_start, first_time)
            if self.stopping or not self.loop:
                break
            self.passes += 1
            local_start += (session.end - first_time) / self.speed + LOOP_GAP_S
            first_time = session.origin  # later passes play the whole file
            log.info("replay: loop pass %d starts after a %.1f s gap", self.passes, LOOP_GAP_S)

    def _play_pass(self, local_start: float, first_time: float) -> None:
        streams = self.session.streams
        scale = 1.0 / self.speed
        cursors = [int(np.searchsorted(s.timestamps, first_time, side="left")) for s in streams]
        # Mapped local times of every sample (computed once per pass, float64).
        times = [local_start + (s.timestamps - first_time) * scale for s in streams]
        while not self.stopping:
            due = [times[i][c] for i, c in enumerate(cursors) if c < streams[i].n_samples]
            if not due:
                return
            wait = min(due) - pylsl.local_clock()
            if wait > 0 and self._wait_stop(wait):
                return
            now = pylsl.local_clock()
            for i, stream in enumerate(streams):
                first = cursors[i]
                if first >= stream.n_samples:
                    continue
                stop = int(np.searchsorted(times[i], now, side="right"))
                stop = min(stop, first + MAX_PUSH_SAMPLES)
                if stop <= first:
                    continue
                stamps = times[i][first:stop]
                self._push(i, stream, first, stop, stamps)
                cursors[i] = stop
                self.pushed[stream.name] += stop - first
                self.lateness.extend(pylsl.local_clock() - stamps)
                self._position = float(stream.timestamps[stop - 1]) - self.session.origin

    def _push(
        self, index: int, stream: ReplayStream, first: int, stop: int, stamps: np.ndarray
    ) -> None:
        outlet = self.outlets[index]
        if stream.is_string:
            for sample, stamp in zip(stream.values[first:stop], stamps, strict=True):
                outlet.push_sample(sample, float(stamp))
        elif stop - first == 1:
            outlet.push_sample(stream.values[first], float(stamps[0]))
        else:
            outlet.push_chunk(stream.values[first:stop], stamps.tolist())


def format_progress(progress: ReplayProgress) -> str:
    """``position / duration`` line for the terminal."""
    text = f"replay {progress.position_s:8.2f} / {progress.duration_s:.2f} s"
    if progress.passes:
        text += f"  (loop {progress.passes + 1})"
    return text
