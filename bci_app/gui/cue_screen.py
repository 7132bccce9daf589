"""The participant's screen: fixation cross, cue (arrow and class name), feedback bars.

Everything is painted in :meth:`CueScreen.paintEvent`; the time each paint finished
(``pylsl.local_clock``) is kept so the calibration can stamp a cue marker with the moment the cue
was drawn. (On a real display the frame reaches the glass at the next refresh, 0-17 ms later at
60 Hz; no software clock sees that without a photodiode.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pylsl
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.calibrate.controller import Phase
from bci_app.calibrate.paradigm import CLASS_ARROWS

BACKGROUND = QtGui.QColor(20, 20, 24)
FOREGROUND = QtGui.QColor(235, 235, 235)
CUE_COLOUR = QtGui.QColor(255, 200, 60)
HIT_COLOUR = QtGui.QColor(80, 200, 120)
BAR_COLOUR = QtGui.QColor(90, 140, 230)


@dataclass
class CueView:
    """What to draw (set by the calibration window, read by paintEvent)."""

    phase: Phase = Phase.IDLE
    class_name: str = ""
    classes: tuple[str, ...] = ()
    probabilities: np.ndarray | None = None  # feedback: running mean of this trial
    status: str = ""  # small text at the top: trial counts, accuracy
    message: str = ""  # large text in the middle (pause, training, results)


class CueScreen(QtWidgets.QWidget):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = CueView()
        self.setMinimumSize(480, 360)
        self.setAutoFillBackground(False)
        self.last_paint_time: float | None = None
        self.paints = 0
        self.paint_log: deque[tuple[float, Phase]] = deque(maxlen=1024)  # (paint end, phase)

    def show_view(self, view: CueView) -> float | None:
        """Draw ``view`` now (synchronously); returns when the paint finished (LSL time), None
        when nothing was painted (the window is hidden or minimised: a cue nobody saw must
        not get the time of an older paint)."""
        self.view = view
        before = self.paints
        self.repaint()
        return self.last_paint_time if self.paints != before else None

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            painter.setRenderHint(QtGui.QPainter.Antialiasing)
            painter.fillRect(self.rect(), BACKGROUND)
            self._paint(painter)
        finally:
            painter.end()
        self.last_paint_time = pylsl.local_clock()
        self.paints += 1
        self.paint_log.append((self.last_paint_time, self.view.phase))

    def _paint(self, painter: QtGui.QPainter) -> None:
        view, rect = self.view, self.rect()
        side = min(rect.width(), rect.height())
        centre = rect.center()
        if view.status:
            painter.setPen(FOREGROUND)
            painter.setFont(QtGui.QFont("Sans", max(9, side // 40)))
            painter.drawText(rect.adjusted(12, 8, -12, -8), QtCore.Qt.AlignTop, view.status)
        if view.phase in (Phase.FIXATION, Phase.CUE):
            self._cross(painter, centre, side // 10)
        if view.phase is Phase.CUE:
            arrow = CLASS_ARROWS.get(view.class_name, "")
            painter.setPen(CUE_COLOUR)
            painter.setFont(QtGui.QFont("Sans", max(12, side // 6), QtGui.QFont.Bold))
            box = QtCore.QRect(rect.left(), rect.top(), rect.width(), rect.height() * 2 // 3)
            painter.drawText(box, QtCore.Qt.AlignCenter, arrow or view.class_name)
            painter.setFont(QtGui.QFont("Sans", max(10, side // 22)))
            label = QtCore.QRect(rect.left(), centre.y() + side // 8, rect.width(), side // 8)
            painter.drawText(label, QtCore.Qt.AlignCenter, view.class_name.replace("_", " "))
        if view.probabilities is not None and view.classes:
            self._bars(painter, rect, side, view)
        if view.message:
            painter.setPen(FOREGROUND)
            painter.setFont(QtGui.QFont("Sans", max(10, side // 28)))
            painter.drawText(
                rect.adjusted(24, 24, -24, -24),
                QtCore.Qt.AlignCenter | QtCore.Qt.TextWordWrap,
                view.message,
            )

    @staticmethod
    def _cross(painter: QtGui.QPainter, centre: QtCore.QPoint, half: int) -> None:
        pen = QtGui.QPen(FOREGROUND, max(2, half // 8))
        painter.setPen(pen)
        painter.drawLine(centre.x() - half, centre.y(), centre.x() + half, centre.y())
        painter.drawLine(centre.x(), centre.y() - half, centre.x(), centre.y() + half)

    @staticmethod
    def _bars(painter: QtGui.QPainter, rect: QtCore.QRect, side: int, view: CueView) -> None:
        """One horizontal bar per class (length = probability); the leader is highlighted."""
        n = len(view.classes)
        height = max(10, side // 22)
        width = rect.width() * 2 // 3
        left = rect.center().x() - width // 2
        top = rect.bottom() - (n + 1) * (height + 6)
        leader = int(np.argmax(view.probabilities))
        painter.setFont(QtGui.QFont("Sans", max(8, height * 2 // 3)))
        for i, (name, p) in enumerate(zip(view.classes, view.probabilities, strict=True)):
            y = top + i * (height + 6)
            painter.fillRect(left, y, width, height, QtGui.QColor(50, 50, 58))
            colour = HIT_COLOUR if i == leader else BAR_COLOUR
            painter.fillRect(left, y, round(width * float(p)), height, colour)
            painter.setPen(FOREGROUND)
            painter.drawText(
                QtCore.QRect(left - 160, y, 150, height),
                QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter,
                name.replace("_", " "),
            )
