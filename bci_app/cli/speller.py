"""``bci-app speller``: the P300 speller's screen (see :mod:`bci_app.gui.speller`), copy spelling
(``--copy TEXT``: target/nontarget markers for training) or free spelling (``--free``)."""

from __future__ import annotations

import argparse

from bci_app.cli._common import (
    add_screen_arguments,
    add_speller_arguments,
    load_app_config,
    print_json,
    speller_settings,
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "speller",
        help="P300 speller: the matrix flashing rows and columns, each flash an LSL marker",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--copy", metavar="TEXT", help="copy spelling of TEXT (default: --free)")
    mode.add_argument("--free", action="store_true", help="free spelling (char:? markers)")
    parser.add_argument(
        "--characters", type=int, help="free spelling: stop after this many (default: Esc ends)"
    )
    add_speller_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="randomises the flash order")
    parser.add_argument("--config", help="config YAML (paradigm.matrix, stream.resolve_timeout)")
    parser.add_argument(
        "--markers",
        default="bci-app-speller-markers",
        help="name and source_id of the marker outlet (a P300 worker finds it with "
        "stream.markers: bci-app-speller-markers)",
    )
    parser.add_argument(
        "--attach",
        metavar="PREFIX",
        help="show the characters a worker decides, read from its <PREFIX>-characters stream "
        "(a decision during a character's flashes ends it: dynamic stopping)",
    )
    add_screen_arguments(parser)
    parser.set_defaults(func=cmd_speller)
    return parser


def cmd_speller(args: argparse.Namespace) -> int:
    from bci_app.gui.run import qt_application, run_until_closed
    from bci_app.gui.speller import SpellerWindow, resolve_decisions

    config = load_app_config(args.config)
    settings = speller_settings(args, config, args.copy, args.characters, args.seed)
    app = qt_application()
    inlet = resolve_decisions(args.attach, config.stream.resolve_timeout) if args.attach else None
    window = SpellerWindow(
        settings, args.markers, close_when_done=not args.screenshot, markers_source_id=args.markers
    )
    try:
        if inlet is not None:
            window.read_decisions(inlet)
        print(
            f"speller ({'copy ' + repr(settings.text) if settings.copy else 'free spelling'}); "
            f"markers on {window.markers.name!r} (source_id {window.markers.source_id}); Esc ends",
            flush=True,
        )
        window.show()
        window.start()
        outcome = run_until_closed(app, window, args.duration, args.screenshot)
        summary = window.summary()
    finally:
        window.markers.close()
        if inlet is not None:
            inlet.close_stream()
    print(
        f"{summary['characters']} characters, {summary['flashes']} flashes, spelled "
        f"{summary['spelled']!r}; flash drawn after its planned time p99 "
        f"{summary['flash_draw_lateness_ms']['p99']} ms",
        flush=True,
    )
    if args.json:
        print_json(summary | ({"screenshot": args.screenshot} if args.screenshot else {}))
    return outcome
