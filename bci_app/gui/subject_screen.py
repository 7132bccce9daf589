"""``bci-app cue-screen --attach WORKER``: the participant's screen as its own process, on any
host, driven by a worker elsewhere.

It runs the cue paradigm (fixation, cue, imagery, rest) with feedback bars from the worker's
predictions, read through its outlets (:class:`~bci_app.pipeline.remote.RemoteWorker`), and
publishes each cue as an LSL marker stamped when the cue was drawn, on ``<prefix>-cues``
(source_id ``<prefix>-cues-<session>``), so the worker's host and the recorder see it like any
other marker stream. It pauses while the worker's EEG stream is not live or the worker is lost.
"""

from __future__ import annotations

import logging

import pylsl
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.calibrate.controller import CalibrationController, MarkerOutlet, Phase
from bci_app.calibrate.paradigm import ParadigmPlanner
from bci_app.calibrate.settings import Timings
from bci_app.gui.cue_screen import CueScreen
from bci_app.gui.paradigm_run import ParadigmRun
from bci_app.infer.latency import summarize_ms
from bci_app.pipeline.remote import RemoteWorker

__all__ = ["SubjectScreen", "cue_marker_outlet"]

log = logging.getLogger(__name__)

TICK_MS = 4


def cue_marker_outlet(view: RemoteWorker) -> MarkerOutlet:
    """The marker outlet of a participant's screen attached to ``view``'s worker."""
    worker = view.worker
    return MarkerOutlet(f"{worker.prefix}-cues", f"{worker.prefix}-cues-{worker.session_id}")


class SubjectScreen(QtWidgets.QMainWindow):
    """The cue paradigm with feedback from a started ``view``: ``trials_per_class`` trials of
    each of the worker's classes. Space pauses, Esc ends, F11 full screen. ``summary()`` says
    what ran."""

    def __init__(
        self, view: RemoteWorker, trials_per_class: int, timings: Timings, seed: int = 0
    ) -> None:
        super().__init__()
        self.setWindowTitle("bci-app: participant")
        self.resize(1000, 700)
        self.view = view
        classes = list(view.metadata.classes)
        self.markers = cue_marker_outlet(view)
        self.controller = CalibrationController(
            ParadigmPlanner(classes, timings, seed),
            classes,
            trials_per_class,
            markers=self.markers,
            feedback=True,
            window_s=view.metadata.window_s,
            trial_span_s=(0.0, timings.imagery_s),
        )
        self.screen_widget = CueScreen()
        self.setCentralWidget(self.screen_widget)
        self.run = ParadigmRun(self.controller, self.screen_widget, view.status, "feedback")
        for key, slot in (
            (QtCore.Qt.Key_Space, self.toggle_pause),
            (QtCore.Qt.Key_Escape, self.close),
            (QtCore.Qt.Key_F11, self._toggle_full_screen),
        ):
            QtWidgets.QShortcut(QtGui.QKeySequence(key), self, activated=slot)
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self.controller.start(pylsl.local_clock())
        self._timer.start(TICK_MS)

    def _tick(self) -> None:
        phase = self.run.tick(pylsl.local_clock())
        if phase is Phase.FINISHED:
            self._timer.stop()
            self.close()
            return
        ahead = self.controller.seconds_to_next_change(pylsl.local_clock())
        if ahead is not None:  # wake right at the next phase boundary
            self._timer.setInterval(max(0, min(TICK_MS, int(ahead * 1000))))

    def toggle_pause(self) -> None:
        self.run.toggle_pause(pylsl.local_clock())

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def summary(self) -> dict:
        controller = self.controller
        correct, decided = controller.online_accuracy()
        return {
            "worker": self.view.worker.session_id,
            "markers": {"name": self.markers.name, "source_id": self.markers.source_id},
            "trials": len(controller.trials),
            "valid_trials": controller.valid_counts(),
            "finished": controller.phase is Phase.FINISHED,
            "online_trials": decided,
            "online_accuracy": correct / decided if decided else None,
            "cue_draw_lateness_ms": summarize_ms(controller.draw_lateness()),
            "stream_pauses": self.run.pauses,
        }

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self._timer.stop()
        if self.controller.phase is not Phase.FINISHED:
            self.controller.abort(pylsl.local_clock())
        super().closeEvent(event)
