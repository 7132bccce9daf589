"""The decoder interface every kind implements: windows in, class probabilities and one weight
per electrode out, parameters out as arrays plus JSON (never pickled) and rebuilt from them.

Windows are ``x (n_windows, n_channels, n_samples)`` float32 µV in the model's channel order,
in time order; probabilities ``(n_windows, n_classes)``; weights ``(n_windows, n_channels)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.special import expit, softmax

from bci_app.decoders.alignment import Alignment
from bci_app.decoders.band import BandFilter
from bci_app.errors import UserError

__all__ = [
    "Decoder",
    "DecoderError",
    "decoder_class",
    "float_tensors",
    "linear_probabilities",
    "linear_rows",
    "unit_max",
]


class DecoderError(UserError, ValueError):
    """A decoder cannot be trained or rebuilt; the message says why and what to do."""


def linear_probabilities(
    features: np.ndarray, coef: np.ndarray, intercept: np.ndarray
) -> np.ndarray:
    """Class probabilities of a fitted linear classifier, as scikit-learn's logistic regression
    and LDA compute them: ``expit`` of the one decision for two classes, else the softmax."""
    scores = features @ coef.T + intercept
    if coef.shape[0] == 1:
        positive = expit(scores[:, 0])
        return np.stack([1.0 - positive, positive], axis=1)
    return softmax(scores, axis=1)


def unit_max(weights: np.ndarray) -> np.ndarray:
    """Non-negative weights scaled so the largest is 1 (all zero stays zero), float32."""
    weights = np.abs(np.asarray(weights, dtype=np.float64))
    top = float(weights.max()) if weights.size else 0.0
    return (weights / top if top > 0 else weights).astype(np.float32)


class Decoder(ABC):
    """One trained decoder. :meth:`prepare` filters windows to the decoder's own ``band``
    (optional) and re-centres them with its ``alignment`` (optional; causally, when it
    adapts); :meth:`predict` is :meth:`predict_aligned` of the prepared windows.

    Subclasses set ``kind`` (the checkpoint's ``decoder.kind``) and ``weights_meaning`` (what
    the electrode weights are, shown in the model card and the GUI).
    """

    kind: ClassVar[str]
    weights_meaning: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _KINDS[cls.kind] = cls

    def __init__(self, n_channels: int, n_classes: int) -> None:
        self.n_channels = int(n_channels)
        self.n_classes = int(n_classes)
        self.band: BandFilter | None = None
        self.alignment: Alignment | None = None

    def reset(self) -> None:
        """Forget what adaptation learned (a new session starts from the calibration)."""
        if self.alignment is not None:
            self.alignment.reset()

    def settle(self) -> None:
        """Finish adapting to the windows prepared so far (see :meth:`Alignment.settle`): the
        live worker calls it once a prediction is out; otherwise the next :meth:`prepare`
        does it."""
        if self.alignment is not None:
            self.alignment.settle()

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """Windows ``x (n, C, T)`` µV in time order, band-passed and aligned (with adaptation
        on, window ``i`` with the reference of the windows before it), float32."""
        x = np.asarray(x, dtype=np.float32)
        if self.band is not None:
            x = self.band(x)
        if self.alignment is not None:
            x = self.alignment.transform_causal(x)
        return x

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(n, K)`` and weights ``(n, C)`` of windows ``x (n, C, T)`` µV in time
        order."""
        return self.predict_aligned(self.prepare(x))

    @abstractmethod
    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` on windows that :meth:`prepare` has already prepared."""

    def with_fixed_weights(
        self, probabilities: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (n, K) float32, weights (C,) repeated for each of the n windows)``:
        the output of a decoder whose electrode weights do not change from window to window."""
        return probabilities.astype(np.float32), np.tile(weights, (len(probabilities), 1))

    @abstractmethod
    def tensors(self) -> dict[str, np.ndarray]:
        """The fitted parameters as named arrays (saved as safetensors)."""

    def params(self) -> dict[str, Any]:
        """The settings needed to rebuild, as JSON-able values (saved in metadata.json)."""
        return {}

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> Decoder:
        """The decoder from :meth:`tensors` and :meth:`params` (shapes checked by the caller)."""
        raise NotImplementedError(f"{cls.__name__} is rebuilt from its members")

    @classmethod
    def upgrade_tensors(
        cls, tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        """Saved tensors of an older layout of this decoder in today's layout (before they
        are checked); unchanged by default."""
        return dict(tensors)

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        """Tensor name -> an empty tensor of the shape and dtype :meth:`rebuild` needs (a
        checkpoint is checked against them before rebuilding)."""
        raise NotImplementedError(f"{cls.__name__} is rebuilt from its members")


def float_tensors(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Empty float64 tensors of these shapes, for :meth:`Decoder.expected_tensors`."""
    return {name: torch.empty(shape, dtype=torch.float64) for name, shape in shapes.items()}


_KINDS: dict[str, type[Decoder]] = {}


def decoder_class(kind: str) -> type[Decoder]:
    """The decoder class of a checkpoint's ``decoder.kind``."""
    try:
        return _KINDS[kind]
    except KeyError:
        raise DecoderError(
            f"unknown decoder kind {kind!r}; this bci-app knows {', '.join(sorted(_KINDS))}"
        ) from None


def linear_rows(n_classes: int) -> int:
    """Rows of a scikit-learn linear classifier's ``coef_``: one for two classes, else one per
    class."""
    return 1 if n_classes == 2 else n_classes
