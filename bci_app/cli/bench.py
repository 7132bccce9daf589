"""``bci-app bench WHAT``: the benchmarks that print figures (acquisition, latency, gui, replay,
decoding, faults, multihost)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bci_app.cli._common import positive_float

CASE_S = 20.0
FAULTS_S = 600.0  # ten minutes of fault cycles (about 75 s each)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="benchmarks that print figures")
    parser.add_argument(
        "what",
        choices=[
            "acquisition",
            "latency",
            "gui",
            "replay",
            "decoding",
            "paradigms",
            "faults",
            "multihost",
        ],
    )
    parser.add_argument(
        "--device", nargs="+", choices=["cpu", "cuda"], help="latency: devices (default: all)"
    )
    parser.add_argument(
        "--duration",
        type=positive_float,
        help=f"seconds per case (default {CASE_S:g}); faults: seconds in all (default "
        f"{FAULTS_S:g})",
    )
    parser.add_argument(
        "--no-realtime",
        action="store_true",
        help="acquisition: our threads at normal priority (default: scheduling.realtime_priority)",
    )
    decoding = parser.add_argument_group("decoding (leave one run out on EEGMMIDB)")
    decoding.add_argument("--data", type=Path, help="folder of subject folders (default: shared)")
    decoding.add_argument("--subject", default="S001")
    decoding.add_argument(
        "--tasks", nargs="+", choices=["imagined_hands_vs_feet", "imagined_left_vs_right"]
    )
    decoding.add_argument("--methods", nargs="+", help="ours to run (default: all and auto)")
    decoding.add_argument("--epochs", type=int, help="network epochs (default: the recipe's)")
    decoding.add_argument(
        "--ablation", action="store_true", help="add the SE recipe with each choice taken back"
    )
    decoding.add_argument(
        "--timing",
        action="store_true",
        help="add training seconds on 45 trials (se, riemann, auto)",
    )
    paradigms = parser.add_argument_group("paradigms (P300 and SSVEP on the shared files)")
    paradigms.add_argument(
        "--paradigms", nargs="+", choices=["p300", "ssvep"], default=["p300", "ssvep"]
    )
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    parser.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "faults":
        from bci_app.bench.faults import main as bench_faults

        return bench_faults(duration=args.duration or FAULTS_S, as_json=args.json)
    args.duration = args.duration or CASE_S
    if args.what == "acquisition":
        from bci_app.bench.acquisition import main as bench_acquisition

        return bench_acquisition(
            duration=args.duration, as_json=args.json, realtime=not args.no_realtime
        )
    if args.what == "multihost":
        from bci_app.bench.multihost import main as bench_multihost

        return bench_multihost(duration=args.duration, as_json=args.json)
    if args.what == "latency":
        from bci_app.bench.latency import main as bench_latency

        return bench_latency(duration=args.duration, as_json=args.json, devices=args.device)
    if args.what == "gui":
        from bci_app.gui.bench import main as bench_gui

        return bench_gui(duration=args.duration, as_json=args.json)
    if args.what == "replay":
        from bci_app.bench.replay import main as bench_replay

        return bench_replay(duration=args.duration, as_json=args.json)
    if args.what == "decoding":
        from bci_app.bench.decoding import DATA
        from bci_app.bench.decoding import main as bench_decoding

        return bench_decoding(
            data=args.data or DATA,
            subject=args.subject,
            tasks=args.tasks,
            methods=args.methods,
            epochs=args.epochs,
            as_json=args.json,
            ablation=args.ablation,
            timing=args.timing,
        )
    if args.what == "paradigms":
        from bci_app.bench.paradigms import main as bench_paradigms

        methods = None if args.methods is None else tuple(args.methods)
        return bench_paradigms(
            tuple(args.paradigms), methods=methods, epochs=args.epochs, as_json=args.json
        )
    raise SystemExit(f"unknown benchmark {args.what!r}")
