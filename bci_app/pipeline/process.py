"""The pipeline in its own process, for the GUI and calibration.

PyQt keeps the GIL while Qt paints (pyqtgraph's Python paint methods call into QPainter, and
those calls do not release it), so in one process every frame can hold up the inlet, dsp and
worker threads for milliseconds; no switch interval helps, because the GIL is held inside C++.
:class:`ProcessPipeline` runs :class:`~bci_app.pipeline.local.Pipeline` in a child process and
offers the same :class:`~bci_app.pipeline.view.PipelineView`: the raw and filtered traces are
mirrors filled from the child.

The child sends, about every ``SEND_PERIOD_S``: new raw and filtered samples, the predictions
made since, and (every ``STATUS_PERIOD_S``) a status snapshot. One thread of this process
receives them. Predictions and their latency figures are made in the child, so what the GUI
costs the pipeline is only CPU time, not GIL time.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import time
from collections import deque
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bci_app.config import AppConfig
from bci_app.infer.worker import Prediction
from bci_app.pipeline.local import Pipeline
from bci_app.pipeline.view import PipelineBase, PipelineStatus, Trace, TraceKind, ended_status
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorClock
from bci_app.stream.resolve import StreamDescription
from bci_app.stream.ring import RingBuffer, RingOverrun

__all__ = ["ProcessPipeline"]

log = logging.getLogger(__name__)

SEND_PERIOD_S = 1 / 30  # how often the child forwards samples and predictions (GUI rate)
STATUS_PERIOD_S = 0.1
START_TIMEOUT_S = 120.0  # child start-up: imports, model load, stream resolve
PREDICTIONS_KEPT = 256  # per send, bounded: a viewer shows the newest


class ProcessPipeline(PipelineBase):
    """Same use as :class:`~bci_app.pipeline.local.Pipeline` (start once, stop joins within
    2 s, terminating the child if it hangs), run in a child process."""

    name = "bci-pipeline-process"

    # Filled in by start() (the child's answer); until then a pipeline that has not started.
    simulator: SimulatorClock | None = None
    _outlets = False
    _traces: Mapping[str, Trace] = MappingProxyType({})
    _latest: Prediction | None = None
    _status: PipelineStatus | None = None
    _conn: Connection | None = None

    # -- PipelineView --------------------------------------------------------------------------
    @property
    def publishes_outlets(self) -> bool:
        return self._outlets

    def status(self) -> PipelineStatus | None:
        return ended_status(self._status, self.error)

    def latest_prediction(self) -> Prediction | None:
        return self._latest

    def trace(self, kind: TraceKind) -> Trace | None:
        return self._traces.get(kind)

    # -- lifecycle -----------------------------------------------------------------------------
    def _setup(self) -> StreamDescription:
        """Start the child and wait until its pipeline runs; its start errors are raised here."""
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_child_main,
            args=(
                self.config,
                self.with_model,
                self.model_path,
                self.simulator_settings,
                self.traces_wanted,
                child,
            ),
            name="bci-pipeline",
            daemon=True,
        )
        process.start()
        self._adopt(process)
        child.close()
        self._conn = parent
        if not parent.poll(START_TIMEOUT_S):
            raise TimeoutError(f"the pipeline process did not start in {START_TIMEOUT_S:g} s")
        kind, payload = parent.recv()
        if kind == "error":
            raise payload
        self._bind(payload)
        self._spawn(self._receive, "bci-pipe-rx")
        return self.description

    def _bind(self, started: dict[str, Any]) -> None:
        self.description = started["description"]
        self.metadata = started["metadata"]
        self.config = started["config"]
        self.simulator = started["simulator"]
        self._outlets = started["outlets"]
        n = len(self.description.channels)
        self._traces = {
            kind: Trace(RingBuffer(capacity, n), rate)
            for kind, (capacity, rate) in started["traces"].items()
        }

    def _request_stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):  # the child may be gone already
                self._conn.send(("stop", None))

    def _teardown(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # -- receiving -----------------------------------------------------------------------------
    def _receive(self) -> None:
        conn = self._conn
        while not self.stopping:
            try:
                if not conn.poll(0.05):
                    continue
                kind, payload = conn.recv()
            except (EOFError, OSError):
                if not self.stopping:
                    self.error = "the pipeline process ended unexpectedly"
                    log.error(self.error)
                return
            if kind == "update":
                self._apply(payload)
            elif kind == "failed":
                self.error = payload
                log.error("pipeline process failed: %s", payload)

    def _apply(self, update: dict[str, Any]) -> None:
        for kind, chunk in update["traces"].items():
            if chunk is not None:
                self._traces[kind].ring.write(*chunk)
        for prediction in update["predictions"]:
            self._latest = prediction
            self._deliver(prediction)
        if update.get("status") is not None:
            self._status = update["status"]


# -- the child -----------------------------------------------------------------------------------


class _Forward:
    """Child side: copies what is new in a ring since the last call (absolute-index cursor)."""

    def __init__(self, ring: RingBuffer) -> None:
        self.ring = ring
        self.cursor = ring.written

    def take(self) -> tuple | None:
        written = self.ring.written
        if written <= self.cursor:
            return None
        start = max(self.cursor, written - self.ring.capacity)
        try:
            part = self.ring.read(start, written)
        except RingOverrun as exc:
            part = self.ring.read(exc.oldest, written)
        self.cursor = written
        return part.data, part.timestamps, part.flags, part.arrival


def _child_main(
    config: AppConfig,
    with_model: bool,
    model_path: Path,
    simulator_settings: SimulatorSettings | None,
    with_traces: bool,
    conn: Connection,
) -> None:
    pipeline = Pipeline(
        config,
        with_model=with_model,
        model_path=model_path,
        simulator_settings=simulator_settings,
    )
    predictions: deque[Prediction] = deque(maxlen=PREDICTIONS_KEPT)
    pipeline.add_prediction_sink(predictions.append)
    try:
        description = pipeline.start()
    except BaseException as exc:  # handed to the parent, which raises it
        try:
            conn.send(("error", exc))
        except Exception:  # e.g. an exception that cannot be pickled
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        conn.close()
        return
    try:
        kinds = ("raw", "filtered") if with_traces else ()
        traces = {kind: pipeline.trace(kind) for kind in kinds}
        conn.send(
            (
                "started",
                {
                    "description": description,
                    "metadata": pipeline.metadata,
                    "config": pipeline.config,
                    "simulator": pipeline.simulator,
                    "outlets": pipeline.publishes_outlets,
                    "traces": {k: (t.ring.capacity, t.rate_hz) for k, t in traces.items()},
                },
            )
        )
        forwards = {kind: _Forward(trace.ring) for kind, trace in traces.items()}
        next_status = 0.0
        while not conn.poll(SEND_PERIOD_S):
            now = time.monotonic()
            update: dict[str, Any] = {
                "traces": {kind: f.take() for kind, f in forwards.items()},
                "predictions": [predictions.popleft() for _ in range(len(predictions))],
            }
            if now >= next_status:
                update["status"] = pipeline.status()
                next_status = now + STATUS_PERIOD_S
            conn.send(("update", update))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the parent went away: stop
    except BaseException as exc:  # reported, then the pipeline stops
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        pipeline.stop()
        conn.close()
