"""What every front end (GUI, calibration, recording, headless runner) may know of a running
pipeline: the :class:`PipelineView` protocol, implemented by the in-process
:class:`~bci_app.pipeline.local.Pipeline` and the child-process
:class:`~bci_app.pipeline.process.ProcessPipeline` alike.

A front end starts and stops the pipeline, reads :meth:`~PipelineView.status` snapshots, draws
from :meth:`~PipelineView.trace` rings, gets predictions through sinks, and asks
:meth:`~PipelineView.record_selectors` what to record; it never reaches into the inlet, the dsp
stage or the worker.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from bci_app.config import AppConfig
from bci_app.dsp.filters import ChainDelays
from bci_app.infer.outlets import outlet_selectors
from bci_app.infer.worker import Prediction, WorkerStats
from bci_app.lifecycle import Background
from bci_app.nn.checkpoint import CheckpointMetadata, model_dir
from bci_app.pipeline.erp import ErpStats
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorClock
from bci_app.stream.inlet import StreamHealth, StreamState
from bci_app.stream.resolve import StreamDescription
from bci_app.stream.ring import RingBuffer
from bci_app.stream.selector import StreamSelector

__all__ = [
    "PipelineBase",
    "PipelineStatus",
    "PipelineView",
    "PredictionSink",
    "Trace",
    "TraceKind",
    "ended_status",
    "status_from_json",
    "status_to_json",
]

log = logging.getLogger(__name__)

PredictionSink = Callable[[Prediction], None]
TraceKind = Literal["raw", "filtered"]


@dataclass(frozen=True)
class PipelineStatus:
    """What the status line and the GUI show; a snapshot, safe to read from any thread."""

    stream: StreamHealth
    windows: int  # windows cut
    flagged_windows: int  # windows with a gap or NaN/Inf inside (not classified)
    windows_per_s: float
    dsp_overruns: int
    filter_delay_s: float
    sink_errors: int
    window_s: float  # window length: a fixed delay of the decision, not processing latency
    worker: WorkerStats | None  # None when running without a model
    samples_processed: int = 0  # raw samples the dsp stage has consumed
    filter_delays: ChainDelays | None = None  # group delay per band and settling time
    erp: ErpStats | None = None  # a P300 model: flashes, epochs, the characters it spelled


def ended_status(
    status: PipelineStatus | None, error: BaseException | str | None
) -> PipelineStatus | None:
    """``status`` as front ends must see it: after ``error`` ended the pipeline (its process
    died, its processing thread crashed), the stream is no longer read, whatever the last
    status said; its state is FAILED with the error."""
    if status is None or error is None:
        return status
    stream = dataclasses.replace(
        status.stream, state=StreamState.FAILED, error=f"the pipeline stopped: {error}"
    )
    return dataclasses.replace(status, stream=stream)


def status_to_json(status: PipelineStatus) -> dict:
    """``status`` as JSON-able values (the worker's status outlet sends it)."""
    data = dataclasses.asdict(status)
    data["stream"]["state"] = status.stream.state.value
    return data


def status_from_json(data: Mapping) -> PipelineStatus:
    """The :class:`PipelineStatus` that :func:`status_to_json` made (a viewer's copy); keys a
    newer worker adds are ignored, ones it lacks take their defaults."""

    def build(cls: type, values: Mapping) -> object:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    stream = dict(data["stream"])
    stream["state"] = StreamState(stream["state"])
    values = dict(data)
    values["stream"] = build(StreamHealth, stream)
    if data.get("worker") is not None:
        values["worker"] = build(WorkerStats, data["worker"])
    if data.get("filter_delays") is not None:
        values["filter_delays"] = build(ChainDelays, data["filter_delays"])
    if data.get("erp") is not None:
        erp = dict(data["erp"])
        erp["characters"] = tuple(erp.get("characters", ()))
        values["erp"] = build(ErpStats, erp)
    return build(PipelineStatus, values)


@dataclass(frozen=True)
class Trace:
    """Samples to draw: a ring addressed by absolute sample index, and its rate (Hz).

    ``ring`` rows are ``(n_channels,)`` µV; the filtered trace runs at the model rate."""

    ring: RingBuffer
    rate_hz: float


class PipelineView(Protocol):
    """The one interface front ends use; see the module docstring."""

    config: AppConfig  # after start: with the checkpoint's preprocessing applied
    with_model: bool
    model_path: Path
    description: StreamDescription | None  # the stream read, once started
    metadata: CheckpointMetadata | None  # the checkpoint, once started with a model
    simulator: SimulatorClock | None  # the built-in simulator, when it is the source
    error: BaseException | str | None  # what ended the pipeline early, if anything

    def start(self) -> StreamDescription: ...

    def stop(self, timeout: float = 2.0) -> bool: ...

    def add_prediction_sink(self, sink: PredictionSink) -> None:
        """Register a callable for every prediction (before start; it must return at once)."""
        ...

    def status(self) -> PipelineStatus | None:
        """The latest snapshot (None before the first one)."""
        ...

    def latest_prediction(self) -> Prediction | None: ...

    def trace(self, kind: TraceKind) -> Trace | None:
        """The raw (stream rate) or filtered (model rate) samples; None before start (and from
        a child process made with ``traces=False``, which sends no samples)."""
        ...

    @property
    def publishes_outlets(self) -> bool:
        """True when the app's prediction outlets are open (a model runs, outlets enabled)."""
        ...


class PipelineBase(Background):
    """What both pipelines hold before they start: the config, the model to load, the
    simulator's settings, whether the front end draws traces (without, a child process sends
    no samples) and the prediction sinks."""

    def __init__(
        self,
        config: AppConfig,
        with_model: bool = False,
        model_path: str | Path | None = None,
        simulator_settings: SimulatorSettings | None = None,
        *,
        traces: bool = True,
    ) -> None:
        super().__init__()
        self.traces_wanted = traces
        if config.outlets.session_id is None:  # one per worker: its outlets say which is which
            outlets = config.outlets.model_copy(update={"session_id": uuid.uuid4().hex[:12]})
            config = config.model_copy(update={"outlets": outlets})
        self.config = config
        self.with_model = with_model
        self.model_path = Path(model_path) if model_path else model_dir(config)
        self.simulator_settings = simulator_settings
        self.description: StreamDescription | None = None
        self.metadata: CheckpointMetadata | None = None
        self._prediction_sinks: list[PredictionSink] = []

    def add_prediction_sink(self, sink: PredictionSink) -> None:
        """Register a callable for every prediction (before start; it must return at once)."""
        if self._started:
            raise RuntimeError("add sinks before start()")
        self._prediction_sinks.append(sink)

    def _deliver(self, prediction: Prediction) -> None:
        """Hand ``prediction`` to every sink; a faulty sink must not stop the others."""
        for sink in self._prediction_sinks:
            try:
                sink(prediction)
            except Exception:
                log.exception("prediction sink %r failed", sink)


def spells(view: PipelineView) -> bool:
    """The pipeline runs a P300 model: it publishes the characters it decides."""
    return view.metadata is not None and view.metadata.paradigm.erp


def marker_source_id(view: PipelineView) -> str | None:
    """source_id of the cue marker stream beside the pipeline's input: the simulator's, else
    ``<input source_id>-markers`` by convention (None for an input without a source_id)."""
    if view.simulator is not None:
        return view.simulator.marker_source_id
    description = view.description
    if description is None or not description.source_id:
        return None
    return f"{description.source_id}-markers"


def pipeline_selectors(view: PipelineView) -> list[StreamSelector]:
    """What to record of a started pipeline: its input stream, the marker stream beside it
    (optional unless it is the simulator's) and, when it publishes them, the app's outlets."""
    description = view.description
    if description is None:
        raise RuntimeError("the pipeline is not running: start it before recording")
    if description.source_id:
        selectors = [StreamSelector(name=description.name, source_id=description.source_id)]
    else:  # a stream without a source_id: its name and type are all there is
        selectors = [StreamSelector(name=description.name, type=description.type or None)]
    markers = marker_source_id(view)
    if markers is not None:
        selectors.append(StreamSelector(source_id=markers, optional=view.simulator is None))
    if view.publishes_outlets:
        selectors += outlet_selectors(view.config.outlets, characters=spells(view))
    return selectors
