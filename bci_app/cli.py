"""``bci-app`` command line: one subcommand per job (see README)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence

from bci_app import __version__
from bci_app.config import ConfigError, load_config
from bci_app.stream.inlet import StreamError

log = logging.getLogger("bci_app")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _format_status(status) -> str:  # noqa: ANN001 - PipelineStatus, imported lazily
    stream = status.stream
    rate = "-" if stream.effective_rate_hz is None else f"{stream.effective_rate_hz:7.1f}"
    age = "-" if stream.newest_sample_age_s is None else f"{stream.newest_sample_age_s * 1e3:6.1f}"
    return (
        f"state={stream.state.value:<10} rate={rate} Hz windows/s={status.windows_per_s:5.2f} "
        f"windows={status.windows} flagged={status.flagged_windows} gaps={stream.gaps} "
        f"nonfinite={stream.nonfinite_samples} overruns={stream.overruns + status.dsp_overruns} "
        f"age={age} ms"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bci_app.pipeline import Pipeline

    if not args.headless:
        raise SystemExit("bci-app run: only --headless is available so far; add --headless")
    config = load_config(args.config)
    stop = threading.Event()
    _install_stop_signals(stop)
    pipeline = Pipeline(config)
    description = pipeline.start()
    print(
        f"reading {description.name!r} ({description.source_id}): {len(description.channels)} "
        f"channels at {description.rate_hz:g} Hz -> windows of {config.windows.length:g} s every "
        f"{config.windows.hop:g} s at {pipeline.stage.rate_hz:g} Hz; filter delay "
        f"{pipeline.stage.delay_seconds * 1e3:.1f} ms (not processing latency)",
        flush=True,
    )
    started = time.monotonic()
    try:
        while not stop.is_set():
            remaining = (
                None if args.duration is None else args.duration - (time.monotonic() - started)
            )
            if remaining is not None and remaining <= 0:
                break
            stop.wait(1.0 if remaining is None else min(1.0, remaining))
            status = pipeline.status()
            print(_format_status(status), flush=True)
            if status.stream.error:
                print(f"error: {status.stream.error}", file=sys.stderr)
                return 1
    finally:
        pipeline.stop()
    status = pipeline.status()
    summary = {
        "seconds": round(time.monotonic() - started, 3),
        "state": status.stream.state.value,
        "samples": status.stream.samples,
        "windows": status.windows,
        "flagged_windows": status.flagged_windows,
        "gaps": status.stream.gaps,
        "nonfinite_samples": status.stream.nonfinite_samples,
        "backward_timestamps": status.stream.backward_timestamps,
        "overruns": status.stream.overruns + status.dsp_overruns,
        "reconnects": status.stream.reconnects,
    }
    print(json.dumps(summary), flush=True)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from bci_app.sources.simulator import SimulatorSettings, SimulatorStream

    settings = SimulatorSettings(
        n_channels=args.channels,
        rate_hz=args.rate,
        seed=args.seed,
        classes=tuple(args.classes),
        line_freq_hz=None if args.line_freq == 0 else args.line_freq,
        name=args.name,
        source_id=args.source_id,
    )
    stop = threading.Event()
    _install_stop_signals(stop)
    with SimulatorStream(settings) as simulator:
        print(
            f"streaming {settings.n_channels} channels at {settings.rate_hz:g} Hz as "
            f"{settings.name!r} (source_id {simulator.source_id}) and markers as "
            f"{settings.name + '-markers'!r}; Ctrl+C stops",
            flush=True,
        )
        stop.wait(args.duration)
        print(
            f"pushed {simulator.samples_pushed} samples and {simulator.markers_pushed} markers",
            flush=True,
        )
    return 0


def cmd_streams(args: argparse.Namespace) -> int:
    import pylsl

    from bci_app.stream.inlet import format_stream_list

    infos = pylsl.resolve_streams(wait_time=args.wait)
    if args.json:
        print(
            json.dumps(
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
        )
    else:
        print(format_stream_list(infos))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "acquisition":
        from bci_app.bench.acquisition import main as bench_acquisition

        return bench_acquisition(duration=args.duration, as_json=args.json)
    raise SystemExit(f"unknown benchmark {args.what!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bci-app", description="Real-time EEG brain-computer interface over LSL."
    )
    parser.add_argument("--version", action="version", version=f"bci-app {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the pipeline (headless: live status lines)")
    run.add_argument("--headless", action="store_true", help="no GUI; print status lines")
    run.add_argument("--config", help="config YAML (default: config.yaml of the app)")
    run.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("simulate", help="stream simulated EEG and cue markers over LSL")
    sim.add_argument("--channels", type=int, default=64, choices=[8, 64, 256])
    sim.add_argument("--rate", type=float, default=160.0, help="sampling rate in Hz (128-4096)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--classes", nargs="+", default=["left_hand", "right_hand", "feet", "rest"])
    sim.add_argument("--line-freq", type=float, default=50.0, help="line noise Hz; 0 for none")
    sim.add_argument("--name", default="bci-app-sim", help="LSL stream name")
    sim.add_argument("--source-id", default=None, help="LSL source_id (default: unique)")
    sim.add_argument("--duration", type=_positive_float, default=None)
    sim.set_defaults(func=cmd_simulate)

    streams = sub.add_parser("streams", help="list visible LSL streams")
    streams.add_argument("--wait", type=_positive_float, default=1.0, help="seconds to listen")
    streams.add_argument("--json", action="store_true")
    streams.set_defaults(func=cmd_streams)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", choices=["acquisition"])
    bench.add_argument("--duration", type=_positive_float, default=20.0, help="seconds per case")
    bench.add_argument("--json", action="store_true", help="last line: one JSON object")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ConfigError, StreamError, ValueError) as exc:
        print(f"bci-app {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
