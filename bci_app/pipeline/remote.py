"""A viewer of a worker that runs elsewhere (``bci-app gui --attach``): no pipeline of its own.

A worker (``bci-app run --headless``, or any pipeline with a model) publishes, under one
session id, ``<prefix>-predictions``, ``-electrode-weights``, ``-latency`` and ``-status``
(:class:`~bci_app.infer.outlets.PredictionOutlets`). :class:`RemoteWorker` finds one by its
prefix or session id, reads those four outlets and, through an ordinary
:class:`~bci_app.stream.inlet.InletThread`, the EEG stream the worker reads (named in the
outlets' descriptions), and offers all of it as a :class:`PipelineView`, so the GUI draws it
with the same panels as a local pipeline.

Binding: only the outlets of the bound session are read; another worker with the same prefix
is never mixed in. When the bound worker's status stops for :data:`LOST_AFTER_S`, the view
reports ``lost``; bound by prefix, it then binds to the next worker with that prefix (a
restarted worker has a new session), bound by session id only to that session.

Clocks: predictions are stamped with the worker's clock (the EEG sample's time); each inlet's
``time_correction()`` maps them onto this host's, and :attr:`RemoteWorker.clock_offsets_s`
says which offsets were applied.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pylsl
from pylsl.util import LostError, TimeoutError  # noqa: A004 (liblsl's, not the builtin)

from bci_app.config import AppConfig
from bci_app.errors import UserError
from bci_app.infer.latency import STAGE_NAMES, summarize_ms
from bci_app.infer.outlets import STATUS_SUFFIX
from bci_app.infer.worker import Prediction
from bci_app.lifecycle import STOP_TIMEOUT_S
from bci_app.nn.checkpoint import CheckpointMetadata
from bci_app.pipeline.view import (
    PipelineBase,
    PipelineStatus,
    Trace,
    TraceKind,
    status_from_json,
)
from bci_app.stream.inlet import InletThread, StreamState
from bci_app.stream.resolve import StreamDescription

__all__ = ["LOST_AFTER_S", "RemoteWorker", "WorkerInfo", "find_workers"]

log = logging.getLogger(__name__)

STATUS_TYPE = "Status"  # the stream type of a worker's status outlet
LOST_AFTER_S = 3.0  # no status for this long: the worker is lost
PULL_TIMEOUT_S = 0.05  # bounds the stop latency of the reading thread
FIND_TIMEOUT_S = 1.0
AGES_HELD = 600  # decisions the viewer's latency figures cover (a minute at a 0.1 s hop)
MATCH_WAIT_S = 0.2  # longest wait for a prediction's weights or latency sample
REBIND_TIMEOUT_S = 0.4  # each look for the lost worker: short, so that stop() joins in time


@dataclass(frozen=True)
class WorkerInfo:
    """A worker seen on the network, from its status outlet's description."""

    session_id: str
    prefix: str  # its outlets' name prefix
    source_id_prefix: str  # its outlets' source_id prefix
    hostname: str
    input_name: str  # the EEG stream the worker reads
    input_source_id: str
    model: str
    metadata_json: str

    def source_id(self, suffix: str) -> str:
        return f"{self.source_id_prefix}-{suffix}-{self.session_id}"

    def matches(self, target: str | None) -> bool:
        """``target``: a name prefix or a session id; None matches any worker."""
        return target is None or target in (self.prefix, self.session_id)

    def describe(self) -> str:
        return (
            f"{self.prefix} (session {self.session_id}) on {self.hostname}: reads "
            f"{self.input_name!r}, model {Path(self.model).name}"
        )


def _worker_info(info: pylsl.StreamInfo) -> WorkerInfo | None:
    """The worker behind a status outlet's (full) info; None for another kind of stream."""
    suffix = f"-{STATUS_SUFFIX}"
    node = info.desc().child("bci_app")
    session = node.child_value("session_id")
    name, source_id = info.name(), info.source_id()
    tail = f"{suffix}-{session}"
    if not session or not name.endswith(suffix) or not source_id.endswith(tail):
        return None
    return WorkerInfo(
        session_id=session,
        prefix=name[: -len(suffix)],
        source_id_prefix=source_id[: -len(tail)],
        hostname=node.child_value("hostname") or info.hostname(),
        input_name=node.child_value("input_name"),
        input_source_id=node.child_value("input_source_id"),
        model=node.child_value("model"),
        metadata_json=node.child_value("metadata"),
    )


def _full_info(info: pylsl.StreamInfo, timeout: float) -> pylsl.StreamInfo | None:
    """A resolved info with its description (resolve results carry none)."""
    inlet = pylsl.StreamInlet(info)
    try:
        return inlet.info(timeout=timeout)
    except (TimeoutError, LostError):  # gone between the resolve and now
        return None
    finally:
        inlet.close_stream()


def find_workers(timeout: float = FIND_TIMEOUT_S, target: str | None = None) -> list[WorkerInfo]:
    """The workers visible on the network (those matching ``target``: a prefix or a session
    id), one per session."""
    found: dict[str, WorkerInfo] = {}
    for info in pylsl.resolve_byprop("type", STATUS_TYPE, 0, timeout):
        full = _full_info(info, timeout)
        worker = None if full is None else _worker_info(full)
        if worker is not None and worker.matches(target):
            found.setdefault(worker.session_id, worker)
    return list(found.values())


def _pull(inlet: pylsl.StreamInlet, timeout: float) -> tuple[list, list]:
    """Every sample waiting, waking on the first within ``timeout`` s (a ``pull_chunk`` with a
    timeout waits for a full buffer, not for the first sample)."""
    first, stamp = inlet.pull_sample(timeout=timeout)
    if stamp is None:
        return [], []
    rows, stamps = inlet.pull_chunk(timeout=0.0)
    return [first, *rows], [stamp, *stamps]


class _Binding:
    """The inlets of one worker's outlets; closed together."""

    def __init__(self, worker: WorkerInfo, timeout: float) -> None:
        self.worker = worker
        self.inlets: dict[str, pylsl.StreamInlet] = {}
        try:
            for suffix in ("predictions", "electrode-weights", "latency", STATUS_SUFFIX):
                infos = pylsl.resolve_byprop("source_id", worker.source_id(suffix), 1, timeout)
                if not infos:
                    raise UserError(
                        f"worker {worker.describe()} has no {suffix!r} outlet visible from here "
                        f"(source_id {worker.source_id(suffix)!r}); is it still running?"
                    )
                # liblsl's recovery reconnects to this source_id only: this session's outlet
                inlet = pylsl.StreamInlet(infos[0], max_buflen=10)
                inlet.open_stream(timeout=timeout)
                self.inlets[suffix] = inlet
        except Exception:
            self.close()
            raise
        self.last_status = time.monotonic()

    def clock_offsets(self) -> dict[str, float]:
        """``time_correction()`` of each inlet (s): add to a worker timestamp for this host's."""
        return {k: inlet.time_correction(timeout=1.0) for k, inlet in self.inlets.items()}

    def close(self) -> None:
        for inlet in self.inlets.values():
            try:
                inlet.close_stream()
            except Exception:  # already gone with its outlet
                log.debug("closing an inlet failed", exc_info=True)
        self.inlets.clear()


class RemoteWorker(PipelineBase):
    """A :class:`~bci_app.pipeline.view.PipelineView` of a worker elsewhere; see the module
    docstring. ``target``: its outlets' name prefix or its session id (None: the only worker
    visible)."""

    name = "bci-remote"

    def __init__(self, config: AppConfig, target: str | None = None) -> None:
        super().__init__(config, with_model=True)
        self.target = target
        self.inlet: InletThread | None = None
        self.worker: WorkerInfo | None = None
        self.clock_offsets_s: dict[str, float] = {}
        self.rebinds = 0  # times a worker (a new session) was bound after a loss
        self._binding: _Binding | None = None
        self._lock = threading.Lock()
        self._status: PipelineStatus | None = None
        self._latest: Prediction | None = None
        self._seq = 0
        self._lost = False
        # samples of the weights and latency outlets by timestamp, not yet matched
        self._held: dict[str, dict[float, np.ndarray]] = {"electrode-weights": {}, "latency": {}}
        self._ages: deque[float] = deque(maxlen=AGES_HELD)  # at_viewer of recent decisions (ms)

    # -- PipelineView ---------------------------------------------------------------------------
    simulator = None

    @property
    def publishes_outlets(self) -> bool:
        return False

    @property
    def lost(self) -> bool:
        """True while the bound worker sends no status (see :data:`LOST_AFTER_S`)."""
        return self._lost

    def status(self) -> PipelineStatus | None:
        with self._lock:
            status = self._status
        if status is None or not self._lost:
            return status
        who = "worker" if self.worker is None else f"worker {self.worker.describe()}"
        error = f"{who} lost: no status for {LOST_AFTER_S:g} s; waiting for it to come back"
        return replace(status, stream=replace(status.stream, state=StreamState.LOST, error=error))

    def latest_prediction(self) -> Prediction | None:
        return self._latest

    def viewer_latency(self) -> dict:
        """The decision's age here (``at_viewer``, ms: p50/p99/max over the recent ones) and
        the LSL clock offsets applied (s, per outlet), for the latency panel."""
        return {
            "at_viewer_ms": summarize_ms(list(self._ages), digits=2, per_ms=1.0),
            "clock_offsets_s": dict(self.clock_offsets_s),
        }

    def trace(self, kind: TraceKind) -> Trace | None:
        """The EEG the worker reads, from its own stream (no filtered trace: no dsp here)."""
        if kind != "raw" or self.inlet is None or self.inlet.ring is None:
            return None
        return Trace(self.inlet.ring, self.description.rate_hz)

    # -- lifecycle ------------------------------------------------------------------------------
    def _setup(self) -> StreamDescription:
        timeout = self.config.stream.resolve_timeout
        workers = self._find(timeout)
        if not workers:
            what = "any bci-app worker" if self.target is None else f"a worker {self.target!r}"
            raise UserError(
                f"cannot find {what} on the network within {timeout:g} s (its outlets "
                "<prefix>-status and others); start one with `bci-app run --headless`, and check "
                "that both hosts share the LSL config (--lsl-config) when multicast is blocked"
            )
        if len(workers) > 1:
            listed = "; ".join(w.describe() for w in workers)
            raise UserError(
                f"{len(workers)} workers match: {listed}; attach to one by its session id"
            )
        self._bind(workers[0], timeout)
        stream = self.config.stream.model_copy(
            update={"source_id": self.worker.input_source_id or None, "name": None, "type": None}
        )
        if not self.worker.input_source_id:
            stream = stream.model_copy(update={"name": self.worker.input_name})
        self.inlet = InletThread(stream, self.config.health, self.config.ring.capacity)
        self.description = self.inlet.connect()
        self.inlet.start()
        self._spawn(self._run, "bci-remote")
        return self.description

    def _find(self, timeout: float) -> list[WorkerInfo]:
        deadline = time.monotonic() + timeout
        while True:
            workers = find_workers(min(FIND_TIMEOUT_S, timeout), self.target)
            if workers or time.monotonic() >= deadline or self.stopping:
                return workers

    def _bind(self, worker: WorkerInfo, timeout: float) -> None:
        binding = _Binding(worker, timeout)
        metadata = CheckpointMetadata.from_json(worker.metadata_json, source=worker.describe())
        if self.metadata is not None and (
            metadata.classes != self.metadata.classes
            or metadata.channel_labels != self.metadata.channel_labels
        ):
            log.warning("the new worker %s runs another model", worker.describe())
        old, self._binding = self._binding, binding
        if old is not None:
            old.close()
        self.worker, self.metadata = worker, metadata
        self._held = {suffix: {} for suffix in self._held}
        self.model_path = Path(worker.model)
        self.clock_offsets_s = binding.clock_offsets()
        self._lost = False
        log.info("attached to %s; clock offsets %s", worker.describe(), self.clock_offsets_s)

    def _request_stop(self) -> None:
        if self.inlet is not None:
            self.inlet.request_stop()

    def _teardown(self) -> None:
        if self.inlet is not None:
            self.inlet.stop(STOP_TIMEOUT_S)
        if self._binding is not None:
            self._binding.close()

    # -- reading --------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self.stopping:
            binding = self._binding
            if binding is None or self._lost:
                self._rebind()
                continue
            got = self._read(binding)
            if time.monotonic() - binding.last_status > LOST_AFTER_S and not self._lost:
                self._lost = True
                log.warning("worker %s lost", binding.worker.describe())
            if not got:
                self._wait_stop(0.005)

    def _rebind(self) -> None:
        """After a loss: the same session again, or (bound by prefix) a new session of it."""
        previous = self.worker
        target = previous.session_id if self.target == previous.session_id else previous.prefix
        try:
            workers = [
                w for w in find_workers(REBIND_TIMEOUT_S, target) if w.prefix == previous.prefix
            ]
            if not workers:
                return
            self._bind(workers[0], REBIND_TIMEOUT_S)
        except Exception as exc:  # found, then gone again; or not a worker we can read
            log.info("rebinding failed: %s", exc)
            self._wait_stop(REBIND_TIMEOUT_S)
            return
        self.rebinds += 1

    def _read(self, binding: _Binding) -> bool:
        """Drain the bound worker's outlets once; True when anything came."""
        got = False
        inlets = binding.inlets
        statuses, _ = inlets[STATUS_SUFFIX].pull_chunk(timeout=0.0)
        for (text,) in statuses:
            binding.last_status = time.monotonic()
            got = True
            try:
                status = status_from_json(json.loads(text)["status"])
            except (ValueError, KeyError, TypeError) as exc:  # a newer or broken worker
                log.warning("unreadable status from %s: %s", binding.worker.describe(), exc)
                continue
            with self._lock:
                self._status = status
        probabilities, stamps = _pull(inlets["predictions"], PULL_TIMEOUT_S)
        if not stamps:
            return got
        classes, n_electrodes = self.metadata.classes, len(self.metadata.channel_labels)
        now = pylsl.local_clock()
        offset = self.clock_offsets_s.get("predictions", 0.0)
        for row, stamp in zip(probabilities, stamps, strict=True):
            probs = np.asarray(row[:-1], dtype=np.float32)
            index = int(np.argmax(probs))
            weight = self._at_stamp(binding, "electrode-weights", stamp)
            latency = self._at_stamp(binding, "latency", stamp)
            prediction = Prediction(
                seq=self._seq,
                timestamp=stamp,
                probabilities=probs,
                class_index=index,
                class_name=classes[index],
                weights=np.full(n_electrodes, np.nan, np.float32) if weight is None else weight,
                device=f"remote:{binding.worker.hostname}",
                latency_ms={
                    **(
                        {}
                        if latency is None
                        else dict(zip(STAGE_NAMES, (float(v) for v in latency), strict=True))
                    ),
                    # the decision's age here: this host's clock minus the worker's stamp
                    # mapped onto it by LSL's clock correction
                    "at_viewer": (now - (stamp + offset)) * 1e3,
                },
            )
            self._seq += 1
            self._ages.append(prediction.latency_ms["at_viewer"])
            self._latest = prediction
            self._deliver(prediction)
        return True

    def _at_stamp(self, binding: _Binding, suffix: str, stamp: float) -> np.ndarray | None:
        """The sample of the outlet ``suffix`` stamped like the prediction at ``stamp`` (the
        worker pushes them one after the other, so they may come a pull later); None if it
        never does."""
        inlet, held = binding.inlets[suffix], self._held[suffix]
        deadline = time.monotonic() + MATCH_WAIT_S
        while stamp not in held and time.monotonic() < deadline:
            rows, stamps = _pull(inlet, 0.02)
            for row, when in zip(rows, stamps, strict=True):
                held[when] = np.asarray(row, np.float32)
        for older in [t for t in held if t < stamp]:  # their prediction never came
            del held[older]
        return held.pop(stamp, None)
