"""The main window: panels, menus, error banner, and the refresh timer that feeds them.

Threading: nothing here runs off the GUI thread except :class:`BackgroundCall` bodies (pipeline
start, stream resolve) and the :class:`MarkerReader`, none of which touches a widget. A QTimer at
``gui.refresh_hz`` takes one :class:`Frame` (``pipeline.status()``, the latest prediction, recent
predictions and markers; the panels copy ring ranges themselves) and hands it to every panel.
Reading never blocks the pipeline threads, so a slow GUI only drops frames.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pylsl
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app import __version__
from bci_app.config import AppConfig, ConfigError, load_config
from bci_app.gui.banner import Banner, explain, stream_warning
from bci_app.gui.common import Frame
from bci_app.gui.feeds import MarkerReader, PredictionFeed, ScheduleMarkers
from bci_app.gui.latency import LatencyPanel
from bci_app.gui.prediction import PredictionPanel
from bci_app.gui.record_action import RecordController
from bci_app.gui.signals import SignalsPanel
from bci_app.gui.stream_panel import WORKER_PREFIX, StreamPanel
from bci_app.gui.weights import WeightsPanel
from bci_app.lifecycle import BackgroundCall
from bci_app.nn.checkpoint import model_dir
from bci_app.nn.metadata import CheckpointMetadata
from bci_app.pipeline import PipelineStatus, PipelineView, make_pipeline, marker_source_id
from bci_app.pipeline.remote import RemoteWorker, find_workers
from bci_app.stream.inlet import StreamState

log = logging.getLogger(__name__)

HISTORY_S = 10.0  # predictions and markers kept for the history strip and running mean
STATUS_PERIOD_S = 0.1  # pipeline.status() (counters, percentiles) is read at most this often
RESOLVE_WAIT_S = 1.0  # stream picker refresh


class MainWindow(QtWidgets.QMainWindow):
    """The app window around a :class:`Pipeline`.

    ``pipeline``: not yet started (the window starts it in the background with ``autostart``),
    already started (shown as it is), or None (nothing until Connect / Start). Later starts
    build new pipelines from ``config`` with the same model settings (``with_model`` and
    ``model_path`` give them when ``pipeline`` is None). ``error``: a message (e.g. a config
    error) to show in the banner from the start. Closing the window stops every pipeline
    thread (joins within 2 s).
    """

    def __init__(
        self,
        config: AppConfig,
        pipeline: PipelineView | None = None,
        *,
        autostart: bool = True,
        error: str | None = None,
        with_model: bool = True,
        model_path: str | Path | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("bci-app")
        self.resize(1400, 900)
        self.config = config
        self.pipeline: PipelineView | None = None
        self.feed = PredictionFeed()
        self.markers: MarkerReader | ScheduleMarkers | None = None
        self.frame_ms: deque[float] = deque(maxlen=300)  # refresh durations (ms)
        self.frame_errors = 0
        self._live = False
        self._bound_metadata: CheckpointMetadata | None = None  # what the panels show
        self._starting: BackgroundCall | None = None
        self._start_cancelled: list[bool] | None = None
        self._resolving: BackgroundCall | None = None
        self._sticky: tuple[str, str] | None = None  # (level, text) shown until dismissed
        self._closed = False
        self._unused: PipelineView | None = None  # given, not started yet
        self._status: PipelineStatus | None = None  # the last pipeline.status(), and when
        self._status_time = 0.0
        self._status_shown: PipelineStatus | None = None
        if pipeline is not None:
            self._with_model = pipeline.with_model
            default = model_dir(pipeline.config)
            self._model_path = None if pipeline.model_path == default else pipeline.model_path
        else:
            self._with_model, self._model_path = with_model, model_path

        self._build_panels()
        self._build_menus()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(1, round(1000 / config.gui.refresh_hz)))
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        if error:
            self.show_error(*self._titled(ConfigError(error)))
        if pipeline is not None:
            if pipeline.description is not None:  # started by the caller
                self.pipeline = pipeline
                self._go_live()
            elif autostart:
                self._begin_start(pipeline)
            else:
                self.pipeline = self._unused = pipeline
        self.refresh_streams()

    # -- layout ---------------------------------------------------------------------------
    def _build_panels(self) -> None:
        gui = self.config.gui
        self.banner = Banner()
        self.banner.close_button.clicked.connect(self.dismiss_error)
        self.stream_panel = StreamPanel()
        self.signals_panel = SignalsPanel(gui.trace_seconds, self.config.ring.capacity)
        self.prediction_panel = PredictionPanel(HISTORY_S)
        self.weights_panel = WeightsPanel()
        self.latency_panel = LatencyPanel()
        self.panels = (
            self.stream_panel,
            self.signals_panel,
            self.prediction_panel,
            self.weights_panel,
            self.latency_panel,
        )
        self.stream_panel.connect_requested.connect(
            lambda source_id: self.connect_stream(source_id or None)
        )
        self.stream_panel.disconnect_requested.connect(self.stop_pipeline)
        self.stream_panel.refresh_requested.connect(self.refresh_streams)

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.stream_panel)
        left_layout.addWidget(self.signals_panel, 1)
        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        for panel in (self.prediction_panel, self.weights_panel, self.latency_panel):
            right.addWidget(panel)
        right.setSizes([340, 270, 250])
        splitter = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([800, 600])
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

        self.state_label = QtWidgets.QLabel("not connected")
        self.rate_label = QtWidgets.QLabel("")
        self.e2e_label = QtWidgets.QLabel("")
        self.frame_label = QtWidgets.QLabel("")
        bar = self.statusBar()
        bar.addWidget(self.state_label, 1)
        for label in (self.rate_label, self.e2e_label, self.frame_label):
            bar.addPermanentWidget(label)

    def _build_menus(self) -> None:
        def action(
            text: str, shortcut: str, slot: Callable[[], None], tip: str
        ) -> QtWidgets.QAction:
            item = QtWidgets.QAction(text, self)
            if shortcut:
                item.setShortcut(QtGui.QKeySequence(shortcut))
            item.setStatusTip(tip)
            item.triggered.connect(slot)
            return item

        self.open_action = action(
            "&Open config…", "Ctrl+O", self._ask_config, "Load a config.yaml and restart"
        )
        self.quit_action = action("&Quit", "Ctrl+Q", self.close, "Stop everything and quit")
        self.start_action = action("&Start", "Ctrl+R", self.start_pipeline, "Start streaming")
        self.stop_action = action("S&top", "Ctrl+.", self.stop_pipeline, "Stop every thread")
        self.about_action = action("&About", "", self._about, "About bci-app")
        self.record = RecordController(self, self.show_error)
        self.record_action = self.record.action
        self.statusBar().addPermanentWidget(self.record.label)
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = menus.addMenu("&Run")
        run_menu.addAction(self.start_action)
        run_menu.addAction(self.stop_action)
        run_menu.addSeparator()
        run_menu.addAction(self.record_action)
        menus.addMenu("&Help").addAction(self.about_action)
        self._update_actions()

    def _update_actions(self) -> None:
        busy = self._starting is not None
        self.start_action.setEnabled(not busy and not self._live)
        self.stop_action.setEnabled(busy or self._live)
        self.stream_panel.set_busy(busy)
        self.record.set_available(self._live and not busy)

    # -- pipeline lifecycle ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a started pipeline is shown (not stopped, start succeeded)."""
        return self._live

    @property
    def starting(self) -> bool:
        return self._starting is not None

    def _new_pipeline(self, config: AppConfig) -> PipelineView:
        return make_pipeline(config, with_model=self._with_model, model_path=self._model_path)

    def start_pipeline(self) -> None:
        """Start streaming (Ctrl+R): the given pipeline if unused, else a new one."""
        if self._starting is not None or self._live:
            return
        pipeline, self._unused = self._unused, None
        if pipeline is None:
            pipeline = self._new_pipeline(self.config)  # a Pipeline object runs once
        self._begin_start(pipeline)

    def _begin_start(self, pipeline: PipelineView) -> None:
        self._unused = None
        self.pipeline = pipeline
        self.feed = PredictionFeed()
        try:
            pipeline.add_prediction_sink(self.feed)
            self.feed.attached = True
        except RuntimeError:  # already started elsewhere: poll latest_prediction() instead
            pass
        cancelled = [False]

        def start() -> object:
            description = pipeline.start()
            if cancelled[0]:  # the window stopped or closed meanwhile
                pipeline.stop()
            return description

        self._start_cancelled = cancelled
        self._starting = BackgroundCall(start, "bci-gui-start")
        self._sticky = None
        stream = self.config.stream
        what = "the built-in simulator" if stream.uses_simulator else "the configured stream"
        self.stream_panel.set_state("starting", StreamState.CONNECTING)
        self.state_label.setText(f"starting {what}…")
        self._update_actions()

    def _poll_background(self) -> None:
        starting = self._starting
        if starting is not None and starting.done:
            self._starting = None
            if self._start_cancelled and self._start_cancelled[0]:
                pass
            elif starting.error is not None:
                title, hint = explain(starting.error)
                log.error("start failed: %s", starting.error)
                self.show_error(title, str(starting.error), hint)
                self.stream_panel.set_state("not connected")
                self.state_label.setText("not running")
            else:
                self._go_live()
            self._update_actions()
        resolving = self._resolving
        if resolving is not None and resolving.done:
            self._resolving = None
            if resolving.error is None:
                self.stream_panel.set_streams(*resolving.result)

    def _bind_panels(self) -> None:
        """Bind the panels to the pipeline's stream and model (again when a viewer's worker
        comes back with another model: its classes and electrodes)."""
        pipeline = self.pipeline
        self._bound_metadata = metadata = pipeline.metadata
        labels = pipeline.description.labels
        classes = tuple(metadata.classes) if metadata is not None else ()
        if not classes and pipeline.simulator is not None:
            classes = tuple(pipeline.simulator.settings.classes)
        self.signals_panel.bind(labels, classes)
        self.prediction_panel.bind(classes if metadata is not None else ())
        if metadata is None:
            self.weights_panel.bind(())
        else:
            decoder = metadata.decoder
            kind = metadata.classifier.attention if decoder.kind == "network" else decoder.kind
            self.weights_panel.bind(
                tuple(metadata.channel_labels), kind, decoder.weights_meaning or "attention"
            )

    def _go_live(self) -> None:
        """The pipeline started: bind the panels to its stream and model, read its markers."""
        pipeline = self.pipeline
        self._live = True
        self._status = None
        self._sticky = None
        self._bind_panels()
        self.latency_panel.reset()
        markers = marker_source_id(pipeline)
        if pipeline.simulator is not None:
            self.markers = ScheduleMarkers(pipeline.simulator)
        elif markers is not None:  # a marker outlet named like the simulator's
            self.markers = MarkerReader(markers)
        self._update_actions()

    def stop_pipeline(self) -> None:
        """Stop every pipeline thread (Ctrl+.); the panels keep the last frame. A recording is
        stopped first (LabRecorder finishes the file in its own process)."""
        self.record.set_available(False)
        if self._start_cancelled is not None and self._starting is not None:
            self._start_cancelled[0] = True  # the start thread stops it when it returns
            self._starting = None
        markers, self.markers = self.markers, None
        if markers is not None:
            markers.request_stop()
        if self._live and self.pipeline is not None:
            self.pipeline.stop()
        self._live = False
        if markers is not None:
            markers.stop()
        if not self._closed:
            self.stream_panel.set_state("stopped")
            self.state_label.setText("stopped")
            self._update_actions()

    def connect_stream(self, source_id: str | None) -> None:
        """Stop, then start on the stream with ``source_id`` (None: the built-in simulator;
        ``worker:<session>``: view that worker running elsewhere)."""
        self.stop_pipeline()
        if source_id is not None and source_id.startswith(WORKER_PREFIX):
            self._begin_start(RemoteWorker(self.config, source_id[len(WORKER_PREFIX) :]))
            return
        stream = self.config.stream.model_copy(
            update={"source_id": source_id, "name": None, "type": None}
        )
        self.config = self.config.model_copy(update={"stream": stream})
        self._begin_start(self._new_pipeline(self.config))

    def open_config(self, path: str | Path) -> bool:
        """Load ``path`` and restart with it; a config error goes to the banner (False)."""
        try:
            config = load_config(path)
        except ConfigError as exc:
            self.show_error(*self._titled(exc))
            return False
        self.stop_pipeline()
        self.config = config
        self.timer.setInterval(max(1, round(1000 / config.gui.refresh_hz)))
        self._begin_start(self._new_pipeline(config))
        return True

    @staticmethod
    def _titled(exc: BaseException) -> tuple[str, str, str]:
        title, hint = explain(exc)
        return title, str(exc), hint

    def refresh_streams(self) -> None:
        """List the visible LSL streams in the picker (resolved in the background)."""
        if self._resolving is None:
            self._resolving = BackgroundCall(
                lambda: (
                    pylsl.resolve_streams(wait_time=RESOLVE_WAIT_S),
                    find_workers(RESOLVE_WAIT_S),
                ),
                "bci-gui-resolve",
            )

    # -- recording ------------------------------------------------------------------------
    def start_recording(self, path: str | Path, overwrite: bool = False) -> bool:
        """Record the running stream, its markers and the app's outlets to the XDF file ``path``
        (what Run > Record… does after its file dialog). Starts in the background; problems
        show in the banner. False when refused at once (nothing running, bad path, ...)."""
        return self.record.start(path, self.pipeline if self._live else None, overwrite)

    def stop_recording(self) -> None:
        """Stop recording (Run > Record… again); LabRecorder then takes a few seconds to finish
        the file, in its own process."""
        self.record.stop()

    @property
    def recording_state(self) -> str:
        """``"idle"``, ``"starting"``, ``"recording"`` or ``"stopping"`` (finishing the file)."""
        return self.record.state

    # -- errors ---------------------------------------------------------------------------
    def show_error(self, title: str, message: str, hint: str) -> None:
        """Show ``title: message`` and what to do in the banner until dismissed."""
        self._sticky = ("error", f"{title}: {message}\nWhat to do: {hint}")
        self.banner.show_message(*self._sticky, dismissable=True)

    def dismiss_error(self) -> None:
        self._sticky = None
        self.banner.clear()

    def banner_text(self) -> str:
        """The banner's text ('' when hidden)."""
        return "" if self.banner.isHidden() else self.banner.text()

    def _update_banner(self, frame: Frame) -> None:
        if self._sticky is not None:
            self.banner.show_message(*self._sticky, dismissable=True)
            return
        if frame.status is None:
            self.banner.clear()
            return
        health = frame.status.stream
        level, text = stream_warning(health.state, health.newest_sample_age_s, health.error)
        if level:
            self.banner.show_message(level, text, dismissable=False)
        else:
            self.banner.clear()

    # -- refresh --------------------------------------------------------------------------
    def take_frame(self) -> Frame:
        """Snapshot what the panels show (GUI thread, never blocks on the pipeline)."""
        frame = Frame(now=pylsl.local_clock())
        pipeline = self.pipeline
        if not self._live or pipeline is None:
            return frame
        frame.pipeline = pipeline
        if pipeline.metadata is not self._bound_metadata:  # a viewer's worker, another model
            self.feed.clear()  # predictions of the other model's classes
            self._bind_panels()
        if self._status is None or frame.now - self._status_time >= STATUS_PERIOD_S:
            self._status, self._status_time = pipeline.status(), frame.now
        frame.status = self._status
        frame.prediction = pipeline.latest_prediction()
        self.feed.poll(frame.prediction)
        frame.predictions = self.feed.since(frame.now - HISTORY_S)
        if self.markers is not None:
            frame.markers = self.markers.snapshot(frame.now - 60.0)
        return frame

    def refresh(self) -> None:
        """One frame: poll background calls, take a snapshot, update every panel."""
        started = time.perf_counter()
        try:
            self._poll_background()
            self.record.poll()
            frame = self.take_frame()
            if frame.status is not None:
                for panel in self.panels:
                    try:
                        panel.update_frame(frame)
                    except Exception:  # one panel's failure must not freeze the others
                        self.frame_errors += 1
                        if self.frame_errors <= 3:
                            log.exception("%s failed", type(panel).__name__)
                self._update_status_bar(frame)
            self._update_banner(frame)
        except Exception:  # an exception in a Qt slot would abort the app
            self.frame_errors += 1
            if self.frame_errors <= 3:
                log.exception("GUI refresh failed")
        self.frame_ms.append((time.perf_counter() - started) * 1e3)

    def _update_status_bar(self, frame: Frame) -> None:
        status = frame.status
        if status is self._status_shown:
            return
        self._status_shown = status
        health = status.stream
        self.state_label.setText(
            f"{health.state.value}: {frame.pipeline.description.name}, "
            f"{status.windows} windows ({status.flagged_windows} flagged)"
        )
        self.rate_label.setText(f"{status.windows_per_s:.1f} windows/s")
        worker = status.worker
        if worker is not None and "e2e" in worker.latency_ms:
            self.e2e_label.setText(f"e2e p99 {worker.latency_ms['e2e']['p99']:.1f} ms")
        if self.frame_ms:
            self.frame_label.setText(f"frame {np.median(self.frame_ms):.1f} ms")

    # -- menus ----------------------------------------------------------------------------
    def _ask_config(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open config", "", "YAML (*.yaml *.yml);;All files (*)"
        )
        if path:
            self.open_config(path)

    def _about(self) -> None:
        QtWidgets.QMessageBox.about(
            self,
            "About bci-app",
            f"bci-app {__version__}\n\nReal-time EEG brain-computer interface: LSL streaming, "
            "causal filtering, an attention classifier and this live view.\n\n"
            "Ctrl+R start, Ctrl+. stop, Ctrl+Shift+R record to XDF, Ctrl+O open config, "
            "Ctrl+Q quit.",
        )

    # -- shutdown -------------------------------------------------------------------------
    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the timer and every thread the window owns (joins within ``timeout`` s)."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self.timer.stop()
        starting = self._starting
        self.record.shutdown(timeout / 2)  # the recorder finishes its file in its own process
        self.stop_pipeline()
        for call in (starting, self._resolving):
            if call is not None:
                call.join(max(0.0, deadline - time.monotonic()))

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
