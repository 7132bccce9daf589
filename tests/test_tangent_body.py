"""The network's tangent body: attention -> OAS covariance -> matrix logarithm -> linear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import SHARED_DATA
from pyriemann.estimation import Covariances
from sklearn.linear_model import LogisticRegression

from bci_app.config import DspConfig, load_config
from bci_app.decoders import NetworkDecoder, decoder_spec, load_decoder, save_decoder
from bci_app.infer.worker import EagerRunner, build_runner
from bci_app.io import load_recording
from bci_app.io.montage import SMALL_8
from bci_app.nn import ClassifierConfig, EEGClassifier, load_checkpoint, save_checkpoint
from bci_app.nn.checkpoint import render_model_card
from bci_app.nn.covariance import oas_covariances, symmetric_log
from bci_app.nn.export import export_onnx
from bci_app.nn.metadata import CheckpointMetadata
from bci_app.train.data import extract_trials
from bci_app.train.decoders import fit_decoder
from bci_app.train.trainer import (
    TrainSettings,
    paradigm_settings,
    start_head_from_logistic_regression,
)

CONFIG = Path(__file__).resolve().parents[1] / "benchmarks" / "eegmmidb.yaml"
LEFT_RIGHT = {"T1": "left", "T2": "right"}


def _config(**kwargs) -> ClassifierConfig:
    base = {"n_electrodes": 8, "n_samples": 160, "n_classes": 2, "rate_hz": 160.0}
    return ClassifierConfig(**{**base, "body": "tangent", **kwargs})


def _windows(n: int, seed: int = 0) -> torch.Tensor:
    """Windows ``(n, 8, 160)`` µV with correlated electrodes, as EEG has."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(8, 8)) + 2 * np.eye(8)
    return torch.tensor(mixing @ rng.normal(0, 10, (n, 8, 160)), dtype=torch.float32)


def _upper(matrices: np.ndarray) -> np.ndarray:
    rows, columns = np.triu_indices(matrices.shape[-1])
    scale = np.where(rows == columns, 1.0, np.sqrt(2.0))
    return matrices[:, rows, columns] * scale


@pytest.mark.parametrize("attention", ["se", "eca", "none"])
def test_features_are_the_log_of_the_gated_windows_shrunk_covariance(attention: str) -> None:
    torch.manual_seed(0)
    model = EEGClassifier(_config(attention=attention), channel_labels=SMALL_8).eval()
    x = _windows(4)
    with torch.inference_mode():
        features, weights = model.tangent_features(x)
    gated = x.numpy().astype(np.float64) / 20.0 * weights.numpy()[:, :, None]
    covariances = Covariances(estimator="oas").transform(gated)  # pyRiemann's, per window
    expected = _upper(np.stack([scipy.linalg.logm(c).real for c in covariances]))
    np.testing.assert_allclose(features.numpy(), expected, atol=2e-4)


def test_logarithm_gradient_is_the_derivative_of_the_matrix_logarithm() -> None:
    covariances = oas_covariances(_windows(3).double() / 20, 1e-6).requires_grad_()
    logarithm = lambda m: symmetric_log((m + m.transpose(1, 2)) / 2, 1e-6)  # noqa: E731
    assert torch.autograd.gradcheck(logarithm, (covariances,))


def test_flat_and_duplicated_electrodes_train_without_nan() -> None:
    """Flat electrodes, a copied one and an all-zero window (a disconnected amplifier) give
    equal eigenvalues: autograd through ``eigh`` divides by their gap (NaN for the all-zero
    window); the divided differences do not."""
    x = _windows(16)
    x[:, 2] = 0.0
    x[:, 5] = 0.0
    x[:, 7] = x[:, 6]
    x[3] = 0.0
    y = torch.arange(16) % 2
    torch.manual_seed(0)
    model = EEGClassifier(_config(), channel_labels=SMALL_8).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        logits, _ = model.forward_logits(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimiser.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        optimiser.step()
    probabilities, _ = model.eval()(torch.zeros(1, 8, 160))  # a flat amplifier
    assert torch.isfinite(probabilities).all()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_head_starts_at_the_logistic_regression_of_the_features(n_classes: int) -> None:
    torch.manual_seed(0)
    model = EEGClassifier(_config(n_classes=n_classes), channel_labels=SMALL_8)
    x = _windows(30)
    y = np.arange(30) % n_classes
    start_head_from_logistic_regression(model, x, y)
    with torch.inference_mode():
        features = model.tangent_features(x)[0].double().numpy()
        probabilities = model(x)[0].numpy()
    expected = LogisticRegression(C=1.0, max_iter=1000).fit(features, y).predict_proba(features)
    np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_a_class_missing_from_the_windows_starts_unlikely() -> None:
    model = EEGClassifier(_config(n_classes=3), channel_labels=SMALL_8)
    x = _windows(20)
    start_head_from_logistic_regression(model, x, np.arange(20) % 2)  # no class 2
    with torch.inference_mode():
        probabilities = model(x)[0].numpy()
    assert (probabilities[:, 2] < 0.05).all()


def test_saved_without_a_graph_and_run_by_torch_in_the_worker(tmp_path: Path) -> None:
    config = _config()
    model = EEGClassifier(config, channel_labels=SMALL_8).eval()
    assert export_onnx(model) is None
    metadata = CheckpointMetadata(
        classes=["left", "right"],
        channel_labels=list(SMALL_8),
        model_rate_hz=160.0,
        window_s=1.0,
        hop_s=0.25,
        dsp={
            "bandpass": [1.0, 40.0],
            "order": 4,
            "notch": 50,
            "notch_quality": 30.0,
            "resampler_phase": "minimum",
            "reference": "none",
        },  # fmt: skip
        classifier=config.to_dict(),
        training={"files": ["a.edf"], "class_map": {"T1": "left"}},
    )
    card = render_model_card(metadata)
    assert "matrix logarithm" in card
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata, card)
    assert not (folder / "model.onnx").exists()
    loaded, _ = load_checkpoint(folder)
    runner, fallback = build_runner(loaded, torch.device("cpu"))
    assert isinstance(runner, EagerRunner) and fallback is None
    x = _windows(3).numpy()
    decoder = NetworkDecoder(loaded)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(runner.batch(x)[0], expected, atol=1e-6)
    np.testing.assert_allclose(decoder.predict_aligned(x)[0], expected, atol=1e-6)


def test_motor_imagery_uses_the_tangent_body_and_erps_and_ssvep_keep_eegnet() -> None:
    settings = TrainSettings()
    assert paradigm_settings(settings, "mi").network_body == "tangent"
    assert paradigm_settings(settings, "p300").network_body == "eegnet"
    assert paradigm_settings(settings, "ssvep").network_body == "eegnet"
    assert ClassifierConfig(**{**_config().to_dict(), "body": "eegnet"}).body == "eegnet"
    older = {k: v for k, v in _config().to_dict().items() if k != "body"}
    assert ClassifierConfig.from_dict(older).body == "eegnet"  # checkpoints from before it


def test_the_se_network_fits_aligned_on_motor_imagery_and_round_trips(tmp_path: Path) -> None:
    """S001 run 4 (imagined left vs right fist): two seeds, each member with its own adapting
    alignment; saved and loaded, it predicts run 8 as it did."""
    config = load_config(CONFIG)
    folder = SHARED_DATA / "eegmmidb" / "S001"
    train, test = (
        extract_trials([load_recording(folder / f"S001R{run}.edf")], LEFT_RIGHT, config)
        for run in ("04", "08")
    )
    fitted = fit_decoder("se", train, TrainSettings(seeds=2, epochs=3))
    members = fitted.decoder.members
    assert len(members) == 2 and all(m.config.body == "tangent" for m in members)
    assert all(m.alignment is not None and m.alignment.adapts for m in members)
    assert members[0].alignment is not members[1].alignment
    spec_metadata = CheckpointMetadata(
        classes=list(train.classes),
        channel_labels=list(train.labels),
        model_rate_hz=train.rate_hz,
        window_s=2.0,
        hop_s=0.25,
        dsp=DspConfig.from_config(config),
        decoder=decoder_spec(fitted.decoder),
        training={"class_map": LEFT_RIGHT},
    )
    save_decoder(tmp_path / "se", fitted.decoder, spec_metadata, render_model_card(spec_metadata))
    assert not (tmp_path / "se" / "model.onnx").exists()
    loaded, _ = load_decoder(tmp_path / "se")
    fitted.decoder.reset()
    expected, got = fitted.decoder.predict(test.x[:40]), loaded.predict(test.x[:40])
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.isfinite(expected[0]).all()


def test_on_a_gpu_the_tangent_body_runs_eager_without_trying_a_cuda_graph(monkeypatch) -> None:
    # No GPU here: stand in for the CUDA device's runners (the only mock in this file).
    import bci_app.infer.worker as worker_module

    def no_capture(model, device):
        raise AssertionError("eigh synchronises with the host: no CUDA graph is to be tried")

    monkeypatch.setattr(worker_module, "CudaGraphRunner", no_capture)
    monkeypatch.setattr(worker_module, "EagerRunner", lambda model, device: ("eager", device))
    model = EEGClassifier(_config(), channel_labels=SMALL_8).eval()
    runner, reason = build_runner(model, torch.device("cuda"))
    assert runner == ("eager", torch.device("cuda")) and "eigh" in reason
