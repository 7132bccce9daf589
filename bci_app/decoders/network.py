"""The attention network (:class:`~bci_app.nn.classifier.EEGClassifier`) as a decoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bci_app.decoders.base import Decoder, DecoderError
from bci_app.nn.checkpoint import network_state_problems
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier, upgrade_state

__all__ = ["NetworkDecoder"]

BATCH = 256


class NetworkDecoder(Decoder):
    """The network's softmax and the attention weight it gave each electrode in each window."""

    kind = "network"
    weights_meaning = (
        "the electrode attention weight the network computed for this window (0-1; SE and ECA: "
        "a gate per electrode, CBAM: its channel gate), before the network's first layer"
    )

    def __init__(self, model: EEGClassifier) -> None:
        super().__init__(model.config.n_electrodes, model.config.n_classes)
        self.model = model.eval()
        #: The graph saved beside the weights (:mod:`bci_app.nn.export`), when loaded from one.
        self.onnx: bytes | None = None

    @property
    def config(self) -> ClassifierConfig:
        return self.model.config

    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        probabilities, weights = [], []
        with torch.inference_mode():
            for start in range(0, len(x), BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(x[start : start + BATCH]))
                p, w = self.model(batch)
                probabilities.append(p.numpy())
                weights.append(w.numpy())
        if not probabilities:
            return np.zeros((0, self.n_classes), np.float32), np.zeros((0, self.n_channels))
        return np.concatenate(probabilities), np.concatenate(weights)

    def tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def params(self) -> dict[str, Any]:
        return {"classifier": self.config.to_dict()}

    @classmethod
    def build(cls, params: Mapping[str, Any], labels: Sequence[str] | None = None) -> EEGClassifier:
        """An untrained network of the architecture in ``params["classifier"]``."""
        return EEGClassifier(ClassifierConfig(**params["classifier"]), channel_labels=labels)

    @classmethod
    def rebuild(
        cls,
        tensors: Mapping[str, np.ndarray],
        params: Mapping[str, Any],
        n_channels: int,
        n_classes: int,
    ) -> NetworkDecoder:
        model = cls.build(params)
        state = {k: torch.as_tensor(np.asarray(v)) for k, v in tensors.items()}
        problems = network_state_problems(state, model.config)
        if problems:
            raise DecoderError("; ".join(problems))
        model.load_state_dict(state, strict=True)
        return cls(model.eval())

    @classmethod
    def upgrade_tensors(
        cls, tensors: Mapping[str, torch.Tensor], params: Mapping[str, Any]
    ) -> dict[str, torch.Tensor]:
        return upgrade_state(tensors, ClassifierConfig(**params["classifier"]))

    @classmethod
    def expected_tensors(
        cls, params: Mapping[str, Any], n_channels: int, n_classes: int
    ) -> dict[str, torch.Tensor]:
        return dict(cls.build(params).state_dict())
