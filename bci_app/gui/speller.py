"""The P300 speller's screen: the matrix of ``paradigm.matrix`` with its rows and columns
flashing, the target character (copy spelling) and the text spelled so far.

:class:`SpellerRun` drives a :class:`~bci_app.calibrate.speller.SpellerSequencer` on a precise
timer (GUI thread): each flash is painted synchronously (``repaint()``) and its markers
(``char:<X>``, ``code<N>``, ``target`` / ``nontarget``) are stamped with the moment that paint
finished (``pylsl.local_clock``), as the motor-imagery cue screen does. Decided characters come
from outside (:meth:`SpellerRun.show_decision`, or :meth:`SpellerRun.post_decision` from any
thread); a decision for the character still flashing ends it early (dynamic stopping), as does
:meth:`SpellerRun.stop_character`. :class:`DecisionReader` feeds decisions from a worker's
``<prefix>-characters`` outlet (one string sample per decided character).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace

import pylsl
from pylsl.util import LostError
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.calibrate.controller import MarkerOutlet
from bci_app.calibrate.speller import (
    SpellerPhase,
    SpellerSequencer,
    SpellerSettings,
    cells_of_code,
)
from bci_app.errors import UserError
from bci_app.infer.latency import summarize_ms

__all__ = [
    "DecisionReader",
    "SpellerRun",
    "SpellerScreen",
    "SpellerView",
    "SpellerWindow",
    "resolve_decisions",
]

log = logging.getLogger(__name__)

MARKERS_NAME = "bci-app-speller-markers"
TICK_MS = 4  # the longest the driver sleeps (ms); it wakes right at each flash boundary
DECISION_POLL_MS = 20

BACKGROUND = QtGui.QColor(12, 12, 16)
SYMBOL_DIM = QtGui.QColor(110, 110, 125)
SYMBOL_LIT = QtGui.QColor(255, 255, 255)
LIT_CELL = QtGui.QColor(60, 60, 72)
TARGET_COLOUR = QtGui.QColor(255, 200, 60)
TEXT_COLOUR = QtGui.QColor(235, 235, 235)
SPELLED_COLOUR = QtGui.QColor(120, 220, 140)


@dataclass(frozen=True)
class SpellerView:
    """What to draw: ``flash_code`` lit (None: none), ``target`` cued during the pause (copy
    spelling: ``copy_text`` with the character at ``position``), ``spelled`` so far."""

    matrix: tuple[str, ...]
    phase: SpellerPhase = SpellerPhase.IDLE
    flash_code: int | None = None
    target: str | None = None
    copy_text: str | None = None
    position: int = 0
    spelled: str = ""
    status: str = ""
    message: str = ""


class SpellerScreen(QtWidgets.QWidget):
    """Paints a :class:`SpellerView`; keeps the time each paint finished (LSL s) with the code
    it showed in :attr:`paint_log`."""

    def __init__(
        self, matrix: tuple[str, ...] | list[str], parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.view = SpellerView(tuple(matrix))
        self.setMinimumSize(480, 400)
        self.setAutoFillBackground(False)
        self.setAttribute(QtCore.Qt.WA_OpaquePaintEvent)
        self.last_paint_time: float | None = None
        self.paints = 0
        self.paint_log: deque[tuple[float, int | None]] = deque(maxlen=8192)  # (end, code)
        self._layer: tuple[tuple, QtGui.QPixmap] | None = None

    @property
    def spelled(self) -> str:
        return self.view.spelled

    def show_view(self, view: SpellerView) -> float | None:
        """Draw ``view`` now (synchronously); returns when the paint finished (LSL s), None
        when nothing was painted (the widget is hidden)."""
        self.view = view
        before = self.paints
        self.repaint()
        return self.last_paint_time if self.paints != before else None

    def show_decision(self, symbol: str) -> None:
        """Append a decided character to the spelled text (drawn at the next paint)."""
        self.view = replace(self.view, spelled=self.view.spelled + symbol)
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        try:
            painter.drawPixmap(0, 0, self._matrix_layer())
            painter.setRenderHint(QtGui.QPainter.Antialiasing)
            painter.setRenderHint(QtGui.QPainter.TextAntialiasing)
            self._paint(painter)
        finally:
            painter.end()
        self.last_paint_time = pylsl.local_clock()
        self.paints += 1
        self.paint_log.append((self.last_paint_time, self.view.flash_code))

    def cell_rect(self, row: int, column: int) -> QtCore.QRectF:
        """Where cell ``(row, column)`` is drawn (widget pixels)."""
        grid = self._grid_rect()
        n_rows, n_columns = len(self.view.matrix), len(self.view.matrix[0])
        w, h = grid.width() / n_columns, grid.height() / n_rows
        return QtCore.QRectF(grid.left() + column * w, grid.top() + row * h, w, h)

    def _grid_rect(self) -> QtCore.QRectF:
        rect = QtCore.QRectF(self.rect())
        top = rect.height() * 0.2  # the text lines above the matrix
        area = rect.adjusted(rect.width() * 0.06, top, -rect.width() * 0.06, -rect.height() * 0.05)
        n_rows, n_columns = len(self.view.matrix), len(self.view.matrix[0])
        side = min(area.width() / n_columns, area.height() / n_rows)
        w, h = side * n_columns, side * n_rows
        return QtCore.QRectF(area.center().x() - w / 2, area.top(), w, h)

    def _fonts(self, cell_h: float) -> tuple[QtGui.QFont, QtGui.QFont]:
        normal = QtGui.QFont("Sans")
        normal.setPixelSize(max(8, int(cell_h * 0.42)))
        bold = QtGui.QFont("Sans", weight=QtGui.QFont.Bold)
        bold.setPixelSize(max(9, int(cell_h * 0.56)))
        return normal, bold

    def _matrix_layer(self) -> QtGui.QPixmap:
        """The background with every symbol unlit, drawn once per size (a flash then paints
        only its own row or column on top: a paint takes ~1 ms instead of ~6)."""
        key = (self.size().width(), self.size().height(), self.view.matrix)
        if self._layer is not None and self._layer[0] == key:
            return self._layer[1]
        pixmap = QtGui.QPixmap(self.size())
        pixmap.fill(BACKGROUND)
        painter = QtGui.QPainter(pixmap)
        try:
            painter.setRenderHint(QtGui.QPainter.TextAntialiasing)
            painter.setPen(SYMBOL_DIM)
            painter.setFont(self._fonts(self.cell_rect(0, 0).height())[0])
            for r, row in enumerate(self.view.matrix):
                for c, symbol in enumerate(row):
                    painter.drawText(self.cell_rect(r, c), QtCore.Qt.AlignCenter, symbol)
        finally:
            painter.end()
        self._layer = (key, pixmap)
        return pixmap

    def _paint(self, painter: QtGui.QPainter) -> None:
        view, rect = self.view, self.rect()
        cell_h = self.cell_rect(0, 0).height()
        if view.flash_code:
            painter.setPen(SYMBOL_LIT)
            painter.setFont(self._fonts(cell_h)[1])
            for r, c in cells_of_code(view.matrix, view.flash_code):
                box = self.cell_rect(r, c)
                painter.fillRect(box.adjusted(2, 2, -2, -2), LIT_CELL)
                painter.drawText(box, QtCore.Qt.AlignCenter, view.matrix[r][c])
        if view.phase is SpellerPhase.PAUSE and view.target:
            for r, row in enumerate(view.matrix):
                if (c := row.find(view.target)) >= 0:
                    painter.setPen(QtGui.QPen(TARGET_COLOUR, max(2.0, cell_h / 16)))
                    painter.drawRect(self.cell_rect(r, c).adjusted(4, 4, -4, -4))
        line_h = max(14, rect.height() // 14)
        font = QtGui.QFont("Sans", max(9, line_h // 2))
        painter.setFont(font)
        metrics = QtGui.QFontMetrics(font)
        if view.copy_text is not None:  # the copy text, the current character in colour
            text = view.copy_text
            x = rect.center().x() - metrics.horizontalAdvance(text) // 2
            y = line_h
            for i, ch in enumerate(text):
                painter.setPen(TARGET_COLOUR if i == view.position else TEXT_COLOUR)
                painter.drawText(QtCore.QPoint(x, y), ch)
                x += metrics.horizontalAdvance(ch)
        painter.setPen(SPELLED_COLOUR)
        spelled = QtCore.QRect(rect.left(), line_h + line_h // 3, rect.width(), line_h)
        painter.drawText(spelled, QtCore.Qt.AlignHCenter | QtCore.Qt.AlignTop, view.spelled + "▏")
        if view.status:
            painter.setPen(SYMBOL_DIM)
            painter.setFont(QtGui.QFont("Sans", max(8, line_h // 3)))
            painter.drawText(rect.adjusted(8, 2, -8, -2), QtCore.Qt.AlignBottom, view.status)
        if view.message:
            painter.setPen(TEXT_COLOUR)
            painter.setFont(QtGui.QFont("Sans", max(10, line_h // 2)))
            painter.drawText(
                rect.adjusted(24, 24, -24, -24),
                QtCore.Qt.AlignCenter | QtCore.Qt.TextWordWrap,
                view.message,
            )


class SpellerRun(QtCore.QObject):
    """Drives ``sequencer`` on ``screen`` from a precise timer (GUI thread only).

    :attr:`finished` fires once when every character is done. ``stop()`` ends the timer."""

    finished = QtCore.pyqtSignal()
    _posted = QtCore.pyqtSignal(str)

    def __init__(
        self,
        screen: SpellerScreen,
        sequencer: SpellerSequencer,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.screen = screen
        self.sequencer = sequencer
        self.early_stops = 0  # characters ended by a decision or stop_character()
        self._shown: tuple | None = None
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.PreciseTimer)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._posted.connect(self.show_decision)  # queued when posted from another thread

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        self.sequencer.start(pylsl.local_clock())
        self._tick()

    def stop(self) -> None:
        """Stop the timer (an unfinished run is aborted)."""
        self._timer.stop()
        self.sequencer.abort()

    @QtCore.pyqtSlot(str)
    def show_decision(self, symbol: str) -> None:
        """A decided character (GUI thread): shown in the spelled text; if it decides the
        character still flashing, that character ends now."""
        if self.sequencer.add_decision(symbol, pylsl.local_clock()):
            self.early_stops += 1
        self.screen.show_decision(symbol)
        self._tick()

    def redraw(self) -> None:
        """Draw at the next tick even if nothing changed (something else was shown)."""
        self._shown = None

    def post_decision(self, symbol: str) -> None:
        """:meth:`show_decision` from any thread (queued to the GUI thread)."""
        self._posted.emit(symbol)

    def stop_character(self) -> bool:
        """Dynamic stopping: end the character being flashed now; False if none is."""
        stopped = self.sequencer.stop_character(pylsl.local_clock())
        if stopped:
            self.early_stops += 1
            self._tick()
        return stopped

    def _tick(self) -> None:
        sequencer = self.sequencer
        if sequencer.phase in (SpellerPhase.IDLE, SpellerPhase.FINISHED, SpellerPhase.ABORTED):
            return
        phase = sequencer.tick(pylsl.local_clock())
        self._draw(phase)
        if phase is SpellerPhase.FINISHED:
            self._timer.stop()
            self.finished.emit()
            return
        ahead = sequencer.seconds_to_next_change(pylsl.local_clock())
        interval = TICK_MS if ahead is None else max(0, min(TICK_MS, int(ahead * 1000)))
        self._timer.start(interval)

    def _draw(self, phase: SpellerPhase) -> None:
        sequencer, settings = self.sequencer, self.sequencer.settings
        char = sequencer.current
        on = char.on if char is not None else None
        view = SpellerView(
            matrix=settings.matrix,
            phase=phase,
            flash_code=sequencer.flash_code,
            target=sequencer.target,
            copy_text=settings.text,
            position=sequencer.character_index,
            spelled=self.screen.spelled,
            status=self.status_text(),
            message=sequencer.held or ("Done." if phase is SpellerPhase.FINISHED else ""),
        )
        flash_id = None if on is None else (on.character, on.flash.index)
        key = (view, flash_id)
        if key == self._shown and not sequencer.awaiting_draw:
            return
        self._shown = key
        drawn = self.screen.show_view(view)
        if sequencer.awaiting_draw:
            sequencer.flash_drawn(drawn)

    def status_text(self) -> str:
        sequencer, settings = self.sequencer, self.sequencer.settings
        total = settings.n_characters
        index = (
            min(sequencer.character_index + 1, total) if total else sequencer.character_index + 1
        )
        text = f"character {index}/{total if total else '∞'}"
        char = sequencer.current
        if char is not None and sequencer.phase in (SpellerPhase.FLASH, SpellerPhase.BLANK):
            repetition = min(char.next_flash // settings.n_codes + 1, settings.repetitions)
            text += f"   repetition {repetition}/{settings.repetitions}"
        mode = f"copy {settings.text}" if settings.copy else "free spelling"
        return f"{mode}   {text}"


def resolve_decisions(
    prefix: str, timeout: float, source_id: str | None = None
) -> pylsl.StreamInlet:
    """An inlet on the worker's decided characters, the string stream ``<prefix>-characters``
    (resolved by name, or by ``source_id`` when given, within ``timeout`` s); :class:`UserError`
    when it is not there."""
    name = f"{prefix}-characters"
    if source_id is None:
        infos = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout)
    else:
        infos = pylsl.resolve_byprop("source_id", source_id, minimum=1, timeout=timeout)
    if not infos:
        raise UserError(
            f"no LSL stream named {name!r} within {timeout:g} s: start the worker with a P300 "
            f"model (bci-app run --headless) whose outlets use the prefix {prefix!r}, check "
            "`bci-app streams`, or spell without decisions (leave out --attach)"
        )
    if infos[0].channel_format() != pylsl.cf_string:
        raise UserError(f"the stream {name!r} is not a string stream of decided characters")
    inlet = pylsl.StreamInlet(infos[0], max_buflen=60, recover=True)
    inlet.open_stream(timeout=timeout)
    return inlet


class DecisionReader(QtCore.QObject):
    """Polls ``inlet`` (from :func:`resolve_decisions`) on the GUI thread every
    ``DECISION_POLL_MS`` and hands each decided character to ``run``; never blocks."""

    def __init__(self, inlet: pylsl.StreamInlet, run: SpellerRun) -> None:
        super().__init__(run)
        self.inlet = inlet
        self.run = run
        self.received = 0
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self._poll)
        self._timer.start(DECISION_POLL_MS)

    def _poll(self) -> None:
        try:
            samples, _ = self.inlet.pull_chunk(timeout=0.0)
        except LostError:
            log.warning("the decided-characters stream was lost")
            self.stop()
            return
        for sample in samples:
            if sample and sample[0]:
                self.received += 1
                self.run.show_decision(str(sample[0]))

    def stop(self) -> None:
        self._timer.stop()


class SpellerWindow(QtWidgets.QMainWindow):
    """The speller run as a window: markers on ``markers_name`` with ``markers_source_id``
    (default: the name itself, so that a worker's ``stream.markers`` finds the speller again
    after a restart; None: a fresh one). Esc ends,
    F11 full screen; closes itself when every character is done when ``close_when_done``."""

    def __init__(
        self,
        settings: SpellerSettings,
        markers_name: str = MARKERS_NAME,
        close_when_done: bool = True,
        markers_source_id: str | None = MARKERS_NAME,
    ) -> None:
        super().__init__()
        self.setWindowTitle("bci-app: P300 speller")
        self.resize(900, 760)
        self.settings = settings
        self.markers = MarkerOutlet(markers_name, markers_source_id)
        self.sequencer = SpellerSequencer(settings, self.markers)
        self.screen_widget = SpellerScreen(settings.matrix)
        self.setCentralWidget(self.screen_widget)
        self.run = SpellerRun(self.screen_widget, self.sequencer, self)
        self.reader: DecisionReader | None = None
        if close_when_done:
            self.run.finished.connect(self.close)
        for key, slot in (
            (QtCore.Qt.Key_Escape, self.close),
            (QtCore.Qt.Key_F11, self._toggle_full_screen),
        ):
            QtWidgets.QShortcut(QtGui.QKeySequence(key), self, activated=slot)

    def start(self) -> None:
        self.run.start()

    def read_decisions(self, inlet: pylsl.StreamInlet) -> None:
        self.reader = DecisionReader(inlet, self.run)

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def summary(self) -> dict:
        sequencer, settings = self.sequencer, self.settings
        drawn = [d for d in sequencer.drawn_flashes() if d.drawn is not None]
        onsets = [d.drawn for d in drawn]
        soa = [
            b - a for a, b in zip(onsets, onsets[1:], strict=False) if b - a < 2 * settings.soa_s
        ]
        return {
            "mode": "copy" if settings.copy else "free",
            "text": settings.text,
            "spelled": self.screen_widget.spelled,
            "characters": len(sequencer.characters),
            "finished": sequencer.phase is SpellerPhase.FINISHED,
            "repetitions": settings.repetitions,
            "flashes": len(drawn),
            "markers_sent": sequencer.markers_sent,
            "early_stops": self.run.early_stops,
            "decisions_received": self.reader.received if self.reader else 0,
            "flash_draw_lateness_ms": summarize_ms(sequencer.draw_lateness()),
            "soa_ms": summarize_ms(soa),
            "shifted_flashes": sequencer.shifts,
            "markers": {"name": self.markers.name, "source_id": self.markers.source_id},
        }

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.run.stop()
        if self.reader is not None:
            self.reader.stop()
        super().closeEvent(event)
