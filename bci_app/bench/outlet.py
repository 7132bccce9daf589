"""A precise simulated outlet in its own process, shared by the benchmarks.

The EEG is generated before streaming starts and each 10 ms chunk is pushed at its nominal time
(sleep to 0.5 ms before the deadline, spin the rest). The outlet also records when each
``push_chunk`` returned and reports those times when it stops, so a benchmark can measure ages
from the real hand-over to liblsl and keep the outlet's own lateness out of its figures.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pylsl


def run_outlet(source_id: str, n_channels: int, rate_hz: float, seconds: float) -> None:
    """Stream for ``seconds`` (or until SIGTERM); prints ``{"t0", "chunk"}`` first and, last, the
    push lateness and ``push_done`` (local_clock seconds when each chunk's push returned), one
    JSON line each."""
    from bci_app.infer.latency import summarize_ms
    from bci_app.io.lslinfo import make_stream_info
    from bci_app.io.montage import channel_set
    from bci_app.lifecycle import on_signals
    from bci_app.sources.simulator import EEGSimulator, SimulatorSettings

    settings = SimulatorSettings(n_channels=n_channels, rate_hz=rate_hz, seed=1)
    chunk = settings.chunk_samples
    n_chunks = max(1, round(2.0 * rate_hz / chunk))
    data = EEGSimulator(settings).generate(n_chunks * chunk)
    info = make_stream_info(
        "bci-bench",
        "EEG",
        source_id,
        rate_hz=rate_hz,
        labels=channel_set(n_channels),
        unit="microvolts",
    )
    outlet = pylsl.StreamOutlet(info, chunk_size=chunk)
    t0 = pylsl.local_clock() + 0.5
    print(json.dumps({"t0": t0, "chunk": chunk}), flush=True)
    stopped = threading.Event()
    with on_signals(stopped.set, (signal.SIGTERM,)):
        late, done = [], []
        k = 0
        while not stopped.is_set():
            first = k * chunk
            deadline = t0 + (first + chunk - 1) / rate_hz
            if deadline - t0 > seconds:
                break
            pause = deadline - pylsl.local_clock() - 5e-4
            if pause > 0:
                time.sleep(pause)
            while pylsl.local_clock() < deadline:
                pass
            block = data[(k % n_chunks) * chunk : (k % n_chunks + 1) * chunk]
            outlet.push_chunk(block, (t0 + np.arange(first, first + chunk) / rate_hz).tolist())
            done.append(pylsl.local_clock())
            late.append(done[-1] - deadline)
            k += 1
    lateness = summarize_ms(late, digits=4)
    print(
        json.dumps(
            {
                "push_late_p50_ms": lateness["p50"],
                "push_late_p99_ms": lateness["p99"],
                "push_done": done,
            }
        ),
        flush=True,
    )


class PushClock:
    """Push time (LSL seconds) of an outlet sample from its timestamp: the outlet pushes a chunk
    when the clock reaches the timestamp of the chunk's last sample. With ``push_done`` (from
    :attr:`BenchOutlet.push_done`) the measured time each push returned is used instead."""

    def __init__(
        self, t0: float, rate_hz: float, chunk: int, push_done: np.ndarray | None = None
    ) -> None:
        self.t0, self.rate_hz, self.chunk = t0, rate_hz, chunk
        self.push_done = push_done

    def chunk_of(self, timestamps: np.ndarray) -> np.ndarray:
        """Index of the pushed chunk each timestamp belongs to."""
        index = np.round((np.asarray(timestamps) - self.t0) * self.rate_hz).astype(np.int64)
        return index // self.chunk

    def pushed_at(self, timestamps: np.ndarray | float) -> np.ndarray | float:
        chunks = self.chunk_of(timestamps)
        nominal = self.t0 + ((chunks + 1) * self.chunk - 1) / self.rate_hz
        if self.push_done is None:
            return nominal if np.ndim(timestamps) else float(nominal)
        if chunks.max(initial=0) >= len(self.push_done) or chunks.min(initial=0) < 0:
            raise ValueError("a timestamp lies outside the chunks the outlet reported")
        measured = self.push_done[chunks]
        return measured if np.ndim(timestamps) else float(measured)


class BenchOutlet:
    """Context manager running :func:`run_outlet` in a child process; ``t0`` is the timestamp of
    sample 0 and sample ``n`` is pushed at ``t0 + (last sample of its chunk) / rate``."""

    def __init__(self, n_channels: int, rate_hz: float, seconds: float) -> None:
        self.n_channels, self.rate_hz, self.seconds = n_channels, rate_hz, seconds
        self.source_id = f"bci-bench-{uuid.uuid4().hex[:8]}"
        self.t0 = 0.0
        self.chunk = 0
        self.lateness: dict | None = None
        self.push_done: np.ndarray | None = None  # local_clock seconds each chunk's push returned
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> BenchOutlet:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bci_app.bench.outlet",
                "--source-id",
                self.source_id,
                "--channels",
                str(self.n_channels),
                "--rate",
                repr(self.rate_hz),
                "--seconds",
                str(self.seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        start = json.loads(self._process.stdout.readline())
        self.t0, self.chunk = start["t0"], start["chunk"]
        self.clock = PushClock(self.t0, self.rate_hz, self.chunk)
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        process.terminate()  # the outlet reports its push lateness as it stops
        try:
            out, _ = process.communicate(timeout=30)
            lines = out.strip().splitlines()
            report = json.loads(lines[-1]) if lines else None
            if report is not None:
                self.push_done = np.asarray(report.pop("push_done"), dtype=np.float64)
            self.lateness = report
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-id", required=True)
    parser.add_argument("--channels", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    run_outlet(args.source_id, args.channels, args.rate, args.seconds)
