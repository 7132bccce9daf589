"""The report's figures, drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot
figure manager, so no window and no GUI event loop is involved); :func:`use_agg` makes the
off-screen Agg backend the process's, unless pyplot already runs with another."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from bci_app.report.quality import QualityReport
from bci_app.report.scalp import Scalp
from bci_app.report.spectral import BASELINE_S, BandMaps, ErdMaps

__all__ = [
    "MAX_WIDTH_PX",
    "band_figure",
    "confusion_figure",
    "erd_figure",
    "psd_figure",
    "rendered",
    "time_course_figure",
    "use_agg",
    "weights_figure",
]

_DPI = 90
#: Widest image of ``mne.Report`` (px); it re-renders wider figures at a fractional dpi, and
#: with MNE 1.13 / matplotlib 3.11 that sheared some of them (rows of the wrong length).
MAX_WIDTH_PX = 850


def use_agg() -> None:
    """Select matplotlib's Agg backend unless pyplot is already imported (MNE's plotting
    helpers import pyplot; without this, a process with Qt loaded could pick a Qt backend)."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def rendered(fig: Figure) -> np.ndarray:
    """``fig`` drawn by Agg as ``(height, width, 4)`` uint8 RGBA, at most :data:`MAX_WIDTH_PX`
    wide (the dpi lowered to fit): the array ``mne.Report.add_figure`` compresses as it is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width_in = float(fig.get_size_inches()[0])
    fig.set_dpi(min(float(fig.get_dpi()), MAX_WIDTH_PX / width_in))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def _symmetric_limit(values: np.ndarray, floor: float = 1.0, ceiling: float = np.inf) -> float:
    """A colour limit for a diverging map: the 95th percentile of |values| (a few extreme
    pixels do not wash out the rest), within ``[floor, ceiling]``."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, 95)) if finite.size else floor
    return min(ceiling, max(floor, limit))


def psd_figure(quality: QualityReport) -> Figure:
    """Welch spectra of every channel (grey) and their median (black), log scale, with the
    mains frequencies marked."""
    fig = Figure(figsize=(8.0, 3.2), dpi=_DPI)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.16)
    ax = fig.add_subplot()
    freqs, psd = quality.psd_freqs, np.maximum(quality.psd, 1e-12)
    ax.semilogy(freqs, psd.T, color="0.75", linewidth=0.5)
    ax.semilogy(freqs, np.median(psd, axis=0), color="black", linewidth=1.5, label="median")
    for f0 in (50, 60):
        if f0 < freqs[-1]:
            found = f0 == quality.mains_hz
            ax.axvline(f0, color="tab:red" if found else "tab:blue", linestyle="--", linewidth=0.8)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (µV²/Hz)")
    ax.set_xlim(0, freqs[-1])
    ax.set_title("Power spectra of all channels (dashed: 50 / 60 Hz mains)")
    ax.legend(loc="upper right")
    return fig


def erd_figure(erd: ErdMaps, counts: dict[str, int]) -> Figure:
    """One row per class, one column per site: ERD/ERS in percent (blue: power drop)."""
    n_rows, n_cols = len(erd.classes), len(erd.sites)
    height = 2.3 * n_rows + 0.6
    fig = Figure(figsize=(3.0 * n_cols + 1.2, height), dpi=_DPI)
    # Fixed margins: matplotlib's constrained layout took a second per report here.
    fig.subplots_adjust(
        left=0.07, right=0.86, top=1.0 - 0.3 / height, bottom=0.5 / height, wspace=0.12,
        hspace=0.3,
    )  # fmt: skip
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=True, sharey=True)
    # ERD cannot pass -100 %; ERS beyond +100 % is saturated so that the ERD stays visible.
    limit = _symmetric_limit(erd.change_pct, floor=10.0, ceiling=100.0)
    extent = (erd.times[0], erd.times[-1], erd.freqs[0] - 0.5, erd.freqs[-1] + 0.5)
    image = None
    for k, name in enumerate(erd.classes):
        for s, (site, label) in enumerate(erd.sites):
            ax = axes[k, s]
            image = ax.imshow(
                erd.change_pct[k, s],
                origin="lower",
                aspect="auto",
                extent=extent,
                cmap="RdBu_r",
                vmin=-limit,
                vmax=limit,
                interpolation="bilinear",
            )
            ax.axvline(0.0, color="black", linewidth=0.8)
            where = label if label.casefold() == site.casefold() else f"{label} (nearest {site})"
            ax.set_title(f"{name} ({counts.get(name, 0)} trials): {where}", fontsize=9)
            if k == n_rows - 1:
                ax.set_xlabel("time after cue (s)")
            if s == 0:
                ax.set_ylabel("frequency (Hz)")
    if image is not None:
        bar = fig.add_axes((0.89, 0.5 / height, 0.015, 1.0 - 0.8 / height))
        fig.colorbar(image, cax=bar, label="power change from baseline (%)")
    return fig


def band_figure(bands: BandMaps, scalp: Scalp) -> Figure:
    """Rows: bands; columns: each class's band-power change and the difference between the
    classes (two classes: first minus second; more: each minus the mean of the others)."""
    from mne.viz import plot_topomap

    names = list(bands.classes)
    change = bands.change_pct[:, :, scalp.columns]  # (B, K, n_placed)
    if len(names) == 2:
        differences = [(f"{names[0]} - {names[1]}", change[:, 0] - change[:, 1])]
    else:
        differences = [
            (f"{name} - others", change[:, k] - np.delete(change, k, axis=1).mean(axis=1))
            for k, name in enumerate(names)
        ]
    n_cols = len(names) + len(differences)
    fig = Figure(figsize=(2.2 * n_cols + 1.2, 2.4 * len(bands.bands)), dpi=_DPI)
    axes = fig.subplots(len(bands.bands), n_cols, squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.9, top=0.86, bottom=0.04, wspace=0.25, hspace=0.35)
    for b, (band, (lo, hi)) in enumerate(bands.bands.items()):
        limit = _symmetric_limit(change[b], floor=5.0, ceiling=100.0)
        panels = [(name, change[b, k], limit) for k, name in enumerate(names)]
        diff_limit = _symmetric_limit(
            np.stack([d[b] for _, d in differences]), floor=5.0, ceiling=100.0
        )
        panels += [(title, d[b], diff_limit) for title, d in differences]
        for c, (title, values, vlim) in enumerate(panels):
            ax = axes[b, c]
            if not np.isfinite(values).any():
                ax.set_axis_off()
                ax.set_title(f"{band}: no data", fontsize=9)
                continue
            image, _ = plot_topomap(
                np.nan_to_num(values),
                scalp.info,
                axes=ax,
                show=False,
                sphere=scalp.sphere,
                cmap="RdBu_r",
                vlim=(-vlim, vlim),
                contours=0,
                sensors=True,
            )
            ax.set_title(f"{band} {lo:g}-{hi:g} Hz\n{title}", fontsize=9)
            if c == len(names) - 1 or c == n_cols - 1:
                fig.colorbar(image, ax=ax, fraction=0.045, pad=0.02, label="%")
    fig.suptitle(
        f"Band power {bands.task_s[0]:g} to {bands.task_s[1]:g} s after the cue vs "
        f"{BASELINE_S[0]:g} to {BASELINE_S[1]:g} s (blue: ERD, red: ERS)",
        fontsize=10,
    )
    return fig


def confusion_figure(metrics: dict) -> Figure:
    """Counts of trials, rows true class, columns predicted class."""
    classes = list(metrics["classes"])
    confusion = np.asarray(metrics["confusion"])
    size = 1.0 + 0.9 * len(classes)
    fig = Figure(figsize=(size + 1.2, size), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(confusion, cmap="Blues", vmin=0, vmax=max(1, int(confusion.max())))
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=30, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    half = confusion.max() / 2.0
    for i in range(len(classes)):
        for j in range(len(classes)):
            colour = "white" if confusion[i, j] > half else "black"
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", color=colour)
    ax.set_title(f"{metrics['n_trials']} trials")
    return fig


def time_course_figure(metrics: dict) -> Figure:
    """Accuracy of the decision from the windows that ended by each time after the cue, with
    the chance level and its 95 % threshold at this number of trials."""
    curve = metrics.get("accuracy_over_time") or []
    fig = Figure(figsize=(6.0, 3.2), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    t = [p["t_s"] for p in curve]
    ax.plot(t, [p["accuracy"] for p in curve], marker="o", color="tab:blue", label="accuracy")
    n = max(1, metrics["n_trials"])
    ax.plot(
        t, [p["decided"] / n for p in curve], linestyle=":", color="tab:gray",
        label="share of trials with a decision",
    )  # fmt: skip
    ax.axhline(metrics["chance"], color="black", linewidth=0.8, label="chance")
    if np.isfinite(metrics.get("chance_95", np.nan)):
        ax.axhline(
            metrics["chance_95"], color="tab:red", linestyle="--", linewidth=0.8,
            label="95 % above chance",
        )  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time since the cue (s)")
    ax.set_ylabel("per-trial accuracy")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def weights_figure(weights: np.ndarray, labels: Sequence[str], scalp: Scalp, title: str) -> Figure:
    """Electrode weights ``(len(labels),)`` on the scalp (channels of ``scalp`` only)."""
    from mne.viz import plot_topomap

    lookup = {label: i for i, label in enumerate(labels)}
    values = np.array([weights[lookup[label]] for label in scalp.labels], dtype=np.float64)
    fig = Figure(figsize=(4.2, 3.6), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    # From the smallest to the largest weight: an attention network's gates differ by little
    # around 0.5, a CSP pattern's norms span 0-1; the colour bar shows which.
    top = float(np.nanmax(values)) if values.size else 1.0
    low = float(np.nanmin(values)) if values.size else 0.0
    image, _ = plot_topomap(
        values,
        scalp.info,
        axes=ax,
        show=False,
        sphere=scalp.sphere,
        cmap="Reds",
        vlim=(low, top if top > low else low + 1.0),
        contours=0,
        sensors=True,
        names=None,
    )
    fig.colorbar(image, ax=ax, fraction=0.045, pad=0.02, label="weight")
    ax.set_title(title, fontsize=9)
    return fig
