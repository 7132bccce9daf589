"""Electrode weights panel: the decoder's weight per electrode as bars (latest window,
or running mean with +-1 SD over the recent windows), sortable, plus an interpolated scalp map
of the same values (:class:`ScalpMap`; the maths is in :mod:`bci_app.gui.topomap`)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtGui, QtWidgets

from bci_app.gui.common import Frame, plot_widget
from bci_app.gui.topomap import HEAD_RADIUS, Topomap, build_topomap

LABEL_PX = 30  # horizontal pixels one electrode label needs
HEAD_PERIOD_S = 0.25  # the map is recoloured at most this often (~0.1 ms + a 1-2 ms paint)
MAP_PIXELS = 64  # the map's grid, per side
MISSING_SHOWN = 8  # unplaced labels named under the map; the rest in its tooltip
LATEST, MEAN = "latest window", "running mean ± SD"
MONTAGE, SORTED = "montage order", "sorted by weight"


class ScalpMap(QtWidgets.QWidget):
    """Interpolated topographic map of one value per electrode (nose up, MNE's projection):
    an image coloured through a LUT at per-call levels, head outline, nose and ears, a dot
    per placed electrode (hover: ``label: value``) and, under it, the labels that have no
    position (listed, never placed)."""

    def __init__(self) -> None:
        super().__init__()
        self.plot = plot_widget()
        self.plot.setMouseEnabled(False, False)
        self.plot.setAspectLocked(True)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.colormap = pg.colormap.get("viridis")
        self.image = pg.ImageItem(axisOrder="row-major")  # NaN (outside the head): transparent
        self.image.setLookupTable(self.colormap.getLookupTable(nPts=256, alpha=False))
        self.plot.addItem(self.image)
        pen = pg.mkPen((160, 160, 160), width=2)
        self.outline = [self.plot.plot(pen=pen) for _ in range(4)]  # head, nose, two ears
        self.scatter = pg.ScatterPlotItem(
            size=5,
            pen=None,
            brush=(20, 20, 20),
            hoverable=True,
            hoverSize=9,
            hoverBrush=(250, 250, 250),
            tip=self._tip,
        )
        self.plot.addItem(self.scatter)
        for z, item in enumerate((self.image, *self.outline, self.scatter)):
            item.setZValue(z)
        self.missing = QtWidgets.QLabel("")
        self.missing.setWordWrap(True)
        self.missing.setVisible(False)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.missing)
        self.topomap: Topomap | None = None
        self.values = np.zeros(0)  # drawn values of the placed electrodes (model order)
        self.levels = (0.0, 1.0)  # colour range of the last draw
        self._pixels: np.ndarray | None = None  # (MAP_PIXELS, MAP_PIXELS) float32 buffer
        self._outline(HEAD_RADIUS, HEAD_RADIUS)

    def bind(self, labels: tuple[str, ...]) -> bool:
        """Place ``labels``; the map is built once per label set (cached). Returns whether
        enough of them have a position for a map."""
        self.topomap = build_topomap(tuple(labels), MAP_PIXELS) if labels else None
        missing = self.topomap.missing if self.topomap is not None else tuple(labels)
        shown = ", ".join(missing[:MISSING_SHOWN])
        if len(missing) > MISSING_SHOWN:
            shown += f" (+{len(missing) - MISSING_SHOWN} more)"
        self.missing.setText(f"no position: {shown}" if missing else "")
        self.missing.setToolTip(", ".join(missing))
        self.missing.setVisible(bool(missing))
        self.values = np.zeros(0)
        self.image.clear()
        if self.topomap is None:
            self.scatter.clear()
            self._pixels = None
            return False
        topo = self.topomap
        self._pixels = np.full((topo.size, topo.size), np.nan, dtype=np.float32)
        pixel = 2 * topo.radius / topo.size  # projection units per image pixel
        self.image.setTransform(
            QtGui.QTransform.fromTranslate(-topo.radius, -topo.radius).scale(pixel, pixel)
        )
        self.scatter.setData(pos=topo.xy, data=np.arange(len(topo.known)))
        self._outline(HEAD_RADIUS, topo.radius)
        return True

    def _outline(self, head: float, extent: float) -> None:
        angle = np.linspace(0.0, 2.0 * np.pi, 101)
        head_line, nose, left, right = self.outline
        head_line.setData(head * np.cos(angle), head * np.sin(angle))
        nose.setData(head * np.array([-0.1, 0.0, 0.1]), head * np.array([0.995, 1.12, 0.995]))
        ear = np.linspace(-0.5 * np.pi, 0.5 * np.pi, 25)
        ear_x, ear_y = head * (1.0 + 0.07 * np.cos(ear)), head * 0.16 * np.sin(ear)
        right.setData(ear_x, ear_y)
        left.setData(-ear_x, ear_y)
        reach = max(extent, 1.13 * head) * 1.02
        self.plot.setRange(xRange=(-reach, reach), yRange=(-reach, reach), padding=0)

    def draw(self, values: np.ndarray) -> None:
        """Recolour the map with ``values (n_labels,)`` in the bound labels' order."""
        topo = self.topomap
        if topo is None or self._pixels is None:
            return
        known = np.asarray(values, dtype=np.float64)[topo.known]
        finite = known[np.isfinite(known)]  # a NaN weight blanks the map, not the levels
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if not high > low:
            low, high = low - 0.5, low + 0.5
        self.values, self.levels = known, (low, high)
        topo.render(known, self._pixels)
        self.image.setImage(self._pixels, autoLevels=False, levels=self.levels)

    def _tip(self, x: float, y: float, data: int) -> str:
        """Hover text of the electrode at index ``data`` of the placed ones."""
        del x, y
        if self.topomap is None:
            return ""
        label = self.topomap.known_labels[int(data)]
        if int(data) >= len(self.values):
            return label
        return f"{label}: {self.values[int(data)]:.3g}"


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

        self.scalp = ScalpMap()
        self.scatter = self.scalp.scatter  # the electrode dots of the map

        body = QtWidgets.QHBoxLayout()
        body.addWidget(self.plot, 3)
        body.addWidget(self.scalp, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addLayout(body, 1)
        self.head.toggled.connect(self.scalp.setVisible)
        self.head.toggled.connect(self._invalidate)
        for box in (self.mode, self.order):
            box.currentIndexChanged.connect(self._invalidate)

        self.labels: tuple[str, ...] = ()
        self.shown_seq: int | None = None  # window of the latest prediction drawn
        self._key: tuple | None = None
        self._heights = np.zeros(0)
        self._order = np.zeros(0, dtype=np.intp)
        self._top = 0.0  # y range shown
        self._ticks: list | None = None
        self._head_drawn = -np.inf  # LSL time the head map was last coloured
        self._map_values: np.ndarray | None = None  # values (model order) not yet on the map

    def bind(self, labels: tuple[str, ...], decoder: str = "", meaning: str = "") -> None:
        """New model: ``labels`` of its electrodes, in model order (the weights' order); the
        ``decoder`` kind and what its weights ``meaning`` is go in the title and tooltip."""
        self.labels = tuple(labels)
        self.setTitle(f"Electrode weights ({decoder})" if decoder else "Electrode weights")
        self.setToolTip(meaning)
        self._invalidate()
        drawable = self.scalp.bind(self.labels)
        self.head.setEnabled(drawable)
        self.head.setToolTip("" if drawable else "too few electrodes with a known position")
        self.scalp.setVisible(drawable and self.head.isChecked())

    def _invalidate(self) -> None:
        self._key = None
        self._map_values = None
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
        if key != self._key:
            self._key = key
            self._map_values = self._draw_bars(frame, width)
        if self._map_values is not None and frame.now - self._head_drawn >= HEAD_PERIOD_S:
            self._head_drawn = frame.now  # values held back by the period are drawn now
            if self.scalp.isVisible():
                self.scalp.draw(self._map_values)
            self._map_values = None

    def _draw_bars(self, frame: Frame, width: int) -> np.ndarray:
        """Bars of the latest prediction or the recent mean; returns the values drawn
        ``(n_electrodes,)`` in model order."""
        latest = frame.prediction
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
        return values
