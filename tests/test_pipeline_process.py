"""The pipeline in its own process (what the GUI runs): same surface as Pipeline, real child."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import unique_id, wait_until

from bci_app.config import parse_config
from bci_app.gui.banner import stream_warning
from bci_app.gui.window import MainWindow
from bci_app.infer.outlets import OUTLET_SUFFIXES
from bci_app.pipeline import ProcessPipeline, pipeline_selectors
from bci_app.stream.inlet import StreamState
from bci_app.stream.resolve import StreamError


def sim_config(**extra):
    return parse_config({"outlets": {"enabled": False}, "model": {"device": "cpu"}, **extra})


def test_child_pipeline_mirrors_samples_predictions_and_status():
    predictions = []
    pipeline = ProcessPipeline(sim_config(), with_model=True)
    pipeline.add_prediction_sink(predictions.append)
    description = pipeline.start()
    try:
        assert len(description.labels) == 64 and description.rate_hz == 160.0
        assert pipeline.metadata.classes == ["left_hand", "right_hand", "feet", "rest"]
        assert pipeline.trace("filtered").rate_hz == 160.0
        assert wait_until(lambda: len(predictions) >= 3 and pipeline.status() is not None, 30)
        assert pipeline.latest_prediction() is predictions[-1]
        status = pipeline.status()
        assert status.stream.state.value == "live" and status.worker.predicted >= 1
        assert status.filter_delay_s > 0
        # The mirrors hold the child's samples without holes: stamps one period apart.
        for kind in ("raw", "filtered"):
            ring = pipeline.trace(kind).ring
            assert ring.written >= 160
            part = ring.read(ring.written - 160, ring.written)
            assert np.isfinite(part.data).all() and part.data.std() > 0
            np.testing.assert_allclose(np.diff(part.timestamps), 1 / 160, atol=1e-4)
        with pytest.raises(RuntimeError, match="before start"):
            pipeline.add_prediction_sink(print)
    finally:
        started = time.monotonic()
        pipeline.stop()
        assert time.monotonic() - started < 2.5
    assert not pipeline.running and not any(p.is_alive() for p in pipeline._processes)


def test_a_child_without_traces_sends_predictions_and_status_only():
    predictions = []
    pipeline = ProcessPipeline(sim_config(), with_model=True, traces=False)
    pipeline.add_prediction_sink(predictions.append)
    pipeline.start()
    try:
        assert wait_until(lambda: len(predictions) >= 2 and pipeline.status() is not None, 30)
        assert pipeline.trace("raw") is None and pipeline.trace("filtered") is None
    finally:
        pipeline.stop()


def test_recording_from_the_gui_sees_the_childs_outlets_and_markers():
    pipeline = ProcessPipeline(parse_config({"model": {"device": "cpu"}}), with_model=True)
    description = pipeline.start()
    try:
        selectors = {s.source_id for s in pipeline_selectors(pipeline)}
    finally:
        pipeline.stop()
    assert description.source_id in selectors
    assert f"{description.source_id}-markers" in selectors  # the simulator's cue markers
    session = pipeline.config.outlets.session_id  # assigned before the child started
    assert session and {f"bci-app-{suffix}-{session}" for suffix in OUTLET_SUFFIXES} <= selectors


def test_start_errors_of_the_child_are_raised_here():
    config = sim_config(stream={"source_id": unique_id("absent"), "resolve_timeout": 0.5})
    pipeline = ProcessPipeline(config)
    with pytest.raises(StreamError, match="no LSL stream matches"):
        pipeline.start()
    assert not pipeline.running and not any(p.is_alive() for p in pipeline._processes)


def test_a_child_that_dies_is_reported():
    pipeline = ProcessPipeline(sim_config())
    pipeline.start()
    try:
        assert wait_until(lambda: pipeline.status() is not None, 10)
        pipeline._processes[0].kill()
        assert wait_until(lambda: pipeline.error is not None, 5)
        assert "ended unexpectedly" in pipeline.error
        # the last status it received said live: front ends must see the stream is not read
        stream = pipeline.status().stream
        assert stream.state is StreamState.FAILED and "ended unexpectedly" in stream.error
        assert (
            "Stream failed: the pipeline stopped"
            in stream_warning(stream.state, None, stream.error)[1]
        )
    finally:
        pipeline.stop()


def test_the_window_runs_on_a_child_pipeline_and_closes_it(qtbot):
    config = sim_config()
    pipeline = ProcessPipeline(config, with_model=True)
    window = MainWindow(config, pipeline)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.prediction_panel.shown is not None, timeout=40_000)
    latest = pipeline.latest_prediction()
    assert latest is not None
    qtbot.waitUntil(lambda: window.signals_panel.columns_drawn > 0, timeout=5_000)
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.5
    assert not pipeline.running and not any(p.is_alive() for p in pipeline._processes)
