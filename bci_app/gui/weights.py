"""Electrode weights panel: the decoder's weight per electrode as bars (latest window,
or running mean with +-1 SD over the recent windows), sortable, plus an optional head map."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtWidgets

from bci_app.gui.common import Frame, plot_widget
from bci_app.io.montage import positions

LABEL_PX = 30  # horizontal pixels one electrode label needs
HEAD_PERIOD_S = 0.25  # the head map is recoloured at most this often
LATEST, MEAN = "latest window", "running mean ± SD"
MONTAGE, SORTED = "montage order", "sorted by weight"


def head_projection(xyz: np.ndarray) -> np.ndarray:
    """Unit-sphere positions ``(n, 3)`` -> azimuthal equidistant map ``(n, 2)`` (nose up):
    radius 1 on the Fpz-T7-Oz-T8 circle, 0 at Cz."""
    theta = np.arccos(np.clip(xyz[:, 2], -1.0, 1.0)) / (np.pi / 2)
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    return np.stack([theta * np.cos(phi), theta * np.sin(phi)], axis=1)


class WeightsPanel(QtWidgets.QGroupBox):
    """One bar per electrode; ``bar_labels()`` / ``bar_heights()`` give what is drawn."""

    def __init__(self) -> None:
        super().__init__("Electrode weights")
        self.mode = QtWidgets.QComboBox()
        self.mode.addItems([LATEST, MEAN])
        self.order = QtWidgets.QComboBox()
        self.order.addItems([MONTAGE, SORTED])
        self.head = QtWidgets.QCheckBox("head map")
        self.head.setChecked(True)
        controls = QtWidgets.QHBoxLayout()
        for widget in (self.mode, self.order, self.head):
            controls.addWidget(widget)
        controls.addStretch(1)

        self.plot = plot_widget(left="weight")
        self.plot.setMouseEnabled(False, False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=(90, 160, 220))
        self.spread = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), pen=(230, 230, 230), beam=0)
        self.plot.addItem(self.bars)
        self.plot.addItem(self.spread)

        self.head_plot = plot_widget()
        self.head_plot.setMouseEnabled(False, False)
        self.head_plot.setAspectLocked(True)
        self.head_plot.hideAxis("left")
        self.head_plot.hideAxis("bottom")
        angle = np.linspace(0, 2 * np.pi, 100)
        outline = pg.mkPen((160, 160, 160), width=2)
        self.head_plot.plot(1.1 * np.cos(angle), 1.1 * np.sin(angle), pen=outline)
        self.head_plot.plot([-0.15, 0.0, 0.15], [1.09, 1.25, 1.09], pen=outline)  # nose
        self.scatter = pg.ScatterPlotItem(size=0.17, pxMode=False, pen=pg.mkPen((30, 30, 30)))
        self.head_plot.addItem(self.scatter)
        self.head_plot.setRange(xRange=(-1.3, 1.3), yRange=(-1.3, 1.3))
        self.colormap = pg.colormap.get("viridis")

        body = QtWidgets.QHBoxLayout()
        body.addWidget(self.plot, 3)
        body.addWidget(self.head_plot, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(body, 1)
        self.head.toggled.connect(self.head_plot.setVisible)
        for box in (self.mode, self.order):
            box.currentIndexChanged.connect(self._invalidate)

        self.labels: tuple[str, ...] = ()
        self.shown_seq: int | None = None  # window of the latest prediction drawn
        self._key: tuple | None = None
        self._heights = np.zeros(0)
        self._order = np.zeros(0, dtype=np.intp)
        self._head_xy: np.ndarray | None = None
        self._top = 0.0  # y range shown
        self._ticks: list | None = None
        self._head_drawn = -np.inf  # LSL time the head map was last coloured

    def bind(self, labels: tuple[str, ...], decoder: str = "", meaning: str = "") -> None:
        """New model: ``labels`` of its electrodes, in model order (the weights' order); the
        ``decoder`` kind and what its weights ``meaning`` is go in the title and tooltip."""
        self.labels = tuple(labels)
        self.setTitle(f"Electrode weights ({decoder})" if decoder else "Electrode weights")
        self.setToolTip(meaning)
        self._invalidate()
        try:
            self._head_xy = (
                head_projection(positions([lab.rstrip(".") for lab in self.labels]))
                if self.labels
                else None
            )
        except (KeyError, ValueError):  # labels outside the 10-10 system / the known sets
            self._head_xy = None
        self.head.setEnabled(self._head_xy is not None)
        self.head_plot.setVisible(self._head_xy is not None and self.head.isChecked())

    def _invalidate(self) -> None:
        self._key = None
        self._head_drawn = -np.inf

    def bar_labels(self) -> list[str]:
        """Electrode labels in bar order (left to right)."""
        return [self.labels[i] for i in self._order]

    def bar_heights(self) -> np.ndarray:
        """Bar heights ``(n_electrodes,)`` in bar order."""
        return self._heights.copy()

    def update_frame(self, frame: Frame) -> None:
        latest = frame.prediction
        if latest is None or not self.labels:
            return
        width = max(1, int(self.plot.getViewBox().width()))
        key = (latest.seq, self.mode.currentText(), self.order.currentText(), width)
        if key == self._key:
            return
        self._key = key
        self.shown_seq = latest.seq
        spread = None
        if self.mode.currentText() == MEAN:
            recent = np.stack([p.weights for p in frame.predictions] or [latest.weights])
            values, spread = recent.mean(axis=0), recent.std(axis=0)
        else:
            values = np.asarray(latest.weights, dtype=float)
        if self.order.currentText() == SORTED:
            order = np.argsort(-values, kind="stable")
        else:
            order = np.arange(len(values))
        self._order, self._heights = order, values[order]
        x = np.arange(len(values))
        self.bars.setOpts(x=x, height=self._heights)
        if spread is None:
            self.spread.setData(x=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
        else:
            self.spread.setData(x=x, y=self._heights, height=2 * spread[order])
        top = float(np.max(values + (0 if spread is None else spread))) * 1.05
        if not self._top * 0.5 < top <= self._top:  # rescale rarely: a new range redraws the axes
            self._top = top
            self.plot.setRange(xRange=(-0.6, len(values) - 0.4), yRange=(0, top), padding=0)
        step = max(1, math.ceil(len(values) * LABEL_PX / width))
        ticks = [(i, self.labels[j]) for i, j in enumerate(order) if i % step == 0]
        if ticks != self._ticks:
            self._ticks = ticks
            self.plot.getAxis("bottom").setTicks([ticks, []])
        if frame.now - self._head_drawn >= HEAD_PERIOD_S:
            self._head_drawn = frame.now
            self._draw_head(values)

    def _draw_head(self, values: np.ndarray) -> None:
        if self._head_xy is None or not self.head_plot.isVisible():
            return
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.full(len(values), 0.5)
        brushes = [pg.mkBrush(c) for c in self.colormap.mapToQColor(scaled)]
        tips = [f"{label}: {v:.3f}" for label, v in zip(self.labels, values, strict=True)]
        self.scatter.setData(pos=self._head_xy, brush=brushes, data=tips)
