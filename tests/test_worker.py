"""Inference worker: latest-wins under a slow model, stale and flagged windows, budget misses,
CUDA graph / eager selection and CPU fallback, outlets read by a real pylsl inlet."""

from __future__ import annotations

import threading
import time

import numpy as np
import pylsl
import pytest
import torch
from conftest import unique_id

from bci_app.config import BudgetsConfig, OutletsConfig
from bci_app.decoders import NetworkDecoder
from bci_app.dsp.windows import Window
from bci_app.infer import worker as worker_module
from bci_app.infer.latency import STAGE_NAMES, LatencyTracker, StageTimes
from bci_app.infer.outlets import PredictionOutlets
from bci_app.infer.worker import (
    EagerRunner,
    InferenceWorker,
    LatestSlot,
    OnnxRunner,
    build_runner,
)
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE

LABELS = ("C3", "Cz", "C4", "Pz")
CLASSES = ("left_hand", "right_hand")


def small_model() -> EEGClassifier:
    torch.manual_seed(0)
    config = ClassifierConfig(
        n_electrodes=len(LABELS), n_samples=64, n_classes=2, rate_hz=128.0, attention="se"
    )
    return EEGClassifier(config, channel_labels=LABELS).eval()


def window(seq: int, flags: int = 0, age_s: float = 0.0) -> Window:
    now = pylsl.local_clock()
    rng = np.random.default_rng(seq)
    return Window(
        seq=seq,
        start_index=seq * 16,
        data=rng.standard_normal((64, len(LABELS))).astype(np.float32) * 20,
        first_timestamp=now - age_s - 0.5,
        last_timestamp=now - age_s,
        arrival_time=now - age_s + 0.001,
        cut_time=now,
        flags=flags,
    )


class WrappedRunner:
    """Runs ``fn(x)`` in place of a worker's runner (for slow, failing or broken devices)."""

    kind = "test"

    def __init__(self, fn, device: str = "cpu") -> None:
        self.fn, self.device = fn, torch.device(device)

    def __call__(self, x):
        return self.fn(x)


def make_worker(budgets: BudgetsConfig | None = None, **kwargs) -> InferenceWorker:
    return InferenceWorker(
        NetworkDecoder(small_model()),
        CLASSES,
        channel_index=[0, 1, 2, 3],
        device="cpu",
        budgets=budgets or BudgetsConfig(),
        **kwargs,
    )


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    for seq in range(5):
        slot.put(window(seq))
    assert slot.replaced == 4
    assert slot.take(0.01).seq == 4
    assert slot.take(0.01) is None


def test_slow_model_never_builds_a_backlog():
    """Windows come 10x faster than the model: the worker always takes the newest one."""
    worker = make_worker(BudgetsConfig(staleness_ms=10_000.0))
    original = worker.runner

    def slow(x):
        time.sleep(0.02)
        return original(x)

    worker.runner = WrappedRunner(slow)
    seen: list[int] = []
    worker._callbacks.append(lambda p: seen.append(p.seq))
    worker.start()
    try:
        for seq in range(100):
            worker.submit(window(seq))
            time.sleep(0.002)
        time.sleep(0.1)
    finally:
        worker.stop()
    stats = worker.stats()
    assert stats.windows == 100
    assert stats.predicted == len(seen) < 30
    assert stats.replaced >= 100 - len(seen) - 1
    assert seen == sorted(seen) and seen[-1] == 99


def test_flagged_and_stale_windows_are_counted_not_classified():
    worker = make_worker(BudgetsConfig(staleness_ms=100.0))
    assert worker.process(window(0, flags=FLAG_GAP)) is None
    assert worker.process(window(1, flags=FLAG_NONFINITE)) is None
    assert worker.process(window(2, age_s=0.5)) is None
    prediction = worker.process(window(3))
    stats = worker.stats()
    assert (stats.skipped_flagged, stats.dropped_stale, stats.predicted) == (2, 1, 1)
    assert prediction.class_name in CLASSES
    assert prediction.probabilities.shape == (2,)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert prediction.weights.shape == (len(LABELS),)
    assert set(prediction.latency_ms) == set(STAGE_NAMES)


def test_connection_backlog_is_classified_but_kept_out_of_the_latency_figures():
    """Windows whose newest sample came in the inlet's first pull (liblsl buffered it while the
    app started) are predicted, even when old, but their latency is not the app's."""
    worker = make_worker(BudgetsConfig(staleness_ms=100.0))
    backlog = [window(k, age_s=0.3 - 0.1 * k) for k in range(3)]  # up to 300 ms old
    worker.backlog_until = backlog[-1].arrival_time
    for w in backlog:
        assert worker.process(w) is not None
    live = worker.process(window(3))
    stats = worker.stats()
    assert stats.backlog_windows == 3 and stats.dropped_stale == 0 and stats.predicted == 4
    assert stats.latency_ms["e2e"]["max"] < 100.0  # only the live window was recorded
    assert live.latency_ms["e2e"] < 100.0
    assert worker.stats().budget_misses["total"] == 0


def test_worker_output_equals_the_model_on_reordered_channels():
    model = small_model()
    worker = InferenceWorker(NetworkDecoder(model), CLASSES, [2, 0, 3, 1], "cpu", BudgetsConfig())
    w = window(7)
    prediction = worker.process(w)
    with torch.inference_mode():
        expected, weights = model(torch.from_numpy(w.data[:, [2, 0, 3, 1]].T.copy()).unsqueeze(0))
    np.testing.assert_allclose(prediction.probabilities, expected[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(prediction.weights, weights[0].numpy(), rtol=1e-6)


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [2, 0, 3, 1]])
def test_a_batch_of_windows_gets_the_decisions_of_one_window_at_a_time(order):
    """Fast replay's batch path (identity and reordered electrodes) equals the live path."""
    worker = InferenceWorker(NetworkDecoder(small_model()), CLASSES, order, "cpu", BudgetsConfig())
    windows = [window(seq) for seq in range(5)]
    batched = worker.classify_batch(windows)
    for w, together in zip(windows, batched, strict=True):
        alone = worker.classify(w)
        assert together.seq == alone.seq == w.seq
        np.testing.assert_allclose(together.probabilities, alone.probabilities, atol=1e-6)
        np.testing.assert_allclose(together.weights, alone.weights, atol=1e-6)
    assert worker.classify_batch([]) == []


def test_budget_misses_are_counted_with_their_stage():
    tracker = LatencyTracker(total_budget_ms=10.0, inference_budget_ms=2.0)
    base = 100.0
    tracker.record(
        StageTimes(base, base + 0.001, base + 0.002, base + 0.002, base + 0.003, base + 0.0031)
    )
    tracker.record(
        StageTimes(base, base + 0.001, base + 0.002, base + 0.002, base + 0.020, base + 0.021)
    )
    tracker.record(
        StageTimes(base, base + 0.030, base + 0.031, base + 0.031, base + 0.032, base + 0.032)
    )
    misses = tracker.misses()
    assert misses["inference"] == 1
    assert misses["total"] == 2
    assert misses["total_by_stage"]["inference"] == 1
    assert misses["total_by_stage"]["acquire"] == 1
    p = tracker.percentiles()
    assert p["e2e"]["max"] == pytest.approx(32.0)


def test_model_exception_on_one_window_is_counted_and_not_fatal():
    worker = make_worker()
    original = worker.runner
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("bad window")
        return original(x)

    worker.runner = WrappedRunner(flaky)
    assert worker.process(window(0)) is None
    assert worker.process(window(1)) is not None
    assert worker.stats().errors == 1


def test_cpu_gets_onnx_runtime_with_the_same_outputs_as_torch():
    model = small_model().fold_max_norm()
    runner, reason = build_runner(model, torch.device("cpu"))
    assert isinstance(runner, OnnxRunner) and reason is None
    eager, _ = build_runner(model, torch.device("cpu"), cpu_runtime="torch")
    assert isinstance(eager, EagerRunner)
    for seq in range(3):
        x = window(seq).data.T.copy()
        probs, weights = runner(x)
        expected_probs, expected_weights = eager(x)
        np.testing.assert_allclose(probs, expected_probs, atol=1e-5)
        np.testing.assert_allclose(weights, expected_weights, atol=1e-5)


def test_folding_the_max_norm_keeps_outputs():
    model = small_model()
    capped = [m for m in model.modules() if getattr(m, "max_norm", None)]
    assert capped
    with torch.no_grad():
        for module in capped:
            module.weight.mul_(10.0)  # well above the cap, so the renorm really acts
    x = torch.from_numpy(window(1).data.T.copy()).unsqueeze(0)
    with torch.inference_mode():
        before = model(x)
        model.fold_max_norm()
        after = model(x)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_graph_capture_failure_falls_back_to_eager_with_a_reason(monkeypatch):
    # No GPU here: stand in for a capture failure and a CUDA device (the only mock in this file).
    class FailingCapture:
        def __init__(self, model, device):
            raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(worker_module, "CudaGraphRunner", FailingCapture)
    monkeypatch.setattr(worker_module, "EagerRunner", lambda model, device: ("eager", device))
    runner, reason = build_runner(small_model(), torch.device("cuda"))
    assert runner == ("eager", torch.device("cuda"))
    assert "CUDA graph capture failed" in reason and "running eager" in reason


def test_cuda_failure_moves_the_worker_to_the_cpu_and_keeps_going():
    worker = make_worker()

    def broken_gpu(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 MiB")

    worker.runner = WrappedRunner(broken_gpu, device="cuda")
    prediction = worker.process(window(0))
    assert prediction is not None and prediction.device == "cpu"
    assert "OutOfMemoryError" in worker.stats().fallback


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_matches_eager_on_gpu():
    model = small_model()
    runner, reason = build_runner(model, torch.device("cuda"))
    assert reason is None and runner.kind == "cuda-graph"
    x = window(3).data.T.copy()
    eager = EagerRunner(small_model(), torch.device("cpu"))
    for _ in range(3):
        probs, weights = runner(x)
    expected_probs, expected_weights = eager(x)
    np.testing.assert_allclose(probs, expected_probs, atol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)


def test_outlets_are_readable_by_a_real_inlet_with_labels():
    prefix = unique_id("bci-test")
    outlets = PredictionOutlets(
        OutletsConfig(name_prefix=prefix, source_id_prefix=prefix), CLASSES, LABELS
    )
    streams = {}
    for suffix in ("predictions", "electrode-weights", "latency"):
        found = pylsl.resolve_byprop("source_id", f"{prefix}-{suffix}", 1, 5.0)
        assert found, suffix
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(5.0)
        streams[suffix] = inlet
    time.sleep(0.2)
    stamp = pylsl.local_clock()
    outlets.push_decision(stamp, np.array([0.2, 0.8], np.float32), np.array([0.1, 0.2, 0.3, 0.4]))
    outlets.push_latency(stamp, dict.fromkeys(STAGE_NAMES, 1.5))
    sample, ts = streams["predictions"].pull_sample(timeout=5.0)
    assert sample == pytest.approx([0.2, 0.8, 1.0]) and ts == pytest.approx(stamp, abs=1e-6)
    sample, _ = streams["electrode-weights"].pull_sample(timeout=5.0)
    assert sample == pytest.approx([0.1, 0.2, 0.3, 0.4])
    sample, _ = streams["latency"].pull_sample(timeout=5.0)
    assert sample == pytest.approx([1.5] * len(STAGE_NAMES))

    def labels(inlet):
        node = inlet.info(5.0).desc().child("channels").child("channel")
        out = []
        while not node.empty():
            out.append(node.child_value("label"))
            node = node.next_sibling("channel")
        return out

    assert labels(streams["predictions"]) == [*CLASSES, "class_index"]
    assert labels(streams["electrode-weights"]) == list(LABELS)
    assert labels(streams["latency"]) == list(STAGE_NAMES)


def test_stop_joins_within_two_seconds():
    worker = make_worker()
    worker.start()
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 2.0
    assert "bci-infer" not in {t.name for t in threading.enumerate()}


def test_keep_warm_runs_once_just_before_each_expected_window():
    warm = worker_module.KeepWarm(lead_s=0.003)
    assert warm.wait_s(0.0, 0.05) == 0.05 and not warm.take_due(0.0)  # nothing learnt yet
    for k in range(4):
        warm.arrived(0.1 * k)
    assert warm.wait_s(0.31, 1.0) == pytest.approx(0.4 - 0.003 - 0.31)
    assert warm.wait_s(0.31, 0.05) == 0.05  # never longer than the stop check allows
    assert not warm.take_due(0.39)
    assert warm.take_due(0.398) and not warm.take_due(0.399)  # once per interval
    assert warm.wait_s(0.399, 0.05) == 0.05
    irregular = worker_module.KeepWarm(min_interval_s=0.02)
    for t in (0.0, 0.005, 0.01, 0.015):  # faster than a warm run pays for
        irregular.arrived(t)
    assert not irregular.take_due(1.0)


def test_paced_worker_keeps_warm_without_touching_predictions_or_adaptation():
    """Windows every 50 ms: the worker runs the model once between each, the predictions
    are those of a worker that does not."""
    cold = make_worker(keep_warm=False)
    warm = make_worker()
    assert cold.keep_warm is None and warm.keep_warm is not None
    assert make_worker(cpu_runtime="torch").keep_warm is None  # eager: measured no gain
    seen: list = []
    warm._callbacks.append(seen.append)
    warm.start()
    try:
        for seq in range(8):
            warm.submit(window(seq))
            time.sleep(0.05)
    finally:
        warm.stop()
    assert warm.stats().warm_runs >= 4
    assert [p.seq for p in seen] == list(range(8))
    for prediction in seen:
        expected = cold.classify(window(prediction.seq))
        np.testing.assert_allclose(prediction.probabilities, expected.probabilities, atol=1e-6)
