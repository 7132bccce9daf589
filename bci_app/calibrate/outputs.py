"""What a calibration leaves besides its model: the recording as BIDS-EEG and the session report.

Both are plain calls, free of Qt: the calibration window runs them in background calls once
``calibration.xdf`` is closed (the report once the model is trained too), and reads their
results on its own thread. A failure of either loses nothing: the recording and the model are
written before they start and neither touches them.

- :func:`check_bids_target` says before a session starts whether its export can go where it is
  asked to (labels, the dataset root, a recording of the same name already there), so that a
  typo costs no recorded session.
- :func:`export_calibration` writes ``calibration.xdf`` into a BIDS dataset; ``events.tsv``'s
  ``trial_type`` is the class name of each cue (the calibration's cue markers are the class
  names; a ``bci-app:invalid`` marker after a cue says that trial was interrupted).
- :func:`write_calibration_report` writes ``report.html`` with the freshly trained model, on
  the valid trials only (as training saw them).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bci_app.calibrate.settings import DEFAULT_BIDS_SUBJECT, DEFAULT_BIDS_TASK
from bci_app.export.bids import (
    BidsExportError,
    BidsResult,
    check_bids_root,
    check_label,
    export_bids,
)

if TYPE_CHECKING:
    from bci_app.report import ReportSummary

# The report (and training's marker rules) import torch and MNE: only when a report is written,
# so that `bci-app calibrate` checks its BIDS options in a second, before the session.

__all__ = [
    "bids_recording_path",
    "bids_summary",
    "check_bids_target",
    "export_calibration",
    "report_summary",
    "write_calibration_report",
]


def bids_recording_path(
    root: str | Path,
    subject: str = DEFAULT_BIDS_SUBJECT,
    session: str | None = None,
    task: str = DEFAULT_BIDS_TASK,
) -> Path:
    """The EEG file (BrainVision header) an export with these entities writes, as mne-bids
    names it: ``ROOT/sub-S[/ses-N]/eeg/sub-S[_ses-N]_task-T_eeg.vhdr``."""
    folder = Path(root) / f"sub-{subject}"
    stem = f"sub-{subject}"
    if session is not None:
        folder /= f"ses-{session}"
        stem += f"_ses-{session}"
    return folder / "eeg" / f"{stem}_task-{task}_eeg.vhdr"


def check_bids_target(
    root: str | Path,
    subject: str = DEFAULT_BIDS_SUBJECT,
    session: str | None = None,
    task: str = DEFAULT_BIDS_TASK,
) -> Path:
    """Raise :class:`BidsExportError` (naming the option to change) unless a calibration can be
    exported to the BIDS dataset at ``root`` with these labels: letters and digits only,
    ``root`` new, empty or a raw BIDS dataset, and no recording of the same subject, session
    and task there yet. Returns the EEG file the export will write. Reads no recording and
    imports no MNE, so it runs before a session starts."""
    check_label(subject, "--bids-subject")
    check_label(session, "--bids-session")
    check_label(task, "--bids-task")
    root = check_bids_root(root, "--bids-root")
    path = bids_recording_path(root, subject, session, task)
    if path.exists():
        raise BidsExportError(
            f"{path} already exists in the BIDS dataset at {root}; give this calibration another "
            "--bids-session (e.g. the next number), --bids-task or --bids-subject"
        )
    return path


def export_calibration(
    xdf_path: str | Path,
    root: str | Path,
    classes: Sequence[str],
    *,
    subject: str = DEFAULT_BIDS_SUBJECT,
    session: str | None = None,
    task: str = DEFAULT_BIDS_TASK,
    line_freq: float | None = None,
) -> BidsResult:
    """Export the calibration recording ``xdf_path`` into the BIDS dataset at ``root`` (see
    :func:`bci_app.export.export_bids`), its cues named by ``classes`` (the calibration's
    markers are the class names). ``line_freq``: the mains frequency for the sidecar (None:
    unknown). Raises :class:`BidsExportError` when the target is not usable (never
    overwrites) and :class:`~bci_app.io.RecordingError` for an unreadable recording."""
    check_bids_target(root, subject, session, task)
    return export_bids(
        xdf_path,
        root,
        subject,
        session=session,
        task=task,
        classes={c: c for c in classes},
        line_freq=line_freq,
    )


def write_calibration_report(
    xdf_path: str | Path,
    out_path: str | Path,
    classes: Sequence[str],
    model_dir: str | Path | None = None,
    *,
    imagery_s: float = 4.0,
) -> ReportSummary:
    """The session report of the calibration recording ``xdf_path`` at ``out_path`` (HTML),
    scoring the model at ``model_dir`` on its valid trials (interrupted ones left out, as in
    training); without a model, a decoder fitted on the file over ``(0, imagery_s)`` s after
    each cue. Raises what :func:`bci_app.report.write_report` raises."""
    from bci_app.calibrate.training import valid_cue_events
    from bci_app.io import load_recording
    from bci_app.report import write_report

    recording = valid_cue_events(load_recording(xdf_path))
    return write_report(
        recording,
        out_path,
        model_dir=model_dir,
        # the model's class map is the calibration's classes; without one, name them here
        classes=None if model_dir is not None else [f"{c}:{c}" for c in classes],
        trial_s=(0.0, imagery_s),
    )


def bids_summary(
    result: BidsResult, subject: str, session: str | None, task: str
) -> dict[str, Any]:
    """The summary's ``bids`` entry for an export: :meth:`BidsResult.to_json` and its labels."""
    return {
        **result.to_json(),
        "subject": subject,
        "session": session,
        "task": task,
        "error": None,
    }


def report_summary(summary: ReportSummary) -> dict[str, Any]:
    """The summary's ``report`` entry: where it is, how long it took, what it scored."""
    return {
        "path": str(summary.out),
        "seconds": summary.seconds,
        "decoder": summary.decoder,
        "accuracy": summary.accuracy,
        "trials": summary.trials,
        "quality": list(summary.quality),
        "error": None,
    }
