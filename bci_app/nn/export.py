"""The network as an ONNX graph, exported once when a checkpoint is saved.

``model.onnx`` lies beside the weights (its SHA-256 in the metadata), so a CPU worker starts
ONNX Runtime without torch's exporter (about 0.15 s per start, and the exporter's warnings).
It is derived from the weights, which stay the reference: the worker checks that the two agree
on a test window before it uses the graph (:func:`check_onnx_matches`). ONNX is a protobuf
graph of operators and constants; loading it executes no code.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch

from bci_app.nn.classifier import EEGClassifier

__all__ = ["ONNX_FILE", "check_onnx_matches", "checked_onnx_session", "export_onnx", "onnx_session"]

ONNX_FILE = "model.onnx"
#: Largest difference allowed between the graph's and torch's outputs on the test window.
MATCH_ATOL = 1e-4


def export_onnx(model: EEGClassifier) -> bytes | None:
    """``model`` (a copy with its max-norm cap folded in, in eval mode) as ONNX bytes, input
    ``x (batch, n_electrodes, n_samples)`` µV, outputs ``probabilities (batch, K)`` and
    ``weights (batch, C)``, with a dynamic batch axis; None for a network without an ONNX form
    (:attr:`~bci_app.nn.classifier.EEGClassifier.exports_onnx`)."""
    if not model.exports_onnx:
        return None
    model = copy.deepcopy(model).cpu().eval().fold_max_norm()
    config = model.config
    example = torch.zeros((1, config.n_electrodes, config.n_samples), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape checks and exporters
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=["x"],
            output_names=["probabilities", "weights"],
            dynamic_axes={name: {0: "batch"} for name in ("x", "probabilities", "weights")},
            dynamo=False,
        )
    return buffer.getvalue()


def onnx_session(graph: bytes, threads: int = 1):
    """An ONNX Runtime CPU session on ``graph`` (ONNX bytes) with ``threads`` intra-op threads
    and every graph optimisation (ORT_ENABLE_ALL, the fastest level at 64 x 500 in
    benchmarks/inference_cpu.py); its ``run(None, {"x": x})`` gives ``[probabilities, weights]``.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def check_onnx_matches(model: EEGClassifier, run) -> None:
    """Raise ValueError unless ``run(x)`` (a graph's ``(probabilities, weights)`` for windows
    ``x (n, C, T)``) equals ``model`` on a fixed random test window within :data:`MATCH_ATOL`."""
    config = model.config
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, config.n_electrodes, config.n_samples)) * 20).astype(np.float32)
    with torch.inference_mode():
        expected = [t.numpy() for t in model.eval()(torch.from_numpy(x))]
    got = run(x)
    for name, a, b in zip(("probabilities", "weights"), got, expected, strict=True):
        if a.shape != b.shape or not np.allclose(a, b, atol=MATCH_ATOL):
            raise ValueError(
                f"{ONNX_FILE} does not compute what the weights compute ({name} differ by "
                f"{float(np.max(np.abs(a - b))) if a.shape == b.shape else 'shape'}); "
                "it is stale or belongs to another checkpoint"
            )


def checked_onnx_session(model: EEGClassifier, graph: bytes, threads: int = 1):
    """:func:`onnx_session` on a saved ``graph``, once :func:`check_onnx_matches` has found it
    computing what ``model``'s weights compute (else ValueError)."""
    session = onnx_session(graph, threads)
    check_onnx_matches(model, lambda x: session.run(None, {"x": x}))
    return session
