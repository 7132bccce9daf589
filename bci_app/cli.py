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
from pathlib import Path

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
    line = (
        f"state={stream.state.value:<10} rate={rate} Hz windows/s={status.windows_per_s:5.2f} "
        f"windows={status.windows} flagged={status.flagged_windows} gaps={stream.gaps} "
        f"nonfinite={stream.nonfinite_samples} overruns={stream.overruns + status.dsp_overruns} "
        f"age={age} ms"
    )
    worker = status.worker
    if worker is not None:
        e2e = worker.latency_ms.get("e2e", {})
        line += (
            f" predicted={worker.predicted} stale={worker.dropped_stale} "
            f"e2e_p99={e2e.get('p99', float('nan')):.2f} ms"
        )
    return line


def _prediction_line(prediction) -> str:  # noqa: ANN001 - Prediction, imported lazily
    latency = prediction.latency_ms
    return (
        f"window {prediction.seq:6d}  {prediction.class_name:<12} "
        f"p={prediction.probabilities[prediction.class_index]:.2f}  "
        f"e2e={latency['e2e']:.2f} ms inference={latency['inference']:.2f} ms"
    )


def run_summary(status, seconds: float) -> dict:  # noqa: ANN001 - PipelineStatus
    stream = status.stream
    summary = {
        "seconds": round(seconds, 3),
        "state": stream.state.value,
        "samples": stream.samples,
        "windows": status.windows,
        "flagged_windows": status.flagged_windows,
        "gaps": stream.gaps,
        "nonfinite_samples": stream.nonfinite_samples,
        "backward_timestamps": stream.backward_timestamps,
        "overruns": stream.overruns + status.dsp_overruns,
        "reconnects": stream.reconnects,
        "realtime_priority": stream.realtime_priority,
        "filter_delay_ms": round(status.filter_delay_s * 1e3, 3),
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
    config = load_config(args.config)
    stop = threading.Event()
    _install_stop_signals(stop)
    pipeline = Pipeline(config, with_model=not args.no_model, model_path=args.model)
    if not args.no_model and not args.quiet:
        pipeline.add_prediction_sink(lambda p: print(_prediction_line(p), flush=True))
    description = pipeline.start()
    stage = pipeline.stage
    print(
        f"reading {description.name!r} ({description.source_id}): {len(description.channels)} "
        f"channels at {description.rate_hz:g} Hz -> windows of {pipeline.config.windows.length:g}"
        f" s every {pipeline.config.windows.hop:g} s at {stage.rate_hz:g} Hz"
        + ("" if pipeline.metadata is None else f"; model {pipeline.model_path}")
        + f". Fixed delays, not processing latency: filter {stage.delay_seconds * 1e3:.1f} ms,"
        f" window {pipeline.config.windows.length:g} s",
        flush=True,
    )
    if pipeline.worker is not None:
        print(f"inference on {pipeline.worker.runner.device} ({pipeline.worker.runner.kind})")
    started = time.monotonic()
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            remaining = None if args.duration is None else args.duration - elapsed
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
    print(json.dumps(run_summary(pipeline.status(), time.monotonic() - started)), flush=True)
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
    config = load_config(args.config)
    model_path = Path(args.model) if args.model else model_dir(config)
    if args.fast:
        run = run_fast(args.replay, config, model_path)
    else:
        print(f"replaying {args.replay} over LSL at speed {args.speed:g}...", flush=True)
        run = run_paced(args.replay, config, model_path, speed=args.speed)
    if args.out:
        write_jsonl(run, args.out)
    summary = run.summary()
    summary["model"] = str(model_path)
    summary["out"] = args.out
    trials = pseudo_online_metrics(run, run.recording or load_recording(args.replay))
    summary["trials"] = trials
    print(
        f"{summary['n_windows']} windows ({summary['n_flagged']} flagged) from "
        f"{summary['duration_s']:.1f} s of recording in {summary['wall_s']:.2f} s "
        f"({summary['stream_s_per_wall_s']} x real time)"
        + (f"; written to {args.out}" if args.out else "")
    )
    if trials is None:
        print("no cue of the model's class map in the file: no per-trial accuracy")
    else:
        print(
            f"online per-trial accuracy {trials['accuracy']:.3f} on {trials['n_trials']} trials "
            f"(chance {trials['chance']:.3f}, 95% threshold {trials['chance_95']:.3f})"
        )
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """``replay FILE``: every stream of the file as an LSL outlet, in real time."""
    import numpy as np

    from bci_app.io.session import read_session
    from bci_app.sources.replay import Replayer, format_progress

    session = read_session(args.file, args.streams)
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
    stop = threading.Event()
    _install_stop_signals(stop)
    interactive = sys.stderr.isatty()
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
    lateness_ms = np.asarray(replayer.lateness) * 1e3
    summary = {
        "file": str(args.file),
        "speed": args.speed,
        "seconds": round(time.monotonic() - started, 3),
        "passes": replayer.passes + 1,
        "pushed": replayer.pushed,
        "push_lateness_ms": {
            "p50": round(float(np.percentile(lateness_ms, 50)), 4) if lateness_ms.size else None,
            "p99": round(float(np.percentile(lateness_ms, 99)), 4) if lateness_ms.size else None,
        },
    }
    print(format_progress(replayer.progress()) + " - done", file=sys.stderr, flush=True)
    if args.json:
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


def cmd_train(args: argparse.Namespace) -> int:
    from bci_app.io import load_recording
    from bci_app.sources.simulator import SimulatorSettings
    from bci_app.train.commands import simulated_recording, train_command
    from bci_app.train.trainer import TrainSettings

    config = load_config(args.config)
    recordings = [load_recording(f) for f in args.files]
    if args.simulated:
        sim = SimulatorSettings.from_config(config.simulator)
        recordings += [
            simulated_recording(sim.model_copy(update={"seed": sim.seed + k}), args.simulated)
            for k in range(args.simulated_runs)
        ]
    if not recordings:
        raise SystemExit("bci-app train: give recordings (EDF/BDF/FIF/XDF) or --simulated SECONDS")
    settings = TrainSettings(
        epochs=args.epochs, seed=args.seed, split=args.split, val_fraction=args.val_fraction
    )
    metrics = train_command(
        recordings,
        args.classes,
        Path(args.out),
        config,
        attention=args.attention,
        settings=settings,
        trial_start_s=args.trial_start,
        trial_stop_s=args.trial_stop,
        train_hop_s=args.train_hop,
        cv_folds=args.cv,
        overwrite=args.overwrite,
        progress=not args.json,
        description=args.description,
    )
    validation = metrics.get("validation") or {}
    print(
        f"saved {args.out}: validation accuracy {validation.get('accuracy', float('nan')):.3f} "
        f"on {validation.get('n_trials', 0)} trials (chance {validation.get('chance', 0):.2f})"
    )
    if args.json:
        print(json.dumps(metrics))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bci_app.train.commands import evaluate_command

    metrics = evaluate_command(Path(args.checkpoint), args.files)
    print(
        f"accuracy {metrics['accuracy']:.3f} (balanced {metrics['balanced_accuracy']:.3f}) on "
        f"{metrics['n_trials']} trials; chance {metrics['chance']:.3f} "
        f"(95% threshold {metrics['chance_95']:.3f})"
    )
    print("confusion (rows true, columns predicted; " + ", ".join(metrics["classes"]) + "):")
    for row in metrics["confusion"]:
        print("  " + " ".join(f"{v:4d}" for v in row))
    if args.json:
        print(json.dumps(metrics))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from bci_app.calibrate.paradigm import Timings
    from bci_app.gui.calibration import CalibrationSettings, run_calibration

    config = load_config(args.config)
    out_dir = Path(args.out or time.strftime("calibration-%Y%m%d-%H%M%S"))
    for name in ("calibration.xdf", "feedback.xdf"):
        if (out_dir / name).exists():
            raise ValueError(
                f"{out_dir / name} exists; choose another --out folder (recordings are never "
                "overwritten)"
            )
    settings = CalibrationSettings(
        classes=tuple(args.classes),
        trials_per_class=args.trials,
        out_dir=out_dir,
        timings=Timings(args.fixation, args.imagery, args.rest[0], args.rest[1]),
        seed=args.seed,
        feedback_trials=args.trials if args.feedback_trials is None else args.feedback_trials,
        epochs=args.epochs,
        cv_folds=args.cv,
        auto_feedback=args.auto,
        close_when_done=args.auto,
    )
    summary = run_calibration(config, settings)
    training = summary.get("training") or {}
    if training:
        print(
            f"model {training['checkpoint']}: cross-validated accuracy "
            f"{training['cv_accuracy']:.3f} on {training['n_trials']} trials "
            f"(chance {training['chance']:.3f}, 95% threshold {training['chance_95']:.3f})"
        )
    feedback = summary.get("feedback") or {}
    if feedback.get("online_accuracy") is not None:
        print(
            f"online accuracy {feedback['online_accuracy']:.3f} on "
            f"{feedback['online_trials']} feedback trials"
        )
    if summary.get("error"):
        print(f"bci-app calibrate: error: {summary['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 1 if summary.get("error") else 0


def cmd_gui(args: argparse.Namespace) -> int:
    from bci_app.gui.app import run_gui

    return run_gui(
        getattr(args, "config", None),
        getattr(args, "model", None),
        getattr(args, "screenshot", None),
        getattr(args, "duration", None),
    )


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "acquisition":
        from bci_app.bench.acquisition import main as bench_acquisition

        return bench_acquisition(
            duration=args.duration, as_json=args.json, realtime=not args.no_realtime
        )
    if args.what == "latency":
        from bci_app.bench.latency import main as bench_latency

        return bench_latency(duration=args.duration, as_json=args.json, devices=args.device)
    if args.what == "gui":
        from bci_app.gui.bench import main as bench_gui

        return bench_gui(duration=args.duration, as_json=args.json)
    if args.what == "replay":
        from bci_app.bench.replay import main as bench_replay

        return bench_replay(duration=args.duration, as_json=args.json)
    raise SystemExit(f"unknown benchmark {args.what!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bci-app", description="Real-time EEG brain-computer interface over LSL."
    )
    parser.add_argument("--version", action="version", version=f"bci-app {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    # With no subcommand: the demo GUI; these two also work there (bci-app --screenshot x.png).
    parser.add_argument("--screenshot", help="demo: save a PNG of the window after --duration s")
    parser.add_argument("--duration", type=_positive_float, help="demo: seconds to run")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = sub.add_parser("gui", help="the GUI on the configured stream (default command)")
    gui.add_argument("--config", help="config YAML (default: config.yaml of the app)")
    gui.add_argument("--model", help="checkpoint folder (default: config model.path or shipped)")
    gui.add_argument("--screenshot", help="save a PNG of the window after --duration s and exit")
    gui.add_argument("--duration", type=_positive_float, help="seconds before the screenshot")
    gui.set_defaults(func=cmd_gui)

    cal = sub.add_parser(
        "calibrate", help="cue paradigm with markers, recording, training, online feedback"
    )
    cal.add_argument("--classes", nargs="+", required=True, help="class names (at least 2)")
    cal.add_argument("--trials", type=int, required=True, help="valid trials per class")
    cal.add_argument("--config", help="config YAML (no stream configured: the simulator)")
    cal.add_argument("--out", help="folder for the recordings and the model (default: dated)")
    cal.add_argument("--seed", type=int, default=0, help="randomises the class order")
    cal.add_argument("--fixation", type=float, default=2.0, help="fixation cross (s)")
    cal.add_argument("--imagery", type=float, default=4.0, help="cue and imagery (s)")
    cal.add_argument(
        "--rest", type=float, nargs=2, default=[1.5, 2.5], metavar=("MIN", "MAX"),
        help="jittered rest after imagery (s)",
    )  # fmt: skip
    cal.add_argument(
        "--feedback-trials", type=int, help="online feedback trials per class (default: --trials)"
    )
    cal.add_argument("--epochs", type=int, default=80, help="training epochs (at most)")
    cal.add_argument("--cv", type=int, default=5, help="cross-validation folds for the report")
    cal.add_argument(
        "--auto", action="store_true", help="go on to feedback by itself and close at the end"
    )
    cal.add_argument("--json", action="store_true", help="last line: summary as JSON")
    cal.set_defaults(func=cmd_calibrate)

    run = sub.add_parser("run", help="run the pipeline (headless: live status lines)")
    run.add_argument("--headless", action="store_true", help="no GUI; print status lines")
    run.add_argument("--config", help="config YAML (default: config.yaml of the app)")
    run.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    run.add_argument("--model", help="checkpoint folder (default: config model.path or shipped)")
    run.add_argument("--no-model", action="store_true", help="acquisition and windows only")
    run.add_argument("--quiet", action="store_true", help="no line per prediction")
    run.add_argument("--replay", metavar="FILE", help="classify a recording (XDF/EDF/BDF/FIF)")
    run.add_argument("--fast", action="store_true", help="replay: no LSL, no pacing, deterministic")
    run.add_argument("--speed", type=_positive_float, default=1.0, help="paced replay: time factor")
    run.add_argument("--out", metavar="P.jsonl", help="replay: one JSON line per window")
    run.add_argument(
        "--json", action="store_true", help="replay: last line JSON (per-trial accuracy)"
    )
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser("replay", help="replay a recording's streams as LSL outlets")
    replay.add_argument("file", help="XDF (all streams) or EDF/BDF/FIF (EEG + annotations)")
    replay.add_argument("--speed", type=_positive_float, default=1.0, help="time factor")
    replay.add_argument("--loop", action="store_true", help="start over at the end (with a gap)")
    replay.add_argument("--streams", nargs="+", metavar="NAME", help="replay only these streams")
    replay.add_argument("--start", type=float, default=0.0, help="start offset in seconds")
    replay.add_argument(
        "--keep-source-id",
        action="store_true",
        help="reuse the recorded source_ids (default: prefixed bci-app-replay:)",
    )
    replay.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    replay.add_argument("--json", action="store_true", help="last line: summary as JSON")
    replay.set_defaults(func=cmd_replay)

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

    from bci_app.record import add_record_parser

    add_record_parser(sub)

    train = sub.add_parser("train", help="train a checkpoint from recordings with cue markers")
    train.add_argument("files", nargs="*", help="EDF/BDF/FIF/XDF recordings")
    train.add_argument(
        "--classes",
        nargs="+",
        required=True,
        help="event label to class name, e.g. T1:hands T2:feet (LABEL alone means LABEL:LABEL)",
    )
    train.add_argument("--out", required=True, help="checkpoint folder to write")
    train.add_argument("--config", help="config YAML with the dsp and window settings")
    train.add_argument("--attention", default="se", choices=["se", "eca", "cbam", "none"])
    train.add_argument("--epochs", type=int, default=80)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--split", default="trial", choices=["trial", "run"])
    train.add_argument("--val-fraction", type=float, default=0.2)
    train.add_argument("--trial-start", type=float, default=0.0, help="s after the cue")
    train.add_argument("--trial-stop", type=float, default=4.0, help="s after the cue")
    train.add_argument("--train-hop", type=_positive_float, help="window hop for training (s)")
    train.add_argument("--cv", type=int, default=0, help="also cross-validate with K folds")
    train.add_argument(
        "--simulated", type=_positive_float, help="add simulator recordings of this many seconds"
    )
    train.add_argument("--simulated-runs", type=int, default=1)
    train.add_argument("--description", default="", help="text for the model card")
    train.add_argument("--overwrite", action="store_true")
    train.add_argument("--json", action="store_true", help="last line: metrics as JSON")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="per-trial accuracy of a checkpoint on recordings")
    evaluate.add_argument("checkpoint", help="checkpoint folder")
    evaluate.add_argument("files", nargs="+", help="EDF/BDF/FIF/XDF recordings with cue markers")
    evaluate.add_argument("--json", action="store_true", help="last line: metrics as JSON")
    evaluate.set_defaults(func=cmd_evaluate)

    bench = sub.add_parser("bench", help="benchmarks that print figures")
    bench.add_argument("what", choices=["acquisition", "latency", "gui", "replay"])
    bench.add_argument(
        "--device", nargs="+", choices=["cpu", "cuda"], help="latency: devices (default: all)"
    )
    bench.add_argument("--duration", type=_positive_float, default=20.0, help="seconds per case")
    bench.add_argument(
        "--no-realtime",
        action="store_true",
        help="acquisition: our threads at normal priority (default: scheduling.realtime_priority)",
    )
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
        args.command, args.func = "gui", cmd_gui
    try:
        return args.func(args)
    except (ConfigError, StreamError, ValueError) as exc:
        print(f"bci-app {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
