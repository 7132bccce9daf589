"""Wires a source to the sinks: (simulator) -> LSL -> inlet thread -> ring -> dsp -> windows.

Used the same way by the GUI, the headless runner and the benchmarks. Sinks are callables that
receive every :class:`~bci_app.dsp.windows.Window` on the processing thread; they must return at
once (hand the window to another thread through a bounded slot, never block).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pylsl

from bci_app.config import AppConfig, ChannelsConfig, FiltersConfig, WindowsConfig
from bci_app.dsp.stage import DspStage, model_rate
from bci_app.dsp.windows import Window
from bci_app.infer.worker import InferenceWorker, Prediction, WorkerStats
from bci_app.nn.checkpoint import CheckpointMetadata, check_stream_compatibility, load_checkpoint
from bci_app.scheduling import set_realtime_priority
from bci_app.sources.simulator import SimulatorSettings, SimulatorStream
from bci_app.stream.inlet import InletThread, StreamDescription, StreamHealth
from bci_app.stream.outlets import PredictionOutlets

log = logging.getLogger(__name__)

WindowSink = Callable[[Window], None]
PredictionSink = Callable[[Prediction], None]
WAKE_TIMEOUT_S = 0.05  # the dsp thread wakes on data; this only bounds its stop latency
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "sim-motor-imagery"


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


def simulator_settings(config: AppConfig) -> SimulatorSettings:
    sim = config.simulator
    return SimulatorSettings(
        n_channels=sim.channels,
        rate_hz=sim.rate,
        seed=sim.seed,
        classes=tuple(sim.classes),
        line_freq_hz=None if sim.line_freq is None else float(sim.line_freq),
    )


def model_dir(config: AppConfig) -> Path:
    """The configured checkpoint folder, or the shipped default model."""
    return Path(config.model.path) if config.model.path else DEFAULT_MODEL_DIR


def apply_checkpoint(config: AppConfig, metadata: CheckpointMetadata) -> AppConfig:
    """``config`` with the preprocessing and window length the model was trained with (the model
    is only valid on those); the hop stays the configured one."""
    dsp = metadata.dsp
    return config.model_copy(
        update={
            "model_rate": metadata.model_rate_hz,
            "filters": FiltersConfig(
                bandpass=dsp["bandpass"],
                order=dsp["order"],
                notch=dsp["notch"],
                notch_quality=dsp["notch_quality"],
            ),
            "channels": ChannelsConfig(pick=config.channels.pick, reference=dsp["reference"]),
            "windows": WindowsConfig(
                length=metadata.window_s, hop=min(config.windows.hop, metadata.window_s)
            ),
        }
    )


class JsonlLog:
    """Appends one JSON line per prediction (window end time, probabilities, weights, latency)."""

    def __init__(self, path: str | Path, classes: list[str], labels: list[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._file.write(json.dumps({"classes": classes, "electrodes": labels}) + "\n")

    def __call__(self, prediction: Prediction) -> None:
        record = {
            "seq": prediction.seq,
            "time": prediction.timestamp,
            "class": prediction.class_name,
            "probabilities": [round(float(p), 6) for p in prediction.probabilities],
            "weights": [round(float(w), 6) for w in prediction.weights],
            "latency_ms": {k: round(v, 4) for k, v in prediction.latency_ms.items()},
        }
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


class Pipeline:
    """Owns every acquisition, processing and inference thread; ``stop()`` joins each within 2 s.

    With ``with_model`` the checkpoint (``model_path``, else ``config.model.path``, else the
    shipped default) is loaded first; its preprocessing and window length replace the config's.
    """

    def __init__(
        self,
        config: AppConfig,
        simulator: SimulatorStream | None = None,
        with_model: bool = False,
        model_path: str | Path | None = None,
    ) -> None:
        """``simulator``: a not yet started stream to use instead of one built from ``config``
        (e.g. one with an ``inject`` hook); used only when no stream selector is configured."""
        self.config = config
        self.with_model = with_model
        self.model_path = Path(model_path) if model_path else model_dir(config)
        self.metadata: CheckpointMetadata | None = None
        self.worker: InferenceWorker | None = None
        self.outlets: PredictionOutlets | None = None
        self._log: JsonlLog | None = None
        self._prediction_sinks: list[PredictionSink] = []
        self.simulator: SimulatorStream | None = simulator
        self.inlet: InletThread | None = None
        self.stage: DspStage | None = None
        self.description: StreamDescription | None = None
        self._sinks: list[WindowSink] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._windows = 0
        self._flagged = 0
        self._sink_errors = 0
        self._window_times: deque[float] = deque(maxlen=64)

    def add_sink(self, sink: WindowSink) -> None:
        """Register a callable that gets every window (call before :meth:`start`)."""
        if self._thread is not None:
            raise RuntimeError("add sinks before start()")
        self._sinks.append(sink)

    def add_prediction_sink(self, sink: PredictionSink) -> None:
        """Register a callable that gets every prediction on the worker thread (before start)."""
        if self._thread is not None:
            raise RuntimeError("add sinks before start()")
        self._prediction_sinks.append(sink)

    def start(self) -> StreamDescription:
        """Start the source (simulator when no stream is configured), inlet, dsp and worker."""
        stream_config = self.config.stream
        model = None
        if self.with_model:
            model, self.metadata = load_checkpoint(self.model_path)
            self.config = apply_checkpoint(self.config, self.metadata)
        try:
            if stream_config.uses_simulator:
                if self.simulator is None:
                    self.simulator = SimulatorStream(simulator_settings(self.config))
                self.simulator.start()
                stream_config = stream_config.model_copy(
                    update={"source_id": self.simulator.source_id}
                )
                log.info("no stream configured: started the simulator %s", self.simulator.source_id)
            self.inlet = InletThread(
                stream_config,
                self.config.health,
                self.config.ring.capacity,
                pick=self.config.channels.pick,
                realtime_priority=self.config.scheduling.realtime_priority,
            )
            self.description = self.inlet.connect()
            self.stage = DspStage(self.inlet.ring, self.description.rate_hz, self.config)
            if model is not None:
                self._start_worker(model)
            self.inlet.start()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="bci-dsp", daemon=True)
        self._thread.start()
        return self.description

    def _start_worker(self, model) -> None:  # noqa: ANN001 - EEGClassifier
        metadata, description = self.metadata, self.description
        channel_index = check_stream_compatibility(
            metadata, description.labels, model_rate(self.config, description.rate_hz)
        )
        callbacks = list(self._prediction_sinks)
        emit = None
        if self.config.outlets.enabled:
            self.outlets = PredictionOutlets(
                self.config.outlets, metadata.classes, metadata.channel_labels
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
        self.worker = InferenceWorker(
            model,
            metadata.classes,
            channel_index,
            self.config.model.device,
            self.config.budgets,
            emit=emit,
            on_prediction=callbacks,
            use_cuda_graph=self.config.model.cuda_graph,
            cpu_runtime=self.config.model.cpu_runtime,
            cpu_threads=self.config.model.cpu_threads,
        )
        self.worker.start()
        self._sinks.insert(0, self.worker.submit)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self.inlet is not None:
            self.inlet.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("dsp thread did not stop within %.1f s", timeout)
        if self.worker is not None:
            self.worker.stop(timeout)
        if self._log is not None:
            self._log.close()
        if self.simulator is not None:
            self.simulator.stop(timeout)

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def status(self) -> PipelineStatus:
        times = list(self._window_times)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        if times and pylsl.local_clock() - times[-1] > 2.0:
            rate = 0.0
        stage = self.stage
        return PipelineStatus(
            stream=self.inlet.health(),
            windows=self._windows,
            flagged_windows=self._flagged,
            windows_per_s=rate,
            dsp_overruns=0 if stage is None else stage.overruns + stage.cutter.overruns,
            filter_delay_s=0.0 if stage is None else stage.delay_seconds,
            sink_errors=self._sink_errors,
            window_s=self.config.windows.length,
            worker=None if self.worker is None else self.worker.stats(),
        )

    def _run(self) -> None:
        priority = self.config.scheduling.realtime_priority
        if priority is not None:
            set_realtime_priority(priority)  # a refusal is logged once per process
        stage, ring = self.stage, self.inlet.ring
        while not self._stop.is_set():
            if not ring.wait_for(stage.cursor, WAKE_TIMEOUT_S):
                continue
            overruns_before = stage.overruns
            for window in stage.process(pylsl.local_clock()):
                self._windows += 1
                self._flagged += not window.usable
                self._window_times.append(window.cut_time)
                for sink in self._sinks:
                    try:
                        sink(window)
                    except Exception:  # noqa: BLE001 - one faulty sink must not stop the others
                        self._sink_errors += 1
                        log.exception("window sink %r failed", sink)
            for _ in range(stage.overruns - overruns_before):
                self.inlet.report_overrun()


def gui_pipeline(config: AppConfig, with_model: bool = False, model_path: str | Path | None = None):  # noqa: ANN201 - Pipeline | ProcessPipeline
    """The pipeline the GUI runs: in its own process when ``gui.separate_process`` (default)."""
    if config.gui.separate_process:
        from bci_app.pipeline_process import ProcessPipeline

        return ProcessPipeline(config, with_model=with_model, model_path=model_path)
    return Pipeline(config, with_model=with_model, model_path=model_path)
