"""Running a window until it closes: duration, screenshot after ready, a PNG that cannot be
written, and the finish call (real Qt widgets, offscreen)."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PyQt5 import QtGui, QtWidgets  # noqa: E402

from bci_app.gui.run import qt_application, run_until_closed  # noqa: E402


def shown_label() -> QtWidgets.QLabel:
    label = QtWidgets.QLabel("bci-app")
    label.resize(120, 40)
    label.show()
    return label


def test_the_window_closes_after_its_duration_and_finish_runs():
    app = qt_application()
    window = shown_label()
    finished = []
    started = time.monotonic()
    code = run_until_closed(app, window, 0.3, None, finish=lambda: finished.append(True))
    assert code == 0 and finished == [True]
    assert 0.25 <= time.monotonic() - started < 5.0


def test_the_screenshot_waits_until_ready_then_grabs_after_before_grab(tmp_path):
    app = qt_application()
    window = shown_label()
    polls, prepared = [], []

    def ready() -> bool:
        polls.append(time.monotonic())
        return len(polls) >= 3

    out = tmp_path / "shots" / "label.png"
    code = run_until_closed(
        app, window, 0.1, str(out), ready=ready, grace_s=5.0, before_grab=lambda: prepared.append(1)
    )
    assert code == 0 and len(polls) == 3 and prepared == [1]
    assert not window.isVisible()
    image = QtGui.QImage(str(out))
    assert (image.width(), image.height()) == (120, 40)


def test_a_screenshot_that_cannot_be_written_returns_1(tmp_path):
    app = qt_application()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = run_until_closed(app, shown_label(), 0.1, str(blocker / "x.png"))
    assert code == 1


def test_a_window_closed_before_the_loop_does_not_block():
    app = qt_application()
    window = shown_label()
    window.close()
    started = time.monotonic()
    assert run_until_closed(app, window, None, None) == 0
    assert time.monotonic() - started < 1.0
