"""``bci-app evaluate``: per-trial accuracy of a checkpoint on recordings."""

from __future__ import annotations

import argparse
from pathlib import Path

from bci_app.cli._common import add_strict_argument, metrics_lines, print_json


def speller_lines(metrics: dict) -> list[str]:
    """A P300 checkpoint's evaluation in words: characters against repetitions, dynamic
    stopping, target detection per flash."""
    characters = metrics["characters"]
    by_r = characters["accuracy_by_repetitions"]
    itr = characters["itr_bits_per_min_by_repetitions"]
    lines = [
        f"{characters['n_characters']} characters ({characters['truth']}); chance "
        f"{characters['chance']:.3f}; flash every {characters['flash_soa_s']:g} s",
        "character accuracy by repetitions: "
        + ", ".join(
            f"{r}: {v:.2f}" + (f" ({itr[r]:.1f} bits/min)" if itr[r] is not None else "")
            for r, v in by_r.items()
            if v is not None
        ),
        f"spelled with all repetitions: {characters['spelled'][str(len(by_r))]}",
    ]
    dynamic = characters["dynamic_stopping"]
    if dynamic["accuracy"] is not None:
        lines.append(
            f"dynamic stopping (posterior >= {dynamic['stop_posterior']:g}): accuracy "
            f"{dynamic['accuracy']:.2f} after {dynamic['mean_repetitions']:.1f} repetitions on "
            f"average, {dynamic['itr_bits_per_min']:.1f} bits/min"
        )
    flashes = metrics.get("flashes") or {}
    if flashes:
        lines.append(
            f"target detection per flash: balanced accuracy {flashes['balanced_accuracy']:.3f}, "
            f"AUC {flashes.get('auc', float('nan')):.3f} on {flashes['n_trials']} flashes"
        )
    return lines


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
    if "characters" in metrics:
        print("\n".join(speller_lines(metrics)))
        if args.json:
            print_json(metrics)
        return 0
    print("\n".join(metrics_lines(metrics)))
    if metrics.get("accuracy_by_window_s"):
        print(
            "accuracy by data length: "
            + ", ".join(
                f"{k} s {v:.2f} ({metrics['itr_bits_per_min_by_window_s'][k]:.1f} bits/min)"
                for k, v in metrics["accuracy_by_window_s"].items()
                if v is not None
            )
        )
    print("confusion (rows true, columns predicted; " + ", ".join(metrics["classes"]) + "):")
    for row in metrics["confusion"]:
        print("  " + " ".join(f"{v:4d}" for v in row))
    if args.json:
        print_json(metrics)
    return 0
