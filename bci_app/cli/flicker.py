"""``bci-app flicker``: the SSVEP stimulus (see :mod:`bci_app.gui.flicker`), a cue paradigm over
flickering targets locked to the display's refresh, a class marker at each stimulation onset."""

from __future__ import annotations

import argparse

from bci_app.cli._common import (
    add_screen_arguments,
    positive_float,
    print_json,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "flicker",
        help="SSVEP stimulus: targets flickering at frequencies locked to the display refresh",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        required=True,
        metavar="CLASS",
        help="<number>Hz classes (one target each) and optionally rest, e.g. 12Hz 15Hz 20Hz rest",
    )
    parser.add_argument(
        "--refresh", type=positive_float, help="display refresh (Hz; default: read from the screen)"
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per class (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="randomises the class order")
    parser.add_argument("--cue", type=float, default=1.0, help="cue before stimulation (s)")
    parser.add_argument("--stimulation", type=float, default=4.0, help="stimulation (s)")
    parser.add_argument(
        "--rest", type=float, nargs=2, default=[1.0, 2.0], metavar=("MIN", "MAX"),
        help="jittered rest without flicker after the stimulation (s)",
    )  # fmt: skip
    parser.add_argument(
        "--no-vsync", action="store_true", help="drive frames by a precise timer, never by vsync"
    )
    parser.add_argument(
        "--markers", default="bci-app-flicker-markers", help="name of the marker outlet"
    )
    add_screen_arguments(parser)
    parser.set_defaults(func=cmd_flicker)
    return parser


def cmd_flicker(args: argparse.Namespace) -> int:
    from bci_app.calibrate.settings import Timings
    from bci_app.gui.flicker import FlickerWindow
    from bci_app.gui.run import qt_application, run_until_closed

    timings = Timings(
        fixation_s=args.cue, imagery_s=args.stimulation, rest_min_s=args.rest[0],
        rest_max_s=args.rest[1],
    )  # fmt: skip
    app = qt_application()
    refresh = args.refresh
    if refresh is None:
        refresh = app.primaryScreen().refreshRate()
    window = FlickerWindow(
        args.classes,
        refresh,
        args.trials,
        timings,
        seed=args.seed,
        markers_name=args.markers,
        vsync=not args.no_vsync,
        close_when_done=not args.screenshot,
    )
    try:
        print(
            f"flicker at {refresh:g} Hz: "
            + ", ".join(
                f"{t.name} {t.on} on/{t.off} off frames" for t in window.screen_widget.targets
            )
            + f"; markers on {window.markers.name!r} (source_id {window.markers.source_id}); "
            "Space pauses, Esc ends",
            flush=True,
        )
        window.show()
        window.start()
        outcome = run_until_closed(app, window, args.duration, args.screenshot)
        summary = window.summary()
    finally:
        window.markers.close()
    print(
        f"{summary['trials']} trials, {summary['frames']} frames ({summary['frame_note']}); "
        f"frame interval p50 {summary['frame_interval_ms']['p50']} ms, "
        f"{summary['late_frames']} late",
        flush=True,
    )
    if args.json:
        print_json(summary | ({"screenshot": args.screenshot} if args.screenshot else {}))
    return outcome
