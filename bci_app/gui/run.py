"""Running a top-level window: the process' QApplication, and Qt's loop until the window
closes (after a duration, or after a screenshot), with Ctrl+C / SIGTERM closing it.

Qt only (no pyqtgraph, no pipeline), so that the stimulus screens start fast.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PyQt5 import QtCore, QtWidgets

from bci_app.lifecycle import on_signals

log = logging.getLogger(__name__)

WAKE_MS = 200  # how often Qt's loop lets Python run a pending signal handler
READY_POLL_MS = 100  # how often a screenshot waits for ``ready`` again


def qt_application() -> QtWidgets.QApplication:
    """The process' QApplication, created on first use."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("bci-app")
    return app


def run_until_closed(
    app: QtWidgets.QApplication,
    window: QtWidgets.QWidget,
    duration: float | None,
    screenshot: str | None,
    *,
    screenshot_after_s: float = 3.0,
    ready: Callable[[], bool] | None = None,
    grace_s: float = 0.0,
    before_grab: Callable[[], None] | None = None,
    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
    finish: Callable[[], None] | None = None,
) -> int:
    """Run Qt until the shown ``window`` closes; returns 0, or 1 when the screenshot could not
    be written.

    ``duration`` (s): close it then. ``screenshot``: after ``duration`` s (default
    ``screenshot_after_s``), and once ``ready()`` says so (at most ``grace_s`` later), call
    ``before_grab()``, save a PNG of the window there and close it. ``signals`` close it too.
    ``finish`` (default ``window.close``) runs at the end, also after an error.
    """
    outcome = {"code": 0}
    if screenshot:
        wait = screenshot_after_s if duration is None else duration
        give_up = time.monotonic() + wait + grace_s

        def take() -> None:
            if ready is not None and not ready() and time.monotonic() < give_up:
                QtCore.QTimer.singleShot(READY_POLL_MS, take)
                return
            if before_grab is not None:
                before_grab()
            target = Path(screenshot)
            try:  # an error raised in this Qt slot would leave the window open
                target.parent.mkdir(parents=True, exist_ok=True)
                problem = None if window.grab().save(str(target), "PNG") else "Qt refused it"
            except OSError as exc:
                problem = str(exc)
            if problem is not None:
                log.error("could not write the screenshot %s: %s", target, problem)
                outcome["code"] = 1
            window.close()

        QtCore.QTimer.singleShot(round(wait * 1000), take)
    elif duration is not None:
        QtCore.QTimer.singleShot(round(duration * 1000), window.close)
    wake = QtCore.QTimer()  # lets Python run a signal handler while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(WAKE_MS)
    try:
        with on_signals(window.close, signals):
            if window.isVisible():  # a window that closed while starting has nothing to wait for
                app.exec_()
    finally:
        wake.stop()
        (finish or window.close)()
    return outcome["code"]
