"""The main window's banner: errors and stream warnings in words a user can act on.

:func:`explain` turns an exception into a title and a hint that says what to do;
:func:`stream_warning` does the same for a stream state that is not live.
"""

from __future__ import annotations

from PyQt5 import QtCore, QtWidgets

from bci_app.config import ConfigError
from bci_app.nn.checkpoint import CheckpointError
from bci_app.stream.inlet import StreamState
from bci_app.stream.resolve import StreamError

__all__ = ["BANNER_STYLES", "Banner", "explain", "stream_warning"]

BANNER_STYLES = {
    "error": "background:#b71c1c; color:white;",
    "warning": "background:#e65100; color:white;",
    "info": "background:#1565c0; color:white;",
}


def explain(exc: BaseException) -> tuple[str, str]:
    """``(title, what to do)`` for an exception raised while starting."""
    if isinstance(exc, StreamError):
        return (
            "Stream not available",
            "Pick a stream under Stream and press Connect, or fix stream.source_id / name / "
            "type in the config and open it again (File > Open config, Ctrl+O).",
        )
    if isinstance(exc, CheckpointError):
        return (
            "The model does not fit this stream",
            "Start with a model trained on this montage and rate (--model), connect the stream "
            "it was trained on, or set channels.pick in the config.",
        )
    if isinstance(exc, ConfigError):
        return (
            "Configuration not loaded",
            "Fix the file and open it again (File > Open config, Ctrl+O); until then Connect "
            "runs the built-in simulator with the default settings.",
        )
    if isinstance(exc, OSError):
        return ("Cannot read a file", "Check the model folder (--model or model.path).")
    return ("Could not start", "See the log for details; Run > Start (Ctrl+R) tries again.")


def stream_warning(state: StreamState, age: float | None, error: str | None) -> tuple[str, str]:
    """``(level, text)`` of the banner for a stream that is not live; ``("", "")`` when live."""
    since = "" if age is None else f" (newest sample {age:.1f} s old)"
    if state is StreamState.STALE:
        return "warning", (
            f"Stream stale: no new samples{since}. Check the amplifier and its LSL outlet; "
            "the app keeps waiting."
        )
    if state is StreamState.RECOVERING:
        return "warning", (
            f"Stream recovering: contact lost{since}, re-resolving it. Check that the "
            "acquisition software is running; the app reconnects by itself."
        )
    if state is StreamState.LOST:
        return "error", (
            f"Stream lost{since}. Restart the amplifier's LSL outlet (the app keeps retrying), "
            "or pick another stream under Stream and press Connect."
        )
    if state is StreamState.FAILED:
        return "error", (
            f"Stream failed: {error or 'the inlet stopped'}. Press Connect to reconnect, or "
            "restart the app."
        )
    return "", ""


class Banner(QtWidgets.QFrame):
    """A coloured message line above the panels; hidden when there is nothing to say."""

    def __init__(self) -> None:
        super().__init__()
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        self.close_button = QtWidgets.QToolButton()
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button, 0, QtCore.Qt.AlignTop)
        self._shown: tuple[str, str] | None = None
        self.hide()

    def show_message(self, level: str, text: str, dismissable: bool) -> None:
        if self._shown != (level, text):
            self._shown = (level, text)
            self.setStyleSheet(f"QFrame {{{BANNER_STYLES[level]}}} QLabel {{ font-weight: bold; }}")
            self.label.setText(text)
        self.close_button.setVisible(dismissable)
        self.show()

    def clear(self) -> None:
        self._shown = None
        self.label.setText("")
        self.hide()

    def text(self) -> str:
        return self.label.text()
