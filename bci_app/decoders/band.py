"""A decoder's own band-pass inside each window (zero-phase, no samples beyond the window).

The stream's dsp is causal and shared by every decoder of a checkpoint; a covariance decoder
wants a narrower band than the network does. Filtering forwards and backwards inside the window
uses only samples the window holds, so it adds no delay. On S001 (leave one run out) 8-30 Hz
inside the window raised tangent space + LR from 0.73 to 0.97 (hands/feet) and 0.53 to 0.77
(left/right) over the app's 1-40 Hz dsp alone.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt

__all__ = ["BandFilter"]

ORDER = 4


class BandFilter:
    """Butterworth band-pass ``low_hz``-``high_hz`` at ``rate_hz``, applied forwards and backwards
    along the samples of windows ``(..., n_samples)``."""

    def __init__(self, low_hz: float, high_hz: float, rate_hz: float) -> None:
        if not 0 < low_hz < high_hz < rate_hz / 2:
            raise ValueError(
                f"band {low_hz:g}-{high_hz:g} Hz must lie inside 0-{rate_hz / 2:g} Hz (half the "
                f"{rate_hz:g} Hz model rate) with low < high"
            )
        self.band_hz = (float(low_hz), float(high_hz))
        self.rate_hz = float(rate_hz)
        self._sos = butter(ORDER, self.band_hz, btype="bandpass", fs=rate_hz, output="sos")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return sosfiltfilt(self._sos, x, axis=-1).astype(np.float32)
