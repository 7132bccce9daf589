"""``bci-app bench paradigms``: the P300 and SSVEP decoders and their peers on the shared
files, the same folds for every method.

P300 (BCI Competition II IIb, ``p300-bcicomp2``): train on run 1 and spell run 2, then the
reverse; per method the character accuracy against the number of repetitions (1-15), the ITR
from the real flash timing, dynamic stopping, and the flash AUC. SSVEP (``ssvep-exo``): leave one
session out within each subject (train on one session, test on the other, both ways); per
method the trial accuracy and the accuracy and ITR against data length (1-4 s after the cue),
and the training-free FBCCA beside them (it sees only the test session).

Ours go through the app's causal dsp, epochs and windows (:func:`with_paradigm`). The peers are
the pipelines the shared data's README measured, as their libraries define them, on MNE data
filtered offline with zero-phase FIRs: P300, pyRiemann's ``XdawnCovariances(4)`` + tangent space
+ logistic regression and scikit-learn's shrinkage LDA on 0-0.8 s epochs of a 0.5-20 Hz band
decimated to 20 Hz; SSVEP, pyRiemann covariances of 12-14, 16-18 and 20-22 Hz bands + tangent
space + logistic regression on the whole 5 s trial. The last line is one JSON object.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import mne
import numpy as np

from bci_app.config import ParadigmConfig, load_config, with_paradigm
from bci_app.decoders import FbccaDecoder
from bci_app.io import load_recording
from bci_app.train.commands import ssvep_lengths
from bci_app.train.data import extract_trials
from bci_app.train.decoders import PARADIGM_BAND_HZ, fit_decoder
from bci_app.train.erp import FlashEpochs, extract_flash_epochs, speller_metrics
from bci_app.train.trainer import TrainSettings, evaluate_trials, paradigm_settings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
P300_RUNS = ("AAS010R01_raw.fif", "AAS010R02_raw.fif")
SSVEP_CLASSES = ("rest", "13Hz", "17Hz", "21Hz")
SSVEP_SUBJECTS = ("s01", "s02", "s03", "s04")
P300_OURS = ("xdawn-riemann", "lda", "se")
SSVEP_OURS = ("fbcca", "fb-riemann", "se")
REPETITIONS_SHOWN = ("1", "3", "5", "10", "15")


def _p300_peer_scores(train: Path, test: Path) -> dict[str, np.ndarray]:
    """The peers' target probabilities ``(n_flashes, 2)`` on ``test``'s flashes, in time order."""
    from pyriemann.estimation import XdawnCovariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def epochs_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
        raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
        raw.filter(0.5, 20.0, fir_design="firwin", verbose="error")
        events, ids = mne.events_from_annotations(
            raw, regexp="^(target|nontarget)$", verbose="error"
        )
        epochs = mne.Epochs(
            raw, events, ids, tmin=0.0, tmax=0.8 - 1 / raw.info["sfreq"], baseline=None,
            preload=True, verbose="error",
        ).resample(60.0, verbose="error")  # fmt: skip
        y = (epochs.events[:, 2] == ids["target"]).astype(int)
        return epochs.get_data(copy=True) * 1e6, y

    x_train, y_train = epochs_of(train)
    x_test, _ = epochs_of(test)
    xdawn = make_pipeline(
        XdawnCovariances(4, estimator="oas"), TangentSpace(), LogisticRegression(max_iter=1000)
    ).fit(x_train, y_train)

    def binned(x: np.ndarray) -> np.ndarray:
        return x[:, :, :48].reshape(len(x), x.shape[1], 16, 3).mean(axis=3).reshape(len(x), -1)

    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(binned(x_train), y_train)
    return {
        "pyriemann_xdawn_ts_lr": xdawn.predict_proba(x_test),
        "shrinkage_lda": lda.predict_proba(binned(x_test)),
    }


def _p300_row(
    probabilities: np.ndarray, epochs: FlashEpochs, seconds: float, paradigm: ParadigmConfig
) -> dict:
    from sklearn.metrics import roc_auc_score

    metrics = speller_metrics(probabilities, epochs, paradigm.matrix, paradigm.stop_posterior)
    known = epochs.target >= 0
    return {
        "accuracy_by_repetitions": metrics["accuracy_by_repetitions"],
        "itr_bits_per_min_by_repetitions": metrics["itr_bits_per_min_by_repetitions"],
        "dynamic_stopping": metrics["dynamic_stopping"],
        "spelled_15": metrics["spelled"]["15"],
        "flash_auc": round(float(roc_auc_score(epochs.target[known], probabilities[known, 1])), 4),
        "train_seconds": round(seconds, 2),
    }


def bench_p300(methods: tuple[str, ...], settings: TrainSettings) -> dict:
    config = with_paradigm(load_config(), "p300")
    paths = [DATA / "p300-bcicomp2" / name for name in P300_RUNS]
    epochs = [extract_flash_epochs([load_recording(p)], config) for p in paths]
    folds = []
    for train, test in ((0, 1), (1, 0)):
        fold: dict = {"train": P300_RUNS[train], "test": P300_RUNS[test], "methods": {}}
        tw = epochs[train].trial_windows()
        for name in methods:
            started = time.monotonic()
            fitted = fit_decoder(name, tw, paradigm_settings(settings, "p300"), band_hz=None)
            probabilities, _ = fitted.decoder.predict(epochs[test].x)
            fold["methods"][name] = _p300_row(
                probabilities, epochs[test], time.monotonic() - started, config.paradigm
            )
        started = time.monotonic()
        for name, probabilities in _p300_peer_scores(paths[train], paths[test]).items():
            # MNE's epochs are the same flashes in the same order as ours (both: every
            # target/nontarget annotation); checked by their count.
            assert len(probabilities) == len(epochs[test])
            fold["methods"][name] = _p300_row(
                probabilities, epochs[test], time.monotonic() - started, config.paradigm
            )
        folds.append(fold)
    names = list(folds[0]["methods"])
    summary = {
        name: {
            r: float(np.mean([f["methods"][name]["accuracy_by_repetitions"][r] for f in folds]))
            for r in REPETITIONS_SHOWN
        }
        | {
            "dynamic_accuracy": float(
                np.mean([f["methods"][name]["dynamic_stopping"]["accuracy"] for f in folds])
            ),
            "dynamic_repetitions": float(
                np.mean([f["methods"][name]["dynamic_stopping"]["mean_repetitions"] for f in folds])
            ),
            "flash_auc": float(np.mean([f["methods"][name]["flash_auc"] for f in folds])),
        }
        for name in names
    }
    return {
        "protocol": "train on one run, spell the other, both ways",
        "folds": folds,
        "mean": summary,
    }


def _ssvep_peer(train: Path, test: Path) -> float:
    """pyRiemann filter-bank covariances + tangent space + LR on whole MNE trials: accuracy."""
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression

    def trials(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
        raw = mne.io.read_raw_fif(path, preload=True, verbose="error")
        events, ids = mne.events_from_annotations(raw, verbose="error")
        bands = []
        for low, high in ((12.0, 14.0), (16.0, 18.0), (20.0, 22.0)):
            filtered = raw.copy().filter(low, high, fir_design="firwin", verbose="error")
            epochs = mne.Epochs(
                filtered, events, ids, tmin=0.0, tmax=5.0 - 1 / raw.info["sfreq"],
                baseline=None, preload=True, verbose="error",
            )  # fmt: skip
            bands.append(Covariances("oas").fit_transform(epochs.get_data(copy=True)))
        names = {v: k for k, v in ids.items()}
        y = np.array([SSVEP_CLASSES.index(names[e]) for e in epochs.events[:, 2]])
        return bands, y

    train_covs, y_train = trials(train)
    test_covs, y_test = trials(test)
    spaces = [TangentSpace().fit(c) for c in train_covs]

    def features(covs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([s.transform(c) for s, c in zip(spaces, covs, strict=True)], axis=1)

    model = LogisticRegression(max_iter=2000).fit(features(train_covs), y_train)
    return float((model.predict(features(test_covs)) == y_test).mean())


def bench_ssvep(methods: tuple[str, ...], settings: TrainSettings) -> dict:
    config = with_paradigm(load_config(), "ssvep")
    class_map = {c: c for c in SSVEP_CLASSES}
    folds = []
    for subject in SSVEP_SUBJECTS:
        paths = [DATA / "ssvep-exo" / f"{subject}_r{r}_raw.fif" for r in (1, 2)]
        sessions = [extract_trials([load_recording(p)], class_map, config) for p in paths]
        for train, test in ((0, 1), (1, 0)):
            fold: dict = {"subject": subject, "train": paths[train].name, "methods": {}}
            for name in methods:
                started = time.monotonic()
                fitted = fit_decoder(
                    name,
                    sessions[train],
                    paradigm_settings(settings, "ssvep"),
                    band_hz=PARADIGM_BAND_HZ["ssvep"],
                )
                metrics = evaluate_trials(fitted.decoder, sessions[test])
                lengths = ssvep_lengths(fitted.decoder, sessions[test], config.windows.hop)
                fold["methods"][name] = {
                    "accuracy": round(metrics["accuracy"], 4),
                    **lengths,
                    "train_seconds": round(time.monotonic() - started, 2),
                }
            free = FbccaDecoder.fit(
                None, None, SSVEP_CLASSES, sessions[test].rate_hz, sessions[test].x.shape[1]
            )
            metrics = evaluate_trials(free, sessions[test])
            fold["methods"]["fbcca (training-free)"] = {
                "accuracy": round(metrics["accuracy"], 4),
                **ssvep_lengths(free, sessions[test], config.windows.hop),
                "train_seconds": 0.0,
            }
            fold["methods"]["pyriemann_fb_ts_lr"] = {
                "accuracy": _ssvep_peer(*paths[:: 1 if train == 0 else -1])
            }
            folds.append(fold)
    names = list(folds[0]["methods"])
    mean = {
        name: {
            "accuracy": round(float(np.mean([f["methods"][name]["accuracy"] for f in folds])), 4),
            "per_subject": {
                s: round(
                    float(
                        np.mean(
                            [f["methods"][name]["accuracy"] for f in folds if f["subject"] == s]
                        )
                    ),
                    4,
                )
                for s in SSVEP_SUBJECTS
            },
        }
        for name in names
    }
    return {"protocol": "leave one session out within each subject", "folds": folds, "mean": mean}


def main(
    paradigms: tuple[str, ...] = ("p300", "ssvep"),
    methods: tuple[str, ...] | None = None,
    epochs: int | None = None,
    as_json: bool = False,
) -> int:
    """Run the benchmark of ``paradigms``; ``methods``: ours to include (default: all)."""
    settings = TrainSettings(**({} if epochs is None else {"epochs": epochs}))
    runners: dict[str, tuple[Callable[..., dict], tuple[str, ...]]] = {
        "p300": (bench_p300, P300_OURS),
        "ssvep": (bench_ssvep, SSVEP_OURS),
    }
    result: dict = {}
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        for paradigm in paradigms:
            run, ours = runners[paradigm]
            chosen = tuple(m for m in ours if methods is None or m in methods)
            result[paradigm] = run(chosen, settings)
            if not as_json:
                print(f"{paradigm}: {json.dumps(result[paradigm]['mean'])}", flush=True)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))
    return 0
