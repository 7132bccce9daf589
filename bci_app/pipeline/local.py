"""The pipeline in this process: (simulator) -> LSL -> inlet thread -> ring -> dsp -> windows
-> worker -> sinks.

Used by the headless runner, the benchmarks, fast replay's paced mode and, inside its child, by
:class:`~bci_app.pipeline.process.ProcessPipeline`. Window sinks receive every
:class:`~bci_app.dsp.windows.Window` on the dsp thread; they must return at once (hand the
window to another thread through a bounded slot, never block).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pylsl

from bci_app.config import AppConfig, StreamConfig
from bci_app.decoders import Decoder, load_decoder
from bci_app.dsp.stage import DspStage, model_rate
from bci_app.dsp.windows import Window
from bci_app.infer.outlets import JsonlLog, PredictionOutlets
from bci_app.infer.speller import SpelledCharacter
from bci_app.infer.worker import InferenceWorker, Prediction
from bci_app.lifecycle import STOP_TIMEOUT_S
from bci_app.nn.checkpoint import apply_checkpoint, check_stream_compatibility
from bci_app.pipeline.erp import ErpStage
from bci_app.pipeline.view import (
    PipelineBase,
    PipelineStatus,
    Trace,
    TraceKind,
    ended_status,
    status_to_json,
)
from bci_app.scheduling import gil_switch_interval, set_realtime_priority
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorClock, SimulatorStream
from bci_app.stream.inlet import InletThread
from bci_app.stream.markers import MarkerInlet
from bci_app.stream.resolve import StreamDescription

__all__ = ["Pipeline", "WindowSink"]

log = logging.getLogger(__name__)

WindowSink = Callable[[Window], None]
WAKE_TIMEOUT_S = 0.05  # the dsp thread wakes on data; this only bounds its stop latency
STATUS_PERIOD_S = 1.0  # one snapshot a second on the status outlet


class Pipeline(PipelineBase):
    """Owns every acquisition, processing and inference thread; ``stop()`` joins each within 2 s.

    With ``with_model`` the checkpoint (``model_path``, else ``config.model.path``, else the
    shipped default) is loaded first; its preprocessing and window length replace the config's.
    When no stream selector is configured the built-in simulator is the source: ``simulator``
    (a not yet started stream, e.g. one with an ``inject`` hook), else one with
    ``simulator_settings``, else one built from the config's ``simulator`` section.
    """

    name = "bci-pipeline"

    def __init__(
        self,
        config: AppConfig,
        simulator: SimulatorStream | None = None,
        with_model: bool = False,
        model_path: str | Path | None = None,
        simulator_settings: SimulatorSettings | None = None,
        *,
        traces: bool = True,
    ) -> None:
        super().__init__(config, with_model, model_path, simulator_settings, traces=traces)
        self.worker: InferenceWorker | None = None
        self.outlets: PredictionOutlets | None = None
        self.inlet: InletThread | None = None
        self.stage: DspStage | None = None
        self._source = simulator
        self._log: JsonlLog | None = None
        self._window_sinks: list[WindowSink] = []
        self._windows = 0
        self._flagged = 0
        self._sink_errors = 0
        self._window_times: deque[float] = deque(maxlen=64)
        self._process_settings = contextlib.ExitStack()  # undone at teardown
        self.erp: ErpStage | None = None  # ERP models: markers -> epochs -> characters
        self._erp_markers: MarkerInlet | None = None

    # -- PipelineView --------------------------------------------------------------------------
    @property
    def simulator(self) -> SimulatorClock | None:
        source = self._source
        return None if source is None or source.t0 is None else source.clock()

    @property
    def publishes_outlets(self) -> bool:
        return self.outlets is not None

    def latest_prediction(self) -> Prediction | None:
        return None if self.worker is None else self.worker.latest

    def trace(self, kind: TraceKind) -> Trace | None:
        if self.stage is None:
            return None
        if kind == "raw":
            return Trace(self.stage.raw_ring, self.description.rate_hz)
        return Trace(self.stage.ring, self.stage.rate_hz)

    def status(self) -> PipelineStatus | None:
        if self.inlet is None:
            return None
        times = list(self._window_times)
        span = times[-1] - times[0] if times else 0.0
        rate = (len(times) - 1) / span if span > 0 else 0.0  # windows of one batch share a time
        if times and pylsl.local_clock() - times[-1] > 2.0:
            rate = 0.0
        stage = self.stage
        status = PipelineStatus(
            stream=self.inlet.health(),
            windows=self._windows,
            flagged_windows=self._flagged,
            windows_per_s=rate,
            dsp_overruns=0 if stage is None else stage.overruns + stage.cutter.overruns,
            filter_delay_s=0.0 if stage is None else stage.delay_seconds,
            sink_errors=self._sink_errors,
            window_s=self.config.windows.length,
            worker=None if self.worker is None else self.worker.stats(),
            samples_processed=0 if stage is None else stage.cursor,
            filter_delays=None if stage is None else stage.delays,
            erp=None if self.erp is None else self.erp.stats(),
        )
        return ended_status(status, self.error)

    # -- in-process extras ---------------------------------------------------------------------
    def add_sink(self, sink: WindowSink) -> None:
        """Register a callable that gets every window (call before :meth:`start`)."""
        if self._started:
            raise RuntimeError("add sinks before start()")
        self._window_sinks.append(sink)

    # -- lifecycle -----------------------------------------------------------------------------
    def _setup(self) -> StreamDescription:
        """Start the source (simulator when no stream is configured), inlet, dsp and worker."""
        stream_config = self.config.stream
        self._process_settings.enter_context(
            gil_switch_interval(self.config.scheduling.gil_switch_ms)
        )
        decoder = None
        if self.with_model:
            decoder, self.metadata = load_decoder(self.model_path, adapt=self.config.model.adapt)
            self.config = apply_checkpoint(self.config, self.metadata)
        if stream_config.uses_simulator:
            if self._source is None:
                settings = self.simulator_settings or SimulatorSettings.from_config(self.config)
                self._source = SimulatorStream(settings)
            self._source.start()
            stream_config = stream_config.model_copy(update={"source_id": self._source.source_id})
            log.info("no stream configured: started the simulator %s", self._source.source_id)
        self.inlet = InletThread(
            stream_config,
            self.config.health,
            self.config.ring.capacity,
            pick=self.config.channels.pick,
            realtime_priority=self.config.scheduling.realtime_priority,
        )
        self.description = self.inlet.connect()
        self.stage = DspStage(self.inlet.ring, self.description.rate_hz, self.config)
        if decoder is not None:
            self._start_worker(decoder, stream_config)
        self.inlet.start()
        self._spawn(self._run, "bci-dsp")
        return self.description

    def _start_worker(self, decoder: Decoder, stream_config: StreamConfig) -> None:
        metadata, description = self.metadata, self.description
        channel_index = check_stream_compatibility(
            metadata, description.labels, model_rate(self.config, description.rate_hz)
        )
        callbacks = list(self._prediction_sinks)
        emit = None
        if self.config.outlets.enabled:
            self.outlets = PredictionOutlets(
                self.config.outlets,
                metadata.classes,
                metadata.channel_labels,
                worker={
                    "input_name": description.name,
                    "input_source_id": description.source_id or "",
                    "hostname": socket.gethostname(),
                    "model": str(self.model_path),
                },
                metadata_json=metadata.to_json(),
                characters=self.config.paradigm.erp,
            )
            outlets = self.outlets

            def emit(p: Prediction) -> None:
                outlets.push_decision(p.timestamp, p.probabilities, p.weights)

            callbacks.insert(0, lambda p: outlets.push_latency(p.timestamp, p.latency_ms))
        if self.config.outlets.jsonl:
            self._log = JsonlLog(
                self.config.outlets.jsonl, metadata.classes, metadata.channel_labels
            )
            callbacks.append(self._log)
        self.worker = InferenceWorker.from_config(
            decoder, metadata.classes, channel_index, self.config, emit, callbacks
        )
        if self.config.paradigm.erp:
            self._start_erp(stream_config)
        else:
            self._window_sinks.insert(0, self.worker.submit)
        self.worker.start()
        if self.outlets is not None:
            self._spawn(self._publish_status, "bci-status")

    def _start_erp(self, stream_config: StreamConfig) -> None:
        """ERP model: read the stimulus markers beside the EEG and classify one epoch per
        flash (instead of the sliding windows), publishing each decided character."""
        source_id = stream_config.markers or (
            self._source.marker_source_id
            if self._source is not None
            else f"{self.description.source_id}-markers"
        )
        markers = MarkerInlet(source_id, stream_config.resolve_timeout)
        self._erp_markers = markers
        markers.start()
        outlets = self.outlets

        def publish(character: SpelledCharacter, timestamp: float) -> None:
            log.info("spelled %r (%d flashes)", character.symbol, character.flashes)
            if outlets is not None:
                outlets.push_character(character.symbol, timestamp)

        self.erp = ErpStage(markers, self.stage, self.inlet.ring, self.config.paradigm, publish)
        assert self.worker is not None
        self.worker.add_callback(self.erp.on_prediction)  # it gets epochs, not windows

    def _publish_status(self) -> None:
        """One JSON snapshot of :meth:`status` a second on the status outlet, for viewers."""
        while not self._wait_stop(STATUS_PERIOD_S):
            status = self.status()
            if status is None or self.outlets is None:
                continue
            self.outlets.push_status(
                {
                    "session_id": self.config.outlets.session_id,
                    "model": self.model_path.name,
                    "status": status_to_json(status),
                }
            )

    def _request_stop(self) -> None:
        if self._erp_markers is not None:
            self._erp_markers.stop(STOP_TIMEOUT_S)
        if self.inlet is not None:
            self.inlet.stop(STOP_TIMEOUT_S)  # also wakes the dsp thread waiting on the ring

    def _teardown(self) -> None:
        self._process_settings.close()
        if self.worker is not None:
            self.worker.stop(STOP_TIMEOUT_S)
        if self._log is not None:
            self._log.close()
        if self._source is not None:
            self._source.stop(STOP_TIMEOUT_S)

    def _run(self) -> None:
        priority = self.config.scheduling.realtime_priority
        if priority is not None:
            set_realtime_priority(priority)  # a refusal is logged once per process
        stage, ring = self.stage, self.inlet.ring
        while not self.stopping:
            if not ring.wait_for(stage.cursor, WAKE_TIMEOUT_S):
                self._step_erp()  # without EEG, the markers' silence still ends a character
                continue
            overruns_before = stage.overruns
            if self.worker is not None and self.inlet.first_arrival is not None:
                self.worker.backlog_until = self.inlet.first_arrival
            for window in stage.process(pylsl.local_clock):
                self._windows += 1
                self._flagged += not window.usable
                self._window_times.append(window.cut_time)
                for sink in self._window_sinks:
                    try:
                        sink(window)
                    except Exception:
                        self._sink_errors += 1  # one faulty sink must not stop the others
                        log.exception("window sink %r failed", sink)
            self._step_erp()
            for _ in range(stage.overruns - overruns_before):
                self.inlet.report_overrun()

    def _step_erp(self) -> None:
        """The ERP stage's markers and epochs (dsp thread): new epochs go to the worker. A
        failure there is counted with the sinks' (the dsp thread goes on cutting windows)."""
        if self.erp is None or self.worker is None:
            return
        try:
            epochs = self.erp.step(pylsl.local_clock())
        except Exception:
            self._sink_errors += 1
            if self._sink_errors == 1 or self._sink_errors % 1000 == 0:  # every 50 ms else
                log.exception("ERP stage failed (%d sink errors so far)", self._sink_errors)
            return
        for epoch in epochs:
            self.worker.submit(epoch)
