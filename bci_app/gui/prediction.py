"""Prediction panel: the current class in large type, a bar per class probability, and a strip
of the last seconds of probabilities with the cues (marker stream) drawn against it. With a P300
model the large type is the text the speller has spelled (one probability per flash epoch is
not a decision), with its flash and epoch counts under it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtWidgets

from bci_app.gui.common import Frame, class_color, plot_widget
from bci_app.infer.worker import Prediction

CUE_LINES = 8
SPELLED_SHOWN = 16  # characters of the spelled text in large type (the newest)
DETAIL_PERIOD_S = 0.2  # the text under the class is rewritten at most this often


class PredictionPanel(QtWidgets.QGroupBox):
    """Shows ``frame.prediction``; the history spans the last ``history_s`` seconds."""

    def __init__(self, history_s: float = 10.0) -> None:
        super().__init__("Prediction")
        self.history_s = history_s
        self.class_label = QtWidgets.QLabel("-")
        font = self.class_label.font()
        font.setPointSize(28)
        font.setBold(True)
        self.class_label.setFont(font)
        self.class_label.setAlignment(QtCore.Qt.AlignCenter)
        self.detail = QtWidgets.QLabel("waiting for the first window")
        self.detail.setAlignment(QtCore.Qt.AlignCenter)

        self.bars_plot = plot_widget(bottom="probability")
        self.bars_plot.setMouseEnabled(False, False)
        self.bars_plot.setXRange(0, 1, padding=0.02)
        self.bars_plot.getViewBox().invertY(True)  # first class on top
        self.bars = pg.BarGraphItem(x0=0, y=[], width=[], height=0.7)
        self.bars_plot.addItem(self.bars)

        self.history = plot_widget(bottom="time before now (s)")
        self.history.setMouseEnabled(False, False)
        self.history.setXRange(-history_s, 0, padding=0)
        self.history.setYRange(0, 1, padding=0.02)
        # No legend: the curves have the colours of the labelled probability bars above.
        # Curves and cue lines live in LSL time minus a fixed origin, inside one group that is
        # moved to "now" each frame: new data only when a prediction or cue arrives.
        self.strip = pg.ItemGroup()
        self.history.addItem(self.strip)
        self.origin: float | None = None  # LSL time at x = 0 inside the strip
        self.curves: list[pg.PlotDataItem] = []
        self.cue_lines: list[tuple[pg.InfiniteLine, pg.TextItem]] = []
        for _ in range(CUE_LINES):
            line = pg.InfiniteLine(angle=90, movable=False)
            text = pg.TextItem(anchor=(0, 0))
            for item in (line, text):
                item.hide()
                item.setParentItem(self.strip)
            self.cue_lines.append((line, text))
        self._drawn: tuple | None = None  # (newest prediction, cues) in the strip
        self._detail_time = -np.inf

        top = QtWidgets.QHBoxLayout()
        text = QtWidgets.QVBoxLayout()
        text.addWidget(self.class_label)
        text.addWidget(self.detail)
        top.addLayout(text, 1)
        top.addWidget(self.bars_plot, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top, 1)
        layout.addWidget(self.history, 1)
        self.classes: tuple[str, ...] = ()
        self.shown: Prediction | None = None

    def bar_values(self) -> np.ndarray:
        """The probability bars as drawn ``(n_classes,)``, in class order."""
        return np.asarray(self.bars.opts["width"], dtype=float).copy()

    def bind(self, classes: tuple[str, ...]) -> None:
        """New model: one bar and one history curve per class."""
        self.classes = tuple(classes)
        self.shown = None
        k = len(self.classes)
        self.bars.setOpts(
            x0=0,
            y=np.arange(k),
            width=np.zeros(k),
            height=0.7,
            brushes=[pg.mkBrush(class_color(i)) for i in range(k)],
        )
        self.bars_plot.setYRange(-0.5, k - 0.5, padding=0)
        self.bars_plot.getAxis("left").setTicks([list(enumerate(self.classes)), []])
        for curve in self.curves:
            curve.setParentItem(None)
            self.history.scene().removeItem(curve)
        self.curves = []
        for i, name in enumerate(self.classes):
            curve = pg.PlotDataItem([], [], pen=pg.mkPen(class_color(i), width=2), name=name)
            curve.setParentItem(self.strip)
            self.curves.append(curve)
        self.origin, self._drawn = None, None
        if not self.classes:
            self.class_label.setText("-")
            self.detail.setText("no model loaded: the app shows the signals only")

    def update_frame(self, frame: Frame) -> None:
        if not self.classes:
            return
        prediction = frame.prediction
        erp = None if frame.status is None else frame.status.erp
        if erp is not None:
            spelled = "".join(erp.characters)[-SPELLED_SHOWN:] or "…"
            if self.class_label.text() != spelled:
                self.class_label.setText(spelled)
                self.class_label.setStyleSheet("")
        if prediction is not None and prediction is not self.shown:
            self.shown = prediction
            if erp is None and self.class_label.text() != prediction.class_name:
                color = pg.mkColor(class_color(prediction.class_index)).name()
                self.class_label.setText(prediction.class_name)
                self.class_label.setStyleSheet(f"color: {color}")
            self.bars.setOpts(width=np.asarray(prediction.probabilities, dtype=float))
        self._draw_history(frame)

    def _draw_history(self, frame: Frame) -> None:
        predictions = frame.predictions
        if self.origin is None:
            self.origin = frame.now
        cues = [(t, text) for t, text in frame.markers if t >= frame.now - self.history_s]
        cues = cues[-len(self.cue_lines) :]
        newest = predictions[-1] if predictions else None
        if (newest, cues) != self._drawn:
            self._drawn = (newest, cues)
            if predictions:
                t = np.array([p.timestamp for p in predictions]) - self.origin
                probabilities = np.stack([p.probabilities for p in predictions])
                for i, curve in enumerate(self.curves):
                    curve.setData(t, probabilities[:, i])
            for (line, label), (t, text) in zip(self.cue_lines, cues, strict=False):
                index = self.classes.index(text) if text in self.classes else None
                color = (200, 200, 200) if index is None else class_color(index)
                line.setPen(pg.mkPen(color, width=2))
                line.setPos(t - self.origin)
                label.setText(text, color=color)
                label.setPos(t - self.origin, 1.0)
                line.show()
                label.show()
            for line, label in self.cue_lines[len(cues) :]:
                line.hide()
                label.hide()
        self.strip.setPos(self.origin - frame.now, 0)  # scroll: x = time before now
        shown = self.shown
        if shown is None or frame.now - self._detail_time < DETAIL_PERIOD_S:
            return
        self._detail_time = frame.now
        age = frame.now - shown.timestamp
        text = f"p = {shown.probabilities[shown.class_index]:.2f}, window ended {age:.2f} s ago"
        erp = None if frame.status is None else frame.status.erp
        if erp is not None:
            text = (
                f"spelled {len(erp.characters)} characters: {erp.flashes} flashes, "
                f"{erp.epochs} epochs classified ({erp.missed} missed)\nlast epoch: "
                f"{shown.class_name} p = {shown.probabilities[shown.class_index]:.2f}, "
                f"ended {age:.2f} s ago"
            )
        if frame.markers:
            cue_time, cue = frame.markers[-1]
            text += f"\nlast cue: {cue} ({frame.now - cue_time:.1f} s ago)"
        self.detail.setText(text)
