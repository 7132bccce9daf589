"""``bci-app evaluate``: per-trial accuracy of a checkpoint on recordings."""

from __future__ import annotations

import argparse
from pathlib import Path

from bci_app.cli._common import add_strict_argument, metrics_lines, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="per-trial accuracy of a checkpoint on recordings"
    )
    parser.add_argument("checkpoint", help="checkpoint folder")
    parser.add_argument("files", nargs="+", help="EDF/BDF/FIF/XDF recordings with cue markers")
    parser.add_argument("--json", action="store_true", help="last line: metrics as JSON")
    add_strict_argument(parser)
    parser.set_defaults(func=cmd_evaluate)
    return parser


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bci_app.train.commands import evaluate_command

    metrics = evaluate_command(Path(args.checkpoint), args.files, args.strict)
    print("\n".join(metrics_lines(metrics)))
    print("confusion (rows true, columns predicted; " + ", ".join(metrics["classes"]) + "):")
    for row in metrics["confusion"]:
        print("  " + " ".join(f"{v:4d}" for v in row))
    if args.json:
        print_json(metrics)
    return 0
