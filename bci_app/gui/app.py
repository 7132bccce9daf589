"""``bci-app gui``: the QApplication around :class:`MainWindow`, with a screenshot mode."""

from __future__ import annotations

import signal

import pyqtgraph as pg
from PyQt5 import QtWidgets

from bci_app.config import AppConfig, ConfigError, load_config
from bci_app.errors import UserError
from bci_app.gui.run import qt_application, run_until_closed
from bci_app.gui.window import MainWindow
from bci_app.pipeline import make_pipeline
from bci_app.pipeline.remote import RemoteWorker
from bci_app.stream.lslconfig import use_lsl_config

SCREENSHOT_GRACE_S = 15.0  # longest extra wait for the first prediction before a screenshot


def application() -> QtWidgets.QApplication:
    """The process' QApplication (created on first use) with the app's pyqtgraph options."""
    app = qt_application()
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
    return run_until_closed(
        app,
        window,
        duration,
        screenshot,
        screenshot_after_s=5.0,
        ready=lambda: _ready(window),
        grace_s=SCREENSHOT_GRACE_S,
        before_grab=window.refresh,
        signals=(signal.SIGINT,),
        finish=window.shutdown,
    )
