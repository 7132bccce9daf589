"""``bci-app bench gui``: GUI frame time, and what an open GUI costs the pipeline.

1. Headless: the pipeline (embedded 64-channel 160 Hz simulator -> inlet -> dsp -> inference
   worker, hop 0.1 s) runs for ``duration`` seconds; e2e latency (newest sample's timestamp ->
   prediction emitted) is collected by a prediction sink, skipping the first second.
2. GUI: the same pipeline with the main window open (offscreen Qt, 1600 x 1000 px, 64 channels x
   5 s of traces), run as the app runs: the pipeline in its own process (``gui.separate_process``),
   the Qt event loop and the window's timer at ``gui.refresh_hz``. A frame is ``refresh()``
   (snapshot, ring reads, decimation, item updates) plus the paint events of the plots that
   follow it.

Goals: frame p99 <= 33 ms; e2e p99 with the GUI <= 1.5 x headless. Without ``model_path`` an
untrained checkpoint of the right shape is used (inference cost does not depend on the weights).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from bci_app.config import AppConfig, parse_config
from bci_app.infer.latency import summarize_ms
from bci_app.infer.worker import Prediction
from bci_app.pipeline import Pipeline, make_pipeline

FRAME_GOAL_MS = 33.0
E2E_GOAL_RATIO = 1.5
WARMUP_S = 1.0  # predictions in the first second after the first one are not counted
WINDOW_SIZE = (1600, 1000)


def bench_config() -> AppConfig:
    return parse_config(
        {
            "simulator": {"channels": 64, "rate": 160.0},
            "windows": {"length": 2.0, "hop": 0.1},
            "model": {"device": "cpu"},
            "outlets": {"enabled": False},
            "gui": {"refresh_hz": 30.0, "trace_seconds": 5.0},
        }
    )


class _E2E:
    """Prediction sink: e2e latency (ms) of each prediction after the warm-up."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._first: float | None = None
        self._lock = threading.Lock()

    def __call__(self, prediction: Prediction) -> None:
        now = time.monotonic()
        with self._lock:
            if self._first is None:
                self._first = now
            if now - self._first >= WARMUP_S:
                self.values.append(prediction.latency_ms["e2e"])


def _headless(config: AppConfig, model_path: Path, duration: float) -> list[float]:
    pipeline = Pipeline(config, with_model=True, model_path=model_path)
    e2e = _E2E()
    pipeline.add_prediction_sink(e2e)
    pipeline.start()
    try:
        time.sleep(duration + WARMUP_S + config.windows.length)
    finally:
        pipeline.stop()
    return e2e.values


def _with_gui(config: AppConfig, model_path: Path, duration: float) -> dict:
    """The pipeline with the window open, run by the Qt event loop and the window's own timer.

    A frame is one timer tick: ``refresh()`` plus the paint events of the plots that follow it
    (every pyqtgraph view's ``paintEvent`` is timed; the other widgets are plain Qt and cheap).
    """
    import pyqtgraph as pg
    from PyQt5 import QtCore

    from bci_app.gui.app import application
    from bci_app.gui.window import MainWindow

    app = application()
    pipeline = make_pipeline(config, with_model=True, model_path=model_path)
    e2e = _E2E()
    pipeline.add_prediction_sink(e2e)
    window = MainWindow(config, pipeline)
    window.resize(*WINDOW_SIZE)
    window.show()
    frames: list[float] = []
    refreshes: list[float] = []
    state = {"paint": 0.0, "refresh": None, "until": None, "cpu_fraction": float("nan")}
    loop = QtCore.QEventLoop()
    original_paint = pg.GraphicsView.paintEvent

    def timed_paint(view: pg.GraphicsView, event: QtCore.QEvent) -> None:
        started = time.perf_counter()
        original_paint(view, event)
        state["paint"] += (time.perf_counter() - started) * 1e3

    def tick() -> None:
        if state["until"] is not None and state["refresh"] is not None:
            frames.append(state["refresh"] + state["paint"])
            refreshes.append(state["refresh"])
        state["paint"] = 0.0
        started = time.perf_counter()
        window.refresh()
        state["refresh"] = (time.perf_counter() - started) * 1e3
        now = time.monotonic()
        if state["until"] is None and window.prediction_panel.shown is not None:
            state["until"] = now + duration + WARMUP_S
            state["cpu"] = (time.thread_time(), now)
        elif state["until"] is not None and now >= state["until"]:
            cpu, began = state["cpu"]
            state["cpu_fraction"] = (time.thread_time() - cpu) / (now - began)
            loop.quit()

    window.timer.timeout.disconnect()
    window.timer.timeout.connect(tick)
    QtCore.QTimer.singleShot(round((duration + 40.0) * 1000), loop.quit)  # never hang
    pg.GraphicsView.paintEvent = timed_paint
    try:
        loop.exec_()
        if state["until"] is None:
            raise RuntimeError("no prediction within 40 s; is the model loadable?")
        channels = len(window.signals_panel.labels)
        seconds = window.signals_panel.seconds.value()
        width = int(window.signals_panel.plot.getViewBox().width())
        errors = window.frame_errors
        columns = window.signals_panel.columns_drawn
    finally:
        pg.GraphicsView.paintEvent = original_paint
        window.close()
        app.processEvents()
    return {
        "frames": frames,
        "refreshes": refreshes,
        "columns": columns,
        "channels": channels,
        "trace_seconds": seconds,
        "plot_width_px": width,
        "frame_errors": errors,
        "gui_cpu": state["cpu_fraction"],
        "e2e": e2e.values,
    }


def frame_benchmark(duration: float = 20.0, model_path: str | Path | None = None) -> dict:
    """Measure GUI frame time (ms) at 64 channels x 5 s and the e2e p99 (ms) with the GUI open
    versus headless, ``duration`` seconds each; returns the figures and whether goals are met."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    config = bench_config()
    with tempfile.TemporaryDirectory(prefix="bci-gui-bench-") as tmp:
        if model_path is None:
            from bci_app.bench.latency import make_checkpoint
            from bci_app.io.montage import channel_set

            model_path = make_checkpoint(Path(tmp) / "model", channel_set(64), 160.0)
        headless = _headless(config, Path(model_path), duration)
        gui = _with_gui(config, Path(model_path), duration)
    frame = summarize_ms(gui["frames"], per_ms=1.0)
    e2e_headless = summarize_ms(headless, per_ms=1.0)
    e2e_gui = summarize_ms(gui["e2e"], per_ms=1.0)
    ratio = (
        e2e_gui["p99"] / e2e_headless["p99"]
        if e2e_headless["p99"] and e2e_gui["p99"] is not None
        else None
    )
    return {
        "duration_s": duration,
        "channels": gui["channels"],
        "trace_seconds": gui["trace_seconds"],
        "window_px": list(WINDOW_SIZE),
        "plot_width_px": gui["plot_width_px"],
        "trace_columns": gui["columns"],  # pixel columns; a min and a max per channel in each
        "refresh_hz": config.gui.refresh_hz,
        "hop_s": config.windows.hop,
        "platform": os.environ.get("QT_QPA_PLATFORM", ""),
        "frame_ms": frame,
        "refresh_ms": summarize_ms(gui["refreshes"], per_ms=1.0),
        "frame_goal_ms": FRAME_GOAL_MS,
        "frame_ok": frame["p99"] is not None and frame["p99"] <= FRAME_GOAL_MS,
        "frame_errors": gui["frame_errors"],
        "gui_thread_cpu": round(gui["gui_cpu"], 3),  # CPU seconds per second of the GUI thread
        "e2e_ms": {"headless": e2e_headless, "gui": e2e_gui},
        "e2e_p99_ratio": None if ratio is None else round(ratio, 3),
        "e2e_goal_ratio": E2E_GOAL_RATIO,
        "e2e_ok": ratio is not None and ratio <= E2E_GOAL_RATIO,
    }


def main(duration: float = 20.0, as_json: bool = False, model_path: str | None = None) -> int:
    """Print the figures (and, with ``as_json``, one JSON object as the last line)."""
    result = frame_benchmark(duration, model_path)
    frame, refresh, e2e = result["frame_ms"], result["refresh_ms"], result["e2e_ms"]
    print(
        f"frame ({result['channels']} ch x {result['trace_seconds']:g} s, "
        f"{result['trace_columns']} px wide, min+max per column): "
        f"p50 {frame['p50']:.2f} ms, p99 {frame['p99']:.2f} ms (goal <= {FRAME_GOAL_MS:g}); "
        f"refresh alone p50 {refresh['p50']:.2f} ms",
        flush=True,
    )
    print(
        f"e2e p99: headless {e2e['headless']['p99']:.2f} ms, with GUI {e2e['gui']['p99']:.2f} ms"
        f" -> {result['e2e_p99_ratio']:.2f}x (goal <= {E2E_GOAL_RATIO:g}x)",
        flush=True,
    )
    if as_json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(duration=float(sys.argv[1]) if len(sys.argv) > 1 else 20.0, as_json=True))
