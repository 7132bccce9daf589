"""Electrode attention, the EEGNet-style classifier and checkpoint folders (bci_app.nn)."""

from __future__ import annotations

import copy
import json
import logging
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bci_app.io.montage import EEGMMIDB_64, HD_256, SMALL_8, positions
from bci_app.nn import (
    ATTENTION_KINDS,
    CBAMAttention,
    CheckpointError,
    CheckpointMetadata,
    ClassifierConfig,
    ECAAttention,
    EEGClassifier,
    NoAttention,
    SEAttention,
    check_stream_compatibility,
    eca_kernel_size,
    load_checkpoint,
    make_attention,
    neighbourhood_order,
    render_model_card,
    save_checkpoint,
)
from bci_app.nn.classifier import upgrade_state
from bci_app.nn.metadata import FORMAT_VERSION

ROOT = Path(__file__).resolve().parents[1]
DSP = {"bandpass": [1.0, 40.0], "order": 4, "notch": 50, "notch_quality": 30.0, "reference": "none"}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _input(batch: int, n_electrodes: int, n_samples: int, layout: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_electrodes, n_samples, generator=g) + 0.5
    return x.unsqueeze(1) if layout == "4d" else x


def _attention(kind: str, n: int):
    labels = list(EEGMMIDB_64[:n]) if kind == "eca" else None
    return make_attention(kind, n, labels=labels).eval()


# --------------------------------------------------------------------------- attention


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("batch", [1, 3])
def test_attention_shapes_and_weight_range(kind: str, layout: str, batch: int) -> None:
    module = _attention(kind, 16)
    x = _input(batch, 16, 50, layout)
    out, weights = module(x)
    assert out.shape == x.shape
    assert weights.shape == (batch, 16)
    assert torch.isfinite(out).all()
    if kind == "none":
        assert torch.equal(out, x)
        assert torch.equal(weights, torch.ones(batch, 16))
    else:
        assert ((weights > 0) & (weights < 1)).all()


@pytest.mark.parametrize("kind", ["se", "eca", "cbam"])
def test_weights_stay_inside_open_interval_for_huge_inputs(kind: str) -> None:
    module = _attention(kind, 8)
    for scale in (1e4, -1e4):
        _, weights = module(_input(2, 8, 40, "3d") * scale + scale)
        assert ((weights > 0) & (weights < 1)).all()


@pytest.mark.parametrize("kind", ["se", "eca", "none"])
@pytest.mark.parametrize("layout", ["3d", "4d"])
def test_electrode_j_is_scaled_by_weight_j(kind: str, layout: str) -> None:
    module = _attention(kind, 12)
    x = _input(2, 12, 30, layout)
    out, weights = module(x)
    x3, out3 = (x[:, 0], out[:, 0]) if layout == "4d" else (x, out)
    torch.testing.assert_close(out3, x3 * weights[:, :, None])


def test_cbam_is_electrode_gate_times_temporal_gate() -> None:
    module = _attention("cbam", 10)
    x = _input(2, 10, 40, "3d")
    out, weights = module(x)
    time_gate = out / (x * weights[:, :, None])  # must be the same for every electrode
    torch.testing.assert_close(time_gate, time_gate[:, :1].expand_as(time_gate))
    assert ((time_gate > 0) & (time_gate < 1)).all()


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_batch_items_are_independent(kind: str) -> None:
    module = _attention(kind, 8)
    x = _input(4, 8, 32, "3d")
    out, weights = module(x)
    for i in range(4):
        out_i, weights_i = module(x[i : i + 1])
        torch.testing.assert_close(out_i, out[i : i + 1])
        torch.testing.assert_close(weights_i, weights[i : i + 1])


def test_se_weights_belong_to_electrodes_under_permutation() -> None:
    """Permuting the electrodes (and the MLP's electrode axes) permutes the weights alike."""
    se = SEAttention(10, reduction=2)
    perm = torch.randperm(10)
    permuted = SEAttention(10, reduction=2)
    with torch.no_grad():
        permuted.fc1.weight.copy_(se.fc1.weight[:, perm])
        permuted.fc1.bias.copy_(se.fc1.bias)
        permuted.fc2.weight.copy_(se.fc2.weight[perm])
        permuted.fc2.bias.copy_(se.fc2.bias[perm])
    x = _input(3, 10, 25, "3d")
    _, weights = se(x)
    _, weights_p = permuted(x[:, perm])
    torch.testing.assert_close(weights_p, weights[:, perm])


def test_se_weight_gradient_reaches_only_through_descriptor() -> None:
    """An electrode's weight depends on the others only via their temporal means."""
    se = SEAttention(6, reduction=2)
    x = _input(1, 6, 20, "3d").requires_grad_(True)
    _, weights = se(x)
    (grad,) = torch.autograd.grad(weights[0, 2], x)
    # mean squeeze: the gradient is constant over time for every electrode
    torch.testing.assert_close(grad, grad[..., :1].expand_as(grad))


def test_se_rms_squeeze_tracks_electrode_amplitude() -> None:
    se = SEAttention(8, reduction=2, squeeze="rms")
    x = _input(1, 8, 64, "3d")
    _, before = se(x)
    x[0, 3] = 0.0
    _, after = se(x)
    assert not torch.allclose(before, after)
    with pytest.raises(ValueError, match="squeeze"):
        SEAttention(8, squeeze="max")


def test_eca_zeroing_an_electrode_changes_only_its_scalp_neighbours() -> None:
    labels = list(EEGMMIDB_64)
    order = neighbourhood_order(labels)
    eca = ECAAttention(64, order=order)
    assert eca.kernel_size == 3
    x = _input(1, 64, 40, "3d")
    _, before = eca(x)
    c3 = labels.index("C3")
    x[0, c3] = 0.0
    _, after = eca(x)
    changed = set(torch.nonzero(before[0] != after[0]).flatten().tolist())
    pos = order.index(c3)
    reach = eca.kernel_size // 2
    allowed = {order[p] for p in range(pos - reach, pos + reach + 1) if 0 <= p < 64}
    assert c3 in changed
    assert changed <= allowed
    # and those electrodes are scalp neighbours of C3
    dist = np.linalg.norm(positions(labels) - positions(["C3"]), axis=1)
    nearest = set(np.argsort(dist)[:5].tolist())
    assert allowed <= nearest


def test_eca_kernel_size_rule() -> None:
    expected = {1: 1, 2: 1, 3: 3, 4: 3, 8: 3, 16: 3, 32: 3, 64: 3, 128: 5, 256: 5, 4096: 7}
    assert {c: eca_kernel_size(c) for c in expected} == expected
    assert eca_kernel_size(64, gamma=1, b=1) == 7  # t = 7
    assert eca_kernel_size(5, gamma=0.5, b=1) == 5  # t = 6.6 -> 7, clipped to C = 5
    assert eca_kernel_size(6, gamma=0.5, b=1) == 5  # clipped to the largest odd <= C
    assert ECAAttention(256).kernel_size == 5
    with pytest.raises(ValueError, match="gamma"):
        eca_kernel_size(8, gamma=0)


@given(
    st.integers(1, 5000),
    st.floats(0.25, 8.0, allow_nan=False),
    st.floats(0.0, 8.0, allow_nan=False),
)
@settings(max_examples=200, deadline=None)
def test_eca_kernel_size_is_odd_and_bounded(n: int, gamma: float, b: float) -> None:
    k = eca_kernel_size(n, gamma, b)
    assert k % 2 == 1
    assert 1 <= k <= n
    if n >= 3:
        assert k >= 3
        t = abs(math.log2(n) / gamma + b / gamma)
        largest = n if n % 2 else n - 1
        assert k == min(max(k, 3), largest)
        if 3 < k < largest:
            assert abs(k - t) <= 1.0  # nearest odd


def test_eca_refuses_an_order_that_is_not_a_permutation() -> None:
    with pytest.raises(ValueError, match="permutation"):
        ECAAttention(4, order=[0, 1, 1, 3])


def _consecutive(order: list[int], pos: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pos[order[1:]] - pos[order[:-1]], axis=1)


@pytest.mark.parametrize("labels", [SMALL_8, EEGMMIDB_64, HD_256], ids=["8", "64", "256"])
def test_neighbourhood_order_is_much_shorter_than_random(labels) -> None:
    order = neighbourhood_order(labels)
    assert sorted(order) == list(range(len(labels)))
    pos = positions(labels)
    rng = np.random.default_rng(0)
    random_mean = np.mean(
        [_consecutive(list(rng.permutation(len(labels))), pos).mean() for _ in range(20)]
    )
    ratio = _consecutive(order, pos).mean() / random_mean
    assert ratio < (0.6 if len(labels) == 8 else 0.35)
    assert neighbourhood_order(labels) == order  # deterministic


def test_neighbourhood_order_keeps_scalp_neighbours_together_on_eegmmidb() -> None:
    labels = list(EEGMMIDB_64)
    order = neighbourhood_order(labels)
    pos = positions(labels)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    rank = np.argsort(np.argsort(dist, axis=1), axis=1)  # 0 = itself, 1 = nearest other
    c3 = labels.index("C3")
    i = order.index(c3)
    for j in (i - 1, i + 1):
        if 0 <= j < len(order):
            assert rank[c3, order[j]] <= 4, labels[order[j]]
    steps = [rank[a, b] for a, b in zip(order[:-1], order[1:], strict=True)]
    assert max(steps) <= 8
    # EDF-style labels ("Fc5.", any case) give the same order
    assert neighbourhood_order([lab.lower() + "." for lab in labels]) == order


def test_neighbourhood_order_falls_back_to_identity_for_unknown_labels(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bci_app.nn.attention"):
        order = neighbourhood_order(["C3", "Cz", "EMG1", "C4"])
    assert order == [0, 1, 2, 3]
    assert "cannot place" in caplog.text
    eca = make_attention("eca", 4, labels=["C3", "Cz", "EMG1", "C4"])
    assert eca.order.tolist() == [0, 1, 2, 3]


def test_make_attention_kinds_and_errors() -> None:
    assert isinstance(make_attention("se", 8), SEAttention)
    assert isinstance(make_attention("cbam", 8), CBAMAttention)
    assert isinstance(make_attention("none", 8), NoAttention)
    eca = make_attention("eca", 64, labels=EEGMMIDB_64)
    assert isinstance(eca, ECAAttention)
    assert eca.order.tolist() == neighbourhood_order(EEGMMIDB_64)
    assert make_attention("eca", 8).order.tolist() == list(range(8))
    assert make_attention("se", 64, reduction=8).fc1.out_features == 8
    assert make_attention("se", 3, reduction=4).fc1.out_features == 1
    with pytest.raises(ValueError, match="allowed values: se, eca, cbam, none"):
        make_attention("transformer", 8)
    with pytest.raises(ValueError, match="labels"):
        make_attention("eca", 8, labels=["C3"])


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_attention_rejects_wrong_shapes(kind: str) -> None:
    module = _attention(kind, 8)
    with pytest.raises(ValueError, match="8 electrodes"):
        module(torch.zeros(2, 7, 30))
    with pytest.raises(ValueError, match="4-D"):
        module(torch.zeros(2, 3, 8, 30))
    with pytest.raises(ValueError, match="expected"):
        module(torch.zeros(8, 30))


# --------------------------------------------------------------------------- classifier


def _config(**kwargs) -> ClassifierConfig:
    base = {"n_electrodes": 64, "n_samples": 320, "n_classes": 2, "rate_hz": 160.0}
    return ClassifierConfig(**{**base, **kwargs})


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
@pytest.mark.parametrize("layout", ["3d", "4d"])
@pytest.mark.parametrize("batch", [1, 5])
def test_classifier_shapes(kind: str, layout: str, batch: int) -> None:
    model = EEGClassifier(_config(attention=kind, n_classes=3), channel_labels=EEGMMIDB_64)
    model.eval()
    x = _input(batch, 64, 320, layout) * 20
    probs, weights = model(x)
    assert probs.shape == (batch, 3)
    assert weights.shape == (batch, 64)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(batch))
    logits, weights2 = model.forward_logits(x)
    assert logits.shape == (batch, 3)
    torch.testing.assert_close(torch.softmax(logits, dim=1), probs)
    torch.testing.assert_close(weights2, weights)


def test_classifier_batch_of_one_in_training_mode() -> None:
    model = EEGClassifier(_config()).train()
    logits, weights = model.forward_logits(torch.randn(1, 64, 320) * 20)
    logits.sum().backward()
    assert logits.shape == (1, 2) and weights.shape == (1, 64)


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_classifier_is_deterministic_in_eval_mode(kind: str) -> None:
    model = EEGClassifier(_config(attention=kind, dropout=0.5)).eval()
    x = torch.randn(3, 64, 320) * 20
    a, wa = model(x)
    b, wb = model(x)
    assert torch.equal(a, b) and torch.equal(wa, wb)
    single, _ = model(x[1:2])
    torch.testing.assert_close(single, a[1:2])


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_classifier_is_small(kind: str) -> None:
    model = EEGClassifier(_config(attention=kind))
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_000 < n_params < 10_000  # ~2.3k (none, eca) .. ~4.4k (se, cbam): < 40 kB float32


@given(st.integers(32, 700), st.integers(1, 9))
@settings(max_examples=25, deadline=None)
def test_classifier_handles_any_window_length(n_samples: int, n_electrodes: int) -> None:
    config = ClassifierConfig(
        n_electrodes=n_electrodes, n_samples=n_samples, n_classes=2, rate_hz=128.0
    )
    model = EEGClassifier(config).eval()
    assert model.head.in_features == config.f2 * ((n_samples // 4) // 8)
    probs, weights = model(torch.randn(1, n_electrodes, n_samples))
    assert probs.shape == (1, 2) and weights.shape == (1, n_electrodes)


def test_input_is_divided_by_input_scale() -> None:
    model = EEGClassifier(_config(n_electrodes=8, input_scale_uv=20.0)).eval()
    other = EEGClassifier(_config(n_electrodes=8, input_scale_uv=40.0)).eval()
    state = model.state_dict()
    assert float(state["input_scale_uv"]) == 20.0
    state["input_scale_uv"] = torch.tensor(40.0)
    other.load_state_dict(state)
    x = torch.randn(2, 8, 320) * 20
    torch.testing.assert_close(other(2 * x)[0], model(x)[0])


def test_spatial_filters_are_max_norm_capped() -> None:
    model = EEGClassifier(_config(n_electrodes=8)).eval()
    x = torch.randn(2, 8, 320) * 20
    with torch.no_grad():
        model.spatial.weight.mul_(50.0)  # every filter now far above norm 1
        a, _ = model(x)
        model.spatial.weight.mul_(3.0)
        b, _ = model(x)
    torch.testing.assert_close(a, b)
    uncapped = EEGClassifier(_config(n_electrodes=8, max_norm=None))
    assert uncapped.spatial.max_norm is None


def _time_first_forward(state: dict, config: ClassifierConfig, x: torch.Tensor) -> torch.Tensor:
    """EEGNet's own layer order (temporal conv on every electrode, BN, grouped spatial conv), as
    checkpoints before the space-first layout computed it: logits for ``x (B, C, T)``."""
    import torch.nn.functional as F

    def bn(h: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(
            h, state[f"{name}.running_mean"], state[f"{name}.running_var"],
            state[f"{name}.weight"], state[f"{name}.bias"], training=False,
        )  # fmt: skip

    k = state["temporal.weight"].shape[-1]
    h = bn(F.conv2d((x / config.input_scale_uv).unsqueeze(1), state["temporal.weight"],
                    padding=(0, k // 2)), "bn1")  # fmt: skip
    spatial = torch.renorm(state["spatial.weight"], p=2, dim=0, maxnorm=config.max_norm)
    h = F.avg_pool2d(F.elu(bn(F.conv2d(h, spatial, groups=config.f1), "bn2")), (1, 4))
    h = F.conv2d(F.pad(h, (7, 8)), state["separable_depthwise.weight"], groups=h.shape[1])
    h = F.elu(bn(F.conv2d(h, state["separable_pointwise.weight"]), "bn3"))
    h = F.avg_pool2d(h, (1, 8)).flatten(1)
    return F.linear(h, state["head.weight"], state["head.bias"])


def test_time_first_checkpoints_load_with_the_same_outputs() -> None:
    """An older checkpoint (temporal filters before spatial ones, with ``bn1``) is folded into
    today's space-first layout and gives the logits EEGNet's own order gives."""
    config = _config(n_electrodes=8, attention="none")
    generator = torch.Generator().manual_seed(3)
    state = {k: v.clone() for k, v in EEGClassifier(config).state_dict().items()}
    for key, value in list(state.items()):
        if value.is_floating_point() and value.dim():
            state[key] = torch.randn(value.shape, generator=generator) * 0.5
    f1 = config.f1
    state["bn1.weight"] = torch.randn(f1, generator=generator)
    state["bn1.bias"] = torch.randn(f1, generator=generator)
    state["bn1.running_mean"] = torch.randn(f1, generator=generator)
    state["bn1.running_var"] = torch.rand(f1, generator=generator) + 0.5
    state["bn1.num_batches_tracked"] = torch.tensor(7)
    for name in ("bn2", "bn3"):
        state[f"{name}.running_var"] = state[f"{name}.running_var"].abs() + 0.5
    x = torch.randn(4, 8, 320, generator=generator) * 20
    expected = _time_first_forward(state, config, x)
    model = EEGClassifier(config)
    model.load_state_dict(upgrade_state(state, config))
    with torch.no_grad():
        logits, _ = model.eval().forward_logits(x)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert upgrade_state(model.state_dict(), config).keys() == model.state_dict().keys()


@pytest.mark.parametrize("attention", ["se", "none"])
def test_training_forward_matches_evaluation_filters(attention: str) -> None:
    """Training filters in time through the FFT, evaluation through a convolution: with dropout
    and batch statistics out of the way both give the same output."""
    model = EEGClassifier(_config(n_electrodes=8, attention=attention, dropout=0.0))
    x = torch.randn(6, 8, 320) * 20
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    with torch.no_grad():
        trained, _ = model.forward_logits(x)
        evaluated, _ = model.eval().forward_logits(x)
    torch.testing.assert_close(trained, evaluated, rtol=1e-4, atol=1e-4)


def test_classifier_rejects_wrong_input_shape() -> None:
    model = EEGClassifier(_config())
    with pytest.raises(ValueError, match=r"\(batch, 64, 320\)"):
        model(torch.zeros(2, 320, 64))
    with pytest.raises(ValueError, match=r"\(batch, 64, 320\)"):
        model(torch.zeros(64, 320))
    with pytest.raises(ValueError, match="channel labels"):
        EEGClassifier(_config(), channel_labels=["C3"])


def test_classifier_config_validation_names_the_field() -> None:
    cases = {
        "n_electrodes": 0,
        "n_samples": 31,
        "n_classes": 1,
        "rate_hz": 0.0,
        "attention": "lstm",
        "reduction": 0,
        "f1": 2.5,
        "depth": True,
        "f2": 0,
        "kernel_seconds": float("nan"),
        "dropout": 1.0,
        "input_scale_uv": -1.0,
        "squeeze": "median",
        "max_norm": 0.0,
    }
    for name, value in cases.items():
        with pytest.raises(ValueError, match=name):
            _config(**{name: value})


def test_classifier_config_dict_round_trip() -> None:
    config = _config(attention="eca", rate_hz=250, kernel_seconds=0.125)
    assert config.rate_hz == 250.0 and isinstance(config.rate_hz, float)
    assert config.temporal_kernel == 31  # 0.125 * 250 = 31.25 -> odd 31
    assert _config().temporal_kernel == 41  # 0.25 s at 160 Hz = 40 -> 41
    data = json.loads(json.dumps(config.to_dict()))
    assert ClassifierConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="dropuot: unknown key; allowed keys here: .*dropout"):
        ClassifierConfig.from_dict({**data, "dropuot": 0.1})
    missing = dict(data)
    del missing["n_samples"]
    with pytest.raises(ValueError, match="n_samples: Field required"):
        ClassifierConfig.from_dict(missing)
    with pytest.raises(ValueError, match="frozen"):
        config.f1 = 4  # type: ignore[misc]


def _synthetic(n: int, seed: int, rate: float = 160.0, n_samples: int = 320):
    """Two classes: a 10 Hz rhythm (8 uV) over the left (class 0) or right (1) motor area."""
    rng = np.random.default_rng(seed)
    labels = list(SMALL_8)
    sides = [[labels.index(c) for c in ("FC3", "C3", "CP3")]]
    sides.append([labels.index(c) for c in ("FC4", "C4", "CP4")])
    t = np.arange(n_samples) / rate
    y = np.arange(n) % 2
    x = rng.normal(0.0, 10.0, (n, len(labels), n_samples))
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, (3, 1))
        x[i, sides[y[i]]] += 8.0 * np.sin(2 * np.pi * 10.0 * t + phase)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_training_on_synthetic_rhythm_beats_chance(kind: str) -> None:
    x_train, y_train = _synthetic(64, seed=1)
    x_test, y_test = _synthetic(64, seed=2)
    torch.manual_seed(0)
    model = EEGClassifier(_config(n_electrodes=8, attention=kind), channel_labels=SMALL_8)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        model.train()
        for batch in torch.randperm(64, generator=generator).split(16):
            logits, _ = model.forward_logits(x_train[batch])
            loss = torch.nn.functional.cross_entropy(logits, y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.inference_mode():
        probs, _ = model(x_test)
    accuracy = float((probs.argmax(dim=1) == y_test).float().mean())
    assert accuracy >= 0.85, accuracy


# --------------------------------------------------------------------------- checkpoints


def _metadata(config: ClassifierConfig, labels, classes=None) -> CheckpointMetadata:
    classes = classes or [f"class_{i}" for i in range(config.n_classes)]
    return CheckpointMetadata(
        classes=list(classes),
        channel_labels=list(labels),
        model_rate_hz=config.rate_hz,
        window_s=config.n_samples / config.rate_hz,
        hop_s=0.25,
        dsp=dict(DSP),
        classifier=config.to_dict(),
        training={"files": ["S001R04.edf"], "class_map": {"T1": "left"}, "epochs": 3, "seed": 0},
        metrics={"validation": {"accuracy": np.float64(0.75), "n_trials": np.int64(12)}},
    )


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, EEGClassifier, CheckpointMetadata]:
    config = ClassifierConfig(
        n_electrodes=8, n_samples=320, n_classes=2, rate_hz=160.0, attention="eca"
    )
    model = EEGClassifier(config, channel_labels=SMALL_8)
    model.train()
    model.forward_logits(torch.randn(4, 8, 320) * 20)  # move the BatchNorm statistics
    model.eval()
    metadata = _metadata(config, SMALL_8, ["left_hand", "right_hand"])
    folder = save_checkpoint(tmp_path / "ckpt", model, metadata, render_model_card(metadata))
    return folder, model, metadata


def test_checkpoint_round_trip_gives_identical_outputs(saved) -> None:
    folder, model, metadata = saved
    assert sorted(p.name for p in folder.iterdir()) == [
        "MODEL_CARD.md",
        "metadata.json",
        "model.onnx",
        "model.safetensors",
    ]
    loaded, loaded_meta = load_checkpoint(folder)
    assert not loaded.training
    assert loaded.config == model.config
    assert torch.equal(loaded.attention.order, model.attention.order)
    x = torch.randn(3, 8, 320) * 20
    a, wa = model(x)
    b, wb = loaded(x)
    assert torch.equal(a, b) and torch.equal(wa, wb)
    assert loaded_meta.classes == ["left_hand", "right_hand"]
    assert loaded_meta.metrics["validation"]["n_trials"] == 12
    assert len(loaded_meta.weights_sha256) == 64  # written at save, checked at load
    assert loaded_meta.model_copy(
        update={"weights_sha256": None, "onnx_sha256": None}
    ) == CheckpointMetadata.from_json(metadata.to_json())


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_checkpoint_round_trip_every_attention(tmp_path: Path, kind: str) -> None:
    config = _config(attention=kind)
    model = EEGClassifier(config, channel_labels=EEGMMIDB_64).eval()
    metadata = _metadata(config, EEGMMIDB_64)
    save_checkpoint(tmp_path, model, metadata, "card")
    save_checkpoint(tmp_path, model, metadata, "card")  # overwriting is fine
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    loaded, _ = load_checkpoint(tmp_path, device="auto")
    x = torch.randn(1, 64, 320) * 20
    assert torch.equal(model(x)[0], loaded(x)[0])


class _Payload:
    """Unpickling this creates ``marker``: the kind of code a pickle can run on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle-protocol-0", "pickle-protocol-4"])
def test_pickle_payload_is_refused_without_running_it(saved, tmp_path: Path, how: str) -> None:
    folder, _, _ = saved
    marker = tmp_path / "pwned"
    control = tmp_path / "control"

    def write(path: Path, target: Path) -> None:
        payload = {"temporal.weight": _Payload(target)}
        if how == "torch.save":
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload, protocol=int(how[-1])))

    # positive control: the payload is live when something does unpickle it
    write(tmp_path / "control.bin", control)
    pickle_loaded = (tmp_path / "control.bin").read_bytes()
    if how == "torch.save":
        torch.load(tmp_path / "control.bin", weights_only=False)
    else:
        pickle.loads(pickle_loaded)  # deliberately unsafe: the positive control
    assert control.exists()

    write(folder / "model.safetensors", marker)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_load_never_calls_torch_load(saved, monkeypatch) -> None:
    folder, _, _ = saved

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    load_checkpoint(folder)


@pytest.mark.parametrize("keep", [0, 4, 8, 200, -1])
def test_truncated_weights_are_refused(saved, keep: int) -> None:
    folder, _, _ = saved
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(folder)


def test_weights_with_wrong_architecture_are_refused(saved) -> None:
    folder, _, _ = saved
    meta_path = folder / "metadata.json"
    data = json.loads(meta_path.read_text())
    _arch(data)["f1"] = 4
    meta_path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"does not match the architecture.*temporal.weight"):
        load_checkpoint(folder)
    _arch(data)["f1"] = 8
    _arch(data)["attention"] = "none"
    meta_path.write_text(json.dumps(data))
    with pytest.raises(
        CheckpointError, match="unexpected tensors: attention.conv.weight, attention.order"
    ):
        load_checkpoint(folder)


def test_non_finite_weights_are_refused(saved) -> None:
    folder, model, metadata = saved
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_checkpoint(folder, model, metadata, "card")
    with pytest.raises(CheckpointError, match="head.weight contains NaN"):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("classes"), "classes: Field required"),
        (lambda d: d.update(colour="red"), "colour: unknown key; allowed keys here: channel_"),
        (
            lambda d: d.update(model_rate_hz="160"),
            r"model_rate_hz: Input should be a valid number \(got '160'\)",
        ),
        (lambda d: d.update(model_rate_hz=-1.0), "model_rate_hz: Input should be greater than 0"),
        (lambda d: d.update(classes="left"), "classes: Input should be a valid list"),
        (lambda d: d.update(classes=["left", ""]), "classes.1: String should have at least 1"),
        (
            lambda d: d.update(format_version=FORMAT_VERSION + 1),
            "format_version: .*newer bci-app.*upgrade",
        ),
        (lambda d: d.update(channel_labels=["C3"] * 8), "channel_labels: has duplicates"),
        (lambda d: d["dsp"].pop("notch"), "dsp: lacks notch"),
        (lambda d: d["dsp"].update(notch=55), r"dsp.notch: Input should be 50 or 60 \(got 55\)"),
        (
            lambda d: d["dsp"].update(reference="banana"),
            r"dsp.reference: Input should be 'none' or 'car' \(got 'banana'\)",
        ),
        (lambda d: d["dsp"].update(order=0), "dsp.order: Input should be greater than or equal"),
        (lambda d: d["dsp"].update(bandpass=[30.0, 8.0]), "dsp.bandpass: low edge 30.0 Hz"),
        (lambda d: d["dsp"].update(extra=1), "dsp.extra: unknown key; allowed keys here: band"),
        (lambda d: d.update(training=[]), "training: Input should be a valid dictionary"),
        (lambda d: _arch(d).update(n_classes=3), "classifier.n_classes is 3"),
        (lambda d: _arch(d).update(rate_hz=250.0), "classifier.n_samples|rate_hz"),
        (lambda d: _arch(d).update(dropout=1.0), "classifier.dropout: Input should be less"),
        (lambda d: _arch(d).update(bogus=1), "classifier.bogus: unknown key"),
        (lambda d: d.update(window_s=1.0), "classifier.n_samples"),
    ],
)
def test_bad_metadata_is_refused_naming_the_file_and_the_key(saved, edit, message: str) -> None:
    folder, _, _ = saved
    path = folder / "metadata.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(folder)
    assert str(error.value).startswith(f"{path}: ")


def test_every_metadata_problem_is_reported_at_once(saved) -> None:
    folder, _, _ = saved
    path = folder / "metadata.json"
    data = json.loads(path.read_text())
    data["dsp"]["notch"] = 55
    data["hop_s"] = 0
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: 2 problems")) as error:
        load_checkpoint(folder)
    assert "\n  - hop_s: Input should be greater than 0" in str(error.value)
    assert "\n  - dsp.notch: Input should be 50 or 60" in str(error.value)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", "\udcff"])
def test_corrupt_metadata_json_is_refused(saved, text: str) -> None:
    folder, _, _ = saved
    path = folder / "metadata.json"
    if text == "\udcff":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path.write_text(text)
    with pytest.raises(CheckpointError, match="metadata.json"):
        load_checkpoint(folder)


def test_missing_folder_or_file_is_named(saved, tmp_path: Path) -> None:
    folder, _, _ = saved
    with pytest.raises(CheckpointError, match="does not exist.*must contain model.safetensors"):
        load_checkpoint(tmp_path / "nowhere")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks model.safetensors.*must contain"):
        load_checkpoint(folder)
    (folder / "metadata.json").unlink()
    with pytest.raises(CheckpointError, match="lacks model.safetensors, metadata.json"):
        load_checkpoint(folder)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(CheckpointError, match="not a folder"):
        load_checkpoint(not_a_folder)


def test_save_refuses_metadata_that_does_not_describe_the_model(tmp_path: Path) -> None:
    config = ClassifierConfig(n_electrodes=8, n_samples=320, n_classes=2, rate_hz=160.0)
    model = EEGClassifier(config)
    metadata = _metadata(
        ClassifierConfig(
            n_electrodes=8, n_samples=320, n_classes=2, rate_hz=160.0, attention="cbam"
        ),
        SMALL_8,
    )
    with pytest.raises(CheckpointError, match="does not describe the network"):
        save_checkpoint(tmp_path / "c", model, metadata, "card")
    assert not (tmp_path / "c").exists()


def test_metadata_json_round_trip_with_numpy_values_and_nan() -> None:
    config = ClassifierConfig(n_electrodes=8, n_samples=320, n_classes=2, rate_hz=160.0)
    metadata = _metadata(config, SMALL_8)
    metadata.metrics["chance_95"] = float("nan")
    metadata.metrics["confusion"] = np.array([[3, 1], [0, 4]])
    back = CheckpointMetadata.from_json(metadata.to_json())
    assert back.metrics["confusion"] == [[3, 1], [0, 4]]
    assert math.isnan(back.metrics["chance_95"])
    assert back.classifier == config
    assert set(back.versions) >= {"python", "torch", "numpy", "bci_app"}


def test_stream_compatibility_maps_labels_case_and_dots() -> None:
    config = ClassifierConfig(n_electrodes=3, n_samples=320, n_classes=2, rate_hz=160.0)
    metadata = _metadata(config, ["FC5", "C3", "Cz"])
    stream = ["Cz.", "Fc5.", "Fp1.", "c3.."]
    assert check_stream_compatibility(metadata, stream, 160.0) == [1, 3, 0]


def test_stream_compatibility_errors() -> None:
    config = ClassifierConfig(n_electrodes=3, n_samples=320, n_classes=2, rate_hz=160.0)
    metadata = _metadata(config, ["FC5", "C3", "Cz"])
    with pytest.raises(CheckpointError, match=r"lacks 2 of the model's 3 channels: C3, Cz") as exc:
        check_stream_compatibility(metadata, ["FC5", "C4"], 160.0)
    assert "channels.pick" in str(exc.value)
    with pytest.raises(CheckpointError, match=r"trained at 160 Hz.*model rate is 250 Hz"):
        check_stream_compatibility(metadata, ["FC5", "C3", "Cz"], 250.0)
    with pytest.raises(CheckpointError, match="several channels named Cz"):
        check_stream_compatibility(metadata, ["FC5", "C3", "Cz", "CZ."], 160.0)
    with pytest.raises(CheckpointError) as both:
        check_stream_compatibility(metadata, ["FC5"], 128.0)
    assert "lacks" in str(both.value) and "128 Hz" in str(both.value)


def test_model_card_lists_the_essentials(saved) -> None:
    folder, _, metadata = saved
    metadata.metrics["note"] = "a|b"
    card = render_model_card(metadata, extra="Demo model trained on the simulator.")
    for text in (
        "Demo model trained on the simulator.",
        "`left_hand`",
        "`right_hand`",
        "FC3, FC4, C3, Cz, C4, CP3, CP4, Pz",
        "160 Hz",
        "2 s (320 samples)",
        "1.0 - 40.0 Hz",
        "`eca` electrode attention",
        "| validation.accuracy | 0.75 |",
        "S001R04.edf",
        "| torch |",
        "a\\|b",
    ):
        assert text in card, text
    assert (folder / "MODEL_CARD.md").read_text().startswith("# EEG classifier checkpoint")


def _arch(metadata: dict) -> dict:
    """The network architecture inside a checkpoint's metadata dict."""
    return metadata["decoder"]["params"]["classifier"]


def test_a_checkpoint_from_before_the_resampler_phase_keeps_the_linear_resampler() -> None:
    """Its model was trained through the linear-phase anti-aliasing FIR: that is what it gets."""
    data = json.loads((ROOT / "models" / "sim-motor-imagery" / "metadata.json").read_text())
    assert data["dsp"].pop("resampler_phase") == "minimum"
    assert CheckpointMetadata.model_validate(data).dsp.resampler_phase == "linear"


def test_onnx_saved_with_the_checkpoint_is_used_and_checked(saved, caplog) -> None:
    """The worker runs the graph saved at train time; one that does not compute what the
    weights compute is not used, a damaged one is refused, a missing one is exported."""
    from bci_app.decoders import load_decoder
    from bci_app.infer.worker import OnnxRunner, build_runner
    from bci_app.nn.checkpoint import ONNX_FILE
    from bci_app.nn.export import export_onnx

    folder, model, metadata = saved
    decoder, loaded = load_decoder(folder)
    assert decoder.onnx == (folder / ONNX_FILE).read_bytes() and loaded.onnx_sha256
    assert loaded.format_version == FORMAT_VERSION
    assert f"`{ONNX_FILE}`" in (folder / "MODEL_CARD.md").read_text()
    runner, reason = build_runner(decoder.model, torch.device("cpu"), onnx=decoder.onnx)
    assert isinstance(runner, OnnxRunner) and runner.from_checkpoint and reason is None

    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.weight[0].add_(1.0)  # one logit: a shift of all would not show
    runner, _ = build_runner(decoder.model, torch.device("cpu"), onnx=export_onnx(other))
    assert isinstance(runner, OnnxRunner) and not runner.from_checkpoint
    assert "does not compute what the weights compute" in caplog.text

    (folder / ONNX_FILE).write_bytes(b"\x08\x07not a graph")
    with pytest.raises(CheckpointError, match="changed or damaged after saving"):
        load_decoder(folder)
    (folder / ONNX_FILE).unlink()
    decoder, _ = load_decoder(folder)
    assert decoder.onnx is None


def test_offline_prediction_runs_the_checkpoints_graph_with_the_weights_outputs(
    saved, caplog
) -> None:
    """``evaluate`` and the reports predict through the saved graph (ONNX Runtime), equal to
    torch on the weights; a graph that computes something else is dropped for torch."""
    from bci_app.decoders import load_decoder
    from bci_app.nn.export import export_onnx

    folder, model, _ = saved
    decoder, _ = load_decoder(folder)
    config = decoder.config
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((70, config.n_electrodes, config.n_samples)) * 20).astype(np.float32)
    with torch.inference_mode():
        expected = [t.numpy() for t in decoder.model(torch.from_numpy(x))]
    got = decoder.predict_aligned(x)
    assert decoder._run_graph is not None  # the graph ran, in batches (70 is not a multiple)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)

    stale, _ = load_decoder(folder)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.weight[0].add_(1.0)
    stale.onnx = export_onnx(other)
    got = stale.predict_aligned(x)
    assert stale.onnx is None and "does not compute what the weights compute" in caplog.text
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_classical_checkpoint_saved_over_a_network_drops_its_graph(saved) -> None:
    from bci_app.nn.checkpoint import ONNX_FILE, read_metadata, write_checkpoint

    folder, model, metadata = saved
    write_checkpoint(folder, model.state_dict(), metadata, "card")  # no graph given
    assert not (folder / ONNX_FILE).exists()
    assert read_metadata(folder).onnx_sha256 is None
