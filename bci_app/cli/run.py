"""``bci-app run``: the pipeline headless (status lines, a JSON summary at the end), or with
``--replay FILE`` a recording through dsp, windows and model (``--fast``: no LSL, no pacing)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bci_app.cli._common import (
    add_strict_argument,
    format_status,
    load_app_config,
    metrics_lines,
    positive_float,
    prediction_line,
    print_json,
    stop_signals,
)

if TYPE_CHECKING:
    from bci_app.pipeline.view import PipelineStatus


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("run", help="run the pipeline (headless: live status lines)")
    parser.add_argument("--headless", action="store_true", help="no GUI; print status lines")
    parser.add_argument("--config", help="config YAML (default: config.yaml of the app)")
    parser.add_argument("--duration", type=positive_float, help="stop after this many seconds")
    parser.add_argument("--model", help="checkpoint folder (default: config model.path or shipped)")
    parser.add_argument("--no-model", action="store_true", help="acquisition and windows only")
    parser.add_argument("--quiet", action="store_true", help="no line per prediction")
    parser.add_argument("--replay", metavar="FILE", help="classify a recording (XDF/EDF/BDF/FIF)")
    parser.add_argument(
        "--fast", action="store_true", help="replay: no LSL, no pacing, deterministic"
    )
    parser.add_argument(
        "--speed", type=positive_float, default=1.0, help="paced replay: time factor"
    )
    parser.add_argument("--out", metavar="P.jsonl", help="replay: one JSON line per window")
    parser.add_argument(
        "--json", action="store_true", help="replay: last line JSON (per-trial accuracy)"
    )
    add_strict_argument(parser)
    parser.set_defaults(func=cmd_run)
    return parser


def run_summary(status: PipelineStatus, seconds: float) -> dict[str, Any]:
    """The JSON last line of ``run --headless``: stream health and worker figures after
    ``seconds`` of running."""
    stream, delays = status.stream, status.filter_delays
    summary: dict[str, Any] = {
        "seconds": round(seconds, 3),
        "state": stream.state.value,
        "samples": stream.samples,
        "windows": status.windows,
        "flagged_windows": status.flagged_windows,
        "gaps": stream.gaps,
        "missing_samples": stream.missing_samples,
        "foreign_refusals": stream.foreign_refusals,
        "nonfinite_samples": stream.nonfinite_samples,
        "backward_timestamps": stream.backward_timestamps,
        "overruns": stream.overruns + status.dsp_overruns,
        "reconnects": stream.reconnects,
        "realtime_priority": stream.realtime_priority,
        "filter_delay_ms": round(status.filter_delay_s * 1e3, 3),
        "group_delay_ms": None if delays is None else delays.group_delay_ms,
        "settling_s": None if delays is None else delays.settling_s,
        "window_s": status.window_s,
    }
    worker = status.worker
    if worker is not None:
        summary.update(
            {
                "predicted": worker.predicted,
                "replaced": worker.replaced,
                "dropped_stale": worker.dropped_stale,
                "skipped_flagged": worker.skipped_flagged,
                "errors": worker.errors,
                "backlog_windows": worker.backlog_windows,
                "budget_misses": worker.budget_misses,
                "device": worker.device,
                "runner": worker.runner,
                "fallback": worker.fallback,
                "latency_ms": worker.latency_ms,
            }
        )
    return summary


def cmd_run(args: argparse.Namespace) -> int:
    from bci_app.pipeline import Pipeline

    if args.replay:
        return cmd_run_replay(args)
    if args.fast or args.out or args.json:
        raise SystemExit("bci-app run: --fast, --out and --json go with --replay FILE")
    if not args.headless:
        raise SystemExit("bci-app run: for the window use `bci-app gui`; add --headless here")
    config = load_app_config(args.config)
    with stop_signals() as stop:
        pipeline = Pipeline(config, with_model=not args.no_model, model_path=args.model)
        if not args.no_model and not args.quiet:
            pipeline.add_prediction_sink(lambda p: print(prediction_line(p), flush=True))
        description = pipeline.start()
        started_status = pipeline.status()  # the view only: no reach into stage or worker
        print(
            f"reading {description.name!r} ({description.source_id}): "
            f"{len(description.channels)} channels at {description.rate_hz:g} Hz -> windows of "
            f"{pipeline.config.windows.length:g} s every {pipeline.config.windows.hop:g} s at "
            f"{pipeline.trace('filtered').rate_hz:g} Hz"
            + ("" if pipeline.metadata is None else f"; model {pipeline.model_path}")
            + ". Fixed delays, not processing latency: "
            + (
                f"filter {started_status.filter_delay_s * 1e3:.1f} ms"
                if started_status.filter_delays is None
                else started_status.filter_delays.describe()
            )
            + f", window {pipeline.config.windows.length:g} s",
            flush=True,
        )
        worker = started_status.worker
        if worker is not None:
            outlets = pipeline.config.outlets
            published = (
                f"; outlets {outlets.name_prefix}-*, session {outlets.session_id}"
                if pipeline.publishes_outlets
                else ""
            )
            print(f"inference on {worker.device} ({worker.runner}){published}", flush=True)
        started = time.monotonic()
        try:
            while not stop.is_set():
                elapsed = time.monotonic() - started
                remaining = None if args.duration is None else args.duration - elapsed
                if remaining is not None and remaining <= 0:
                    break
                stop.wait(1.0 if remaining is None else min(1.0, remaining))
                status = pipeline.status()
                print(format_status(status), flush=True)
                if status.stream.error:
                    print(f"error: {status.stream.error}", file=sys.stderr)
                    return 1
        finally:
            pipeline.stop()
    print_json(run_summary(pipeline.status(), time.monotonic() - started))
    return 0


def cmd_run_replay(args: argparse.Namespace) -> int:
    """``run --replay FILE [--fast]``: a recording through dsp, windows and model."""
    from bci_app.io import load_recording
    from bci_app.nn.checkpoint import model_dir
    from bci_app.pipeline.replay import pseudo_online_metrics, run_fast, run_paced, write_jsonl

    if args.no_model:
        raise SystemExit("bci-app run --replay classifies windows; drop --no-model")
    if args.fast and args.speed != 1.0:
        raise SystemExit("bci-app run: --speed is for paced replay; --fast runs as fast as it can")
    config = load_app_config(args.config)
    model_path = Path(args.model) if args.model else model_dir(config)
    if args.fast:
        run = run_fast(args.replay, config, model_path, args.strict)
    else:
        print(f"replaying {args.replay} over LSL at speed {args.speed:g}...", flush=True)
        run = run_paced(args.replay, config, model_path, speed=args.speed, strict=args.strict)
    if args.out:
        write_jsonl(run, args.out)
    summary = run.summary()
    summary["model"] = str(model_path)
    summary["out"] = args.out
    trials = pseudo_online_metrics(run, run.recording or load_recording(args.replay, args.strict))
    summary["trials"] = trials
    print(
        f"{summary['n_windows']} windows ({summary['n_flagged']} flagged) from "
        f"{summary['duration_s']:.1f} s of recording in {summary['wall_s']:.2f} s "
        f"({summary['stream_s_per_wall_s']} x real time)"
        + (f"; written to {args.out}" if args.out else "")
    )
    if trials is None:
        print("no cue of the model's class map in the file: no per-trial accuracy")
    elif "online" in trials:  # a P300 model: characters
        online = trials["online"]
        print(
            f"spelled {online['spelled']!r} (asked {online['asked']!r}) with "
            f"{online['repetitions']} repetitions; accuracy {trials['accuracy']}"
        )
    else:
        print("online per-trial " + "\n".join(metrics_lines(trials)))
    if args.json:
        print_json(summary)
    return 0
