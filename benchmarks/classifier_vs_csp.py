"""Our SE-attention classifier against CSP+LDA on the shared EEGMMIDB data, same folds, one run;
plus the attention ablation (se / eca / cbam / none) on the same folds.

    python benchmarks/classifier_vs_csp.py [--attention se eca cbam none] [--folds 5] [--json]

CSP+LDA follows MNE's motor-imagery example: 7-30 Hz FIR band-pass (offline, zero-phase),
epochs 1-2 s after the cue, ``mne.decoding.CSP(n_components=4, log=True, norm_trace=False)``
and LDA. Ours: the app's causal online preprocessing (config.yaml, notch at the US 60 Hz), 2 s
windows inside 0-4 s after the cue, per-trial decision from the mean window probability, an
inner validation split of the training folds for early stopping. Folds are class-stratified
over trials, seed 0, shared by every method. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import mne
import numpy as np
from mne.decoding import CSP
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline

from bci_app.config import load_config
from bci_app.io import load_recording
from bci_app.train.data import extract_trials
from bci_app.train.trainer import (
    TrainSettings,
    classifier_config,
    cross_validate,
    stratified_folds,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb" / "S001"
CONFIG = Path(__file__).resolve().parent / "eegmmidb.yaml"
TASKS = {
    "imagined_hands_vs_feet": (("06", "10"), {"T1": "hands", "T2": "feet"}),
    "imagined_left_vs_right": (("04", "08"), {"T1": "left", "T2": "right"}),
}


def csp_lda_epochs(
    runs: tuple[str, ...], class_map: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Epochs (n_trials, C, T) 1-2 s after each cue and labels, in the order of our trials."""
    data, labels = [], []
    for run in runs:
        raw = mne.io.read_raw_edf(DATA / f"S001R{run}.edf", preload=True, verbose=False)
        raw.filter(7.0, 30.0, fir_design="firwin", skip_by_annotation="edge", verbose=False)
        events, event_id = mne.events_from_annotations(raw, verbose=False)
        wanted = {label: event_id[label] for label in class_map}
        epochs = mne.Epochs(
            raw, events, wanted, tmin=1.0, tmax=2.0, baseline=None, preload=True, verbose=False
        )
        data.append(epochs.get_data(copy=False))
        inverse = {code: i for i, code in enumerate(wanted.values())}
        labels.append(np.array([inverse[c] for c in epochs.events[:, 2]]))
    return np.concatenate(data), np.concatenate(labels)


def run_task(task: str, attentions: list[str], n_folds: int, seed: int) -> dict:
    runs, class_map = TASKS[task]
    config = load_config(CONFIG)
    recordings = [load_recording(DATA / f"S001R{run}.edf") for run in runs]
    tw = extract_trials(recordings, class_map, config)
    folds = stratified_folds(tw, n_folds, seed)
    x_csp, y_csp = csp_lda_epochs(runs, class_map)
    trial_ids = np.unique(tw.trial)
    if not np.array_equal(y_csp, tw.trial_classes[trial_ids]):
        raise RuntimeError("CSP epochs and our trials are not in the same order")
    csp_correct = np.zeros(len(y_csp), dtype=bool)
    for test in folds:
        train = np.setdiff1d(trial_ids, test)
        model = Pipeline(
            [
                ("csp", CSP(n_components=4, reg=None, log=True, norm_trace=False)),
                ("lda", LinearDiscriminantAnalysis()),
            ]
        )
        model.fit(x_csp[train], y_csp[train])
        csp_correct[test] = model.predict(x_csp[test]) == y_csp[test]
    results = {
        "n_trials": len(trial_ids),
        "chance": 1 / len(tw.classes),
        "csp_lda": {
            "accuracy": round(float(csp_correct.mean()), 4),
            "fold_accuracy": [round(float(csp_correct[f].mean()), 4) for f in folds],
        },
    }
    settings = TrainSettings(epochs=60, patience=10, seed=seed)
    for variant in attentions:
        attention, _, squeeze = variant.partition(":")
        # KIND alone keeps the classifier's default descriptor (rms), as `bci-app train` does.
        overrides = {"squeeze": squeeze} if squeeze else {}
        classifier = classifier_config(tw, attention=attention, **overrides)
        started = time.monotonic()
        metrics = cross_validate(tw, classifier, settings, folds)
        results[f"ours_{variant}"] = {
            "accuracy": round(metrics["accuracy"], 4),
            "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
            "fold_accuracy": [round(a, 4) for a in metrics["fold_accuracy"]],
            "train_seconds": round(time.monotonic() - started, 1),
        }
        print(
            f"{task}: ours[{variant}] {metrics['accuracy']:.3f} vs CSP+LDA "
            f"{results['csp_lda']['accuracy']:.3f}",
            flush=True,
        )
    return results


def main() -> None:
    mne.set_log_level("WARNING")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attention",
        nargs="+",
        default=["se", "eca", "cbam", "none"],
        help="variants; KIND:rms uses the RMS electrode descriptor instead of the mean",
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = {task: run_task(task, args.attention, args.folds, args.seed) for task in args.tasks}
    for result in summary.values():
        ours = result.get("ours_se", {}).get("accuracy")
        result["se_minus_csp_lda"] = (
            None if ours is None else round(ours - result["csp_lda"]["accuracy"], 4)
        )
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
