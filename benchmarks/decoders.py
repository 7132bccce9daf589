"""Decoders against the field's peers, leave one run out: train on the other runs of a task,
test on the held-out run, every run in turn; never a split inside one run.

    python benchmarks/decoders.py [--data DIR] [--subject S001] [--tasks ...] [--epochs N] [--json]

Tasks (PhysioNet EEGMMIDB): imagined both fists vs both feet (runs 6, 10, 14) and imagined left
vs right fist (runs 4, 8, 12); the runs present under ``DIR/SUBJECT`` are used (S001 in
``../shared/data`` has 6/10 and 4/8, so there each fold trains on one run and tests on the
other). The peers, as their libraries define them, on epochs 0.5-2.5 s after the cue of a
zero-phase 8-30 Hz FIR band-pass (MNE): pyRiemann's OAS covariances + tangent space + logistic
regression, pyRiemann's MDM, and mne.decoding.CSP (4 components, log) + LDA. Ours: the SE
network through the app's own causal dsp and online window grid (benchmarks/eegmmidb.yaml),
per-trial decision from the mean window probability. Per fold: accuracy, balanced accuracy,
kappa and training seconds; per method the mean. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import mne
import numpy as np
from mne.decoding import CSP
from pyriemann.classification import MDM
from pyriemann.estimation import Covariances
from pyriemann.tangentspace import TangentSpace
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bci_app.config import load_config
from bci_app.io import load_recording
from bci_app.train.data import extract_trials
from bci_app.train.metrics import classification_metrics
from bci_app.train.trainer import (
    TrainSettings,
    classifier_config,
    evaluate_trials,
    split_trials,
    train_classifier,
    windows_of,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb"
CONFIG = Path(__file__).resolve().parent / "eegmmidb.yaml"
TASKS = {
    "imagined_hands_vs_feet": (("06", "10", "14"), {"T1": "hands", "T2": "feet"}),
    "imagined_left_vs_right": (("04", "08", "12"), {"T1": "left", "T2": "right"}),
}
EPOCH_S = (0.5, 2.5)  # peers' epoch after the cue (s)
BAND_HZ = (8.0, 30.0)


def peers() -> dict:
    """Fresh peer pipelines, as pyRiemann and MNE define them."""
    return {
        "pyriemann_ts_lr": make_pipeline(
            Covariances(estimator="oas"), TangentSpace(), LogisticRegression(max_iter=1000)
        ),
        "pyriemann_mdm": make_pipeline(Covariances(estimator="oas"), MDM()),
        "csp_lda": make_pipeline(
            CSP(n_components=4, reg=None, log=True, norm_trace=False),
            LinearDiscriminantAnalysis(),
        ),
    }


def peer_epochs(path: Path, class_map: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Epochs ``(n_trials, n_channels, n_samples)`` and class indices of one run."""
    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    raw.filter(*BAND_HZ, fir_design="firwin", skip_by_annotation="edge", verbose=False)
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    wanted = {label: event_id[label] for label in class_map}
    epochs = mne.Epochs(
        raw, events, wanted, tmin=EPOCH_S[0], tmax=EPOCH_S[1], baseline=None, preload=True,
        verbose=False,
    )  # fmt: skip
    classes = list(dict.fromkeys(class_map.values()))
    codes = {code: classes.index(class_map[label]) for label, code in wanted.items()}
    return epochs.get_data(copy=False), np.array([codes[c] for c in epochs.events[:, 2]])


def row(metrics: dict, seconds: float) -> dict:
    """One fold's figures from per-trial metrics (:mod:`bci_app.train.metrics`)."""
    return {
        "accuracy": round(metrics["accuracy"], 4),
        "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "kappa": round(metrics["kappa"], 4),
        "n_trials": metrics["n_trials"],
        "train_seconds": round(seconds, 2),
    }


def run_task(task: str, folder: Path, subject: str, epochs: int, seed: int) -> dict:
    runs, class_map = TASKS[task]
    files = [folder / f"{subject}R{run}.edf" for run in runs]
    files = [f for f in files if f.is_file()]
    if len(files) < 2:
        raise SystemExit(f"{task}: fewer than two of its runs {runs} under {folder}")
    classes = tuple(dict.fromkeys(class_map.values()))
    config = load_config(CONFIG)
    trials = [extract_trials([load_recording(f)], class_map, config) for f in files]
    epochs_by_run = [peer_epochs(f, class_map) for f in files]
    settings = TrainSettings(epochs=epochs, seed=seed)
    folds: dict[str, list[dict]] = {name: [] for name in [*peers(), "se"]}
    for held_out in range(len(files)):
        train_runs = [i for i in range(len(files)) if i != held_out]
        x_train = np.concatenate([epochs_by_run[i][0] for i in train_runs])
        y_train = np.concatenate([epochs_by_run[i][1] for i in train_runs])
        x_test, y_test = epochs_by_run[held_out]
        for name, model in peers().items():
            started = time.monotonic()
            model.fit(x_train, y_train)
            seconds = time.monotonic() - started
            metrics = classification_metrics(y_test, model.predict(x_test), classes)
            folds[name].append(row(metrics, seconds))
        train_tw = type(trials[0]).concatenate([trials[i] for i in train_runs])
        inner_train, inner_val = split_trials(train_tw, "trial", settings.val_fraction, seed)
        started = time.monotonic()
        result = train_classifier(
            windows_of(train_tw, inner_train),
            windows_of(train_tw, inner_val),
            classifier_config(train_tw),
            settings,
            progress=False,
        )
        seconds = time.monotonic() - started
        folds["se"].append(row(evaluate_trials(result.model, trials[held_out]), seconds))
        print(
            f"{task}: test {files[held_out].name}: "
            + ", ".join(f"{n} {f[-1]['accuracy']:.3f}" for n, f in folds.items()),
            flush=True,
        )
    summary = {
        name: {
            "mean_accuracy": round(float(np.mean([f["accuracy"] for f in per_fold])), 4),
            "mean_balanced_accuracy": round(
                float(np.mean([f["balanced_accuracy"] for f in per_fold])), 4
            ),
            "mean_train_seconds": round(float(np.mean([f["train_seconds"] for f in per_fold])), 2),
            "folds": per_fold,
        }
        for name, per_fold in folds.items()
    }
    best_peer = max(peers(), key=lambda n: summary[n]["mean_accuracy"])
    return {
        "runs": [f.name for f in files],
        "chance": 1 / len(classes),
        "methods": summary,
        "best_peer": best_peer,
        "se_minus_best_peer": round(
            summary["se"]["mean_accuracy"] - summary[best_peer]["mean_accuracy"], 4
        ),
    }


def main() -> None:
    mne.set_log_level("WARNING")
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of subject folders")
    parser.add_argument("--subject", default="S001")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--epochs", type=int, default=80, help="SE network training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = args.data / args.subject
    result = {
        "subject": args.subject,
        "protocol": "leave one run out",
        "tasks": {t: run_task(t, folder, args.subject, args.epochs, args.seed) for t in args.tasks},
    }
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
