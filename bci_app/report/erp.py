"""The P300 speller's session report: one self-contained HTML file (``mne.Report``) for a
recording with flash markers (``code<N>``, and ``target`` / ``nontarget`` in copy spelling).

Sections: the session, data quality (as for motor imagery), the ERP at Fz/Cz/Pz/Oz (or the
nearest electrodes) for target and non-target flashes, the target-minus-non-target topomaps
from 200 to 500 ms, the character accuracy against the number of repetitions with the flash
AUC, and the electrode weights. Epochs come from the app's own causal dsp, as the worker cuts
them (:func:`~bci_app.train.erp.extract_flash_epochs`).

With a model, it is scored on the file (a note says so when the file was part of its training).
Without one, xDAWN + tangent space is fitted on one half of the characters and spells the
other, both ways (consecutive halves: the second half comes later, as a session goes on).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from bci_app.config import AppConfig, load_config, with_paradigm
from bci_app.decoders import Decoder, DecoderError, load_decoder
from bci_app.decoders.threads import blas_on_one_thread
from bci_app.io import Recording, RecordingError, load_recording
from bci_app.nn.checkpoint import CheckpointMetadata
from bci_app.report.cues import ReportError
from bci_app.report.parts import (
    ReportSummary,
    add_quality,
    add_weights,
    bullet_list,
    paragraphs,
    save_report,
    table,
)
from bci_app.report.quality import check_quality
from bci_app.report.scalp import Scalp, nearest_sites, scalp_layout

__all__ = ["ERP_SECTIONS", "ERP_SITES", "has_flash_markers", "write_erp_report"]

SESSION = "Session"
QUALITY = "Data quality"
WAVEFORMS = "ERP waveforms"
TOPOMAPS = "ERP topomaps"
SPELLING = "Spelling accuracy"
WEIGHTS = "Electrode weights"
#: The P300 report's sections, in order (each with a note where a part could not be made).
ERP_SECTIONS: tuple[str, ...] = (SESSION, QUALITY, WAVEFORMS, TOPOMAPS, SPELLING, WEIGHTS)
#: Where the waveforms are drawn (or the nearest electrodes): frontal, central and parietal
#: midline for the P300, occipital for the visual response to every flash.
ERP_SITES: tuple[str, ...] = ("Fz", "Cz", "Pz", "Oz")
#: Times of the difference topomaps (s after the flash).
TOPOMAP_TIMES_S: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
QUICK_DECODER = "xdawn-riemann"
_DPI = 100


def has_flash_markers(recording: Recording) -> bool:
    """The recording carries the speller's ``code<N>`` flash markers."""
    return any(label.startswith("code") and label[4:].isdigit() for _, label in recording.events)


def write_erp_report(
    recording: str | Path | Recording,
    out_path: str | Path,
    model_dir: str | Path | None = None,
    *,
    strict: bool = False,
) -> ReportSummary:
    """Write the P300 report of ``recording`` to ``out_path`` (``.html``; overwritten) and
    return its :class:`~bci_app.report.ReportSummary`. ``model_dir``: a P300 checkpoint to
    score on the file. Raises :class:`ReportError` for input the report cannot use."""
    with blas_on_one_thread():
        return _write(recording, Path(out_path), model_dir, strict)


def _write(
    recording: str | Path | Recording, out: Path, model_dir: str | Path | None, strict: bool
) -> ReportSummary:
    import mne

    from bci_app.report import figures
    from bci_app.report.decoding import in_training
    from bci_app.train.commands import config_for_checkpoint
    from bci_app.train.erp import ERP_CLASSES, extract_flash_epochs

    figures.use_agg()
    started = time.perf_counter()
    if out.suffix.lower() != ".html":
        raise ReportError(f"the report is an HTML file; give --out a name ending in .html: {out}")
    if not isinstance(recording, Recording):
        recording = load_recording(recording, strict)
    if not has_flash_markers(recording):
        raise ReportError(
            f"{recording.source} has no code<N> flash markers: the P300 report needs the "
            "speller's markers (record them with the EEG)"
        )
    model: tuple[Decoder, CheckpointMetadata] | None = None
    if model_dir is not None:
        model = load_decoder(Path(model_dir))
        if not model[1].paradigm.erp:
            raise ReportError(
                f"{model_dir} is a {model[1].paradigm.kind} model, not a P300 one; leave out "
                "--model, or give the speller's model"
            )
    config: AppConfig = (
        config_for_checkpoint(model[1]) if model else with_paradigm(load_config(None), "p300")
    )
    quality = check_quality(recording)
    epochs = extract_flash_epochs(
        [recording], config, channels=model[1].channel_labels if model else None
    )
    known = epochs.target >= 0
    if model is not None:
        decoder, metadata = model
        decoder.reset()
        probabilities, weights = decoder.predict(epochs.x)
        name = f"the model {model_dir} ({metadata.decoder.kind})"
        how = "the model on every flash of this file"
        notes = (
            ["This file was part of the model's training: the scores are not held out."]
            if in_training(recording, metadata)
            else []
        )
        paradigm = metadata.paradigm
    else:
        probabilities, weights, how, notes = _halves(epochs)
        name = f"{QUICK_DECODER}, fitted on this file"
        paradigm = config.paradigm
    metrics = None
    if known.any() and probabilities is not None:
        from bci_app.train.erp import speller_metrics

        metrics = speller_metrics(probabilities, epochs, paradigm.matrix, paradigm.stop_posterior)
        truth = epochs.target[known]
        if np.unique(truth).size == 2:
            from sklearn.metrics import roc_auc_score

            metrics["flash_auc"] = round(float(roc_auc_score(truth, probabilities[known, 1])), 4)

    report = mne.Report(title=f"bci-app P300 session report: {recording.run}", verbose=False)
    counts = {
        "target": int((epochs.target == 1).sum()),
        "nontarget": int((epochs.target == 0).sum()),
    }
    report.add_html(
        table(
            [
                ("file", recording.source),
                ("duration", f"{recording.duration_s:.1f} s at {recording.rate_hz:g} Hz"),
                ("channels", f"{len(epochs.labels)}: {', '.join(epochs.labels)}"),
                ("characters", f"{len(epochs.chars)}: {''.join(epochs.chars)}"),
                (
                    "flashes",
                    f"{len(epochs)} ({counts['target']} target, {counts['nontarget']} non-target, "
                    f"{int((~known).sum())} unknown; {epochs.flagged} left out over gaps or NaN)",
                ),
                (
                    "epochs",
                    f"{config.paradigm.epoch[0]:g}-{config.paradigm.epoch[1]:g} s after each "
                    f"flash, the app's dsp at {epochs.rate_hz:g} Hz",
                ),
                ("decoder", name),
                (
                    "reproduce",
                    f"bci-app report {recording.source}"
                    + (f" --model {model_dir}" if model_dir is not None else ""),
                ),
            ]
        ),
        title="Recording, flashes and decoder",
        section=SESSION,
    )
    add_quality(report, quality, QUALITY)
    sites = nearest_sites(epochs.labels, ERP_SITES)
    if known.any() and counts["target"] and counts["nontarget"] and sites:
        report.add_figure(
            figures.rendered(_waveform_figure(epochs, sites)),
            title=f"Target and non-target flashes at {', '.join(s for s, _, _ in sites)}",
            caption="Mean over flashes (shaded: ± one standard error). A P300 is the positive "
            "wave about 250-500 ms after a target flash, largest at Cz/Pz; every flash also "
            "evokes a visual response at Oz.",
            image_format="png",
            section=WAVEFORMS,
        )
    else:
        report.add_html(
            paragraphs(["No target/non-target markers (free spelling), or no placed electrode."]),
            title="No waveforms",
            section=WAVEFORMS,
        )
    scalp = scalp_layout(epochs.labels, epochs.rate_hz)
    if known.any() and counts["target"] and counts["nontarget"] and len(scalp.labels) >= 3:
        report.add_figure(
            figures.rendered(_topomap_figure(epochs, scalp)),
            title="Target minus non-target",
            caption="The difference of the mean epochs (µV) in 50 ms around each time.",
            image_format="png",
            section=TOPOMAPS,
        )
    else:
        report.add_html(
            paragraphs(["No target/non-target markers, or fewer than 3 placed electrodes."]),
            title="No topomaps",
            section=TOPOMAPS,
        )
    if metrics is not None:
        by = metrics["accuracy_by_repetitions"]
        rows = [("scored", how), ("characters scored", metrics["n_characters"])]
        if "flash_auc" in metrics:
            rows.append(("flash AUC (target above non-target; chance 0.5)", metrics["flash_auc"]))
        rows += [(f"accuracy after {r} repetitions", by[r]) for r in by]
        dynamic = metrics.get("dynamic_stopping") or {}
        if dynamic:
            rows.append(
                (
                    "dynamic stopping",
                    f"accuracy {dynamic.get('accuracy')} after "
                    f"{dynamic.get('mean_repetitions')} repetitions on average",
                )
            )
        report.add_html(
            table(rows) + (bullet_list(notes) if notes else ""),
            title="Characters against repetitions",
            section=SPELLING,
        )
        report.add_figure(
            figures.rendered(_repetitions_figure(by, metrics.get("chance"))),
            title="Character accuracy against repetitions",
            caption="Each character decided from its first N repetitions (the best row times "
            "the best column of the summed flash scores).",
            image_format="png",
            section=SPELLING,
        )
    else:
        report.add_html(
            paragraphs(["No character could be scored: no flash says target or non-target."]),
            title="No spelling scores",
            section=SPELLING,
        )
    add_weights(
        report,
        None if weights is None else np.asarray(weights).mean(axis=0),
        epochs.labels,
        epochs.rate_hz,
        name,
        "Mean over this file's flash epochs of the decoder's weight per electrode.",
        WEIGHTS,
    )
    save_report(report, out)
    all_repetitions = None
    if metrics is not None:
        by = metrics["accuracy_by_repetitions"]
        all_repetitions = float(by[str(len(by))])
    return ReportSummary(
        out=out,
        seconds=round(time.perf_counter() - started, 2),
        sections=ERP_SECTIONS,
        classes=ERP_CLASSES,
        trials=counts,
        decoder=QUICK_DECODER if model is None else model[1].decoder.kind,
        accuracy=all_repetitions,
        quality=quality.notes,
    )


def _halves(epochs) -> tuple[np.ndarray | None, np.ndarray | None, str, list[str]]:
    """Out-of-sample target probabilities ``(n, 2)`` and weights ``(n, C)`` of every epoch:
    xDAWN + tangent space fitted on one half of the characters, applied to the other."""
    from bci_app.train.decoders import fit_decoder
    from bci_app.train.trainer import TrainSettings

    characters = np.unique(epochs.character)
    if characters.size < 2:
        return None, None, "", ["One character only: nothing to hold out, no scores."]
    halves = np.array_split(characters, 2)
    probabilities = np.zeros((len(epochs), 2))
    weights = np.zeros((len(epochs), epochs.x.shape[1]))
    for test in halves:
        held = np.isin(epochs.character, test)
        train = epochs.subset(~held)
        try:
            tw = train.trial_windows()
            fitted = fit_decoder(QUICK_DECODER, tw, TrainSettings(), band_hz=None)
        except (DecoderError, RecordingError) as exc:  # say why; the figures stay
            return None, None, "", [f"{QUICK_DECODER} could not be fitted on half the file: {exc}"]
        probabilities[held], weights[held] = fitted.decoder.predict(epochs.x[held])
    how = (
        f"{QUICK_DECODER} fitted on characters {_span(halves[0])} and tested on "
        f"{_span(halves[1])}, then the reverse"
    )
    return probabilities, weights, how, []


def _span(characters: np.ndarray) -> str:
    """1-based ``first-last`` (or the one) of consecutive character indices."""
    first, last = int(characters[0]) + 1, int(characters[-1]) + 1
    return str(first) if first == last else f"{first}-{last}"


def _waveform_figure(epochs, sites: Sequence[tuple[str, int, str]]) -> Figure:
    t_ms = 1e3 * np.arange(epochs.x.shape[2]) / epochs.rate_hz
    fig = Figure(figsize=(8.0, 2.2 * ((len(sites) + 1) // 2)), dpi=_DPI, layout="constrained")
    axes = fig.subplots((len(sites) + 1) // 2, 2, squeeze=False).ravel()
    for ax, (site, column, label) in zip(axes, sites, strict=False):
        for value, name, colour in ((1, "target", "tab:red"), (0, "non-target", "tab:grey")):
            x = epochs.x[epochs.target == value, column, :].astype(np.float64)
            mean = x.mean(axis=0)
            sem = x.std(axis=0, ddof=1) / np.sqrt(max(len(x), 1)) if len(x) > 1 else 0 * mean
            ax.plot(t_ms, mean, color=colour, label=f"{name} ({len(x)})")
            ax.fill_between(t_ms, mean - sem, mean + sem, color=colour, alpha=0.25, lw=0)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(label if label == site else f"{label} (nearest to {site})", fontsize=9)
        ax.set_xlabel("ms after the flash", fontsize=8)
        ax.set_ylabel("µV", fontsize=8)
    for ax in axes[len(sites) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    return fig


def _topomap_figure(epochs, scalp: Scalp) -> Figure:
    from mne.viz import plot_topomap

    difference = epochs.x[epochs.target == 1].mean(axis=0) - epochs.x[epochs.target == 0].mean(
        axis=0
    )
    difference = difference[scalp.columns]
    half = max(1, round(0.025 * epochs.rate_hz))
    maps = []
    for t in TOPOMAP_TIMES_S:
        i = min(difference.shape[1] - 1, round(t * epochs.rate_hz))
        maps.append(difference[:, max(0, i - half) : i + half + 1].mean(axis=1))
    limit = max(1e-3, float(np.max(np.abs(maps))))
    fig = Figure(figsize=(8.0, 2.4), dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, len(maps))
    image = None
    for ax, t, values in zip(axes, TOPOMAP_TIMES_S, maps, strict=True):
        image, _ = plot_topomap(
            values, scalp.info, axes=ax, show=False, sphere=scalp.sphere, cmap="RdBu_r",
            vlim=(-limit, limit), contours=0, sensors=True,
        )  # fmt: skip
        ax.set_title(f"{1e3 * t:.0f} ms", fontsize=9)
    fig.colorbar(image, ax=list(axes), fraction=0.02, pad=0.02, label="µV")
    return fig


def _repetitions_figure(by_repetitions: dict, chance: float | None) -> Figure:
    repetitions = [int(r) for r in by_repetitions]
    fig = Figure(figsize=(5.0, 3.0), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(repetitions, [by_repetitions[str(r)] for r in repetitions], "o-", color="tab:blue")
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label=f"chance {chance:.3f}")
        ax.legend(fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("repetitions", fontsize=8)
    ax.set_ylabel("character accuracy", fontsize=8)
    return fig
