"""Shared test fixtures: offscreen Qt, paths to the shared EEG data, real LSL test outlets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m bci_app ARGS`` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "bci_app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def last_json(result: subprocess.CompletedProcess) -> dict:
    """The JSON object a ``--json`` command prints as its last line (it exited 0)."""
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared EEG data is expected at {SHARED_DATA}")
    return SHARED_DATA


def wait_until(predicate, timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` every ``step`` seconds until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def unique_id(prefix: str = "test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class PacedOutlet:
    """A real LSL outlet pushing ``chunk`` samples at a time, stamped ``t0 + n / rate``.

    ``transform(first_index, data, timestamps)`` may edit a chunk in place before it is pushed
    (NaN bursts, timestamp jumps). Samples are an exact ramp so a reader can check them.
    """

    def __init__(
        self,
        source_id: str,
        n_channels: int = 4,
        rate: float = 250.0,
        chunk: int = 5,
        labels: list[str] | None = None,
        channel_format: int = pylsl.cf_float32,
        transform=None,
        name: str = "test-eeg",
        units: list[str] | None = None,
    ) -> None:
        info = pylsl.StreamInfo(name, "EEG", n_channels, rate, channel_format, source_id)
        channels = info.desc().append_child("channels")
        labels = labels or [f"E{i + 1}" for i in range(n_channels)]
        for label, unit in zip(labels, units or ["microvolts"] * n_channels, strict=True):
            node = channels.append_child("channel")
            node.append_child_value("label", label)
            node.append_child_value("unit", unit)
            node.append_child_value("type", "EEG")
        self.outlet = pylsl.StreamOutlet(info)
        self.n_channels, self.rate, self.chunk = n_channels, rate, chunk
        self.transform = transform
        self.pushed = 0
        self.t0 = pylsl.local_clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def make_chunk(self, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.arange(first, first + n)
        data = (index[:, None] + 1000.0 * np.arange(self.n_channels)[None, :]).astype(np.float32)
        return data, self.t0 + index / self.rate

    def push(self, n_chunks: int) -> None:
        """Push ``n_chunks`` chunks, each when the clock reaches its last timestamp."""
        for _ in range(n_chunks):
            data, timestamps = self.make_chunk(self.pushed, self.chunk)
            if self.transform is not None:
                self.transform(self.pushed, data, timestamps)
            while pylsl.local_clock() < timestamps[-1] and not self._stop.is_set():
                self._stop.wait(min(0.002, timestamps[-1] - pylsl.local_clock()))
            self.outlet.push_chunk(data, timestamps.tolist())
            self.pushed += self.chunk

    def start(self) -> PacedOutlet:
        def loop():
            while not self._stop.is_set():
                self.push(1)

        self._thread = threading.Thread(target=loop, daemon=True, name="test-outlet")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        del self.outlet


@pytest.fixture
def outlet_factory():
    made: list[PacedOutlet] = []

    def make(**kwargs) -> PacedOutlet:
        kwargs.setdefault("source_id", unique_id())
        outlet = PacedOutlet(**kwargs)
        made.append(outlet)
        return outlet

    yield make
    for outlet in made:
        if hasattr(outlet, "outlet"):
            outlet.stop()
