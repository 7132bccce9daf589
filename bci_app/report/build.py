"""The session report: one self-contained HTML file (``mne.Report``) for a recording with cue
markers, optionally with a trained model. See :func:`write_report`."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bci_app.config import AppConfig, load_config
from bci_app.decoders.threads import blas_on_one_thread
from bci_app.io import Recording, load_recording
from bci_app.nn.checkpoint import read_metadata
from bci_app.report.cues import APP_MARKER_PREFIX, ReportError, cue_epochs, resolve_class_map
from bci_app.report.decoding import (
    Decoding,
    load_model,
    model_decoding,
    quick_decoding,
)
from bci_app.report.parts import (
    ReportSummary,
    add_quality,
    add_weights,
    bullet_list,
    escape,
    paragraphs,
    save_report,
    table,
)
from bci_app.report.quality import QualityReport, check_quality
from bci_app.report.scalp import MOTOR_SITES, nearest_sites, scalp_layout
from bci_app.report.spectral import (
    BANDS,
    BASELINE_S,
    EPOCH_PAD_S,
    FREQS_HZ,
    TRIM,
    band_maps,
    erd_maps,
)

__all__ = ["SECTIONS", "ReportSummary", "write_report"]

log = logging.getLogger(__name__)

SESSION = "Session"
QUALITY = "Data quality"
ERD = "ERD/ERS time-frequency maps"
BAND_POWER = "Band-power topomaps"
DECODING = "Decoding accuracy"
CONFUSION = "Confusion matrix"
TIME_COURSE = "Accuracy vs time since cue"
WEIGHTS = "Electrode weights"
#: The report's sections, in order; every report has all of them (with a note where a part
#: could not be computed).
SECTIONS: tuple[str, ...] = (
    SESSION,
    QUALITY,
    ERD,
    BAND_POWER,
    DECODING,
    CONFUSION,
    TIME_COURSE,
    WEIGHTS,
)


def _number(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if not np.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _metrics_rows(metrics: dict) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = [
        ("accuracy (per trial)", _number(metrics.get("accuracy"))),
        ("balanced accuracy", _number(metrics.get("balanced_accuracy"))),
        ("Cohen's kappa", _number(metrics.get("kappa"))),
        ("trials", metrics.get("n_trials")),
        (
            "chance (95 % threshold)",
            f"{_number(metrics.get('chance'))} ({_number(metrics.get('chance_95'))})",
        ),
    ]
    if metrics.get("itr_bits_per_min") is not None:
        rows.append(
            (
                "ITR (Wolpaw)",
                f"{_number(metrics.get('itr_bits_per_trial'))} bits/trial, "
                f"{_number(metrics.get('itr_bits_per_min'), 2)} bits/min at "
                f"{_number(metrics.get('itr_trial_s'), 1)} s per decision",
            )
        )
    if metrics.get("n_folds"):
        folds = ", ".join(_number(a, 2) for a in metrics.get("fold_accuracy") or [])
        rows.append(("folds (accuracy each)", f"{metrics['n_folds']} ({folds})"))
    latency = metrics.get("decision_latency_s") or {}
    if any(v is not None for v in latency.values()):
        rows.append(
            (
                "decision latency (share of the final gain over chance)",
                ", ".join(
                    f"{k} % at {'-' if v is None else f'{v:g} s'}" for k, v in latency.items()
                ),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _config_for(config: AppConfig | None, quality: QualityReport) -> AppConfig:
    """The given config, else the app's with its notch on the mains frequency found (when that
    lies below the model rate's Nyquist frequency)."""
    if config is not None:
        return config
    config = load_config(None)
    mains = quality.mains_hz
    nyquist = (config.model_rate or 0.0) / 2.0
    if mains is not None and config.filters.notch not in (None, mains) and mains < nyquist:
        filters = config.filters.model_copy(update={"notch": mains})
        config = config.model_copy(update={"filters": filters})
    return config


def _session_html(
    recording: Recording,
    class_map: dict[str, str],
    counts: dict[str, int],
    dropped: int,
    unplaced: tuple[str, ...],
    decoding: Decoding,
    command: str,
) -> str:
    cues = Counter(
        label for _, label in recording.events if not label.startswith(APP_MARKER_PREFIX)
    )
    rows: list[tuple[str, object]] = [
        ("file", recording.source),
        ("duration", f"{recording.duration_s:.1f} s at {recording.rate_hz:g} Hz"),
        ("channels", f"{len(recording.labels)}: {', '.join(recording.labels)}"),
        ("cue markers in the file", ", ".join(f"{k} ({n}x)" for k, n in sorted(cues.items()))),
        ("classes (marker: class)", ", ".join(f"{k}: {v}" for k, v in class_map.items())),
        ("trials per class", ", ".join(f"{k} {n}" for k, n in counts.items())),
        ("decoder", decoding.description),
        ("reproduce", command),
    ]
    if dropped:
        rows.insert(6, ("trials left out", f"{dropped} (too near an end of the file, or gaps)"))
    if unplaced:
        rows.insert(3, ("channels without a scalp position", ", ".join(unplaced)))
    if recording.damage:
        rows.append(("damage", "; ".join(recording.damage)))
    return table(rows)


def write_report(
    recording: str | Path | Recording,
    out_path: str | Path,
    model_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    *,
    config: AppConfig | None = None,
    trial_s: tuple[float, float] = (0.0, 4.0),
    decoder: str | None = None,
    strict: bool = False,
) -> ReportSummary:
    """Write the session report of ``recording`` (a file, or a :class:`Recording` in memory) to
    ``out_path`` (``.html``, one self-contained file; overwritten) and return its summary.

    ``model_dir``: a checkpoint to score on the file (its own dsp, channels, trial window and
    class map); without one, ``decoder`` (csp-lda / riemann / mdm; None: csp-lda for two
    classes, riemann for more) is fitted on the file and scored on held-out blocks of its
    trials, with ``config`` (default: the app's config, notch on the mains frequency found) and
    the trial window ``trial_s`` (s after the cue).
    ``classes``: ``LABEL:CLASS`` items as ``bci-app train --classes`` (default: the model's
    class map, else every cue marker of the file). ``strict``: refuse a damaged file.
    Raises :class:`ReportError` (a UserError) for input the report cannot use, naming the fix.

    BLAS runs on one thread meanwhile: the arrays are small, and on a busy 2-core machine
    OpenBLAS's threads made each topomap's interpolation take 1-2 s instead of 20 ms.

    A P300 model, or without a model and ``classes`` a file with the speller's flash markers,
    gets the P300 report instead (:func:`~bci_app.report.erp.write_erp_report`).
    """
    from bci_app.report.erp import has_flash_markers, write_erp_report

    if not isinstance(recording, Recording):
        recording = load_recording(recording, strict)
    if model_dir is not None:
        erp = read_metadata(Path(model_dir)).paradigm.erp
    else:
        erp = not classes and has_flash_markers(recording)
    if erp:
        return write_erp_report(recording, out_path, model_dir, strict=strict)
    with blas_on_one_thread():
        return _write_report(
            recording, out_path, model_dir, classes, config, trial_s, decoder, strict
        )


def _write_report(
    recording: str | Path | Recording,
    out_path: str | Path,
    model_dir: str | Path | None,
    classes: Sequence[str] | None,
    config: AppConfig | None,
    trial_s: tuple[float, float],
    decoder: str | None,
    strict: bool,
) -> ReportSummary:
    import mne

    from bci_app.report import figures

    figures.use_agg()
    started = time.perf_counter()
    stages: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        stages[name] = round(now - since, 3)
        return now

    out = Path(out_path)
    if out.suffix.lower() != ".html":
        raise ReportError(
            f"the report is an HTML file; give --out a name ending in .html, not {out}"
        )
    if out.is_dir():
        raise ReportError(
            f"{out} is a folder; give --out a file name such as {out / 'report.html'}"
        )
    if not isinstance(recording, Recording):
        recording = load_recording(recording, strict)
    t = lap("load", started)

    model = None if model_dir is None else load_model(model_dir)
    metadata = None if model is None else model[1]
    class_map = resolve_class_map(
        recording,
        classes,
        model_class_map=None if metadata is None else metadata.training["class_map"],
        model_classes=None if metadata is None else metadata.classes,
        model_name=str(model_dir),
    )
    if metadata is not None:
        start, stop = (float(v) for v in metadata.training.get("trial_window_s", [0.0, 4.0]))
    else:
        start, stop = (float(v) for v in trial_s)
    if not stop > start:
        raise ReportError(f"the trial window {start:g}-{stop:g} s is empty; give start < stop")

    quality = check_quality(recording)
    t = lap("quality", t)

    if model is not None:
        decoding = model_decoding(recording, str(model_dir), model[0], model[1], class_map)
    else:
        decoding = quick_decoding(
            recording, class_map, _config_for(config, quality), (start, stop), decoder
        )
    t = lap("decoding", t)

    epochs = cue_epochs(recording, class_map, BASELINE_S[0] - EPOCH_PAD_S, stop + EPOCH_PAD_S)
    counts = epochs.counts()
    scalp = scalp_layout(recording.labels, recording.rate_hz)
    sites = nearest_sites(recording.labels)
    erd = erd_maps(epochs, sites, stop) if sites else None
    bands = band_maps(epochs, stop)
    t = lap("spectra", t)

    report = mne.Report(title=f"bci-app session report: {recording.run}", verbose=False)
    command = f"bci-app report {recording.source}" + (
        f" --model {model_dir}" if model_dir is not None else f" --decoder {decoding.decoder}"
    )
    if classes:
        command += " --classes " + " ".join(classes)
    report.add_html(
        _session_html(
            recording, class_map, counts, epochs.dropped, scalp.unplaced, decoding, command
        ),
        title="Recording, classes and decoder",
        section=SESSION,
    )

    add_quality(report, quality, QUALITY)

    if erd is not None:
        report.add_figure(
            figures.rendered(figures.erd_figure(erd, counts)),
            title=f"ERD/ERS at {', '.join(MOTOR_SITES)}",
            caption=(
                f"Morlet power, {FREQS_HZ[0]:g}-{erd.freqs[-1]:g} Hz in 1 Hz steps, n_cycles = "
                f"f/2, the trimmed mean ({TRIM:.0%} cut at each end) over each class's trials, in "
                f"percent of its mean from {BASELINE_S[0]:g} to {BASELINE_S[1]:g} s (blue: ERD, "
                "a power drop; red: ERS). Motor imagery of a hand shows as mu/beta ERD over "
                "the opposite hemisphere (C3 for the right hand, C4 for the left), of the feet "
                "at Cz."
            ),
            image_format="png",
            section=ERD,
        )
    else:
        report.add_html(
            paragraphs(["No channel has a known scalp position, so no motor site was found."]),
            title="No motor sites",
            section=ERD,
        )

    if scalp.info is not None and len(scalp.labels) >= 3:
        report.add_figure(
            figures.rendered(figures.band_figure(bands, scalp)),
            title="Mu and beta band power per class",
            caption=(
                "Welch power (1 s segments) in "
                + ", ".join(f"{name} {lo:g}-{hi:g} Hz" for name, (lo, hi) in BANDS.items())
                + f" from {bands.task_s[0]:g} to {bands.task_s[1]:g} s after the cue, in percent "
                "change from the second before the cue (trimmed means over each class's "
                "trials); the last column(s): the difference between classes in percentage "
                "points."
            ),
            image_format="png",
            section=BAND_POWER,
        )
    else:
        report.add_html(
            paragraphs(["Fewer than 3 channels have a scalp position: no topomaps."]),
            title="No topomaps",
            section=BAND_POWER,
        )

    metrics = decoding.metrics
    decoding_html = paragraphs(
        [f"Decoder: {decoding.description}.", f"Scored: {decoding.protocol}."]
    )
    if metrics is not None:
        decoding_html += table(_metrics_rows(metrics))
    if decoding.model_scores:
        folds = decoding.model_scores.get("n_folds")
        how = f"{folds}-fold cross-validation" if folds else "held-out trials"
        decoding_html += f"<p>The model's own scores, from its training ({escape(how)}):</p>"
        decoding_html += table(_metrics_rows(decoding.model_scores))
    decoding_html += bullet_list(decoding.notes) if decoding.notes else ""
    report.add_html(decoding_html, title="Per-trial accuracy and ITR", section=DECODING)
    missing = paragraphs(["No decoding scores (see Decoding accuracy)."])
    if metrics is not None:
        report.add_figure(
            figures.rendered(figures.confusion_figure(metrics)),
            title="Trials by true and predicted class",
            caption="Rows: the cued class; columns: the decoder's decision (mean probability "
            "of the trial's windows).",
            image_format="png",
            section=CONFUSION,
        )
        report.add_figure(
            figures.rendered(figures.time_course_figure(metrics)),
            title="Accuracy against time since the cue",
            caption="The decision from the windows that had ended by each time, as a live "
            "session would make it; a trial without a window yet counts as wrong.",
            image_format="png",
            section=TIME_COURSE,
        )
    else:
        report.add_html(missing, title="No confusion matrix", section=CONFUSION)
        report.add_html(missing, title="No accuracy curve", section=TIME_COURSE)
    add_weights(
        report,
        decoding.weights,
        decoding.weight_labels,
        recording.rate_hz,
        decoding.decoder,
        f"Mean over this file's trial windows of {decoding.weights_meaning}.",
        WEIGHTS,
    )
    t = lap("figures", t)
    save_report(report, out)
    lap("save", t)
    accuracy = None if metrics is None else float(metrics["accuracy"])
    return ReportSummary(
        out=out,
        seconds=round(time.perf_counter() - started, 2),
        sections=SECTIONS,
        classes=epochs.classes,
        trials=counts,
        decoder=decoding.decoder,
        accuracy=accuracy,
        quality=quality.notes,
        stage_seconds=stages,
    )
