"""The pipeline in its own process, for the GUI.

PyQt keeps the GIL while Qt paints (pyqtgraph's Python paint methods call into QPainter, and
those calls do not release it), so in one process every frame can hold up the inlet, dsp and
worker threads for milliseconds; no switch interval helps, because the GIL is held inside C++.
:class:`ProcessPipeline` runs :class:`~bci_app.pipeline.Pipeline` in a child process and offers
the GUI the same surface: ``start``/``stop``, ``status()``, ``description``, ``metadata``,
``config``, ``worker.latest``, prediction sinks, and the raw and filtered rings (mirrors filled
from the child, for the traces).

The child sends, about every ``SEND_PERIOD_S``: new raw and filtered samples, the predictions
made since, and (every ``STATUS_PERIOD_S``) a status snapshot. One thread of this process
receives them. Predictions and their latency figures are made in the child, so what the GUI
costs the pipeline is only CPU time, not GIL time.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bci_app.config import AppConfig
from bci_app.infer.worker import Prediction
from bci_app.nn.checkpoint import CheckpointMetadata
from bci_app.pipeline import Pipeline, PipelineStatus, model_dir
from bci_app.stream.inlet import StreamDescription
from bci_app.stream.ring import RingBuffer, RingOverrun

log = logging.getLogger(__name__)

SEND_PERIOD_S = 1 / 30  # how often the child forwards samples and predictions (GUI rate)
STATUS_PERIOD_S = 0.1
START_TIMEOUT_S = 120.0  # child start-up: imports, model load, stream resolve
STOP_TIMEOUT_S = 2.0


@dataclass
class _RingView:
    """What the GUI reads of the inlet / dsp stage: a ring (and the stage's rate)."""

    ring: RingBuffer
    rate_hz: float
    delay_seconds: float = 0.0


@dataclass
class _WorkerView:
    latest: Prediction | None = None


class ProcessPipeline:
    """Same use as :class:`Pipeline` (start once, stop joins within 2 s), run in a child."""

    def __init__(
        self, config: AppConfig, with_model: bool = False, model_path: str | Path | None = None
    ) -> None:
        self.config = config
        self.with_model = with_model
        self.model_path = Path(model_path) if model_path else model_dir(config)
        self.description: StreamDescription | None = None
        self.metadata: CheckpointMetadata | None = None
        self.simulator = None  # lives in the child; its markers are read over LSL
        self.inlet: _RingView | None = None
        self.stage: _RingView | None = None
        self.worker: _WorkerView | None = None
        # Not None when the child publishes the app's LSL outlets (what record looks at).
        self.outlets: bool | None = None
        self._sinks: list[Callable[[Prediction], None]] = []
        self._status: PipelineStatus | None = None
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._receiver: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: str | None = None  # set when the child died

    def add_prediction_sink(self, sink: Callable[[Prediction], None]) -> None:
        if self._process is not None:
            raise RuntimeError("add sinks before start()")
        self._sinks.append(sink)

    def start(self) -> StreamDescription:
        """Start the child and wait until its pipeline runs; its start errors are raised here."""
        context = mp.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_child_main,
            args=(self.config, self.with_model, str(self.model_path), child),
            name="bci-pipeline",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._conn = process, parent
        try:
            if not parent.poll(START_TIMEOUT_S):
                raise TimeoutError(f"the pipeline process did not start in {START_TIMEOUT_S:g} s")
            kind, payload = parent.recv()
        except BaseException:
            self.stop()
            raise
        if kind == "error":
            self.stop()
            raise payload
        self._bind(payload)
        self._receiver = threading.Thread(target=self._receive, name="bci-pipe-rx", daemon=True)
        self._receiver.start()
        return self.description

    def _bind(self, started: dict[str, Any]) -> None:
        self.description = started["description"]
        self.metadata = started["metadata"]
        self.config = started["config"]
        n = len(self.description.channels)
        self.inlet = _RingView(RingBuffer(started["raw_capacity"], n), self.description.rate_hz)
        self.stage = _RingView(
            RingBuffer(started["stage_capacity"], n), started["stage_rate"], started["delay"]
        )
        self.worker = _WorkerView() if self.metadata is not None else None
        self.outlets = True if started["outlets"] else None

    def status(self) -> PipelineStatus | None:
        return self._status

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stop.set()
        conn, process = self._conn, self._process
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):  # the child may be gone already
                conn.send(("stop", None))
        if self._receiver is not None:
            self._receiver.join(timeout)
        if process is not None:
            process.join(timeout)
            if process.is_alive():
                log.error("pipeline process did not stop within %.1f s; terminating it", timeout)
                process.terminate()
                process.join(0.5)
        if conn is not None:
            conn.close()
        self._conn = None

    def __enter__(self) -> ProcessPipeline:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- receiving -----------------------------------------------------------------------------
    def _receive(self) -> None:
        conn = self._conn
        while not self._stop.is_set():
            try:
                if not conn.poll(0.05):
                    continue
                kind, payload = conn.recv()
            except (EOFError, OSError):
                if not self._stop.is_set():
                    self.error = "the pipeline process ended unexpectedly"
                    log.error(self.error)
                return
            if kind == "update":
                self._apply(payload)
            elif kind == "failed":
                self.error = payload
                log.error("pipeline process failed: %s", payload)

    def _apply(self, update: dict[str, Any]) -> None:
        for key, view in (("raw", self.inlet), ("filtered", self.stage)):
            chunk = update.get(key)
            if chunk is not None:
                view.ring.write(*chunk)
        for prediction in update.get("predictions", ()):
            if self.worker is not None:
                self.worker.latest = prediction
            for sink in self._sinks:
                try:
                    sink(prediction)
                except Exception:  # noqa: BLE001 - a faulty sink must not stop the others
                    log.exception("prediction sink %r failed", sink)
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


def _child_main(config: AppConfig, with_model: bool, model_path: str, conn: Connection) -> None:
    pipeline = Pipeline(config, with_model=with_model, model_path=model_path)
    predictions: deque[Prediction] = deque(maxlen=256)  # bounded: the GUI shows the newest
    pipeline.add_prediction_sink(predictions.append)
    try:
        description = pipeline.start()
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        try:
            conn.send(("error", exc))
        except Exception:  # noqa: BLE001 - e.g. an exception that cannot be pickled
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        conn.close()
        return
    try:
        stage = pipeline.stage
        conn.send(
            (
                "started",
                {
                    "description": description,
                    "metadata": pipeline.metadata,
                    "config": pipeline.config,
                    "raw_capacity": pipeline.inlet.ring.capacity,
                    "stage_capacity": stage.ring.capacity,
                    "stage_rate": stage.rate_hz,
                    "delay": stage.delay_seconds,
                    "outlets": pipeline.outlets is not None,
                },
            )
        )
        raw, filtered = _Forward(pipeline.inlet.ring), _Forward(stage.ring)
        next_status = 0.0
        while not conn.poll(SEND_PERIOD_S):
            now = time.monotonic()
            update: dict[str, Any] = {"raw": raw.take(), "filtered": filtered.take()}
            update["predictions"] = [predictions.popleft() for _ in range(len(predictions))]
            if now >= next_status:
                update["status"] = pipeline.status()
                next_status = now + STATUS_PERIOD_S
            conn.send(("update", update))
    except (BrokenPipeError, EOFError, OSError):
        pass  # the parent went away: stop
    except BaseException as exc:  # noqa: BLE001 - reported, then the pipeline stops
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        pipeline.stop()
        conn.close()
