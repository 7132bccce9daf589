"""The whole spine on real LSL: simulator or outlet -> inlet -> dsp -> windows."""

from __future__ import annotations

import threading
import time

import numpy as np
from conftest import unique_id, wait_until

from bci_app.config import parse_config
from bci_app.io.montage import channel_set
from bci_app.pipeline import Pipeline
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.stream.inlet import StreamState
from bci_app.stream.ring import FLAG_GAP


def collect(pipeline: Pipeline):
    windows, lock = [], threading.Lock()

    def sink(window):
        with lock:
            windows.append(window)

    pipeline.add_sink(sink)
    return windows


def test_default_config_runs_the_embedded_simulator_into_windows():
    config = parse_config(
        {
            "simulator": {"channels": 8, "rate": 500.0},
            "model_rate": 250.0,
            "windows": {"length": 0.5, "hop": 0.1},
        }
    )
    pipeline = Pipeline(config)
    windows = collect(pipeline)
    with pipeline:
        assert pipeline.simulator is not None
        assert pipeline.description.labels == channel_set(8)
        assert pipeline.description.source_id == pipeline.simulator.source_id
        assert wait_until(lambda: len(windows) >= 10, 8.0)
        status = pipeline.status()
    assert status.stream.state is StreamState.LIVE
    assert [w.seq for w in windows[:10]] == list(range(10))
    for w in windows[:10]:
        assert w.data.shape == (125, 8)
        assert w.start_index == 25 * w.seq
        assert w.usable
        assert w.first_timestamp < w.last_timestamp <= w.arrival_time + 1e-3
        # The window is cut right after its newest sample arrived.
        assert w.cut_time - w.arrival_time < 0.1
    # Minimum-phase resampler FIR (a few ms in the EEG bands) plus the band-pass and notch.
    assert status.filter_delay_s == pipeline.stage.delay_seconds
    assert 0.005 < status.filter_delay_s < 0.03
    delays = status.filter_delays
    assert set(delays.group_delay_ms) == {"10", "20"}
    assert abs(max(delays.group_delay_ms.values()) - status.filter_delay_s * 1e3) < 0.01
    assert 0.0 < delays.settling_s < 3.0


def test_nan_burst_from_the_source_flags_windows_but_keeps_running():
    config = parse_config(
        {
            "simulator": {"channels": 8, "rate": 250.0},
            "model_rate": 250.0,
            "windows": {"length": 0.4, "hop": 0.2},
        }
    )

    def nan_burst(first: int, chunk: np.ndarray) -> None:
        if 250 <= first < 260:
            chunk[:, 2] = np.nan

    simulator = SimulatorStream(SimulatorSettings.from_config(config), inject=nan_burst)
    pipeline = Pipeline(config, simulator=simulator)
    windows = collect(pipeline)
    with pipeline:
        assert wait_until(lambda: len(windows) >= 12, 8.0)
        health = pipeline.status().stream
    assert health.nonfinite_samples > 0
    flagged = [w for w in windows if w.has_nonfinite]
    assert flagged
    assert all(np.isfinite(w.data).all() for w in windows)
    assert any(w.usable for w in windows if w.start_index > max(f.start_index for f in flagged))


def test_source_killed_and_restarted_windows_never_stitch_both_sides(outlet_factory):
    sid = unique_id("amp")
    config = parse_config(
        {
            "stream": {"source_id": sid, "resolve_timeout": 3.0},
            "model_rate": 250.0,
            "windows": {"length": 0.4, "hop": 0.1},
            "health": {"stale_after": 0.2, "recover_after": 0.6, "lost_after": 5.0},
            "filters": {"bandpass": [1.0, 40.0], "notch": None},
        }
    )
    first = outlet_factory(source_id=sid)
    first.start()
    pipeline = Pipeline(config)
    windows = collect(pipeline)
    with pipeline:
        assert wait_until(lambda: len(windows) >= 5, 5.0)
        first.stop()
        assert wait_until(lambda: pipeline.status().stream.state is StreamState.RECOVERING, 3.0)
        outlet_factory(source_id=sid).start()
        assert wait_until(lambda: pipeline.status().stream.reconnects == 1, 8.0)
        before = len(windows)
        assert wait_until(lambda: len(windows) >= before + 8, 5.0)
    gap_windows = [w for w in windows if w.has_gap]
    assert gap_windows, "windows spanning the reconnect must be flagged"
    # Every window either lies on one side of the reconnect or is flagged.
    model_ring = pipeline.stage.ring
    held = model_ring.read(model_ring.oldest, model_ring.written)
    gaps = np.flatnonzero(held.flags & FLAG_GAP)
    assert len(gaps) == 1
    boundary = held.start + int(gaps[0])
    for w in windows:
        spans = w.start_index < boundary < w.start_index + w.data.shape[0]
        assert not spans or w.has_gap
    assert windows[-1].usable


def test_stop_joins_every_thread_within_two_seconds():
    pipeline = Pipeline(
        parse_config({"simulator": {"channels": 8, "rate": 250.0}, "model_rate": 250.0})
    )
    pipeline.start()
    time.sleep(0.3)
    started = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - started < 2.0
    names = {t.name for t in threading.enumerate()}
    assert not names & {"bci-inlet", "bci-dsp"}
