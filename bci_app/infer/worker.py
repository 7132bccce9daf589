"""Inference worker: windows in, class probabilities and electrode weights out, always fresh.

One thread owns the model. Windows arrive through a single latest-wins slot (a newer window
replaces an unclaimed older one), so no backlog can build up behind a slow model. Windows that
are flagged (gap, NaN) are skipped, windows older than the staleness budget when claimed are
dropped; both are counted. On CUDA the forward is replayed from a CUDA graph with static,
pinned buffers; a CUDA error or out-of-memory moves the worker to the CPU and it keeps going.
"""

from __future__ import annotations

import collections
import copy
import logging
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pylsl
import torch

from bci_app.config import AppConfig, BudgetsConfig
from bci_app.decoders import Decoder, NetworkDecoder
from bci_app.dsp.windows import Window
from bci_app.infer.latency import LatencyTracker, StageTimes
from bci_app.lifecycle import Background
from bci_app.nn.checkpoint import resolve_device
from bci_app.nn.classifier import EEGClassifier
from bci_app.nn.export import checked_onnx_session, export_onnx, onnx_session

log = logging.getLogger(__name__)

WAKE_TIMEOUT_S = 0.05  # bounds the stop latency while no window arrives
WARMUP_RUNS = 5


@dataclass(frozen=True)
class Prediction:
    """The decision for one window."""

    seq: int  # the window's sequence number
    timestamp: float  # LSL time of the window's newest sample (outlets are stamped with it)
    probabilities: np.ndarray  # (n_classes,)
    class_index: int
    class_name: str
    weights: np.ndarray  # (n_electrodes,) attention weight per electrode, model channel order
    device: str
    latency_ms: dict[str, float] = field(default_factory=dict)


class LatestSlot:
    """A one-window mailbox: ``put`` never blocks and replaces what was not taken yet."""

    def __init__(self) -> None:
        self._window: Window | None = None
        self._ready = threading.Condition(threading.Lock())
        self.replaced = 0

    def put(self, window: Window) -> None:
        with self._ready:
            if self._window is not None:
                self.replaced += 1
            self._window = window
            self._ready.notify()

    def take(self, timeout: float) -> Window | None:
        with self._ready:
            if self._window is None:
                self._ready.wait(timeout)
            window, self._window = self._window, None
            return window

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


class FifoSlot(LatestSlot):
    """A bounded first-in first-out mailbox for windows that must all be classified (ERP
    epochs: each is one flash); ``put`` never blocks, and when ``capacity`` windows wait the
    oldest is dropped and counted in ``replaced``."""

    def __init__(self, capacity: int = 256) -> None:
        super().__init__()
        self._queue: collections.deque[Window] = collections.deque()
        self.capacity = capacity

    def put(self, window: Window) -> None:
        with self._ready:
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self.replaced += 1
            self._queue.append(window)
            self._ready.notify()

    def take(self, timeout: float) -> Window | None:
        with self._ready:
            if not self._queue:
                self._ready.wait(timeout)
            return self._queue.popleft() if self._queue else None


class KeepWarm:
    """When to run the model on the last window again so that the next one finds it warm.

    Called once per window every ~100 ms, a CPU model runs 2-3x slower than back to back:
    between windows its code and data leave the caches (benchmarks/inference_cpu.py, "paced";
    spinning instead of sleeping did not help, one run just before does; polling for the
    window after that run instead of waiting gained under 0.05 ms for 6 ms of CPU). It learns
    the interval between windows (median of the last :data:`HISTORY`) and asks for one warm run
    ``lead_s`` before the next window is due; none while windows arrive irregularly or faster
    than ``min_interval_s``. Times are ``time.perf_counter()`` seconds.
    """

    HISTORY = 9

    def __init__(self, lead_s: float = 0.003, min_interval_s: float = 0.02) -> None:
        self.lead_s = lead_s
        self.min_interval_s = min_interval_s
        self._last: float | None = None
        self._intervals: list[float] = []
        self._interval: float | None = None
        self._warmed = True  # nothing to warm before the first window
        self.runs = 0

    def arrived(self, now: float) -> None:
        """A window was taken at ``now``."""
        if self._last is not None:
            self._intervals = [*self._intervals[-(self.HISTORY - 1) :], now - self._last]
            interval = statistics.median(self._intervals)
            self._interval = interval if interval >= self.min_interval_s else None
        self._last = now
        self._warmed = False

    def _due(self) -> float | None:
        if self._warmed or self._interval is None or self._last is None:
            return None
        return self._last + self._interval - self.lead_s

    def wait_s(self, now: float, longest: float) -> float:
        """How long to wait for the next window before a warm run is due (at most ``longest``)."""
        due = self._due()
        return longest if due is None else min(longest, max(0.0, due - now))

    def take_due(self, now: float) -> bool:
        """True (once per interval) when the warm run is due at ``now``."""
        due = self._due()
        if due is None or now < due:
            return False
        self._warmed = True
        self.runs += 1
        return True


class DecoderRunner:
    """A classical decoder (or an ensemble) called on one prepared window."""

    kind = "numpy"

    def __init__(self, decoder: Decoder) -> None:
        self.device = torch.device("cpu")
        self.decoder = decoder

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, weights = self.batch(x[np.newaxis])
        return probabilities[0], weights[0]

    def batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prepared windows ``x (n, C, T)`` -> ``(probabilities (n, K), weights (n, C))``."""
        return self.decoder.predict_aligned(x)


class EagerRunner:
    """Batch-1 forward in ``torch.inference_mode`` on any device."""

    kind = "eager"

    def __init__(self, model: EEGClassifier, device: torch.device) -> None:
        self.device = device
        self.model = model.to(device).eval()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (n_electrodes, n_samples)`` float32 -> ``(probabilities (K,), weights (C,))``."""
        probabilities, weights = self.batch(x[np.newaxis])
        return probabilities[0], weights[0]

    def batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (n, n_electrodes, n_samples)`` -> ``(probabilities (n, K), weights (n, C))``."""
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, non_blocking=True)
            probabilities, weights = self.model(batch)
            return probabilities.cpu().numpy(), weights.cpu().numpy()


class OnnxRunner:
    """The model as an ONNX graph run by ONNX Runtime on the CPU: the graph saved with the
    checkpoint (``onnx``, checked against the weights first), else exported in memory.

    Chosen for the CPU by benchmarks/inference_cpu.py: at batch 1 it ran 3-4x faster than torch
    eager, also when called once per window rather than back to back. Graph optimisation
    level: ORT_ENABLE_ALL (its default), fastest of the four there at 64 x 500; dynamic int8
    quantisation ran slower (its integer convolutions lose to the float NCHWc kernels).

    An I/O binding to buffers made once (no input dict or output arrays per call) was tried for
    the window-by-window path: paced with the keep-warm run, 0.64-0.70 of plain paced
    ``session.run`` against 0.59-0.74 without it, three runs side by side; not kept.
    """

    kind = "onnxruntime"

    def __init__(self, model: EEGClassifier, threads: int = 1, onnx: bytes | None = None) -> None:
        self.device = torch.device("cpu")
        self.from_checkpoint = onnx is not None
        if onnx is None:
            self.session = onnx_session(export_onnx(model), threads)
        else:
            self.session = checked_onnx_session(model, onnx, threads)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, weights = self.batch(x[np.newaxis])
        return probabilities[0], weights[0]

    def batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (n, C, T)`` -> ``(probabilities (n, K), weights (n, C))`` (a dynamic batch axis)."""
        probabilities, weights = self.session.run(None, {"x": np.ascontiguousarray(x)})
        return probabilities, weights


class CudaGraphRunner:
    """The forward captured once in a CUDA graph; each call copies the window into a static
    pinned host buffer -> static device input, replays the graph, copies the outputs back."""

    kind = "cuda-graph"

    def __init__(self, model: EEGClassifier, device: torch.device) -> None:
        config = model.config
        self.device = device
        self.model = model.to(device).eval()
        shape = (1, config.n_electrodes, config.n_samples)
        self.host_input = torch.zeros(shape, dtype=torch.float32).pin_memory()
        self.device_input = torch.zeros(shape, dtype=torch.float32, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(WARMUP_RUNS):
                self.model(self.device_input)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.device_probabilities, self.device_weights = self.model(self.device_input)
        self.host_probabilities = torch.zeros(self.device_probabilities.shape).pin_memory()
        self.host_weights = torch.zeros(self.device_weights.shape).pin_memory()
        self._host_input_np = self.host_input.numpy()

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._host_input_np[0] = x
        self.device_input.copy_(self.host_input, non_blocking=True)
        self.graph.replay()
        self.host_probabilities.copy_(self.device_probabilities, non_blocking=True)
        self.host_weights.copy_(self.device_weights, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return self.host_probabilities[0].numpy().copy(), self.host_weights[0].numpy().copy()

    def batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Many windows at once: the graph holds one, so batches run eager on the GPU."""
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
            probabilities, weights = self.model(batch)
            return probabilities.cpu().numpy(), weights.cpu().numpy()


Runner = EagerRunner | OnnxRunner | CudaGraphRunner | DecoderRunner


def build_runner(
    model: EEGClassifier,
    device: torch.device,
    use_cuda_graph: bool = True,
    cpu_runtime: str = "onnxruntime",
    cpu_threads: int = 1,
    onnx: bytes | None = None,
) -> tuple[Runner, str | None]:
    """The fastest runner for ``device``; returns it and, if the preferred one was not used, why.

    CPU: ONNX Runtime on ``onnx`` (the checkpoint's graph), else on a graph exported now, else
    torch eager (also for a network without an ONNX form: the tangent body runs a window in
    0.4 ms eager at 64 x 320); CUDA: a CUDA graph (else eager; always for the tangent body).
    """
    if device.type != "cuda":
        if cpu_runtime == "onnxruntime" and model.exports_onnx:
            if onnx is not None:
                try:
                    return OnnxRunner(model, cpu_threads, onnx), None
                except Exception as exc:  # damaged or stale graph: the weights decide
                    log.warning("the checkpoint's ONNX graph is not used (%s); exporting it", exc)
            try:
                return OnnxRunner(model, cpu_threads), None
            except Exception as exc:  # missing package or export failure
                reason = f"ONNX Runtime unavailable ({type(exc).__name__}: {exc}); torch eager"
                log.warning(reason)
                return EagerRunner(model, device), reason
        return EagerRunner(model, device), None
    if not use_cuda_graph:
        return EagerRunner(model, device), "CUDA graph disabled"
    if model.config.body == "tangent":
        # torch.linalg.eigh synchronises a CUDA device with the CPU (its documentation says
        # so), which a CUDA graph cannot capture
        return EagerRunner(model, device), "the tangent body's eigh cannot run in a CUDA graph"
    try:
        return CudaGraphRunner(model, device), None
    except Exception as exc:  # any capture failure: eager still works
        reason = f"CUDA graph capture failed ({type(exc).__name__}: {exc}); running eager"
        log.warning(reason)
        return EagerRunner(model, device), reason


def is_cuda_failure(exc: BaseException) -> bool:
    """Errors after which the GPU is not to be trusted: CUDA errors and out-of-memory."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("CUDA" in text or "cuda" in text)


@dataclass(frozen=True)
class WorkerStats:
    windows: int  # windows handed to the worker
    predicted: int
    replaced: int  # dropped unclaimed because a newer window came (latest wins)
    dropped_stale: int  # older than budgets.staleness_ms when claimed
    skipped_flagged: int  # gap or NaN inside
    errors: int  # model exceptions on single windows
    device: str
    runner: str
    fallback: str | None  # why the worker is not on the requested device/runner
    budget_misses: dict
    latency_ms: dict  # stage -> {p50, p95, p99, max}
    # predicted from the connection backlog (samples buffered before the first pull): their
    # latency says how long the app took to start, not how fast it is, so it is kept apart
    backlog_windows: int = 0
    warm_runs: int = 0  # runs on the last window to keep the CPU caches warm (KeepWarm)


class InferenceWorker(Background):
    """Owns the decoder in one thread; ``submit`` is called by the pipeline and never blocks.

    A network decoder runs on the fastest runner for ``device``; any other kind (and an
    ensemble) on the CPU. Each window is first prepared by the decoder (its band, its
    alignment, which adapts to the session when that is on).

    ``channel_index`` maps the window's columns to the model's channel order. ``on_prediction``
    callables run on the worker thread after the prediction is emitted; ``emit`` (optional) is
    called first and its return marks the "emitted" time (e.g. the LSL outlet push).
    """

    name = "bci-infer"

    def __init__(
        self,
        decoder: Decoder,
        classes: Sequence[str],
        channel_index: Sequence[int],
        device: str,
        budgets: BudgetsConfig,
        emit: Callable[[Prediction], None] | None = None,
        on_prediction: Sequence[Callable[[Prediction], None]] = (),
        use_cuda_graph: bool = True,
        cpu_runtime: str = "onnxruntime",
        cpu_threads: int = 1,
        window_samples: int | None = None,
        keep_warm: bool = True,
        every_window: bool = False,
    ) -> None:
        """``window_samples``: the window length in model-rate samples (read from the network
        for a network decoder). ``keep_warm``: on ONNX Runtime, run a network once on the last
        window just before the next one is due (:class:`KeepWarm`; not for torch eager, where
        in the tangent case it bought no inference time and its run, 1-3 ms, delayed the next
        window: queue p99 5.1-5.8 against 0.6-0.9 ms in two pairs of runs). ``every_window``:
        classify every window in order (:class:`FifoSlot`: ERP epochs) instead of the latest
        only."""
        super().__init__()
        self.classes = tuple(classes)
        self.channel_index = np.asarray(channel_index, dtype=np.intp)
        self._identity_order = bool(
            np.array_equal(self.channel_index, np.arange(len(channel_index)))
        )
        self.budgets = budgets
        self.latency = LatencyTracker(budgets.total_ms, budgets.inference_ms)
        self._emit = emit
        self._callbacks = list(on_prediction)
        self.decoder = decoder
        self._cpu_model: EEGClassifier | None = None
        if isinstance(decoder, NetworkDecoder):
            target = resolve_device(device)
            model = decoder.model.eval().fold_max_norm()
            if target.type == "cpu":
                # Batch-1 windows every ~100 ms: one thread is faster than waking a pool
                # (benchmarks/inference_cpu.py, "paced"). torch's thread count is per process.
                torch.set_num_threads(cpu_threads)
            # A CPU copy made before the model moves, for the fallback after a CUDA failure.
            self._cpu_model = copy.deepcopy(model).cpu() if target.type == "cuda" else model
            self.runner, self.fallback = build_runner(
                model, target, use_cuda_graph, cpu_runtime, cpu_threads, decoder.onnx
            )
            n_samples = model.config.n_samples
        else:
            torch.set_num_threads(cpu_threads)  # an ensemble's networks run eager on the CPU
            self.runner, self.fallback = DecoderRunner(decoder), None
            n_samples = window_samples
        if n_samples is None:
            raise ValueError("window_samples is needed for a decoder that is not a network")
        self._input = np.zeros((decoder.n_channels, n_samples), dtype=np.float32)
        self._prepared = self._input  # the last prepared window: what a warm run feeds
        warm = keep_warm and self.runner.kind == "onnxruntime"  # a network's runner only
        self.keep_warm = KeepWarm() if warm else None
        self._warm_up()
        decoder.reset()  # warm-up windows must not have moved an adapting reference
        self.every_window = every_window
        self.slot = FifoSlot() if every_window else LatestSlot()
        self._windows = self._predicted = self._stale = self._flagged = self._errors = 0
        self._backlog = 0
        #: Windows whose newest sample reached the ring at or before this local_clock time are
        #: the connection backlog (set by the pipeline from the inlet's first pull).
        self.backlog_until = -math.inf
        self.latest: Prediction | None = None

    @classmethod
    def from_config(
        cls,
        decoder: Decoder,
        classes: Sequence[str],
        channel_index: Sequence[int],
        config: AppConfig,
        emit: Callable[[Prediction], None] | None = None,
        on_prediction: Sequence[Callable[[Prediction], None]] = (),
    ) -> InferenceWorker:
        """A worker with the device, runtime and budgets of ``config`` (``config.windows``: the
        checkpoint's window, see :func:`~bci_app.nn.checkpoint.apply_checkpoint`)."""
        model = config.model
        return cls(
            decoder,
            classes,
            channel_index,
            model.device,
            config.budgets,
            emit=emit,
            on_prediction=on_prediction,
            use_cuda_graph=model.cuda_graph,
            cpu_runtime=model.cpu_runtime,
            cpu_threads=model.cpu_threads,
            window_samples=round(config.windows.length * config.model_rate),
            keep_warm=model.keep_warm,
            every_window=config.paradigm.erp,
        )

    def _warm_up(self) -> None:
        for _ in range(WARMUP_RUNS):
            self.runner(self.decoder.prepare(self._input[np.newaxis])[0])

    def add_callback(self, callback: Callable[[Prediction], None]) -> None:
        """Run ``callback`` on the worker thread after each prediction (before start)."""
        if self._started:
            raise RuntimeError("add callbacks before start()")
        self._callbacks.append(callback)

    def submit(self, window: Window) -> None:
        """Hand over a window (pipeline thread); replaces one not yet claimed (queued in
        order with ``every_window``)."""
        self._windows += 1
        self.slot.put(window)

    def _setup(self) -> None:
        self._spawn(self._run, self.name)

    def _request_stop(self) -> None:
        self.slot.wake()

    def stats(self) -> WorkerStats:
        return WorkerStats(
            windows=self._windows,
            predicted=self._predicted,
            replaced=self.slot.replaced,
            dropped_stale=self._stale,
            skipped_flagged=self._flagged,
            errors=self._errors,
            device=str(self.runner.device),
            runner=self.runner.kind,
            fallback=self.fallback,
            budget_misses=self.latency.misses(),
            latency_ms=self.latency.percentiles(),
            backlog_windows=self._backlog,
            warm_runs=0 if self.keep_warm is None else self.keep_warm.runs,
        )

    def _run(self) -> None:
        warm = self.keep_warm
        while not self.stopping:
            if warm is None:
                window = self.slot.take(WAKE_TIMEOUT_S)
            else:
                window = self.slot.take(warm.wait_s(time.perf_counter(), WAKE_TIMEOUT_S))
                if window is not None:
                    warm.arrived(time.perf_counter())
                elif warm.take_due(time.perf_counter()):
                    self._run_warm()
            if window is not None:
                self.process(window)

    def _run_warm(self) -> None:
        """The model on the last prepared window, result unused (the decoder's adaptation is
        not touched: :meth:`Decoder.prepare` is not called)."""
        try:
            self.runner(self._prepared)
        except Exception:  # a real window will meet the same error and count it
            log.debug("warm run failed", exc_info=True)

    def process(self, window: Window) -> Prediction | None:
        """Classify one window now (worker thread); None if it was skipped or failed."""
        if not window.usable:
            self._flagged += 1
            return None
        claimed = pylsl.local_clock()
        backlog = window.arrival_time <= self.backlog_until
        stale = (claimed - window.last_timestamp) * 1e3 > self.budgets.staleness_ms
        # An ERP epoch is one flash of a decision still being made: late, it still counts.
        if stale and not backlog and not self.every_window:
            self._stale += 1
            return None
        started = pylsl.local_clock()
        try:
            prediction = self.classify(window)
        except Exception:  # one bad window must not stop the session
            self._errors += 1
            log.exception("inference failed on window %d", window.seq)
            return None
        finished = pylsl.local_clock()
        if self._emit is not None:
            self._emit(prediction)
        times = StageTimes(
            sample=window.last_timestamp,
            pulled=window.arrival_time,
            cut=window.cut_time,
            infer_start=started,
            infer_end=finished,
            emitted=pylsl.local_clock(),
        )
        if backlog:
            self._backlog += 1
            prediction.latency_ms.update(times.durations_ms())
        else:
            prediction.latency_ms.update(self.latency.record(times))
        self._predicted += 1
        self.latest = prediction
        for callback in self._callbacks:
            try:
                callback(prediction)
            except Exception:  # a faulty sink must not stop inference
                log.exception("prediction callback %r failed", callback)
        try:  # the adapting alignment's update: after the prediction is out, not before
            self.decoder.settle()
        except Exception:  # then the next window meets it in classify(), and counts it
            log.exception("adapting to window %d failed", window.seq)
        return prediction

    def classify(self, window: Window) -> Prediction:
        """The model's decision on one window, without budgets, sinks or latency records: the
        worker thread's path via :meth:`process`."""
        self._electrodes_first(window, self._input)
        self._prepared = self.decoder.prepare(self._input[np.newaxis])[0]
        probabilities, weights = self._infer(self._prepared)
        return self._prediction(window, probabilities, weights)

    def _electrodes_first(self, window: Window, out: np.ndarray) -> None:
        """Copy ``window.data (T, stream channels)`` into ``out (model electrodes, T)``."""
        if self._identity_order:  # a plain transposing copy: 2x faster than a strided take
            out[...] = window.data.T
        else:
            out[...] = window.data.T[self.channel_index]

    def classify_batch(self, windows: Sequence[Window]) -> list[Prediction]:
        """The decisions on many windows at once, in time order (an adapting decoder follows
        them as it would live): offline replay. Equal to :meth:`classify` one by one within
        float rounding; CPU batches run through ONNX Runtime, GPU batches through CUDA."""
        if not windows:
            return []
        x = np.empty((len(windows), *self._input.shape), dtype=np.float32)
        for row, window in zip(x, windows, strict=True):
            self._electrodes_first(window, row)
        probabilities, weights = self.runner.batch(self.decoder.prepare(x))
        outputs = zip(windows, probabilities, weights, strict=True)
        return [self._prediction(window, p, w) for window, p, w in outputs]

    def _prediction(
        self, window: Window, probabilities: np.ndarray, weights: np.ndarray
    ) -> Prediction:
        index = int(np.argmax(probabilities))
        return Prediction(
            seq=window.seq,
            timestamp=window.last_timestamp,
            probabilities=probabilities,
            class_index=index,
            class_name=self.classes[index],
            weights=weights,
            device=str(self.runner.device),
        )

    def _infer(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x (n_channels, n_samples)``: a prepared window."""
        try:
            return self.runner(x)
        except Exception as exc:
            if self.runner.device.type != "cuda" or not is_cuda_failure(exc):
                raise
            reason = f"{type(exc).__name__} on {self.runner.device}: {exc}; moved to the CPU"
            log.warning(reason)
            self.fallback = reason
            torch.set_num_threads(1)
            assert self._cpu_model is not None  # a CUDA runner runs a network
            self.runner = EagerRunner(self._cpu_model, torch.device("cpu"))
            return self.runner(x)
