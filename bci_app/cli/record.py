"""``bci-app record OUT.xdf``: LSL streams plus the app's outlets into one XDF file with
LabRecorder (the recorder itself is :mod:`bci_app.record`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bci_app.cli._common import load_app_config, positive_float, stop_signals
from bci_app.config import OutletsConfig
from bci_app.record import (
    FLUSH_S,
    RESOLVE_TIMEOUT_S,
    RecordError,
    SessionRecorder,
    default_input_selectors,
)
from bci_app.stream.selector import SelectorError, StreamSelector

STATUS_PERIOD_S = 5.0  # a status line this often while recording


def _selector_arg(text: str) -> StreamSelector:
    try:
        return StreamSelector.parse(text)
    except SelectorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "record",
        help="record streams plus the app's outlets to XDF (LabRecorder)",
        description=(
            "Record LSL streams into one XDF file with LabRecorder (samples, timestamps and "
            "clock offsets). Without --stream: every visible EEG stream and every visible "
            "Markers stream. The app's own outlets (predictions, electrode weights, latency; "
            "names from the config's outlets section) are added unless --no-app-outlets; "
            "they exist while `bci-app run --headless` or `bci-app gui` runs with a model. "
            "Runs until --duration elapses or Ctrl+C; stopping takes a few seconds while "
            "LabRecorder finishes the file."
        ),
    )
    parser.add_argument("out", metavar="OUT.xdf", help="XDF file to write (folders are created)")
    parser.add_argument(
        "--stream",
        dest="streams",
        metavar="SPEC",
        action="append",
        type=_selector_arg,
        help="stream to record, KEY=VALUE[,KEY=VALUE] with KEY name, type or source_id "
        "(e.g. source_id=abc, name=X,type=EEG); repeat for more streams",
    )
    outlets = parser.add_mutually_exclusive_group()
    outlets.add_argument(
        "--with-app-outlets",
        dest="app_outlets",
        action="store_true",
        default=True,
        help="also record the app's outlets (default)",
    )
    outlets.add_argument(
        "--no-app-outlets",
        dest="app_outlets",
        action="store_false",
        help="do not record the app's outlets",
    )
    parser.add_argument(
        "--config", help="config YAML naming the app's outlets (default: config.yaml)"
    )
    parser.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.xdf if it exists")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=RESOLVE_TIMEOUT_S,
        help=f"seconds to wait for the streams to appear (default {RESOLVE_TIMEOUT_S:g})",
    )
    parser.set_defaults(func=cmd_record)
    return parser


def record_selectors(
    streams: Sequence[StreamSelector] | None, app_outlets: bool, outlets: OutletsConfig
) -> list[StreamSelector]:
    """The ``bci-app record`` selection: ``streams`` (default:
    :func:`~bci_app.record.default_input_selectors`) plus the app's outlets
    (:func:`~bci_app.infer.outlets.outlet_selectors`) when ``app_outlets``."""
    from bci_app.infer.outlets import outlet_selectors  # imports torch: not at --help

    selectors = list(streams) if streams else default_input_selectors()
    if app_outlets:
        selectors += outlet_selectors(outlets, characters=None)  # a P300 worker's too
    return selectors


def cmd_record(args: argparse.Namespace) -> int:
    """``bci-app record OUT.xdf``: 0 when the file was closed cleanly, 1 when the recorder failed
    (the partial file stays), 130 when cancelled before the start. Raises
    :class:`~bci_app.record.RecordError` (a ValueError) when it cannot start."""
    config = load_app_config(getattr(args, "config", None))
    selectors = record_selectors(args.streams, args.app_outlets, config.outlets)
    recorder = SessionRecorder(
        args.out, selectors, overwrite=args.overwrite, resolve_timeout=args.timeout
    )
    with stop_signals() as stop:
        try:
            try:
                streams = recorder.start(cancel=stop)
            except RecordError:
                if not stop.is_set():
                    raise
                print("bci-app record: cancelled before the recording started", file=sys.stderr)
                return 130
            print(
                f"recording {len(streams)} streams to {recorder.path}"
                + ("" if args.duration is None else f" for {args.duration:g} s")
                + "; Ctrl+C stops:\n"
                + "\n".join(f"  - {s}" for s in streams),
                flush=True,
            )
            next_status = STATUS_PERIOD_S
            # The file holds the data up to the stop request, which comes a flush after the
            # loop ends: end the loop that much earlier, so --duration S writes S seconds.
            flush_s = FLUSH_S if args.duration is None else min(FLUSH_S, args.duration)
            loop_s = None if args.duration is None else args.duration - flush_s
            while not stop.is_set():
                elapsed = recorder.elapsed
                if loop_s is not None and elapsed >= loop_s:
                    break
                if not recorder.running:
                    break
                if elapsed >= next_status:
                    print(
                        f"recording {elapsed:.0f} s, {recorder.size_bytes} bytes written",
                        flush=True,
                    )
                    next_status += STATUS_PERIOD_S
                wait = 0.5 if loop_s is None else min(0.5, loop_s - elapsed)
                stop.wait(max(wait, 0.0))
            if recorder.running:
                print("stopping: LabRecorder is finishing the file…", flush=True)
            result = recorder.stop(flush_s=flush_s)
        finally:
            if recorder.pid is not None and recorder.result is None:
                recorder.request_stop()  # interrupted by an exception: let it finish the file
    print(result.summary(), flush=True)
    if result.error is not None:
        print(f"bci-app record: error: {result.error}", file=sys.stderr, flush=True)
        return 1
    return 0
