"""The field's decoding metrics, per trial: accuracy, balanced accuracy, Cohen's kappa, the
chance level, Wolpaw's information transfer rate, and the accuracy against time since the cue.

A trial's decision is the argmax of the mean class probability of its windows; the curve over
time uses only the windows that had ended by then, as a live session would.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score

__all__ = [
    "TIME_STEP_S",
    "accuracy_over_time",
    "decision_latency",
    "time_course",
    "classification_metrics",
    "wolpaw_bits",
]

TIME_STEP_S = 0.5  # steps of the accuracy-against-time curve (s after the cue)


def wolpaw_bits(accuracy: float, n_classes: int) -> float:
    """Bits per decision by Wolpaw et al. (2000): ``log2 N + P log2 P + (1-P) log2((1-P)/(N-1))``;
    0 at or below chance, where the formula no longer describes a channel."""
    n, p = n_classes, accuracy
    if n < 2 or not math.isfinite(p) or p <= 1.0 / n:
        return 0.0
    bits = math.log2(n) + p * math.log2(p)
    if p < 1.0:
        bits += (1.0 - p) * math.log2((1.0 - p) / (n - 1))
    return bits


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: tuple[str, ...],
    trial_s: float | None = None,
) -> dict:
    """Accuracy, balanced accuracy, Cohen's kappa, confusion matrix (rows true, columns
    predicted), chance levels and, with ``trial_s`` (seconds per decision), the Wolpaw ITR in
    bits per minute."""
    k = len(classes)
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    n = int(len(y_true))
    per_class = [
        confusion[i, i] / confusion[i].sum() if confusion[i].sum() else float("nan")
        for i in range(k)
    ]
    present = [r for r in per_class if not math.isnan(r)]
    accuracy = float(np.trace(confusion) / n) if n else float("nan")
    agreeing = n > 0 and len(set(y_true.tolist()) | set(y_pred.tolist())) > 1
    kappa = float(cohen_kappa_score(y_true, y_pred, labels=list(range(k)))) if agreeing else 0.0
    bits = wolpaw_bits(accuracy, k)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": float(np.mean(present)) if present else float("nan"),
        "kappa": kappa,
        "confusion": confusion.tolist(),
        "classes": list(classes),
        "n_trials": n,
        "chance": 1.0 / k,
        # Accuracy a random classifier exceeds with probability 5 % at this n (binomial).
        "chance_95": float(stats.binom.ppf(0.95, n, 1.0 / k) / n) if n else float("nan"),
        "recall_per_class": dict(zip(classes, per_class, strict=True)),
        "itr_bits_per_trial": round(bits, 4),
        "itr_trial_s": trial_s,
        "itr_bits_per_min": round(bits * 60.0 / trial_s, 3) if trial_s else None,
    }


def accuracy_over_time(
    window_trial: np.ndarray,
    window_end_s: np.ndarray,
    window_probs: np.ndarray,
    trial_classes: dict[int, int],
    horizon_s: float,
    step_s: float = TIME_STEP_S,
) -> list[dict]:
    """Per-trial accuracy of the decision made from the windows that ended by ``t`` seconds
    after the cue, for ``t = step_s, 2 step_s, ... <= horizon_s``.

    ``window_trial (n,)``: the trial id of each window; ``window_end_s (n,)``: when the window
    ended, in seconds after its trial's cue; ``window_probs (n, K)``; ``trial_classes``: trial id
    -> true class index. Each point: ``t_s``, ``accuracy`` over all trials (a trial without a
    window yet counts as wrong, as a user would see no decision), ``decided`` trials.
    """
    curve = []
    n_trials = len(trial_classes)
    steps = math.floor(horizon_s / step_s + 1e-9)
    for step in range(1, steps + 1):
        t = round(step * step_s, 6)
        ended = window_end_s <= t + 1e-9
        correct = decided = 0
        for trial, true_class in trial_classes.items():
            mine = ended & (window_trial == trial)
            if not mine.any():
                continue
            decided += 1
            correct += int(np.argmax(window_probs[mine].mean(axis=0)) == true_class)
        curve.append(
            {
                "t_s": t,
                "accuracy": round(correct / n_trials, 4) if n_trials else None,
                "decided": decided,
            }
        )
    return curve


#: Time resolution of :func:`decision_latency` (s); the window hop is usually 0.1-0.25 s.
DECISION_STEP_S = 0.1
#: The fractions of the final accuracy's gain over chance that :func:`decision_latency` times.
DECISION_FRACTIONS = (0.7, 0.9)


def decision_latency(curve: list[dict], chance: float) -> dict[str, float | None]:
    """Seconds after the cue until the decision first reaches 70 % and 90 % of its final
    accuracy, counted above chance (``chance + f * (final - chance)``: a decision at chance has
    0 % of any accuracy's worth). ``curve``: :func:`accuracy_over_time`, final = its last point.
    Keys ``"70"`` and ``"90"``; None where the final accuracy is not above chance."""
    points = [(p["t_s"], p["accuracy"]) for p in curve if p["accuracy"] is not None]
    result: dict[str, float | None] = {f"{round(f * 100)}": None for f in DECISION_FRACTIONS}
    if not points or points[-1][1] <= chance:
        return result
    final = points[-1][1]
    for fraction in DECISION_FRACTIONS:
        goal = chance + fraction * (final - chance)
        result[f"{round(fraction * 100)}"] = next(t for t, acc in points if acc >= goal - 1e-9)
    return result


#: The coarse curve's steps are every n-th point of the fine one.
_STEPS_PER_POINT = round(TIME_STEP_S / DECISION_STEP_S)
assert abs(_STEPS_PER_POINT * DECISION_STEP_S - TIME_STEP_S) < 1e-9


def time_course(
    window_trial: np.ndarray,
    window_end_s: np.ndarray,
    window_probs: np.ndarray,
    trial_classes: dict[int, int],
    horizon_s: float,
    chance: float,
) -> dict:
    """``accuracy_over_time`` (:data:`TIME_STEP_S` steps) and ``decision_latency_s``, both from
    one pass over the decisions at :data:`DECISION_STEP_S` (arguments as
    :func:`accuracy_over_time`; ``chance``: the chance accuracy)."""
    fine = accuracy_over_time(
        window_trial, window_end_s, window_probs, trial_classes, horizon_s, DECISION_STEP_S
    )
    return {
        "accuracy_over_time": fine[_STEPS_PER_POINT - 1 :: _STEPS_PER_POINT],
        "decision_latency_s": decision_latency(fine, chance),
    }


#: SSVEP: the data lengths (s from the stimulation onset) its accuracy and ITR are reported at.
SSVEP_LENGTHS_S = (1.0, 2.0, 3.0, 4.0)


def by_data_length(
    window_trial: np.ndarray,
    window_end_s: np.ndarray,
    window_probs: np.ndarray,
    trial_classes: dict[int, int],
    hop_s: float,
    lengths_s: tuple[float, ...] = SSVEP_LENGTHS_S,
) -> dict:
    """Accuracy and Wolpaw ITR (bits/min, one decision per ``L`` s) of the decision made from
    ``L`` seconds of each trial, for each ``L`` in ``lengths_s``: the mean probability of the
    windows that ended by ``L + hop_s`` after the cue (the live grid's windows start up to one
    hop after the cue, so by then ``L`` s of stimulation have been windowed). Arguments as
    :func:`accuracy_over_time`; keys ``"1"``, ``"2"``, ... (seconds)."""
    n_classes = window_probs.shape[1]
    accuracy: dict[str, float | None] = {}
    itr: dict[str, float | None] = {}
    for length in lengths_s:
        point = accuracy_over_time(
            window_trial, window_end_s, window_probs, trial_classes, length + hop_s, length + hop_s
        )
        value = point[-1]["accuracy"] if point else None
        accuracy[f"{length:g}"] = value
        itr[f"{length:g}"] = (
            None if value is None else round(wolpaw_bits(value, n_classes) * 60.0 / length, 3)
        )
    return {"accuracy_by_window_s": accuracy, "itr_bits_per_min_by_window_s": itr}
