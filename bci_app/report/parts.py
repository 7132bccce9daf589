"""What every session report shares: its summary and the HTML pieces of its sections."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReportSummary", "bullet_list", "escape", "paragraphs", "table"]


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
