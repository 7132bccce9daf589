"""Session reports: one self-contained HTML file (``mne.Report``) per recording with cue
markers: ERD/ERS time-frequency maps at C3/Cz/C4, mu and beta band-power topomaps per class,
the decoder's per-trial accuracy, confusion matrix, ITR and accuracy against time since the cue,
its electrode weights, and data-quality notes. :func:`write_report` makes one (``bci-app
report``; the calibration calls it after a session). For the P300 speller (a P300 model, or a
file with flash markers) it makes the P300 report instead (:mod:`bci_app.report.erp`).
"""

from bci_app.report.build import SECTIONS, ReportSummary, write_report
from bci_app.report.cues import ReportError
from bci_app.report.erp import ERP_SECTIONS

__all__ = ["ERP_SECTIONS", "SECTIONS", "ReportError", "ReportSummary", "write_report"]
