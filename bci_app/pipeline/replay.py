"""``bci-app run --replay FILE``: a recording through the pipeline's dsp, windows and model.

- fast (:func:`run_fast`): no LSL, no pacing, no threads. The file's samples go in order into a
  raw :class:`RingBuffer`, through the live :class:`DspStage` (same filters, gap and NaN rules,
  window grid counted from the first sample) and the live worker's :meth:`classify`, as fast as
  the CPU allows. Deterministic: the same file, config and checkpoint give the same lines.
- paced (:func:`run_paced`): the file is replayed over LSL in real time by a
  :class:`~bci_app.sources.replay.Replayer` in this process and read by the live pipeline, whose
  inlet connects before the first sample is pushed, so both modes number windows alike.

Both write one JSON line per window: ``seq``, ``time`` (LSL time of the window's newest sample:
the file's clock in fast mode, the local clock in paced mode), ``class``, ``probabilities``,
``weights`` and ``flags``; fast mode also lists flagged windows (probabilities null).
Pseudo-online evaluation (:func:`pseudo_online_metrics`): with cue markers in the file, each
trial's decision is the argmax of the mean probability of the online windows that lie inside
``[cue + start, cue + stop)`` (the checkpoint's trial span), as ``bci-app evaluate`` defines it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci_app.config import AppConfig
from bci_app.decoders import Decoder, load_decoder
from bci_app.dsp.feed import feed_recording, offline_stage
from bci_app.dsp.stage import DspStage, model_rate
from bci_app.dsp.windows import Window
from bci_app.infer.speller import Flash
from bci_app.infer.worker import InferenceWorker, Prediction
from bci_app.io import Recording, RecordingError, load_recording
from bci_app.io.session import ReplaySession, read_session
from bci_app.nn.checkpoint import (
    CheckpointMetadata,
    apply_checkpoint,
    check_stream_compatibility,
)
from bci_app.pipeline.local import Pipeline
from bci_app.sources.replay import Replayer
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE
from bci_app.train.data import trial_window_seqs
from bci_app.train.erp import cut_flash_epochs, flash_epochs_of, speller_metrics
from bci_app.train.metrics import classification_metrics, time_course

log = logging.getLogger(__name__)

PACED_DRAIN_S = 5.0  # after the last pushed sample: longest wait for the pipeline to catch up


@dataclass
class WindowRecord:
    """One window's outcome: its prediction, or None when it was flagged (gap, NaN)."""

    seq: int
    time: float  # LSL time of the window's newest sample (s)
    flags: list[str]
    prediction: Prediction | None


@dataclass
class ReplayRun:
    """What a replay run produced; ``windows`` in sequence order."""

    source: str
    mode: str  # "fast" | "paced"
    classes: list[str]
    electrodes: list[str]
    duration_s: float  # stream seconds replayed
    wall_s: float
    windows: list[WindowRecord] = field(default_factory=list)
    stage: DspStage | None = None  # its window grid defines the trials' windows
    metadata: CheckpointMetadata | None = None
    recording: Recording | None = None  # fast mode: the recording it read (events for trials)
    damage: tuple[str, ...] = ()  # the damaged streams of a file read in part
    speller: dict | None = None  # P300 fast replay: the characters (see _spell)
    model_s: float = 0.0  # fast mode: of wall_s, the seconds spent classifying (rest: dsp)

    @property
    def predictions(self) -> dict[int, Prediction]:
        return {w.seq: w.prediction for w in self.windows if w.prediction is not None}

    def summary(self) -> dict:
        flagged = sum(1 for w in self.windows if w.prediction is None)
        return {
            "source": self.source,
            "mode": self.mode,
            "duration_s": round(self.duration_s, 4),
            "wall_s": round(self.wall_s, 4),
            "model_s": round(self.model_s, 4),
            "stream_s_per_wall_s": round(self.duration_s / self.wall_s, 2) if self.wall_s else None,
            "n_windows": len(self.windows),
            "n_predicted": len(self.windows) - flagged,
            "n_flagged": flagged,
            "damage": list(self.damage),
        }


def flag_names(flags: int) -> list[str]:
    return [name for bit, name in ((FLAG_GAP, "gap"), (FLAG_NONFINITE, "nonfinite")) if flags & bit]


def _worker(
    decoder: Decoder,
    metadata: CheckpointMetadata,
    config: AppConfig,
    labels: list[str],
    rate_hz: float,
) -> InferenceWorker:
    channel_index = check_stream_compatibility(metadata, labels, model_rate(config, rate_hz))
    return InferenceWorker.from_config(decoder, metadata.classes, channel_index, config)


#: Windows classified at once by fast replay (64 x 320 float32 windows: 80 kB each). On S001R06
#: (64 x 320, 493 windows) batches of 8-32 ran the band filter and network 1.5x faster than 256:
#: a batch stays in the cache from one step to the next.
REPLAY_BATCH = 32


def run_fast(
    source: str | Path | Recording,
    config: AppConfig,
    model_path: str | Path,
    strict: bool = False,
    batch_size: int = REPLAY_BATCH,
) -> ReplayRun:
    """Classify every window of a recording (a file's path, or one already read) without LSL
    or pacing: windows are classified ``batch_size`` at a time as the dsp cuts them (1: one by
    one, the live worker's path); ``strict`` refuses a damaged file (:mod:`bci_app.io.damage`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    decoder, metadata = load_decoder(Path(model_path), adapt=config.model.adapt)
    config = apply_checkpoint(config, metadata)
    recording = source if isinstance(source, Recording) else load_recording(source, strict)
    columns = recording.columns(config.channels.pick)
    labels = [recording.labels[i] for i in columns]
    worker = _worker(decoder, metadata, config, labels, recording.rate_hz)
    started = time.perf_counter()
    run = ReplayRun(
        recording.source,
        "fast",
        list(metadata.classes),
        list(metadata.channel_labels),
        recording.duration_s,
        0.0,
        metadata=metadata,
        recording=recording,
        damage=recording.damage,
    )
    cut_windows: Iterator[Window]
    if config.paradigm.erp:
        cut, chars, skipped, _ = cut_flash_epochs(recording, columns, config)
        cut_windows = (window for _, window in cut)
    else:
        cut_windows = _windows(recording, columns, config, run)
    windows: list[Window] = []
    pending: list[Window] = []  # usable windows not classified yet, in time order
    predictions: dict[int, Prediction] = {}

    def classify(final: bool) -> None:
        began = time.perf_counter()
        while len(pending) >= batch_size or (final and pending):
            chunk = pending[:batch_size]
            del pending[:batch_size]
            one = batch_size == 1  # the live worker's path, window by window
            found = [worker.classify(chunk[0])] if one else worker.classify_batch(chunk)
            predictions.update((p.seq, p) for p in found)
        run.model_s += time.perf_counter() - began

    # Each batch is classified as soon as the dsp has cut it: its windows are still in the
    # cache, which made the run 1.3x faster than cutting every window first.
    for window in cut_windows:
        windows.append(window)
        if window.usable:
            pending.append(window)
            classify(final=False)
    classify(final=True)
    if config.paradigm.erp:
        run.speller = _spell(cut, chars, skipped, predictions, recording, labels, config)
    for window in windows:
        run.windows.append(
            WindowRecord(
                window.seq,
                window.last_timestamp,
                flag_names(window.flags),
                predictions.get(window.seq),
            )
        )
    run.wall_s = time.perf_counter() - started
    return run


def _spell(
    cut: list[tuple[Flash, Window]],
    chars: list[str],
    skipped: int,
    predictions: dict[int, Prediction],
    recording: Recording,
    labels: list[str],
    config: AppConfig,
) -> dict:
    """A P300 replay's characters: what the live speller would have spelled (dynamic stopping,
    ``online``, as :func:`speller_metrics` replays it) and the accuracy against repetitions
    (``characters``); ``accuracy`` / ``n_trials`` / ``chance`` are the online spelling's."""
    paradigm = config.paradigm
    epochs = flash_epochs_of(
        [(cut, chars, skipped, recording.rate_hz)], tuple(labels), config.model_rate or 0.0,
        (recording.run,),
    )  # fmt: skip
    probabilities = np.stack(
        [predictions[w.seq].probabilities for _, w in cut if w.seq in predictions]
    )
    characters = speller_metrics(probabilities, epochs, paradigm.matrix, paradigm.stop_posterior)
    online = characters["dynamic_stopping"]  # the live speller's rule, flash by flash
    return {
        "accuracy": online["accuracy"],
        "n_trials": online["n_scored"],
        "chance": characters["chance"],
        "online": {
            key: online[key] for key in ("spelled", "asked", "repetitions", "stopped_early")
        },
        "characters": characters,
    }


def _windows(
    recording: Recording, columns: np.ndarray, config: AppConfig, run: ReplayRun
) -> Iterator[Window]:
    """Windows of the live DspStage fed with the whole recording in order."""
    stage = offline_stage(recording, len(columns), config)
    run.stage = stage
    for windows in feed_recording(recording, columns, stage, config):
        yield from windows


def _eeg_stream_name(session: ReplaySession) -> str:
    numeric = [s for s in session.streams if not s.is_string and s.rate_hz > 0]
    if not numeric:
        raise RecordingError(f"{session.source}: no regular-rate numeric (EEG) stream to replay")
    typed = [s for s in numeric if s.type.lower() == "eeg"]
    return (typed or numeric)[0].name


def run_paced(
    path: str | Path,
    config: AppConfig,
    model_path: str | Path,
    speed: float = 1.0,
    strict: bool = False,
) -> ReplayRun:
    """Replay ``path`` over LSL in real time (times ``speed``) and run the live pipeline on it;
    ``strict`` refuses a damaged file (:mod:`bci_app.io.damage`)."""
    session = read_session(path, strict=strict)
    eeg_name = _eeg_stream_name(session)
    eeg = next(s for s in session.streams if s.name == eeg_name)
    replayer = Replayer(session, speed=speed, wait_for_consumers=5.0)
    stream = config.stream.model_copy(
        update={"source_id": replayer.source_id_of(eeg_name), "name": None, "type": None}
    )
    config = config.model_copy(update={"stream": stream})
    records: list[WindowRecord] = []
    pipeline = Pipeline(config, with_model=True, model_path=model_path)

    def collect(prediction: Prediction) -> None:
        records.append(WindowRecord(prediction.seq, prediction.timestamp, [], prediction))

    pipeline.add_prediction_sink(collect)
    started = time.perf_counter()
    try:
        pipeline.start()
        replayer.start()
        while not replayer.wait(0.5):
            pass
        if replayer.error is not None:
            raise RecordingError(f"{session.source}: replay failed: {replayer.error}")
        deadline = time.monotonic() + PACED_DRAIN_S
        while time.monotonic() < deadline:
            status = pipeline.status()
            if status is not None and status.samples_processed >= eeg.n_samples:
                break
            time.sleep(0.02)
        time.sleep(0.2)  # the last window's inference
    finally:
        pipeline.stop()
        replayer.stop()
    metadata = pipeline.metadata
    run = ReplayRun(
        session.source,
        "paced",
        list(metadata.classes),
        list(metadata.channel_labels),
        eeg.n_samples / eeg.rate_hz,
        time.perf_counter() - started,
        sorted(records, key=lambda r: r.seq),
        stage=pipeline.stage,
        metadata=metadata,
        damage=session.damage,
    )
    return run


def write_jsonl(run: ReplayRun, out: str | Path) -> Path:
    """One header line (classes, electrodes, source, mode), then one line per window."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        header = {
            "classes": run.classes,
            "electrodes": run.electrodes,
            "source": run.source,
            "mode": run.mode,
        }
        f.write(json.dumps(header) + "\n")
        for window in run.windows:
            p = window.prediction
            record = {
                "seq": window.seq,
                "time": window.time,
                "class": None if p is None else p.class_name,
                "probabilities": None
                if p is None
                else [round(float(v), 6) for v in p.probabilities],
                "weights": None if p is None else [round(float(v), 6) for v in p.weights],
                "flags": window.flags,
            }
            f.write(json.dumps(record) + "\n")
    return out


def pseudo_online_metrics(run: ReplayRun, recording: Recording) -> dict | None:
    """Per-trial metrics of the online decisions (:mod:`bci_app.train.metrics`); None when the
    file has no cue of the model.

    Trials open at events whose label is in the checkpoint's class map and span its
    ``trial_window_s``; a trial's decision is the argmax of the mean probability of its
    predicted windows (flagged windows do not count; a trial without any is left out).
    ``accuracy_over_time`` decides from the windows that had ended by each time after the cue.
    """
    if run.speller is not None:
        return run.speller
    metadata = run.metadata
    training = metadata.training
    class_map = dict(training.get("class_map") or {c: c for c in metadata.classes})
    start_s, stop_s = training.get("trial_window_s", [0.0, 4.0])
    predictions = run.predictions
    classes = tuple(metadata.classes)
    stage = run.stage
    hop, length, rate = stage.cutter.hop, stage.cutter.length, stage.rate_hz
    y_true, y_pred, skipped = [], [], 0
    window_trial, window_end, window_probs, trial_classes = [], [], [], {}
    for cue, label in recording.events:
        if label not in class_map or class_map[label] not in classes:
            continue
        first, last = trial_window_seqs(stage, cue, start_s, stop_s)
        seqs = [s for s in range(first, last + 1) if s in predictions]
        if not seqs:
            skipped += 1
            continue
        trial = len(y_true)
        true_class = classes.index(class_map[label])
        probs = [predictions[s].probabilities for s in seqs]
        y_true.append(true_class)
        y_pred.append(int(np.argmax(np.mean(probs, axis=0))))
        trial_classes[trial] = true_class
        cue_s = cue / recording.rate_hz
        for s_, p in zip(seqs, probs, strict=True):
            window_trial.append(trial)
            window_end.append((s_ * hop + length) / rate - cue_s)
            window_probs.append(p)
    if not y_true:
        return None
    metrics = classification_metrics(
        np.asarray(y_true), np.asarray(y_pred), classes, trial_s=stop_s - start_s
    )
    metrics["trials_without_windows"] = skipped
    metrics["trial_window_s"] = [start_s, stop_s]
    metrics["hop_s"] = hop / rate
    metrics.update(
        time_course(
            np.asarray(window_trial),
            np.asarray(window_end),
            np.asarray(window_probs),
            trial_classes,
            stop_s,
            metrics["chance"],
        )
    )
    return metrics
