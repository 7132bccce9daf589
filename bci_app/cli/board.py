"""``bci-app board``: a BrainFlow board (OpenBCI, Muse, ..., or its synthetic board) as LSL
outlets: EEG plus the board's marker channel."""

from __future__ import annotations

import argparse
import time

from bci_app.cli._common import positive_float, stop_signals


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "board", help="stream a BrainFlow board (OpenBCI, Muse, synthetic, ...) over LSL"
    )
    parser.add_argument(
        "--board",
        required=True,
        help="BrainFlow board: its BoardIds name lower-cased with '-' for '_', e.g. synthetic, "
        "cyton, cyton-daisy, ganglion, muse-s",
    )
    parser.add_argument("--serial-port", help="serial port of the board or its dongle")
    parser.add_argument("--ip-address", help="ip address of a board on the network")
    parser.add_argument(
        "--labels", nargs="+", help="EEG channel labels, one per EEG channel (default: BrainFlow's)"
    )
    parser.add_argument("--name", help="LSL stream name (default: brainflow-<board>)")
    parser.add_argument("--duration", type=positive_float, default=None, help="seconds to stream")
    parser.set_defaults(func=cmd_board)
    return parser


def cmd_board(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bci_app.config import format_validation_error
    from bci_app.errors import UserError
    from bci_app.sources.board import BoardSettings, BoardStream

    try:
        settings = BoardSettings(
            board=args.board,
            serial_port=args.serial_port,
            ip_address=args.ip_address,
            labels=None if args.labels is None else tuple(args.labels),
            name=args.name,
        )
    except ValidationError as exc:
        raise UserError(
            format_validation_error(exc, "invalid board settings", BoardSettings)
        ) from None
    with stop_signals() as stop, BoardStream(settings) as board:
        markers = (
            ""
            if board.marker_stream_name is None
            else f" and markers as {board.marker_stream_name!r}"
        )
        print(
            f"streaming {len(board.labels)} EEG channels ({', '.join(board.labels)}) at "
            f"{board.rate_hz:g} Hz from BrainFlow board {settings.board!r} as "
            f"{board.stream_name!r} (source_id {board.source_id}){markers}; Ctrl+C stops",
            flush=True,
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while board.running and not stop.is_set():  # the thread ends early on a board error
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop.wait(0.5 if remaining is None else min(0.5, remaining))
    print(f"pushed {board.samples_pushed} samples and {board.markers_pushed} markers", flush=True)
    if board.error is not None:
        raise board.error
    return 0
