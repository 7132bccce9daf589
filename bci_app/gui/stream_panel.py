"""Stream panel: pick a visible LSL stream, connect/disconnect, and watch its health."""

from __future__ import annotations

from collections.abc import Sequence

import pylsl
from PyQt5 import QtCore, QtWidgets

from bci_app.gui.common import Frame
from bci_app.pipeline.remote import WorkerInfo
from bci_app.stream.inlet import StreamState

#: Background colour of the state label per stream state.
STATE_COLORS: dict[StreamState, str] = {
    StreamState.CONNECTING: "#6c757d",
    StreamState.LIVE: "#2e7d32",
    StreamState.STALE: "#b8860b",
    StreamState.RECOVERING: "#e65100",
    StreamState.LOST: "#c62828",
    StreamState.FAILED: "#8e0000",
}
SIMULATOR_ENTRY = "built-in simulator"
#: Picker data of a worker elsewhere: this, then its session id.
WORKER_PREFIX = "worker:"


def describe_info(info: pylsl.StreamInfo) -> str:
    """One picker line: name, type, channels, rate and host of a stream."""
    return (
        f"{info.name()} ({info.type()}) - {info.channel_count()} ch @ "
        f"{info.nominal_srate():g} Hz on {info.hostname()}"
    )


class StreamPanel(QtWidgets.QGroupBox):
    """Picker plus health read-out; emits requests, the window does the work.

    ``connect_requested(source_id)``: ``""`` asks for the built-in simulator.
    """

    connect_requested = QtCore.pyqtSignal(str)
    disconnect_requested = QtCore.pyqtSignal()
    refresh_requested = QtCore.pyqtSignal()

    def __init__(self) -> None:
        super().__init__("Stream")
        self.picker = QtWidgets.QComboBox()
        self.picker.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setMinimumContentsLength(24)
        self.picker.addItem(SIMULATOR_ENTRY, "")
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.setToolTip("List the LSL streams visible on the network")
        self.connect_button = QtWidgets.QPushButton("Connect")
        self.disconnect_button = QtWidgets.QPushButton("Disconnect")
        self.refresh_button.clicked.connect(self.refresh_requested)
        self.connect_button.clicked.connect(
            lambda: self.connect_requested.emit(self.picker.currentData() or "")
        )
        self.disconnect_button.clicked.connect(self.disconnect_requested)

        self.state = QtWidgets.QLabel("not connected")
        self.state.setAlignment(QtCore.Qt.AlignCenter)
        self.state.setMinimumWidth(110)
        self.source = QtWidgets.QLabel("-")
        self.rate = QtWidgets.QLabel("-")
        self.counters = QtWidgets.QLabel("-")
        for label in (self.source, self.rate, self.counters):
            label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
            # Long names must not widen the window: the label is cut instead.
            label.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Preferred)

        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.picker, 1)
        for button in (self.refresh_button, self.connect_button, self.disconnect_button):
            row.addWidget(button)
        info = QtWidgets.QGridLayout()
        info.addWidget(self.state, 0, 0, 3, 1)
        info.addWidget(self.source, 0, 1)
        info.addWidget(self.rate, 1, 1)
        info.addWidget(self.counters, 2, 1)
        info.setColumnStretch(1, 1)
        info.setVerticalSpacing(0)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(info)
        self._shown_state: tuple[str, str] | None = None
        self._shown_status: object = None
        self.set_state(None)

    def set_streams(
        self, infos: list[pylsl.StreamInfo], workers: Sequence[WorkerInfo] = ()
    ) -> None:
        """Fill the picker with the EEG-like (numeric, regular-rate) streams in ``infos`` and
        the bci-app ``workers`` running elsewhere (chosen: viewed, as ``gui --attach`` does)."""
        current = self.picker.currentData()
        self.picker.clear()
        self.picker.addItem(SIMULATOR_ENTRY, "")
        for info in infos:
            if info.channel_format() != pylsl.cf_string and info.nominal_srate() > 0:
                self.picker.addItem(describe_info(info), info.source_id())
        for worker in workers:
            self.picker.addItem(f"worker {worker.describe()}", WORKER_PREFIX + worker.session_id)
        index = self.picker.findData(current)
        self.picker.setCurrentIndex(max(index, 0))

    def set_busy(self, busy: bool) -> None:
        """Disable the picker while a stream is being resolved or started."""
        self.refresh_button.setEnabled(not busy)
        self.connect_button.setEnabled(not busy)

    def set_state(self, text: str | None, state: StreamState | None = None) -> None:
        """Show ``text`` in the colour of ``state`` (grey for None)."""
        color = STATE_COLORS.get(state, "#455a64") if state is not None else "#455a64"
        text = text or "not connected"
        if (text, color) == self._shown_state:
            return  # a style sheet change re-polishes the widget: only when it changes
        self._shown_state = (text, color)
        self.state.setText(text)
        self.state.setStyleSheet(
            f"background:{color}; color:white; font-weight:bold; padding:3px; border-radius:3px"
        )

    def update_frame(self, frame: Frame) -> None:
        status, pipeline = frame.status, frame.pipeline
        if status is None or pipeline is None or pipeline.description is None:
            return
        if status is self._shown_status:
            return  # the window refreshes the status less often than it draws
        self._shown_status = status
        health, description = status.stream, pipeline.description
        self.set_state(health.state.value, health.state)
        self.source.setText(
            f"{description.name} ({description.type}) on {description.hostname}: "
            f"{len(description.channels)} ch @ {description.rate_hz:g} Hz"
        )
        priority = (
            "normal priority"
            if health.realtime_priority is None
            else f"real-time priority {health.realtime_priority}"
        )
        self.source.setToolTip(f"source_id {description.source_id}; acquisition at {priority}")
        rate = "-" if health.effective_rate_hz is None else f"{health.effective_rate_hz:.1f}"
        age = "-" if health.newest_sample_age_s is None else f"{health.newest_sample_age_s:.2f}"
        self.rate.setText(f"{rate} Hz, newest {age} s ago")
        self.counters.setText(
            f"gaps {health.gaps} ({health.missing_samples} missing), "
            f"overruns {health.overruns + status.dsp_overruns}, "
            f"reconnects {health.reconnects}, NaN samples {health.nonfinite_samples}"
            + (f"\n{health.foreign_source}" if health.foreign_source else "")
        )
