"""The window's Record… action: records the pipeline's input stream, its markers and the app's
outlets into an XDF file with LabRecorder (see :mod:`bci_app.record`).

Threading: the blocking part of a start (resolving the streams, waiting for LabRecorderCLI to
open them, 1-2 s) runs in a :class:`BackgroundCall` that touches no widget; everything else runs
on the GUI thread and never blocks it: the recorder is a child process, polled by the window's
refresh timer, and a stop only asks it to finish the file (which takes LabRecorderCLI a few
seconds, in its own process, even after the window closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.lifecycle import BackgroundCall
from bci_app.pipeline import PipelineView, pipeline_selectors
from bci_app.record import FLUSH_S, RecordError, RecordingResult, SessionRecorder

log = logging.getLogger(__name__)

SHORTCUT = "Ctrl+Shift+R"  # Ctrl+R is Run > Start
LABEL_PERIOD_S = 0.5  # the status-bar text (elapsed time, bytes) is refreshed this often
HINT = (
    "Check that the output folder is writable and that the streams are still running "
    "(Stream > Refresh); the app keeps running. Run > Record… (Ctrl+Shift+R) tries again."
)

ErrorSink = Callable[[str, str, str], None]  # (title, message, what to do)

IDLE, STARTING, RECORDING, STOPPING = "idle", "starting", "recording", "stopping"


def _size(n_bytes: int) -> str:
    if n_bytes < 10_000:
        return f"{n_bytes} B"
    if n_bytes < 10_000_000:
        return f"{n_bytes / 1e3:.0f} kB"
    return f"{n_bytes / 1e6:.1f} MB"


class RecordController(QtCore.QObject):
    """A checkable Run > Record… action plus a status-bar label.

    ``show_error(title, message, hint)`` shows a failure in the window. :meth:`start` and
    :meth:`stop` are the programmatic entry points (no dialog); :meth:`poll` is called from the
    window's refresh timer; :meth:`shutdown` on close (returns within ``timeout``).
    """

    def __init__(self, parent: QtWidgets.QWidget, show_error: ErrorSink) -> None:
        super().__init__(parent)
        self._parent = parent
        self._show_error = show_error
        self.action = QtWidgets.QAction("&Record…", parent)
        self.action.setCheckable(True)
        self.action.setShortcut(QtGui.QKeySequence(SHORTCUT))
        self.action.setStatusTip(
            "Record the stream, its markers and the app's outlets to an XDF file (LabRecorder)"
        )
        self.action.triggered.connect(self._triggered)
        self.label = QtWidgets.QLabel("")
        self.recorder: SessionRecorder | None = None
        self.last_result: RecordingResult | None = None
        self.last_error: str | None = None
        self.state = IDLE
        self._starting: BackgroundCall | None = None
        self._available = False
        self._label_time = 0.0
        self._flush_timer = QtCore.QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._request_stop)
        self._closed = False
        self._sync()

    # -- user action ------------------------------------------------------------------------
    def _triggered(self, checked: bool) -> None:
        if not checked:
            self.stop()
            return
        self._sync()  # checked only once the recording really starts
        path = self.ask_path()
        if path is not None:
            self._start_from_dialog(path)

    def _start_from_dialog(self, path: str) -> None:
        # The dialog already asked before replacing an existing file.
        self.start(path, self._pipeline(), overwrite=True)

    def _pipeline(self) -> PipelineView | None:
        return getattr(self._parent, "pipeline", None)  # the window's (None before a start)

    def ask_path(self) -> str | None:
        """Ask where to record (a save dialog that confirms overwriting); None when cancelled."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dialog = QtWidgets.QFileDialog(self._parent, "Record to XDF")
        dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptSave)
        dialog.setNameFilters(["XDF (*.xdf)", "All files (*)"])
        dialog.setDefaultSuffix("xdf")
        dialog.selectFile(str(Path.cwd() / f"bci-app-{stamp}.xdf"))
        if dialog.exec_() != QtWidgets.QDialog.Accepted or not dialog.selectedFiles():
            return None
        return dialog.selectedFiles()[0]

    # -- programmatic API -------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while starting, recording or finishing a file."""
        return self.state != IDLE

    def start(
        self, path: str | Path, pipeline: PipelineView | None, overwrite: bool = False
    ) -> bool:
        """Start recording the running ``pipeline``'s streams to ``path`` (in the background).
        Problems go to the window; returns False when the start was refused at once."""
        if self.state != IDLE or self._closed:
            self._show_error(
                "Recording not started",
                f"a recording is still {self.state}",
                "Stop it first (Run > Record…), then start a new one.",
            )
            return False
        try:
            if pipeline is None or pipeline.description is None or not self._available:
                raise RecordError("no stream is running: connect one (Run > Start) first")
            recorder = SessionRecorder(path, pipeline_selectors(pipeline), overwrite=overwrite)
        except RecordError as exc:
            self._show_error("Recording not started", str(exc), HINT)
            self._sync()
            return False
        self.recorder = recorder
        self.last_result = None
        self.last_error = None
        self.state = STARTING
        self._starting = BackgroundCall(recorder.start, "bci-gui-record")
        self._sync()
        return True

    def stop(self, flush: bool = True) -> None:
        """Stop recording: LabRecorderCLI gets :data:`~bci_app.record.FLUSH_S` (``flush``) for
        its last pull, then is asked to finish the file; never blocks the GUI thread."""
        recorder = self.recorder
        if recorder is None or self.state in (IDLE, STOPPING):
            self._sync()
            return
        if self.state == STARTING or not flush:
            self._request_stop()  # also cancels a start in progress
        else:
            self._flush_timer.start(round(FLUSH_S * 1000))
        self.state = STOPPING
        self._sync()

    def _request_stop(self) -> None:
        self._flush_timer.stop()
        if self.recorder is not None:
            self.recorder.request_stop()

    def set_available(self, available: bool) -> None:
        """Whether a pipeline runs (a recording can start); a stopped pipeline ends it."""
        self._available = available
        if not available and self.state in (STARTING, RECORDING):
            self.stop(flush=False)
        self._sync()

    def poll(self) -> None:
        """GUI thread (refresh timer): follow the start call and the recorder process."""
        starting = self._starting
        if starting is not None and starting.done:
            self._starting = None
            if self.state == STARTING:
                if starting.error is not None:
                    self.state = IDLE
                    self.last_error = str(starting.error)
                    log.error("recording not started: %s", starting.error)
                    self._show_error("Recording not started", str(starting.error), HINT)
                else:
                    self.state = RECORDING
            elif starting.error is not None:  # cancelled by a stop: nothing to report
                log.info("recording start cancelled: %s", starting.error)
        recorder = self.recorder
        if recorder is not None and self.state == STOPPING and recorder.pid is None:
            self.state = IDLE  # cancelled before LabRecorderCLI ran: no file to wait for
        elif (
            recorder is not None and self.state in (RECORDING, STOPPING) and self._starting is None
        ):
            result = recorder.poll()
            if result is not None:
                self.last_result = result
                self.last_error = result.error
                self.state = IDLE
                if result.error is not None:
                    self._show_error("Recording stopped", result.error, HINT)
        self._sync()

    def shutdown(self, timeout: float = 1.0) -> None:
        """Window closing: ask the recorder to finish the file (it does so in its own process)
        and join the start call within ``timeout`` s."""
        self._closed = True
        self._flush_timer.stop()
        if self.recorder is not None:
            self.recorder.request_stop()
        if self._starting is not None:
            self._starting.join(timeout)

    # -- display ----------------------------------------------------------------------------
    def _sync(self) -> None:
        """Action check/enable state and the status-bar label, from :attr:`state`."""
        if self._closed:
            return
        checked = self.state in (STARTING, RECORDING)
        if self.action.isChecked() != checked:
            blocked = self.action.blockSignals(True)
            self.action.setChecked(checked)
            self.action.blockSignals(blocked)
        self.action.setEnabled(
            self.state in (STARTING, RECORDING) or (self.state == IDLE and self._available)
        )
        now = time.monotonic()
        recorder = self.recorder
        if self.state == RECORDING and now - self._label_time < LABEL_PERIOD_S:
            return
        self._label_time = now
        if recorder is None:
            text = ""
        elif self.state == STARTING:
            text = f"recording → {recorder.path.name}: starting…"
        elif self.state == RECORDING:
            text = (
                f"● recording → {recorder.path.name} ({recorder.elapsed:.0f} s, "
                f"{_size(recorder.size_bytes)})"
            )
        elif self.state == STOPPING:
            text = f"recording → {recorder.path.name}: finishing the file…"
        elif self.last_error is not None:
            text = f"recording → {recorder.path.name} failed"
        elif self.last_result is not None:
            text = f"recorded → {recorder.path.name} ({_size(self.last_result.size_bytes)})"
        else:
            text = ""
        if self.label.text() != text:
            self.label.setText(text)
            self.label.setToolTip(str(recorder.path) if recorder is not None else "")
