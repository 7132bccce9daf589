"""Reading a recording file (EDF/BDF/FIF through MNE, XDF through pyxdf) into one
:class:`~bci_app.io.recording.Recording`.

EDF/BDF/FIF annotation -> sample: ``floor((onset_s - raw.first_time) * rate + 0.5)``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from bci_app.io.damage import StreamDamage, edf_declared_seconds, report_damage
from bci_app.io.labels import canonical_label
from bci_app.io.recording import Recording, RecordingError
from bci_app.io.xdf import XDF_EXTENSIONS, load_xdf

__all__ = ["SUPPORTED_EXTENSIONS", "file_format", "load_recording"]

log = logging.getLogger(__name__)

#: File name endings :func:`load_recording` reads (case-insensitive).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".edf", ".bdf", ".fif", ".fif.gz", *XDF_EXTENSIONS)


def file_format(path: Path) -> str:
    """The supported ending of ``path`` (``'.fif.gz'`` before ``'.gz'``), else its suffix."""
    name = path.name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def load_recording(path: str | Path, strict: bool = False) -> Recording:
    """Read an EDF/BDF/FIF (via MNE) or XDF (via pyxdf) file into a :class:`Recording`.

    A file read in part (an XDF cut short or with corrupt chunks, an EDF/BDF shorter than its
    header declares) gives what was recovered, with one warning per damaged stream in
    ``Recording.damage``; ``strict`` refuses it (:mod:`bci_app.io.damage`). Raises
    :class:`RecordingError` for a missing file, an unsupported extension, an unreadable file,
    or a file without usable EEG.
    """
    path = Path(path)
    ext = file_format(path)
    if ext not in SUPPORTED_EXTENSIONS:
        raise RecordingError(
            f"{path}: unsupported file type {ext or '(no extension)'!r}; supported: "
            f"{', '.join(SUPPORTED_EXTENSIONS)} (convert the file, e.g. with MNE, to one of them)"
        )
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise RecordingError(f"{path}: the file {what}; check the path")
    run = path.name[: len(path.name) - len(ext)]
    if ext in XDF_EXTENSIONS:
        return load_xdf(path, run, strict)
    return _load_mne(path, ext, run, strict)


def _load_mne(path: Path, ext: str, run: str, strict: bool) -> Recording:
    import mne

    readers = {
        ".edf": mne.io.read_raw_edf,
        ".bdf": mne.io.read_raw_bdf,
        ".fif": mne.io.read_raw_fif,
        ".fif.gz": mne.io.read_raw_fif,
    }
    try:
        with warnings.catch_warnings():
            # a short EDF/BDF is measured against its header below, in the app's own words
            warnings.filterwarnings("ignore", message="Number of records from the header")
            warnings.filterwarnings("ignore", message=".*annotation.*outside the data range")
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
    events = [(int(s), str(d)) for s, d in zip(samples, raw.annotations.description, strict=True)]
    inside = [e for e in events if 0 <= e[0] < data.shape[0]]
    if len(inside) < len(events):
        log.warning(
            "%s: %d event(s) outside the %d samples of data dropped",
            path,
            len(events) - len(inside),
            data.shape[0],
        )
    events_sorted = tuple(sorted(inside, key=lambda e: e[0]))
    damage = report_damage(_edf_damage(path, ext, rate, data.shape[0], len(inside)), strict)
    return Recording(
        data, rate, labels, events_sorted, None, str(path), run, damage, raw.info["meas_date"]
    )


def _edf_damage(
    path: Path, ext: str, rate: float, n_samples: int, n_events: int
) -> list[StreamDamage]:
    """The EEG of an EDF/BDF that holds fewer samples than its header declares (the recorder
    did not finish it, or the copy was cut): what MNE recovered and what is lost."""
    if ext not in (".edf", ".bdf"):
        return []
    declared_s = edf_declared_seconds(path)
    if declared_s is None:
        reason = "its header does not count its data records: the recorder did not finish it"
        lost = None
    else:
        lost = round(declared_s * rate) - n_samples
        if lost <= 0:
            return []
        reason = f"the file is shorter than the {declared_s:g} s its header declares"
    return [StreamDamage(path, "EEG", reason, n_samples, rate, lost, markers=n_events)]
