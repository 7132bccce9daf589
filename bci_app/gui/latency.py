"""Latency panel: per-stage p50 / p99 / max of the inference worker, budget misses, device, and
the fixed delays (filter group delay, window length), which are not processing latency."""

from __future__ import annotations

from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.gui.common import Frame
from bci_app.infer.latency import STAGE_NAMES

ROWS = ("p50", "p99", "max")  # table rows; one column per stage
OVER_BUDGET = QtGui.QColor(198, 40, 40)


class LatencyPanel(QtWidgets.QGroupBox):
    """Stage table in milliseconds (rolling window of the worker) plus fixed lines of text."""

    def __init__(self) -> None:
        super().__init__("Latency (ms)")
        self.table = QtWidgets.QTableWidget(len(ROWS), len(STAGE_NAMES))
        self.table.setHorizontalHeaderLabels(list(STAGE_NAMES))
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeToContents)
        self.table.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self.table.setSizeAdjustPolicy(QtWidgets.QAbstractScrollArea.AdjustToContents)
        for row in range(len(ROWS)):
            for column in range(len(STAGE_NAMES)):
                item = QtWidgets.QTableWidgetItem("-")
                item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                self.table.setItem(row, column, item)
        self.table.resizeRowsToContents()
        height = self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(row) for row in range(len(ROWS)))
        self.table.setFixedHeight(height)
        self.misses = QtWidgets.QLabel("budget misses: -")
        self.device = QtWidgets.QLabel("device: -")
        self.counts = QtWidgets.QLabel("windows: -")
        self.fixed = QtWidgets.QLabel("fixed delays: -")
        # a worker viewed from elsewhere (gui --attach): the decision's age here and the clock
        # offsets applied to map the worker's stamps onto this host's clock
        self.remote = QtWidgets.QLabel("")
        self.remote.setVisible(False)
        self.fixed.setToolTip(
            "Set by the configuration, not by processing: the causal filters delay the signal "
            "by their group delay, and a decision covers a whole window."
        )
        self._predicted = self._errors = -1
        layout = QtWidgets.QVBoxLayout(self)
        layout.setSpacing(2)
        layout.addWidget(self.table)
        for label in (self.misses, self.device, self.counts, self.fixed, self.remote):
            label.setWordWrap(True)
            layout.addWidget(label)
        layout.addStretch(1)

    def reset(self) -> None:
        """New pipeline: forget the last figures shown."""
        self._predicted = self._errors = -1
        self.remote.setVisible(False)
        for row in range(self.table.rowCount()):
            for column in range(self.table.columnCount()):
                self.table.item(row, column).setText("-")

    def cell(self, stage: str, column: str) -> str:
        """Text shown for ``stage`` (e.g. ``"e2e"``) and ``column`` (``"p50"``...)."""
        return self.table.item(ROWS.index(column), STAGE_NAMES.index(stage)).text()

    def update_frame(self, frame: Frame) -> None:
        status = frame.status
        if status is None:
            return
        filters = (
            f"filter {status.filter_delay_s * 1e3:.1f} ms"
            if status.filter_delays is None
            else status.filter_delays.describe()
        )
        self.fixed.setText(
            f"fixed delays (not processing latency): {filters}, window {status.window_s:g} s"
        )
        viewer_latency = getattr(frame.pipeline, "viewer_latency", None)
        if viewer_latency is not None:
            self._show_remote(viewer_latency())
        worker = status.worker
        if worker is None:
            self.device.setText("device: - (no model)")
            return
        if worker.predicted == self._predicted and worker.errors == self._errors:
            return  # the figures only change with a new prediction
        self._predicted, self._errors = worker.predicted, worker.errors
        budgets = frame.pipeline.config.budgets
        limits = {"e2e": budgets.total_ms, "inference": budgets.inference_ms}
        for column, stage in enumerate(STAGE_NAMES):
            figures = worker.latency_ms.get(stage)
            for row, name in enumerate(ROWS):
                item = self.table.item(row, column)
                value = None if figures is None else figures[name]
                item.setText("-" if value is None else f"{value:.2f}")
                over = value is not None and stage in limits and value > limits[stage]
                item.setForeground(OVER_BUDGET if over else self.palette().text())
        misses = worker.budget_misses
        by_stage = ", ".join(f"{k} {v}" for k, v in misses.get("total_by_stage", {}).items() if v)
        self.misses.setText(
            f"budget misses: e2e > {budgets.total_ms:g} ms: {misses.get('total', 0)}"
            + (f" ({by_stage})" if by_stage else "")
            + f"; inference > {budgets.inference_ms:g} ms: {misses.get('inference', 0)}"
        )
        device = f"device: {worker.device} ({worker.runner})"
        self.device.setText(device + (f" - fallback: {worker.fallback}" if worker.fallback else ""))
        self.counts.setText(
            f"windows: predicted {worker.predicted}, replaced {worker.replaced}, stale "
            f"{worker.dropped_stale}, flagged {worker.skipped_flagged}, errors {worker.errors}"
        )

    def _show_remote(self, figures: dict) -> None:
        age = figures["at_viewer_ms"]
        offsets = ", ".join(f"{k} {v * 1e3:+.3f} ms" for k, v in figures["clock_offsets_s"].items())
        self.remote.setText(
            f"at this viewer (another host): decision age p50/p99 {age['p50']}/{age['p99']} ms "
            f"after the EEG sample; LSL clock offsets applied: {offsets or '-'}"
        )
        self.remote.setVisible(True)
