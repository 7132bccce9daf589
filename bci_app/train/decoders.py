"""Fitting any decoder kind on trial windows, and ``auto``: choosing one on the calibration alone.

Every decoder is fitted on the app's online windows (:class:`~bci_app.train.data.TrialWindows`)
and judged per trial (the mean window probability), so what is chosen here is what runs live.
``auto`` scores each candidate by leave-one-run-out when the data hold two runs or more, else
on blocks of consecutive trials (a random split of one run scored riemann 0.32 on a run it then
decoded the next run from at 0.93), and never looks at data outside the calibration. It also
scores the ensembles of the candidates from the same fold predictions, and picks the first
candidate within one trial of the highest balanced accuracy, or for the P300 speller within
0.005 of the highest AUC (:func:`_choose`).
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from sklearn.metrics import roc_auc_score

from bci_app.config import AUTO_BUDGET_S, DECODER_CHOICES
from bci_app.decoders import (
    DEFAULT_MEMORY_WINDOWS,
    Alignment,
    CspLdaDecoder,
    Decoder,
    DecoderError,
    EnsembleDecoder,
    FbccaDecoder,
    FilterBankRiemannDecoder,
    MdmDecoder,
    NetworkDecoder,
    RiemannDecoder,
    ShrinkageLdaDecoder,
    XdawnRiemannDecoder,
    align_runs,
)
from bci_app.decoders.band import BandFilter
from bci_app.decoders.threads import blas_on_one_thread
from bci_app.train.data import TrialWindows, trials_per_class
from bci_app.train.metrics import classification_metrics
from bci_app.train.trainer import (
    StepBar,
    TrainSettings,
    classifier_config,
    seconds_per_window,
    split_trials,
    train_classifier,
    trial_seconds,
    windows_of,
)

log = logging.getLogger(__name__)

NETWORKS = ("se", "eca", "cbam")
CLASSICAL = ("riemann", "mdm", "csp-lda")
ERP = ("xdawn-riemann", "lda")
SSVEP = ("fbcca", "fb-riemann")
DECODERS = (*NETWORKS, *CLASSICAL, *ERP, *SSVEP)
assert (*DECODERS, "auto") == DECODER_CHOICES
#: The decoders of each paradigm (the networks serve all three).
PARADIGM_DECODERS = {
    "mi": (*NETWORKS, *CLASSICAL),
    "p300": (*NETWORKS, *ERP),
    "ssvep": (*NETWORKS, *SSVEP),
}
#: What ``auto`` tries, in this order (the SE network stands for the networks).
AUTO_CANDIDATES = ("riemann", "mdm", "csp-lda", "se")
PARADIGM_AUTO_CANDIDATES = {
    "mi": AUTO_CANDIDATES,
    "p300": ("xdawn-riemann", "lda", "se"),
    "ssvep": ("fbcca", "fb-riemann", "se"),
}
#: What ``auto`` chooses by: argmax balanced accuracy per trial, or (two classes) AUC.
Criterion = Literal["balanced_accuracy", "auc"]
#: The criterion of each paradigm: a speller sums flash scores, so their ranking counts.
PARADIGM_CRITERION: dict[str, Criterion] = {
    "mi": "balanced_accuracy",
    "p300": "auc",
    "ssvep": "balanced_accuracy",
}
LEAVE_ONE_RUN_OUT = "leave one run out"
#: Test folds of ``auto`` in a single run: blocks of consecutive trials (time moves on between
#: them, as between calibration and feedback).
BLOCKS = 3
#: Every decoder's own band inside each window (Hz): sensorimotor mu and beta.
BAND_HZ = (8.0, 30.0)
#: The band inside each window per paradigm: none for ERPs (the dsp's 0.5-20 Hz keeps the
#: waveform) and SSVEP (the decoders choose their own bands around the frequencies).
PARADIGM_BAND_HZ: dict[str, tuple[float, float] | None] = {
    "mi": BAND_HZ,
    "p300": None,
    "ssvep": None,
}


def _band_passed(tw: TrialWindows, band_hz: tuple[float, float] | None) -> np.ndarray:
    """``tw.x`` filtered to ``band_hz`` inside each window (unchanged when None)."""
    return tw.x if band_hz is None else BandFilter(*band_hz, tw.rate_hz)(tw.x)


#: Threads fitting a classical decoder's folds at once in ``auto`` (this machine class has 2 cores).
FOLD_THREADS = 2
#: Trials per class each decoder needs at least; fewer: left out of ``auto`` with this reason,
#: or refused when asked for by name.
MIN_TRIALS = {
    "se": 5,
    "eca": 5,
    "cbam": 5,
    "riemann": 4,
    "mdm": 3,
    "csp-lda": 4,
    "xdawn-riemann": 4,
    "lda": 4,
    "fbcca": 2,
    "fb-riemann": 3,
}


@dataclass
class FitResult:
    """A fitted decoder, its kind name and what the fit reports (seconds, network epochs)."""

    decoder: Decoder
    name: str
    info: dict = field(default_factory=dict)


def too_few_trials(name: str, counts: dict[str, int]) -> str | None:
    """Why ``name`` cannot be fitted on trials of these ``counts`` per class (too few of a
    class), else None."""
    need = MIN_TRIALS[name]
    short = {c: n for c, n in counts.items() if n < need}
    if short:
        return f"{name} needs at least {need} trials per class, got {short}"
    return None


def fit_decoder(
    name: str,
    tw: TrialWindows,
    settings: TrainSettings,
    adapt: bool = True,
    progress: bool = False,
    band_hz: tuple[float, float] | None = BAND_HZ,
    band_passed: np.ndarray | None = None,
) -> FitResult:
    """Fit decoder ``name`` (one of :data:`DECODERS`) on all windows of ``tw``; ``band_hz``
    None leaves out the band inside each window (for the recipe's ablation); ``band_passed``:
    ``tw.x`` already filtered to ``band_hz`` (``auto`` filters once for all of its folds).

    Every kind sees :data:`BAND_HZ` inside each window: on S001 (leave one run out, 3 seeds)
    it took the SE network on hands/feet from 0.27-1.00 to 0.87-0.93. The classical decoders
    also get Euclidean alignment, each run on its own mean covariance, and online the reference
    of all of ``tw``, adapting over ``DEFAULT_MEMORY_WINDOWS`` windows when ``adapt`` (riemann,
    left/right: 0.667 without, 0.800 with). So does the network with the tangent body (the
    default, ``settings.network_body``), whose matrix logarithm needs re-centred windows.
    Alignment did not help the EEGNet body (hands/feet 0.900 with and without, left/right 0.622
    with, 0.644 without). Networks train with ``settings`` (the small-data recipe by default).
    """
    if name not in DECODERS:
        raise DecoderError(f"unknown decoder {name!r}; choose one of {', '.join(DECODER_CHOICES)}")
    reason = too_few_trials(name, trials_per_class(tw))
    if reason:
        raise DecoderError(f"{reason}; record more trials or choose another decoder")
    started = time.monotonic()
    band = None if band_hz is None else BandFilter(*band_hz, tw.rate_hz)
    x = band_passed if band_passed is not None else tw.x if band is None else band(tw.x)
    alignment: Alignment | None = None
    if name in CLASSICAL or (name in NETWORKS and settings.network_body == "tangent"):
        # covariance decoders, and the tangent body, whose logarithm at I is then the tangent
        # space at the calibration's mean
        alignment = Alignment.fit(x, DEFAULT_MEMORY_WINDOWS if adapt else 0)
        x = align_runs(x, tw.run, alignment)
    if name in NETWORKS:
        prepared = tw.with_x(x)
        if settings.early_stopping:
            train_ids, val_ids = split_trials(
                prepared, settings.split, settings.val_fraction, settings.seed
            )
            train, val = windows_of(prepared, train_ids), windows_of(prepared, val_ids)
        else:
            train, val = prepared, None
        members: list[Decoder] = []
        for k in range(settings.seeds):  # seeds > 1: the same network from other starts
            result = train_classifier(
                train,
                val,
                classifier_config(tw, attention=name, body=settings.network_body),
                settings.model_copy(update={"seed": settings.seed + k}),
                labels=tw.labels,
                progress=progress,
            )
            members.append(NetworkDecoder(result.model))
            members[-1].band = band
            members[-1].alignment = copy.deepcopy(alignment)  # each adapts on its own
        info = {"epochs_run": len(result.history), "train_trials": train.n_trials}
        if val is not None:
            info.update(best_epoch=result.best_epoch, validation=result.val_metrics)
        if len(members) > 1:
            info["seeds"] = len(members)
            decoder: Decoder = EnsembleDecoder(members)
            band = None  # each member band-passes and aligns its windows
        else:
            decoder = members[0]
    elif name in ERP or name in SSVEP:
        # Their own features (xDAWN, bin means, sub-bands) need the epoch's waveform or the
        # flicker's phase, which re-centring the covariances would not keep.
        decoder = {
            "xdawn-riemann": lambda: XdawnRiemannDecoder.fit(x, tw.y),
            "lda": lambda: ShrinkageLdaDecoder.fit(x, tw.y, tw.rate_hz),
            "fbcca": lambda: FbccaDecoder.fit(x, tw.y, tw.classes, tw.rate_hz, x.shape[1]),
            "fb-riemann": lambda: FilterBankRiemannDecoder.fit(x, tw.y, tw.classes, tw.rate_hz),
        }[name]()
        info = {}
    else:
        fit: Callable[[np.ndarray, np.ndarray], Decoder] = {
            "riemann": RiemannDecoder.fit,
            "mdm": MdmDecoder.fit,
            "csp-lda": CspLdaDecoder.fit,
        }[name]
        decoder = fit(x, tw.y)
        decoder.alignment = alignment
        info = {}
    decoder.band = band
    info["train_seconds"] = round(time.monotonic() - started, 2)
    return FitResult(decoder, name, info)


def auto_folds(tw: TrialWindows) -> tuple[str, list[np.ndarray]]:
    """Test folds (trial ids) for ``auto``: one per run with two runs or more, else
    :data:`BLOCKS` blocks of consecutive trials (fewer when a class has fewer trials): block
    ``i`` holds the ``i``-th third, in time, of every class's trials."""
    trial_ids = np.unique(tw.trial)
    runs = np.unique(tw.trial_runs[trial_ids])
    if len(runs) >= 2:
        return LEAVE_ONE_RUN_OUT, [trial_ids[tw.trial_runs[trial_ids] == r] for r in runs]
    n_folds = max(2, min(BLOCKS, min(trials_per_class(tw).values())))
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    for cls in np.unique(tw.trial_classes[trial_ids]):
        members = trial_ids[tw.trial_classes[trial_ids] == cls]
        in_time = members[np.argsort(tw.trial_cues[members], kind="stable")]
        for fold, block in zip(folds, np.array_split(in_time, n_folds), strict=True):
            fold.extend(block.tolist())
    blocks = [np.sort(np.array(f, dtype=np.int64)) for f in folds]
    return f"{n_folds} blocks of consecutive trials", blocks


@dataclass
class _Scores:
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)  # trial -> (K,)
    seconds: list[float] = field(default_factory=list)
    fold_accuracy: list[float] = field(default_factory=list)


def _trial_probabilities(decoder: Decoder, tw: TrialWindows) -> dict[int, np.ndarray]:
    """Each trial's mean window probability, windows fed in time order (causal adaptation)."""
    decoder.reset()
    probabilities, _ = decoder.predict(tw.x)
    return {int(t): probabilities[tw.trial == t].mean(axis=0) for t in np.unique(tw.trial)}


def _score(scores: _Scores, tw: TrialWindows) -> dict:
    """Held-out per-trial metrics (:func:`classification_metrics`, ITR included) of pooled
    fold predictions, with the mean probability of the true class, per-fold accuracy and the
    training seconds summed over folds."""
    trials = np.array(sorted(scores.probabilities))
    probabilities = np.stack([scores.probabilities[t] for t in trials])
    truth = tw.trial_classes[trials]
    metrics = classification_metrics(
        truth, probabilities.argmax(axis=1), tw.classes, trial_seconds(tw)
    )
    metrics["true_class_probability"] = float(probabilities[np.arange(len(truth)), truth].mean())
    if len(tw.classes) == 2 and len(set(truth.tolist())) == 2:
        # how well the second class is ranked above the first (a P300 speller sums the scores,
        # so its ranking counts, not the side of 0.5 each flash lands on)
        metrics["auc"] = float(roc_auc_score(truth, probabilities[:, 1]))
    metrics["fold_accuracy"] = scores.fold_accuracy
    metrics["train_seconds"] = float(np.sum(scores.seconds))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def _fold_scores(
    names: Sequence[str],
    tw: TrialWindows,
    folds: Sequence[np.ndarray],
    settings: TrainSettings,
    adapt: bool,
    step: Callable[[str], None],
    band_passed: np.ndarray,
    band_hz: tuple[float, float] | None = BAND_HZ,
) -> dict[str, _Scores]:
    """Fit each of ``names`` on all but each fold and predict the fold's trials (fold ``k``
    with seed + k); ``band_passed``: ``tw.x`` filtered to :data:`BAND_HZ`.

    Classical decoders fit on :data:`FOLD_THREADS` threads, all their folds at once: their
    covariance algebra runs in LAPACK without the GIL and draws no random numbers, so the
    scores do not depend on the order (riemann, mdm and csp-lda on 45 trials x 64 channels,
    2 cores: 14 -> 9 s). Networks train one fold after another: torch's global random state
    must stay per fold.
    """

    def fit_fold(name: str, k: int) -> tuple[dict[int, np.ndarray], float]:
        training = ~np.isin(tw.trial, folds[k])
        fold_settings = settings.model_copy(update={"seed": settings.seed + k})
        fitted = fit_decoder(
            name,
            tw.subset(training),
            fold_settings,
            adapt,
            band_hz=band_hz,
            band_passed=band_passed[training],
        )
        probabilities = _trial_probabilities(fitted.decoder, windows_of(tw, folds[k]))
        return probabilities, fitted.info["train_seconds"]

    jobs = [(name, k) for name in names for k in range(len(folds))]
    scores = {name: _Scores() for name in names}
    with contextlib.ExitStack() as stack:
        if any(name in NETWORKS for name in names):
            results: Iterator = (fit_fold(*job) for job in jobs)
        else:
            stack.enter_context(blas_on_one_thread())
            pool = stack.enter_context(ThreadPoolExecutor(FOLD_THREADS, "bci-app-fold"))
            results = pool.map(lambda job: fit_fold(*job), jobs)
        for (name, k), (trial_probs, seconds) in zip(jobs, results, strict=True):
            step(f"{name} fold {k + 1}/{len(folds)}")
            scores[name].probabilities.update(trial_probs)
            scores[name].seconds.append(seconds)
            truth = tw.trial_classes[list(trial_probs)]
            predicted = np.array([p.argmax() for p in trial_probs.values()])
            scores[name].fold_accuracy.append(round(float((predicted == truth).mean()), 4))
    return scores


def cross_validate(
    name: str,
    tw: TrialWindows,
    folds: Sequence[np.ndarray],
    settings: TrainSettings,
    adapt: bool = True,
    band_hz: tuple[float, float] | None = BAND_HZ,
) -> dict:
    """Held-out per-trial scores of decoder ``name`` over ``folds`` (trial ids per test fold)."""
    band_passed = _band_passed(tw, band_hz)
    scores = _fold_scores([name], tw, folds, settings, adapt, lambda _: None, band_passed, band_hz)
    return {**_score(scores[name], tw), "n_folds": len(folds)}


def _network_seconds(
    tw: TrialWindows, folds: Sequence[np.ndarray], settings: TrainSettings
) -> float:
    """Estimated seconds to train the SE network in every fold and once more on all trials,
    from the measured cost of two training steps here."""
    per_window = seconds_per_window(
        classifier_config(tw, body=settings.network_body), settings, tw.x
    )
    trial_ids = np.unique(tw.trial)

    def windows_per_epoch(ids: np.ndarray) -> int:
        if settings.crops_per_trial is None:
            return int(np.isin(tw.trial, ids).sum())
        return len(ids) * settings.crops_per_trial

    trained = sum(windows_per_epoch(np.setdiff1d(trial_ids, f)) for f in folds)
    trained += windows_per_epoch(trial_ids)
    return per_window * settings.epochs * trained * settings.seeds


def select_decoder(
    tw: TrialWindows,
    settings: TrainSettings,
    candidates: Sequence[str] = AUTO_CANDIDATES,
    adapt: bool = True,
    progress: bool = False,
    budget_s: float | None = AUTO_BUDGET_S,
    band_hz: tuple[float, float] | None = BAND_HZ,
    criterion: Criterion = "balanced_accuracy",
) -> tuple[FitResult, dict]:
    """``auto``: score ``candidates`` and their ensembles on ``tw`` alone, refit the best by
    ``criterion`` on all of ``tw``; returns it and the report (protocol, criterion, every
    candidate's score or why it was left out, the choice). Networks are scored last, and only
    when their estimated training time still fits ``budget_s`` (None: no budget).
    ``progress``: a bar on stderr, one step per fitted fold."""
    started = time.monotonic()
    protocol, folds = auto_folds(tw)
    report: dict = {"protocol": protocol, "criterion": criterion, "candidates": {}, "left_out": {}}
    usable = []
    trial_ids = np.unique(tw.trial)
    # A fold's training part has fewer trials than the whole: check each one.
    counts = [trials_per_class(tw)] + [
        trials_per_class(tw, np.setdiff1d(trial_ids, test_ids)) for test_ids in folds
    ]
    for name in candidates:
        reasons = [too_few_trials(name, fold_counts) for fold_counts in counts]
        reason = next((r for r in reasons if r), None)
        if reason:
            report["left_out"][name] = f"{reason} (in a training fold of {protocol})"
        else:
            usable.append(name)
    if not usable:
        raise DecoderError(
            "no decoder can be trained on these trials: " + "; ".join(report["left_out"].values())
        )
    bar = StepBar(len(usable) * len(folds) + 1, "auto", progress)
    # A held-out run shows how a decoder copes with a new session, adaptation included. A fold
    # of a few trials of the training session has no drift to follow, and adapting to it would
    # re-centre on those trials' own classes (riemann on S001R08: 0.32 with, 0.73 without).
    fold_adapt = adapt and protocol == LEAVE_ONE_RUN_OUT
    band_passed = _band_passed(tw, band_hz)
    classical = [name for name in usable if name not in NETWORKS]
    scores = _fold_scores(
        classical, tw, folds, settings, fold_adapt, bar.step, band_passed, band_hz
    )
    for name in [name for name in usable if name in NETWORKS]:
        if budget_s is not None:
            refit = max([max(s.seconds) for s in scores.values()], default=0.0)
            needed = _network_seconds(tw, folds, settings)
            left = budget_s - (time.monotonic() - started) - refit
            if needed > left:
                report["left_out"][name] = (
                    f"training it in every fold and refitting would take about {needed:.0f} s "
                    f"here, past what is left of the {budget_s:g} s budget of auto; raise the "
                    f"budget (--time-budget) or train it by name (--decoder {name})"
                )
                bar.step(f"{name} left out")
                continue
        scores |= _fold_scores(
            [name], tw, folds, settings, fold_adapt, bar.step, band_passed, band_hz
        )
    usable = [name for name in usable if name in scores]
    for name in usable:
        report["candidates"][name] = _score(scores[name], tw)
    for members in _ensembles(usable):
        combined = _Scores(
            probabilities={
                t: np.mean([scores[m].probabilities[t] for m in members], axis=0)
                for t in scores[members[0]].probabilities
            },
            seconds=[s for m in members for s in scores[m].seconds],
        )
        for test_ids in folds:
            truth = tw.trial_classes[test_ids]
            predicted = np.array([combined.probabilities[int(t)].argmax() for t in test_ids])
            combined.fold_accuracy.append(round(float((predicted == truth).mean()), 4))
        report["candidates"]["+".join(members)] = _score(combined, tw)
    chosen = _choose(report["candidates"], criterion)
    report["chosen"] = chosen
    bar.step(f"refit {chosen}")
    fitted = [
        fit_decoder(name, tw, settings, adapt, band_hz=band_hz, band_passed=band_passed)
        for name in chosen.split("+")
    ]
    bar.close()
    if len(fitted) == 1:
        return fitted[0], report
    ensemble = EnsembleDecoder([f.decoder for f in fitted])
    seconds = round(sum(f.info["train_seconds"] for f in fitted), 2)
    return FitResult(ensemble, chosen, {"train_seconds": seconds}), report


def _choose(candidates: dict[str, dict], criterion: Criterion = "balanced_accuracy") -> str:
    """The first candidate, in the order scored (single decoders in :data:`AUTO_CANDIDATES`
    order, then ensembles), whose held-out balanced accuracy is within one trial of the best
    (``criterion`` "auc": whose AUC is within :data:`AUC_TIE` of the best).

    With 15-30 calibration trials one trial is 0.03-0.07 of accuracy: differences that small are
    noise, and breaking them by the most confident probabilities favoured CSP+LDA, whose
    in-session confidence did not carry to the next run (S001, left/right: chosen by the
    probability 0.53 on the held-out run, by this order 0.93)."""
    best = max(scores[criterion] for scores in candidates.values())
    for name, scores in candidates.items():
        tie = AUC_TIE if criterion == "auc" else 1.0 / scores["n_trials"]
        if scores[criterion] >= best - tie - 1e-9:
            return name
    raise AssertionError("no candidate reached the best score")  # unreachable


#: AUCs this close are a tie (:func:`_choose`).
AUC_TIE = 0.005


def _ensembles(names: Sequence[str]) -> list[tuple[str, ...]]:
    """The ensembles ``auto`` scores (from the members' fold predictions, no more training):
    every pair of candidates, and all of them together."""
    found = [tuple(pair) for pair in itertools.combinations(names, 2)]
    if len(names) >= 3:
        found.append(tuple(names))
    return found
