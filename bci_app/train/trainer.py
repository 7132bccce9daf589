"""Training loop, trial-wise splits and per-trial evaluation of the EEG classifier.

Windows of one trial always stay on the same side of a split (no leakage between overlapping
windows); evaluation is per trial, averaging the class probabilities of the trial's windows.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression
from torch import nn

from bci_app.decoders import Decoder, NetworkDecoder
from bci_app.errors import InvalidArgument
from bci_app.nn.classifier import BODIES, ClassifierConfig, EEGClassifier
from bci_app.train.data import TrialWindows
from bci_app.train.metrics import classification_metrics, time_course

log = logging.getLogger(__name__)


class TrainSettings(BaseModel):
    """Optimisation settings of the network (keywords only).

    The defaults are the small-data recipe, chosen by leave-one-run-out on S001 (``bci-app bench
    decoding``): each epoch draws ``crops_per_trial`` random windows of every trial (time shifts
    on the online window grid, at a third of the compute of all windows), fixed ``epochs`` on all
    trials with the last weights (``early_stopping`` False: with 15 training trials a validation
    set of 3 picked epoch 1 or 2 as the best). With ``early_stopping``, ``split`` decides how the
    validation trials are chosen and the best epoch's weights are kept.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    epochs: Annotated[int, Field(ge=1)] = 30
    batch_size: Annotated[int, Field(ge=2)] = 16
    learning_rate: Annotated[float, Field(gt=0)] = 2e-3
    weight_decay: Annotated[float, Field(ge=0)] = 1e-3
    crops_per_trial: Annotated[int, Field(ge=1)] | None = 3  # None: every window, every epoch
    early_stopping: bool = False
    patience: int = 15  # epochs without validation improvement before stopping
    min_epochs: int = 20  # no early stop before this: some attentions start slowly (CBAM)
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    # "trial": random trials (stratified); "run": whole runs held out
    split: Literal["trial", "run"] = "trial"
    seed: int = 0
    #: networks trained from seeds ``seed .. seed + seeds - 1`` and averaged (1: one network)
    seeds: Annotated[int, Field(ge=1, le=10)] = 1
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    #: What follows the electrode attention (:data:`~bci_app.nn.classifier.BODIES`). Motor
    #: imagery: the tangent body, its head started from a logistic regression on the tangent
    #: features (S001, leave one run out, seeds 0-5: hands/feet 0.967 and left/right 0.761,
    #: against 0.928 and 0.583 for the EEGNet body). ERPs and SSVEP keep EEGNet, whose
    #: convolutions see the waveform (:func:`paradigm_settings`).
    network_body: Literal[BODIES] = "tangent"  # runtime Literal of the tuple's values


def paradigm_settings(settings: TrainSettings, paradigm: str) -> TrainSettings:
    """``settings`` for the network on ``paradigm``'s windows. Random crops suit motor
    imagery's trials of many overlapping windows. A P300 flash has one epoch, which crops would
    draw several times an epoch. An SSVEP session has few trials: the SE network trained on
    every window each epoch scored 0.62 against 0.49 with 3 crops (shared SSVEP sessions, leave
    one session out, mean of seeds 0-2), on a par with the filter-bank tangent-space peer.

    On P300 the network is 3 networks from 3 seeds, averaged: one network's flash AUC moved
    from 0.85 to 0.90 with the seed (shared speller runs, seeds 0-3, mean 0.867), and its
    accuracy after 5 repetitions between 0.67 and 1.0; averaged over seeds 0-2 and 3-5 it was
    0.90 and 0.89, 1.0 after 5 repetitions both times (3x the training time: 30 s a run)."""
    if paradigm == "p300":
        return settings.model_copy(
            update={"crops_per_trial": None, "seeds": 3, "network_body": "eegnet"}
        )
    if paradigm == "ssvep":
        return settings.model_copy(update={"crops_per_trial": None, "network_body": "eegnet"})
    return settings


@dataclass
class TrainResult:
    model: EEGClassifier
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    val_metrics: dict | None = None


def classifier_config(tw: TrialWindows, **architecture: object) -> ClassifierConfig:
    """The classifier shape for these windows; ``architecture`` overrides the defaults."""
    return ClassifierConfig(
        n_electrodes=len(tw.labels),
        n_samples=tw.x.shape[2],
        n_classes=len(tw.classes),
        rate_hz=tw.rate_hz,
        **architecture,
    )


def split_trials(
    tw: TrialWindows, how: str, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Trial ids (of trials with windows in ``tw``) for training and validation; stratified by
    class, or by whole runs."""
    rng = np.random.default_rng(seed)
    trial_ids = np.unique(tw.trial)
    classes = tw.trial_classes[trial_ids]
    if how == "run":
        runs_of_trials = tw.trial_runs[trial_ids]
        runs = np.unique(runs_of_trials)
        if len(runs) < 2:
            raise InvalidArgument("split by run needs at least two recordings; use split 'trial'")
        n_val = max(1, round(val_fraction * len(runs)))
        val = np.isin(runs_of_trials, rng.choice(runs, size=n_val, replace=False))
        return trial_ids[~val], trial_ids[val]
    val_ids = []
    for cls in np.unique(classes):
        members = trial_ids[classes == cls]
        n_val = max(1, round(val_fraction * len(members))) if len(members) > 1 else 0
        val_ids.extend(rng.choice(members, size=n_val, replace=False).tolist())
    val = np.isin(trial_ids, val_ids)
    return trial_ids[~val], trial_ids[val]


def stratified_folds(tw: TrialWindows, n_folds: int, seed: int) -> list[np.ndarray]:
    """Trial ids of each test fold, class-stratified, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    offset = 0
    trial_ids = np.unique(tw.trial)
    for cls in np.unique(tw.trial_classes[trial_ids]):
        members = rng.permutation(trial_ids[tw.trial_classes[trial_ids] == cls])
        for i, trial in enumerate(members):
            folds[(i + offset) % n_folds].append(int(trial))
        offset += len(members)
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def windows_of(tw: TrialWindows, trial_ids: np.ndarray) -> TrialWindows:
    return tw.subset(np.isin(tw.trial, trial_ids))


def _optimiser(model: EEGClassifier, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )


def _step(
    model: EEGClassifier, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """One optimiser step on cross-entropy for windows ``x (B, C, T)`` and classes ``y (B,)``;
    returns the logits and the loss."""
    logits, _ = model.forward_logits(x)
    loss = nn.functional.cross_entropy(logits, y)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return logits, loss.item()


def _epoch_order(
    trial: np.ndarray, crops_per_trial: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Shuffled window indices of one epoch: all windows, or ``crops_per_trial`` random windows
    of each trial (``trial (n_windows,)``: trial id per window)."""
    if crops_per_trial is None:
        return torch.randperm(len(trial), generator=generator)
    picks = []
    for trial_id in np.unique(trial):
        members = torch.from_numpy(np.flatnonzero(trial == trial_id))
        picks.append(members[torch.randperm(len(members), generator=generator)[:crops_per_trial]])
    chosen = torch.cat(picks)
    return chosen[torch.randperm(len(chosen), generator=generator)]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - torch/numpy global state for reproducibility


def train_classifier(
    train: TrialWindows,
    val: TrialWindows | None,
    classifier: ClassifierConfig,
    settings: TrainSettings,
    labels: tuple[str, ...] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Adam on cross-entropy; keeps the weights of the epoch with the best validation loss."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    _seed_everything(settings.seed)
    model = EEGClassifier(classifier, channel_labels=labels or train.labels)
    x = torch.from_numpy(np.ascontiguousarray(train.x))
    y = torch.from_numpy(train.y)
    if classifier.body == "tangent":
        start_head_from_logistic_regression(model, x, train.y)
    optimiser = _optimiser(model, settings)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(settings.seed)
    best_loss, best_epoch, best_state, since_best = math.inf, 0, None, 0
    history: list[dict[str, float]] = []
    bar = StepBar(settings.epochs, "training", progress, unit="epoch")
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = _epoch_order(train.trial, settings.crops_per_trial, generator)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            if len(batch) < 2:  # BatchNorm needs two samples in training mode
                continue
            logits, loss = _step(model, optimiser, x[batch], y[batch])
            total += loss * len(batch)
            correct += int((logits.argmax(1) == y[batch]).sum())
            seen += len(batch)
        record = {
            "epoch": epoch,
            "train_loss": total / max(seen, 1),
            "train_acc": correct / max(seen, 1),
        }
        if val is not None and len(val.y):
            record.update(_validation(model, val, loss_fn))
            monitored = record["val_loss"]
        else:
            monitored = record["train_loss"]
        history.append(record)
        if monitored < best_loss - 1e-4:
            best_loss, best_epoch, since_best = monitored, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        bar.update(record)
        if since_best >= settings.patience and epoch >= settings.min_epochs:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result = TrainResult(model=model, best_epoch=best_epoch, history=history)
    if val is not None and len(val.y):
        result.val_metrics = evaluate_trials(model, val)
    return result


@torch.no_grad()
def start_head_from_logistic_regression(
    model: EEGClassifier, x: torch.Tensor, y: np.ndarray, regularisation: float = 1.0
) -> None:
    """Set the tangent body's linear head to an L2 logistic regression (scikit-learn, ``C =
    regularisation``) on the tangent features of windows ``x (n, C, T)`` µV, classes ``y (n,)``,
    under the attention's starting gates. Adam from zero does not reach that optimum in the
    recipe's 30 epochs (S001, leave one run out, seeds 0-1: hands/feet 0.883 against 0.967)."""
    model.eval()
    features = torch.cat([model.tangent_features(x[i : i + 256])[0] for i in range(0, len(x), 256)])
    fitted = LogisticRegression(C=regularisation, max_iter=1000).fit(features.double().numpy(), y)
    coef, intercept = fitted.coef_, fitted.intercept_
    if len(fitted.classes_) == 2:  # one row of log-odds z: softmax of (-z/2, z/2) is the same
        coef, intercept = (
            np.concatenate([-coef, coef]) / 2,
            np.concatenate([-intercept, intercept]) / 2,
        )
    weight = np.zeros(tuple(model.head.weight.shape))
    # a class absent from the windows starts with no evidence and a low prior
    bias = np.full(model.config.n_classes, float(intercept.min()) - 5.0)
    weight[fitted.classes_], bias[fitted.classes_] = coef, intercept
    model.head.weight.copy_(torch.from_numpy(weight))
    model.head.bias.copy_(torch.from_numpy(bias))


def seconds_per_window(
    classifier: ClassifierConfig, settings: TrainSettings, x: np.ndarray
) -> float:
    """Seconds one training window costs here (forward, backward, step), from two timed steps
    of ``settings.batch_size`` windows of ``x (n, C, T)`` after one warm-up step."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    model = EEGClassifier(classifier).train()
    optimiser = _optimiser(model, settings)
    batch = torch.from_numpy(np.ascontiguousarray(x[: max(2, settings.batch_size)]))
    labels = torch.zeros(len(batch), dtype=torch.long)
    elapsed = 0.0
    for step in range(3):
        started = time.perf_counter()
        _step(model, optimiser, batch, labels)
        if step:
            elapsed += time.perf_counter() - started
    return elapsed / (2 * len(batch))


def _validation(model: EEGClassifier, val: TrialWindows, loss_fn: nn.Module) -> dict[str, float]:
    model.eval()
    with torch.inference_mode():
        logits, _ = model.forward_logits(torch.from_numpy(np.ascontiguousarray(val.x)))
        loss = float(loss_fn(logits, torch.from_numpy(val.y)))
    trial_metrics = evaluate_trials(model, val)
    return {"val_loss": loss, "val_trial_acc": trial_metrics["accuracy"]}


def trial_probabilities(
    tw: TrialWindows, window_probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean window probabilities per trial: ``(trial_ids, probs (n_trials, K))``."""
    trial_ids = np.unique(tw.trial)
    probs = np.stack([window_probs[tw.trial == t].mean(axis=0) for t in trial_ids])
    return trial_ids, probs


def trial_seconds(tw: TrialWindows) -> float | None:
    """Seconds per decision for the ITR: the trial span the windows come from."""
    return None if tw.trial_span_s is None else tw.trial_span_s[1] - tw.trial_span_s[0]


def evaluate_trials(decoder: Decoder | EEGClassifier, tw: TrialWindows, reset: bool = True) -> dict:
    """Per-trial metrics (see :mod:`bci_app.train.metrics`): each trial's prediction is the
    argmax of its windows' mean probability; ``accuracy_over_time`` uses the windows that had
    ended by each time after the cue. Windows go to the decoder in time order, from the
    calibration's reference (``reset``; else from where the decoder's adaptation left it), and
    an adapting decoder follows them as it would live."""
    if isinstance(decoder, EEGClassifier):
        decoder = NetworkDecoder(decoder)
    if reset:
        decoder.reset()
    window_probs, _ = decoder.predict(tw.x)
    trial_ids, probs = trial_probabilities(tw, window_probs)
    y_true = tw.trial_classes[trial_ids]
    metrics = classification_metrics(y_true, probs.argmax(axis=1), tw.classes, trial_seconds(tw))
    metrics["n_windows"] = int(len(tw.y))
    metrics["window_accuracy"] = (
        float((window_probs.argmax(1) == tw.y).mean()) if len(tw.y) else float("nan")
    )
    if tw.trial_onsets_s is not None and tw.trial_span_s is not None:
        trial_classes = {int(t): int(tw.trial_classes[t]) for t in trial_ids}
        metrics.update(
            time_course(
                tw.trial,
                tw.window_end_s(),
                window_probs,
                trial_classes,
                tw.trial_span_s[1],
                metrics["chance"],
            )
        )
    return metrics


class StepBar:
    """A tqdm bar on stderr when ``enabled``, else silent; one :meth:`step` per unit of work."""

    def __init__(self, total: int, description: str, enabled: bool, unit: str = "step") -> None:
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr)

    def step(self, note: str = "") -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(1)

    def update(self, record: dict[str, float]) -> None:
        """One epoch, its losses and accuracies shown."""
        self.step(", ".join(f"{k} {v:.3f}" for k, v in record.items() if k != "epoch"))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
