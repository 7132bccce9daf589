"""The SSVEP stimulus: flickering targets locked to the display's refresh, one frame at a time.

A target of ``f`` Hz on a display refreshing at ``R`` Hz is a square wave over frames: on for
``k`` frames, off for ``m`` frames, ``k + m = R / f`` (which must be a whole number; ``k`` is the
larger half). A frequency the display cannot produce that way is refused with the nearest ones it
can (:func:`check_frequency`). The targets' state is a function of the frame counter since the
stimulation began, never of the wall clock, so a frame that comes late delays the wave instead
of tearing it.

Frames come from the display's vertical sync where Qt can wait for it: a ``QOpenGLWidget``
canvas repainted on each ``frameSwapped``. Whether the swaps really wait for the refresh is
measured on the first frames; where they do not (Xvfb, some drivers, a ``--refresh`` that is not
the display's), and where there is no OpenGL at all (the offscreen platform), a precise timer at
the refresh period drives synchronous repaints instead, and :attr:`FlickerScreen.frame_source`
says so. Each frame's paint-finish time (``pylsl.local_clock``) is kept in
:attr:`FlickerScreen.frame_log`.

The cue paradigm (:class:`FlickerRun`) reuses the calibration's controller: its fixation phase
shows the cue (the target to look at outlined, or the fixation point for ``rest``), its cue
phase is the stimulation (every target flickers; ``rest`` looks at the fixation point), then a
rest without flicker. The class name marker is stamped with the paint time of the first
stimulation frame.

The functions above :class:`FlickerScreen` use no Qt.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pylsl
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.calibrate.controller import CalibrationController, MarkerOutlet, Phase
from bci_app.calibrate.paradigm import ParadigmPlanner
from bci_app.calibrate.settings import Timings
from bci_app.config import SSVEP_REST, stimulation_frequency
from bci_app.errors import InvalidArgument, UserError
from bci_app.infer.latency import summarize_ms

__all__ = [
    "FlickerRun",
    "FlickerScreen",
    "FlickerTarget",
    "FlickerWindow",
    "UnproducibleFrequency",
    "check_frequency",
    "flicker_targets",
    "producible_frequencies",
]

log = logging.getLogger(__name__)

#: A frequency counts as producible when refresh / n is within this share of it (a display at
#: 59.94 Hz plays 12 Hz as 11.988 Hz: 0.1 % off).
FREQUENCY_TOLERANCE = 0.002
MARKERS_NAME = "bci-app-flicker-markers"
VSYNC_PROBE_FRAMES = 30  # swaps measured before trusting vsync ...
VSYNC_PROBE_S = 0.5  # ... or as many as come in this long (at least 5)
VSYNC_MATCH = (0.85, 1.15)  # measured swap period / refresh period accepted as vsync
LATE_FRAME = 1.5  # a frame interval above this many refresh periods is a dropped frame


class UnproducibleFrequency(UserError, ValueError):
    """A stimulation frequency that is not the refresh rate over a whole number of frames."""


# -- frequencies and frames (no Qt) ---------------------------------------------------------
def producible_frequencies(refresh_hz: float, low: float, high: float) -> list[float]:
    """Every ``refresh_hz / n`` (n >= 2 whole frames per cycle) inside ``[low, high]`` Hz,
    ascending."""
    if not (math.isfinite(refresh_hz) and refresh_hz > 0):
        raise InvalidArgument(f"the refresh rate must be a positive number of Hz, got {refresh_hz}")
    if not (0 < low <= high):
        raise InvalidArgument(f"need 0 < low <= high (Hz), got low={low}, high={high}")
    eps = 1e-9
    first = max(2, math.ceil(refresh_hz / high - eps))
    last = math.floor(refresh_hz / low + eps)
    return [refresh_hz / n for n in range(last, first - 1, -1)]


def _nearest(frequency_hz: float, refresh_hz: float) -> list[tuple[float, int]]:
    """The producible frequencies just below and just above ``frequency_hz``, with their
    frames per cycle."""
    exact = refresh_hz / frequency_hz
    frames = sorted({max(2, math.floor(exact)), max(2, math.ceil(exact))}, reverse=True)
    return [(refresh_hz / n, n) for n in frames]


def check_frequency(frequency_hz: float, refresh_hz: float) -> int:
    """Frames per cycle of ``frequency_hz`` on a ``refresh_hz`` display; raises
    :class:`UnproducibleFrequency` naming the nearest producible frequencies otherwise."""
    if not (math.isfinite(frequency_hz) and frequency_hz > 0):
        raise InvalidArgument(f"a stimulation frequency must be positive, got {frequency_hz} Hz")
    if not (math.isfinite(refresh_hz) and refresh_hz > 0):
        raise InvalidArgument(f"the refresh rate must be a positive number of Hz, got {refresh_hz}")
    frames = round(refresh_hz / frequency_hz)
    if (
        frames >= 2
        and abs(refresh_hz / frames - frequency_hz) <= FREQUENCY_TOLERANCE * frequency_hz
    ):
        return frames
    nearest = " and ".join(
        f"{f:.4g} Hz ({n} frames)" for f, n in _nearest(frequency_hz, refresh_hz)
    )
    why = (
        f"above half the refresh rate ({refresh_hz / 2:g} Hz)"
        if refresh_hz / frequency_hz < 2
        else f"{refresh_hz:g} / {frequency_hz:g} = {refresh_hz / frequency_hz:.3g} frames"
    )
    raise UnproducibleFrequency(
        f"{frequency_hz:g} Hz cannot flicker on a {refresh_hz:g} Hz display: a cycle must last a "
        f"whole number of frames ({why}); nearest it can produce: {nearest}. Choose one of "
        f"those, or give the display's true rate with --refresh"
    )


@dataclass(frozen=True)
class FlickerTarget:
    """One stimulation target: class ``name``, requested ``frequency_hz``, and its square wave
    in frames (``on`` + ``off`` = ``frames`` per cycle)."""

    name: str
    frequency_hz: float
    frames: int
    on: int
    off: int

    def produced_hz(self, refresh_hz: float) -> float:
        return refresh_hz / self.frames

    def lit(self, frame: int) -> bool:
        """On at ``frame`` (0 = the first stimulation frame)?"""
        return frame % self.frames < self.on


def flicker_targets(classes: Sequence[str], refresh_hz: float) -> list[FlickerTarget]:
    """One target per ``<number>Hz`` class (``rest`` has none), in class order; every
    frequency checked against ``refresh_hz``."""
    targets = []
    for name in classes:
        try:
            frequency = stimulation_frequency(name)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        if frequency is None:  # rest: no target
            continue
        frames = check_frequency(frequency, refresh_hz)
        on = (frames + 1) // 2
        targets.append(FlickerTarget(name, frequency, frames, on, frames - on))
    if not targets:
        raise InvalidArgument(f"no '<number>Hz' class among {list(classes)}: nothing to flicker")
    return targets


# -- the screen -----------------------------------------------------------------------------
BACKGROUND = QtGui.QColor(0, 0, 0)
TARGET_ON = QtGui.QColor(255, 255, 255)
TARGET_IDLE = QtGui.QColor(70, 70, 78)
OUTLINE = QtGui.QColor(90, 90, 100)
CUE_COLOUR = QtGui.QColor(255, 200, 60)
TEXT_COLOUR = QtGui.QColor(200, 200, 210)


@dataclass(frozen=True)
class FlickerView:
    """What to draw: ``stimulating`` (targets flicker), ``cue`` (the class to look at, outlined;
    ``rest``: the fixation point), small ``status`` text and a centred ``message``."""

    stimulating: bool = False
    cue: str | None = None
    status: str = ""
    message: str = ""


@dataclass(frozen=True)
class FrameRecord:
    """One painted frame: its number, paint-finish time (LSL s), frame since the stimulation
    began (None outside it) and each target's state."""

    frame: int
    time: float
    stimulation_frame: int | None
    lit: tuple[bool, ...]


def _gl_available() -> bool:
    """An OpenGL context can be made here (not on the offscreen or minimal platforms)."""
    app = QtGui.QGuiApplication.instance()
    if app is None or QtGui.QGuiApplication.platformName() in ("offscreen", "minimal"):
        return False
    context = QtGui.QOpenGLContext()
    return bool(context.create())


class _RasterCanvas(QtWidgets.QWidget):
    def __init__(self, screen: FlickerScreen) -> None:
        super().__init__(screen)
        self._screen = screen
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            self._screen.paint_frame(painter, self.rect())
        finally:
            painter.end()
        self._screen.frame_painted(pylsl.local_clock())


class _GLCanvas(QtWidgets.QOpenGLWidget):
    def __init__(self, screen: FlickerScreen) -> None:
        super().__init__(screen)
        self._screen = screen

    def paintGL(self) -> None:
        painter = QtGui.QPainter(self)
        try:
            self._screen.paint_frame(painter, self.rect())
        finally:
            painter.end()
        self._screen.frame_painted(pylsl.local_clock())


class FlickerScreen(QtWidgets.QWidget):
    """``targets`` on a circle round a fixation point, painted once per frame of a
    ``refresh_hz`` display. ``on_frame(now)`` (set by the driver) returns the view of each new
    frame before it is painted; ``on_painted(stamp)`` hears when it was. ``vsync`` False: always
    the precise timer."""

    def __init__(
        self,
        targets: Sequence[FlickerTarget],
        refresh_hz: float,
        vsync: bool = True,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.targets = list(targets)
        self.refresh_hz = float(refresh_hz)
        self.period_s = 1.0 / self.refresh_hz
        self.setMinimumSize(480, 400)
        self.view = FlickerView()
        self.on_frame: Callable[[float], FlickerView] | None = None
        self.on_painted: Callable[[float], None] | None = None
        self.frame = -1  # the frame being shown (0-based)
        self.frame_log: deque[FrameRecord] = deque(maxlen=1 << 16)
        self.late_ticks = 0  # timer mode: ticks more than a frame late (the wave waited)
        self._stimulation_start: int | None = None
        self._logged = -1
        self._running = False
        self._swaps: list[float] = []
        self._swap_driven = False  # frameSwapped is connected to _swapped
        use_gl = vsync and _gl_available()
        self.canvas: QtWidgets.QWidget = _GLCanvas(self) if use_gl else _RasterCanvas(self)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.frame_source = "vsync" if use_gl else "timer"
        self.frame_note = (
            "measuring whether the display's swaps wait for its refresh"
            if use_gl
            else "no OpenGL here (" + QtGui.QGuiApplication.platformName() + "), no vsync: "
            f"frames driven by a precise timer at {self.refresh_hz:g} Hz"
            if vsync
            else f"frames driven by a precise timer at {self.refresh_hz:g} Hz (vsync not asked)"
        )
        self.settled = not use_gl  # vsync is trusted only once measured
        self.settled_frame = -1  # frames after this one are paced as frame_source says
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.PreciseTimer)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._timer_frame)
        self._deadline = 0.0

    # -- the frame clock ---------------------------------------------------------------------
    def start_frames(self) -> None:
        """Begin painting a frame per refresh (GUI thread)."""
        if self._running:
            return
        self._running = True
        if isinstance(self.canvas, _GLCanvas):
            self.canvas.frameSwapped.connect(self._swapped)
            self._swap_driven = True
            self._next_frame(pylsl.local_clock())
            self.canvas.update()
        else:
            self._deadline = pylsl.local_clock()
            self._timer_frame()

    def stop_frames(self) -> None:
        """Stop painting frames; idempotent."""
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        self._stop_swap_driving()

    def _stop_swap_driving(self) -> None:
        if self._swap_driven:
            self.canvas.frameSwapped.disconnect(self._swapped)
            self._swap_driven = False

    @property
    def running(self) -> bool:
        return self._running

    def _timer_frame(self) -> None:
        if not self._running:
            return
        now = pylsl.local_clock()
        if now - self._deadline > self.period_s:  # more than a frame late: restart the grid
            self.late_ticks += 1
            self._deadline = now
        self._next_frame(now)
        self.canvas.repaint()
        self._deadline += self.period_s
        self._timer.start(max(0, round((self._deadline - pylsl.local_clock()) * 1000)))

    def _swapped(self) -> None:
        if not self._running:
            return
        now = pylsl.local_clock()
        if not self.settled:
            self._swaps.append(now)
            swaps = self._swaps
            if len(swaps) > VSYNC_PROBE_FRAMES or (
                len(swaps) > 5 and swaps[-1] - swaps[0] > VSYNC_PROBE_S
            ):
                self._judge_vsync()
                if self.frame_source == "timer":
                    return
        self._next_frame(now)
        self.canvas.update()

    def _judge_vsync(self) -> None:
        measured = float(np.median(np.diff(self._swaps)))
        ratio = measured / self.period_s
        self.settled = True
        self.settled_frame = self.frame
        if VSYNC_MATCH[0] <= ratio <= VSYNC_MATCH[1]:
            self.frame_note = (
                f"vsync: a frame per swap, measured {1 / measured:.2f} Hz for {self.refresh_hz:g}"
            )
            return
        self.frame_note = (
            f"swaps do not wait for a {self.refresh_hz:g} Hz refresh (measured every "
            f"{measured * 1e3:.2f} ms): frames driven by a precise timer instead"
        )
        log.warning("flicker: %s", self.frame_note)
        self.frame_source = "timer"
        self._stop_swap_driving()
        gl_canvas, self.canvas = self.canvas, _RasterCanvas(self)
        self.layout().replaceWidget(gl_canvas, self.canvas)
        gl_canvas.hide()
        gl_canvas.deleteLater()
        self.canvas.show()
        self._deadline = pylsl.local_clock()
        self._timer_frame()

    def _next_frame(self, now: float) -> None:
        self.frame += 1
        if self.on_frame is not None:
            self.view = self.on_frame(now)
        if self.view.stimulating:
            if self._stimulation_start is None:
                self._stimulation_start = self.frame
        else:
            self._stimulation_start = None

    @property
    def stimulation_frame(self) -> int | None:
        """Frames since the stimulation began (0: its first), None outside it."""
        start = self._stimulation_start
        return None if start is None else self.frame - start

    def frame_painted(self, stamp: float) -> None:
        """(The canvas) the current frame was painted at ``stamp``; repaints of the same frame
        (an expose, a resize) are not new frames."""
        if self.frame == self._logged or self.frame < 0:
            return
        self._logged = self.frame
        k = self.stimulation_frame
        lit = tuple(k is not None and t.lit(k) for t in self.targets)
        self.frame_log.append(FrameRecord(self.frame, stamp, k, lit))
        if self.on_painted is not None:
            self.on_painted(stamp)

    # -- painting ----------------------------------------------------------------------------
    def target_rects(self, rect: QtCore.QRect) -> list[QtCore.QRectF]:
        """Each target's square round the fixation point: up to 4 on the left, top, right and
        bottom (in that order), more on a circle."""
        n = len(self.targets)
        side_px = min(rect.width(), rect.height())
        radius = 0.33 * side_px
        side = 0.2 * side_px
        slots = {1: [1.5], 2: [1.0, 0.0], 3: [1.0, 1.5, 0.0], 4: [1.0, 1.5, 0.0, 0.5]}
        angles = [a * math.pi for a in slots[n]] if n in slots else None
        if angles is None:
            angles = [math.pi + 2 * math.pi * i / n for i in range(n)]
            side = min(side, 1.3 * radius * math.sin(math.pi / n))
        cx, cy = rect.center().x(), rect.center().y()
        rects = []
        for angle in angles:
            x, y = cx + radius * math.cos(angle), cy + radius * math.sin(angle)
            rects.append(QtCore.QRectF(x - side / 2, y - side / 2, side, side))
        return rects

    def paint_frame(self, painter: QtGui.QPainter, rect: QtCore.QRect) -> None:
        """Paint the current frame (the canvas calls this)."""
        view = self.view
        painter.fillRect(rect, BACKGROUND)
        k = self.stimulation_frame
        side_px = min(rect.width(), rect.height())
        label_font = QtGui.QFont("Sans", max(8, side_px // 40))
        for target, box in zip(self.targets, self.target_rects(rect), strict=True):
            if k is not None:
                if target.lit(k):
                    painter.fillRect(box, TARGET_ON)
            else:
                painter.fillRect(box, TARGET_IDLE)
            painter.setPen(QtGui.QPen(OUTLINE, 1))
            painter.drawRect(box)
            if view.cue == target.name:
                pad = box.width() * 0.12
                painter.setPen(QtGui.QPen(CUE_COLOUR, max(3.0, box.width() / 20)))
                painter.drawRect(box.adjusted(-pad, -pad, pad, pad))
            painter.setPen(TEXT_COLOUR)
            painter.setFont(label_font)
            below = box.bottom() + box.width() * 0.2
            label = QtCore.QRectF(box.left() - box.width(), below, 3 * box.width(), side_px / 20)
            painter.drawText(label, QtCore.Qt.AlignHCenter | QtCore.Qt.AlignTop, target.name)
        centre = rect.center()
        resting_cue = view.cue is not None and view.cue.strip().lower() == SSVEP_REST
        half = max(4, side_px // (25 if resting_cue else 60))
        painter.setPen(QtGui.QPen(CUE_COLOUR if resting_cue else TEXT_COLOUR, max(2, half // 4)))
        painter.drawLine(centre.x() - half, centre.y(), centre.x() + half, centre.y())
        painter.drawLine(centre.x(), centre.y() - half, centre.x(), centre.y() + half)
        if view.status:
            painter.setPen(TEXT_COLOUR)
            painter.setFont(QtGui.QFont("Sans", max(8, side_px // 50)))
            painter.drawText(rect.adjusted(8, 4, -8, -4), QtCore.Qt.AlignTop, view.status)
        if view.message:
            painter.setPen(TEXT_COLOUR)
            painter.setFont(QtGui.QFont("Sans", max(10, side_px // 30)))
            box = QtCore.QRect(
                rect.left(), rect.bottom() - side_px // 6, rect.width(), side_px // 8
            )
            painter.drawText(box, QtCore.Qt.AlignCenter | QtCore.Qt.TextWordWrap, view.message)

    def frame_intervals(self) -> np.ndarray:
        """Seconds between consecutive painted frames (since the frame clock settled)."""
        records = [r for r in self.frame_log if r.frame > self.settled_frame]
        times = np.asarray([r.time for r in records])
        frames = np.asarray([r.frame for r in records])
        if times.size < 2:
            return np.zeros(0)
        consecutive = np.diff(frames) == 1
        return np.diff(times)[consecutive]


# -- the cue paradigm -----------------------------------------------------------------------
class FlickerRun:
    """The cue paradigm on ``screen``, driven by its frames: ``controller`` ticks once per
    frame; its fixation phase is the cue, its cue phase the stimulation. ``on_finished`` is
    called (after the frame) when every class has its trials."""

    def __init__(
        self,
        screen: FlickerScreen,
        controller: CalibrationController,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.screen = screen
        self.controller = controller
        self.on_finished = on_finished
        self._done = False
        screen.on_frame = self._frame
        screen.on_painted = self._painted

    def _frame(self, now: float) -> FlickerView:
        controller = self.controller
        if controller.phase is Phase.IDLE:
            if not self.screen.settled:
                return FlickerView(message="measuring the display's refresh")
            controller.start(now)
        phase = controller.tick(now)
        trial = controller.current
        status = self.status_text()
        if phase is Phase.FINISHED:
            if not self._done and self.on_finished is not None:
                QtCore.QTimer.singleShot(0, self.on_finished)
            self._done = True
            return FlickerView(status=status, message="Done.")
        if phase is Phase.PAUSED:
            return FlickerView(status=status, message=controller.pause_reason)
        if phase is Phase.FIXATION and trial is not None:
            return FlickerView(cue=trial.class_name, status=status)
        return FlickerView(stimulating=phase is Phase.CUE, status=status)

    def _painted(self, stamp: float) -> None:
        if self.screen.stimulation_frame is not None:  # cue_drawn stamps the first one only
            self.controller.cue_drawn(stamp)

    def toggle_pause(self, now: float) -> None:
        if self.controller.phase is Phase.PAUSED:
            self.controller.resume(now)
        else:
            self.controller.pause(now, "Paused (the trial in progress is not used). Space resumes.")

    def status_text(self) -> str:
        counts = self.controller.valid_counts()
        n = self.controller.trials_per_class
        return "  ".join(f"{c} {counts[c]}/{n}" for c in counts)


class FlickerWindow(QtWidgets.QMainWindow):
    """The SSVEP cue paradigm as a window: ``trials_per_class`` trials of each class, class
    markers on ``markers_name``. Space pauses, Esc ends, F11 full screen. Raises
    :class:`UnproducibleFrequency` for a frequency the refresh cannot make."""

    def __init__(
        self,
        classes: Sequence[str],
        refresh_hz: float,
        trials_per_class: int,
        timings: Timings,
        seed: int = 0,
        markers_name: str = MARKERS_NAME,
        vsync: bool = True,
        close_when_done: bool = True,
    ) -> None:
        classes = list(classes)
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise InvalidArgument(
                f"the flicker paradigm needs at least 2 distinct classes (e.g. 12Hz 15Hz rest), "
                f"got {classes}"
            )
        if trials_per_class < 1:
            raise InvalidArgument(f"trials per class must be >= 1, got {trials_per_class}")
        targets = flicker_targets(classes, refresh_hz)  # refuses what the display cannot make
        super().__init__()
        self.setWindowTitle("bci-app: SSVEP flicker")
        self.resize(900, 760)
        self.classes = classes
        self.markers = MarkerOutlet(markers_name)
        self.controller = CalibrationController(
            ParadigmPlanner(classes, timings, seed), classes, trials_per_class, self.markers
        )
        self.screen_widget = FlickerScreen(targets, refresh_hz, vsync=vsync)
        self.setCentralWidget(self.screen_widget)
        self.run = FlickerRun(
            self.screen_widget, self.controller, self.close if close_when_done else None
        )
        for key, slot in (
            (QtCore.Qt.Key_Space, lambda: self.run.toggle_pause(pylsl.local_clock())),
            (QtCore.Qt.Key_Escape, self.close),
            (QtCore.Qt.Key_F11, self._toggle_full_screen),
        ):
            QtWidgets.QShortcut(QtGui.QKeySequence(key), self, activated=slot)

    def start(self) -> None:
        """Start the frames (call after show())."""
        self.screen_widget.start_frames()

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def summary(self) -> dict:
        screen, controller = self.screen_widget, self.controller
        intervals = screen.frame_intervals()
        return {
            "classes": self.classes,
            "refresh_hz": screen.refresh_hz,
            "frame_source": screen.frame_source,
            "frame_note": screen.frame_note,
            "targets": {
                t.name: {
                    "frequency_hz": round(t.produced_hz(screen.refresh_hz), 6),
                    "frames_on": t.on,
                    "frames_off": t.off,
                }
                for t in screen.targets
            },
            "trials": len(controller.trials),
            "valid_trials": controller.valid_counts(),
            "finished": controller.phase is Phase.FINISHED,
            "frames": screen.frame + 1,
            "frame_interval_ms": summarize_ms(intervals),
            "late_frames": int(np.sum(intervals > LATE_FRAME * screen.period_s)),
            "cue_draw_lateness_ms": summarize_ms(controller.draw_lateness()),
            "markers": {"name": self.markers.name, "source_id": self.markers.source_id},
        }

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.screen_widget.stop_frames()
        if self.controller.phase is not Phase.FINISHED:
            self.controller.abort(pylsl.local_clock())
        super().closeEvent(event)
