"""``bci-app replay FILE``: every stream of a recording as an LSL outlet, in real time."""

from __future__ import annotations

import argparse
import sys
import time

from bci_app.cli._common import add_strict_argument, positive_float, print_json, stop_signals


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("replay", help="replay a recording's streams as LSL outlets")
    parser.add_argument("file", help="XDF (all streams) or EDF/BDF/FIF (EEG + annotations)")
    parser.add_argument("--speed", type=positive_float, default=1.0, help="time factor")
    parser.add_argument("--loop", action="store_true", help="start over at the end (with a gap)")
    parser.add_argument("--streams", nargs="+", metavar="NAME", help="replay only these streams")
    parser.add_argument("--start", type=float, default=0.0, help="start offset in seconds")
    parser.add_argument(
        "--keep-source-id",
        action="store_true",
        help="reuse the recorded source_ids (default: prefixed bci-app-replay:)",
    )
    parser.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="last line: summary as JSON")
    add_strict_argument(parser)
    parser.set_defaults(func=cmd_replay)
    return parser


def cmd_replay(args: argparse.Namespace) -> int:
    """``replay FILE``: every stream of the file as an LSL outlet, in real time."""
    import numpy as np

    from bci_app.infer.latency import summarize_ms
    from bci_app.io.session import read_session
    from bci_app.sources.replay import Replayer, format_progress

    session = read_session(args.file, args.streams, args.strict)
    replayer = Replayer(
        session,
        speed=args.speed,
        loop=args.loop,
        start_s=args.start,
        keep_source_id=args.keep_source_id,
    )
    for stream in session.streams:
        print(
            f"outlet {stream.name!r} (type {stream.type!r}, {stream.n_channels} ch, "
            f"{stream.channel_format}, {stream.rate_hz:g} Hz, {stream.n_samples} samples), "
            f"source_id {replayer.source_id_of(stream.name)}",
            flush=True,
        )
    interactive = sys.stderr.isatty()
    with stop_signals() as stop:
        started = time.monotonic()
        replayer.start()
        try:
            while not stop.is_set() and not replayer.wait(1.0):
                line = format_progress(replayer.progress())
                print(line, end="\r" if interactive else "\n", file=sys.stderr, flush=True)
                if args.duration is not None and time.monotonic() - started >= args.duration:
                    break
        finally:
            replayer.stop()
    if replayer.error is not None:
        print(f"bci-app replay: error: {replayer.error}", file=sys.stderr)
        return 1
    lateness = summarize_ms(np.asarray(replayer.lateness), digits=4)  # seconds in, ms out
    summary = {
        "file": str(args.file),
        "speed": args.speed,
        "seconds": round(time.monotonic() - started, 3),
        "passes": replayer.passes + 1,
        "pushed": replayer.pushed,
        "push_lateness_ms": {"p50": lateness["p50"], "p99": lateness["p99"]},
        "damage": list(session.damage),
    }
    print(format_progress(replayer.progress()) + " - done", file=sys.stderr, flush=True)
    if args.json:
        print_json(summary)
    return 0
