"""What every panel shares: the per-frame snapshot and the class colours."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyqtgraph as pg

from bci_app.infer.worker import Prediction
from bci_app.pipeline import PipelineStatus, PipelineView

#: Distinct colours for classes (and their cues), RGB.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
)


def class_color(index: int, alpha: int = 255) -> tuple[int, int, int, int]:
    """RGBA colour of class number ``index`` (cycles after 8 classes)."""
    return (*CLASS_COLORS[index % len(CLASS_COLORS)], alpha)


@dataclass
class Frame:
    """One GUI refresh's view of the pipeline, taken on the GUI thread at LSL time ``now`` (s).

    ``pipeline`` is None before a stream is connected; ``status`` is None until it started.
    """

    now: float
    pipeline: PipelineView | None = None
    status: PipelineStatus | None = None
    prediction: Prediction | None = None  # the worker's latest
    predictions: list[Prediction] = field(default_factory=list)  # recent, oldest first
    markers: list[tuple[float, str]] = field(default_factory=list)  # (LSL time s, text)


def plot_widget(**labels: str) -> pg.PlotWidget:
    """A PlotWidget with the menu off and axis labels ``left=..., bottom=...``."""
    widget = pg.PlotWidget()
    widget.setMenuEnabled(False)
    widget.hideButtons()
    for side, text in labels.items():
        widget.setLabel(side, text)
    return widget
