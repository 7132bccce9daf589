"""What every session report shares: its summary and the HTML pieces of its sections."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ReportSummary",
    "add_quality",
    "add_weights",
    "bullet_list",
    "escape",
    "paragraphs",
    "save_report",
    "table",
]


@dataclass(frozen=True)
class ReportSummary:
    """What a report wrote (:func:`~bci_app.report.write_report`): ``out`` (the HTML file),
    ``seconds`` (wall time from reading the recording to the saved file), ``sections``
    (titles, in order), ``classes`` and
    ``trials`` per class, the ``decoder`` scored and its per-trial ``accuracy`` on this file
    (held out without a model; None when it could not be scored), the data-``quality``
    sentences, and ``stage_seconds`` per step."""

    out: Path
    seconds: float
    sections: tuple[str, ...]
    classes: tuple[str, ...]
    trials: dict[str, int]
    decoder: str
    accuracy: float | None
    quality: tuple[str, ...]
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form (``out`` as a string), the ``--json`` line of ``bci-app report``."""
        data = dataclasses.asdict(self)
        data["out"] = str(self.out)
        data["sections"] = list(self.sections)
        data["classes"] = list(self.classes)
        data["quality"] = list(self.quality)
        return data


def escape(value: object) -> str:
    return html.escape(str(value))


def table(rows: Sequence[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="table table-sm table-hover w-auto">{body}</table>'


def paragraphs(lines: Sequence[str]) -> str:
    return "".join(f"<p>{escape(line)}</p>" for line in lines)


def bullet_list(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>"


def add_quality(report: Any, quality: Any, section: str) -> None:
    """The data-quality findings and the power spectra of the whole recording into ``report``
    (an ``mne.Report``; ``quality``: a :class:`~bci_app.report.quality.QualityReport`)."""
    from bci_app.report import figures

    report.add_html(bullet_list(quality.notes), title="Findings", section=section)
    report.add_figure(
        figures.rendered(figures.psd_figure(quality)),
        title="Power spectra",
        caption="Welch spectra (2 s segments) of the whole recording; grey: each channel.",
        image_format="png",
        section=section,
    )


def add_weights(
    report: Any,
    weights: Any,
    labels: Sequence[str],
    rate_hz: float,
    title: str,
    caption: str,
    section: str,
) -> None:
    """The electrode ``weights`` ``(len(labels),)`` (None: none) as a topomap, or a note when
    there are none or fewer than 3 of ``labels`` have a scalp position."""
    from bci_app.report import figures
    from bci_app.report.scalp import scalp_layout

    scalp = scalp_layout(labels, rate_hz)
    if weights is None or len(scalp.labels) < 3:
        report.add_html(
            paragraphs(["No electrode weights to draw (no decoder, or too few placed channels)."]),
            title="No electrode weights",
            section=section,
        )
        return
    report.add_figure(
        figures.rendered(figures.weights_figure(weights, labels, scalp, title)),
        title="Electrode weights",
        caption=caption,
        image_format="png",
        section=section,
    )


def save_report(report: Any, out: Path) -> None:
    """Write ``report`` as one self-contained HTML file at ``out`` (overwritten)."""
    import mne

    out.parent.mkdir(parents=True, exist_ok=True)
    with mne.utils.use_log_level("error"):
        report.save(str(out), open_browser=False, overwrite=True, verbose=False)
