"""Recordings in and out: EDF/BDF/FIF/XDF files as one :class:`Recording` (files, xdf), the
streams of a session for replay (session), channel labels and units (labels), scalp positions
(montage) and the one builder of LSL stream descriptions (lslinfo).

Nothing here knows about the live pipeline; everything above reads recordings through here.
"""

from bci_app.io.files import SUPPORTED_EXTENSIONS, load_recording
from bci_app.io.labels import canonical_label, label_key
from bci_app.io.recording import Recording, RecordingError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "Recording",
    "RecordingError",
    "canonical_label",
    "label_key",
    "load_recording",
]
