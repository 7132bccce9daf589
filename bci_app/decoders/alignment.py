"""Euclidean alignment (He & Wu 2019): windows re-centred on a reference covariance.

Each window ``x (n_channels, n_samples)`` becomes ``scale * R^{-1/2} @ x``: the reference ``R``
is the mean spatial covariance of the windows it was estimated on, so after alignment their
mean covariance is ``scale**2 * I`` whatever the session, the cap's fit or the person. ``scale``
(µV) keeps the aligned signal at the training data's amplitude, which the network's input scale
expects. Training aligns every run with its own reference (sessions and people land in the same
place); online, :class:`Alignment` starts from the calibration's reference and, when adaptation
is on, follows the session from the incoming windows without labels (an exponential moving
mean of their covariances, re-centring the reference as the session drifts). Each window is
aligned with the reference of the windows before it and joins the reference afterwards, so the
costly update (an eigendecomposition per window) can run once the prediction is out.

Covariances are shrunk (OAS) so flat or duplicated channels give a positive-definite reference,
never a NaN. pyRiemann's ``TLCenter`` does the same re-centring for covariance matrices only;
the network needs the signals themselves aligned, hence this small module.
"""

from __future__ import annotations

import numpy as np
import torch

from bci_app.decoders.threads import blas_on_one_thread, one_blas_thread
from bci_app.nn.covariance import oas_covariances

__all__ = ["Alignment", "align_runs", "window_covariances"]

#: µV² added to every variance: far below EEG (tens to thousands of µV²), above zero.
FLOOR_UV2 = 1e-6
#: Mean channel variance (µV²) below which a window is not EEG (a disconnected or saturated
#: amplifier, flat after the band-pass): adaptation leaves it out. 60 s of flat windows
#: shrank the reference 60x and pinned the predictions to one class for 10 s after.
FLAT_UV2 = 1e-2
#: Most a window's power (covariance trace) may exceed the reference's in an update: an
#: artefact's window is scaled down to it. One second of 5 mV on two electrodes had made the
#: reference 43x larger; a session truly louder than the calibration still gets there, this
#: factor per update at most.
MAX_POWER_RATIO = 5.0


def window_covariances(x: np.ndarray) -> np.ndarray:
    """OAS-shrunk spatial covariances ``(n, C, C)`` of windows ``x (n, C, T)`` (µV²), float64:
    :func:`~bci_app.nn.covariance.oas_covariances` with a floor of :data:`FLOOR_UV2` (all
    windows at once; pyRiemann's per-window calls were 9 s of a 32 s ``auto``). torch computes
    it, on its own threads (``torch.set_num_threads``), not OpenBLAS's."""
    windows = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    return oas_covariances(windows, FLOOR_UV2).numpy()


@one_blas_thread
def sample_covariances(x: np.ndarray) -> np.ndarray:
    """Plain covariances ``x @ x.T / T`` ``(n, C, C)`` of windows ``x (n, C, T)`` (µV²): the mean
    of these is what alignment re-centres (He & Wu 2019), exactly, since it is linear in them.
    A batched matrix product: 8x faster than ``einsum``, which does not call BLAS here (64 x 320
    windows: 57 against 459 µs for one window)."""
    x = np.asarray(x, dtype=np.float64)
    return x @ x.transpose(0, 2, 1) / x.shape[2]


@one_blas_thread
def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    """``matrix^{-1/2}`` of a symmetric positive-definite matrix, eigenvalues floored.

    The eigendecomposition is torch's: at 64 x 64 it took 0.31 ms against numpy's 0.42 ms (in
    turn, median of 20 rounds), and an adapting alignment runs one per window."""
    values, vectors = (
        t.numpy() for t in torch.linalg.eigh(torch.from_numpy((matrix + matrix.T) / 2))
    )
    # A flat or duplicated channel makes the mean covariance singular: floor the eigenvalues at
    # a thousandth of the mean variance rather than amplify a null direction without bound.
    floor = max(float(values.mean()) * 1e-3, FLOOR_UV2)
    values = np.maximum(values, floor)
    return (vectors / np.sqrt(values)) @ vectors.T


class Alignment:
    """Re-centres windows on ``reference (C, C)``; ``memory_windows`` > 0 turns on adaptation.

    With adaptation, every window passed to :meth:`observe` moves the reference towards its own
    covariance with weight ``1 / memory_windows`` (an exponential moving mean, about the last
    ``memory_windows`` windows). The move happens at :meth:`settle`, which the live worker calls
    after emitting a prediction, or else at the next :meth:`transform`: either way window ``i``
    is aligned with the reference of windows ``0 .. i-1``.
    """

    def __init__(self, reference: np.ndarray, scale: float, memory_windows: int = 0) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        if reference.ndim != 2 or reference.shape[0] != reference.shape[1]:
            raise ValueError(f"reference must be a square matrix, got shape {reference.shape}")
        if not np.all(np.isfinite(reference)):
            raise ValueError("reference covariance contains NaN or infinite values")
        size = float(np.abs(reference).max())
        if np.abs(reference - reference.T).max() > 1e-6 * size or (
            np.linalg.eigvalsh(reference)[0] < -1e-6 * size
        ):
            raise ValueError("reference is not a covariance (symmetric, no negative variance)")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a number > 0 (µV), got {scale!r}")
        if memory_windows < 0:
            raise ValueError(
                f"memory_windows must be >= 0 (0: no adaptation), got {memory_windows}"
            )
        self.initial_reference = reference
        self.scale = float(scale)
        self.memory_windows = int(memory_windows)
        self.reset()

    @classmethod
    def fit(cls, x: np.ndarray, memory_windows: int = 0) -> Alignment:
        """The reference of windows ``x (n, C, T)`` (µV): their mean covariance."""
        reference = sample_covariances(x).mean(axis=0)
        scale = float(np.sqrt(np.trace(reference) / reference.shape[0]))
        return cls(reference, scale if scale > 0 else 1.0, memory_windows)

    @property
    def adapts(self) -> bool:
        return self.memory_windows > 0

    @property
    def n_channels(self) -> int:
        return int(self.initial_reference.shape[0])

    @property
    def unsettled(self) -> int:
        """Observed windows not yet in the reference (until :meth:`settle`)."""
        return len(self._unsettled)

    @property
    def reference(self) -> np.ndarray:
        """The reference covariance ``(C, C)`` (µV²) after every observed window."""
        self.settle()
        return self._reference

    @property
    def whitener(self) -> np.ndarray:
        """``scale * reference^{-1/2}`` ``(C, C)``, float32: what :meth:`transform` applies."""
        self.settle()
        return self._whitener

    def reset(self) -> None:
        """Back to the calibration's reference (a new session)."""
        self._reference = self.initial_reference.copy()
        self._whitener = (self.scale * _inverse_sqrt(self._reference)).astype(np.float32)
        self._unsettled: list[np.ndarray] = []
        self.observed = 0
        self.flat_windows = 0  # observed windows adaptation left out as flat

    def observe(self, x: np.ndarray) -> None:
        """Adapt to windows ``x (n, C, T)`` or ``(C, T)`` (µV), oldest first, at the next
        :meth:`settle` (they are copied); no-op without adaptation."""
        if not self.adapts:
            return
        windows = x[np.newaxis] if x.ndim == 2 else x
        self._unsettled.extend(np.array(windows, dtype=np.float32))
        self.observed += len(windows)

    def settle(self) -> None:
        """Move the reference to the observed windows and recompute the whitener: the costly
        part of adaptation (one 64 x 64 eigendecomposition, 0.3-0.4 ms), kept off the path
        from a window to its prediction (live: 1.9 against 4.0 ms p50 for the tangent network
        at 64 x 500, paced every 100 ms). Flat windows are left out (:data:`FLAT_UV2`) and an
        artefact's weight is capped (:data:`MAX_POWER_RATIO`)."""
        if not self._unsettled:
            return
        windows, self._unsettled = np.stack(self._unsettled), []
        rate = 1.0 / self.memory_windows
        flat_power = FLAT_UV2 * self.n_channels
        for covariance in sample_covariances(windows):
            power, reference_power = np.trace(covariance), np.trace(self._reference)
            if power < flat_power:
                self.flat_windows += 1
                continue
            if power > MAX_POWER_RATIO * reference_power:
                covariance *= MAX_POWER_RATIO * reference_power / power
            self._reference += rate * (covariance - self._reference)
        self._whitener = (self.scale * _inverse_sqrt(self._reference)).astype(np.float32)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Aligned windows, same shape as ``x (n, C, T)`` or ``(C, T)``, float32 µV."""
        return np.matmul(self.whitener, np.asarray(x, dtype=np.float32))

    def transform_causal(self, x: np.ndarray) -> np.ndarray:
        """Windows ``x (n, C, T)`` in time order, each aligned with the reference of the windows
        before it, then observed (what the online worker does with adaptation on); starts
        from the current reference."""
        if not self.adapts:
            return self.transform(x)
        out = np.empty(x.shape, dtype=np.float32)
        with blas_on_one_thread():  # once for all windows, not once per step
            for i, window in enumerate(x):
                out[i] = self.transform(window)
                self.observe(window)
        return out

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "alignment.reference": self.initial_reference.astype(np.float64),
            "alignment.scale": np.array([self.scale], dtype=np.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], memory_windows: int = 0) -> Alignment:
        return cls(
            tensors["alignment.reference"], float(tensors["alignment.scale"][0]), memory_windows
        )


def align_runs(x: np.ndarray, runs: np.ndarray, pooled: Alignment | None = None) -> np.ndarray:
    """Windows ``x (n, C, T)`` each aligned with its own run's reference (training side), all
    to the ``pooled`` scale (the alignment of all of ``x``; fitted here when not given) so
    amplitudes stay comparable across runs."""
    out = np.empty(x.shape, dtype=np.float32)
    pooled = pooled or Alignment.fit(x)
    for run in np.unique(runs):
        mask = runs == run
        own = Alignment.fit(x[mask])
        aligned = Alignment(own.reference, pooled.scale)
        out[mask] = aligned.transform(x[mask])
    return out
