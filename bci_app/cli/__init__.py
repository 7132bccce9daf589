"""``bci-app`` command line: one module per subcommand (see README), each with its
``add_parser(subparsers)`` and its ``cmd_*``; what they share is in :mod:`bci_app.cli._common`.
Heavy imports (torch, Qt, the pipeline) happen inside the commands, so ``--help`` stays quick."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bci_app import __version__
from bci_app.cli import (
    bench,
    board,
    calibrate,
    cue_screen,
    evaluate,
    export_bids,
    flicker,
    gui,
    record,
    replay,
    report,
    run,
    simulate,
    speller,
    streams,
    train,
)
from bci_app.cli._common import positive_float
from bci_app.errors import UserError
from bci_app.stream.lslconfig import use_lsl_config

__all__ = ["build_parser", "main"]

#: The subcommands, in the order ``--help`` lists them.
COMMANDS = (
    gui,
    calibrate,
    cue_screen,
    speller,
    flicker,
    run,
    replay,
    simulate,
    board,
    streams,
    record,
    export_bids,
    train,
    evaluate,
    report,
    bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bci-app", description="Real-time EEG brain-computer interface over LSL."
    )
    parser.add_argument("--version", action="version", version=f"bci-app {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    parser.add_argument(
        "--lsl-config",
        metavar="FILE",
        help="liblsl's config file (lsl_api.cfg: KnownPeers, SessionID, ResolveScope) for "
        "networks without multicast; wins over stream.lsl_config (example: docs/lsl_api.cfg)",
    )
    # With no subcommand: the demo GUI; these two also work there (bci-app --screenshot x.png).
    parser.add_argument("--screenshot", help="demo: save a PNG of the window after --duration s")
    parser.add_argument("--duration", type=positive_float, help="demo: seconds to run")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command. A problem the user can fix (:class:`UserError`, or an
    invalid validated structure) prints its message and returns 2; anything else is a bug: one
    line and 1 (``--debug`` raises it with its traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command is None:
        args.command, args.func = "gui", gui.cmd_gui
    try:
        use_lsl_config(args.lsl_config)
        return args.func(args)
    except (UserError, ValidationError) as exc:
        print(f"bci-app {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"bci-app {args.command}: unexpected error (a bug, please report it): "
            f"{type(exc).__name__}: {exc}; run with --debug for the traceback",
            file=sys.stderr,
        )
        return 1
