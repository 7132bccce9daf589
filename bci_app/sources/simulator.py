"""Synthetic EEG of three paradigms (``settings.paradigm``), learnable by a classifier: motor
imagery (``mi``), a P300 speller (``p300``) and SSVEP (``ssvep``). The LSL side: simulator_stream.

Data convention: ``(n_samples, n_channels)`` float32 microvolts.

* :class:`SimulatorSettings` - validated, frozen configuration.
* :class:`CueSchedule` - infinite, seed-deterministic trial schedule (fixation -> cue ->
  imagery -> jittered rest), in sample indices (``mi`` and ``ssvep``: there the imagery period
  is the stimulation period).
* :class:`SpellerSchedule` - infinite, seed-deterministic P300 speller schedule (``p300``).
  :func:`make_schedule` gives the one of a paradigm; both give every marker through
  ``cues_between``.
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
  ``ERD_TARGETS`` (other than ``"rest"``) produce no modulation. Motor imagery only.

``p300`` (no ERD) adds to the same background, per flash, Gaussian waves in time (a sum over
flashes, so overlapping responses add up; amplitudes are *peak* values at the centre of their
sites, falling off with the Gaussian kernel of the chord distance):

* every flash: a visual evoked response at O1/Oz/O2 (P1 +2 µV at 100 ms, N1 -2.5 µV at 170 ms);
* target flashes (the row or column holding the character): a P300 of
  ``settings.p300_amplitude_uv`` (18 µV; its RMS over a 0.8 s epoch is 0.41 x that, 7.3 µV)
  peaking at 300 ms (sd 75 ms) over Cz/CPz/Pz, and an N200 of -1.5 µV at 200 ms over
  PO7/POz/PO8; each target's amplitude is scaled log-normally (sd 0.3) and its latency shifted
  (sd 25 ms), drawn per flash from the seed. With the default background this is learnable but
  not trivial: a shrinkage LDA trained on ~100 s spells every character at 10 repetitions
  and about a third at 1.

``ssvep`` (no ERD) adds, during the stimulation period of a ``<f>Hz`` trial, a steady-state
response ``A (sin 2 pi f (t - d) + 0.5 sin 2 pi 2f (t - d))`` phase-locked to the cue (``t``
from the cue, ``d`` = 0.1 s), ``A`` = sqrt(2) ``settings.ssvep_amplitude_uv`` (the RMS of the
fundamental, 4 µV) at O1/Oz/O2, ramped in over 0.3 s and out over 0.1 s inside the stimulation
period; under the same envelope posterior alpha drops to 0.5 x (blocked by the attended
flicker). ``rest`` trials have neither.
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

from bci_app.config import SPELLER_MATRIX, SSVEP_REST, AppConfig, stimulation_frequency
from bci_app.io.montage import channel_set, positions

__all__ = [
    "ERD_TARGETS",
    "MI_CLASSES",
    "REST_ERS",
    "SSVEP_CLASSES",
    "CueSchedule",
    "EEGSimulator",
    "PlannedFlash",
    "Schedule",
    "SimulatorSettings",
    "PlannedCharacter",
    "SpellerSchedule",
    "Trial",
    "make_schedule",
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

#: Default classes of the class-cued paradigms.
MI_CLASSES: tuple[str, ...] = ("left_hand", "right_hand", "feet", "rest")
SSVEP_CLASSES: tuple[str, ...] = ("rest", "13Hz", "17Hz", "21Hz")

# P300 speller responses (peak microvolts at the source; times in seconds after the flash).
_VEP_SITES = ("O1", "Oz", "O2")
_VEP_SIGMA = 0.40
_VEP_P1_UV, _VEP_P1_S, _VEP_P1_W = 2.0, 0.10, 0.020  # amplitude, latency, Gaussian width
_VEP_N1_UV, _VEP_N1_S, _VEP_N1_W = -2.5, 0.17, 0.030
_P300_SITES = ("Cz", "CPz", "Pz")
_P300_SIGMA = 0.45
_P300_S, _P300_W = 0.30, 0.075
_N200_SITES = ("PO7", "POz", "PO8")
_N200_SIGMA = 0.35
_N200_UV, _N200_S, _N200_W = -1.5, 0.20, 0.030
_ERP_GAIN_SD = 0.3  # std of the log amplitude of each target's P300/N200
_ERP_LATENCY_SD_S = 0.025  # std of each target's latency shift
_ERP_SPAN_S = 0.8  # a response is computed over [0, span) after its flash (zero beyond)

# SSVEP.
_SSVEP_SITES = ("O1", "Oz", "O2")
_SSVEP_SIGMA = 0.40
_SSVEP_HARMONICS = (1.0, 0.5)  # relative amplitude of f and 2f
_SSVEP_LATENCY_S = 0.10  # the response lags the flicker by this (a constant phase)
_SSVEP_RAMP_IN_S = 0.3
_SSVEP_RAMP_OUT_S = 0.1
_SSVEP_ALPHA_GAIN = 0.5  # posterior alpha amplitude factor while a flicker is attended


Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SimulatorSettings(BaseModel):
    """Simulator configuration (times in seconds, rates/frequencies in Hz); validated, frozen.

    :meth:`from_config` derives it from the config's ``simulator`` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    paradigm: Literal["mi", "p300", "ssvep"] = "mi"
    n_channels: Literal[8, 64, 256] = 64
    rate_hz: Annotated[float, Field(ge=_RATE_MIN, le=_RATE_MAX, allow_inf_nan=False)] = 160.0
    seed: Annotated[int, Field(ge=0)] = 0
    #: mi / ssvep: the cued classes (default :data:`MI_CLASSES` / :data:`SSVEP_CLASSES`);
    #: unused by p300.
    classes: Annotated[tuple[str, ...], Field(min_length=1)] = MI_CLASSES
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
    # P300 speller: rows of the matrix (codes 1..n_columns flash columns, then rows), blocks
    # of all codes per character, flash onset asynchrony, pause before each character, peak
    # of the P300 at Cz/CPz/Pz (µV).
    matrix: Annotated[tuple[str, ...], Field(min_length=2)] = SPELLER_MATRIX
    repetitions: Annotated[int, Field(ge=1, le=100)] = 10
    soa_s: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)] = 0.175
    char_pause_s: Seconds = 2.0
    #: p300: the characters the simulated participant attends to, in order and then again
    #: (None: each drawn at random); the first character's pause (None: ``char_pause_s``),
    #: e.g. to give a speller screen time to join the schedule before its first flash.
    text: Annotated[str, Field(min_length=1)] | None = None
    first_pause_s: Seconds | None = None
    p300_amplitude_uv: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 18.0
    # SSVEP: RMS of the fundamental at O1/Oz/O2 (the second harmonic has half its amplitude).
    ssvep_amplitude_uv: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 4.0

    @model_validator(mode="before")
    @classmethod
    def _paradigm_classes(cls, data: Any) -> Any:
        """Without ``classes``, the paradigm's own (ssvep: :data:`SSVEP_CLASSES`)."""
        if isinstance(data, dict) and "classes" not in data and data.get("paradigm") == "ssvep":
            return {**data, "classes": SSVEP_CLASSES}
        return data

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, matrix: tuple[str, ...]) -> tuple[str, ...]:
        symbols = "".join(matrix)
        if len({len(row) for row in matrix}) != 1 or len(matrix[0]) < 2:
            raise ValueError(f"matrix rows must all have the same length >= 2, got {matrix!r}")
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"matrix symbols must be unique, got {matrix!r}")
        return matrix

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
        if self.paradigm == "p300" and self.soa_s * self.rate_hz < 1:
            raise ValueError(f"soa_s must be at least one sample long, got {self.soa_s!r}")
        missing = sorted(set(self.text or "") - set("".join(self.matrix)))
        if missing:
            raise ValueError(
                f"the simulator's text {self.text!r} has {', '.join(map(repr, missing))}, not in "
                f"its speller matrix {' '.join(self.matrix)}"
            )
        if self.paradigm == "ssvep":
            for name in self.classes:
                try:
                    frequency = stimulation_frequency(name)
                except ValueError:
                    frequency = -1.0
                if frequency is not None and not 0 < frequency < nyquist / 2:
                    raise ValueError(
                        f"ssvep classes must be '{SSVEP_REST}' or '<number>Hz' with the number "
                        f"in (0, {nyquist / 2:g}) (below half Nyquist, so that the second "
                        f"harmonic is below Nyquist), got {name!r}; e.g. {list(SSVEP_CLASSES)}"
                    )
        return self

    @classmethod
    def from_config(cls, config: AppConfig, **overrides: Any) -> SimulatorSettings:
        """The settings the config's ``simulator`` section describes, flashing the speller
        matrix of its ``paradigm`` section (plus ``overrides``)."""
        section = config.simulator
        values: dict[str, Any] = {
            "paradigm": section.paradigm,
            "n_channels": section.channels,
            "rate_hz": section.rate,
            "seed": section.seed,
            "classes": tuple(section.classes),
            "line_freq_hz": None if section.line_freq is None else float(section.line_freq),
            "matrix": tuple(config.paradigm.matrix),
        }
        paradigm = overrides.get("paradigm", section.paradigm)
        if paradigm != "mi" and (
            paradigm != section.paradigm or "classes" not in section.model_fields_set
        ):
            del values["classes"]  # the section's classes are for another paradigm
        return cls(**(values | overrides))

    @property
    def chunk_samples(self) -> int:
        """Samples per pushed chunk: ``max(1, round(chunk_seconds * rate_hz))``."""
        return max(1, round(self.chunk_seconds * self.rate_hz))


def _seed_seq(seed: int, stream: int) -> np.random.SeedSequence:
    """Independent child seed for one purpose: 0 schedule, 1 layout, 2 noise, 3 ERP jitter."""
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


@dataclass(frozen=True)
class PlannedFlash:
    """One flash of the speller: onset ``sample``, ``code`` (1-based: columns, then rows),
    ``target`` (the flashed row/column holds the character), the character ``char`` being
    spelled, and ``first`` (the character's first flash, which carries ``char:<X>``)."""

    sample: int
    code: int
    target: bool
    char: str
    first: bool


@dataclass(frozen=True)
class PlannedCharacter:
    """One character of the speller, in sample indices: ``start`` (pause onset) <
    ``first_flash`` <= its flashes < ``stop`` (exclusive; one SOA after the last flash's onset,
    = the next character's start). ``row``/``column``: 0-based cell of ``char``."""

    index: int
    char: str
    row: int
    column: int
    start: int
    first_flash: int
    stop: int


class SpellerSchedule:
    """Infinite P300 speller schedule, deterministic from ``settings.seed`` (thread-safe, lazy).

    Character ``k``: ``settings.text[k % len(text)]``, or without a text a symbol drawn
    uniformly from ``settings.matrix``; a pause of ``round(char_pause_s * rate)`` samples
    (character 0: ``first_pause_s``) starting at the previous character's ``stop`` (character 0
    starts at sample 0), then ``repetitions`` blocks of the ``n_columns +
    n_rows`` codes, each block a random permutation, flash ``j`` at ``first_flash +
    round(j * soa_s * rate)``. Markers at each flash onset, in this order: ``char:<X>`` (first
    flash of a character only), ``code<N>``, ``target`` or ``nontarget``.

    Per flash it also draws the P300/N200 amplitude factor and latency shift (seconds)
    that :class:`EEGSimulator` gives it if it is a target (an independent stream of the seed).
    """

    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._rng = np.random.default_rng(_seed_seq(settings.seed, 0))
        self._jitter = np.random.default_rng(_seed_seq(settings.seed, 3))
        rate = settings.rate_hz
        self._n_rows, self._n_columns = len(settings.matrix), len(settings.matrix[0])
        self._symbols = "".join(settings.matrix)
        self._n_codes = self._n_rows + self._n_columns
        n_flashes = self._n_codes * settings.repetitions
        self._offsets = np.round(np.arange(n_flashes) * settings.soa_s * rate).astype(np.int64)
        self._span = round(n_flashes * settings.soa_s * rate)
        self._n_pause = round(settings.char_pause_s * rate)
        first_pause = settings.first_pause_s
        self._n_first_pause = self._n_pause if first_pause is None else round(first_pause * rate)
        self._chars: list[PlannedCharacter] = []
        self._starts: list[int] = []
        # One entry per flash, in time order.
        self._samples: list[int] = []
        self._codes: list[int] = []
        self._targets: list[bool] = []
        self._owner: list[int] = []  # character index
        self._gain: list[float] = []
        self._latency: list[float] = []
        self._next_start = 0
        self._lock = threading.Lock()

    @property
    def n_codes(self) -> int:
        """PlannedFlash codes per repetition (``n_columns + n_rows``)."""
        return self._n_codes

    @property
    def flashes_per_character(self) -> int:
        return len(self._offsets)

    def _extend(self) -> None:
        s = self._settings
        cell = int(self._rng.integers(len(self._symbols)))  # drawn always: same flash order
        if s.text is not None:
            cell = self._symbols.index(s.text[len(self._chars) % len(s.text)])
        row, column = divmod(cell, self._n_columns)
        codes = np.concatenate(
            [self._rng.permutation(self._n_codes) + 1 for _ in range(s.repetitions)]
        )
        gains = np.exp(
            _ERP_GAIN_SD * self._jitter.standard_normal(len(codes)) - 0.5 * _ERP_GAIN_SD**2
        )
        latencies = _ERP_LATENCY_SD_S * self._jitter.standard_normal(len(codes))
        start = self._next_start
        first = start + (self._n_first_pause if not self._chars else self._n_pause)
        char = PlannedCharacter(
            len(self._chars), self._symbols[cell], row, column, start, first, first + self._span
        )
        targets = (codes == column + 1) | (codes == self._n_columns + row + 1)
        self._chars.append(char)
        self._starts.append(start)
        self._samples += (first + self._offsets).tolist()
        self._codes += codes.tolist()
        self._targets += targets.tolist()
        self._owner += [char.index] * len(codes)
        self._gain += gains.tolist()
        self._latency += latencies.tolist()
        self._next_start = char.stop  # > start: the span is at least one sample per flash

    def _ensure_sample(self, sample_index: int) -> None:
        while self._next_start <= sample_index:
            self._extend()

    def character(self, k: int) -> PlannedCharacter:
        """Character number ``k`` (0-based)."""
        if k < 0:
            raise ValueError(f"character index must be >= 0, got {k}")
        with self._lock:
            while len(self._chars) <= k:
                self._extend()
            return self._chars[k]

    def character_at(self, sample_index: int) -> PlannedCharacter | None:
        """The character whose pause or flashes contain ``sample_index``."""
        if sample_index < 0:
            return None
        with self._lock:
            self._ensure_sample(sample_index)
            return self._chars[bisect_right(self._starts, sample_index) - 1]

    def _range(self, start_sample: int, stop_sample: int) -> range:
        """Indices of the flashes with onset in ``[start_sample, stop_sample)`` (lock held)."""
        if stop_sample > 0:
            self._ensure_sample(stop_sample)
        lo = bisect_right(self._samples, start_sample - 1)
        return range(lo, bisect_right(self._samples, stop_sample - 1))

    def flashes_between(self, start_sample: int, stop_sample: int) -> list[PlannedFlash]:
        """Flashes with onset in ``[start_sample, stop_sample)``, in time order."""
        with self._lock:
            return [
                PlannedFlash(
                    self._samples[i],
                    self._codes[i],
                    self._targets[i],
                    self._chars[self._owner[i]].char,
                    self._samples[i] == self._chars[self._owner[i]].first_flash,
                )
                for i in self._range(start_sample, stop_sample)
            ]

    def flash_responses(
        self, start_sample: int, stop_sample: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(onset samples, target flags, amplitude factors, latency shifts in s)`` ``(n,)``
        of the flashes with onset in ``[start_sample, stop_sample)`` (for the generator)."""
        with self._lock:
            idx = self._range(start_sample, stop_sample)
            sl = slice(idx.start, idx.stop)
            return (
                np.asarray(self._samples[sl], dtype=np.int64),
                np.asarray(self._targets[sl], dtype=bool),
                np.asarray(self._gain[sl], dtype=np.float64),
                np.asarray(self._latency[sl], dtype=np.float64),
            )

    def cues_between(self, start_sample: int, stop_sample: int) -> list[tuple[int, str]]:
        """Every marker ``(flash onset sample, label)`` of the flashes in ``[start_sample,
        stop_sample)``: ``char:<X>`` (first flash of a character), ``code<N>``,
        ``target``/``nontarget``, in that order at each flash."""
        markers: list[tuple[int, str]] = []
        for f in self.flashes_between(start_sample, stop_sample):
            if f.first:
                markers.append((f.sample, f"char:{f.char}"))
            markers.append((f.sample, f"code{f.code}"))
            markers.append((f.sample, "target" if f.target else "nontarget"))
        return markers


#: The schedule of a paradigm: its markers through ``cues_between(start, stop)``.
Schedule = CueSchedule | SpellerSchedule


def make_schedule(settings: SimulatorSettings) -> Schedule:
    """The schedule of ``settings.paradigm``: :class:`SpellerSchedule` for p300, else
    :class:`CueSchedule` (mi: imagery; ssvep: stimulation)."""
    if settings.paradigm == "p300":
        return SpellerSchedule(settings)
    return CueSchedule(settings)


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


def _bump(t: np.ndarray, amplitude: float, peak_s: float, width_s: float) -> np.ndarray:
    """Gaussian wave ``amplitude * exp(-(t - peak_s)^2 / (2 width_s^2))`` (t in seconds)."""
    return amplitude * np.exp(-0.5 * ((t - peak_s) / width_s) ** 2)


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
        self._labels = channel_set(s.n_channels, s.paradigm)
        self._pos = positions(self._labels)
        self._schedule = make_schedule(s)
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

        # Evoked responses: unit spatial patterns (1 at the centre of each source's sites).
        def pattern(sites: tuple[str, ...], sigma: float) -> np.ndarray:
            centre = positions(sites).mean(axis=0)
            return _kernel((centre / np.linalg.norm(centre))[None, :], self._pos, sigma)[0]

        self._vep_pattern = pattern(_VEP_SITES, _VEP_SIGMA)
        self._p300_pattern = pattern(_P300_SITES, _P300_SIGMA)
        self._n200_pattern = pattern(_N200_SITES, _N200_SIGMA)
        self._ssvep_pattern = pattern(_SSVEP_SITES, _SSVEP_SIGMA)
        self._erp_span = max(1, round(_ERP_SPAN_S * rate))  # samples

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
    def schedule(self) -> Schedule:
        """The schedule that drives the ERD / ERPs / SSVEP (same as ``make_schedule(settings)``:
        a :class:`CueSchedule`, or a :class:`SpellerSchedule` for p300)."""
        return self._schedule

    @property
    def sample_index(self) -> int:
        """Index of the next sample ``generate`` will return."""
        return self._sample_index

    def erd_gain(self, start: int, n: int) -> np.ndarray:
        """Amplitude factor ``(n, 3)`` of the C3 / C4 / Cz mu+beta sources for samples
        ``start .. start+n-1`` (1 outside imagery, and always 1 outside motor imagery)."""
        s = self._settings
        gain = np.ones((n, len(_SENSORIMOTOR)))
        if not isinstance(self._schedule, CueSchedule) or s.paradigm != "mi":
            return gain
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
        alpha = filt("alpha", self._sos_alpha) * alpha_env
        if s.paradigm == "ssvep":
            ssvep, alpha_gain = self._ssvep_courses(n0, _BLOCK)
            alpha = alpha * alpha_gain[:, None]
        mu = filt("mu", self._sos_mu) * mu_env
        beta = filt("beta", self._sos_beta) * mu_env
        if s.paradigm == "mi":
            erd = self.erd_gain(n0, _BLOCK)
            mu = mu * erd
            beta = beta * erd

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
        if s.paradigm == "p300":
            x += self.erp(n0, _BLOCK)
        elif s.paradigm == "ssvep":
            x += ssvep[:, None] * self._ssvep_pattern[None, :]
        return x

    def erp(self, start: int, n: int) -> np.ndarray:
        """The evoked responses (p300) ``(n, n_channels)`` float64 µV in samples ``start ..
        start+n-1``: the sum over every flash whose response window overlaps them (each a pure
        function of the sample index, so blocks add up the same however they are cut)."""
        rate = float(self._settings.rate_hz)
        out_t = np.zeros((n, 3))  # time courses: VEP, P300, N200
        sched = self._schedule
        assert isinstance(sched, SpellerSchedule)
        onsets, targets, gains, latencies = sched.flash_responses(
            start - self._erp_span + 1, start + n
        )
        idx = np.arange(start, start + n, dtype=np.int64)
        for onset, target, gain, latency in zip(onsets, targets, gains, latencies, strict=True):
            lo, hi = max(onset, start), min(onset + self._erp_span, start + n)
            t = (idx[lo - start : hi - start] - onset) / rate
            seg = out_t[lo - start : hi - start]
            seg[:, 0] += _bump(t, _VEP_P1_UV, _VEP_P1_S, _VEP_P1_W)
            seg[:, 0] += _bump(t, _VEP_N1_UV, _VEP_N1_S, _VEP_N1_W)
            if target:
                amplitude = gain * self._settings.p300_amplitude_uv
                seg[:, 1] += _bump(t, amplitude, _P300_S + latency, _P300_W)
                seg[:, 2] += _bump(t, gain * _N200_UV, _N200_S + latency, _N200_W)
        patterns = np.stack([self._vep_pattern, self._p300_pattern, self._n200_pattern])
        return np.einsum("ij,jk->ik", out_t, patterns)

    def ssvep(self, start: int, n: int) -> np.ndarray:
        """The steady-state responses (ssvep) ``(n, n_channels)`` float64 µV in samples ``start
        .. start+n-1`` (zero outside the stimulation of a ``<f>Hz`` trial)."""
        course, _ = self._ssvep_courses(start, n)
        return course[:, None] * self._ssvep_pattern[None, :]

    def _ssvep_courses(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(response at the SSVEP source (n,) µV, posterior alpha amplitude factor (n,))``
        in samples ``start .. start+n-1``: a flicker's response, and alpha blocked down to
        ``_SSVEP_ALPHA_GAIN`` under the same envelope."""
        s = self._settings
        rate = float(s.rate_hz)
        sched = self._schedule
        assert isinstance(sched, CueSchedule)
        course = np.zeros(n)
        alpha = np.ones(n)
        peak = math.sqrt(2.0) * s.ssvep_amplitude_uv  # of the fundamental
        idx = np.arange(start, start + n, dtype=np.int64)
        ramp_in = max(1.0, min(_SSVEP_RAMP_IN_S, s.imagery_s / 2.0) * rate)  # samples
        ramp_out = max(1.0, min(_SSVEP_RAMP_OUT_S, s.imagery_s / 2.0) * rate)
        for t in sched.trials_between(start - sched.imagery_samples, start + n):
            frequency = stimulation_frequency(t.class_name)  # validated: rest or <f>Hz
            if frequency is None:
                continue  # rest
            lo, hi = max(t.cue, start), min(t.imagery_stop, start + n)
            if hi <= lo:
                continue
            k = idx[lo - start : hi - start]
            envelope = _rise((k - t.cue).astype(np.float64), ramp_in) * _rise(
                (t.imagery_stop - k).astype(np.float64), ramp_out
            )
            seconds = (k - t.cue) / rate - _SSVEP_LATENCY_S
            wave = sum(
                a * np.sin(2 * math.pi * np.mod(h * frequency * seconds, 1.0))
                for h, a in enumerate(_SSVEP_HARMONICS, start=1)
            )
            course[lo - start : hi - start] += peak * envelope * wave
            alpha[lo - start : hi - start] *= 1.0 + (_SSVEP_ALPHA_GAIN - 1.0) * envelope
        return course, alpha

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
