"""The Qt GUI on a real simulated LSL stream (offscreen), plus a screenshot under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from conftest import unique_id

from bci_app.bench.latency import make_checkpoint
from bci_app.config import AppConfig, parse_config
from bci_app.gui.common import Frame
from bci_app.gui.decimate import column_extremes, draw_spans, pack_argb
from bci_app.gui.feeds import MarkerReader
from bci_app.gui.weights import MEAN, SORTED
from bci_app.gui.window import MainWindow
from bci_app.io.montage import EEGMMIDB_64
from bci_app.pipeline import Pipeline
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.train.commands import simulated_recording, train_command

CLASSES = ["left_hand", "right_hand", "feet", "rest"]
PIPELINE_THREADS = {"bci-inlet", "bci-dsp", "bci-infer"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) checkpoint for the simulator's 64 channels at 160 Hz: the GUI
    only needs predictions and weights of the right shape, not good ones."""
    return make_checkpoint(tmp_path_factory.mktemp("gui-model") / "model", EEGMMIDB_64, 160.0)


def sim_config(**sections: dict) -> AppConfig:
    """The embedded 64-channel simulator, on the CPU, without prediction outlets."""
    data = {
        "simulator": {"channels": 64, "rate": 160.0},
        "model": {"device": "cpu"},
        "outlets": {"enabled": False},
        "gui": {"refresh_hz": 30.0, "trace_seconds": 5.0},
    }
    data.update(sections)
    return parse_config(data)


def open_window(qtbot, config: AppConfig, pipeline: Pipeline) -> MainWindow:
    window = MainWindow(config, pipeline)
    qtbot.addWidget(window)
    window.show()
    return window


def pipeline_threads() -> set[str]:
    return {t.name for t in threading.enumerate()} & PIPELINE_THREADS


def test_panels_update_from_a_simulated_stream(qtbot, model_dir: Path) -> None:
    config = sim_config()
    pipeline = Pipeline(config, with_model=True, model_path=model_dir)
    window = open_window(qtbot, config, pipeline)
    qtbot.waitUntil(lambda: window.prediction_panel.shown is not None, timeout=20_000)
    qtbot.waitUntil(lambda: bool(window.markers and window.markers.snapshot(0.0)), timeout=8_000)
    qtbot.wait(300)  # a few more frames with the cue inside the shown time

    assert window.running
    shown = window.prediction_panel.shown
    assert window.prediction_panel.class_label.text() in CLASSES
    np.testing.assert_allclose(window.prediction_panel.bar_values(), shown.probabilities)
    assert window.prediction_panel.curves[0].getData()[0].size >= 1
    # Traces: 64 channels drawn as min/max strokes into one image the size of the plot.
    signals = window.signals_panel
    pixels = signals.traces.pixels
    assert pixels is not None and pixels.shape[1] == signals.columns_drawn
    assert signals.columns_drawn == round(signals.plot.getViewBox().width())
    lit = pixels != 0
    width = lit.shape[1]
    assert lit.any(axis=0)[int(0.6 * width) : int(0.97 * width)].all()  # the newest 2 s
    assert 0.01 < lit.mean() < 0.5  # lines, not a filled area
    assert len(np.unique(pixels)) == 5  # 4 trace colours + background
    assert any(line.isVisible() for line in signals.marker_lines)  # the simulator's cues
    # Latency: numbers in the table, fixed delays as text.
    for stage in ("inference", "e2e"):
        for column in ("p50", "p99"):
            assert float(window.latency_panel.cell(stage, column)) >= 0.0
    assert "filter" in window.latency_panel.fixed.text()
    assert "window 2 s" in window.latency_panel.fixed.text()
    assert window.stream_panel.state.text() == "live"
    assert "acquisition at " in window.stream_panel.source.toolTip()
    assert window.banner_text() == ""
    assert window.frame_errors == 0
    assert window.frame_ms and np.median(window.frame_ms) < 100


def test_weight_bars_match_the_latest_prediction(qtbot, model_dir: Path) -> None:
    config = sim_config()
    pipeline = Pipeline(config, with_model=True, model_path=model_dir)
    window = open_window(qtbot, config, pipeline)
    qtbot.waitUntil(lambda: len(window.feed.since(0.0)) >= 3, timeout=20_000)
    pipeline.stop()  # freeze the latest prediction; the window keeps drawing what is there
    window.refresh()

    latest = pipeline.latest_prediction()
    panel = window.weights_panel
    assert panel.shown_seq == latest.seq
    assert panel.bar_labels() == list(pipeline.metadata.channel_labels)
    np.testing.assert_allclose(panel.bar_heights(), latest.weights, rtol=1e-6)

    panel.order.setCurrentText(SORTED)
    window.refresh()
    by_label = dict(zip(pipeline.metadata.channel_labels, latest.weights, strict=True))
    heights = panel.bar_heights()
    assert np.all(np.diff(heights) <= 0)
    np.testing.assert_allclose(heights, [by_label[label] for label in panel.bar_labels()])

    panel.order.setCurrentIndex(0)
    panel.mode.setCurrentText(MEAN)
    window.refresh()
    recent = np.stack([p.weights for p in window.feed.since(0.0)])
    np.testing.assert_allclose(panel.bar_heights(), recent.mean(axis=0), rtol=1e-5)
    assert len(panel.scatter.data) == len(EEGMMIDB_64)  # the head map
    assert window.frame_errors == 0

    # The trace strip is scrolled and only its newest columns redrawn each frame: the same
    # pixels as drawing everything again.
    signals, now = window.signals_panel, pylsl.local_clock()
    signals.update_frame(Frame(now=now, pipeline=pipeline))
    scrolled = signals.traces.pixels.copy()
    signals.invalidate()
    signals.update_frame(Frame(now=now, pipeline=pipeline))
    assert signals.columns_redrawn == signals.columns_drawn
    assert (scrolled != 0).mean() > 0.01
    assert (scrolled == signals.traces.pixels).mean() > 0.999


def test_a_classical_checkpoint_runs_in_the_window_with_its_weights_explained(
    qtbot, tmp_path: Path
) -> None:
    """An MDM checkpoint trained on the simulator goes through the same pipeline and window:
    its electrode weights are drawn, and the panel says which decoder gave them and what
    they mean."""
    config = sim_config()
    settings = SimulatorSettings.from_config(config)
    checkpoint = tmp_path / "mdm"
    train_command(
        [simulated_recording(settings, 240.0)],
        CLASSES,
        checkpoint,
        config,
        decoder="mdm",
        progress=False,
    )
    pipeline = Pipeline(config, with_model=True, model_path=checkpoint)
    window = open_window(qtbot, config, pipeline)
    qtbot.waitUntil(lambda: len(window.feed.since(0.0)) >= 3, timeout=20_000)
    pipeline.stop()
    window.refresh()
    latest = pipeline.latest_prediction()
    panel = window.weights_panel
    assert panel.title() == "Electrode weights (mdm)"
    assert "log-maps of the class means" in panel.toolTip()
    np.testing.assert_allclose(panel.bar_heights(), latest.weights, rtol=1e-6)
    assert max(panel.bar_heights()) == pytest.approx(1.0)
    assert window.frame_errors == 0
    window.close()


def test_closing_the_window_joins_every_thread_within_2_s(qtbot, model_dir: Path) -> None:
    config = sim_config()
    pipeline = Pipeline(config, with_model=True, model_path=model_dir)
    window = open_window(qtbot, config, pipeline)
    qtbot.waitUntil(lambda: window.prediction_panel.shown is not None, timeout=20_000)
    assert pipeline_threads() == PIPELINE_THREADS

    started = time.monotonic()
    window.close()
    deadline = started + 2.0
    while pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pipeline_threads() == set(), "pipeline threads alive 2 s after close"
    assert time.monotonic() - started < 2.0
    names = {t.name for t in threading.enumerate()}
    assert not names & {"bci-gui-markers", "bci-gui-start"}
    assert not window.timer.isActive()


def test_a_missing_stream_is_shown_and_the_window_stays_usable(qtbot) -> None:
    config = sim_config(stream={"source_id": unique_id("no-such-stream"), "resolve_timeout": 0.5})
    window = open_window(qtbot, config, Pipeline(config))
    qtbot.waitUntil(lambda: "no LSL stream matches" in window.banner_text(), timeout=15_000)
    assert "Stream not available" in window.banner_text()
    assert "What to do" in window.banner_text()
    assert not window.running and window.start_action.isEnabled()
    assert window.frame_errors == 0

    # Still usable: connect the built-in simulator from the stream panel.
    window.stream_panel.picker.setCurrentIndex(0)
    window.stream_panel.connect_button.click()
    # The pipeline starts in its own process (imports torch): seconds on a busy 2-core box.
    qtbot.waitUntil(lambda: window.stream_panel.state.text() == "live", timeout=30_000)
    assert window.banner_text() == ""
    assert window.stop_action.isEnabled() and not window.start_action.isEnabled()


def test_model_and_config_errors_are_shown_with_what_to_do(
    qtbot, model_dir: Path, tmp_path: Path
) -> None:
    config = sim_config(simulator={"channels": 8, "rate": 160.0})  # the model needs 64
    window = open_window(qtbot, config, Pipeline(config, with_model=True, model_path=model_dir))
    qtbot.waitUntil(lambda: "does not fit" in window.banner_text(), timeout=10_000)
    assert "the stream lacks 56 of the model's 64 channels" in window.banner_text()
    assert not window.running and not window.starting and not pipeline_threads()

    bad = tmp_path / "bad.yaml"
    bad.write_text("gui:\n  refresh_hz: 30\n  colour: red\n")
    assert not window.open_config(bad)
    assert "Configuration not loaded" in window.banner_text()
    assert "gui.colour: unknown key" in window.banner_text()
    window.banner.close_button.click()
    assert window.banner_text() == ""
    assert window.start_action.shortcut().toString() == "Ctrl+R"
    assert window.stop_action.shortcut().toString() == "Ctrl+."


def test_a_killed_stream_shows_stale_then_recovering(qtbot) -> None:
    config = sim_config(health={"stale_after": 0.3, "recover_after": 1.0, "lost_after": 30.0})
    simulator = SimulatorStream(SimulatorSettings.from_config(config))
    pipeline = Pipeline(config, simulator=simulator)
    window = open_window(qtbot, config, pipeline)
    qtbot.waitUntil(lambda: window.stream_panel.state.text() == "live", timeout=10_000)

    simulator.stop()  # the amplifier's outlet disappears
    qtbot.waitUntil(
        lambda: window.stream_panel.state.text() in ("stale", "recovering"), timeout=5_000
    )
    text = window.banner_text()
    assert "Stream stale" in text or "Stream recovering" in text
    assert "the app" in text  # says what happens next
    qtbot.waitUntil(lambda: window.stream_panel.state.text() == "recovering", timeout=5_000)
    assert window.frame_errors == 0
    window.stop_pipeline()
    assert window.stream_panel.state.text() == "stopped"
    assert window.start_action.isEnabled()
    # While recovering, the inlet thread can sit in a stream resolve (0.5 s + 1 s listing what
    # is visible) that does not look at its stop flag: give it longer than the 2 s of a close.
    deadline = time.monotonic() + 5.0
    while pipeline_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pipeline_threads()


def test_marker_reader_reads_a_string_marker_stream() -> None:
    source_id = unique_id("markers")
    info = pylsl.StreamInfo("test-markers", "Markers", 1, 0, pylsl.cf_string, source_id)
    outlet = pylsl.StreamOutlet(info)
    reader = MarkerReader(source_id)
    try:
        deadline = time.monotonic() + 10
        while not reader.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.connected
        time.sleep(0.3)  # the inlet is open; let it settle before pushing
        stamp = pylsl.local_clock()
        outlet.push_sample(["feet"], stamp)
        while not reader.markers and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reader.snapshot(stamp - 1.0) == [(pytest.approx(stamp, abs=1e-3), "feet")]
        assert reader.snapshot(stamp + 1.0) == []
    finally:
        reader.stop()
        del outlet
    assert not reader.running


def test_minmax_decimation_keeps_extremes_at_two_values_per_pixel() -> None:
    rng = np.random.default_rng(0)
    n, channels, width = 10_007, 3, 300
    x = np.linspace(0, width, n, endpoint=False)  # ~33 samples per pixel column
    y = np.cumsum(rng.standard_normal((n, channels)), axis=0, dtype=np.float32)
    y[1234, 0], y[8000, 2] = 1e4, -1e4  # single-sample spikes must survive
    low, high = column_extremes(x, y, width)
    assert low.shape == high.shape == (width, channels)  # 2 values per pixel per channel
    np.testing.assert_allclose(np.nanmax(high, axis=0), y.max(axis=0))
    np.testing.assert_allclose(np.nanmin(low, axis=0), y.min(axis=0))
    assert high[int(x[1234]), 0] == 1e4 and low[int(x[8000]), 2] == -1e4
    column = np.floor(x).astype(int)  # every sample lies inside its column's stroke
    assert np.all(low[column] <= y) and np.all(y <= high[column])
    # Sparse samples (fewer than columns): the line is interpolated across empty columns.
    xs = np.array([0.5, 10.5])
    low, high = column_extremes(xs, np.array([[0.0], [10.0]]), 12)
    np.testing.assert_allclose(low[1:10, 0], np.arange(0.5, 9.5))
    np.testing.assert_allclose(high[1:10, 0], np.arange(1.5, 10.5))
    assert np.isnan(low[11, 0]) and low[0, 0] == 0.0

    # Painted: column j from row floor(low) to floor(high), in the channel's colour.
    colors = pack_argb([(255, 0, 0), (0, 255, 0)])
    image = draw_spans(
        np.array([[1.2, 5.0], [np.nan, 0.0]]), np.array([[3.9, 5.5], [np.nan, 9.0]]), 8, colors
    )
    assert image.shape == (8, 2)
    assert [int(v) for v in image[:, 0]] == [0, colors[0], colors[0], colors[0], 0, colors[1], 0, 0]
    assert np.all(image[:, 1] == colors[1])  # clipped to the 8 rows
    assert int(colors[0]) == 0xFFFF0000  # QImage.Format_ARGB32: opaque red


@pytest.mark.slow
def test_screenshot_under_xvfb_is_a_real_render(qapp, model_dir: Path, tmp_path: Path) -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb and the libxcb-* Qt needs)")
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as displayfd:
            display = displayfd.readline().strip()  # Xvfb picks a free display number
        assert display, "Xvfb did not report a display"
        out = tmp_path / "gui.png"
        env = {**os.environ, "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb"}
        code = (
            "from bci_app.gui.app import run_gui; "
            f"raise SystemExit(run_gui(None, {str(model_dir)!r}, {str(out)!r}, 4.0))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        xvfb.terminate()
        xvfb.wait(5)
    assert result.returncode == 0, result.stderr[-3000:]
    from PyQt5 import QtGui

    image = QtGui.QImage(str(out)).convertToFormat(QtGui.QImage.Format_RGB32)
    assert image.width() >= 800 and image.height() >= 500
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    pixels = np.frombuffer(pointer, dtype=np.uint32).reshape(image.height(), -1)
    colours = np.unique(pixels[:, : image.width()])
    assert colours.size >= 200, f"only {colours.size} distinct colours: not a real render"
