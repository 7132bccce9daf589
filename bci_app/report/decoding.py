"""The report's decoding numbers, from the app's own training and evaluation code.

With a checkpoint: the scores in its metadata (held out when it was trained), and
:func:`~bci_app.train.trainer.evaluate_trials` of the model on this file through the model's
own dsp and trial window (what ``bci-app evaluate`` prints), plus its electrode weights averaged
over this file's windows. Without one: a quick classical decoder (:data:`QUICK_DECODERS`)
fitted by :func:`~bci_app.train.decoders.fit_decoder` and scored on held-out folds of this file
(:func:`~bci_app.train.decoders.auto_folds`: class-stratified blocks of consecutive trials in
one run, as ``train --decoder auto`` scores), every window predicted by the fold that did not
train on it; the electrode weights are those of the decoder refitted on every trial.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bci_app.config import AppConfig
from bci_app.decoders import Decoder, DecoderError, load_decoder
from bci_app.decoders.threads import blas_on_one_thread
from bci_app.io import Recording, label_key
from bci_app.nn.checkpoint import METADATA_FILE, CheckpointMetadata
from bci_app.report.cues import ReportError
from bci_app.train.commands import config_for_checkpoint
from bci_app.train.data import TrialWindows, extract_trials
from bci_app.train.decoders import FOLD_THREADS, auto_folds, fit_decoder
from bci_app.train.metrics import classification_metrics, time_course
from bci_app.train.trainer import (
    TrainSettings,
    evaluate_trials,
    trial_probabilities,
    trial_seconds,
)

__all__ = [
    "DEFAULT_QUICK_DECODER",
    "MULTICLASS_QUICK_DECODER",
    "QUICK_DECODERS",
    "Decoding",
    "default_quick_decoder",
    "load_model",
    "model_decoding",
    "quick_decoding",
]

#: Decoders the report may fit on the file itself.
QUICK_DECODERS = ("csp-lda", "riemann", "mdm")
#: The default for two classes; for more, :data:`MULTICLASS_QUICK_DECODER`. On S001R06 (64
#: channels, 2 cores, BLAS on one thread) csp-lda scored T1/T2 in 1.1 s (riemann 6 s), but
#: with T0 as a third class its joint diagonalisation took 22 s (riemann 12 s).
DEFAULT_QUICK_DECODER = "csp-lda"
MULTICLASS_QUICK_DECODER = "riemann"


def default_quick_decoder(n_classes: int) -> str:
    """The decoder the report fits when none is asked for (see :data:`DEFAULT_QUICK_DECODER`)."""
    return DEFAULT_QUICK_DECODER if n_classes <= 2 else MULTICLASS_QUICK_DECODER


@dataclass(frozen=True, eq=False)
class Decoding:
    """What the report shows of a decoder.

    ``metrics``: :func:`~bci_app.train.metrics.classification_metrics` with
    ``accuracy_over_time`` and ``decision_latency_s`` (None when no decoder could be scored);
    ``weights (n,)``: mean electrode weights on ``weight_labels`` (None: none); ``model_scores``:
    the checkpoint's own held-out metrics; ``notes``: sentences for the reader.
    """

    decoder: str
    description: str
    protocol: str
    metrics: dict | None
    weights: np.ndarray | None
    weight_labels: tuple[str, ...]
    weights_meaning: str
    model_scores: dict | None = None
    notes: tuple[str, ...] = field(default=())
    seconds: float = 0.0


def load_model(model_dir: str | Path) -> tuple[Decoder, CheckpointMetadata]:
    """The checkpoint's decoder and metadata, refused with a :class:`ReportError` when the
    report cannot use it (not a motor-imagery model, or no class map)."""
    decoder, metadata = load_decoder(model_dir)
    if metadata.paradigm.kind != "mi":
        raise ReportError(
            f"{model_dir} is a {metadata.paradigm.kind} model; the session report covers "
            "motor-imagery models (cue-locked ERD/ERS). Use `bci-app evaluate` for it"
        )
    if not isinstance(metadata.training.get("class_map"), dict):
        raise ReportError(
            f"{Path(model_dir) / METADATA_FILE}: training.class_map is missing, so the file's "
            "cue markers cannot be matched to the model's classes; pass them with --classes, "
            f"e.g. --classes {' '.join(f'LABEL:{c}' for c in metadata.classes)}"
        )
    return decoder, metadata


def _check_channels(recording: Recording, metadata: CheckpointMetadata, model: str) -> None:
    have = {label_key(label) for label in recording.labels}
    missing = [label for label in metadata.channel_labels if label_key(label) not in have]
    if missing:
        raise ReportError(
            f"{model} reads {len(metadata.channel_labels)} channels, {len(missing)} of which "
            f"{recording.source} does not have: {', '.join(missing)} (the file has "
            f"{', '.join(recording.labels)}). Use a model trained on this cap (bci-app train), "
            "or make the report without --model"
        )


def _mean_weights(decoder: Decoder, tw: TrialWindows) -> np.ndarray:
    """Electrode weights ``(n_channels,)`` averaged over ``tw``'s windows, fed in time order."""
    decoder.reset()
    _, weights = decoder.predict(tw.x)
    return np.asarray(weights, dtype=np.float64).mean(axis=0)


def in_training(recording: Recording, metadata: CheckpointMetadata) -> bool:
    """Whether ``recording`` is one of the files the checkpoint was trained on (both reports
    say so beside a score that is then not held out)."""
    files = metadata.training.get("files") or []
    mine = Path(recording.source)
    for name in files:
        other = Path(str(name))
        if other.name == mine.name:
            return True
        try:
            if other.resolve() == mine.resolve():
                return True
        except OSError:
            continue
    return False


def model_decoding(
    recording: Recording,
    model_dir: str | Path,
    decoder: Decoder,
    metadata: CheckpointMetadata,
    class_map: Mapping[str, str],
) -> Decoding:
    """The model's own held-out scores and its evaluation on ``recording`` (its dsp, windows,
    channels and trial window)."""
    started = time.monotonic()
    name = str(model_dir)
    _check_channels(recording, metadata, name)
    start, stop = metadata.training.get("trial_window_s", [0.0, 4.0])
    tw = extract_trials(
        [recording],
        dict(class_map),
        config_for_checkpoint(metadata),
        float(start),
        float(stop),
        channels=metadata.channel_labels,
    )
    if list(tw.classes) != list(metadata.classes):
        raise ReportError(
            f"{recording.source} gives classes {list(tw.classes)} but {name} knows "
            f"{list(metadata.classes)}; map a cue marker to every class with --classes"
        )
    metrics = evaluate_trials(decoder, tw)
    weights = _mean_weights(decoder, tw)
    notes = []
    if in_training(recording, metadata):
        notes.append(
            f"{Path(recording.source).name} is one of the files {name} was trained on, so its "
            "accuracy on this file is not a held-out score; the cross-validated score from "
            "training is."
        )
    flagged = int(tw.trial_flagged.sum())
    if flagged:
        notes.append(f"{flagged} window(s) over gaps or non-finite samples were skipped.")
    kind = str(metadata.training.get("decoder_asked") or metadata.decoder.kind)
    scores = metadata.metrics.get("cross_validation") or metadata.metrics.get("validation")
    return Decoding(
        decoder=f"model {name} ({metadata.metrics.get('decoder', kind)})",
        description=(
            f"the checkpoint {name} ({metadata.decoder.kind} decoder, classes "
            f"{', '.join(metadata.classes)}, {len(metadata.channel_labels)} channels, "
            f"{metadata.window_s:g} s windows every {metadata.hop_s:g} s) applied to this file"
        ),
        protocol=f"the model as trained, on every trial of this file ({start:g}-{stop:g} s)",
        metrics=metrics,
        weights=weights,
        weight_labels=tuple(tw.labels),
        weights_meaning=metadata.decoder.weights_meaning,
        model_scores=scores if isinstance(scores, dict) else None,
        notes=tuple(notes),
        seconds=time.monotonic() - started,
    )


def quick_decoding(
    recording: Recording,
    class_map: Mapping[str, str],
    config: AppConfig,
    trial_s: tuple[float, float],
    name: str | None = None,
) -> Decoding:
    """Held-out scores of decoder ``name`` (None: :func:`default_quick_decoder`) fitted on this
    file alone (see the module doc); a decoding section without numbers (and a note why) when
    too few trials."""
    name = name or default_quick_decoder(len(set(class_map.values())))
    if name not in QUICK_DECODERS:
        raise ReportError(
            f"the report fits {', '.join(QUICK_DECODERS)} on the file, not {name!r}; train "
            "another decoder with `bci-app train` and pass it with --model"
        )
    started = time.monotonic()
    start, stop = trial_s
    tw = extract_trials([recording], dict(class_map), config, start, stop)
    protocol, folds = auto_folds(tw)
    description = f"a {name} decoder fitted on this file (no --model given)"
    window_probs = np.zeros((len(tw), len(tw.classes)))

    def fit_fold(k: int) -> tuple[np.ndarray, np.ndarray]:
        training = ~np.isin(tw.trial, folds[k])
        fitted = fit_decoder(name, tw.subset(training), TrainSettings(seed=k), adapt=False)
        fitted.decoder.reset()
        probs, _ = fitted.decoder.predict(tw.x[~training])
        return ~training, probs

    fold_accuracy = []
    try:
        # As auto scores its folds: BLAS on one thread, FOLD_THREADS fits at once.
        with blas_on_one_thread(), ThreadPoolExecutor(FOLD_THREADS, "bci-app-report") as pool:
            final_job = pool.submit(fit_decoder, name, tw, TrainSettings(), adapt=False)
            for held_out, probs in pool.map(fit_fold, range(len(folds))):
                window_probs[held_out] = probs
                _, trial_probs = trial_probabilities(tw.subset(held_out), probs)
                truth = tw.trial_classes[np.unique(tw.trial[held_out])]
                accuracy = float((trial_probs.argmax(axis=1) == truth).mean())
                fold_accuracy.append(round(accuracy, 4))
            final = final_job.result()
    except DecoderError as exc:
        return Decoding(
            decoder=name,
            description=description,
            protocol=protocol,
            metrics=None,
            weights=None,
            weight_labels=tuple(tw.labels),
            weights_meaning="",
            notes=(f"No decoding scores: {exc}.",),
            seconds=time.monotonic() - started,
        )
    trial_ids, probs = trial_probabilities(tw, window_probs)
    metrics = classification_metrics(
        tw.trial_classes[trial_ids], probs.argmax(axis=1), tw.classes, trial_seconds(tw)
    )
    metrics["fold_accuracy"] = fold_accuracy
    metrics["n_folds"] = len(folds)
    metrics.update(
        time_course(
            tw.trial,
            tw.window_end_s(),
            window_probs,
            {int(t): int(tw.trial_classes[t]) for t in trial_ids},
            stop,
            metrics["chance"],
        )
    )
    notes = [
        f"Cross-validated on this run alone ({protocol}, each fold's decoder fitted on the "
        "other folds' trials): a first look, from fewer training trials than a model trained "
        "on the whole session has."
    ]
    flagged = int(tw.trial_flagged.sum())
    if flagged:
        notes.append(f"{flagged} window(s) over gaps or non-finite samples were skipped.")
    return Decoding(
        decoder=name,
        description=description,
        protocol=f"held out: {protocol}",
        metrics=metrics,
        weights=_mean_weights(final.decoder, tw),
        weight_labels=tuple(tw.labels),
        weights_meaning=final.decoder.weights_meaning
        + " (the decoder refitted on every trial of this file)",
        notes=tuple(notes),
        seconds=time.monotonic() - started,
    )
