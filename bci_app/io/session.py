"""Every stream of a recorded session, with its own timestamps, for replay over LSL.

An XDF file (pyxdf, clock-synchronised, not dejittered) gives one :class:`ReplayStream` per
stream with its name, type, format and ``<desc>``; an EDF/BDF/FIF file gives one EEG stream in
microvolts plus a string marker stream of its annotations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl

from bci_app.io.files import load_recording
from bci_app.io.lslinfo import CHANNEL_FORMATS, make_stream_info
from bci_app.io.recording import RecordingError
from bci_app.io.xdf import (
    DAMAGE_KEY,
    XDF_EXTENSIONS,
    describe_xdf_streams,
    read_xdf_streams,
    xdf_channels,
    xdf_info,
    xdf_rate,
)

__all__ = ["ReplaySession", "ReplayStream", "read_session", "stream_info"]

log = logging.getLogger(__name__)


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

    @property
    def end(self) -> float:
        """File-clock time just after the last sample (one period after it; s)."""
        period = 1.0 / self.rate_hz if self.rate_hz > 0 else 0.0
        return float(self.timestamps[-1]) + period


@dataclass(frozen=True)
class ReplaySession:
    """The streams of one file; ``origin``/``end`` bound their timestamps (file clock, s);
    ``damage``: one description per damaged stream of a file read in part."""

    source: str
    streams: tuple[ReplayStream, ...]
    origin: float
    end: float
    damage: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.end - self.origin


def read_session(
    path: str | Path, streams: Sequence[str] | None = None, strict: bool = False
) -> ReplaySession:
    """Read ``path`` (XDF, EDF, BDF, FIF) for replay; ``streams`` keeps only those names.

    A file read in part gives what was recovered, with a warning per damaged stream
    (``ReplaySession.damage``); ``strict`` refuses it (:mod:`bci_app.io.damage`). Raises
    :class:`RecordingError` for a missing or unreadable file, a file without a numeric stream,
    or a stream name that is not in the file.
    """
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"{path}: the file does not exist; check the path")
    is_xdf = path.name.lower().endswith(XDF_EXTENSIONS)
    found, damage = _xdf_streams(path, strict) if is_xdf else _mne_streams(path, strict)
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
    end = max(s.end for s in found)
    return ReplaySession(str(path), tuple(found), origin, end, damage)


def _xdf_streams(path: Path, strict: bool) -> tuple[list[ReplayStream], tuple[str, ...]]:
    raw_streams = read_xdf_streams(path, strict=strict)
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
        if channel_format not in CHANNEL_FORMATS:
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
    return out, tuple(s[DAMAGE_KEY] for s in raw_streams if DAMAGE_KEY in s)


def _mne_streams(path: Path, strict: bool) -> tuple[list[ReplayStream], tuple[str, ...]]:
    recording = load_recording(path, strict)  # RecordingError for unsupported / corrupt files
    timestamps = recording.sample_times()
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
    return streams, recording.damage


def stream_info(stream: ReplayStream, source_id: str) -> pylsl.StreamInfo:
    """The LSL description of ``stream``: its name, type, channels, rate, format and desc."""
    return make_stream_info(
        stream.name,
        stream.type,
        source_id,
        rate_hz=stream.rate_hz,
        channel_format=stream.channel_format,
        channels=stream.channels,
        n_channels=stream.n_channels,
        desc=stream.desc,
    )
