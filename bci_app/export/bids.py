"""A recorded session as a BIDS-EEG dataset, written by mne-bids (``bci-app export-bids``).

What goes where:

* the EEG (BrainVision, float32 µV, written by mne-bids through pybv), ``channels.tsv`` and the
  ``*_eeg.json`` sidecar: ``PowerLineFrequency`` (``--line-freq``, default the config's notch),
  ``EEGReference`` (``--reference``, else the stream's ``desc/reference``), ``Manufacturer`` /
  ``ManufacturersModelName`` / ``DeviceSerialNumber`` from the stream's description (XDF meta-data
  keys ``manufacturer``, ``acquisition/model``, ...; without them the model name says which LSL
  stream it was), ``RecordingDuration`` (mne-bids);
* ``events.tsv`` from the marker stream: ``trial_type`` is the class name (``--classes T1:hands``,
  else the class map of the model the session ran, else the marker as recorded), ``value`` an
  integer code; ``events.json`` says which marker each class name came from;
* the app's own outlets recorded in the session (``<prefix>-predictions``, ``-latency``,
  ``-electrode-weights``; see :class:`bci_app.infer.outlets.PredictionOutlets`) as the
  derivative dataset ``derivatives/bci-app`` (``DatasetType`` derivative, ``GeneratedBy``
  bci-app): one ``*_desc-<kind>_events.tsv`` per stream (kind: predictions, latency, weights;
  one row per sample: ``onset`` in s from the first EEG sample, on the EEG's own sample clock,
  ``duration`` 0, ``lsl_time``, one column per channel, and ``predicted`` the class name) with a
  JSON sidecar describing the columns. BIDS events files, so the validator checks them without
  a ``.bidsignore``. A session without the outlets gets no derivative.

XDF input: the EEG stream is the one stream of type EEG (else the one regular numeric stream),
or the one ``stream=`` names; markers go to the nearest EEG sample, as
:func:`bci_app.io.xdf.load_xdf` places them. EDF/BDF/FIF input: read with
:func:`bci_app.io.load_recording` (EEG channels and annotations).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bci_app import __version__
from bci_app.config import HealthConfig
from bci_app.errors import UserError
from bci_app.io.files import load_recording
from bci_app.io.labels import canonical_label, microvolt_scale
from bci_app.io.recording import timestamp_breaks
from bci_app.io.xdf import (
    DAMAGE_KEY,
    XDF_EXTENSIONS,
    describe_xdf_streams,
    marker_samples,
    read_xdf_streams,
    xdf_channels,
    xdf_info,
    xdf_rate,
)

__all__ = [
    "APP_STREAM_KINDS",
    "DERIVATIVE_NAME",
    "AppStream",
    "BidsExportError",
    "BidsResult",
    "BidsSession",
    "check_bids_root",
    "check_label",
    "export_bids",
    "read_bids_session",
]

log = logging.getLogger(__name__)

#: Stream types of the app's outlets (:class:`bci_app.infer.outlets.PredictionOutlets`) -> the
#: ``desc`` of their derivative files. The status outlet (strings) gives the class map only.
APP_STREAM_KINDS: dict[str, str] = {
    "Predictions": "predictions",
    "Latency": "latency",
    "ElectrodeWeights": "weights",
}
_STATUS_TYPE = "Status"
#: ``trial_type`` of a join in the data file: the EEG dropped out (or its clock jumped) there.
JOIN_EVENT = "BAD_ACQ_SKIP"
#: Folder of the derivative dataset under ``ROOT/derivatives``.
DERIVATIVE_NAME = "bci-app"
DEFAULT_TASK = "bci"

# XDF channel types -> MNE channel types; the voltage ones are scaled to volts for MNE.
_CHANNEL_TYPES = {"eeg": "eeg", "eog": "eog", "ecg": "ecg", "emg": "emg", "misc": "misc"}
_VOLTAGE_TYPES = frozenset({"eeg", "eog", "ecg", "emg"})
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


class BidsExportError(UserError, ValueError):
    """An export that cannot go ahead as asked; the message names the problem and the fix."""


@dataclass(frozen=True, eq=False)
class AppStream:
    """One of the app's outlets as recorded; ``kind`` from :data:`APP_STREAM_KINDS`.

    ``values``: ``(n_samples, n_channels)`` float64; ``times``: ``(n_samples,)`` LSL seconds,
    clock-synchronised; ``worker``: its ``<bci_app>`` description (session_id, input, ...)."""

    kind: str
    name: str
    type: str
    source_id: str
    labels: tuple[str, ...]
    units: tuple[str, ...]
    times: np.ndarray
    values: np.ndarray
    worker: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BidsSession:
    """A recording ready for BIDS.

    ``data``: ``(n_samples, n_channels)`` float64, µV for voltage channels (``ch_types`` eeg,
    eog, ecg, emg), as recorded otherwise. ``events``: ``(sample_index, marker)`` in time order.
    ``timestamps``: ``(n_samples,)`` LSL seconds of an XDF stream, else None. ``amplifier``: BIDS
    sidecar fields (Manufacturer, ManufacturersModelName, DeviceSerialNumber). ``class_map``:
    marker -> class of the model the session ran (from its status outlet), if recorded.
    """

    source: str
    data: np.ndarray
    rate_hz: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    events: tuple[tuple[int, str], ...]
    timestamps: np.ndarray | None
    stream_name: str
    meas_date: datetime | None = None
    amplifier: dict[str, str] = field(default_factory=dict)
    reference: str | None = None
    app_streams: tuple[AppStream, ...] = ()
    class_map: dict[str, str] | None = None
    damage: tuple[str, ...] = ()

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    def joins(self) -> list[tuple[int, float]]:
        """Where the EEG stream dropped out or its clock jumped, by the live inlet's gap rule:
        ``(first sample after, seconds skipped)`` (negative: the clock went back). The file
        written joins the samples on either side."""
        if self.timestamps is None:
            return []
        breaks = timestamp_breaks(self.timestamps, self.rate_hz, HealthConfig().gap_tolerance)
        steps = self.timestamps[breaks] - self.timestamps[breaks - 1] - 1.0 / self.rate_hz
        return [(int(b), float(step)) for b, step in zip(breaks, steps, strict=True)]


@dataclass(frozen=True)
class BidsResult:
    """What :func:`export_bids` wrote: the dataset ``root``, the EEG file ``bids_path``, the
    number of events and their count per ``trial_type``, and the derivative files (TSVs)."""

    root: Path
    bids_path: Path
    stream: str
    n_channels: int
    n_samples: int
    rate_hz: float
    n_events: int
    trial_types: dict[str, int]
    derivatives: tuple[Path, ...]
    damage: tuple[str, ...] = ()

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.rate_hz

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "bids_path": str(self.bids_path),
            "stream": self.stream,
            "n_channels": self.n_channels,
            "n_samples": self.n_samples,
            "rate_hz": self.rate_hz,
            "duration_s": self.duration_s,
            "n_events": self.n_events,
            "trial_types": self.trial_types,
            "derivatives": [str(p) for p in self.derivatives],
            "damage": list(self.damage),
        }


# --------------------------------------------------------------------------------------------
# Reading


def read_bids_session(
    path: str | Path, stream: str | None = None, strict: bool = False
) -> BidsSession:
    """Read an XDF (EEG stream ``stream``, its markers, the app's outlets) or EDF/BDF/FIF file.

    Raises :class:`~bci_app.io.RecordingError` for unreadable files and
    :class:`BidsExportError` when the EEG stream is missing or ambiguous.
    """
    path = Path(path)
    if path.name.lower().endswith(XDF_EXTENSIONS) and path.is_file():
        return _read_xdf(path, stream, strict)
    recording = load_recording(path, strict)  # every file problem, in the app's words
    if stream is not None:
        raise BidsExportError(
            f"{path}: --stream chooses among the streams of an XDF file; this file holds one "
            "set of EEG channels - leave --stream out"
        )
    n = len(recording.labels)
    return BidsSession(
        source=str(path),
        data=recording.data.astype(np.float64),
        rate_hz=recording.rate_hz,
        ch_names=_unique(recording.labels),
        ch_types=("eeg",) * n,
        events=recording.events,
        timestamps=None,
        stream_name=recording.run,
        meas_date=recording.meas_date,
        amplifier={"Manufacturer": "n/a", "ManufacturersModelName": "n/a"},
        damage=recording.damage,
    )


def _read_xdf(path: Path, name: str | None, strict: bool) -> BidsSession:
    streams = read_xdf_streams(path, dejitter=True, strict=strict)
    eeg = _pick_eeg(path, streams, name)
    values = np.asarray(eeg["time_series"], dtype=np.float64)
    timestamps = np.asarray(eeg["time_stamps"], dtype=np.float64)
    n_channels = values.shape[1]
    ch_names, ch_types, scale = _channel_table(path, xdf_channels(eeg, n_channels), n_channels)
    rate = xdf_rate(eeg)
    desc = _desc(eeg)
    stream_name = xdf_info(eeg, "name")
    return BidsSession(
        source=str(path),
        data=values * scale,
        rate_hz=rate,
        ch_names=ch_names,
        ch_types=ch_types,
        events=_marker_events(path, streams, timestamps, rate),
        timestamps=timestamps,
        stream_name=stream_name,
        meas_date=_xdf_datetime(path),
        amplifier=_amplifier(desc, stream_name, xdf_info(eeg, "source_id")),
        reference=_reference(desc),
        app_streams=tuple(_app_streams(streams)),
        class_map=_status_class_map(streams),
        damage=tuple(
            s[DAMAGE_KEY]
            for s in streams
            if DAMAGE_KEY in s and (s is eeg or xdf_info(s, "channel_format") == "string")
        ),
    )


def _pick_eeg(path: Path, streams: list[dict], name: str | None) -> dict:
    """The EEG stream: the one named ``name`` (name or source_id), else the one regular numeric
    stream of type EEG (else the one regular numeric stream) holding samples."""
    numeric = [s for s in streams if xdf_info(s, "channel_format") != "string" and xdf_rate(s) > 0]
    if name is not None:
        named = [s for s in streams if name in (xdf_info(s, "name"), xdf_info(s, "source_id"))]
        if not named:
            raise BidsExportError(
                f"{path}: no stream named {name!r}; its EEG candidates are "
                f"{describe_xdf_streams(numeric)}. Pass one of those names to --stream"
            )
        if len(named) > 1:
            raise BidsExportError(
                f"{path}: {len(named)} streams are named {name!r}; pass the source_id of one of "
                f"them to --stream instead ({', '.join(xdf_info(s, 'source_id') for s in named)})"
            )
        eeg = named[0]
        if eeg not in numeric:
            raise BidsExportError(
                f"{path}: stream {name!r} is not EEG (a regular numeric stream): "
                f"{describe_xdf_streams([eeg])}. Pass an EEG stream to --stream: "
                f"{describe_xdf_streams(numeric)}"
            )
        if len(eeg["time_stamps"]) == 0:
            raise BidsExportError(f"{path}: stream {name!r} holds no samples; nothing to export")
        return eeg
    typed = [s for s in numeric if xdf_info(s, "type").lower() == "eeg"]
    candidates = [s for s in typed or numeric if len(s["time_stamps"]) > 0]
    if not candidates:
        raise BidsExportError(
            f"{path}: no EEG stream with samples (a regular numeric stream, type EEG); streams: "
            f"{describe_xdf_streams(streams)}. Record the EEG stream as well"
        )
    if len(candidates) > 1:
        raise BidsExportError(
            f"{path}: several EEG streams: {describe_xdf_streams(candidates)}. Choose one with "
            "--stream NAME (export the others into another --run or --session)"
        )
    return candidates[0]


def _channel_table(
    path: Path, channels: list[dict[str, str]], n_channels: int
) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray]:
    """Names, MNE types and the factor to µV (voltage channels; 1 otherwise) of each channel.

    Channel types from the description (EEG when untyped; EEG for all when none says EEG, as the
    app reads them); a voltage channel without a known unit is taken as µV, the LSL convention.
    """
    if not channels:
        return (
            _unique(f"ch{i + 1}" for i in range(n_channels)),
            ("eeg",) * n_channels,
            np.ones(n_channels),
        )
    kinds = [c["type"].strip().lower() for c in channels]
    types = [_CHANNEL_TYPES.get(k, "misc") if k else "eeg" for k in kinds]
    if "eeg" not in kinds:
        types = ["eeg"] * n_channels
    names = _unique(canonical_label(c["label"]) or f"ch{i + 1}" for i, c in enumerate(channels))
    units = [c["unit"] if t in _VOLTAGE_TYPES else "" for t, c in zip(types, channels, strict=True)]
    return names, tuple(types), microvolt_scale(units, names, str(path))


def _unique(labels: Sequence[str] | Any) -> tuple[str, ...]:
    """``labels`` with repeats numbered (``Cz``, ``Cz-2``): BIDS and MNE need unique names."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        count = seen.get(label, 0) + 1
        seen[label] = count
        out.append(label if count == 1 else f"{label}-{count}")
    return tuple(out)


def _marker_events(
    path: Path, streams: list[dict], timestamps: np.ndarray, rate: float
) -> tuple[tuple[int, str], ...]:
    """Markers of the (type Markers preferred) string stream at the nearest EEG sample (see
    :func:`~bci_app.io.xdf.marker_samples`)."""
    strings = [
        s
        for s in streams
        if xdf_info(s, "channel_format") == "string" and xdf_info(s, "type") != _STATUS_TYPE
    ]
    typed = [s for s in strings if xdf_info(s, "type").lower() == "markers"]
    chosen = typed or strings
    if not chosen:
        log.warning("%s: no marker stream; events.tsv will be empty", path)
        return ()
    if len(chosen) > 1:
        log.warning("%s: several marker streams; using %r", path, xdf_info(chosen[0], "name"))
    return marker_samples(path, chosen[0], timestamps, rate)


def _desc(stream: dict) -> dict:
    desc = stream["info"].get("desc")
    return desc[0] if isinstance(desc, list) and desc and isinstance(desc[0], dict) else {}


def _desc_text(desc: Mapping, *keys: str) -> str | None:
    """The text at ``desc/keys[0]/keys[1]/...`` of a pyxdf-parsed tree, None when absent."""
    node: Any = desc
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        entries = node.get(key)
        node = entries[0] if isinstance(entries, list) and entries else None
    return node.strip() if isinstance(node, str) and node.strip() else None


def _first_text(desc: Mapping, paths: Sequence[tuple[str, ...]]) -> str | None:
    for keys in paths:
        text = _desc_text(desc, *keys)
        if text is not None:
            return text
    return None


def _amplifier(desc: Mapping, name: str, source_id: str) -> dict[str, str]:
    """BIDS amplifier fields from the XDF meta-data (``manufacturer``, ``acquisition/model``,
    ``amplifier/...``, ``serial_number``); without a model, the LSL stream's name and source_id."""
    places = ((), ("acquisition",), ("amplifier",), ("device",))
    manufacturer = _first_text(desc, [(*p, "manufacturer") for p in places])
    model = _first_text(desc, [(*p, k) for p in places for k in ("model", "name") if p])
    serial = _first_text(desc, [(*p, "serial_number") for p in places])
    fields = {
        "Manufacturer": manufacturer or "n/a",
        "ManufacturersModelName": model or f"n/a (LSL stream {name!r}, source_id {source_id!r})",
    }
    if serial is not None:
        fields["DeviceSerialNumber"] = serial
    return fields


def _reference(desc: Mapping) -> str | None:
    """``desc/reference``: its ``label``, or 'common average' (XDF EEG meta-data)."""
    label = _desc_text(desc, "reference", "label")
    if label is not None:
        return label
    if (_desc_text(desc, "reference", "common_average") or "").lower() == "true":
        return "common average"
    return None


def _xdf_datetime(path: Path) -> datetime | None:
    """The ``<datetime>`` of the XDF file header (the recorder's start, UTC), None if absent."""
    opener = gzip.open if path.name.lower().endswith(".xdfz") else open
    try:
        with opener(path, "rb") as f:
            if f.read(4) != b"XDF:":
                return None
            width = f.read(1)[0]
            length = int.from_bytes(f.read(width), "little")
            if int.from_bytes(f.read(2), "little") != 1:  # tag 1: FileHeader
                return None
            text = f.read(min(max(length - 2, 0), 1 << 16)).decode("utf-8", "replace")
    except (OSError, IndexError, EOFError):
        return None
    match = re.search(r"<datetime>\s*([^<]+?)\s*</datetime>", text)
    if match is None:
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(match.group(1), pattern).astimezone(timezone.utc)
        except ValueError:
            continue
    return None


def _app_streams(streams: list[dict]) -> list[AppStream]:
    out = []
    for s in streams:
        kind = APP_STREAM_KINDS.get(xdf_info(s, "type"))
        if kind is None or xdf_info(s, "channel_format") == "string":
            continue
        n_channels = int(xdf_info(s, "channel_count", "1"))
        channels = xdf_channels(s, n_channels)
        labels = [c["label"] for c in channels] or [f"ch{i + 1}" for i in range(n_channels)]
        units = [c["unit"] for c in channels] or [""] * n_channels
        values = np.asarray(s["time_series"], dtype=np.float64).reshape(-1, n_channels)
        worker = _desc(s).get("bci_app")
        worker_fields: dict[str, str] = {}
        if isinstance(worker, list) and worker and isinstance(worker[0], Mapping):
            worker_fields = {k: v for k in worker[0] if (v := _desc_text(worker[0], k))}
        out.append(
            AppStream(
                kind=kind,
                name=xdf_info(s, "name"),
                type=xdf_info(s, "type"),
                source_id=xdf_info(s, "source_id"),
                labels=_unique(labels),
                units=tuple(units),
                times=np.asarray(s["time_stamps"], dtype=np.float64),
                values=values,
                worker=worker_fields,
            )
        )
    return out


def _status_class_map(streams: list[dict]) -> dict[str, str] | None:
    """``training.class_map`` of the checkpoint the session's worker ran (the status outlet's
    ``bci_app/metadata``), None when not recorded."""
    for s in streams:
        if xdf_info(s, "type") != _STATUS_TYPE:
            continue
        text = _desc_text(_desc(s), "bci_app", "metadata")
        try:
            class_map = json.loads(text or "null")["training"]["class_map"]
        except (TypeError, KeyError, ValueError):
            continue
        if isinstance(class_map, dict) and class_map:
            return {str(k): str(v) for k, v in class_map.items()}
    return None


# --------------------------------------------------------------------------------------------
# Writing


def check_label(value: str | int | None, option: str, digits: bool = False) -> str | None:
    """A BIDS entity label (letters and digits; ``digits``: a run index), else
    :class:`BidsExportError` naming ``option`` and a label that would do."""
    if value is None:
        return None
    text = str(value)
    pattern = r"^[0-9]+$" if digits else _LABEL.pattern
    if re.match(pattern, text):
        return text
    if digits:
        raise BidsExportError(
            f"{option} {text!r}: a BIDS run is a number (e.g. {option} 1); use --session or "
            "--task for names"
        )
    fixed = re.sub(r"[^A-Za-z0-9]", "", text) or "01"
    raise BidsExportError(
        f"{option} {text!r}: BIDS labels hold letters and digits only (no '-', '_', spaces or "
        f"other characters); use e.g. {option} {fixed}"
    )


def export_bids(
    source: str | Path,
    root: str | Path,
    subject: str,
    *,
    session: str | None = None,
    task: str = DEFAULT_TASK,
    run: str | int | None = None,
    stream: str | None = None,
    classes: Mapping[str, str] | None = None,
    line_freq: float | None = 50.0,
    reference: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> BidsResult:
    """Write ``source`` (XDF, EDF, BDF, FIF) into the BIDS dataset at ``root`` as
    ``sub-<subject>[_ses-<session>]_task-<task>[_run-<run>]``, with the app's outlets as the
    ``derivatives/bci-app`` dataset.

    ``classes``: marker -> class name for ``trial_type`` (default: the session's model's class
    map, else the markers as they are). ``line_freq``: Hz, None for unknown. ``reference``: the
    EEG reference for the sidecar (default: the stream description's, else ``n/a``).
    ``overwrite``: replace this recording's files when they exist. Raises
    :class:`BidsExportError` for bad labels, a root that is not a BIDS dataset, files that exist
    without ``overwrite``, and :class:`~bci_app.io.RecordingError` for unreadable input.
    """
    import mne_bids

    subject_label = check_label(subject, "--subject")
    entities = {
        "subject": subject_label,
        "session": check_label(session, "--session"),
        "task": check_label(task, "--task"),
        "run": check_label(run, "--run", digits=True),
    }
    if line_freq is not None and not (math.isfinite(line_freq) and line_freq > 0):
        raise BidsExportError(f"--line-freq {line_freq}: give the mains frequency, 50 or 60 Hz")
    root = Path(root)
    bids_path = mne_bids.BIDSPath(
        **entities, root=root, datatype="eeg", suffix="eeg", extension=".vhdr"
    )
    _check_root(root, bids_path, overwrite)
    data = read_bids_session(source, stream, strict)
    markers = sorted({m for _, m in data.events})
    if classes and markers and not set(classes) & set(markers):
        raise BidsExportError(
            f"{source}: none of the --classes markers ({', '.join(classes)}) is in the "
            f"recording; its markers are {', '.join(markers)}. Map those, e.g. "
            f"--classes {markers[0]}:NAME"
        )
    class_map = dict(classes) if classes else (data.class_map or {})
    derivative_root = root / "derivatives" / DERIVATIVE_NAME
    derivative_base = mne_bids.BIDSPath(
        **entities, root=derivative_root, datatype="eeg", check=False
    )
    _check_derivatives(derivative_base, data.app_streams, overwrite)

    joins = data.joins()
    if joins:
        log.warning(
            "%s: the EEG stream has %d dropout(s) or clock jump(s) (%.2f s skipped); the data "
            "file joins the samples around each, marked %s in events.tsv",
            data.source, len(joins), sum(abs(seconds) for _, seconds in joins), JOIN_EVENT,
        )  # fmt: skip
    raw = _to_raw(data, class_map, line_freq, joins)
    mne_bids.make_dataset_description(
        path=root,
        name="bci-app EEG sessions",
        dataset_type="raw",
        generated_by=[_generated_by("export of recorded sessions (bci-app export-bids)")],
        overwrite=False,  # another subject or run joins the dataset as it is
        verbose="error",
    )
    with warnings.catch_warnings():
        # mne-bids says it converts (the input is not in a BIDS format): the expected case
        warnings.filterwarnings("ignore", message=".*[Cc]onverting data files to BrainVision")
        warnings.filterwarnings("ignore", message=".*[Ee]ncountered data in .* format")
        # pybv: a misc channel (trigger, ...) is stored as it is, without a voltage unit
        warnings.filterwarnings("ignore", message="Encountered unsupported non-voltage units")
        try:
            mne_bids.write_raw_bids(
                raw,
                bids_path,
                format="BrainVision",
                allow_preload=True,
                overwrite=overwrite,
                verbose="error",
            )
        except FileExistsError as exc:
            raise BidsExportError(
                f"{root}: {exc} Pass --overwrite to replace it, or choose another --subject, "
                "--session or --run"
            ) from None
    sidecar = {
        "EEGReference": reference or data.reference or "n/a",
        # mne-bids names the maker of the file format (BrainVision: Brain Products); the
        # amplifier's is what BIDS means, n/a when the recording does not say
        "Manufacturer": "n/a",
        **data.amplifier,
        # BIDS spells it MISCChannelCount (mne-bids writes MiscChannelCount as well)
        "MISCChannelCount": data.ch_types.count("misc"),
    }
    mne_bids.update_sidecar_json(
        bids_path.copy().update(extension=".json"), sidecar, verbose="error"
    )
    trial_types = _describe_events(bids_path, data.events, class_map, joins)
    derivatives = _write_derivatives(derivative_base, bids_path, data, overwrite)
    return BidsResult(
        root=root,
        bids_path=bids_path.fpath,
        stream=data.stream_name,
        n_channels=len(data.ch_names),
        n_samples=data.n_samples,
        rate_hz=data.rate_hz,
        n_events=len(data.events),
        trial_types=trial_types,
        derivatives=tuple(derivatives),
        damage=data.damage,
    )


def _generated_by(description: str) -> dict[str, str]:
    return {"Name": "bci-app", "Version": __version__, "Description": description}


def check_bids_root(root: str | Path, option: str = "--root") -> Path:
    """``root`` must be new, empty, or a raw BIDS dataset, else :class:`BidsExportError`
    naming ``option``; reads no recording and imports no MNE (a calibration checks it before
    its session). Returns it as a Path."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise BidsExportError(f"{option} {root} is a file; give a folder for the BIDS dataset")
    description = root / "dataset_description.json"
    if root.is_dir() and any(root.iterdir()) and not description.is_file():
        raise BidsExportError(
            f"{option} {root} is a folder that is not a BIDS dataset (no "
            "dataset_description.json); give a new or empty folder, or the root of a BIDS dataset"
        )
    if description.is_file():
        try:
            kind = json.loads(description.read_text(encoding="utf-8")).get("DatasetType", "raw")
        except (OSError, ValueError, AttributeError) as exc:
            raise BidsExportError(
                f"{description} cannot be read ({exc}); fix or remove it, or choose another "
                f"{option}"
            ) from None
        if kind != "raw":
            raise BidsExportError(
                f"{option} {root} is a BIDS {kind} dataset; raw recordings go into a raw "
                "dataset: give its root or a new folder"
            )
    return root


def _check_root(root: Path, bids_path: Any, overwrite: bool) -> None:
    """:func:`check_bids_root`, and this recording's file must be new unless ``overwrite``."""
    check_bids_root(root)
    if bids_path.fpath.exists() and not overwrite:
        raise BidsExportError(
            f"{bids_path.fpath} already exists in the dataset at {root}; pass --overwrite to "
            "replace this recording, or choose another --subject, --session or --run"
        )


def _to_raw(
    data: BidsSession,
    class_map: Mapping[str, str],
    line_freq: float | None,
    joins: Sequence[tuple[int, float]],
) -> Any:
    """An MNE RawArray in volts (voltage channels) with the events as annotations named by
    class, each of ``joins`` (:meth:`BidsSession.joins`) as :data:`JOIN_EVENT`, ``line_freq``
    and the measurement date set."""
    import mne

    info = mne.create_info(list(data.ch_names), data.rate_hz, list(data.ch_types), verbose=False)
    volts = np.array([1e-6 if t in _VOLTAGE_TYPES else 1.0 for t in data.ch_types])
    raw = mne.io.RawArray((data.data * volts).T, info, verbose=False)
    raw.info["line_freq"] = line_freq
    if data.meas_date is not None:
        raw.set_meas_date(data.meas_date)
    events = sorted([*data.events, *((b, JOIN_EVENT) for b, _ in joins)])
    if events:
        samples = np.array([s for s, _ in events], dtype=np.float64)
        names = [class_map.get(m, m) for _, m in events]
        raw.set_annotations(
            mne.Annotations(
                onset=samples / data.rate_hz,
                duration=np.zeros(len(names)),
                description=names,
                orig_time=raw.info["meas_date"],
            )
        )
    return raw


def _describe_events(
    bids_path: Any,
    events: Sequence[tuple[int, str]],
    class_map: Mapping[str, str],
    joins: Sequence[tuple[int, float]] = (),
) -> dict[str, int]:
    """Say in ``events.json`` which marker each ``trial_type`` comes from, and what a join
    (:data:`JOIN_EVENT`) is; the count per type."""
    import mne_bids

    counts: dict[str, int] = {}
    sources: dict[str, set[str]] = {}
    for _, marker in events:
        name = class_map.get(marker, marker)
        counts[name] = counts.get(name, 0) + 1
        sources.setdefault(name, set()).add(marker)
    if not events and not joins:
        return counts
    levels = {
        name: f"class {name!r} (marker {', '.join(sorted(markers))})"
        if name not in markers
        else f"marker {name!r} as recorded"
        for name, markers in sorted(sources.items())
    }
    if joins:
        counts[JOIN_EVENT] = len(joins)
        levels[JOIN_EVENT] = (
            "the EEG stream dropped out or its clock jumped here: the data file joins the "
            f"samples before and after ({sum(abs(s) for _, s in joins):.3f} s skipped in all); "
            "an epoch must not span it"
        )
    entries = {
        "trial_type": {
            "Description": "Class of the cue, from the session's marker stream",
            "Levels": levels,
        },
        "sample": {"Description": "Nearest EEG sample to the marker's timestamp (0-based)"},
    }
    events_json = bids_path.copy().update(suffix="events", extension=".json")
    if events_json.fpath.exists():
        mne_bids.update_sidecar_json(events_json, entries, verbose="error")
    else:
        events_json.fpath.write_text(json.dumps(entries, indent=4) + "\n", encoding="utf-8")
    return counts


# --------------------------------------------------------------------------------------------
# Derivative: the app's outlets


def _derivative_files(base: Any, streams: Sequence[AppStream]) -> list[tuple[AppStream, Path]]:
    """Each app stream's ``desc-<kind>_events.tsv``; several streams of one kind are
    numbered (``desc-predictions2``)."""
    kinds: dict[str, int] = {}
    for s in streams:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for s in streams:
        seen[s.kind] = seen.get(s.kind, 0) + 1
        desc = s.kind + (str(seen[s.kind]) if kinds[s.kind] > 1 else "")
        path = base.copy().update(suffix="events", description=desc, extension=".tsv").fpath
        out.append((s, path))
    return out


def _check_derivatives(base: Any, streams: Sequence[AppStream], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [p for _, p in _derivative_files(base, streams) if p.exists()]
    if existing:
        raise BidsExportError(
            f"{existing[0]} already exists; pass --overwrite to replace this recording's "
            "derivative files, or choose another --subject, --session or --run"
        )


def _write_derivatives(base: Any, raw_path: Any, data: BidsSession, overwrite: bool) -> list[Path]:
    """One events TSV + JSON per app stream, the derivative's dataset_description.json
    (linked to the raw dataset as ``raw``) and README."""
    import mne_bids

    if overwrite:  # files of this recording from an earlier export (maybe other streams)
        folder = base.copy().update(suffix=None, extension=None).directory
        prefix = base.copy().update(suffix=None, extension=None).basename + "_desc-"
        if folder.is_dir():
            for old in folder.glob(prefix + "*_events.*"):
                old.unlink()
    files = _derivative_files(base, data.app_streams)
    if not files:
        return []
    root = Path(base.root)
    mne_bids.make_dataset_description(
        path=root,
        name="bci-app online decoding",
        dataset_type="derivative",
        generated_by=[_generated_by("the app's outlets recorded in the session")],
        overwrite=True,
        verbose="error",
    )
    description_file = root / "dataset_description.json"
    description = json.loads(description_file.read_text(encoding="utf-8"))
    description["DatasetLinks"] = {"raw": "../../"}
    description_file.write_text(json.dumps(description, indent=4) + "\n", encoding="utf-8")
    readme = root / "README.md"
    if not readme.exists():
        readme.write_text(_DERIVATIVE_README, encoding="utf-8")
    written = []
    source = "bids:raw:" + raw_path.fpath.relative_to(raw_path.root).as_posix()
    for stream, path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        onsets = _onsets(stream.times, data)
        _write_tsv(path, stream, onsets)
        path.with_suffix(".json").write_text(
            json.dumps(_sidecar(stream, source), indent=4) + "\n", encoding="utf-8"
        )
        written.append(path)
    return written


_DERIVATIVE_README = """\
# bci-app online decoding

What bci-app decided while the session was recorded: its LSL outlets (predictions, per-stage
latency, electrode weights), one `desc-<kind>_events.tsv` per stream beside the raw
recording's path, one row per sample. `onset` counts seconds from the first EEG sample of the
raw recording; `lsl_time` is the LSL timestamp. Each file's JSON sidecar describes its columns
and names the raw file in `Sources`.
"""


def _onsets(times: np.ndarray, data: BidsSession) -> np.ndarray:
    """Seconds from the first EEG sample on the EEG's sample clock: LSL ``times`` placed between
    the EEG timestamps (so a gap in the EEG shifts them as it shifts the samples), extended at
    the nominal rate beyond either end."""
    stamps = data.timestamps
    if stamps is None or stamps.size < 2 or np.any(np.diff(stamps) <= 0):
        origin = 0.0 if stamps is None else float(stamps[0])
        return times - origin
    index = np.interp(times, stamps, np.arange(stamps.size, dtype=np.float64))
    before, after = times < stamps[0], times > stamps[-1]
    index[before] = (times[before] - stamps[0]) * data.rate_hz
    index[after] = stamps.size - 1 + (times[after] - stamps[-1]) * data.rate_hz
    return index / data.rate_hz


def _predicted(stream: AppStream) -> list[str] | None:
    """Class names of a predictions stream's ``class_index`` column (last channel)."""
    if stream.kind != "predictions" or stream.labels[-1] != "class_index":
        return None
    classes = stream.labels[:-1]
    out = []
    for value in stream.values[:, -1]:
        k = int(value) if math.isfinite(value) else -1
        out.append(classes[k] if 0 <= k < len(classes) else "n/a")
    return out


def _cell(value: float, fmt: str = ".7g") -> str:
    return format(float(value), fmt) if math.isfinite(value) else "n/a"


def _write_tsv(path: Path, stream: AppStream, onsets: np.ndarray) -> None:
    predicted = _predicted(stream)
    header = ["onset", "duration", "lsl_time", *stream.labels]
    header += ["predicted"] if predicted else []
    lines = ["\t".join(header)]
    for i in range(stream.times.size):
        cells = [_cell(onsets[i], ".6f"), "0", _cell(stream.times[i], ".6f")]
        cells += [_cell(v) for v in stream.values[i]]
        if predicted:
            cells.append(predicted[i])
        lines.append("\t".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_COLUMN_TEXT = {
    "predictions": "Probability of class {label!r}",
    "latency": "Latency of the pipeline stage {label!r} for this window",
    "weights": "Attention weight of electrode {label!r}",
}


def _sidecar(stream: AppStream, source: str) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "onset": {
            "Description": "Time of the window's newest EEG sample, from the first EEG sample "
            "of the raw recording (on its sample clock)",
            "Units": "s",
        },
        "duration": {"Description": "0: the value holds at that instant", "Units": "s"},
        "lsl_time": {
            "Description": "LSL timestamp of the sample (clock-synchronised)",
            "Units": "s",
        },
    }
    for label, unit in zip(stream.labels, stream.units, strict=True):
        if stream.kind == "predictions" and label == "class_index":
            columns[label] = {"Description": "Index of the predicted class (argmax)"}
            continue
        entry = {"Description": _COLUMN_TEXT[stream.kind].format(label=label)}
        if unit:
            entry["Units"] = unit
        columns[label] = entry
    if _predicted(stream) is not None:
        columns["predicted"] = {"Description": "Name of the predicted class"}
    return {
        "Description": f"bci-app outlet {stream.name!r} as recorded: one row per sample",
        "Sources": [source],
        "StreamName": stream.name,
        "StreamType": stream.type,
        "SourceId": stream.source_id,
        "BciApp": dict(stream.worker),
        **columns,
    }
