"""``bci-app gui`` (also ``bci-app`` alone): the window on the configured stream."""

from __future__ import annotations

import argparse

from bci_app.cli._common import positive_float


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("gui", help="the GUI on the configured stream (default command)")
    parser.add_argument("--config", help="config YAML (default: config.yaml of the app)")
    parser.add_argument("--model", help="checkpoint folder (default: config model.path or shipped)")
    parser.add_argument("--screenshot", help="save a PNG of the window after --duration s and exit")
    parser.add_argument("--duration", type=positive_float, help="seconds before the screenshot")
    parser.add_argument(
        "--attach",
        nargs="?",
        const="",
        metavar="PREFIX_OR_SESSION",
        help="view a worker running elsewhere (bci-app run --headless) by its outlets' prefix or "
        "session id, without a pipeline here; alone: the only worker visible",
    )
    parser.set_defaults(func=cmd_gui)
    return parser


def cmd_gui(args: argparse.Namespace) -> int:
    from bci_app.gui.app import run_gui

    return run_gui(
        getattr(args, "config", None),
        getattr(args, "model", None),
        getattr(args, "screenshot", None),
        getattr(args, "duration", None),
        attach=getattr(args, "attach", None),
    )
