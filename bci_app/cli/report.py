"""``bci-app report``: a session report (``mne.Report``, one self-contained HTML file) of a
recording with cue markers (or the P300 speller's flash markers), optionally with a trained
model."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from bci_app.cli._common import add_strict_argument, load_app_config, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="session report (HTML): ERD/ERS maps, band-power topomaps, decoding, data quality; "
        "for the P300 speller: ERPs, their topomaps, characters against repetitions",
    )
    parser.add_argument("file", help="EDF/BDF/FIF/XDF recording with cue (or flash) markers")
    parser.add_argument("--out", required=True, help="the HTML file to write (overwritten)")
    parser.add_argument(
        "--model", help="checkpoint folder to score on the file (default: fit a quick decoder)"
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        help="event label to class name, e.g. T1:hands T2:feet (default: the model's class map, "
        "else every cue marker of the file)",
    )
    parser.add_argument(
        "--decoder",
        choices=["csp-lda", "riemann", "mdm"],
        help="without --model: the decoder fitted on the file and cross-validated on blocks of "
        "its trials (default: csp-lda for two classes, riemann for more)",
    )
    parser.add_argument(
        "--config",
        help="without --model: config YAML with the dsp and window settings (default: the app's, "
        "notch on the mains frequency found)",
    )
    parser.add_argument("--trial-start", type=float, default=0.0, help="s after the cue")
    parser.add_argument("--trial-stop", type=float, default=4.0, help="s after the cue")
    parser.add_argument(
        "--json", action="store_true", help='last line: {"out", "seconds", "sections", ...}'
    )
    add_strict_argument(parser)
    parser.set_defaults(func=cmd_report)
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    from bci_app.io import load_recording

    config = load_app_config(args.config) if args.config else None
    started = time.perf_counter()
    recording = load_recording(args.file, args.strict)  # a bad path fails before torch loads
    loaded = time.perf_counter() - started
    from bci_app.calibrate.training import valid_cue_events
    from bci_app.report import write_report

    # A calibration's own markers (bci-app:...) are not cues, and an interrupted trial's cue
    # is left out, as for training on it.
    recording = valid_cue_events(recording)
    summary = write_report(
        recording,
        Path(args.out),
        model_dir=args.model,
        classes=args.classes,
        config=config,
        trial_s=(args.trial_start, args.trial_stop),
        decoder=args.decoder,
    )
    # The render time counts reading the file too (not Python importing the libraries).
    summary = dataclasses.replace(
        summary,
        seconds=round(summary.seconds + loaded, 2),
        stage_seconds={**summary.stage_seconds, "load": round(loaded, 3)},
    )
    print(
        f"wrote {summary.out} in {summary.seconds:.1f} s: "
        + ", ".join(f"{n} {c}" for c, n in summary.trials.items())
        + " trials"
    )
    accuracy = "-" if summary.accuracy is None else f"{summary.accuracy:.3f}"
    print(f"decoder {summary.decoder}: per-trial accuracy {accuracy}")
    for note in summary.quality:
        print(f"quality: {note}")
    if args.json:
        print_json(summary.to_dict())
    return 0
