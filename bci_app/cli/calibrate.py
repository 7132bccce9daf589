"""``bci-app calibrate``: cue paradigm with markers, recording, training, online feedback; the
session report (``report.html``) and, with ``--bids-root``, the recording exported as BIDS-EEG.
``--paradigm p300 --copy TEXT``: copy spelling on the P300 speller, training, free spelling."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bci_app.cli._common import (
    add_paradigm_arguments,
    add_speller_arguments,
    fold_count,
    load_app_config,
    paradigm_timings,
    print_json,
    speller_settings,
)
from bci_app.config import DECODER_CHOICES, with_paradigm
from bci_app.errors import InvalidArgument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "calibrate", help="cue paradigm with markers, recording, training, online feedback"
    )
    parser.add_argument(
        "--paradigm",
        choices=("mi", "p300"),
        default="mi",
        help="mi (default): motor imagery cues; p300: copy spelling on the speller (--copy)",
    )
    parser.add_argument(
        "--classes", nargs="+", help="motor imagery: class names (at least 2; required)"
    )
    parser.add_argument("--trials", type=int, help="motor imagery: valid trials per class")
    speller = parser.add_argument_group(
        "P300 speller (--paradigm p300)",
        "copy spelling of --copy TEXT, training, then --feedback-trials characters of free "
        "spelling (default: as many as TEXT has)",
    )
    speller.add_argument("--copy", metavar="TEXT", help="the characters to copy (required)")
    add_speller_arguments(speller)
    parser.add_argument("--config", help="config YAML (no stream configured: the simulator)")
    parser.add_argument("--out", help="folder for the recordings and the model (default: dated)")
    add_paradigm_arguments(parser)
    parser.add_argument(
        "--feedback-trials",
        type=int,
        help="online feedback trials per class (default: --trials); p300: free spelling "
        "characters (0: none)",
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
    if args.paradigm == "p300":
        from bci_app.train.erp import ERP_CLASSES

        config = with_paradigm(config, "p300", keep_set_keys=args.config is not None)
        if args.classes or args.trials is not None:
            raise InvalidArgument(
                "a P300 calibration's trials are the characters of --copy TEXT (target and "
                "non-target flashes); leave out --classes and --trials"
            )
        if not args.copy:
            raise InvalidArgument("--paradigm p300 copy-spells a text: give it with --copy TEXT")
        speller = speller_settings(args, config, args.copy, None, args.seed)
        classes, trials = ERP_CLASSES, len(speller.text)
    else:
        if args.copy:
            raise InvalidArgument("--copy belongs to --paradigm p300 (the speller)")
        if not args.classes or args.trials is None:
            raise InvalidArgument(
                "a motor imagery calibration needs --classes (at least 2) and --trials"
            )
        speller, classes, trials = None, args.classes, args.trials
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
        classes=tuple(classes),
        trials_per_class=trials,
        out_dir=out_dir,
        timings=paradigm_timings(args),
        seed=args.seed,
        feedback_trials=trials if args.feedback_trials is None else args.feedback_trials,
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
        paradigm=args.paradigm,
        speller=speller,
    )
    from bci_app.gui.calibration import CalibrationWindow, run_calibration
    from bci_app.gui.speller_calibration import SpellerCalibrationWindow

    window = SpellerCalibrationWindow if args.paradigm == "p300" else CalibrationWindow
    summary = run_calibration(config, settings, window)
    training = summary.get("training") or {}
    if training.get("auc") is not None and args.paradigm == "p300":
        print(
            f"model {training['checkpoint']}: target flashes cross-validated AUC "
            f"{training['auc']:.3f} on {training['n_trials']} flashes (chance 0.5)"
        )
    elif training.get("cv_accuracy") is not None:
        print(
            f"model {training['checkpoint']}: cross-validated accuracy "
            f"{training['cv_accuracy']:.3f} on {training['n_trials']} trials "
            f"(chance {training['chance']:.3f}, 95% threshold {training['chance_95']:.3f})"
        )
    feedback = summary.get("feedback") or {}
    if feedback.get("spelled") is not None:
        print(f"free spelling: {feedback['spelled']!r}")
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
