"""SSVEP decoders: filter-bank CCA against reference sinusoids (``fbcca``, usable with no
calibration at all) and filter-bank covariances + tangent space + logistic regression
(``fb-riemann``, pyRiemann).

Classes are stimulation frequencies named ``<number>Hz`` plus, optionally, ``rest`` (no
stimulation: the no-control state). Windows are ``x (n, C, T)`` float32 µV at the model rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pyriemann.geometry.tangentspace import tangent_space
from pyriemann.tangentspace import TangentSpace
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from bci_app.config import SSVEP_REST, stimulation_frequency
from bci_app.decoders.alignment import window_covariances
from bci_app.decoders.band import BandFilter
from bci_app.decoders.base import (
    Decoder,
    DecoderError,
    float_tensors,
    linear_probabilities,
    linear_rows,
    unit_max,
)
from bci_app.decoders.riemann import _tangent_pattern_weights
from bci_app.decoders.threads import one_blas_thread

__all__ = ["FbccaDecoder", "FilterBankRiemannDecoder", "stimulation_frequencies"]

#: Harmonics in each CCA reference (fundamental and second harmonic: 13-21 Hz -> up to 42 Hz,
#: inside the SSVEP dsp band of 5-45 Hz).
HARMONICS = 2
#: FBCCA sub-bands (Chen et al. 2015): band m starts at m x (lowest frequency - 2 Hz) and ends
#: at 45 Hz; its correlation counts with weight m^-1.25 + 0.25.
SUB_BANDS = 3
TOP_HZ = 45.0
#: Half-width (Hz) of each filter-bank band around a stimulation frequency (12-14, 16-18, 20-22).
FB_HALF_WIDTH_HZ = 1.0
#: Scale of the training-free CCA scores into probabilities (softmax of scale x score).
UNTRAINED_SCALE = 20.0
#: Training-free ``rest``: no frequency's score reaches this multiple of the mean score of
#: all frequencies (noise raises every score alike; a flicker raises its own). On the shared
#: SSVEP sessions (4 classes with rest, no training) 1.0-1.5 gave 0.56/0.57/0.61/0.56/0.44/0.34.
REST_MARGIN = 1.2


def stimulation_frequencies(classes: Sequence[str]) -> tuple[list[float], bool]:
    """``(frequencies in Hz of the classes other than rest, in class order; whether rest is a
    class)`` (:func:`~bci_app.config.stimulation_frequency`). Raises :class:`DecoderError` for
    a class that is neither."""
    try:
        found = [stimulation_frequency(name) for name in classes]
    except ValueError as exc:
        raise DecoderError(str(exc)) from None
    frequencies = [f for f in found if f is not None]
    if not frequencies:
        raise DecoderError("an SSVEP model needs at least one '<number>Hz' class")
    return frequencies, None in found


def _orthonormal(x: np.ndarray) -> np.ndarray:
    """Orthonormal bases ``(..., T, k)`` of the centred columns of ``x (..., T, k)``."""
    centred = x - x.mean(axis=-2, keepdims=True)
    q, _ = np.linalg.qr(centred)
    return q


#: Most dimensions of a window's channel space CCA correlates with the references: with
#: many channels against few samples every frequency finds a correlation near 1 by chance
#: (64 channels x 128 samples: every window called rest). More channels keep their
#: strongest components (PCA of the window); 8 is an occipital montage's size.
CCA_DIMENSIONS = 8


def _channel_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal bases ``(n, T, d)`` of windows ``x (n, T, C)``: all their centred channels,
    or (C > :data:`CCA_DIMENSIONS`) their strongest ``CCA_DIMENSIONS`` components."""
    if x.shape[-1] <= CCA_DIMENSIONS:
        return _orthonormal(x)
    centred = x - x.mean(axis=-2, keepdims=True)
    u, _, _ = np.linalg.svd(centred, full_matrices=False)
    return u[..., :CCA_DIMENSIONS]


class FbccaDecoder(Decoder):
    """Filter-bank canonical correlation with sine/cosine references at each frequency and its
    harmonics; the score of a frequency is the weighted sum of squared correlations over the
    sub-bands. Untrained: probabilities are a softmax of the scores, and ``rest`` wins when
    no score reaches ``rest_margin`` times their mean (:data:`REST_MARGIN`).
    Trained (with windows of every class): a logistic regression on the scores, which learns
    the no-control state from the rest trials."""

    kind = "fbcca"
    weights_meaning = (
        "per electrode and window, the fraction of its power in the fundamental sub-band that "
        "the references of the most likely frequency explain (how strongly it follows that "
        "flicker); largest = 1"
    )

    def __init__(
        self,
        classes: Sequence[str],
        rate_hz: float,
        n_channels: int,
        coef: np.ndarray | None = None,
        intercept: np.ndarray | None = None,
        rest_margin: float = REST_MARGIN,
    ) -> None:
        super().__init__(n_channels, len(classes))
        self.classes = list(classes)
        self.rate_hz = float(rate_hz)
        self.frequencies, self.has_rest = stimulation_frequencies(self.classes)
        self.coef = coef
        self.intercept = intercept
        self.rest_margin = float(rest_margin)
        lowest = min(self.frequencies)
        top = min(TOP_HZ, 0.45 * rate_hz)
        self.sub_bands = [
            BandFilter(m * max(lowest - 2.0, 1.0), top, rate_hz)
            for m in range(1, SUB_BANDS + 1)
            if m * max(lowest - 2.0, 1.0) < top - 2.0
        ]
        self.sub_band_weights = np.array(
            [m**-1.25 + 0.25 for m in range(1, len(self.sub_bands) + 1)]
        )
        self._references: dict[int, np.ndarray] = {}

    def references(self, n_samples: int) -> np.ndarray:
        """Orthonormal reference bases ``(n_frequencies, T, 2 HARMONICS)`` for windows of
        ``n_samples``."""
        basis = self._references.get(n_samples)
        if basis is None:
            t = np.arange(n_samples) / self.rate_hz
            waves = [
                np.stack(
                    [
                        fn(2 * np.pi * h * f * t)
                        for h in range(1, HARMONICS + 1)
                        for fn in (np.sin, np.cos)
                    ],
                    axis=1,
                )
                for f in self.frequencies
            ]
            basis = _orthonormal(np.stack(waves))
            self._references[n_samples] = basis
        return basis

    def scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FBCCA scores ``(n, n_frequencies)`` of windows ``x (n, C, T)`` and the windows'
        fundamental sub-band ``(n, C, T)`` (for the electrode weights)."""
        x = np.asarray(x, dtype=np.float64)
        references = self.references(x.shape[2])  # (F, T, k)
        total = np.zeros((len(x), len(self.frequencies)))
        first = x
        for m, (band, weight) in enumerate(zip(self.sub_bands, self.sub_band_weights, strict=True)):
            filtered = band(x).astype(np.float64)
            if m == 0:
                first = filtered
            bases = _channel_basis(np.swapaxes(filtered, 1, 2))  # (n, T, <= C)
            # Canonical correlations are the singular values of Qx^T Qy; the largest counts.
            products = np.einsum("ntc,ftk->nfck", bases, references)
            rho = np.linalg.svd(products, compute_uv=False)[..., 0]
            total += weight * rho**2
        return total, first

    def _electrode_weights(self, band_passed: np.ndarray, best: np.ndarray) -> np.ndarray:
        references = self.references(band_passed.shape[2])[best]  # (n, T, k)
        centred = band_passed - band_passed.mean(axis=2, keepdims=True)
        explained = (np.einsum("nct,ntk->nck", centred, references) ** 2).sum(axis=2)
        power = np.maximum((centred**2).sum(axis=2), np.finfo(np.float64).tiny)
        fraction = explained / power
        top = np.maximum(fraction.max(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        return (fraction / top).astype(np.float32)

    def _scores_to_probabilities(self, scores: np.ndarray) -> np.ndarray:
        if self.coef is not None and self.intercept is not None:
            return linear_probabilities(scores, self.coef, self.intercept)
        relative = scores / np.maximum(scores.mean(axis=1, keepdims=True), 1e-12)
        frequency_logits = iter(UNTRAINED_SCALE * relative.T)
        logits = [
            np.full(len(scores), UNTRAINED_SCALE * self.rest_margin)
            if name.strip().lower() == SSVEP_REST
            else next(frequency_logits)
            for name in self.classes
        ]
        return softmax(np.stack(logits, axis=1), axis=1)

    @classmethod
    @one_blas_thread
    def fit(
        cls,
        x: np.ndarray | None,
        y: np.ndarray | None,
        classes: Sequence[str],
        rate_hz: float,
        n_channels: int,
    ) -> FbccaDecoder:
        """With windows ``x (n, C, T)`` and class indices ``y``: a logistic regression on the
        scores. Without (``x`` None): the training-free decoder."""
        model = cls(classes, rate_hz, n_channels)
        if x is None or y is None:
            return model
        if np.unique(y).size != len(classes):
            raise DecoderError(
                f"a trained fbcca needs windows of every class {list(classes)}; train without "
                "files for the training-free decoder"
            )
        scores, _ = model.scores(x)
        classifier = LogisticRegression(C=10.0, max_iter=2000).fit(scores, y)
        model.coef, model.intercept = classifier.coef_, classifier.intercept_
        return model

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, band_passed = self.scores(x)
        probabilities = self._scores_to_probabilities(scores)
        best = scores.argmax(axis=1)
        weights = self._electrode_weights(band_passed.astype(np.float64), best)
        return probabilities.astype(np.float32), weights

    def tensors(self) -> dict[str, np.ndarray]:
        if self.coef is None or self.intercept is None:
            return {"fbcca.rest_margin": np.array([self.rest_margin])}
        return {
            "fbcca.rest_margin": np.array([self.rest_margin]),
            "fbcca.coef": self.coef,
            "fbcca.intercept": self.intercept,
        }

    def params(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "rate_hz": self.rate_hz,
            "harmonics": HARMONICS,
            "sub_bands": [list(b.band_hz) for b in self.sub_bands],
            "trained": self.coef is not None,
        }

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> FbccaDecoder:
        model = cls(
            params["classes"],
            float(params["rate_hz"]),
            n_channels,
            tensors.get("fbcca.coef"),
            tensors.get("fbcca.intercept"),
            float(tensors["fbcca.rest_margin"][0]),
        )
        if [list(b.band_hz) for b in model.sub_bands] != [list(b) for b in params["sub_bands"]]:
            raise DecoderError(
                "the checkpoint's fbcca sub-bands differ from this bci-app's; retrain the model"
            )
        return model

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        shapes: dict[str, tuple[int, ...]] = {"fbcca.rest_margin": (1,)}
        if params.get("trained"):
            n_frequencies = len(stimulation_frequencies(params["classes"])[0])
            shapes["fbcca.coef"] = (linear_rows(n_classes), n_frequencies)
            shapes["fbcca.intercept"] = (linear_rows(n_classes),)
        return float_tensors(shapes)


class FilterBankRiemannDecoder(Decoder):
    """One band of +-:data:`FB_HALF_WIDTH_HZ` around each stimulation frequency; per band OAS
    covariances -> tangent space at the band's training mean; all tangent vectors -> logistic
    regression (the SSVEP peer of the shared data's reference figures)."""

    kind = "fb-riemann"
    weights_meaning = (
        "per electrode, the norm of its rows of the logistic regression's Haufe et al. (2014) "
        "activation pattern, mapped from each band's tangent space back to channels x channels "
        "and summed over bands; fixed for the model, largest = 1"
    )

    def __init__(
        self,
        bands_hz: Sequence[Sequence[float]],
        rate_hz: float,
        references: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        electrode_weights: np.ndarray,
    ) -> None:
        super().__init__(references.shape[1], max(2, coef.shape[0]))
        self.bands_hz = [(float(low), float(high)) for low, high in bands_hz]
        self.rate_hz = float(rate_hz)
        self.filters = [BandFilter(low, high, rate_hz) for low, high in self.bands_hz]
        self.references = references  # (n_bands, C, C)
        self.coef = coef
        self.intercept = intercept
        self.electrode_weights = unit_max(electrode_weights)

    def band_covariances(self, x: np.ndarray) -> list[np.ndarray]:
        """OAS covariances ``(n, C, C)`` of windows ``x (n, C, T)`` in each band."""
        return [window_covariances(band(x)) for band in self.filters]

    @classmethod
    @one_blas_thread
    def fit(
        cls, x: np.ndarray, y: np.ndarray, classes: Sequence[str], rate_hz: float
    ) -> FilterBankRiemannDecoder:
        frequencies, _ = stimulation_frequencies(classes)
        bands = [(f - FB_HALF_WIDTH_HZ, f + FB_HALF_WIDTH_HZ) for f in frequencies]
        n_channels = x.shape[1]
        model = cls(
            bands, rate_hz, np.tile(np.eye(n_channels), (len(bands), 1, 1)), np.zeros((1, 1)),
            np.zeros(1), np.ones(n_channels),
        )  # fmt: skip
        spaces = [TangentSpace(metric="riemann").fit(c) for c in model.band_covariances(x)]
        model.references = np.stack([s.reference_ for s in spaces])
        features = model.features(x)
        classifier = LogisticRegression(C=1.0, max_iter=2000).fit(features, y)
        model.coef, model.intercept = classifier.coef_, classifier.intercept_
        size = n_channels * (n_channels + 1) // 2
        model.electrode_weights = unit_max(
            sum(
                _tangent_pattern_weights(
                    features[:, b * size : (b + 1) * size], model.coef[:, b * size : (b + 1) * size]
                )
                for b in range(len(bands))
            )
        )
        return model

    def features(self, x: np.ndarray) -> np.ndarray:
        """Tangent vectors of every band, side by side ``(n, n_bands * C (C + 1) / 2)``."""
        return np.concatenate(
            [
                tangent_space(c, reference, metric="riemann")
                for c, reference in zip(self.band_covariances(x), self.references, strict=True)
            ],
            axis=1,
        )

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = linear_probabilities(self.features(x), self.coef, self.intercept)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "fb.references": self.references,
            "fb.coef": self.coef,
            "fb.intercept": self.intercept,
            "fb.electrode_weights": self.electrode_weights,
        }

    def params(self) -> dict[str, Any]:
        return {"bands_hz": [list(b) for b in self.bands_hz], "rate_hz": self.rate_hz}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> FilterBankRiemannDecoder:
        return cls(
            params["bands_hz"], float(params["rate_hz"]), tensors["fb.references"],
            tensors["fb.coef"], tensors["fb.intercept"], tensors["fb.electrode_weights"],
        )  # fmt: skip

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        n_bands = len(params["bands_hz"])
        features = n_bands * n_channels * (n_channels + 1) // 2
        return float_tensors(
            {
                "fb.references": (n_bands, n_channels, n_channels),
                "fb.coef": (linear_rows(n_classes), features),
                "fb.intercept": (linear_rows(n_classes),),
                "fb.electrode_weights": (n_channels,),
            }
        )
