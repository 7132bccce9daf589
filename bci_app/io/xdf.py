"""XDF files (pyxdf): every stream as pyxdf returns it, and the EEG + marker streams as one
:class:`~bci_app.io.recording.Recording`.

Marker -> sample: the EEG sample whose timestamp is nearest (ties go to the earlier one);
markers more than half a sample period outside the EEG stream's span are dropped.
"""

from __future__ import annotations

import gzip
import logging
import tempfile
import zlib
from pathlib import Path

import numpy as np

from bci_app.config import HealthConfig
from bci_app.io.damage import StreamDamage, report_damage
from bci_app.io.labels import canonical_label, microvolt_scale
from bci_app.io.recording import Recording, RecordingError

__all__ = [
    "DAMAGE_KEY",
    "XDF_EXTENSIONS",
    "describe_xdf_streams",
    "load_xdf",
    "marker_samples",
    "read_xdf_streams",
    "xdf_channels",
    "xdf_info",
    "xdf_rate",
]

log = logging.getLogger(__name__)

XDF_EXTENSIONS: tuple[str, ...] = (".xdf", ".xdfz")

# A timestamp step longer than this starts a new dejitter segment: the live inlet's gap rule.
_GAP_TOLERANCE_S = HealthConfig().gap_tolerance
#: Key of a damaged stream's description in the stream dicts :func:`read_xdf_streams` returns.
DAMAGE_KEY = "bci_app_damage"


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


def read_xdf_streams(path: Path, dejitter: bool = False, strict: bool = False) -> list[dict]:
    """All streams of an XDF file as pyxdf returns them, clock-synchronised.

    ``dejitter``: pyxdf fits a line through each regular stream's timestamps, breaking the fit
    where a step exceeds the live inlet's gap tolerance (so a short dropout stays a gap instead
    of being smeared over the segment); replay keeps the recorded stamps (False).

    A file cut short (no footers) or with corrupt chunks gives every intact chunk, and each
    damaged stream's description under :data:`DAMAGE_KEY` (also logged, see
    :mod:`bci_app.io.damage`); ``strict`` refuses it. Raises :class:`RecordingError` when the
    file is not XDF or nothing in it can be read.
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
    propagate, pyxdf_log.propagate = pyxdf_log.propagate, False  # reported below, in our words

    def load(source: Path, dejitter: bool) -> list[dict]:
        streams, _ = pyxdf.load_xdf(
            str(source),
            synchronize_clocks=True,
            dejitter_timestamps=dejitter,
            jitter_break_threshold_seconds=_GAP_TOLERANCE_S,
            jitter_break_threshold_samples=1,
        )
        if dejitter and not all(_finite_stamps(s).all() for s in streams):
            # pyxdf's fit spreads one corrupt (NaN) stamp over every sample of its stream:
            # read the recorded stamps, and drop the corrupt ones below
            return load(source, False)
        return streams

    try:
        try:
            streams = load(path, dejitter)
        except EOFError:
            if opener is open:
                raise
            # a .xdfz cut short: gzip refuses the whole; parse what decompresses, as a cut .xdf
            with tempfile.TemporaryDirectory() as folder:
                cut = Path(folder) / "cut.xdf"
                _gunzip_what_is_there(path, cut)
                streams = load(cut, dejitter)
    except Exception as exc:
        raise RecordingError(
            f"{path}: not a readable XDF file ({type(exc).__name__}: {exc}); it is corrupt or "
            "not XDF - copy it again or re-record"
        ) from exc
    finally:
        pyxdf_log.removeHandler(collect)
        pyxdf_log.propagate = propagate
    corrupt = collect.messages[0] if collect.messages else None
    if corrupt and not any(len(s["time_stamps"]) for s in streams):
        raise RecordingError(
            f"{path}: the XDF file is truncated or corrupt ({corrupt}) and no samples could be "
            "recovered; copy it again from the recording machine, or re-record"
        )
    damaged = [(s, _stream_damage(path, s, corrupt is not None)) for s in streams]
    damaged += [(s, _drop_nonfinite_stamps(path, s)) for s in streams]
    damaged = [(s, d) for s, d in damaged if d is not None]
    if corrupt and not damaged:
        whole = StreamDamage(path, "(whole file)", f"corrupt chunks skipped: {corrupt}", 0, 0, 0)
        report_damage([whole], strict)
    notes = report_damage([d for _, d in damaged], strict)
    for (stream, _), note in zip(damaged, notes, strict=True):
        stream[DAMAGE_KEY] = f"{stream[DAMAGE_KEY]}; {note}" if DAMAGE_KEY in stream else note
    return streams


def _gunzip_what_is_there(path: Path, out: Path) -> None:
    """Decompress the gzip file ``path`` into ``out`` as far as it is intact."""
    decompressor = zlib.decompressobj(wbits=31)  # 31: a gzip header
    with open(path, "rb") as source, open(out, "wb") as target:
        while chunk := source.read(1 << 20):
            try:
                target.write(decompressor.decompress(chunk))
            except zlib.error:
                break


def _finite_stamps(stream: dict) -> np.ndarray:
    return np.isfinite(np.asarray(stream["time_stamps"], dtype=np.float64))


def _drop_nonfinite_stamps(path: Path, stream: dict) -> StreamDamage | None:
    """Drop the samples of ``stream`` whose timestamp is not finite (corrupt bytes: no time
    to place them at); their description, None when there are none."""
    finite = _finite_stamps(stream)
    if finite.all():
        return None
    stream["time_stamps"] = np.asarray(stream["time_stamps"], dtype=np.float64)[finite]
    values = stream["time_series"]
    if isinstance(values, np.ndarray):
        stream["time_series"] = values[finite]
    else:
        stream["time_series"] = [v for v, keep in zip(values, finite, strict=True) if keep]
    lost = int((~finite).sum())
    return StreamDamage(
        path,
        xdf_info(stream, "name"),
        f"{lost} samples with a corrupt (non-finite) timestamp dropped; the stream keeps its "
        "recorded timestamps",
        int(finite.sum()),
        xdf_rate(stream),
        lost,
    )


def _stream_damage(path: Path, stream: dict, corrupt: bool) -> StreamDamage | None:
    """What ``stream`` lost, by its footer's sample count and, in a file with corrupt chunks,
    the gaps in its timestamps; None when it is whole."""
    held = len(stream["time_stamps"])
    rate = xdf_rate(stream)
    footer = stream.get("footer")
    try:
        expected: int | None = int(footer["info"]["sample_count"][0]) if footer else None
    except (KeyError, IndexError, TypeError, ValueError):
        expected = None
    if not footer:
        reason = "no footer: the recorder did not close the file"
        lost = None
    elif expected is not None and expected != held:
        reason = f"it holds {held} samples but its footer counts {expected}"
        lost = max(expected - held, 0)
    elif corrupt and rate > 0:
        lost = _gap_samples(np.asarray(stream["time_stamps"], dtype=np.float64), rate)
        if lost == 0:
            return None
        reason = "corrupt chunks skipped"
    else:
        return None
    return StreamDamage(path, xdf_info(stream, "name"), reason, held, rate, lost)


def _gap_samples(stamps: np.ndarray, rate: float) -> int:
    """Samples missing in the gaps of regular ``stamps`` (steps beyond the live gap rule)."""
    steps = np.diff(stamps)
    gaps = steps[steps > 1.0 / rate + _GAP_TOLERANCE_S]
    return int(np.round(gaps * rate).sum() - len(gaps))


def load_xdf(path: Path, run: str, strict: bool = False) -> Recording:
    """The EEG stream (type 'EEG' preferred, else the first regular numeric stream; streams
    without samples only when no other has any) and the marker stream of an XDF file as one
    :class:`Recording` in µV, timestamps dejittered. A damaged file: see
    :func:`read_xdf_streams`; the EEG's and the markers' descriptions go to
    ``Recording.damage``."""
    streams = read_xdf_streams(path, dejitter=True, strict=strict)
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

    n_channels = values.shape[1]
    channels = xdf_channels(eeg, n_channels)
    if channels:
        types = [c["type"].lower() for c in channels]
        keep = [i for i, t in enumerate(types) if t == "eeg"] if "eeg" in types else []
        if not keep or len(keep) == n_channels:
            keep = list(range(n_channels))
        labels = [canonical_label(channels[i]["label"]) or f"ch{i + 1}" for i in keep]
        scale = microvolt_scale([channels[i]["unit"] for i in keep], labels, str(path))
    else:
        keep = list(range(n_channels))
        labels = [f"ch{i + 1}" for i in keep]
        scale = np.ones(n_channels)
    data = np.ascontiguousarray(values[:, keep], dtype=np.float32)
    if np.any(scale != 1.0):
        data = (data.astype(np.float64) * scale).astype(np.float32)

    events = _xdf_events(path, streams, timestamps, xdf_rate(eeg))
    damage = tuple(
        s[DAMAGE_KEY]
        for s in streams
        if DAMAGE_KEY in s and (s is eeg or xdf_info(s, "channel_format") == "string")
    )
    return Recording(data, xdf_rate(eeg), tuple(labels), events, timestamps, str(path), run, damage)


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
    return marker_samples(path, markers, timestamps, rate)


def marker_samples(
    path: Path, markers: dict, timestamps: np.ndarray, rate: float
) -> tuple[tuple[int, str], ...]:
    """The markers of the pyxdf string stream ``markers`` at the nearest sample of the EEG
    stamped ``timestamps (n,)`` (ties to the earlier one), in time order. A marker farther
    from every sample than half a period (plus the gap rule's tolerance) is dropped with a
    warning: outside the EEG, or inside a dropout, where the nearest sample is a cue's wrong
    place (the samples after the gap would have been trained on as its trial)."""
    times = np.asarray(markers["time_stamps"], dtype=np.float64)
    labels = [
        str(v[0] if isinstance(v, list | tuple) else v).strip() for v in markers["time_series"]
    ]
    if times.size == 0:
        return ()
    if timestamps.size == 1:
        nearest = np.zeros(times.shape, dtype=np.int64)
    else:
        right = np.clip(np.searchsorted(timestamps, times), 1, timestamps.size - 1)
        left = right - 1
        closer = np.abs(timestamps[right] - times) < np.abs(times - timestamps[left])
        nearest = np.where(closer, right, left)
    distance = np.abs(timestamps[nearest] - times)
    outside = (times < timestamps[0]) | (times > timestamps[-1])
    half = 0.5 / rate
    kept = np.where(outside, distance <= half, distance <= half + _GAP_TOLERANCE_S)
    for reason, dropped in (
        ("outside the EEG stream's time span", ~kept & outside),
        ("inside a dropout of the EEG (no sample near them)", ~kept & ~outside),
    ):
        if dropped.any():
            log.warning("%s: %d marker(s) %s dropped", path, int(dropped.sum()), reason)
    events = [(int(nearest[i]), labels[i]) for i in np.flatnonzero(kept)]
    return tuple(sorted(events, key=lambda e: e[0]))
