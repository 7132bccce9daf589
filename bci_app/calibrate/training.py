"""Training on a just-recorded calibration: the same trainer as ``bci-app train``.

Motor imagery: the recording's cue markers are the class names; a cue followed by a
``bci-app:invalid`` marker (before the next cue) belongs to a trial that was interrupted and is
left out. P300: the speller's flash markers, as ``bci-app train --paradigm p300`` reads them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bci_app.calibrate.controller import INVALID_MARKER, MARKER_PREFIX
from bci_app.config import AppConfig
from bci_app.io import Recording, load_recording
from bci_app.train.commands import MIN_TRIALS_PER_CLASS, TrainingError, train_command
from bci_app.train.trainer import TrainSettings

CV_FOLDS = 5


def valid_cue_events(recording: Recording) -> Recording:
    """``recording`` without app markers and without the cues of invalidated trials."""
    kept: list[tuple[int, str]] = []
    for sample, label in recording.events:
        if label == INVALID_MARKER:
            if kept:
                kept.pop()
            continue
        if label.startswith(MARKER_PREFIX):
            continue
        kept.append((sample, label))
    return dataclasses.replace(recording, events=tuple(kept))


def cue_counts(recording: Recording, classes: list[str]) -> dict[str, int]:
    return {c: sum(1 for _, label in recording.events if label == c) for c in classes}


def train_calibration(
    xdf_path: str | Path,
    classes: list[str],
    out_dir: str | Path,
    config: AppConfig,
    imagery_s: float,
    epochs: int = 30,
    seed: int = 0,
    cv_folds: int = CV_FOLDS,
    decoder: str = "auto",
) -> dict:
    """Train and save a checkpoint from a calibration recording; returns the trainer's metrics
    (``cross_validation``: the held-out score of the chosen decoder with ``auto``, else with
    ``cv_folds`` folds when every class has at least 2 trials). Raises TrainingError with the
    numbers when a class has fewer than the trainer's minimum of trials."""
    recording = valid_cue_events(load_recording(xdf_path))
    counts = cue_counts(recording, classes)
    short = {c: n for c, n in counts.items() if n < MIN_TRIALS_PER_CLASS}
    if short:
        raise TrainingError(
            f"too few valid trials to train: {short}; each class needs at least "
            f"{MIN_TRIALS_PER_CLASS} (run a longer calibration, e.g. --trials "
            f"{max(MIN_TRIALS_PER_CLASS, 10)})"
        )
    folds = min(cv_folds, min(counts.values()))
    return train_command(
        [recording],
        [f"{c}:{c}" for c in classes],
        Path(out_dir),
        config,
        settings=TrainSettings(
            epochs=epochs,
            seed=seed,
            # The pipeline is stopped while training; an inference worker of this process may
            # have set torch to one thread (a fresh worker sets it again for feedback).
            threads=os.cpu_count() or 1,
        ),
        trial_start_s=0.0,
        trial_stop_s=imagery_s,
        decoder=decoder,
        cv_folds=folds if folds >= 2 and decoder != "auto" else 0,
        overwrite=True,
        progress=False,
        description=(
            f"Calibration of {', '.join(classes)} recorded in {Path(xdf_path).name} "
            f"({', '.join(f'{c}: {n}' for c, n in counts.items())} valid trials)."
        ),
    )


def train_speller_calibration(
    xdf_path: str | Path,
    out_dir: str | Path,
    config: AppConfig,
    epochs: int = 30,
    seed: int = 0,
    cv_folds: int = CV_FOLDS,
    decoder: str = "auto",
) -> dict:
    """Train and save a P300 checkpoint from a copy-spelling calibration (``config``: a p300
    config; the recording's speller markers: ``char:<X>``, ``code<N>``, ``target`` /
    ``nontarget`` at each flash); returns the trainer's metrics (``cross_validation``: target
    detection per flash, of the decoder ``auto`` chose or with ``cv_folds`` folds)."""
    if not config.paradigm.erp:
        raise TrainingError(
            f"a speller calibration trains a p300 model, not {config.paradigm.kind}"
        )
    recording = load_recording(xdf_path)
    spelled = [label[5:] for _, label in recording.events if label.startswith("char:")]
    return train_command(
        [recording],
        [],
        Path(out_dir),
        config,
        settings=TrainSettings(epochs=epochs, seed=seed, threads=os.cpu_count() or 1),
        decoder=decoder,
        cv_folds=cv_folds if decoder != "auto" else 0,
        overwrite=True,
        progress=False,
        description=(
            f"P300 speller calibration recorded in {Path(xdf_path).name}: copy spelling of "
            f"{''.join(spelled)!r} ({len(spelled)} characters)."
        ),
    )
