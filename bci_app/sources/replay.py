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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl

from bci_app.train.data import (
    RecordingError,
    check_xdf_complete,
    describe_xdf_streams,
    load_recording,
    read_xdf_streams,
    xdf_channels,
    xdf_info,
    xdf_rate,
)

log = logging.getLogger(__name__)

LOOP_GAP_S = 0.2  # pause between loop passes: a timestamp gap well beyond any jitter tolerance,
# yet shorter than the time after which readers call a stream stale
SOURCE_ID_PREFIX = "bci-app-replay"
MAX_PUSH_SAMPLES = 4096  # per stream and push: bounds one push when the replayer fell behind
TIMING_HISTORY = 100_000  # lateness values kept for the timing report (bounded)

_FORMATS: dict[str, int] = {
    "float32": pylsl.cf_float32,
    "double64": pylsl.cf_double64,
    "string": pylsl.cf_string,
    "int8": pylsl.cf_int8,
    "int16": pylsl.cf_int16,
    "int32": pylsl.cf_int32,
    "int64": pylsl.cf_int64,
}
_XDF_EXTENSIONS = (".xdf", ".xdfz")


@dataclass(frozen=True, eq=False)
class ReplayStream:
    """One stream to replay.

    ``values``: ``(n_samples, n_channels)`` numeric array, or a list of samples (lists of str)
    for string streams. ``timestamps``: ``(n_samples,)`` seconds in the file's clock.
    ``rate_hz``: nominal rate, 0 for irregular streams. ``desc``: the XDF ``<desc>`` tree as
    pyxdf parses it (dicts of lists), copied into the outlet; None to write ``channels``.
    """

    name: str
    type: str
    channel_format: str
    rate_hz: float
    source_id: str
    values: np.ndarray | list
    timestamps: np.ndarray
    channels: tuple[dict[str, str], ...] = ()
    desc: dict | None = None

    @property
    def n_samples(self) -> int:
        return int(self.timestamps.size)

    @property
    def n_channels(self) -> int:
        if isinstance(self.values, np.ndarray):
            return int(self.values.shape[1])
        return len(self.values[0]) if self.values else 1

    @property
    def is_string(self) -> bool:
        return self.channel_format == "string"


@dataclass(frozen=True)
class ReplaySession:
    """The streams of one file; ``origin``/``end`` bound their timestamps (file clock, s)."""

    source: str
    streams: tuple[ReplayStream, ...]
    origin: float
    end: float

    @property
    def duration_s(self) -> float:
        return self.end - self.origin


def read_session(path: str | Path, streams: Sequence[str] | None = None) -> ReplaySession:
    """Read ``path`` (XDF, EDF, BDF, FIF) for replay; ``streams`` keeps only those names.

    Raises :class:`RecordingError` for a missing, truncated or corrupt file, a file without a
    numeric stream, or a stream name that is not in the file.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: the file does not exist; check the path")
    if path.name.lower().endswith(_XDF_EXTENSIONS):
        found = _xdf_streams(path)
    else:
        found = _mne_streams(path)
    if streams:
        names = [s.name for s in found]
        missing = [name for name in streams if name not in names]
        if missing:
            raise RecordingError(
                f"{path}: no stream named {', '.join(map(repr, missing))}; the file has "
                f"{', '.join(map(repr, names))}. Pass names from that list to --streams"
            )
        found = [s for s in found if s.name in streams]
    found = [s for s in found if s.n_samples > 0]
    if not any(not s.is_string for s in found):
        raise RecordingError(f"{path}: nothing to replay: no numeric stream with samples selected")
    origin = min(float(s.timestamps[0]) for s in found)
    end = max(_stream_end(s) for s in found)
    return ReplaySession(str(path), tuple(found), origin, end)


def _stream_end(stream: ReplayStream) -> float:
    period = 1.0 / stream.rate_hz if stream.rate_hz > 0 else 0.0
    return float(stream.timestamps[-1]) + period


def _xdf_streams(path: Path) -> list[ReplayStream]:
    raw_streams = read_xdf_streams(path)
    for stream in raw_streams:
        check_xdf_complete(path, stream)
    numeric = [
        s
        for s in raw_streams
        if xdf_info(s, "channel_format") != "string" and len(s["time_stamps"])
    ]
    if not numeric:
        raise RecordingError(
            f"{path}: no numeric stream with samples in the file; streams: "
            f"{describe_xdf_streams(raw_streams)}. There is nothing to replay"
        )
    out = []
    for stream in raw_streams:
        channel_format = xdf_info(stream, "channel_format")
        if channel_format not in _FORMATS:
            log.warning(
                "%s: stream %r has format %r; skipped",
                path,
                xdf_info(stream, "name"),
                channel_format,
            )
            continue
        n_channels = int(xdf_info(stream, "channel_count", "1"))
        values = stream["time_series"]
        if channel_format == "string":
            values = [[str(v) for v in sample] for sample in values]
        else:
            values = np.asarray(values).reshape(-1, n_channels)
        name = xdf_info(stream, "name")
        desc = stream["info"].get("desc")
        desc = desc[0] if isinstance(desc, list) and desc and isinstance(desc[0], dict) else None
        out.append(
            ReplayStream(
                name=name,
                type=xdf_info(stream, "type"),
                channel_format=channel_format,
                rate_hz=xdf_rate(stream),
                source_id=xdf_info(stream, "source_id") or name,
                values=values,
                timestamps=np.asarray(stream["time_stamps"], dtype=np.float64),
                channels=tuple(xdf_channels(stream, n_channels)),
                desc=desc,
            )
        )
    return out


def _mne_streams(path: Path) -> list[ReplayStream]:
    recording = load_recording(path)  # RecordingError for unsupported / corrupt files
    timestamps = np.arange(recording.n_samples, dtype=np.float64) / recording.rate_hz
    channels = tuple(
        {"label": label, "unit": "microvolts", "type": "EEG"} for label in recording.labels
    )
    eeg = ReplayStream(
        name=recording.run,
        type="EEG",
        channel_format="float32",
        rate_hz=recording.rate_hz,
        source_id=recording.run,
        values=recording.data,
        timestamps=timestamps,
        channels=channels,
    )
    streams = [eeg]
    if recording.events:
        samples = np.array([sample for sample, _ in recording.events], dtype=np.int64)
        streams.append(
            ReplayStream(
                name=f"{recording.run}-markers",
                type="Markers",
                channel_format="string",
                rate_hz=0.0,
                source_id=f"{recording.run}-markers",
                values=[[label] for _, label in recording.events],
                timestamps=timestamps[samples],
                channels=({"label": "marker", "unit": "", "type": "Markers"},),
            )
        )
    return streams


def _copy_desc(node: pylsl.XMLElement, tree: dict) -> None:
    """Write a pyxdf-parsed XML tree (``{tag: [text | subtree | None, ...]}``) under ``node``."""
    for tag, entries in tree.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                _copy_desc(node.append_child(tag), entry)
            elif entry is None:
                node.append_child(tag)
            else:
                node.append_child_value(tag, str(entry))


def stream_info(stream: ReplayStream, source_id: str) -> pylsl.StreamInfo:
    """The LSL description of ``stream``: its name, type, channels, rate, format and desc."""
    info = pylsl.StreamInfo(
        stream.name,
        stream.type,
        stream.n_channels,
        stream.rate_hz if stream.rate_hz > 0 else pylsl.IRREGULAR_RATE,
        _FORMATS[stream.channel_format],
        source_id,
    )
    if stream.desc is not None:
        _copy_desc(info.desc(), stream.desc)
    elif stream.channels:
        channels = info.desc().append_child("channels")
        for channel in stream.channels:
            node = channels.append_child("channel")
            for key, value in channel.items():
                node.append_child_value(key, value)
    return info


@dataclass
class ReplayProgress:
    """Where a replay stands: position and duration in file seconds, loop pass, samples."""

    position_s: float
    duration_s: float
    passes: int
    pushed: dict[str, int] = field(default_factory=dict)


class Replayer:
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
            raise ValueError(f"speed must be a positive number (1 = real time), got {speed!r}")
        if not (math.isfinite(start_s) and 0 <= start_s < session.duration_s):
            raise ValueError(
                f"start offset {start_s!r} s is outside the recording "
                f"(0 to {session.duration_s:.3f} s); pass a smaller --start"
            )
        if not (math.isfinite(wait_for_consumers) and wait_for_consumers >= 0):
            raise ValueError(f"wait_for_consumers must be >= 0 s, got {wait_for_consumers!r}")
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
        self.error: BaseException | None = None
        self._position = self.start_s
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a replayer runs once; make a new one")
        self._thread = threading.Thread(target=self._guarded_run, name="bci-replay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop pushing and join the thread (within ``timeout`` s); the outlets close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("replay thread did not stop within %.1f s", timeout)
        self.outlets = []

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

    def __enter__(self) -> Replayer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the replay loop --------------------------------------------------------------------

    def _guarded_run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported through .error, never lost
            self.error = exc
            log.exception("replay of %s failed", self.session.source)
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
        while not self._stop.is_set():
            self._play_pass(local_start, first_time)
            if self._stop.is_set() or not self.loop:
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
        while not self._stop.is_set():
            due = [times[i][c] for i, c in enumerate(cursors) if c < streams[i].n_samples]
            if not due:
                return
            wait = min(due) - pylsl.local_clock()
            if wait > 0 and self._stop.wait(wait):
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
