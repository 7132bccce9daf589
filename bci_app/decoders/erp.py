"""Decoders of event-related potentials (target vs non-target epochs of a P300 speller): xDAWN
covariances + tangent space + logistic regression (``xdawn-riemann``, pyRiemann) and shrinkage
LDA on the epoch's samples (``lda``, scikit-learn).

Epochs are ``x (n, C, T)`` float32 µV, each starting at its stimulus; the classes are
``(nontarget, target)``, so ``probabilities[:, 1]`` is the target probability. Fitting uses
pyRiemann and scikit-learn; predicting rebuilds the same maps from the saved arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pyriemann.estimation import XdawnCovariances
from pyriemann.geometry.tangentspace import tangent_space
from pyriemann.tangentspace import TangentSpace
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from bci_app.decoders.alignment import window_covariances
from bci_app.decoders.base import (
    Decoder,
    DecoderError,
    float_tensors,
    linear_probabilities,
    linear_rows,
    unit_max,
)
from bci_app.decoders.threads import one_blas_thread

__all__ = ["ShrinkageLdaDecoder", "XdawnRiemannDecoder", "haufe_patterns"]

#: xDAWN filters per class (pyRiemann's default).
XDAWN_FILTERS = 4
#: The LDA's features: each epoch averaged over bins of this many seconds (60 Hz -> 20 Hz).
LDA_BIN_S = 0.05


def haufe_patterns(features: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Activation patterns ``cov(features) @ coef.T`` ``(n_features, n_rows)`` of a linear model
    (Haufe et al. 2014), computed without forming the covariance matrix."""
    centred = features - features.mean(axis=0)
    return (centred.T @ (centred @ coef.T)) / max(len(features) - 1, 1)


def _two_classes(y: np.ndarray, kind: str) -> None:
    if np.unique(y).size != 2:
        raise DecoderError(
            f"{kind} separates target from non-target epochs and needs both; got classes "
            f"{np.unique(y).tolist()}"
        )


class XdawnRiemannDecoder(Decoder):
    """xDAWN prototypes and filtered epochs -> OAS covariances -> tangent space at the training
    mean -> logistic regression (the peer of the P300 benchmark of BCI Competition II)."""

    kind = "xdawn-riemann"
    weights_meaning = (
        "per electrode, the norm of its entries in the xDAWN spatial patterns of both classes "
        "(how strongly the evoked responses project onto it); fixed for the model, largest = 1"
    )

    def __init__(
        self,
        filters: np.ndarray,
        prototypes: np.ndarray,
        reference: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        electrode_weights: np.ndarray,
    ) -> None:
        super().__init__(filters.shape[1], 2)
        self.filters = filters  # (n_components, C)
        self.prototypes = prototypes  # (n_components, T): the filtered class means
        self.reference = reference  # (2 n_components, 2 n_components)
        self.coef = coef
        self.intercept = intercept
        self.electrode_weights = unit_max(electrode_weights)

    def covariances(self, x: np.ndarray) -> np.ndarray:
        """OAS covariances of ``[prototypes; filters @ x]`` per epoch ``(n, 2P, 2P)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[2] != self.prototypes.shape[1]:
            raise DecoderError(
                f"epochs of {x.shape[2]} samples for a model of {self.prototypes.shape[1]}"
            )
        stacked = np.concatenate(
            [np.broadcast_to(self.prototypes, (len(x), *self.prototypes.shape)), self.filters @ x],
            axis=1,
        )
        return window_covariances(stacked)

    @classmethod
    @one_blas_thread
    def fit(cls, x: np.ndarray, y: np.ndarray) -> XdawnRiemannDecoder:
        """Fit on epochs ``x (n, C, T)`` µV with ``y`` 1 for target, 0 for non-target."""
        _two_classes(y, cls.kind)
        x = np.asarray(x, dtype=np.float64)
        n_filters = min(XDAWN_FILTERS, x.shape[1])
        xdawn = XdawnCovariances(nfilter=n_filters, estimator="oas").fit(x, y).Xd_
        patterns = xdawn.patterns_
        model = cls(
            xdawn.filters_, xdawn.evokeds_, np.eye(1), np.zeros((1, 1)), np.zeros(1),
            np.sqrt((patterns**2).sum(axis=0)),
        )  # fmt: skip
        covariances = model.covariances(x)
        space = TangentSpace(metric="riemann").fit(covariances)
        features = space.transform(covariances)
        classifier = LogisticRegression(C=1.0, max_iter=1000).fit(features, y)
        model.reference, model.coef, model.intercept = (
            space.reference_,
            classifier.coef_,
            classifier.intercept_,
        )
        return model

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = tangent_space(self.covariances(x), self.reference, metric="riemann")
        probabilities = linear_probabilities(features, self.coef, self.intercept)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "xdawn.filters": self.filters,
            "xdawn.prototypes": self.prototypes,
            "riemann.reference": self.reference,
            "riemann.coef": self.coef,
            "riemann.intercept": self.intercept,
            "riemann.electrode_weights": self.electrode_weights,
        }

    def params(self) -> dict[str, Any]:
        return {
            "n_components": int(self.filters.shape[0]),
            "n_samples": int(self.prototypes.shape[1]),
            "covariance": "oas",
            "metric": "riemann",
        }

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> XdawnRiemannDecoder:
        return cls(
            tensors["xdawn.filters"], tensors["xdawn.prototypes"], tensors["riemann.reference"],
            tensors["riemann.coef"], tensors["riemann.intercept"],
            tensors["riemann.electrode_weights"],
        )  # fmt: skip

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        components, samples = int(params["n_components"]), int(params["n_samples"])
        size = 2 * components
        return float_tensors(
            {
                "xdawn.filters": (components, n_channels),
                "xdawn.prototypes": (components, samples),
                "riemann.reference": (size, size),
                "riemann.coef": (1, size * (size + 1) // 2),
                "riemann.intercept": (1,),
                "riemann.electrode_weights": (n_channels,),
            }
        )


class ShrinkageLdaDecoder(Decoder):
    """Each epoch averaged over :data:`LDA_BIN_S` bins, all channels x bins as one vector ->
    LDA with Ledoit-Wolf shrinkage (the classic P300 speller decoder, Blankertz et al. 2011)."""

    kind = "lda"
    weights_meaning = (
        "per electrode, the norm over time of its part of the LDA's Haufe et al. (2014) "
        "activation pattern (the target-vs-non-target difference the model reads there); fixed "
        "for the model, largest = 1"
    )

    def __init__(
        self, coef: np.ndarray, intercept: np.ndarray, electrode_weights: np.ndarray, bin: int
    ) -> None:
        super().__init__(len(electrode_weights), 2)
        self.coef = coef  # (1, C * n_bins)
        self.intercept = intercept
        self.electrode_weights = unit_max(electrode_weights)
        self.bin = int(bin)  # samples per bin

    def features(self, x: np.ndarray) -> np.ndarray:
        """Bin means of epochs ``x (n, C, T)`` as ``(n, C * (T // bin))`` float64."""
        x = np.asarray(x, dtype=np.float64)
        n_bins = x.shape[2] // self.bin
        binned = x[:, :, : n_bins * self.bin].reshape(len(x), x.shape[1], n_bins, self.bin)
        return binned.mean(axis=3).reshape(len(x), -1)

    @classmethod
    @one_blas_thread
    def fit(cls, x: np.ndarray, y: np.ndarray, rate_hz: float) -> ShrinkageLdaDecoder:
        """Fit on epochs ``x (n, C, T)`` µV at ``rate_hz`` with ``y`` 1 for target."""
        _two_classes(y, cls.kind)
        bin = max(1, round(LDA_BIN_S * rate_hz))
        model = cls(np.zeros((1, 1)), np.zeros(1), np.ones(x.shape[1]), bin)
        features = model.features(x)
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(features, y)
        patterns = haufe_patterns(features, lda.coef_)[:, 0].reshape(x.shape[1], -1)
        model.coef, model.intercept = lda.coef_, lda.intercept_
        model.electrode_weights = unit_max(np.sqrt((patterns**2).sum(axis=1)))
        return model

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = linear_probabilities(self.features(x), self.coef, self.intercept)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "lda.coef": self.coef,
            "lda.intercept": self.intercept,
            "lda.electrode_weights": self.electrode_weights,
        }

    def params(self) -> dict[str, Any]:
        return {"bin_samples": self.bin, "n_features": int(self.coef.shape[1]), "shrinkage": "auto"}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> ShrinkageLdaDecoder:
        return cls(
            tensors["lda.coef"], tensors["lda.intercept"], tensors["lda.electrode_weights"],
            int(params["bin_samples"]),
        )  # fmt: skip

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        return float_tensors(
            {
                "lda.coef": (linear_rows(n_classes), int(params["n_features"])),
                "lda.intercept": (linear_rows(n_classes),),
                "lda.electrode_weights": (n_channels,),
            }
        )
