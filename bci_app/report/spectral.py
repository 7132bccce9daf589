"""Event-related desynchronisation and synchronisation (ERD/ERS, Pfurtscheller & Lopes da Silva
1999): band power after the cue relative to the second before it, in percent (negative: ERD).

Time-frequency maps: Morlet power (``mne.time_frequency.tfr_array_morlet``, :data:`FREQS_HZ`
in 1 Hz steps, ``n_cycles = f / 2``, output decimated to about :data:`TFR_RATE_HZ`), averaged
over the trials of a class, then ``100 * (P / mean(P over the baseline) - 1)`` ('percent'
baseline of MNE). Band-power maps: Welch power (1 s segments) in :data:`BANDS` over the trial
(from :data:`TASK_START_S` after the cue) against the baseline, averaged over a class's trials,
per channel. The averages are trimmed means (:data:`TRIM`: the highest and lowest 15 % of
the trials left out at each point): with 7-20 trials a class, one trial with a movement
artefact (S001R06 has one, 1.7 s after a cue) otherwise paints a broadband stripe over every
map, and a median is much noisier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

from bci_app.report.cues import CueEpochs

__all__ = [
    "BANDS",
    "BASELINE_S",
    "EPOCH_PAD_S",
    "FREQS_HZ",
    "BandMaps",
    "ErdMaps",
    "band_maps",
    "erd_maps",
]

#: Frequencies of the time-frequency maps (Hz, inclusive, 1 Hz steps; capped below Nyquist).
FREQS_HZ = (6.0, 35.0)
#: Reference interval before the cue (s).
BASELINE_S = (-1.0, 0.0)
#: Extra data on each side of the shown interval, so the wavelets' edges fall outside it (s).
EPOCH_PAD_S = 0.5
#: Rate of the time-frequency output (Hz), reached by decimation.
TFR_RATE_HZ = 40.0
#: Frequency bands of the topomaps (Hz, inclusive).
BANDS: dict[str, tuple[float, float]] = {"mu": (8.0, 12.0), "beta": (13.0, 30.0)}
#: Share of trials cut from each end before averaging power (``scipy.stats.trim_mean``).
TRIM = 0.15
#: The band-power maps skip the first part of the trial (the visual response to the cue), s.
TASK_START_S = 0.5


@dataclass(frozen=True, eq=False)
class ErdMaps:
    """``change_pct (n_classes, n_sites, n_freqs, n_times)``: ERD/ERS in percent of the
    baseline; ``freqs`` Hz, ``times`` s after the cue; ``sites``: ``(site, channel label)``."""

    change_pct: np.ndarray
    freqs: np.ndarray
    times: np.ndarray
    sites: tuple[tuple[str, str], ...]
    classes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class BandMaps:
    """``change_pct (n_bands, n_classes, n_channels)``: band power from ``task_s[0]`` to
    ``task_s[1]`` s after the cue, in percent change from the baseline, per channel."""

    change_pct: np.ndarray
    bands: dict[str, tuple[float, float]]
    classes: tuple[str, ...]
    task_s: tuple[float, float]


def _index(epochs: CueEpochs, t_s: float) -> int:
    return int(round((t_s - epochs.tmin_s) * epochs.rate_hz))


def erd_maps(
    epochs: CueEpochs,
    sites: Sequence[tuple[str, int, str]],
    stop_s: float,
) -> ErdMaps:
    """Time-frequency ERD/ERS of ``sites`` (``(site, column, label)``, see
    :func:`~bci_app.report.scalp.nearest_sites`) from the baseline to ``stop_s`` s after the cue;
    ``epochs`` must start :data:`EPOCH_PAD_S` before the baseline."""
    from mne.time_frequency import tfr_array_morlet

    rate = epochs.rate_hz
    top = min(FREQS_HZ[1], np.floor(0.45 * rate))
    freqs = np.arange(FREQS_HZ[0], top + 0.5, 1.0)
    decim = max(1, int(rate // TFR_RATE_HZ))
    columns = [column for _, column, _ in sites]
    power = tfr_array_morlet(
        epochs.data[:, columns],
        rate,
        freqs,
        n_cycles=freqs / 2.0,
        output="power",
        decim=decim,
        n_jobs=1,
        verbose=False,
    )  # (n_epochs, n_sites, n_freqs, n_times)
    times = epochs.times()[::decim][: power.shape[-1]]
    base = (times >= BASELINE_S[0]) & (times < BASELINE_S[1])
    shown = (times >= BASELINE_S[0]) & (times <= stop_s + 1e-9)
    change = np.empty((len(epochs.classes), len(columns), len(freqs), int(shown.sum())))
    for k in range(len(epochs.classes)):
        typical = stats.trim_mean(power[epochs.y == k], TRIM, axis=0)
        reference = typical[..., base].mean(axis=-1, keepdims=True)
        change[k] = 100.0 * (typical[..., shown] / reference - 1.0)
    return ErdMaps(
        change_pct=change,
        freqs=freqs,
        times=times[shown],
        sites=tuple((site, label) for site, _, label in sites),
        classes=epochs.classes,
    )


def band_maps(epochs: CueEpochs, stop_s: float) -> BandMaps:
    """Band-power change of every channel in :data:`BANDS`, per class (the trimmed mean power
    over the class's trials, compared with their trimmed mean baseline power)."""
    rate = epochs.rate_hz
    start_s = TASK_START_S if stop_s - TASK_START_S >= 1.0 else 0.0
    segments = {
        "base": epochs.data[..., _index(epochs, BASELINE_S[0]) : _index(epochs, BASELINE_S[1])],
        "task": epochs.data[..., _index(epochs, start_s) : _index(epochs, stop_s)],
    }
    # One segment length for both, so their frequencies agree.
    nperseg = min(round(rate), *(part.shape[-1] for part in segments.values()))
    psd = {}
    for name, part in segments.items():
        freqs, psd[name] = signal.welch(part, rate, nperseg=nperseg, axis=-1)
    change = np.full((len(BANDS), len(epochs.classes), epochs.data.shape[1]), np.nan)
    for b, (lo, hi) in enumerate(BANDS.values()):
        in_band = (freqs >= lo) & (freqs <= hi)
        if not in_band.any():
            continue
        task = psd["task"][..., in_band].mean(axis=-1)  # (n_epochs, n_channels)
        base = psd["base"][..., in_band].mean(axis=-1)
        for k in range(len(epochs.classes)):
            mine = epochs.y == k
            if mine.any():
                reference = stats.trim_mean(base[mine], TRIM, axis=0)
                reference = np.maximum(reference, np.finfo(np.float64).tiny)
                change[b, k] = 100.0 * (stats.trim_mean(task[mine], TRIM, axis=0) / reference - 1.0)
    return BandMaps(change, dict(BANDS), epochs.classes, (start_s, float(stop_s)))
