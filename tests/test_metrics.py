"""The decoding metrics: Wolpaw ITR, Cohen's kappa, accuracy against time since the cue, and
that evaluate and fast replay report them alike on real EEG (S001 with the shipped model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bci_app.config import parse_config
from bci_app.io import load_recording
from bci_app.nn.checkpoint import DEFAULT_MODEL_DIR
from bci_app.pipeline.replay import pseudo_online_metrics, run_fast
from bci_app.train.commands import evaluate_command
from bci_app.train.metrics import (
    accuracy_over_time,
    classification_metrics,
    decision_latency,
    wolpaw_bits,
)

EDF = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb" / "S001"
EEGMMIDB_MODEL = DEFAULT_MODEL_DIR.parent / "eegmmidb-s001-hands-feet"


@pytest.mark.parametrize(
    ("accuracy", "n_classes", "bits"),
    [
        (1.0, 2, 1.0),
        (0.5, 2, 0.0),  # chance: no information
        (0.3, 2, 0.0),  # below chance: reported as none, not negative
        (1.0, 4, 2.0),
        (0.9, 4, 1.3725),  # 2 + 0.9 log2 0.9 + 0.1 log2(0.1 / 3)
        (0.7, 4, 0.6432),  # 2 + 0.7 log2 0.7 + 0.3 log2(0.3 / 3)
    ],
)
def test_wolpaw_bits_per_decision(accuracy: float, n_classes: int, bits: float) -> None:
    assert wolpaw_bits(accuracy, n_classes) == pytest.approx(bits, abs=1e-4)


def test_kappa_itr_and_balanced_accuracy() -> None:
    # 3 of 4 right; each class half of the trials: p_o 0.75, p_e 0.5 -> kappa 0.5.
    metrics = classification_metrics(
        np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ("a", "b"), trial_s=4.0
    )
    assert metrics["accuracy"] == 0.75 and metrics["balanced_accuracy"] == 0.75
    assert metrics["kappa"] == pytest.approx(0.5)
    bits = wolpaw_bits(0.75, 2)
    assert metrics["itr_bits_per_trial"] == pytest.approx(bits, abs=1e-4)
    assert metrics["itr_bits_per_min"] == pytest.approx(bits * 60 / 4.0, abs=1e-3)
    # Unbalanced and always the majority class: accuracy looks fine, kappa and balance do not.
    lazy = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), ("a", "b"))
    assert lazy["accuracy"] == 0.75 and lazy["balanced_accuracy"] == 0.5
    assert lazy["kappa"] == pytest.approx(0.0) and lazy["itr_bits_per_min"] is None


def test_accuracy_over_time_uses_only_windows_that_ended() -> None:
    # Trial 0 (class 0): a misleading early window, then a confident right one.
    # Trial 1 (class 1): right from its first window, which ends only at 1.5 s.
    window_trial = np.array([0, 0, 1])
    window_end_s = np.array([1.0, 2.0, 1.5])
    probs = np.array([[0.4, 0.6], [0.95, 0.05], [0.2, 0.8]])
    curve = accuracy_over_time(window_trial, window_end_s, probs, {0: 0, 1: 1}, horizon_s=2.0)
    assert [(p["t_s"], p["accuracy"], p["decided"]) for p in curve] == [
        (0.5, 0.0, 0),  # nothing decided yet counts as wrong
        (1.0, 0.0, 1),  # trial 0 decided from its misleading window
        (1.5, 0.5, 2),
        (2.0, 1.0, 2),  # the mean of both windows of trial 0 is right
    ]


def test_decision_latency_counts_the_gain_over_chance() -> None:
    curve = [
        {"t_s": 0.5, "accuracy": 0.5, "decided": 4},
        {"t_s": 1.0, "accuracy": 0.75, "decided": 4},  # 50 % of the way from chance to 1.0
        {"t_s": 1.5, "accuracy": 0.875, "decided": 4},  # 75 %
        {"t_s": 2.0, "accuracy": 1.0, "decided": 4},
    ]
    assert decision_latency(curve, chance=0.5) == {"70": 1.5, "90": 2.0}
    flat = [{**p, "accuracy": 0.5} for p in curve]  # never above chance: no latency to report
    assert decision_latency(flat, chance=0.5) == {"70": None, "90": None}


@pytest.mark.slow
def test_evaluate_and_fast_replay_report_the_same_metrics_on_s001() -> None:
    run_file = EDF / "S001R10.edf"  # imagined hands / feet (consistency, not generalisation)
    evaluated = evaluate_command(EEGMMIDB_MODEL, [run_file])
    for key in ("kappa", "itr_bits_per_min", "itr_trial_s", "accuracy_over_time"):
        assert key in evaluated
    curve = evaluated["accuracy_over_time"]
    assert [p["t_s"] for p in curve] == [0.5 * k for k in range(1, 9)]  # 4 s trial span
    # At the end of the trial every window counts: the curve ends at the trial accuracy.
    assert curve[-1]["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-4)
    assert curve[-1]["decided"] == evaluated["n_trials"]
    run = run_fast(run_file, parse_config({"model": {"device": "cpu"}}), EEGMMIDB_MODEL)
    replayed = pseudo_online_metrics(run, load_recording(run_file))
    assert replayed["n_trials"] == evaluated["n_trials"]
    assert replayed["kappa"] == pytest.approx(evaluated["kappa"], abs=1e-6)
    assert replayed["accuracy_over_time"] == curve
    latency = evaluated["decision_latency_s"]
    assert replayed["decision_latency_s"] == latency
    assert 0 < latency["70"] <= latency["90"] <= 4.0
