"""Common spatial patterns + linear discriminant analysis (``csp-lda``).

Fitting uses ``mne.decoding.CSP`` (OAS-regularised covariances, so flat or duplicated channels
give filters rather than an error) and scikit-learn's LDA; predicting applies the saved filters,
log band power and the LDA's linear map, exactly as those two compute them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import mne
import numpy as np
import torch
from mne.decoding import CSP
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from bci_app.decoders.base import (
    Decoder,
    float_tensors,
    linear_probabilities,
    linear_rows,
    unit_max,
)
from bci_app.decoders.threads import one_blas_thread

__all__ = ["CspLdaDecoder"]

_QUIET_MNE = threading.Lock()


class CspLdaDecoder(Decoder):
    """``n_components`` CSP filters -> log of the mean power per filter -> LDA."""

    kind = "csp-lda"
    weights_meaning = (
        "per electrode, the norm of its entries in the chosen CSP spatial patterns (Haufe et al. "
        "2014 activation patterns); fixed for the model, largest = 1"
    )

    def __init__(
        self,
        filters: np.ndarray,
        patterns: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
    ) -> None:
        super().__init__(filters.shape[1], max(2, coef.shape[0]))
        self.filters = filters  # (n_components, C)
        self.patterns = patterns  # (n_components, C)
        self.coef = coef
        self.intercept = intercept
        self.electrode_weights = unit_max(np.sqrt((patterns**2).sum(axis=0)))

    @classmethod
    @one_blas_thread
    def fit(cls, x: np.ndarray, y: np.ndarray, n_components: int = 4) -> CspLdaDecoder:
        """Fit on aligned windows ``x (n, C, T)`` µV with class indices ``y (n,)``."""
        n_components = min(n_components, x.shape[1])
        # rank "full": OAS makes the covariances full rank; MNE's rank estimate took 1.5 s a fit
        csp = CSP(n_components=n_components, reg="oas", log=True, norm_trace=False, rank="full")
        # MNE's log level is process-wide: one fit at a time, or another thread's fit would
        # restore "info" under this one
        with _QUIET_MNE, mne.utils.use_log_level("error"):
            features = csp.fit_transform(np.asarray(x, dtype=np.float64), y)
        lda = LinearDiscriminantAnalysis().fit(features, y)
        return cls(
            csp.filters_[:n_components], csp.patterns_[:n_components], lda.coef_, lda.intercept_
        )

    def features(self, x: np.ndarray) -> np.ndarray:
        """Log mean power ``(n, n_components)`` of the CSP sources of windows ``x (n, C, T)``."""
        sources = self.filters @ np.asarray(x, dtype=np.float64)
        return np.log(np.maximum((sources**2).mean(axis=2), np.finfo(np.float64).tiny))

    @one_blas_thread
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = linear_probabilities(self.features(x), self.coef, self.intercept)
        return self.with_fixed_weights(probabilities, self.electrode_weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "csp.filters": self.filters,
            "csp.patterns": self.patterns,
            "lda.coef": self.coef,
            "lda.intercept": self.intercept,
        }

    def params(self) -> dict[str, Any]:
        return {"n_components": int(self.filters.shape[0]), "covariance": "oas"}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> CspLdaDecoder:
        return cls(
            tensors["csp.filters"], tensors["csp.patterns"], tensors["lda.coef"],
            tensors["lda.intercept"],
        )  # fmt: skip

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        components, rows = int(params.get("n_components", 4)), linear_rows(n_classes)
        return float_tensors(
            {
                "csp.filters": (components, n_channels),
                "csp.patterns": (components, n_channels),
                "lda.coef": (rows, components),
                "lda.intercept": (rows,),
            }
        )
