"""What several commands share: the positive-number argument type, Ctrl+C/SIGTERM as a stop
event, the JSON last line, and the headless run's status and prediction lines."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bci_app.config import AppConfig, load_config
from bci_app.lifecycle import on_signals
from bci_app.stream.lslconfig import use_lsl_config

if TYPE_CHECKING:
    from bci_app.calibrate.settings import Timings
    from bci_app.calibrate.speller import SpellerSettings
    from bci_app.infer.worker import Prediction
    from bci_app.pipeline.view import PipelineStatus


def add_strict_argument(parser: argparse.ArgumentParser) -> None:
    """``--strict``: refuse a damaged recording instead of using what can be recovered."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a damaged recording (an XDF cut short or with corrupt chunks, an EDF/BDF "
        "shorter than its header) instead of using what can be recovered",
    )


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (seconds, a speed factor)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def fold_count(text: str) -> int:
    """argparse type: a number of cross-validation folds, at least 2."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of folds >= 2 (one fold would test on the training trials), "
            f"got {text!r}"
        )
    return value


@contextlib.contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """An event that SIGINT (Ctrl+C) and SIGTERM set while the block runs (see
    :func:`bci_app.lifecycle.on_signals`); off the main thread only its owner sets it."""
    stop = threading.Event()
    with on_signals(stop.set):
        yield stop


def metrics_lines(metrics: dict) -> list[str]:
    """Per-trial decoding metrics in words: accuracy, balanced accuracy, kappa, chance, the
    Wolpaw ITR and the accuracy against time since the cue."""
    lines = [
        f"accuracy {metrics['accuracy']:.3f} (balanced {metrics['balanced_accuracy']:.3f}, "
        f"kappa {metrics['kappa']:.3f}) on {metrics['n_trials']} trials; chance "
        f"{metrics['chance']:.3f} (95% threshold {metrics['chance_95']:.3f})"
    ]
    if metrics.get("itr_bits_per_min") is not None:
        lines.append(
            f"ITR {metrics['itr_bits_per_trial']:.3f} bits/trial, "
            f"{metrics['itr_bits_per_min']:.2f} bits/min ({metrics['itr_trial_s']:g} s per "
            "decision, Wolpaw)"
        )
    curve = metrics.get("accuracy_over_time") or []
    if curve:
        points = ", ".join(f"{p['t_s']:g} s {p['accuracy']:.2f}" for p in curve)
        lines.append(f"accuracy by time since the cue: {points}")
    latency = metrics.get("decision_latency_s") or {}
    if any(v is not None for v in latency.values()):
        reached = ", ".join(
            f"{k} % at {'-' if v is None else f'{v:g} s'}" for k, v in latency.items()
        )
        lines.append(f"decision latency (share of the final accuracy above chance): {reached}")
    return lines


def print_json(obj: Any) -> None:
    """The last line of a ``--json`` command: exactly one JSON value, strict (a figure that
    is not a number, NaN or infinite, is written null: ``NaN`` is not JSON)."""
    print(json.dumps(_finite(obj), allow_nan=False), flush=True)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(value) for value in obj]
    return obj


def format_status(status: PipelineStatus) -> str:
    """One status line of ``run --headless`` (stream health, windows, inference latency)."""
    stream = status.stream
    rate = "-" if stream.effective_rate_hz is None else f"{stream.effective_rate_hz:7.1f}"
    age = "-" if stream.newest_sample_age_s is None else f"{stream.newest_sample_age_s * 1e3:6.1f}"
    line = (
        f"state={stream.state.value:<10} rate={rate} Hz windows/s={status.windows_per_s:5.2f} "
        f"windows={status.windows} flagged={status.flagged_windows} gaps={stream.gaps} "
        f"missing={stream.missing_samples} nonfinite={stream.nonfinite_samples} "
        f"overruns={stream.overruns + status.dsp_overruns} "
        f"age={age} ms"
    )
    worker = status.worker
    if worker is not None:
        e2e = worker.latency_ms.get("e2e", {})
        line += (
            f" predicted={worker.predicted} stale={worker.dropped_stale} "
            f"e2e_p99={e2e.get('p99', float('nan')):.2f} ms"
        )
    if stream.foreign_source:
        line += f" | {stream.foreign_source}"
    return line


def prediction_line(prediction: Prediction) -> str:
    """One line per classified window (class, probability, latency in ms)."""
    latency = prediction.latency_ms
    return (
        f"window {prediction.seq:6d}  {prediction.class_name:<12} "
        f"p={prediction.probabilities[prediction.class_index]:.2f}  "
        f"e2e={latency['e2e']:.2f} ms inference={latency['inference']:.2f} ms"
    )


def load_app_config(path: str | None) -> AppConfig:
    """The config at ``path`` (default: the app's), with its ``stream.lsl_config`` in use unless
    ``--lsl-config`` (or the LSLAPICFG environment variable) already named one."""
    config = load_config(path)
    use_lsl_config(config.stream.lsl_config, replace=False)
    return config


def add_paradigm_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seed``, ``--fixation``, ``--imagery``, ``--rest MIN MAX``: a cue paradigm's order and
    trial timings (s), read back by :func:`paradigm_timings`."""
    parser.add_argument("--seed", type=int, default=0, help="randomises the class order")
    parser.add_argument("--fixation", type=float, default=2.0, help="fixation cross (s)")
    parser.add_argument("--imagery", type=float, default=4.0, help="cue and imagery (s)")
    parser.add_argument(
        "--rest", type=float, nargs=2, default=[1.5, 2.5], metavar=("MIN", "MAX"),
        help="jittered rest after imagery (s)",
    )  # fmt: skip


def paradigm_timings(args: argparse.Namespace) -> Timings:
    """The validated trial timings of :func:`add_paradigm_arguments`."""
    from bci_app.calibrate.settings import Timings

    return Timings(
        fixation_s=args.fixation, imagery_s=args.imagery, rest_min_s=args.rest[0],
        rest_max_s=args.rest[1],
    )  # fmt: skip


def add_speller_arguments(parser: argparse.ArgumentParser) -> None:
    """``--repetitions``, ``--flash``, ``--blank``, ``--pause``: the P300 speller's timing,
    read back by :func:`speller_settings`."""
    parser.add_argument("--repetitions", type=int, default=10, help="blocks per character (10)")
    parser.add_argument("--flash", type=float, default=0.1, help="flash duration (s, 0.1)")
    parser.add_argument("--blank", type=float, default=0.075, help="blank between flashes (s)")
    parser.add_argument("--pause", type=float, default=2.5, help="pause between characters (s)")


def speller_settings(
    args: argparse.Namespace,
    config: AppConfig,
    text: str | None,
    characters: int | None,
    seed: int,
) -> SpellerSettings:
    """The validated speller of :func:`add_speller_arguments` on ``paradigm.matrix``: copy
    spelling of ``text``, or free spelling of ``characters`` (None: until stopped)."""
    from bci_app.calibrate.speller import SpellerSettings

    return SpellerSettings(
        matrix=tuple(config.paradigm.matrix),
        text=text,
        characters=characters,
        repetitions=args.repetitions,
        flash_s=args.flash,
        blank_s=args.blank,
        pause_s=args.pause,
        seed=seed,
    )


def add_screen_arguments(parser: argparse.ArgumentParser) -> None:
    """``--duration``, ``--screenshot``, ``--json`` of a stimulus screen (:func:`run_window`)."""
    parser.add_argument("--duration", type=positive_float, help="seconds to run, then close")
    parser.add_argument(
        "--screenshot", metavar="OUT.png", help="save a PNG of the screen after --duration s (3)"
    )
    parser.add_argument("--json", action="store_true", help="last line: summary as JSON")
