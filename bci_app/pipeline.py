"""Wires a source to the sinks: (simulator) -> LSL -> inlet thread -> ring -> dsp -> windows.

Used the same way by the GUI, the headless runner and the benchmarks. Sinks are callables that
receive every :class:`~bci_app.dsp.windows.Window` on the processing thread; they must return at
once (hand the window to another thread through a bounded slot, never block).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pylsl

from bci_app.config import AppConfig
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import Window
from bci_app.sources.simulator import SimulatorSettings, SimulatorStream
from bci_app.stream.inlet import InletThread, StreamDescription, StreamHealth

log = logging.getLogger(__name__)

WindowSink = Callable[[Window], None]
WAKE_TIMEOUT_S = 0.05  # the dsp thread wakes on data; this only bounds its stop latency


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


def simulator_settings(config: AppConfig) -> SimulatorSettings:
    sim = config.simulator
    return SimulatorSettings(
        n_channels=sim.channels,
        rate_hz=sim.rate,
        seed=sim.seed,
        classes=tuple(sim.classes),
        line_freq_hz=None if sim.line_freq is None else float(sim.line_freq),
    )


class Pipeline:
    """Owns every acquisition and processing thread; ``stop()`` joins them all within 2 s each."""

    def __init__(self, config: AppConfig, simulator: SimulatorStream | None = None) -> None:
        """``simulator``: a not yet started stream to use instead of one built from ``config``
        (e.g. one with an ``inject`` hook); used only when no stream selector is configured."""
        self.config = config
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

    def start(self) -> StreamDescription:
        """Start the source (simulator when no stream is configured), the inlet and the dsp."""
        stream_config = self.config.stream
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
            )
            self.description = self.inlet.connect()
            self.stage = DspStage(self.inlet.ring, self.description.rate_hz, self.config)
            self.inlet.start()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._run, name="bci-dsp", daemon=True)
        self._thread.start()
        return self.description

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self.inlet is not None:
            self.inlet.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("dsp thread did not stop within %.1f s", timeout)
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
        )

    def _run(self) -> None:
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
