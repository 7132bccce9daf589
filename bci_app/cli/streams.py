"""``bci-app streams``: the LSL streams visible on the network."""

from __future__ import annotations

import argparse

from bci_app.cli._common import positive_float, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("streams", help="list visible LSL streams")
    parser.add_argument("--wait", type=positive_float, default=1.0, help="seconds to listen")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--workers",
        action="store_true",
        help="list the bci-app workers instead (what `bci-app gui --attach` can view)",
    )
    parser.set_defaults(func=cmd_streams)
    return parser


def cmd_streams(args: argparse.Namespace) -> int:
    import pylsl

    if args.workers:
        return _workers(args)
    from bci_app.stream.resolve import format_stream_list

    infos = pylsl.resolve_streams(wait_time=args.wait)
    if args.json:
        print_json(
            [
                {
                    "name": i.name(),
                    "type": i.type(),
                    "source_id": i.source_id(),
                    "channels": i.channel_count(),
                    "rate": i.nominal_srate(),
                    "format": i.channel_format(),
                    "hostname": i.hostname(),
                }
                for i in infos
            ]
        )
    else:
        print(format_stream_list(infos))
    return 0


def _workers(args: argparse.Namespace) -> int:
    import dataclasses

    from bci_app.pipeline.remote import find_workers

    workers = find_workers(timeout=args.wait)
    if args.json:
        print_json(
            [
                {k: v for k, v in dataclasses.asdict(w).items() if k != "metadata_json"}
                for w in workers
            ]
        )
    elif not workers:
        print("  (no bci-app worker visible on the network)")
    else:
        print("\n".join(f"  - {w.describe()}" for w in workers))
    return 0
