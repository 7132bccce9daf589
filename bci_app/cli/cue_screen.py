"""``bci-app cue-screen --attach WORKER``: the participant's screen as its own process, driven by
a worker that runs elsewhere (see :mod:`bci_app.gui.subject_screen`)."""

from __future__ import annotations

import argparse

from bci_app.cli._common import (
    add_paradigm_arguments,
    load_app_config,
    paradigm_timings,
    print_json,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "cue-screen",
        help="the participant's cue and feedback screen, driven by a worker elsewhere",
    )
    parser.add_argument(
        "--attach",
        required=True,
        metavar="PREFIX_OR_SESSION",
        help="the worker (bci-app run --headless) by its outlets' prefix or session id",
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per class (default 10)")
    parser.add_argument("--config", help="config YAML (resolve timeout, health thresholds)")
    add_paradigm_arguments(parser)
    parser.add_argument("--json", action="store_true", help="last line: summary as JSON")
    parser.set_defaults(func=cmd_cue_screen)
    return parser


def cmd_cue_screen(args: argparse.Namespace) -> int:
    from bci_app.gui.app import application
    from bci_app.gui.run import run_until_closed
    from bci_app.gui.subject_screen import SubjectScreen
    from bci_app.pipeline.remote import RemoteWorker

    config = load_app_config(args.config)
    timings = paradigm_timings(args)
    app = application()
    view = RemoteWorker(config, args.attach)
    # Sinks go in before start; the screen (which needs the worker's classes) after it.
    to_screen: list = []
    view.add_prediction_sink(lambda p: to_screen[0](p) if to_screen else None)
    screen = None
    try:
        view.start()
        screen = SubjectScreen(view, args.trials, timings, args.seed)
        to_screen.append(screen.run.add_prediction)
        print(
            f"cues for {view.worker.describe()}; markers on {screen.markers.name!r} (source_id "
            f"{screen.markers.source_id}); Esc ends",
            flush=True,
        )
        screen.show()
        run_until_closed(app, screen, None, None)
    finally:
        view.stop()
    summary = screen.summary()
    print(
        f"{summary['trials']} trials; online accuracy "
        + ("n/a" if summary["online_accuracy"] is None else f"{summary['online_accuracy']:.3f}")
        + f" on {summary['online_trials']} decided",
        flush=True,
    )
    if args.json:
        print_json(summary)
    return 0
