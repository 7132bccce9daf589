"""Causal, stateful rational resampling (polyphase FIR): the model-rate stage of the dsp chain.

Signals are ``(n_samples, n_channels)`` microvolts, processed in float64; rates in Hz. Chunks may
have any length; the chunked output equals the one-shot output up to float rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy import signal

__all__ = ["PolyphaseResampler", "as_2d_float64", "check_rate"]

# Largest up/down factor we accept: the anti-aliasing FIR has 20 * max(L, M) + 1 taps.
_MAX_RESAMPLE_FACTOR = 4096
# Denominator limit when the sample-rate ratio is not a ratio of integers.
_MAX_RATIO_DENOMINATOR = 1000
# Kaiser window beta and half length (in units of max(L, M)) of the anti-aliasing FIR.
_KAISER_BETA = 5.0
_HALF_LEN_FACTOR = 10


def check_rate(rate_hz: float, what: str = "sample rate") -> float:
    rate = float(rate_hz)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"{what} must be a positive finite number of Hz, got {rate_hz!r}")
    return rate


def as_2d_float64(x: np.ndarray, n_channels: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_channels:
        raise ValueError(
            f"expected an array of shape (n_samples, {n_channels}), got shape {arr.shape}"
        )
    return arr


def _rate_ratio(in_rate: float, out_rate: float) -> Fraction:
    if in_rate.is_integer() and out_rate.is_integer():
        return Fraction(int(out_rate), int(in_rate))
    return Fraction(out_rate / in_rate).limit_denominator(_MAX_RATIO_DENOMINATOR)


class PolyphaseResampler:
    """Causal, stateful rational resampler from ``in_rate_hz`` to ``out_rate_hz``.

    The ratio is ``up / down`` (``L / M``, coprime) from ``fractions.Fraction`` (exact for
    integer rates, else ``limit_denominator(1000)``). The anti-aliasing FIR is a Kaiser
    (beta 5) windowed ``firwin`` low-pass with ``20 * max(L, M) + 1`` taps and cutoff
    ``1 / max(L, M)`` of the upsampled Nyquist, times gain L. When ``L > 1`` each polyphase
    component is rescaled to unit DC gain, so a constant input gives an exactly constant output
    (no ripple at multiples of the input rate from large EEG DC offsets).

    Output sample ``n`` (counted from construction) is
    ``y[n] = sum_k h[p + k*L] * x[idx - k]`` with ``idx = (n*M) // L``, ``p = (n*M) % L``;
    over a whole signal this equals ``scipy.signal.upfirdn(self.taps, x_padded, L, M)``
    where ``x_padded`` is ``x`` preceded by copies of its first sample. An output is emitted as
    soon as its input ``idx`` has arrived, so after ``N`` inputs ``ceil(N * L / M)`` outputs
    have been produced.

    Input samples before the first one (and before the first one after ``reset()``) are taken
    to equal it, so a DC signal has no start transient.

    ``phase`` "minimum" turns the FIR into its minimum-phase version of the same length and
    magnitude response (``scipy.signal.minimum_phase(..., half=False)``): the same
    anti-aliasing, but most of its energy in the first taps, so EEG frequencies are delayed by
    a few ms (1 kHz -> 250 Hz: 6 ms at 10 Hz) instead of half the FIR (40 ms).
    """

    def __init__(self, in_rate_hz: float, out_rate_hz: float, phase: str = "minimum") -> None:
        if phase not in ("minimum", "linear"):
            raise ValueError(f"phase must be 'minimum' or 'linear', got {phase!r}")
        self._in_rate = check_rate(in_rate_hz, "resampler input rate")
        self._out_rate = check_rate(out_rate_hz, "resampler output rate")
        ratio = _rate_ratio(self._in_rate, self._out_rate)
        up, down = ratio.numerator, ratio.denominator
        if max(up, down) > _MAX_RESAMPLE_FACTOR:
            raise ValueError(
                f"resampling {self._in_rate:g} Hz -> {self._out_rate:g} Hz needs up/down "
                f"factors {up}/{down}; factors above {_MAX_RESAMPLE_FACTOR} are not supported"
            )
        self._up = up
        self._down = down
        self._phase = phase
        self._identity = up == 1 and down == 1

        if self._identity:
            h = np.ones(1)
        else:
            max_rate = max(up, down)
            n_taps = 2 * _HALF_LEN_FACTOR * max_rate + 1
            h = signal.firwin(n_taps, 1.0 / max_rate, window=("kaiser", _KAISER_BETA)) * up
            if phase == "minimum":
                h = signal.minimum_phase(h, method="homomorphic", half=False)
                h *= up / h.sum()  # the cepstral design's DC gain is off by up to 2e-6
        taps_per_phase = -(-h.size // up)
        phases = np.zeros(taps_per_phase * up)
        phases[: h.size] = h
        # phases[p, k] = h[p + k*L]
        phases = phases.reshape(taps_per_phase, up).T.copy()
        if up > 1:
            phases /= phases.sum(axis=1, keepdims=True)
            h = phases.T.reshape(-1)[: h.size].copy()
        self._h = h
        self._h.flags.writeable = False
        self._taps_per_phase = taps_per_phase
        # Reversed so that a window x[idx-T+1 .. idx] (oldest first) dots with it directly.
        self._phases_rev = np.ascontiguousarray(phases[:, ::-1])

        self._n_in = 0  # absolute number of input samples consumed
        self._n_out = 0  # absolute number of output samples emitted
        self._history: np.ndarray | None = None  # last T-1 inputs, (T-1, n_channels)
        self._n_channels: int | None = None  # fixed by the first chunk

    # -- properties ------------------------------------------------------------------------

    @property
    def up(self) -> int:
        """Upsampling factor L."""
        return self._up

    @property
    def down(self) -> int:
        """Downsampling factor M."""
        return self._down

    @property
    def phase(self) -> str:
        """Phase of the anti-aliasing FIR: "minimum" or "linear"."""
        return self._phase

    @property
    def in_rate_hz(self) -> float:
        return self._in_rate

    @property
    def out_rate_hz(self) -> float:
        """Requested output rate (Hz). The effective rate is ``in_rate_hz * up / down``."""
        return self._out_rate

    @property
    def is_identity(self) -> bool:
        """True when input and output rates are equal: pass-through, zero delay."""
        return self._identity

    @property
    def taps(self) -> np.ndarray:
        """The anti-aliasing FIR (read-only), at the upsampled rate, including gain L."""
        return self._h

    @property
    def taps_per_phase(self) -> int:
        return self._taps_per_phase

    def group_delay_seconds(self, freq_hz: float) -> float:
        """Group delay of the anti-aliasing FIR at ``freq_hz`` (Hz), in seconds; zero for the
        identity. A linear-phase FIR delays every frequency by ``(len(h) - 1) / 2`` samples."""
        if self._identity:
            return 0.0
        fs = self._up * self._in_rate
        _, delay = signal.group_delay((self._h, [1.0]), w=[freq_hz], fs=fs)
        return float(delay[0]) / fs

    @property
    def n_in(self) -> int:
        """Total input samples consumed since construction."""
        return self._n_in

    @property
    def n_out(self) -> int:
        """Total output samples emitted since construction."""
        return self._n_out

    # -- processing ------------------------------------------------------------------------

    def reset(self) -> None:
        """Reseed the input history from the next sample (use after a data gap). Sample
        counters (and hence the absolute indices returned by ``process``) keep running."""
        self._history = None

    def process(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resample one chunk.

        ``x``: ``(n_in, n_channels)`` µV. Returns ``(y, src_index)``: ``y`` is a new float64
        array ``(n_out, n_channels)``; ``src_index`` (int64, ``(n_out,)``) is, per output
        sample, the absolute index (since construction, across resets) of the newest input
        sample it depends on. It is non-decreasing and every value lies within this chunk.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"expected an array of shape (n_samples, n_channels), got {x.shape}")
        n_in, n_ch = x.shape
        if self._n_channels is None:
            self._n_channels = n_ch
        elif n_ch != self._n_channels:
            raise ValueError(
                f"channel count changed from {self._n_channels} to {n_ch}; create a new resampler"
            )
        in_start = self._n_in
        in_end = in_start + n_in

        if self._identity:
            self._n_in = self._n_out = in_end
            return x.copy(), np.arange(in_start, in_end, dtype=np.int64)

        up, down, T = self._up, self._down, self._taps_per_phase
        out_start = self._n_out
        out_end = -(-(in_end * up) // down)  # ceil(in_end * L / M)
        n_out = out_end - out_start
        if n_in == 0:
            return np.empty((0, n_ch)), np.empty(0, dtype=np.int64)

        if self._history is None:
            self._history = np.repeat(x[:1], T - 1, axis=0)
        # buf[j] is absolute input sample in_start - (T-1) + j.
        buf = np.concatenate((self._history, x), axis=0)
        self._history = buf[buf.shape[0] - (T - 1) :].copy()
        self._n_in = in_end
        self._n_out = out_end

        n = np.arange(out_start, out_end, dtype=np.int64)
        src_index = (n * down) // up
        y = np.empty((n_out, n_ch))
        if n_out == 0:
            return y, src_index

        # Outputs r, r+L, r+2L, ... share one phase and step M inputs apart, so each group is a
        # batch of matrix-vector products over a strided (no-copy) view of buf.
        s_row, s_col = buf.strides
        for r in range(min(up, n_out)):
            m = (out_start + r) * down
            phase = m % up
            w0 = m // up - in_start  # buf row of the oldest sample in this output's window
            count = (n_out - r + up - 1) // up
            windows = as_strided(
                buf[w0:],
                shape=(count, T, n_ch),
                strides=(down * s_row, s_row, s_col),
                writeable=False,
            )
            y[r::up] = np.matmul(self._phases_rev[phase], windows)
        return y, src_index
