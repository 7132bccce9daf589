"""Reading a recording file (EDF/BDF/FIF through MNE, XDF through pyxdf) into one
:class:`~bci_app.io.recording.Recording`.

EDF/BDF/FIF annotation -> sample: ``floor((onset_s - raw.first_time) * rate + 0.5)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

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


def load_recording(path: str | Path) -> Recording:
    """Read an EDF/BDF/FIF (via MNE) or XDF (via pyxdf) file into a :class:`Recording`.

    Raises :class:`RecordingError` for a missing file, an unsupported extension, a truncated or
    corrupt file, or a file without usable EEG.
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
        return load_xdf(path, run)
    return _load_mne(path, ext, run)


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
    return Recording(data, rate, labels, events_sorted, None, str(path), run)
