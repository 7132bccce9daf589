"""Training data: recordings from EDF/BDF/FIF/XDF files and trial windows cut from them.

Offline windows are produced by the online code itself: each recording is fed, in order and
without gaps, through a raw :class:`RingBuffer` into one :class:`DspStage` (causal filters over
the continuous recording, then the :class:`WindowCutter` grid counted from the first sample), so
a window used for training is the window the live app would cut from the same samples.

Conventions: signals are ``(n_samples, n_channels)`` float32 microvolts; event positions are
sample indices into ``Recording.data``; trial bounds are seconds relative to the cue.

Alignment and rounding (see :func:`extract_trials`):

* EDF/BDF/FIF annotation -> sample: ``floor((onset_s - raw.first_time) * rate + 0.5)``.
* XDF marker -> sample: the EEG sample whose timestamp is nearest (ties go to the earlier one);
  markers more than half a sample period outside the EEG stream's span are dropped.
* Stream sample ``c`` -> model-rate position ``c * up / down`` (the resampler's exact ratio;
  model sample ``n`` sits at stream time ``n / model_rate``). A trial spans model samples
  ``[lo, hi)`` with ``lo = floor(c * up / down + trial_start_s * model_rate + 0.5)`` and ``hi``
  likewise from ``trial_stop_s``; its windows are the grid windows ``[k * hop, k * hop +
  length)`` with ``lo <= k * hop`` and ``k * hop + length <= hi``.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bci_app.config import AppConfig, HealthConfig
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import Window
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Recording",
    "RecordingError",
    "TrialWindows",
    "canonical_label",
    "extract_trials",
    "feed_recording",
    "load_recording",
    "parse_class_map",
    "read_xdf_streams",
    "select_columns",
    "trial_window_seqs",
    "trials_per_class",
]

log = logging.getLogger(__name__)

#: File name endings :func:`load_recording` reads (case-insensitive).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".fif", ".fif.gz", ".xdf", ".xdfz")

# Raw samples written to the ring per DspStage.process() call (in units of the stage's own
# 0.5 s read size, so its internal chunking is the same as for one whole-recording call).
_BLOCK_READS = 64

# Timestamp jump (beyond one period) that counts as a gap: the live inlet's default.
_GAP_TOLERANCE_S = HealthConfig().gap_tolerance

# Channel unit strings (lower case) -> factor to microvolts.
_UNIT_TO_UV: dict[str, float] = {
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "uv": 1.0,
    "µv": 1.0,
    "μv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nv": 1e-3,
    "nanovolt": 1e-3,
    "nanovolts": 1e-3,
}

# 10-10 / 10-20 labels (upper case): row prefix + number or Z. Mirrors the montage grammar.
_LABEL_RE = re.compile(r"^(NZ|FP|AF|FC|FT|CP|TP|PO|F|C|T|P|O|I)(Z|\d{1,2})$")
_EEG_PREFIX_RE = re.compile(r"^EEG[\s_-]+", re.IGNORECASE)


class RecordingError(ValueError):
    """A recording cannot be read or used; the message names the file and how to fix it."""


# --------------------------------------------------------------------------------------------
# Recordings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Recording:
    """One continuous recording.

    ``data``: ``(n_samples, n_channels)`` float32 µV. ``rate_hz``: nominal sample rate.
    ``labels``: canonical channel labels. ``events``: ``(sample_index, label)`` in time order.
    ``timestamps``: ``(n_samples,)`` float64 LSL seconds (XDF) or None. ``source``: file path.
    ``run``: short run name (file stem).
    """

    data: np.ndarray
    rate_hz: float
    labels: tuple[str, ...]
    events: tuple[tuple[int, str], ...]
    timestamps: np.ndarray | None
    source: str
    run: str

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(
                f"{self.source}: data must be (n_samples, n_channels), got {self.data.shape}"
            )
        if len(self.labels) != self.data.shape[1]:
            raise ValueError(
                f"{self.source}: {len(self.labels)} labels for {self.data.shape[1]} channels"
            )
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(
                f"{self.source}: rate_hz must be a positive number, got {self.rate_hz}"
            )
        if self.timestamps is not None and self.timestamps.shape != (self.data.shape[0],):
            raise ValueError(
                f"{self.source}: {self.timestamps.shape[0]} timestamps for "
                f"{self.data.shape[0]} samples"
            )

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz


def canonical_label(label: str) -> str:
    """10-10 capitalisation of a channel label: ``'Fc5.'`` -> ``'FC5'``, ``'Cz..'`` -> ``'Cz'``,
    ``'fp1'`` -> ``'Fp1'``, ``'EEG Afz'`` -> ``'AFz'``. Other labels come back stripped of
    padding dots and spaces, otherwise unchanged."""
    text = _EEG_PREFIX_RE.sub("", label.strip()).strip(" .")
    match = _LABEL_RE.match(text.upper())
    if match is None:
        return text
    prefix, number = match.groups()
    prefix = {"FP": "Fp", "NZ": "Nz"}.get(prefix, prefix)
    return prefix + ("z" if number == "Z" else number)


def _file_format(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def load_recording(path: str | Path) -> Recording:
    """Read an EDF/BDF/FIF (via MNE) or XDF (via pyxdf) file into a :class:`Recording`.

    Raises :class:`RecordingError` for a missing file, an unsupported extension, a truncated or
    corrupt file, or a file without usable EEG.
    """
    path = Path(path)
    ext = _file_format(path)
    if ext not in SUPPORTED_EXTENSIONS:
        raise RecordingError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: "
            f"{', '.join(SUPPORTED_EXTENSIONS)} (convert the file, e.g. with MNE, to one of them)"
        )
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise RecordingError(f"{path}: the file {what}; check the path")
    run = path.name[: len(path.name) - len(ext)]
    if ext in (".xdf", ".xdfz"):
        return _load_xdf(path, run)
    return _load_mne(path, ext, run)


# -- EDF / BDF / FIF ---------------------------------------------------------------------------


def _load_mne(path: Path, ext: str, run: str) -> Recording:
    import mne

    readers = {
        ".edf": mne.io.read_raw_edf,
        ".bdf": mne.io.read_raw_bdf,
        ".fif": mne.io.read_raw_fif,
        ".fif.gz": mne.io.read_raw_fif,
    }
    try:
        raw = readers[ext](path, preload=True, verbose=False)
    except Exception as exc:
        raise RecordingError(
            f"{path}: cannot be read as {ext.lstrip('.').upper()} ({type(exc).__name__}: {exc}); "
            "the file is truncated, corrupt or not of that format - copy or export it again"
        ) from exc
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise RecordingError(
            f"{path}: no EEG channels (channel types: {sorted(set(raw.get_channel_types()))}); "
            "set the EEG channel types in the file"
        )
    rate = float(raw.info["sfreq"])
    data = np.ascontiguousarray(raw.get_data(picks=picks, units="uV").T, dtype=np.float32)
    labels = tuple(canonical_label(raw.ch_names[i]) for i in picks)
    # Annotation onsets count from the measurement start; the data from first_samp.
    onsets = np.asarray(raw.annotations.onset, dtype=np.float64) - raw.first_time
    samples = np.floor(onsets * rate + 0.5).astype(np.int64)
    events = _keep_inside(
        path,
        [(int(s), str(d)) for s, d in zip(samples, raw.annotations.description, strict=True)],
        data.shape[0],
    )
    return Recording(data, rate, labels, events, None, str(path), run)


def _keep_inside(path: Path, events: list[tuple[int, str]], n: int) -> tuple[tuple[int, str], ...]:
    inside = [e for e in events if 0 <= e[0] < n]
    if len(inside) < len(events):
        log.warning(
            "%s: %d event(s) outside the %d samples of data dropped",
            path,
            len(events) - len(inside),
            n,
        )
    return tuple(sorted(inside, key=lambda e: e[0]))


# -- XDF -------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def xdf_info(stream: dict, key: str, default: str = "") -> str:
    value = stream["info"].get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return default if value is None else str(value)


def describe_xdf_streams(streams: list[dict]) -> str:
    return (
        "; ".join(
            f"{xdf_info(s, 'name')!r} (type {xdf_info(s, 'type')!r}, "
            f"{xdf_info(s, 'channel_format')}, {xdf_info(s, 'nominal_srate')} Hz)"
            for s in streams
        )
        or "none"
    )


def xdf_rate(stream: dict) -> float:
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


def read_xdf_streams(path: Path, synchronize_clocks: bool = True) -> list[dict]:
    """All streams of an XDF file as pyxdf returns them (timestamps not dejittered).

    Raises :class:`RecordingError` when the file is not XDF, cannot be parsed, or pyxdf reports
    a truncated or corrupt chunk.
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
        # Dejittering is left to the callers: pyxdf's own breaks only at > 1 s and > 500
        # samples, so it would smear a shorter dropout over the whole segment.
        streams, _ = pyxdf.load_xdf(
            str(path), dejitter_timestamps=False, synchronize_clocks=synchronize_clocks
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


def _load_xdf(path: Path, run: str) -> Recording:
    streams = read_xdf_streams(path)
    numeric = [s for s in streams if xdf_info(s, "channel_format") != "string" and xdf_rate(s) > 0]
    if not numeric:
        raise RecordingError(
            f"{path}: no numeric stream with a nominal sample rate (EEG) in the file; streams: "
            f"{describe_xdf_streams(streams)}. Record the EEG stream as well"
        )
    typed = [s for s in numeric if xdf_info(s, "type").lower() == "eeg"]
    candidates = typed or numeric
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
    timestamps = _dejitter(np.asarray(eeg["time_stamps"], dtype=np.float64), xdf_rate(eeg))
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
            unit = channels[i]["unit"].lower()
            if unit in _UNIT_TO_UV:
                scale[j] = _UNIT_TO_UV[unit]
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


def _breaks(timestamps: np.ndarray, rate: float, tolerance_s: float) -> np.ndarray:
    """Indices of samples after a timestamp jump, by the live inlet's rule: a step beyond one
    period plus ``tolerance_s``, or backwards by more than ``tolerance_s``."""
    steps = np.diff(timestamps)
    return np.flatnonzero((steps > 1.0 / rate + tolerance_s) | (steps < -tolerance_s)) + 1


def _dejitter(timestamps: np.ndarray, rate: float) -> np.ndarray:
    """Least-squares line through the timestamps of each run between gaps (seconds)."""
    out = timestamps.copy()
    bounds = [0, *_breaks(timestamps, rate, _GAP_TOLERANCE_S).tolist(), timestamps.size]
    for first, stop in zip(bounds[:-1], bounds[1:], strict=True):
        if stop - first < 2:
            continue
        index = np.arange(stop - first, dtype=np.float64)
        slope, intercept = np.polyfit(index, timestamps[first:stop], 1)
        out[first:stop] = intercept + slope * index
    return out


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


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


def parse_class_map(items: Sequence[str]) -> dict[str, str]:
    """``["T1:hands", "T2:feet"]`` -> ``{"T1": "hands", "T2": "feet"}`` (event label -> class).

    Split at the last ``:`` (class names cannot hold one). Several labels may share a class;
    the class order is the order in which class names first appear. Raises ValueError for
    items without ``LABEL:CLASS``, empty parts or a label given twice.
    """
    if isinstance(items, str):
        items = items.split()
    mapping: dict[str, str] = {}
    for item in items:
        label, sep, name = str(item).rpartition(":")
        label, name = label.strip(), name.strip()
        if not sep or not label or not name:
            raise ValueError(
                f"class item {item!r} is not LABEL:CLASS; write e.g. T1:hands T2:feet "
                "(event label, colon, class name)"
            )
        if label in mapping:
            raise ValueError(
                f"event label {label!r} is given twice ({label}:{mapping[label]} and {item}); "
                "map each label to one class"
            )
        mapping[label] = name
    if not mapping:
        raise ValueError("no classes given; write e.g. T1:hands T2:feet")
    return mapping


# --------------------------------------------------------------------------------------------
# Trial windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TrialWindows:
    """Model-ready windows of cued trials.

    Per window: ``x (n_windows, n_channels, n_samples)`` float32 µV (channels first),
    ``y`` int64 class index into ``classes``, ``trial`` int64 trial id, ``run`` int64 index into
    ``runs``, ``start`` int64 model-rate index of the window's first sample in its run.
    Per trial (indexed by trial id): ``trial_classes``, ``trial_runs``, ``trial_cues`` (cue
    sample index in the recording's data), ``trial_flagged`` (windows skipped: gap / non-finite).
    ``labels``: channel labels; ``rate_hz``: model rate; ``runs``: run names.

    :meth:`subset` keeps trial ids and the per-trial tables as they are, so ids stay valid
    across subsets; :func:`trials_per_class` counts only trials that have windows.
    """

    x: np.ndarray
    y: np.ndarray
    trial: np.ndarray
    run: np.ndarray
    start: np.ndarray
    classes: tuple[str, ...]
    labels: tuple[str, ...]
    rate_hz: float
    trial_classes: np.ndarray
    trial_runs: np.ndarray
    trial_cues: np.ndarray
    trial_flagged: np.ndarray
    runs: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_trials(self) -> int:
        """Number of trials that have windows here."""
        return int(np.unique(self.trial).size)

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> TrialWindows:
        """Windows selected by a boolean mask ``(n_windows,)`` or integer indices."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool:
            if sel.shape != self.y.shape:
                raise ValueError(f"mask of shape {sel.shape} for {len(self)} windows")
        elif sel.size == 0:
            sel = sel.astype(np.intp)
        elif not np.issubdtype(sel.dtype, np.integer):
            raise ValueError(f"select windows with a boolean mask or integers, got {sel.dtype}")
        return TrialWindows(
            x=self.x[sel],
            y=self.y[sel],
            trial=self.trial[sel],
            run=self.run[sel],
            start=self.start[sel],
            classes=self.classes,
            labels=self.labels,
            rate_hz=self.rate_hz,
            trial_classes=self.trial_classes,
            trial_runs=self.trial_runs,
            trial_cues=self.trial_cues,
            trial_flagged=self.trial_flagged,
            runs=self.runs,
        )

    @classmethod
    def concatenate(cls, parts: Sequence[TrialWindows]) -> TrialWindows:
        """Join separately extracted sets (same classes, labels, rate and window shape); trial
        and run ids of later parts are shifted past those of earlier parts."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for part in parts[1:]:
            for what in ("classes", "labels", "rate_hz"):
                if getattr(part, what) != getattr(first, what):
                    raise ValueError(
                        f"cannot concatenate: {what} differ ({getattr(first, what)} vs "
                        f"{getattr(part, what)})"
                    )
            if part.x.shape[1:] != first.x.shape[1:]:
                raise ValueError(
                    f"cannot concatenate: window shapes differ ({first.x.shape[1:]} vs "
                    f"{part.x.shape[1:]})"
                )
        trial_offsets = np.cumsum([0] + [len(p.trial_classes) for p in parts[:-1]])
        run_offsets = np.cumsum([0] + [len(p.runs) for p in parts[:-1]])
        return cls(
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            trial=np.concatenate([p.trial + o for p, o in zip(parts, trial_offsets, strict=True)]),
            run=np.concatenate([p.run + o for p, o in zip(parts, run_offsets, strict=True)]),
            start=np.concatenate([p.start for p in parts]),
            classes=first.classes,
            labels=first.labels,
            rate_hz=first.rate_hz,
            trial_classes=np.concatenate([p.trial_classes for p in parts]),
            trial_runs=np.concatenate(
                [p.trial_runs + o for p, o in zip(parts, run_offsets, strict=True)]
            ),
            trial_cues=np.concatenate([p.trial_cues for p in parts]),
            trial_flagged=np.concatenate([p.trial_flagged for p in parts]),
            runs=tuple(r for p in parts for r in p.runs),
        )

    def summary(self) -> str:
        """One line per run: trials (windows) per class, and flagged windows skipped."""
        lines = []
        present = np.unique(self.trial)
        for r, name in enumerate(self.runs):
            ids = present[self.trial_runs[present] == r]
            parts = []
            for c, cls_name in enumerate(self.classes):
                trials = ids[self.trial_classes[ids] == c]
                n_win = int(np.isin(self.trial, trials).sum())
                parts.append(f"{cls_name} {trials.size} trials ({n_win} windows)")
            flagged = int(self.trial_flagged[self.trial_runs == r].sum())
            lines.append(f"{name}: {', '.join(parts)}; {flagged} flagged windows skipped")
        return "\n".join(lines)


def trials_per_class(tw: TrialWindows) -> dict[str, int]:
    """Number of trials (with at least one window in ``tw``) per class, in class order."""
    ids = np.unique(tw.trial)
    counts = np.bincount(tw.trial_classes[ids], minlength=len(tw.classes))
    return {name: int(counts[i]) for i, name in enumerate(tw.classes)}


@dataclass
class _Trial:
    cue: int  # stream sample index of the cue
    label: str
    class_index: int
    first_seq: int
    last_seq: int
    span_s: tuple[float, float]
    windows: list[Window]
    flagged: int = 0


def _channel_columns(recording: Recording, wanted: Sequence[str]) -> np.ndarray:
    """Column indices of ``wanted`` labels (case-insensitive, canonicalised) in ``recording``."""
    lookup: dict[str, int] = {}
    for i, label in enumerate(recording.labels):
        lookup.setdefault(canonical_label(label).lower(), i)
    missing = [w for w in wanted if canonical_label(w).lower() not in lookup]
    if missing:
        raise RecordingError(
            f"{recording.source}: no channel(s) {', '.join(missing)}; its channels are "
            f"{', '.join(recording.labels)}. Fix the channel list (channels.pick / --channels) "
            "or leave those recordings out"
        )
    return np.array([lookup[canonical_label(w).lower()] for w in wanted], dtype=np.intp)


def select_columns(recording: Recording, pick: Sequence[str] | None) -> np.ndarray:
    """Column indices of the ``pick`` labels (all columns when None), as the live inlet picks."""
    if pick is None:
        return np.arange(len(recording.labels), dtype=np.intp)
    return _channel_columns(recording, pick)


def gap_flags(recording: Recording, tolerance_s: float) -> np.ndarray:
    """FLAG_GAP where the timestamps jump as the inlet would flag them (period + tolerance)."""
    flags = np.zeros(recording.n_samples, dtype=np.uint8)
    ts = recording.timestamps
    if ts is None or ts.size < 2:
        return flags
    jumps = _breaks(ts, recording.rate_hz, tolerance_s)
    flags[jumps] |= FLAG_GAP
    if jumps.size:
        log.warning(
            "%s: %d timestamp gap(s); windows across them are skipped", recording.source, jumps.size
        )
    return flags


def trial_window_seqs(
    stage: DspStage, cue: int, trial_start_s: float, trial_stop_s: float
) -> tuple[int, int]:
    """First and last sequence number of ``stage``'s windows that lie fully inside the trial
    ``[cue + trial_start_s, cue + trial_stop_s)`` s; ``cue`` is a stream sample index counted
    from the stage's first sample (rounding: see the module docstring). ``first > last`` when no
    window fits."""
    up, down = stage.preprocessor.resampler.up, stage.preprocessor.resampler.down
    rate, hop, length = stage.rate_hz, stage.cutter.hop, stage.cutter.length
    position = cue * up / down  # model-rate index of the cue
    lo = math.floor(position + trial_start_s * rate + 0.5)
    hi = math.floor(position + trial_stop_s * rate + 0.5)
    return max(0, -(-lo // hop)), (hi - length) // hop


def _run_windows(
    recording: Recording,
    columns: np.ndarray,
    class_map: dict[str, str],
    classes: tuple[str, ...],
    config: AppConfig,
    trial_start_s: float,
    trial_stop_s: float,
) -> tuple[list[_Trial], float]:
    """Feed one recording through a fresh DspStage; returns its trials and the model rate."""
    n = recording.n_samples
    read = max(1, round(0.5 * recording.rate_hz))  # DspStage's read size
    block = read * _BLOCK_READS
    raw = RingBuffer(max(1, min(n, block)), len(columns))
    stage = DspStage(raw, recording.rate_hz, config)
    rate = stage.rate_hz

    trials: list[_Trial] = []
    wanted: dict[int, list[_Trial]] = {}
    for cue, label in recording.events:
        if label not in class_map:
            continue
        first, last = trial_window_seqs(stage, cue, trial_start_s, trial_stop_s)
        cue_s = cue / recording.rate_hz
        trial = _Trial(
            cue,
            label,
            classes.index(class_map[label]),
            first,
            last,
            (cue_s + trial_start_s, cue_s + trial_stop_s),
            [],
        )
        trials.append(trial)
        for seq in range(first, last + 1):
            wanted.setdefault(seq, []).append(trial)
    for a, b in zip(trials[:-1], trials[1:], strict=True):
        if b.first_seq <= a.last_seq:
            log.warning(
                "%s: trials at samples %d and %d overlap; their shared windows go to both",
                recording.source,
                a.cue,
                b.cue,
            )
    if not wanted:
        return trials, rate

    last_needed = max(wanted)
    for windows in feed_recording(recording, columns, stage, config):
        for window in windows:
            for trial in wanted.get(window.seq, ()):
                if window.usable:
                    trial.windows.append(window)
                else:
                    trial.flagged += 1
        if stage.cutter.next_seq > last_needed:
            break
    return trials, rate


def feed_recording(
    recording: Recording, columns: np.ndarray, stage: DspStage, config: AppConfig
) -> Iterator[list[Window]]:
    """Write the ``columns`` of ``recording`` in order into ``stage.raw_ring`` (as much as it
    holds at a time, gap flags by the inlet's rule, NaN/Inf flagged) and yield the windows
    each block completes."""
    n = recording.n_samples
    block = stage.raw_ring.capacity
    timestamps = (
        recording.timestamps
        if recording.timestamps is not None
        else np.arange(n, dtype=np.float64) / recording.rate_hz
    )
    flags = gap_flags(recording, config.health.gap_tolerance)
    for start in range(0, n, block):
        stop = min(n, start + block)
        chunk = np.take(recording.data[start:stop], columns, axis=1).astype(np.float32, copy=False)
        chunk_flags = flags[start:stop].copy()
        chunk_flags[~np.isfinite(chunk).all(axis=1)] |= FLAG_NONFINITE
        stage.raw_ring.write(chunk, timestamps[start:stop], chunk_flags, arrival=0.0)
        yield stage.process(now=0.0)


def extract_trials(
    recordings: Sequence[Recording],
    class_map: dict[str, str],
    config: AppConfig,
    trial_start_s: float = 0.0,
    trial_stop_s: float = 4.0,
    channels: Sequence[str] | None = None,
) -> TrialWindows:
    """Cut the online-grid windows of every cued trial out of ``recordings``.

    Each recording runs through its own :class:`DspStage` built from ``config`` (filters,
    reference, model_rate, windows.length / windows.hop). A trial opens at every event whose
    label is a key of ``class_map`` and spans ``[cue + trial_start_s, cue + trial_stop_s)``
    seconds; its windows are those of the online grid that lie fully inside (rounding: see the
    module docstring). Windows flagged gap / non-finite are skipped and counted per trial;
    trials left without windows are dropped with a warning.

    ``channels`` (labels, case-insensitive; default ``config.channels.pick``, else the first
    recording's channels) are picked, in that order, before the DSP, as the live inlet does.
    Raises :class:`RecordingError` (a ValueError) for missing channels or when no trial has a
    window, ValueError for bad arguments.
    """
    if not recordings:
        raise ValueError("no recordings given")
    if not class_map:
        raise ValueError("empty class map; give e.g. T1:hands T2:feet")
    if not (math.isfinite(trial_start_s) and math.isfinite(trial_stop_s)):
        raise ValueError("trial_start_s and trial_stop_s must be finite seconds")
    if trial_stop_s - trial_start_s < config.windows.length:
        raise ValueError(
            f"the trial span [{trial_start_s:g}, {trial_stop_s:g}) s is shorter than one window "
            f"({config.windows.length:g} s); widen the span or shorten windows.length"
        )
    classes = tuple(dict.fromkeys(class_map.values()))
    pick = channels if channels is not None else config.channels.pick
    wanted = list(pick) if pick is not None else list(recordings[0].labels)
    if len({canonical_label(w).lower() for w in wanted}) != len(wanted):
        raise ValueError(f"channel list {wanted} names a channel twice")

    xs: list[np.ndarray] = []
    ys: list[int] = []
    trial_ids: list[int] = []
    run_ids: list[int] = []
    starts: list[int] = []
    trial_classes: list[int] = []
    trial_runs: list[int] = []
    trial_cues: list[int] = []
    trial_flagged: list[int] = []
    labels: tuple[str, ...] | None = None
    model_rate: float | None = None
    seen_labels: set[str] = set()
    for run_index, recording in enumerate(recordings):
        columns = _channel_columns(recording, wanted)
        run_labels = tuple(recording.labels[i] for i in columns)
        labels = labels or run_labels
        if pick is None and len(columns) < len(recording.labels):
            extra = sorted(set(recording.labels) - set(run_labels))
            log.warning(
                "%s: channels %s are not in the first recording; ignored", recording.source, extra
            )
        seen_labels.update(label for _, label in recording.events)
        trials, rate = _run_windows(
            recording, columns, class_map, classes, config, trial_start_s, trial_stop_s
        )
        if model_rate is not None and rate != model_rate:
            raise RecordingError(
                f"{recording.source}: model rate {rate:g} Hz differs from {model_rate:g} Hz of "
                "the first recording; set model_rate in the config"
            )
        model_rate = rate
        for trial in trials:
            if not trial.windows:
                if trial.flagged:
                    why = f"all {trial.flagged} windows are flagged (gap / non-finite samples)"
                elif trial.first_seq > trial.last_seq:
                    why = "no window of the hop grid fits its span; widen the trial span"
                else:
                    why = (
                        f"its span {trial.span_s[0]:.2f}-{trial.span_s[1]:.2f} s is not inside "
                        f"the {recording.duration_s:.2f} s of data"
                    )
                log.warning(
                    "%s: trial %s at sample %d dropped: %s",
                    recording.source,
                    trial.label,
                    trial.cue,
                    why,
                )
                continue
            tid = len(trial_classes)
            trial_classes.append(trial.class_index)
            trial_runs.append(run_index)
            trial_cues.append(trial.cue)
            trial_flagged.append(trial.flagged)
            for window in trial.windows:
                xs.append(window.data)
                ys.append(trial.class_index)
                trial_ids.append(tid)
                run_ids.append(run_index)
                starts.append(window.start_index)

    missing = [label for label in class_map if label not in seen_labels]
    if missing:
        log.warning(
            "event label(s) %s of the class map occur in no recording (labels found: %s)",
            missing,
            sorted(seen_labels),
        )
    if not xs:
        raise RecordingError(
            f"no trial windows in {', '.join(r.source for r in recordings)}: class map "
            f"{class_map} vs event labels found {sorted(seen_labels)}; fix the class map or the "
            "trial span"
        )
    assert labels is not None and model_rate is not None
    n_samples = xs[0].shape[0]
    x = np.empty((len(xs), len(labels), n_samples), dtype=np.float32)
    for i, data in enumerate(xs):
        x[i] = data.T
    tw = TrialWindows(
        x=x,
        y=np.asarray(ys, dtype=np.int64),
        trial=np.asarray(trial_ids, dtype=np.int64),
        run=np.asarray(run_ids, dtype=np.int64),
        start=np.asarray(starts, dtype=np.int64),
        classes=classes,
        labels=labels,
        rate_hz=float(model_rate),
        trial_classes=np.asarray(trial_classes, dtype=np.int64),
        trial_runs=np.asarray(trial_runs, dtype=np.int64),
        trial_cues=np.asarray(trial_cues, dtype=np.int64),
        trial_flagged=np.asarray(trial_flagged, dtype=np.int64),
        runs=tuple(r.run for r in recordings),
    )
    log.info("trial windows per run:\n%s", tw.summary())
    return tw
