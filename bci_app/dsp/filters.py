"""Causal, stateful DSP for EEG: band-pass / notch IIR filters, rational resampling, and the
full preprocessing chain.

The same code runs on the live hot path (chunk by chunk) and offline (whole recording in one
call); the chunked output is identical to the one-shot output up to float rounding.

Conventions:

* Signals are arrays of shape ``(n_samples, n_channels)`` in microvolts. Any real dtype is
  accepted; all processing is done in float64 and every ``process`` method returns a new
  float64 array.
* Chunks may have any length, including 0 and 1.
* Frequencies and sample rates are in Hz, delays in seconds.
* Every stage seeds its state from the first sample it sees (and again after ``reset()``), so
  a signal with a DC offset produces no step transient at the start or after a gap.
* NaN/inf samples propagate into the filter state; call ``reset()`` after such a sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from bci_app.dsp.resample import PolyphaseResampler, as_2d_float64, check_rate

__all__ = [
    "DELAY_FREQUENCIES_HZ",
    "ChainDelays",
    "Preprocessor",
    "SosFilter",
    "design_bandpass",
    "design_notch",
    "group_delay_seconds",
    "preprocess_offline",
]

_REFERENCES = ("none", "car")
#: Where the chain's delay is quoted (Hz): the middle of the mu (8-12) and beta (13-30) bands.
DELAY_FREQUENCIES_HZ = (10.0, 20.0)
#: A step response has settled once it stays within this fraction of its largest excursion.
_SETTLED_FRACTION = 0.02


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_edge(value: float, name: str, rate_hz: float) -> float:
    nyq = rate_hz / 2.0
    f = float(value)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"{name} {value!r} Hz must be above 0 Hz")
    if f >= nyq:
        raise ValueError(
            f"{name} {f:g} Hz must be below the Nyquist frequency {nyq:g} Hz of {rate_hz:g} Hz data"
        )
    return f


# --------------------------------------------------------------------------------------------
# Filter design
# --------------------------------------------------------------------------------------------


def design_bandpass(
    low_hz: float | None, high_hz: float | None, order: int, rate_hz: float
) -> np.ndarray:
    """Design a Butterworth filter as second-order sections.

    Band-pass when both edges are given, high-pass when only ``low_hz``, low-pass when only
    ``high_hz``. Edges are -3 dB frequencies in Hz; ``order`` is the Butterworth prototype
    order (a band-pass has ``2 * order`` poles). Returns SOS of shape ``(n_sections, 6)``.

    Raises ``ValueError`` when an edge is <= 0 or >= Nyquist, when ``low_hz >= high_hz``,
    when both edges are None, or when ``order`` is not a positive integer.
    """
    rate = check_rate(rate_hz)
    if isinstance(order, bool) or int(order) != order or order < 1:
        raise ValueError(f"filter order must be a positive integer, got {order!r}")
    order = int(order)
    if low_hz is None and high_hz is None:
        raise ValueError("band-pass needs at least one edge (low_hz or high_hz); both are None")
    if low_hz is not None and high_hz is not None:
        low = _check_edge(low_hz, "band-pass low edge", rate)
        high = _check_edge(high_hz, "band-pass high edge", rate)
        if low >= high:
            raise ValueError(
                f"band-pass low edge {low:g} Hz must be below the high edge {high:g} Hz"
            )
        return signal.butter(order, [low, high], btype="bandpass", output="sos", fs=rate)
    if low_hz is not None:
        low = _check_edge(low_hz, "high-pass edge", rate)
        return signal.butter(order, low, btype="highpass", output="sos", fs=rate)
    high = _check_edge(high_hz, "low-pass edge", rate)  # type: ignore[arg-type]
    return signal.butter(order, high, btype="lowpass", output="sos", fs=rate)


def design_notch(freq_hz: float, rate_hz: float, quality: float = 30.0) -> np.ndarray:
    """Design an IIR notch at ``freq_hz`` (Hz) with quality factor ``quality``
    (bandwidth = freq / quality). Returns SOS of shape ``(n_sections, 6)``.

    Raises ``ValueError`` when the frequency is <= 0 or >= Nyquist, or quality <= 0.
    """
    rate = check_rate(rate_hz)
    freq = _check_edge(freq_hz, "notch frequency", rate)
    q = float(quality)
    if not math.isfinite(q) or q <= 0:
        raise ValueError(f"notch quality factor must be a positive number, got {quality!r}")
    b, a = signal.iirnotch(freq, q, fs=rate)
    return signal.tf2sos(b, a)


def group_delay_seconds(sos: np.ndarray, rate_hz: float, freq_hz: float) -> float:
    """Group delay in seconds of the SOS cascade ``sos`` at ``freq_hz`` (Hz, 0..Nyquist)
    for data sampled at ``rate_hz``.

    Computed as the sum of the per-section group delays (numerically better than expanding the
    cascade into one transfer function). Undefined exactly at a zero on the unit circle (e.g. a
    notch's own frequency), where scipy warns and reports 0 for that section.
    """
    rate = check_rate(rate_hz)
    f = float(freq_hz)
    if not math.isfinite(f) or f < 0 or f > rate / 2.0:
        raise ValueError(
            f"group-delay frequency {freq_hz!r} Hz must be within 0..{rate / 2.0:g} Hz "
            f"(Nyquist of {rate:g} Hz data)"
        )
    sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
    total = 0.0
    for section in sos:
        _, gd = signal.group_delay((section[:3], section[3:]), w=[f], fs=rate)
        total += float(gd[0])
    return total / rate


# --------------------------------------------------------------------------------------------
# Stateful IIR filter
# --------------------------------------------------------------------------------------------


class SosFilter:
    """Stateful causal IIR filter (second-order sections) over ``(n_samples, n_channels)``.

    The state is seeded from the first sample so a constant input passes through a high-pass
    or band-pass with no start transient (output 0 from the first sample); ``reset()`` makes
    it reseed from the next sample (use after a data gap).
    """

    def __init__(self, sos: np.ndarray, n_channels: int) -> None:
        sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
        if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
            raise ValueError(f"sos must have shape (n_sections, 6), got {sos.shape}")
        if isinstance(n_channels, bool) or int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        self._sos = sos
        self._n_channels = int(n_channels)
        # Steady-state response to a unit step, shape (n_sections, 2, 1): scaled by the first
        # sample per channel to seed the state.
        self._zi_unit = signal.sosfilt_zi(sos)[:, :, None]
        self._zi: np.ndarray | None = None

    @property
    def sos(self) -> np.ndarray:
        """The second-order sections, shape ``(n_sections, 6)``."""
        return self._sos

    @property
    def n_channels(self) -> int:
        return self._n_channels

    def reset(self) -> None:
        """Forget the state; the next non-empty chunk reseeds it from its first sample."""
        self._zi = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter one chunk ``(n_samples, n_channels)`` (µV); returns a new float64 array of
        the same shape. State carries across calls."""
        x = as_2d_float64(x, self._n_channels)
        if x.shape[0] == 0:
            return np.empty((0, self._n_channels), dtype=np.float64)
        if self._zi is None:
            self._zi = self._zi_unit * x[0][None, None, :]
        y, self._zi = signal.sosfilt(self._sos, x, axis=0, zi=self._zi)
        return y

    def group_delay_seconds(self, rate_hz: float, freq_hz: float) -> float:
        """Group delay in seconds at ``freq_hz`` for data at ``rate_hz``."""
        return group_delay_seconds(self._sos, rate_hz, freq_hz)


# --------------------------------------------------------------------------------------------
# Full chain
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainDelays:
    """The fixed delays of a chain: group delay (ms) at each of :data:`DELAY_FREQUENCIES_HZ`
    (keys "10", "20") and the step response's settling time (s)."""

    group_delay_ms: dict[str, float]
    settling_s: float

    def describe(self) -> str:
        """``filter 13.9 ms at 10 Hz, 13.3 ms at 20 Hz, settles in 0.77 s``."""
        delays = ", ".join(f"{ms:.1f} ms at {hz} Hz" for hz, ms in self.group_delay_ms.items())
        return f"filter {delays}, settles in {self.settling_s:.2f} s"


class Preprocessor:
    """Causal EEG preprocessing chain: optional common average reference at the stream rate,
    rational resampling ``stream_rate_hz -> model_rate_hz``, then a Butterworth band-pass and an
    IIR notch at the model rate.

    ``bandpass_hz``: ``(low, high)`` edges in Hz (either may be None for a high-/low-pass),
    or None (or ``(None, None)``) to disable. ``order``: Butterworth prototype order.
    ``notch_hz``: notch frequency in Hz, or None to disable. ``reference``: ``"none"`` or
    ``"car"`` (subtract the per-sample mean over channels).

    ``process(x)`` takes ``(n_samples, n_channels)`` µV at the stream rate and returns
    ``(y, src_index)``: float64 ``(n_out, n_channels)`` µV at the model rate and, per output
    sample, the absolute stream-sample index (since construction) of the newest input sample
    it depends on (see ``PolyphaseResampler.process``).
    """

    def __init__(
        self,
        stream_rate_hz: float,
        model_rate_hz: float,
        n_channels: int,
        bandpass_hz: tuple[float | None, float | None] | None,
        order: int,
        notch_hz: float | None,
        notch_quality: float = 30.0,
        reference: str = "none",
        resampler_phase: str = "minimum",
    ) -> None:
        stream_rate = check_rate(stream_rate_hz, "stream sample rate")
        model_rate = check_rate(model_rate_hz, "model sample rate")
        if isinstance(n_channels, bool) or int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        n_channels = int(n_channels)
        if reference not in _REFERENCES:
            raise ValueError(
                f"unknown reference {reference!r}; expected one of {', '.join(_REFERENCES)}"
            )
        if reference == "car" and n_channels < 2:
            raise ValueError(
                "common average reference ('car') needs at least 2 channels; "
                f"got {n_channels} (use reference 'none')"
            )
        self._stream_rate = stream_rate
        self._model_rate = model_rate
        self._n_channels = n_channels
        self._car = reference == "car"
        self._reference = reference

        self._resampler = PolyphaseResampler(stream_rate, model_rate, resampler_phase)

        # Band-pass and notch sections, run as one cascade: one scipy call per chunk instead of
        # two (for a 10-sample chunk scipy's per-call overhead is most of the cost).
        sections: list[np.ndarray] = []
        if bandpass_hz is not None:
            try:
                low, high = bandpass_hz
            except (TypeError, ValueError):
                raise ValueError(
                    f"bandpass_hz must be a (low, high) pair in Hz or None, got {bandpass_hz!r}"
                ) from None
            if low is not None or high is not None:
                try:
                    sos = design_bandpass(low, high, order, model_rate)
                except ValueError as exc:
                    if "Nyquist" not in str(exc):
                        raise
                    raise ValueError(f"{exc} (the band-pass runs at the model rate)") from None
                sections.append(sos)

        if notch_hz is not None:
            nyq = model_rate / 2.0
            try:
                sos = design_notch(notch_hz, model_rate, notch_quality)
            except ValueError:
                if isinstance(notch_hz, (int, float, np.number)) and float(notch_hz) >= nyq:
                    raise ValueError(
                        f"notch frequency {float(notch_hz):g} Hz must be below the Nyquist "
                        f"frequency {nyq:g} Hz of the {model_rate:g} Hz model rate (it cannot be "
                        "represented there; the resampler's anti-aliasing filter already removes "
                        "such content); set `notch: null` to disable the notch"
                    ) from None
                raise
            sections.append(sos)
        self._cascade = SosFilter(np.vstack(sections), n_channels) if sections else None

    # -- properties ------------------------------------------------------------------------

    @property
    def stream_rate_hz(self) -> float:
        return self._stream_rate

    @property
    def model_rate_hz(self) -> float:
        return self._model_rate

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def resampler(self) -> PolyphaseResampler:
        return self._resampler

    def group_delay_seconds(self, freq_hz: float) -> float:
        """Group delay of the whole chain at ``freq_hz`` (Hz), in seconds: the resampler's FIR,
        the band-pass and the notch."""
        delay = self._resampler.group_delay_seconds(freq_hz)
        if self._cascade is not None:  # the sum of its sections' delays
            delay += self._cascade.group_delay_seconds(self._model_rate, freq_hz)
        return delay

    @property
    def delay_seconds(self) -> float:
        """The delay to quote, in seconds: the larger group delay at
        :data:`DELAY_FREQUENCIES_HZ`, where motor imagery lives."""
        return max(self.group_delay_seconds(f) for f in DELAY_FREQUENCIES_HZ)

    def delays(self) -> ChainDelays:
        """Group delays at :data:`DELAY_FREQUENCIES_HZ` and the settling time (scipy: compute
        once)."""
        return ChainDelays(
            {f"{f:g}": round(self.group_delay_seconds(f) * 1e3, 2) for f in DELAY_FREQUENCIES_HZ},
            round(self.settling_seconds(), 3),
        )

    def settling_seconds(self) -> float:
        """Seconds after a step at the input until the output stays within 2 % of its largest
        excursion from the final value (fresh copies of this chain's stages, one channel)."""
        n = round(20.0 * self._stream_rate)
        step = np.ones((n, 1))
        step[: round(self._stream_rate)] = 0.0  # 1 s at rest, then the step
        resampler = PolyphaseResampler(self._stream_rate, self._model_rate, self._resampler.phase)
        y, _ = resampler.process(step)
        if self._cascade is not None:
            y = SosFilter(self._cascade.sos, 1).process(y)
        response = y[round(self._model_rate) :, 0]
        deviation = np.abs(response - response[-1])
        outside = np.flatnonzero(deviation > _SETTLED_FRACTION * deviation.max())
        return 0.0 if outside.size == 0 else (outside[-1] + 1) / self._model_rate

    # -- processing ------------------------------------------------------------------------

    def reset(self) -> None:
        """Reseed every stage from the next sample (use after a data gap)."""
        self._resampler.reset()
        if self._cascade is not None:
            self._cascade.reset()

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Process one chunk ``(n_samples, n_channels)`` µV at the stream rate.

        Returns ``(y, src_index)``: new float64 ``(n_out, n_channels)`` µV at the model rate,
        and int64 ``(n_out,)`` absolute stream-sample indices (see class docstring).
        """
        x = as_2d_float64(x, self._n_channels)
        if self._car:
            x = x - x.mean(axis=1, keepdims=True)
        y, src_index = self._resampler.process(x)
        if self._cascade is not None:
            y = self._cascade.process(y)
        return y, src_index


def preprocess_offline(
    x: np.ndarray,
    stream_rate_hz: float,
    model_rate_hz: float,
    bandpass_hz: tuple[float | None, float | None] | None,
    order: int,
    notch_hz: float | None,
    notch_quality: float = 30.0,
    reference: str = "none",
    n_channels: int | None = None,
    resampler_phase: str = "minimum",
) -> np.ndarray:
    """Run a fresh ``Preprocessor`` over a whole recording ``(n_samples, n_channels)`` µV in
    one call; returns float64 ``(n_out, n_channels)`` µV at the model rate, identical (up to
    float rounding) to feeding the same data chunk by chunk. ``n_channels`` defaults to
    ``x.shape[1]``. Sample ``j`` of the output depends on stream samples up to
    ``(j * down) // up`` (see ``PolyphaseResampler``)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"expected an array of shape (n_samples, n_channels), got {arr.shape}")
    if n_channels is None:
        n_channels = arr.shape[1]
    pre = Preprocessor(
        stream_rate_hz,
        model_rate_hz,
        n_channels,
        bandpass_hz,
        order,
        notch_hz,
        notch_quality=notch_quality,
        reference=reference,
        resampler_phase=resampler_phase,
    )
    y, _ = pre.process(arr)
    return y
