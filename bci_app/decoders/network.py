"""The attention network (:class:`~bci_app.nn.classifier.EEGClassifier`) as a decoder."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from bci_app.decoders.base import Decoder, DecoderError
from bci_app.nn.checkpoint import network_state_problems
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier, upgrade_state
from bci_app.nn.export import checked_onnx_session

__all__ = ["NetworkDecoder"]

log = logging.getLogger(__name__)

BATCH = 256
#: Windows per ONNX Runtime call: on S001R06's 493 windows of 64 x 320, batches of 8-32 ran
#: faster than 128-512 (a batch stays in the cache between the graph's steps).
ONNX_BATCH = 32


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
        self._run_graph: Callable[[np.ndarray], list[np.ndarray]] | None = None

    @property
    def config(self) -> ClassifierConfig:
        return self.model.config

    def predict_aligned(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows ``x (n, C, T)`` µV -> ``(probabilities (n, K), weights (n, C))``: through
        ONNX Runtime when the checkpoint brought its graph (``evaluate``: 3x faster than torch
        on S001R06), else through torch."""
        self.model.eval()
        run = self._graph()
        probabilities, weights = [], []
        if run is not None:
            for start in range(0, len(x), ONNX_BATCH):
                p, w = run(np.ascontiguousarray(x[start : start + ONNX_BATCH], dtype=np.float32))
                probabilities.append(p)
                weights.append(w)
        else:
            with torch.inference_mode():
                for start in range(0, len(x), BATCH):
                    batch = torch.from_numpy(np.ascontiguousarray(x[start : start + BATCH]))
                    p, w = self.model(batch)
                    probabilities.append(p.numpy())
                    weights.append(w.numpy())
        if not probabilities:
            return np.zeros((0, self.n_classes), np.float32), np.zeros((0, self.n_channels))
        return np.concatenate(probabilities), np.concatenate(weights)

    def _graph(self) -> Callable[[np.ndarray], list[np.ndarray]] | None:
        """The checkpoint's graph in an ONNX Runtime session (made and checked against the
        weights on first use), or None: no graph, or one that does not compute what the
        weights compute (then dropped with a warning; torch runs the weights)."""
        if self.onnx is None:
            return None
        if self._run_graph is None:
            try:
                session = checked_onnx_session(self.model, self.onnx)
            except Exception as exc:  # damaged or stale graph, or no ONNX Runtime
                log.warning("the checkpoint's ONNX graph is not used (%s); using torch", exc)
                self.onnx = None
                return None
            self._run_graph = lambda x: session.run(None, {"x": x})
        return self._run_graph

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
