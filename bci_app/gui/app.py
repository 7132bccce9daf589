"""``bci-app gui``: the QApplication around :class:`MainWindow`, with a screenshot mode."""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from bci_app.config import AppConfig, ConfigError, load_config
from bci_app.errors import UserError
from bci_app.gui.window import MainWindow
from bci_app.lifecycle import on_signals
from bci_app.pipeline import make_pipeline
from bci_app.pipeline.remote import RemoteWorker
from bci_app.stream.lslconfig import use_lsl_config

log = logging.getLogger(__name__)

SCREENSHOT_GRACE_S = 15.0  # longest extra wait for the first prediction before a screenshot


def application() -> QtWidgets.QApplication:
    """The process' QApplication (created on first use) with the app's pyqtgraph options."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(sys.argv[:1])
        app.setApplicationName("bci-app")
    pg.setConfigOptions(antialias=False, useOpenGL=False)
    return app


def _ready(window: MainWindow) -> bool:
    """Worth a screenshot: the first prediction is drawn (or there is nothing more to wait for)."""
    if window.starting:
        return False
    if not window.running or window.pipeline is None or window.pipeline.metadata is None:
        return True
    return window.prediction_panel.shown is not None


def run_gui(
    config_path: str | None,
    model_path: str | None,
    screenshot: str | None,
    duration: float | None,
    attach: str | None = None,
) -> int:
    """Open the window on a Pipeline(config, with_model=True, model_path) started in the
    background; returns the exit code.

    ``screenshot``: after ``duration`` seconds (default 5; and once the first prediction is
    drawn, at most 15 s later) save ``window.grab()`` there as PNG, close and return 0 (1 if
    the file could not be written). Without it the window runs until closed, or for
    ``duration`` seconds when given. A config error opens the window with the error shown.
    ``attach`` (a prefix or session id, "" for the only one visible): view a worker running
    elsewhere (:class:`~bci_app.pipeline.remote.RemoteWorker`) instead of starting a pipeline.
    """
    app = application()
    error = None
    try:
        config = load_config(config_path)
        use_lsl_config(config.stream.lsl_config, replace=False)  # --lsl-config wins
    except (ConfigError, UserError) as exc:
        config, error = AppConfig(), str(exc)
    if error:
        pipeline = None
    elif attach is not None:  # a worker elsewhere: no pipeline here ("" = the only one visible)
        pipeline = RemoteWorker(config, attach or None)
    else:
        pipeline = make_pipeline(config, with_model=True, model_path=model_path)
    window = MainWindow(config, pipeline, error=error, model_path=model_path)
    window.show()
    outcome = {"code": 0}

    if screenshot:
        wait = 5.0 if duration is None else duration
        give_up = time.monotonic() + wait + SCREENSHOT_GRACE_S

        def take() -> None:
            if not _ready(window) and time.monotonic() < give_up:
                QtCore.QTimer.singleShot(100, take)
                return
            window.refresh()
            target = Path(screenshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(target), "PNG"):
                log.error("could not write the screenshot %s", target)
                outcome["code"] = 1
            window.close()

        QtCore.QTimer.singleShot(round(wait * 1000), take)
    elif duration is not None:
        QtCore.QTimer.singleShot(round(duration * 1000), window.close)

    wake = QtCore.QTimer()  # lets Python run a signal handler while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(200)
    try:
        with on_signals(window.close, (signal.SIGINT,)):
            app.exec_()
    finally:
        window.shutdown()
    return outcome["code"]
