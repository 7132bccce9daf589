"""Recorded sessions out to community formats: BIDS-EEG through mne-bids (:mod:`.bids`),
with the app's own outlets (predictions, latency, electrode weights) as a derivative.

Recordings are read through :mod:`bci_app.io`; nothing here knows about the live pipeline.
"""

from bci_app.export.bids import (
    APP_STREAM_KINDS,
    DERIVATIVE_NAME,
    BidsExportError,
    BidsResult,
    export_bids,
    read_bids_session,
)

__all__ = [
    "APP_STREAM_KINDS",
    "DERIVATIVE_NAME",
    "BidsExportError",
    "BidsResult",
    "export_bids",
    "read_bids_session",
]
