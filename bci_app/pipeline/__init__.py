"""Wires a source to the sinks behind one :class:`PipelineView`: in this process
(:class:`Pipeline`) or in a child process (:class:`ProcessPipeline`), plus ``run --replay``
(:mod:`bci_app.pipeline.replay`)."""

from __future__ import annotations

from pathlib import Path

from bci_app.config import AppConfig
from bci_app.pipeline.local import Pipeline
from bci_app.pipeline.process import ProcessPipeline
from bci_app.pipeline.view import (
    PipelineStatus,
    PipelineView,
    Trace,
    marker_source_id,
    pipeline_selectors,
)
from bci_app.sources.simulator import SimulatorSettings

__all__ = [
    "Pipeline",
    "PipelineStatus",
    "PipelineView",
    "ProcessPipeline",
    "Trace",
    "make_pipeline",
    "marker_source_id",
    "pipeline_selectors",
]


def make_pipeline(
    config: AppConfig,
    with_model: bool = False,
    model_path: str | Path | None = None,
    simulator_settings: SimulatorSettings | None = None,
    *,
    traces: bool = True,
) -> PipelineView:
    """The pipeline a front end runs: in its own process when ``gui.separate_process``
    (the default), else in this one. ``simulator_settings``: the built-in simulator's, when it
    is the source (default: the config's ``simulator`` section). ``traces``: False for a front
    end that draws no EEG (a child process then sends only predictions and status)."""
    kind = ProcessPipeline if config.gui.separate_process else Pipeline
    return kind(
        config,
        with_model=with_model,
        model_path=model_path,
        simulator_settings=simulator_settings,
        traces=traces,
    )
