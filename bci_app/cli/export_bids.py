"""``bci-app export-bids``: a recorded session (XDF, or EDF/BDF/FIF) as a BIDS-EEG dataset
through mne-bids, with the app's outlets (predictions, latency) as ``derivatives/bci-app``."""

from __future__ import annotations

import argparse

from bci_app.cli._common import add_strict_argument, positive_float, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export-bids",
        help="write a recorded session as a BIDS-EEG dataset (mne-bids)",
        description="Write a session (XDF from `bci-app record` or LabRecorder; EDF/BDF/FIF) "
        "into a BIDS-EEG dataset: the EEG, channels.tsv, events.tsv with class names, the "
        "sidecar JSON, and the app's prediction and latency streams as derivatives/bci-app.",
    )
    parser.add_argument("file", metavar="FILE", help="the session: .xdf/.xdfz, .edf, .bdf, .fif")
    parser.add_argument("--root", required=True, metavar="DIR", help="root of the BIDS dataset")
    parser.add_argument("--subject", required=True, help="subject label (letters and digits)")
    parser.add_argument("--session", help="session label (letters and digits)")
    parser.add_argument("--task", default="bci", help="task label (default: bci)")
    parser.add_argument("--run", help="run index (a number)")
    parser.add_argument(
        "--stream", metavar="NAME", help="the EEG stream (name or source_id) of an XDF file "
        "that holds several",
    )  # fmt: skip
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="MARKER:CLASS",
        help="class names for events.tsv's trial_type, e.g. T1:hands T2:feet (default: the "
        "class map of --model, else of the model the session ran, else the markers as recorded)",
    )
    parser.add_argument(
        "--model", metavar="DIR", help="take the class names from this checkpoint's class map"
    )
    parser.add_argument(
        "--line-freq",
        type=positive_float,
        metavar="HZ",
        help="mains frequency for the sidecar (default: the config's filters.notch)",
    )
    parser.add_argument("--config", metavar="FILE", help="app config (for filters.notch)")
    parser.add_argument(
        "--reference", help="EEG reference for the sidecar, e.g. 'linked mastoids' (default: "
        "the stream description's, else n/a)",
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help="replace this recording's files in the dataset"
    )
    add_strict_argument(parser)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.set_defaults(func=cmd_export_bids)
    return parser


def cmd_export_bids(args: argparse.Namespace) -> int:
    from bci_app.cli._common import load_app_config
    from bci_app.export import DERIVATIVE_NAME, export_bids

    classes = None
    if args.classes:
        from bci_app.train.data import parse_class_map

        classes = parse_class_map(args.classes)
    elif args.model:
        classes = _model_classes(args.model)
    line_freq = args.line_freq
    if line_freq is None:
        line_freq = load_app_config(args.config).filters.notch
    result = export_bids(
        args.file,
        args.root,
        args.subject,
        session=args.session,
        task=args.task,
        run=args.run,
        stream=args.stream,
        classes=classes,
        line_freq=None if line_freq is None else float(line_freq),
        reference=args.reference,
        overwrite=args.overwrite,
        strict=args.strict,
    )
    print(
        f"wrote {result.bids_path.name} ({result.n_channels} channels, {result.duration_s:.1f} s "
        f"at {result.rate_hz:g} Hz from {result.stream!r}) into the BIDS dataset at {result.root}"
    )
    counts = ", ".join(f"{name} {n}" for name, n in sorted(result.trial_types.items()))
    print(f"events.tsv: {result.n_events} events" + (f" ({counts})" if counts else ""))
    if result.derivatives:
        print(f"derivatives/{DERIVATIVE_NAME}: " + ", ".join(p.name for p in result.derivatives))
    else:
        print(
            "no derivative written: the session holds no app outlets (predictions, latency); "
            "record them with `bci-app record` while the app runs"
        )
    for note in result.damage:
        print(f"warning: {note}")
    print(f"check it with: bids-validator-deno {result.root}")
    if args.json:
        print_json(result.to_json())
    return 0


def _model_classes(directory: str) -> dict[str, str]:
    """``training.class_map`` of the checkpoint at ``directory`` (marker -> class)."""
    from bci_app.errors import UserError
    from bci_app.nn.checkpoint import read_metadata

    class_map = read_metadata(directory).training.get("class_map")
    if not isinstance(class_map, dict) or not class_map:
        raise UserError(
            f"{directory}: the checkpoint records no training.class_map; give the class names "
            "with --classes, e.g. --classes T1:hands T2:feet"
        )
    return {str(k): str(v) for k, v in class_map.items()}
