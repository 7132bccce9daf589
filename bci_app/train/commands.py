"""``bci-app train`` and ``bci-app evaluate``: recordings in, checkpoint folder / metrics out."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from bci_app.config import (
    AUTO_BUDGET_S,
    DECODER_CHOICES,
    AppConfig,
    DspConfig,
    WindowsConfig,
    parse_config,
)
from bci_app.decoders import (
    Decoder,
    DecoderError,
    FbccaDecoder,
    decoder_spec,
    load_decoder,
    save_decoder,
)
from bci_app.decoders.ssvep import stimulation_frequencies
from bci_app.errors import UserError
from bci_app.io import Recording, load_recording
from bci_app.nn.checkpoint import (
    METADATA_FILE,
    CheckpointError,
    CheckpointMetadata,
    apply_checkpoint,
    render_model_card,
)
from bci_app.sources.simulator import EEGSimulator, SimulatorSettings
from bci_app.train.data import TrialWindows, extract_trials, parse_class_map, trials_per_class
from bci_app.train.decoders import (
    PARADIGM_AUTO_CANDIDATES,
    PARADIGM_BAND_HZ,
    PARADIGM_CRITERION,
    PARADIGM_DECODERS,
    cross_validate,
    fit_decoder,
    select_decoder,
)
from bci_app.train.erp import ERP_CLASSES, extract_flash_epochs, speller_metrics
from bci_app.train.metrics import by_data_length, classification_metrics
from bci_app.train.trainer import (
    TrainSettings,
    evaluate_trials,
    paradigm_settings,
    stratified_folds,
)

log = logging.getLogger(__name__)

MIN_TRIALS_PER_CLASS = 4


class TrainingError(UserError, ValueError):
    """Training cannot start or finish; the message says what is missing."""


def class_items(items: Sequence[str]) -> list[str]:
    """Allow ``left_hand`` as shorthand for ``left_hand:left_hand`` (simulator markers)."""
    return [item if ":" in item else f"{item}:{item}" for item in items]


def config_for_checkpoint(metadata: CheckpointMetadata) -> AppConfig:
    """An app config whose dsp and windows are exactly those the model was trained with."""
    return apply_checkpoint(
        parse_config({"windows": {"length": metadata.window_s, "hop": metadata.hop_s}}),
        metadata,
    )


def _check_trials(counts: dict[str, int], classes: Sequence[str]) -> None:
    short = {c: counts.get(c, 0) for c in classes if counts.get(c, 0) < MIN_TRIALS_PER_CLASS}
    if short:
        raise TrainingError(
            f"too few trials to train: {short}; each class needs at least "
            f"{MIN_TRIALS_PER_CLASS} trials (more give a better model). Record more trials or "
            "check the --classes labels against the recording's events"
        )


def simulated_recording(settings: SimulatorSettings, seconds: float) -> Recording:
    """A recording of the simulator in its paradigm (``settings.paradigm``) with every marker
    of its schedule as events: the class name at each cue (mi, ssvep; the demo model's), or at
    each flash ``char:<X>`` (a character's first), ``code<N>`` and ``target``/``nontarget`` at
    the same sample, in that order (p300)."""
    simulator = EEGSimulator(settings)
    n = round(seconds * settings.rate_hz)
    data = simulator.generate(n)
    events = tuple(simulator.schedule.cues_between(0, n))
    paradigm = "" if settings.paradigm == "mi" else f"{settings.paradigm}, "
    return Recording(
        data=data,
        rate_hz=settings.rate_hz,
        labels=tuple(simulator.labels),
        events=events,
        timestamps=None,
        source=f"simulator({paradigm}seed={settings.seed}, {seconds:g} s)",
        run=f"sim-seed{settings.seed}",
    )


def train_command(
    recordings: Sequence[Recording],
    classes: Sequence[str],
    out_dir: Path,
    config: AppConfig,
    decoder: str = "se",
    settings: TrainSettings | None = None,
    trial_start_s: float = 0.0,
    trial_stop_s: float = 4.0,
    train_hop_s: float | None = None,
    cv_folds: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    description: str = "",
    adapt: bool = True,
    time_budget_s: float | None = AUTO_BUDGET_S,
) -> dict:
    """Train decoder ``decoder`` (one of :data:`DECODER_CHOICES`; ``auto`` chooses on these
    recordings alone) and save a checkpoint folder; returns its metrics. ``cv_folds``: 0 for
    no cross-validation, else at least 2 folds. ``adapt``: the aligned decoders follow the
    session without labels. ``time_budget_s``: what ``auto`` may take (None: no limit)."""
    if cv_folds == 1 or cv_folds < 0:
        raise TrainingError(
            f"cross-validation needs at least 2 folds (0: none), got {cv_folds}; one fold "
            "would test on the training trials"
        )
    if decoder not in DECODER_CHOICES:
        raise TrainingError(
            f"unknown decoder {decoder!r}; choose one of {', '.join(DECODER_CHOICES)}"
        )
    settings = settings or TrainSettings()
    paradigm = config.paradigm.kind
    if decoder != "auto" and decoder not in PARADIGM_DECODERS[paradigm]:
        raise TrainingError(
            f"decoder {decoder!r} does not decode the {paradigm} paradigm; choose one of "
            f"{', '.join(PARADIGM_DECODERS[paradigm])} or auto"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise TrainingError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    windows = config.windows
    if config.paradigm.erp:
        if classes:
            raise TrainingError(
                "a P300 model's classes are target and non-target flashes, read from the "
                "target/nontarget markers; leave out --classes"
            )
        epochs = extract_flash_epochs(recordings, config, channels=config.channels.pick)
        tw = epochs.trial_windows()
        class_map = {c: c for c in ERP_CLASSES}
        epoch_start, epoch_stop = config.paradigm.epoch
        windows = WindowsConfig(length=epoch_stop - epoch_start, hop=epoch_stop - epoch_start)
        trial_start_s, trial_stop_s = epoch_start, epoch_stop
    else:
        if not classes:
            raise TrainingError(
                "give the classes with --classes, e.g. T1:hands T2:feet (motor imagery) or "
                "rest 13Hz 17Hz 21Hz (SSVEP)"
            )
        class_map = parse_class_map(class_items(classes))
        if paradigm == "ssvep":
            try:
                stimulation_frequencies(list(dict.fromkeys(class_map.values())))
            except DecoderError as exc:
                raise TrainingError(str(exc)) from None
        train_config = config.model_copy(
            update={"windows": WindowsConfig(length=windows.length, hop=train_hop_s or windows.hop)}
        )
        tw = extract_trials(
            recordings,
            class_map,
            train_config,
            trial_start_s,
            trial_stop_s,
            channels=config.channels.pick,
        )
    settings = paradigm_settings(settings, paradigm)
    counts = trials_per_class(tw)
    _check_trials(counts, tw.classes)
    log.info("trials per class: %s (%d windows)", counts, len(tw.y))
    metrics: dict = {}
    try:
        band_hz = PARADIGM_BAND_HZ[paradigm]
        if decoder == "auto":
            result, selection = select_decoder(
                tw,
                settings,
                candidates=PARADIGM_AUTO_CANDIDATES[paradigm],
                adapt=adapt,
                progress=progress,
                budget_s=time_budget_s,
                band_hz=band_hz,
                criterion=PARADIGM_CRITERION[paradigm],
            )
            metrics["selection"] = selection
            metrics["cross_validation"] = selection["candidates"][selection["chosen"]]
        else:
            if cv_folds:
                n_trials = sum(counts.values())
                if cv_folds > n_trials:
                    raise TrainingError(
                        f"--cv {cv_folds} asks for more folds than the {n_trials} trials; "
                        f"use --cv {n_trials} or fewer (5 is usual)"
                    )
                folds = stratified_folds(tw, cv_folds, settings.seed)
                metrics["cross_validation"] = cross_validate(
                    decoder, tw, folds, settings, adapt, band_hz
                )
            result = fit_decoder(decoder, tw, settings, adapt, progress, band_hz=band_hz)
    except DecoderError as exc:
        raise TrainingError(str(exc)) from None
    metrics["decoder"] = result.name
    metrics.update(result.info)
    metadata = CheckpointMetadata(
        classes=list(tw.classes),
        channel_labels=list(tw.labels),
        model_rate_hz=tw.rate_hz,
        window_s=windows.length,
        hop_s=windows.hop,
        dsp=DspConfig.from_config(config),
        decoder=decoder_spec(result.decoder),
        paradigm=config.paradigm,
        training={
            "files": [r.source for r in recordings],
            "class_map": class_map,
            "trial_window_s": [trial_start_s, trial_stop_s],
            "train_hop_s": train_hop_s or windows.hop,
            "trials_per_class": counts,
            "n_windows": int(len(tw.y)),
            "decoder_asked": decoder,
            "settings": settings.model_dump(),
            "description": description,
        },
        metrics=metrics,
    )
    if out_dir.exists() and overwrite:
        shutil.rmtree(out_dir)
    save_decoder(out_dir, result.decoder, metadata, render_model_card(metadata, description))
    return metrics


def training_free_command(
    classes: Sequence[str],
    channels: Sequence[str],
    out_dir: Path,
    config: AppConfig,
    overwrite: bool = False,
    description: str = "",
) -> dict:
    """An SSVEP checkpoint that needs no calibration: filter-bank CCA against the class
    frequencies (:class:`~bci_app.decoders.FbccaDecoder`, ``rest`` by its noise threshold) on
    ``channels``, with the config's (the SSVEP paradigm's) dsp, model rate and windows."""
    if config.paradigm.kind != "ssvep":
        raise TrainingError("a training-free model is an SSVEP model; add --paradigm ssvep")
    if not channels:
        raise TrainingError(
            "a training-free model needs the electrodes it reads: --channels O1 Oz O2 ..."
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise TrainingError(f"{out_dir} exists and is not empty; pass --overwrite to replace it")
    class_map = parse_class_map(class_items(classes))
    names = list(dict.fromkeys(class_map.values()))
    try:
        decoder = FbccaDecoder.fit(None, None, names, config.model_rate or 0.0, len(channels))
    except DecoderError as exc:
        raise TrainingError(str(exc)) from None
    metadata = CheckpointMetadata(
        classes=names,
        channel_labels=list(channels),
        model_rate_hz=config.model_rate,
        window_s=config.windows.length,
        hop_s=config.windows.hop,
        dsp=DspConfig.from_config(config),
        decoder=decoder_spec(decoder),
        paradigm=config.paradigm,
        training={
            "training_free": True,
            "class_map": class_map,
            "trial_window_s": [0.0, 4.0],
            "description": description,
        },
        metrics={"decoder": "fbcca", "training_free": True},
    )
    if out_dir.exists() and overwrite:
        shutil.rmtree(out_dir)
    save_decoder(out_dir, decoder, metadata, render_model_card(metadata, description))
    return dict(metadata.metrics)


def evaluate_command(checkpoint: Path, files: Sequence[str | Path], strict: bool = False) -> dict:
    """Per-trial accuracy of a checkpoint on recordings, with its own dsp and trial definition;
    ``strict`` refuses damaged files (:mod:`bci_app.io.damage`)."""
    decoder, metadata = load_decoder(checkpoint)
    if metadata.paradigm.erp:
        return _evaluate_speller(decoder, metadata, checkpoint, files, strict)
    training = metadata.training
    if not isinstance(training.get("class_map"), dict):
        raise CheckpointError(
            f"{Path(checkpoint) / METADATA_FILE}: training.class_map is missing, so the events "
            "of a recording cannot be matched to the model's classes; retrain the model with "
            "`bci-app train` (it records the class map) or add training.class_map, e.g. "
            '{"T1": "hands", "T2": "feet"}'
        )
    recordings = [load_recording(f, strict) for f in files]
    start, stop = training.get("trial_window_s", [0.0, 4.0])
    tw = extract_trials(
        recordings,
        dict(training["class_map"]),
        config_for_checkpoint(metadata),
        start,
        stop,
        channels=metadata.channel_labels,
    )
    counts = trials_per_class(tw)
    if list(tw.classes) != list(metadata.classes) or not all(counts.values()):
        raise TrainingError(
            f"the recordings give trials per class {counts} but the model knows "
            f"{list(metadata.classes)}; every class needs trials in the evaluated files (its "
            "balanced accuracy and chance level count on them): add a run that has them"
        )
    metrics = evaluate_trials(decoder, tw)
    if metadata.paradigm.kind == "ssvep":
        metrics.update(ssvep_lengths(decoder, tw, metadata.hop_s))
    metrics["checkpoint"] = str(checkpoint)
    metrics["files"] = [str(f) for f in files]
    metrics["damage"] = [note for r in recordings for note in r.damage]
    return metrics


def ssvep_lengths(decoder: Decoder, tw: TrialWindows, hop_s: float) -> dict:
    """SSVEP accuracy and ITR against data length (:func:`by_data_length`) of ``decoder``."""
    decoder.reset()
    probabilities, _ = decoder.predict(tw.x)
    classes = {int(t): int(tw.trial_classes[t]) for t in np.unique(tw.trial)}
    return by_data_length(tw.trial, tw.window_end_s(), probabilities, classes, hop_s)


def _evaluate_speller(
    decoder: Decoder,
    metadata: CheckpointMetadata,
    checkpoint: Path,
    files: Sequence[str | Path],
    strict: bool,
) -> dict:
    """A P300 checkpoint on recordings with flash markers: the characters spelled against
    the number of repetitions (``characters``), and target detection per flash (``flashes``).
    ``accuracy`` / ``n_trials`` / ``chance`` are those of the characters, at every repetition."""
    recordings = [load_recording(f, strict) for f in files]
    epochs = extract_flash_epochs(
        recordings, config_for_checkpoint(metadata), channels=metadata.channel_labels
    )
    decoder.reset()
    probabilities, _ = decoder.predict(epochs.x)
    paradigm = metadata.paradigm
    characters = speller_metrics(probabilities, epochs, paradigm.matrix, paradigm.stop_posterior)
    known = epochs.target >= 0
    flashes: dict = {}
    if known.any():
        truth = epochs.target[known]
        flashes = classification_metrics(
            truth, probabilities[known].argmax(axis=1), ERP_CLASSES, None
        )
        if np.unique(truth).size == 2:
            flashes["auc"] = round(float(roc_auc_score(truth, probabilities[known, 1])), 4)
    all_repetitions = characters["accuracy_by_repetitions"][
        str(len(characters["accuracy_by_repetitions"]))
    ]
    return {
        "paradigm": paradigm.kind,
        "accuracy": all_repetitions,
        "n_trials": characters["n_characters"],
        "chance": characters["chance"],
        "characters": characters,
        "flashes": flashes,
        "n_flashes": len(epochs),
        "checkpoint": str(checkpoint),
        "files": [str(f) for f in files],
        "damage": [note for r in recordings for note in r.damage],
    }
