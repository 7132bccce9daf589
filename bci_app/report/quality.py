"""Data-quality checks of a recording, in plain words: flat, noisy and bridged channels, mains
line noise, gaps and damage.

- flat: band-passed (1-40 Hz) robust amplitude (0.7413 x the interquartile range: the standard
  deviation of a normal signal, not raised by brief blinks) below :data:`FLAT_UV` µV or below
  :data:`FLAT_FRACTION` of the median channel's;
- noisy: robust z-score of that amplitude above :data:`NOISY_Z` (median and scaled MAD over
  channels: the PREP pipeline's deviation criterion, Bigdely-Shamlo et al. 2015) and the
  amplitude at least :data:`NOISY_RATIO` times the median (channels that agree closely, as
  simulated ones do, otherwise flag natural topography such as occipital alpha);
- bridged: MNE's electrical-distance test (``mne.preprocessing.compute_bridged_electrodes``,
  Greischar et al. 2004 / Tenke & Kayser 2001) on at most :data:`BRIDGE_MAX_S` s;
- line noise: Welch power at 50 and 60 Hz (when below Nyquist) against the bins 2-6 Hz away,
  in dB; present when the median channel is :data:`LINE_DB` dB above.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from bci_app.io import Recording

__all__ = ["BRIDGE_MAX_S", "QualityReport", "check_quality"]

log = logging.getLogger(__name__)

FLAT_UV = 1.0
FLAT_FRACTION = 0.01
NOISY_Z = 5.0
NOISY_RATIO = 2.0
LINE_DB = 3.0
#: A channel this far (dB) above its neighbouring frequencies is named in the line-noise note.
LINE_CHANNEL_DB = 10.0
BRIDGE_MAX_S = 180.0
MAINS_HZ = (50, 60)
_BAND_HZ = (1.0, 40.0)


@dataclass(frozen=True, eq=False)
class QualityReport:
    """What the checks found. ``std_uv (n_channels,)``: band-passed robust amplitude (µV);
    ``noisy``: ``(label, robust z)``; ``bridged``: label pairs; ``line_db``: mains frequency ->
    ``(n_channels,)`` dB over the neighbouring bins; ``mains_hz``: the mains frequency found,
    else None; ``psd_freqs (F,)`` Hz and ``psd (n_channels, F)`` µV²/Hz for the figure;
    ``notes``: one sentence per finding."""

    labels: tuple[str, ...]
    std_uv: np.ndarray
    flat: tuple[str, ...]
    noisy: tuple[tuple[str, float], ...]
    bridged: tuple[tuple[str, str], ...]
    line_db: dict[int, np.ndarray]
    mains_hz: int | None
    psd_freqs: np.ndarray
    psd: np.ndarray
    notes: tuple[str, ...] = field(default=())

    @property
    def problems(self) -> int:
        """Channels flagged flat, noisy or bridged."""
        return len(self.flat) + len(self.noisy) + len({c for pair in self.bridged for c in pair})


def _names(labels: list[str], limit: int = 12) -> str:
    more = len(labels) - limit
    return ", ".join(labels[:limit]) + (f" and {more} more" if more > 0 else "")


def _bridged_pairs(
    data_uv: np.ndarray, labels: tuple[str, ...], rate_hz: float
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """MNE's bridged-electrode pairs of ``data_uv (n_samples, n_channels)``; the note when the
    test cannot run."""
    import mne

    n = min(data_uv.shape[0], round(BRIDGE_MAX_S * rate_hz))
    if n < 4 * rate_hz or rate_hz <= 60.0 or data_uv.shape[1] < 2:
        return (), (
            "The bridged-electrode test was skipped: it needs at least 2 channels, 4 s of data "
            "and a sample rate above 60 Hz."
        )
    info = mne.create_info(list(labels), float(rate_hz), "eeg")
    raw = mne.io.RawArray(
        np.nan_to_num(data_uv[:n].T.astype(np.float64)) * 1e-6, info, verbose=False
    )
    try:
        with mne.utils.use_log_level("error"):
            pairs, _ = mne.preprocessing.compute_bridged_electrodes(raw, verbose=False)
    except Exception as exc:  # a numerical failure of MNE's test must not cost the report
        log.warning("bridged-electrode test failed: %s", exc)
        return (), f"The bridged-electrode test could not run ({type(exc).__name__}: {exc})."
    return tuple((labels[a], labels[b]) for a, b in pairs), None


def _line_noise(freqs: np.ndarray, psd: np.ndarray, nyquist: float) -> dict[int, np.ndarray]:
    found = {}
    for f0 in MAINS_HZ:
        if f0 + 6.0 >= nyquist:
            continue
        peak = psd[:, np.abs(freqs - f0) <= 1.0].max(axis=1)
        distance = np.abs(freqs - f0)
        around = np.median(psd[:, (distance >= 2.0) & (distance <= 6.0)], axis=1)
        found[f0] = 10.0 * np.log10(np.maximum(peak, 1e-30) / np.maximum(around, 1e-30))
    return found


def check_quality(recording: Recording) -> QualityReport:
    """Run every check on the whole ``recording`` (a few seconds for 64 channels x 2 min)."""
    labels = recording.labels
    rate = recording.rate_hz
    raw = recording.data
    finite = np.isfinite(raw)
    nonfinite = int((~finite.all(axis=1)).sum())
    data = np.where(finite, raw, 0.0).astype(np.float64)
    data -= np.median(data, axis=0)
    notes: list[str] = []

    high = min(_BAND_HZ[1], 0.45 * rate)
    sos = signal.butter(4, (_BAND_HZ[0], high), btype="bandpass", fs=rate, output="sos")
    padlen = min(data.shape[0] - 1, 3 * (2 * len(sos) + 1))
    filtered = signal.sosfiltfilt(sos, data, axis=0, padlen=padlen)
    quartiles = np.percentile(filtered, [25.0, 75.0], axis=0)
    std = 0.7413 * (quartiles[1] - quartiles[0])
    median = float(np.median(std))
    is_flat = (std < FLAT_UV) | (std < FLAT_FRACTION * median)
    flat = tuple(labels[i] for i in np.flatnonzero(is_flat))
    live = ~is_flat
    noisy: list[tuple[str, float]] = []
    if live.sum() >= 3:
        centre = float(np.median(std[live]))
        spread = 1.4826 * float(np.median(np.abs(std[live] - centre)))
        z = (std - centre) / spread if spread > 0 else np.zeros_like(std)
        loud = live & (z > NOISY_Z) & (std >= NOISY_RATIO * centre)
        noisy = [(labels[i], float(z[i])) for i in np.flatnonzero(loud)]
        top = int(np.argmax(np.where(live, std, -np.inf)))
        summary = (
            f"Channel amplitude (1-{high:g} Hz, robust standard deviation): median "
            f"{centre:.1f} µV, largest {labels[top]} {std[top]:.1f} µV (robust z {z[top]:.1f})."
        )
    else:
        summary = (
            f"Channel amplitude (1-{high:g} Hz, robust standard deviation): median {median:.1f} µV."
        )
    if flat:
        notes.append(
            f"Flat channel(s): {_names(list(flat))} (no signal: disconnected or switched off "
            "electrodes); leave them out with channels.pick or fix the electrode."
        )
    if noisy:
        named = [f"{label} (z {z:.1f})" for label, z in noisy]
        notes.append(
            f"Noisy channel(s): {_names(named)}: their amplitude is more than {NOISY_Z:g} robust "
            f"standard deviations above, and at least {NOISY_RATIO:g} times, the other channels' "
            "(poor contact or muscle); re-gel them or leave them out."
        )
    if not flat and not noisy:
        notes.append("No flat or noisy channel.")
    notes.append(summary)

    bridged, skipped = _bridged_pairs(recording.data, labels, rate)
    if skipped:
        notes.append(skipped)
    elif bridged:
        pairs = [f"{a}-{b}" for a, b in bridged]
        notes.append(
            f"Bridged electrodes (electrically almost identical, e.g. gel smeared between "
            f"them): {_names(pairs)}; clean and re-gel those electrodes."
        )
    else:
        notes.append("No bridged electrodes (MNE's electrical-distance test).")

    nperseg = min(data.shape[0], round(2.0 * rate))
    freqs, psd = signal.welch(data.T, rate, nperseg=nperseg, axis=-1)
    line = _line_noise(freqs, psd, rate / 2.0)
    mains: int | None = None
    strongest = -math.inf
    for f0, db in line.items():
        level = float(np.median(db))
        if level >= LINE_DB and level > strongest:
            mains, strongest = f0, level
    if mains is not None:
        db = line[mains]
        loud = [f"{labels[i]} {db[i]:.0f} dB" for i in np.argsort(-db) if db[i] >= LINE_CHANNEL_DB]
        notes.append(
            f"Line noise at {mains} Hz: the median channel is {strongest:.1f} dB above the "
            f"neighbouring frequencies"
            + (f" (strongest: {_names(loud, 6)})" if loud else "")
            + f". The notch filter at {mains} Hz (filters.notch: {mains}) removes it; the "
            "8-30 Hz motor band lies well below it."
        )
    elif line:
        checked = " and ".join(
            f"{f0} Hz ({float(np.median(db)):.1f} dB)" for f0, db in line.items()
        )
        notes.append(f"No line noise at {checked} above the neighbouring frequencies.")
    else:
        notes.append(
            f"Line noise not checked: 50 and 60 Hz are at or above the Nyquist frequency "
            f"({rate / 2:g} Hz) of this {rate:g} Hz recording."
        )
    if nonfinite:
        notes.append(
            f"{nonfinite} sample(s) ({nonfinite / rate:.1f} s) hold non-finite values (gaps); "
            "windows over them are flagged and skipped."
        )
    notes.extend(f"Damaged file: {note}" for note in recording.damage)
    return QualityReport(
        labels=labels,
        std_uv=std,
        flat=flat,
        noisy=tuple(noisy),
        bridged=bridged,
        line_db=line,
        mains_hz=mains,
        psd_freqs=freqs,
        psd=psd,
        notes=tuple(notes),
    )
