"""Riemannian decoders on shrunk window covariances (pyRiemann): tangent space + logistic
regression (``riemann``) and minimum distance to the class means (``mdm``).

Fitting uses pyRiemann and scikit-learn as they define the methods; predicting rebuilds the same
maps from the saved arrays with pyRiemann's geometry functions, so a checkpoint holds no pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pyriemann.classification import MDM
from pyriemann.geometry.base import invsqrtm, logm
from pyriemann.geometry.distance import distance_riemann
from pyriemann.geometry.tangentspace import tangent_space, unupper
from pyriemann.tangentspace import TangentSpace
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from bci_app.decoders.alignment import window_covariances
from bci_app.decoders.base import (
    Decoder,
    float_tensors,
    linear_probabilities,
    linear_rows,
    unit_max,
)
from bci_app.decoders.threads import one_blas_thread

__all__ = ["MdmDecoder", "RiemannDecoder"]


class RiemannDecoder(Decoder):
    """OAS covariances -> tangent space at the training mean -> L2 logistic regression."""

    kind = "riemann"
    weights_meaning = (
        "per electrode, the norm of its row of the Haufe et al. (2014) activation pattern of the "
        "logistic regression, mapped from tangent space back to a channels x channels matrix; "
        "fixed for the model, largest = 1"
    )

    def __init__(
        self,
        reference: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        electrode_weights: np.ndarray,
        regularisation: float = 1.0,
    ) -> None:
        super().__init__(reference.shape[0], max(2, coef.shape[0]))
        self.reference = reference
        self.coef = coef
        self.intercept = intercept
        self.electrode_weights = unit_max(electrode_weights)
        self.regularisation = float(regularisation)

    @classmethod
    @one_blas_thread
    def fit(cls, x: np.ndarray, y: np.ndarray, regularisation: float = 1.0) -> RiemannDecoder:
        """Fit on aligned windows ``x (n, C, T)`` µV with class indices ``y (n,)``."""
        covariances = window_covariances(x)
        space = TangentSpace(metric="riemann").fit(covariances)
        features = space.transform(covariances)
        model = LogisticRegression(C=regularisation, max_iter=1000).fit(features, y)
        return cls(
            space.reference_,
            model.coef_,
            model.intercept_,
            _tangent_pattern_weights(features, model.coef_),
            regularisation,
        )

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = tangent_space(window_covariances(x), self.reference, metric="riemann")
        probabilities = linear_probabilities(features, self.coef, self.intercept)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "riemann.reference": self.reference,
            "riemann.coef": self.coef,
            "riemann.intercept": self.intercept,
            "riemann.electrode_weights": self.electrode_weights,
        }

    def params(self) -> dict[str, Any]:
        return {"covariance": "oas", "metric": "riemann", "C": self.regularisation}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> RiemannDecoder:
        return cls(
            tensors["riemann.reference"],
            tensors["riemann.coef"],
            tensors["riemann.intercept"],
            tensors["riemann.electrode_weights"],
            float(params.get("C", 1.0)),
        )

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        rows, features = linear_rows(n_classes), n_channels * (n_channels + 1) // 2
        return float_tensors(
            {
                "riemann.reference": (n_channels, n_channels),
                "riemann.coef": (rows, features),
                "riemann.intercept": (rows,),
                "riemann.electrode_weights": (n_channels,),
            }
        )


def _tangent_pattern_weights(features: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Haufe patterns ``A = cov(features) @ W`` of a linear model on tangent vectors, unpacked to
    symmetric ``(C, C)`` matrices; an electrode's weight is the norm of its rows."""
    centred = features - features.mean(axis=0)
    patterns = (centred.T @ (centred @ coef.T)) / max(len(features) - 1, 1)  # (F, K')
    matrices = unupper(patterns.T)  # (K', C, C)
    return np.sqrt((matrices**2).sum(axis=(0, 2)))


class MdmDecoder(Decoder):
    """OAS covariances -> Riemannian distance to each class mean; probabilities are the softmax
    of the negative squared distances, as pyRiemann's MDM defines them."""

    kind = "mdm"
    weights_meaning = (
        "per electrode, the norm of its row of the log-maps of the class means at their common "
        "mean (how much its covariance differs between classes); fixed for the model, largest = 1"
    )

    def __init__(self, class_means: np.ndarray, electrode_weights: np.ndarray) -> None:
        super().__init__(class_means.shape[1], class_means.shape[0])
        self.class_means = class_means
        self.electrode_weights = unit_max(electrode_weights)

    @classmethod
    @one_blas_thread
    def fit(cls, x: np.ndarray, y: np.ndarray) -> MdmDecoder:
        model = MDM(metric="riemann").fit(window_covariances(x), y)
        means = model.covmeans_
        whitener = invsqrtm(means.mean(axis=0))
        logs = np.stack([logm(whitener @ m @ whitener) for m in means])
        spread = logs - logs.mean(axis=0)
        return cls(means, np.sqrt((spread**2).sum(axis=(0, 2))))

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        covariances = window_covariances(x)
        distances = np.stack(
            [np.reshape(distance_riemann(covariances, mean), -1) for mean in self.class_means],
            axis=1,
        )
        probabilities = softmax(-(distances**2), axis=1)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "mdm.class_means": self.class_means,
            "mdm.electrode_weights": self.electrode_weights,
        }

    def params(self) -> dict[str, Any]:
        return {"covariance": "oas", "metric": "riemann"}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> MdmDecoder:
        return cls(tensors["mdm.class_means"], tensors["mdm.electrode_weights"])

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        return float_tensors(
            {
                "mdm.class_means": (n_classes, n_channels, n_channels),
                "mdm.electrode_weights": (n_channels,),
            }
        )
