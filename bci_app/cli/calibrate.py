"""``bci-app calibrate``: cue paradigm with markers, recording, training, online feedback; the
session report (``report.html``) and, with ``--bids-root``, the recording exported as BIDS-EEG."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bci_app.cli._common import (
    add_paradigm_arguments,
    fold_count,
    load_app_config,
    paradigm_timings,
    print_json,
)
from bci_app.config import DECODER_CHOICES
from bci_app.errors import InvalidArgument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate", help="cue paradigm with markers, recording, training, online feedback"
    )
    parser.add_argument("--classes", nargs="+", required=True, help="class names (at least 2)")
    parser.add_argument("--trials", type=int, required=True, help="valid trials per class")
    parser.add_argument("--config", help="config YAML (no stream configured: the simulator)")
    parser.add_argument("--out", help="folder for the recordings and the model (default: dated)")
    add_paradigm_arguments(parser)
    parser.add_argument(
        "--feedback-trials", type=int, help="online feedback trials per class (default: --trials)"
    )
    parser.add_argument(
        "--decoder",
        default="auto",
        choices=DECODER_CHOICES,
        help="auto (default): the best on this calibration alone, ensembles included",
    )
    parser.add_argument("--epochs", type=int, default=30, help="network training epochs")
    parser.add_argument(
        "--cv", type=fold_count, default=5, help="cross-validation folds (>= 2) for the report"
    )
    parser.add_argument(
        "--auto", action="store_true", help="go on to feedback by itself and close at the end"
    )
    parser.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="do not write the session report (report.html next to the model)",
    )
    bids = parser.add_argument_group(
        "BIDS export", "after training, calibration.xdf into a BIDS-EEG dataset (mne-bids)"
    )
    bids.add_argument("--bids-root", metavar="DIR", help="root of the BIDS dataset (new or raw)")
    bids.add_argument("--bids-subject", help="subject label, letters and digits (default: 01)")
    bids.add_argument("--bids-session", help="session label, letters and digits (default: none)")
    bids.add_argument("--bids-task", help="task label, letters and digits (default: calibration)")
    parser.add_argument("--json", action="store_true", help="last line: summary as JSON")
    parser.set_defaults(func=cmd_calibrate)
    return parser


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bci_app.calibrate.outputs import check_bids_target
    from bci_app.calibrate.settings import (
        DEFAULT_BIDS_SUBJECT,
        DEFAULT_BIDS_TASK,
        CalibrationSettings,
    )

    config = load_app_config(args.config)
    out_dir = Path(args.out or time.strftime("calibration-%Y%m%d-%H%M%S"))
    for name in ("calibration.xdf", "feedback.xdf"):
        if (out_dir / name).exists():
            raise InvalidArgument(
                f"{out_dir / name} exists; choose another --out folder (recordings are never "
                "overwritten)"
            )
    subject = args.bids_subject or DEFAULT_BIDS_SUBJECT
    task = args.bids_task or DEFAULT_BIDS_TASK
    # Before the session, not after it: a bad label or a taken name costs no recording.
    if args.bids_root is not None:
        check_bids_target(args.bids_root, subject, args.bids_session, task)
    settings = CalibrationSettings(
        classes=tuple(args.classes),
        trials_per_class=args.trials,
        out_dir=out_dir,
        timings=paradigm_timings(args),
        seed=args.seed,
        feedback_trials=args.trials if args.feedback_trials is None else args.feedback_trials,
        epochs=args.epochs,
        cv_folds=args.cv,
        decoder=args.decoder,
        auto_feedback=args.auto,
        close_when_done=args.auto,
        report=args.report,
        bids_root=None if args.bids_root is None else Path(args.bids_root),
        bids_subject=subject,
        bids_session=args.bids_session,
        bids_task=task,
    )
    from bci_app.gui.calibration import run_calibration

    summary = run_calibration(config, settings)
    training = summary.get("training") or {}
    if training:
        print(
            f"model {training['checkpoint']}: cross-validated accuracy "
            f"{training['cv_accuracy']:.3f} on {training['n_trials']} trials "
            f"(chance {training['chance']:.3f}, 95% threshold {training['chance_95']:.3f})"
        )
    feedback = summary.get("feedback") or {}
    if feedback.get("online_accuracy") is not None:
        print(
            f"online accuracy {feedback['online_accuracy']:.3f} on "
            f"{feedback['online_trials']} feedback trials"
        )
    if summary.get("report_path"):
        print(f"session report: {summary['report_path']}")
    if summary.get("bids_path"):
        print(f"BIDS: {summary['bids_path']} (dataset {summary['bids']['root']})")
    for warning in summary.get("warnings") or ():
        print(f"bci-app calibrate: warning: {warning}", file=sys.stderr)
    if summary.get("error"):
        print(f"bci-app calibrate: error: {summary['error']}", file=sys.stderr)
    if args.json:
        print_json(summary)
    return 1 if summary.get("error") else 0
