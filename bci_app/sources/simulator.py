"""Synthetic motor-imagery EEG, learnable by a classifier (the LSL side: simulator_stream).

Data convention: ``(n_samples, n_channels)`` float32 microvolts.

* :class:`SimulatorSettings` - validated, frozen configuration.
* :class:`CueSchedule` - infinite, seed-deterministic trial schedule (fixation -> cue ->
  imagery -> jittered rest), in sample indices.
* :class:`EEGSimulator` - pure generator; ``generate(n)`` continues the signal and the output is
  bit-identical however the total is split into calls.
* :class:`~bci_app.sources.simulator_stream.SimulatorStream` (next module) pushes it to LSL.

Signal model (all amplitudes are RMS at the electrode closest to the source):

* background: ~20 random sources on the upper sphere, each white noise through a pole/zero
  ladder (1/f power, -10 dB/decade), mixed to channels by a Gaussian kernel of the chord
  distance; plus independent per-channel 1/f noise and a little white (amplifier) noise;
* posterior alpha (~10 Hz) from sources under O1/O2 with slow log-normal amplitude modulation;
* sensorimotor mu (~11 Hz) and beta (~22 Hz) from sources under C3 (right hand), C4 (left hand)
  and Cz (feet), slowly amplitude-modulated;
* line noise at ``line_freq_hz`` with a random gain per channel;
* event-related desynchronisation (ERD): during the imagery period of a trial the mu and beta
  amplitude of the contralateral source is multiplied by ``erd_depth`` (default 0.35):
  ``left_hand`` -> C4, ``right_hand`` -> C3, ``feet`` -> Cz; ``rest`` -> all three multiplied
  by ``REST_ERS`` (slight synchronisation). Raised-cosine ramps of ``erd_ramp_s`` at both ends
  keep the modulation inside the imagery period. Class names without an entry in
  ``ERD_TARGETS`` (other than ``"rest"``) produce no modulation.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import signal

from bci_app.config import SimulatorConfig
from bci_app.io.montage import channel_set, positions

__all__ = [
    "ERD_TARGETS",
    "REST_ERS",
    "CueSchedule",
    "EEGSimulator",
    "SimulatorSettings",
    "Trial",
]

log = logging.getLogger(__name__)

#: Class name -> label of the rhythm source (C3 / C4 / Cz) that desynchronises during imagery.
ERD_TARGETS: dict[str, str] = {"left_hand": "C4", "right_hand": "C3", "feet": "Cz"}
#: Amplitude factor applied to all three sensorimotor sources during "rest" imagery.
REST_ERS: float = 1.15

_RATE_MIN, _RATE_MAX = 128.0, 4096.0
_BLOCK = 256  # internal generation block (samples); output never depends on the call split

# Amplitudes in microvolts (RMS).
_BG_RMS = 11.0  # spatially correlated 1/f background, at rate 160 Hz (density fixed at 10 Hz)
_CHAN_PINK_RMS = 4.0  # independent per-channel 1/f noise, at rate 160 Hz
_WHITE_RMS = 1.0  # amplifier noise, per channel
_ALPHA_RMS = 12.0
_MU_RMS = 9.0
_BETA_RMS = 4.0
_LINE_PEAK_RANGE = (2.0, 8.0)  # per-channel line-noise peak amplitude, uniform

_N_BG_SOURCES = 20
_BG_SIGMA = 0.45  # Gaussian kernel width (chord distance on the unit sphere)
_ALPHA_SIGMA = 0.40
_MU_SIGMA = 0.25

_ALPHA_BAND = (9.0, 11.0)
_MU_BAND = (9.5, 12.5)
_BETA_BAND = (19.0, 25.0)
_ENV_CUTOFF_HZ = 0.25
_ALPHA_MOD = 0.45  # log-normal modulation depth (std of log amplitude)
_MU_MOD = 0.2

_SENSORIMOTOR = ("C3", "C4", "Cz")
_ALPHA_SITES = ("O1", "O2")


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SimulatorSettings(BaseModel):
    """Simulator configuration (times in seconds, rates/frequencies in Hz); validated, frozen.

    :meth:`from_config` derives it from the config's ``simulator`` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_channels: Literal[8, 64, 256] = 64
    rate_hz: Annotated[float, Field(ge=_RATE_MIN, le=_RATE_MAX, allow_inf_nan=False)] = 160.0
    seed: Annotated[int, Field(ge=0)] = 0
    classes: Annotated[tuple[str, ...], Field(min_length=1)] = (
        "left_hand",
        "right_hand",
        "feet",
        "rest",
    )
    line_freq_hz: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = 50.0
    chunk_seconds: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.01
    fixation_s: Seconds = 2.0
    imagery_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 4.0
    rest_min_s: Seconds = 1.5
    rest_max_s: Seconds = 2.5
    name: Annotated[str, Field(min_length=1)] = "bci-app-sim"
    source_id: Annotated[str, Field(min_length=1)] | None = None
    erd_depth: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.35
    erd_ramp_s: Seconds = 0.4

    @field_validator("classes")
    @classmethod
    def _unique_names(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        if not all(classes) or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be unique non-empty names, got {classes!r}")
        return classes

    @model_validator(mode="after")
    def _consistent(self) -> SimulatorSettings:
        nyquist = self.rate_hz / 2.0
        if self.line_freq_hz is not None and self.line_freq_hz >= nyquist:
            raise ValueError(
                f"line_freq_hz must be None or a frequency in (0, {nyquist:g}) Hz "
                f"(below Nyquist), got {self.line_freq_hz!r}"
            )
        if self.imagery_s * self.rate_hz < 1:
            raise ValueError(f"imagery_s must be at least one sample long, got {self.imagery_s!r}")
        if self.rest_max_s < self.rest_min_s:
            raise ValueError(
                f"rest_max_s must be >= rest_min_s ({self.rest_min_s!r}), got {self.rest_max_s!r}"
            )
        return self

    @classmethod
    def from_config(cls, section: SimulatorConfig, **overrides: Any) -> SimulatorSettings:
        """The settings the config's ``simulator`` section describes (plus ``overrides``)."""
        values: dict[str, Any] = {
            "n_channels": section.channels,
            "rate_hz": section.rate,
            "seed": section.seed,
            "classes": tuple(section.classes),
            "line_freq_hz": None if section.line_freq is None else float(section.line_freq),
        }
        return cls(**(values | overrides))

    @property
    def chunk_samples(self) -> int:
        """Samples per pushed chunk: ``max(1, round(chunk_seconds * rate_hz))``."""
        return max(1, round(self.chunk_seconds * self.rate_hz))


def _seed_seq(seed: int, stream: int) -> np.random.SeedSequence:
    """Independent child seed for one purpose: 0 schedule, 1 layout, 2 noise."""
    return np.random.SeedSequence(seed, spawn_key=(stream,))


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One trial, in sample indices: ``start`` (fixation onset) <= ``cue`` (imagery onset, marker)
    < ``imagery_stop`` (exclusive) <= ``stop`` (exclusive; end of rest = next trial's start)."""

    index: int
    class_name: str
    start: int
    cue: int
    imagery_stop: int
    stop: int


class CueSchedule:
    """Infinite trial schedule, deterministic from ``settings.seed`` (thread-safe, lazy).

    Trials come in blocks; each block is a random permutation of ``settings.classes``. Trial
    ``k``: fixation of ``round(fixation_s * rate)`` samples starting at the previous trial's
    ``stop`` (trial 0 starts at sample 0), cue marker (= class name) at imagery onset, imagery
    of ``round(imagery_s * rate)`` samples, then rest of ``round(U(rest_min_s, rest_max_s) *
    rate)`` samples.
    """

    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._rng = np.random.default_rng(_seed_seq(settings.seed, 0))
        self._n_fix = round(settings.fixation_s * settings.rate_hz)
        self._n_img = round(settings.imagery_s * settings.rate_hz)
        self._trials: list[Trial] = []
        self._cues: list[int] = []
        self._starts: list[int] = []
        self._next_start = 0
        self._lock = threading.Lock()

    @property
    def fixation_samples(self) -> int:
        return self._n_fix

    @property
    def imagery_samples(self) -> int:
        return self._n_img

    def _extend_block(self) -> None:
        s = self._settings
        order = self._rng.permutation(len(s.classes))
        rests = self._rng.uniform(s.rest_min_s, s.rest_max_s, size=len(order))
        for ci, rest_s in zip(order, rests, strict=True):
            start = self._next_start
            cue = start + self._n_fix
            img_stop = cue + self._n_img
            stop = img_stop + round(float(rest_s) * s.rate_hz)
            # A zero-length trial cycle would never advance; guaranteed by imagery >= 1 sample.
            self._trials.append(
                Trial(len(self._trials), s.classes[int(ci)], start, cue, img_stop, stop)
            )
            self._cues.append(cue)
            self._starts.append(start)
            self._next_start = stop

    def _ensure_sample(self, sample_index: int) -> None:
        while self._next_start <= sample_index:
            self._extend_block()

    def _ensure_trial(self, k: int) -> None:
        while len(self._trials) <= k:
            self._extend_block()

    def trial(self, k: int) -> Trial:
        """Trial number ``k`` (0-based)."""
        if k < 0:
            raise ValueError(f"trial index must be >= 0, got {k}")
        with self._lock:
            self._ensure_trial(k)
            return self._trials[k]

    def trials_between(self, start_sample: int, stop_sample: int) -> list[Trial]:
        """Trials whose cue lies in ``[start_sample, stop_sample)``."""
        with self._lock:
            if stop_sample > 0:
                self._ensure_sample(stop_sample)
            lo = bisect_right(self._cues, start_sample - 1)
            hi = bisect_right(self._cues, stop_sample - 1)
            return self._trials[lo:hi]

    def cues_between(self, start_sample: int, stop_sample: int) -> list[tuple[int, str]]:
        """``(cue_sample_index, class_name)`` for cues in ``[start_sample, stop_sample)``."""
        return [(t.cue, t.class_name) for t in self.trials_between(start_sample, stop_sample)]

    def trial_at(self, sample_index: int) -> Trial | None:
        """The trial containing ``sample_index`` (from its fixation to the end of its rest)."""
        if sample_index < 0:
            return None
        with self._lock:
            self._ensure_sample(sample_index)
            return self._trials[bisect_right(self._starts, sample_index) - 1]

    def class_at(self, sample_index: int) -> str | None:
        """Class imagined at ``sample_index`` (inside ``[cue, imagery_stop)``), else None."""
        t = self.trial_at(sample_index)
        if t is not None and t.cue <= sample_index < t.imagery_stop:
            return t.class_name
        return None


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def _pink_sos(rate: float) -> np.ndarray:
    """First-order pole/zero ladder with ~1/f power (-10 dB/decade) from 0.5 Hz up to Nyquist."""
    nyq = rate / 2.0
    sections: list[tuple[float, float]] = []  # (zero, pole) in the z-plane (matched z)
    fp = 0.5
    while fp < nyq:
        fz = fp * 10**0.25  # zero half-way (log) to the next pole: slope -20/2 dB/decade
        sections.append((math.exp(-2 * math.pi * fz / rate), math.exp(-2 * math.pi * fp / rate)))
        fp *= 10**0.5
    if len(sections) % 2:
        sections.append((0.0, 0.0))  # identity, pads to whole second-order sections
    sos = []
    for (z1, p1), (z2, p2) in zip(sections[::2], sections[1::2], strict=True):
        b = np.convolve([1.0, -z1], [1.0, -z2])
        a = np.convolve([1.0, -p1], [1.0, -p2])
        sos.append(np.concatenate([b, a]))
    return np.asarray(sos)


def _unit_variance(sos: np.ndarray, rate: float, seconds: float) -> np.ndarray:
    """Scale ``sos`` so that unit-variance white noise in gives unit variance out."""
    n = max(1024, int(seconds * rate))
    imp = np.zeros(n)
    imp[0] = 1.0
    h = signal.sosfilt(sos, imp)
    sos = sos.copy()
    sos[0, :3] /= math.sqrt(float(np.sum(h * h)))
    return sos


def _gain_at(sos: np.ndarray, freq: float, rate: float) -> float:
    _, h = signal.sosfreqz(sos, worN=[freq], fs=rate)
    return float(abs(h[0]))


def _kernel(src: np.ndarray, chans: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian kernel ``(n_src, n_chan)`` of chord distances between unit vectors."""
    d2 = np.sum((src[:, None, :] - chans[None, :, :]) ** 2, axis=-1)
    return np.exp(-d2 / (2.0 * sigma * sigma))


def _rise(t: np.ndarray, ramp: float) -> np.ndarray:
    """0 for t <= 0, raised-cosine to 1 at t >= ramp (> 0)."""
    x = np.clip(t / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


class EEGSimulator:
    """Pure synthetic-EEG generator (no LSL). Not thread-safe; one consumer per instance."""

    def __init__(self, settings: SimulatorSettings | None = None) -> None:
        s = settings if settings is not None else SimulatorSettings()
        self._settings = s
        self._labels = channel_set(s.n_channels)
        self._pos = positions(self._labels)
        self._schedule = CueSchedule(s)
        rate = float(s.rate_hz)
        n_ch = len(self._labels)

        layout = np.random.default_rng(_seed_seq(s.seed, 1))
        self._noise = np.random.default_rng(_seed_seq(s.seed, 2))

        # Background sources, uniform on the cap z >= -0.2.
        z = layout.uniform(-0.2, 1.0, _N_BG_SOURCES)
        phi = layout.uniform(0.0, 2 * math.pi, _N_BG_SOURCES)
        r = np.sqrt(1.0 - z * z)
        bg_pos = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
        k_bg = _kernel(bg_pos, self._pos, _BG_SIGMA)
        k_bg /= np.sqrt(np.sum(k_bg * k_bg, axis=0, keepdims=True))  # unit variance per channel

        # Pink filter normalised so that its density at 10 Hz gives the *_RMS totals at 160 Hz.
        pink = _pink_sos(rate)
        ref = _unit_variance(_pink_sos(160.0), 160.0, 30.0)
        ref_density = _gain_at(ref, 10.0, 160.0) * math.sqrt(2.0 / 160.0)
        pink[0, :3] *= ref_density / (_gain_at(pink, 10.0, rate) * math.sqrt(2.0 / rate))
        self._pink = pink

        k_alpha = _kernel(positions(_ALPHA_SITES), self._pos, _ALPHA_SIGMA)
        k_mu = _kernel(positions(_SENSORIMOTOR), self._pos, _MU_SIGMA)
        # Mixing matrix rows: [bg sources | alpha | mu | beta]
        self._mix = np.concatenate(
            [_BG_RMS * k_bg, _ALPHA_RMS * k_alpha, _MU_RMS * k_mu, _BETA_RMS * k_mu], axis=0
        )
        self._line_gain = layout.uniform(*_LINE_PEAK_RANGE, n_ch)
        self._line_phase = float(layout.uniform(0.0, 2 * math.pi))

        def band(lo: float, hi: float) -> np.ndarray:
            return _unit_variance(
                signal.butter(2, [lo, hi], btype="bandpass", fs=rate, output="sos"), rate, 20.0
            )

        self._sos_alpha = band(*_ALPHA_BAND)
        self._sos_mu = band(*_MU_BAND)
        self._sos_beta = band(*_BETA_BAND)
        self._sos_env = _unit_variance(
            signal.butter(2, _ENV_CUTOFF_HZ, btype="lowpass", fs=rate, output="sos"), rate, 60.0
        )

        # Noise columns of each block draw.
        n_a, n_m = len(_ALPHA_SITES), len(_SENSORIMOTOR)
        self._n_pink = _N_BG_SOURCES + n_ch
        self._cols = {}
        c = 0
        for key, width in (
            ("pink", self._n_pink),
            ("alpha", n_a),
            ("mu", n_m),
            ("beta", n_m),
            ("env", n_a + n_m),
            ("white", n_ch),
        ):
            self._cols[key] = slice(c, c + width)
            c += width
        self._n_noise = c

        def zi(sos: np.ndarray, width: int) -> np.ndarray:
            return np.zeros((sos.shape[0], 2, width))

        self._zi = {
            "pink": zi(self._pink, self._n_pink),
            "alpha": zi(self._sos_alpha, n_a),
            "mu": zi(self._sos_mu, n_m),
            "beta": zi(self._sos_beta, n_m),
            "env": zi(self._sos_env, n_a + n_m),
        }
        self._erd_index = {lab: i for i, lab in enumerate(_SENSORIMOTOR)}
        self._ramp = max(1.0, min(s.erd_ramp_s, s.imagery_s / 2.0) * rate)  # samples

        self._block_index = 0
        self._buf = np.zeros((0, n_ch), dtype=np.float32)
        self._buf_pos = 0
        self._sample_index = 0

    @property
    def settings(self) -> SimulatorSettings:
        return self._settings

    @property
    def labels(self) -> tuple[str, ...]:
        """Channel labels, length ``n_channels``."""
        return self._labels

    @property
    def positions(self) -> np.ndarray:
        """Channel positions ``(n_channels, 3)`` on the unit sphere."""
        return self._pos.copy()

    @property
    def schedule(self) -> CueSchedule:
        """The cue schedule that drives the ERD (same as ``CueSchedule(settings)``)."""
        return self._schedule

    @property
    def sample_index(self) -> int:
        """Index of the next sample ``generate`` will return."""
        return self._sample_index

    def erd_gain(self, start: int, n: int) -> np.ndarray:
        """Amplitude factor ``(n, 3)`` of the C3 / C4 / Cz mu+beta sources for samples
        ``start .. start+n-1`` (1 outside imagery)."""
        s = self._settings
        gain = np.ones((n, len(_SENSORIMOTOR)))
        idx = np.arange(start, start + n, dtype=np.float64)
        # Every trial whose imagery overlaps [start, start + n) has its cue in this range.
        for t in self._schedule.trials_between(start - self._schedule.imagery_samples, start + n):
            shape = _rise(idx - t.cue, self._ramp) * _rise(t.imagery_stop - idx, self._ramp)
            if t.class_name == "rest":
                gain *= 1.0 + (REST_ERS - 1.0) * shape[:, None]
            elif t.class_name in ERD_TARGETS:
                j = self._erd_index[ERD_TARGETS[t.class_name]]
                gain[:, j] *= 1.0 + (s.erd_depth - 1.0) * shape
        return gain

    def _make_block(self) -> np.ndarray:
        """Next ``_BLOCK`` samples, float64 ``(B, n_channels)``; blocks are fixed-size so every
        computation has identical inputs however ``generate`` is called."""
        s = self._settings
        n0 = self._block_index * _BLOCK
        self._block_index += 1
        w = self._noise.standard_normal((_BLOCK, self._n_noise))
        cols, zi = self._cols, self._zi

        def filt(key: str, sos: np.ndarray) -> np.ndarray:
            y, zi[key] = signal.sosfilt(sos, w[:, cols[key]], axis=0, zi=zi[key])
            return y

        pink = filt("pink", self._pink)
        env = filt("env", self._sos_env)
        n_a = len(_ALPHA_SITES)
        alpha_env = np.exp(_ALPHA_MOD * env[:, :n_a] - 0.5 * _ALPHA_MOD**2)
        mu_env = np.exp(_MU_MOD * env[:, n_a:] - 0.5 * _MU_MOD**2)
        erd = self.erd_gain(n0, _BLOCK)
        alpha = filt("alpha", self._sos_alpha) * alpha_env
        mu = filt("mu", self._sos_mu) * mu_env * erd
        beta = filt("beta", self._sos_beta) * mu_env * erd

        sources = np.concatenate([pink[:, :_N_BG_SOURCES], alpha, mu, beta], axis=1)
        # einsum (not BLAS @): single-threaded, so no BLAS worker threads spin in the background
        x = np.einsum("ij,jk->ik", sources, self._mix)
        x += _CHAN_PINK_RMS * pink[:, _N_BG_SOURCES:]
        x += _WHITE_RMS * w[:, cols["white"]]
        if s.line_freq_hz is not None:
            n = np.arange(n0, n0 + _BLOCK, dtype=np.int64)
            cycles = np.mod(n * (s.line_freq_hz / s.rate_hz), 1.0)
            line = np.sin(2 * math.pi * cycles + self._line_phase)
            x += line[:, None] * self._line_gain[None, :]
        return x

    def generate(self, n_samples: int) -> np.ndarray:
        """Next ``n_samples`` samples, ``(n_samples, n_channels)`` float32 microvolts."""
        n_samples = int(n_samples)
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {n_samples}")
        out = np.empty((n_samples, len(self._labels)), dtype=np.float32)
        filled = 0
        while filled < n_samples:
            if self._buf_pos >= self._buf.shape[0]:
                self._buf = self._make_block().astype(np.float32)
                self._buf_pos = 0
            take = min(self._buf.shape[0] - self._buf_pos, n_samples - filled)
            out[filled : filled + take] = self._buf[self._buf_pos : self._buf_pos + take]
            self._buf_pos += take
            filled += take
        self._sample_index += n_samples
        return out
