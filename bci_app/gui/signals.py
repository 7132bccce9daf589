"""Signals panel: scrolling traces of every channel, filtered (or raw), with cue markers.

Each frame copies the newest samples out of the ring by absolute index (the writer is never
blocked), reduces every channel to its min/max per pixel column and paints those strokes into a
scrolling image strip (:mod:`bci_app.gui.decimate`), drawn under the axes, labels and cues.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.gui.common import Frame, class_color, plot_widget
from bci_app.gui.decimate import column_extremes, draw_spans, pack_argb
from bci_app.stream.ring import RingBuffer, RingOverrun

TRACE_COLORS = [(208, 208, 208), (127, 179, 224), (240, 192, 128), (160, 216, 160)]  # ch i % 4
MARKER_LINES = 16  # pooled cue lines
LABEL_PX = 13  # vertical pixels one channel label needs


class TraceImage(pg.GraphicsObject):
    """Pixels ``(H, W)`` uint32 ARGB (row 0 at the top) covering a rectangle of the plot.

    They are made at the plot's size in device pixels, so :meth:`paint` copies them to the
    screen unscaled (a blit, no resampling or format conversion).
    """

    def __init__(self) -> None:
        super().__init__()
        self.pixels: np.ndarray | None = None  # kept: the QImage below reads this buffer
        self._image: QtGui.QImage | None = None
        self._rect = QtCore.QRectF()

    def set_pixels(self, pixels: np.ndarray, rect: QtCore.QRectF) -> None:
        """Show ``pixels`` over ``rect`` (data coordinates)."""
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = QtCore.QRectF(rect)
        height, width = pixels.shape
        self.pixels = np.ascontiguousarray(pixels, dtype=np.uint32)
        self._image = QtGui.QImage(
            self.pixels.data, width, height, 4 * width, QtGui.QImage.Format_ARGB32_Premultiplied
        )
        self.update()

    def clear(self) -> None:
        self.pixels = self._image = None
        self.update()

    def boundingRect(self) -> QtCore.QRectF:
        return self._rect

    def paint(self, painter: QtGui.QPainter, *args: object) -> None:
        if self._image is None:
            return
        target = painter.transform().mapRect(self._rect)  # device pixels
        painter.save()
        painter.resetTransform()
        size = self._image.size()
        if abs(target.width() - size.width()) < 1 and abs(target.height() - size.height()) < 1:
            painter.drawImage(target.topLeft(), self._image)
        else:  # e.g. between a resize and the next frame
            painter.drawImage(target, self._image)
        painter.restore()


class SignalsPanel(QtWidgets.QGroupBox):
    """Traces ``y = value - i * spacing`` (microvolts) against time before now (seconds)."""

    def __init__(self, seconds: float = 5.0, max_seconds: float = 30.0) -> None:
        super().__init__("Signals")
        self.raw = QtWidgets.QCheckBox("raw")
        self.raw.setToolTip("Show the stream as received instead of the filtered signal")
        self.spacing = QtWidgets.QDoubleSpinBox()
        self.spacing.setRange(1.0, 10000.0)
        self.spacing.setValue(60.0)
        self.spacing.setSuffix(" µV")
        self.spacing.setToolTip("Vertical distance between channels (microvolts)")
        self.seconds = QtWidgets.QDoubleSpinBox()
        self.seconds.setRange(0.5, max_seconds)
        self.seconds.setSingleStep(0.5)
        self.seconds.setValue(min(seconds, max_seconds))
        self.seconds.setSuffix(" s")
        self.seconds.setToolTip("Time shown")
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.raw)
        controls.addWidget(QtWidgets.QLabel("scale"))
        controls.addWidget(self.spacing)
        controls.addWidget(QtWidgets.QLabel("window"))
        controls.addWidget(self.seconds)
        controls.addStretch(1)

        self.plot = plot_widget(bottom="time before now (s)")
        self.plot.setMouseEnabled(False, False)
        self.plot.getViewBox().disableAutoRange()
        self.plot.setXRange(-self.seconds.value(), 0, padding=0)
        self.traces = TraceImage()
        self.plot.addItem(self.traces)
        self.marker_lines = []
        for _ in range(MARKER_LINES):
            line = pg.InfiniteLine(
                angle=90, movable=False, label="", labelOpts={"position": 0.98, "fill": (0, 0, 0)}
            )
            line.hide()
            self.plot.addItem(line)
            self.marker_lines.append(line)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)

        self.labels: tuple[str, ...] = ()
        self.classes: tuple[str, ...] = ()
        self._colors = pack_argb(TRACE_COLORS)
        self._layout_key: tuple | None = None
        self._strip: np.ndarray | None = None  # (rows, columns) ARGB, scrolled each frame
        self._strip_key: tuple | None = None
        self._right = 0  # absolute column one past the strip's right edge
        self._partial = 0  # absolute column of the newest sample drawn (redrawn next frame)
        self.columns_drawn = 0  # strip width in pixel columns (a min and a max in each)
        self.columns_redrawn = 0  # columns drawn in the last frame

    def bind(self, labels: tuple[str, ...], classes: tuple[str, ...]) -> None:
        """New stream: channel ``labels`` (ring column order) and cue ``classes`` (colours)."""
        self.labels, self.classes = tuple(labels), tuple(classes)
        self._layout_key = self._strip = None
        self.traces.clear()

    def invalidate(self) -> None:
        """Forget the strip: the next frame draws every column again."""
        self._strip_key = None

    def _relayout(self) -> None:
        """Axis ranges and channel-label ticks, when the scale, window or size changed."""
        n, spacing, seconds = len(self.labels), self.spacing.value(), self.seconds.value()
        height = max(1, int(self.plot.getViewBox().height()))
        key = (n, spacing, seconds, height)
        if key == self._layout_key or n == 0:
            return
        self._layout_key = key
        self.plot.setXRange(-seconds, 0, padding=0)
        self.plot.setYRange(-spacing * n, spacing, padding=0)
        step = max(1, math.ceil(n * LABEL_PX / height))
        ticks = [(-i * spacing, self.labels[i]) for i in range(0, n, step)]
        self.plot.getAxis("left").setTicks([ticks, []])

    def update_frame(self, frame: Frame) -> None:
        pipeline = frame.pipeline
        if pipeline is None or not self.labels:
            return
        raw = self.raw.isChecked()
        trace = pipeline.trace("raw" if raw else "filtered")
        if trace is None:
            return
        self._relayout()
        seconds = self.seconds.value()
        self._draw_traces(trace.ring, trace.rate_hz, frame.now, seconds, raw)
        self._draw_markers(frame, seconds)

    def _draw_traces(
        self, ring: RingBuffer, rate: float, now: float, seconds: float, raw: bool
    ) -> None:
        """Scroll the strip to ``now`` and draw the columns whose samples are new.

        Pixel columns are fixed in LSL time (column ``k`` covers ``[k dt, (k + 1) dt)``), so a
        frame shifts the strip by whole columns and redraws only those from the column of the
        newest sample drawn before (it may have been partial) to the right edge. Any change
        of size, scale or time window, and the raw view (centred on its own mean), redraws all.
        """
        view = self.plot.getViewBox()
        scale = self.plot.devicePixelRatioF()  # one strip pixel per device pixel
        width = max(2, round(view.width() * scale))
        height = max(2, round(view.height() * scale))
        spacing, n = self.spacing.value(), len(self.labels)
        bottom, top = -spacing * n, spacing  # the y range _relayout set
        dt = seconds / width  # seconds per column
        right = math.floor(now / dt) + 1  # the strip holds columns [right - width, right)
        first = right - width
        key = (id(ring), width, height, spacing, seconds, n)
        strip = self._strip
        if raw or strip is None or key != self._strip_key:
            strip = self._strip = np.zeros((height, width), dtype=np.uint32)
            self._strip_key = key
            redraw = first
        else:
            shift = min(right - self._right, width)
            if shift > 0:
                strip[:, : width - shift] = strip[:, shift:]
                strip[:, width - shift :] = 0
            redraw = max(first, self._partial)
        self._right = right
        newest = ring.newest_timestamp()
        if newest is not None:
            count = max(2, math.ceil((newest - redraw * dt) * rate) + 2)  # from before `redraw`
            stop = ring.written
            try:
                chunk = ring.read(max(ring.oldest, stop - count), stop)
            except RingOverrun:
                chunk = None  # the writer lapped this read: redraw these columns next frame
            if chunk is not None and len(chunk.timestamps) >= 2:
                data = chunk.data
                if raw:
                    np.nan_to_num(data, copy=False)
                    data -= data.mean(axis=0)  # raw streams carry DC offsets: centre them
                x = chunk.timestamps / dt - redraw  # columns from the first one redrawn
                y = np.arange(n, dtype=np.float32) * np.float32(spacing) - data
                y += np.float32(top)
                y *= np.float32(height / (top - bottom))  # microvolts -> rows from the top
                low, high = column_extremes(x, y, right - redraw)
                strip[:, redraw - first :] = draw_spans(low, high, height, self._colors)
                self._partial = math.floor(chunk.timestamps[-1] / dt)
        x0 = first * dt - now  # the strip's left edge, in seconds before now
        self.traces.set_pixels(strip, QtCore.QRectF(x0, bottom, seconds, top - bottom))
        self.columns_drawn = width
        self.columns_redrawn = right - redraw

    def _draw_markers(self, frame: Frame, seconds: float) -> None:
        shown = [(t - frame.now, text) for t, text in frame.markers if -seconds <= t - frame.now]
        shown = shown[-len(self.marker_lines) :]
        for line, (x, text) in zip(self.marker_lines, shown, strict=False):
            set_marker(line, text, self.classes)
            line.setPos(x)
            line.show()
        for line in self.marker_lines[len(shown) :]:
            line.hide()


def set_marker(line: pg.InfiniteLine, text: str, classes: tuple[str, ...]) -> None:
    """Label ``line`` with cue ``text`` in its class colour (grey when not a class)."""
    if getattr(line, "marker_text", None) == text:
        return
    line.marker_text = text
    color = class_color(classes.index(text)) if text in classes else (200, 200, 200, 255)
    line.setPen(pg.mkPen(color, width=2))
    line.label.setFormat(text.replace("{", "{{").replace("}", "}}"))
    line.label.setColor(color)
