"""``bci-app simulate``: simulated EEG and cue markers as LSL outlets."""

from __future__ import annotations

import argparse

from bci_app.cli._common import positive_float, stop_signals


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("simulate", help="stream simulated EEG and cue markers over LSL")
    parser.add_argument(
        "--paradigm",
        default="mi",
        choices=["mi", "p300", "ssvep"],
        help="mi: motor imagery cues; p300: speller flashes (char:<X>, code<N>, "
        "target/nontarget markers); ssvep: flicker trials (classes rest and <number>Hz)",
    )
    parser.add_argument("--channels", type=int, default=64, choices=[8, 64, 256])
    parser.add_argument("--rate", type=float, default=160.0, help="sampling rate in Hz (128-4096)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="cued classes (default: left_hand right_hand feet rest for mi, rest 13Hz 17Hz 21Hz "
        "for ssvep; p300 has none)",
    )
    parser.add_argument("--line-freq", type=float, default=50.0, help="line noise Hz; 0 for none")
    parser.add_argument("--name", default="bci-app-sim", help="LSL stream name")
    parser.add_argument("--source-id", default=None, help="LSL source_id (default: unique)")
    parser.add_argument("--duration", type=positive_float, default=None)
    parser.set_defaults(func=cmd_simulate)
    return parser


def cmd_simulate(args: argparse.Namespace) -> int:
    from bci_app.sources.simulator import SimulatorSettings
    from bci_app.sources.simulator_stream import SimulatorStream

    settings = SimulatorSettings(
        paradigm=args.paradigm,
        n_channels=args.channels,
        rate_hz=args.rate,
        seed=args.seed,
        **({} if args.classes is None else {"classes": tuple(args.classes)}),
        line_freq_hz=None if args.line_freq == 0 else args.line_freq,
        name=args.name,
        source_id=args.source_id,
    )
    with stop_signals() as stop, SimulatorStream(settings) as simulator:
        print(
            f"streaming {settings.paradigm} EEG, {settings.n_channels} channels at "
            f"{settings.rate_hz:g} Hz as {settings.name!r} (source_id {simulator.source_id}) and "
            f"markers as {settings.name + '-markers'!r}; Ctrl+C stops",
            flush=True,
        )
        stop.wait(args.duration)
        print(
            f"pushed {simulator.samples_pushed} samples and {simulator.markers_pushed} markers",
            flush=True,
        )
    return 0
