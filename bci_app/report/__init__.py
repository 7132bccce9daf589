"""Session reports: one self-contained HTML file (``mne.Report``) per recording with cue
markers: ERD/ERS time-frequency maps at C3/Cz/C4, mu and beta band-power topomaps per class,
the decoder's per-trial accuracy, confusion matrix, ITR and accuracy against time since the cue,
its electrode weights, and data-quality notes. :func:`write_report` makes one (``bci-app
report``; the calibration calls it after a session).
"""

from bci_app.report.build import SECTIONS, ReportSummary, write_report
from bci_app.report.cues import ReportError

__all__ = ["SECTIONS", "ReportError", "ReportSummary", "write_report"]
