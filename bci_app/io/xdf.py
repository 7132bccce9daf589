"""XDF files (pyxdf): every stream as pyxdf returns it, and the EEG + marker streams as one
:class:`~bci_app.io.recording.Recording`.

Marker -> sample: the EEG sample whose timestamp is nearest (ties go to the earlier one);
markers more than half a sample period outside the EEG stream's span are dropped.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from bci_app.config import HealthConfig
from bci_app.io.labels import canonical_label, microvolt_factor
from bci_app.io.recording import Recording, RecordingError

__all__ = [
    "XDF_EXTENSIONS",
    "check_xdf_complete",
    "describe_xdf_streams",
    "load_xdf",
    "read_xdf_streams",
    "xdf_channels",
    "xdf_info",
    "xdf_rate",
]

log = logging.getLogger(__name__)

XDF_EXTENSIONS: tuple[str, ...] = (".xdf", ".xdfz")

# A timestamp step longer than this starts a new dejitter segment: the live inlet's gap rule.
_GAP_TOLERANCE_S = HealthConfig().gap_tolerance


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def xdf_info(stream: dict, key: str, default: str = "") -> str:
    """One ``<info>`` field of a pyxdf stream as text (``default`` when absent)."""
    value = stream["info"].get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else str(value)


def describe_xdf_streams(streams: list[dict]) -> str:
    """``'EEG' (type 'EEG', float32, 160 Hz); ...`` for error messages."""
    return (
        "; ".join(
            f"{xdf_info(s, 'name')!r} (type {xdf_info(s, 'type')!r}, "
            f"{xdf_info(s, 'channel_format')}, {xdf_info(s, 'nominal_srate')} Hz)"
            for s in streams
        )
        or "none"
    )


def xdf_rate(stream: dict) -> float:
    """The nominal rate in Hz (0 for an irregular stream or an unreadable value)."""
    try:
        return float(xdf_info(stream, "nominal_srate", "0"))
    except ValueError:
        return 0.0


def xdf_channels(stream: dict, n_channels: int) -> list[dict[str, str]]:
    """Per-channel ``label``/``unit``/``type`` from ``desc/channels/channel`` (may be empty)."""
    try:
        nodes = stream["info"]["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        return []
    channels = []
    for node in nodes:
        entry = {}
        for key in ("label", "unit", "type"):
            try:
                value = node.get(key)
                entry[key] = str(value[0]).strip() if value and value[0] is not None else ""
            except AttributeError:
                entry[key] = ""
        channels.append(entry)
    return channels if len(channels) == n_channels else []


def read_xdf_streams(path: Path, dejitter: bool = False) -> list[dict]:
    """All streams of an XDF file as pyxdf returns them, clock-synchronised.

    ``dejitter``: pyxdf fits a line through each regular stream's timestamps, breaking the fit
    where a step exceeds the live inlet's gap tolerance (so a short dropout stays a gap instead
    of being smeared over the segment); replay keeps the recorded stamps (False). Raises
    :class:`RecordingError` when the file is not XDF, cannot be parsed, or pyxdf reports a
    truncated or corrupt chunk.
    """
    import pyxdf

    opener = gzip.open if path.name.lower().endswith(".xdfz") else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read ({exc}); check the file") from exc
    if magic != b"XDF:":
        raise RecordingError(
            f"{path}: not an XDF file (it does not start with 'XDF:'); it is corrupt or of "
            "another format - copy it again or re-record"
        )
    collect = _Collect()
    pyxdf_log = logging.getLogger("pyxdf.pyxdf")
    pyxdf_log.addHandler(collect)
    try:
        streams, _ = pyxdf.load_xdf(
            str(path),
            synchronize_clocks=True,
            dejitter_timestamps=dejitter,
            jitter_break_threshold_seconds=_GAP_TOLERANCE_S,
            jitter_break_threshold_samples=1,
        )
    except Exception as exc:
        raise RecordingError(
            f"{path}: not a readable XDF file ({type(exc).__name__}: {exc}); it is corrupt or "
            "not XDF - copy it again or re-record"
        ) from exc
    finally:
        pyxdf_log.removeHandler(collect)
    if collect.messages:
        raise RecordingError(
            f"{path}: the XDF file is truncated or corrupt ({collect.messages[0]}); copy it "
            "again from the recording machine, or re-record"
        )
    return streams


def check_xdf_complete(path: Path, stream: dict) -> None:
    """Raise :class:`RecordingError` when ``stream`` lacks its footer or holds fewer or more
    samples than its footer says (the recorder did not close the file: truncated)."""
    name = xdf_info(stream, "name")
    footer = stream.get("footer")
    if not footer:
        raise RecordingError(
            f"{path}: stream {name!r} has no footer, so the file was cut short (the recorder "
            "did not close it); copy it again or re-record"
        )
    try:
        expected = int(footer["info"]["sample_count"][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return
    held = len(stream["time_stamps"])
    if expected != held:
        raise RecordingError(
            f"{path}: stream {name!r} holds {held} samples but its footer says {expected}: "
            "the file is truncated or corrupt; copy it again or re-record"
        )


def load_xdf(path: Path, run: str) -> Recording:
    """The EEG stream (type 'EEG' preferred, else the first regular numeric stream; streams
    without samples only when no other has any) and the marker stream of an XDF file as one
    :class:`Recording` in µV, timestamps dejittered."""
    streams = read_xdf_streams(path, dejitter=True)
    numeric = [s for s in streams if xdf_info(s, "channel_format") != "string" and xdf_rate(s) > 0]
    if not numeric:
        raise RecordingError(
            f"{path}: no numeric stream with a nominal sample rate (EEG) in the file; streams: "
            f"{describe_xdf_streams(streams)}. Record the EEG stream as well"
        )
    typed = [s for s in numeric if xdf_info(s, "type").lower() == "eeg"]
    candidates = typed or numeric
    # A stream the recorder saw but that sent nothing (XDF allows it) is no candidate when
    # another one holds samples; with none holding any, the error below names the first.
    filled = [s for s in candidates if len(s["time_stamps"]) > 0]
    if filled and len(filled) < len(candidates):
        log.warning(
            "%s: left out streams without samples: %s",
            path,
            describe_xdf_streams([s for s in candidates if len(s["time_stamps"]) == 0]),
        )
        candidates = filled
    eeg = candidates[0]
    if len(candidates) > 1:
        log.warning(
            "%s: several EEG candidates (%s); using %r",
            path,
            describe_xdf_streams(candidates),
            xdf_info(eeg, "name"),
        )
    name = xdf_info(eeg, "name")
    values = np.asarray(eeg["time_series"])
    timestamps = np.asarray(eeg["time_stamps"], dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise RecordingError(f"{path}: EEG stream {name!r} holds no samples; re-record")
    check_xdf_complete(path, eeg)

    n_channels = values.shape[1]
    channels = xdf_channels(eeg, n_channels)
    if channels:
        types = [c["type"].lower() for c in channels]
        keep = [i for i, t in enumerate(types) if t == "eeg"] if "eeg" in types else []
        if not keep or len(keep) == n_channels:
            keep = list(range(n_channels))
        labels = [canonical_label(channels[i]["label"]) or f"ch{i + 1}" for i in keep]
        scale = np.ones(len(keep))
        for j, i in enumerate(keep):
            unit = channels[i]["unit"]
            factor = microvolt_factor(unit)
            if factor is not None:
                scale[j] = factor
            elif unit:
                log.warning(
                    "%s: channel %s has unknown unit %r; taken as µV", path, labels[j], unit
                )
    else:
        keep = list(range(n_channels))
        labels = [f"ch{i + 1}" for i in keep]
        scale = np.ones(n_channels)
    data = np.ascontiguousarray(values[:, keep], dtype=np.float32)
    if np.any(scale != 1.0):
        data = (data.astype(np.float64) * scale).astype(np.float32)

    events = _xdf_events(path, streams, timestamps, xdf_rate(eeg))
    return Recording(data, xdf_rate(eeg), tuple(labels), events, timestamps, str(path), run)


def _xdf_events(
    path: Path, streams: list[dict], timestamps: np.ndarray, rate: float
) -> tuple[tuple[int, str], ...]:
    """Markers of the (type 'Markers' preferred) string stream, at the nearest EEG sample."""
    strings = [s for s in streams if xdf_info(s, "channel_format") == "string"]
    if not strings:
        log.warning("%s: no marker (string) stream; the recording has no events", path)
        return ()
    typed = [s for s in strings if xdf_info(s, "type").lower() == "markers"]
    markers = (typed or strings)[0]
    if len(typed or strings) > 1:
        log.warning("%s: several marker streams; using %r", path, xdf_info(markers, "name"))
    times = np.asarray(markers["time_stamps"], dtype=np.float64)
    labels = [
        str(v[0] if isinstance(v, list | tuple) else v).strip() for v in markers["time_series"]
    ]
    if times.size == 0:
        return ()
    half = 0.5 / rate
    inside = (times >= timestamps[0] - half) & (times <= timestamps[-1] + half)
    if not inside.all():
        log.warning(
            "%s: %d marker(s) outside the EEG stream's time span dropped",
            path,
            int((~inside).sum()),
        )
    right = np.clip(np.searchsorted(timestamps, times), 1, len(timestamps) - 1)
    left = right - 1
    if len(timestamps) == 1:
        nearest = np.zeros(times.shape, dtype=np.int64)
    else:
        nearest = np.where(
            np.abs(timestamps[right] - times) < np.abs(times - timestamps[left]), right, left
        )
    events = [(int(nearest[i]), labels[i]) for i in np.flatnonzero(inside)]
    return tuple(sorted(events, key=lambda e: e[0]))
