"""``bci-app bench faults``: live faults on real LSL outlets while the pipeline runs a model.

A fault source (a child process: simulated EEG pushed on time, one line per chunk on stdout
with the chunk's first and last timestamp) feeds the local pipeline, which reads it by name
with an untrained model of the right shape. The benchmark repeats one cycle of faults until
``--duration`` has passed:

- the source killed (SIGKILL) and restarted with the same source_id;
- the source paused (SIGSTOP) for 3 s and resumed (it skips to the present: a gap);
- its clock jumped forward 5 s, and back 5 s a few seconds later;
- a burst of NaN samples;
- an outlet of the same name and another source_id appearing, then the source killed while
  that one stays: the pipeline must wait for its own source and never read the other (its
  timestamps are 1000 s ahead, so any window holding them is counted);
- the source restarted with 64 channels instead of 8: the pipeline must refuse it clearly
  (FAILED with the reason); the benchmark then starts a new pipeline on the original source.

Truth comes from the source's own chunk lines, not from the app: each discontinuity is the pair
(last timestamp before it, first timestamp after it) and each NaN burst its timestamp span. A
window whose first and last timestamps straddle a discontinuity, or that overlaps a NaN burst,
is corrupt; it must carry a flag. Recovery: seconds from the source being back (its first
chunk after the fault) to the first window holding samples from after the fault.

Figures (last line JSON): ``recovery_p50_s``/``recovery_p99_s``, ``windows``,
``flagged_windows``, ``corrupt_windows``, ``unflagged_corrupt_windows``,
``wrong_source_adoptions``, ``crashes``, ``refused_channel_changes``, ``rss_growth_mb`` (after
the first cycle, to the end), ``cycles``, and per fault kind the recovery times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pylsl

RATE_HZ = 160.0
N_CHANNELS = 8
OTHER_CHANNELS = 64  # the restart with another montage
CHUNK = 8  # samples per push: 50 ms at 160 Hz
IMPOSTOR_OFFSET_S = 1000.0  # the same-name outlet's timestamps run this far ahead
JUMP_S = 5.0
PAUSE_S = 3.0
OUTAGE_S = 3.0
NAN_SAMPLES = 40
SETTLE_S = 4.0  # steady streaming between faults


# -- the fault source (child process) ------------------------------------------------------------
def run_source(name: str, source_id: str, n_channels: int, offset_s: float) -> None:
    """Push simulated EEG on time until killed or stdin closes; stdin commands ``jump S`` (add S
    seconds to every timestamp from the next chunk on) and ``nan N`` (the next N samples NaN).
    Prints ``chunk FIRST LAST`` per pushed chunk and ``nan FIRST LAST`` per NaN burst."""
    from bci_app.io.lslinfo import make_stream_info
    from bci_app.io.montage import channel_set
    from bci_app.sources.simulator import EEGSimulator, SimulatorSettings

    settings = SimulatorSettings(n_channels=n_channels, rate_hz=RATE_HZ, seed=3)
    data = EEGSimulator(settings).generate(round(4 * RATE_HZ))
    info = make_stream_info(
        name, "EEG", source_id, rate_hz=RATE_HZ, labels=channel_set(n_channels), unit="microvolts"
    )
    outlet = pylsl.StreamOutlet(info, chunk_size=CHUNK)
    commands: deque[str] = deque(maxlen=16)
    closed = threading.Event()

    def read_commands() -> None:
        for line in sys.stdin:
            commands.append(line.strip())
        closed.set()

    threading.Thread(target=read_commands, daemon=True).start()
    t0 = pylsl.local_clock()
    n = 0
    nan_left = 0
    while not closed.is_set():
        while commands:
            verb, value = commands.popleft().split()
            if verb == "jump":
                offset_s += float(value)
            elif verb == "nan":
                nan_left = int(value)
        due = t0 + (n + CHUNK) / RATE_HZ
        late = pylsl.local_clock() - due
        if late > 0.2:  # paused (SIGSTOP) or starved: skip to the present, as a device would
            n += int(late * RATE_HZ)
            continue
        if late < 0:
            time.sleep(-late)
        index = np.arange(n, n + CHUNK)
        stamps = t0 + index / RATE_HZ + offset_s
        block = data[index % len(data)].copy()
        if nan_left:
            burst = min(nan_left, CHUNK)
            block[:burst] = np.nan
            nan_left -= burst
            print(f"nan {float(stamps[0])!r} {float(stamps[burst - 1])!r}", flush=True)
        outlet.push_chunk(block, stamps.tolist())
        print(f"chunk {float(stamps[0])!r} {float(stamps[-1])!r}", flush=True)
        n += CHUNK


class Source:
    """One fault source process and what its chunk lines said (read on a thread)."""

    def __init__(self, name: str, source_id: str, n_channels: int, offset_s: float = 0.0):
        command = [sys.executable, "-m", "bci_app.bench.faults", "--source", name, source_id]
        command += [str(n_channels), str(offset_s)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        # (first stamp, last stamp, monotonic time read): ~20 a second, one source lives minutes
        self.chunks: list[tuple[float, float, float]] = []
        self.nans: list[tuple[float, float]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            kind, first, last = line.split()
            if kind == "chunk":
                self.chunks.append((float(first), float(last), time.monotonic()))
            else:
                self.nans.append((float(first), float(last)))

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def last_chunk(self) -> tuple[float, float, float] | None:
        return self.chunks[-1] if self.chunks else None

    def wait_chunk_after(self, moment: float, timeout: float = 10.0) -> tuple[float, float, float]:
        """The first chunk read after monotonic ``moment``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            after = [c for c in self.chunks[-200:] if c[2] > moment]
            if after:
                return after[0]
            time.sleep(0.01)
        raise RuntimeError("the fault source pushed nothing")

    def wait_jump(self, start: int, timeout: float = 10.0) -> tuple[tuple, tuple]:
        """The chunks before and after the first timestamp jump (> 1 s either way) at or after
        chunk index ``start``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunks = self.chunks
            for i in range(max(start, 1), len(chunks)):
                if abs(chunks[i][0] - chunks[i - 1][1] - 1 / RATE_HZ) > 1.0:
                    return chunks[i - 1], chunks[i]
            time.sleep(0.01)
        raise RuntimeError("the fault source did not jump")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5.0)
        self._reader.join(2.0)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


# -- the benchmark -------------------------------------------------------------------------------
@dataclass
class Figures:
    discontinuities: list[tuple[float, float]] = field(default_factory=list)  # last, first
    nan_spans: list[tuple[float, float]] = field(default_factory=list)
    recovery_s: dict[str, list[float]] = field(default_factory=dict)
    impostor_windows: int = 0
    crashes: list[str] = field(default_factory=list)
    refused_channel_changes: int = 0
    windows: list[tuple[float, float, int]] = field(default_factory=list)  # first, last, flags


def rss_mb() -> float:
    """Resident memory (MB) after a garbage collection and glibc's ``malloc_trim``: what the
    process still holds, not the free heap pages the allocator keeps for later."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS as it is
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Bench:
    def __init__(self, model: Path) -> None:
        self.name = f"bci-bench-faults-{os.getpid()}"
        self.source_id = f"{self.name}-amp"
        self.model = model
        self.figures = Figures()
        self._windows: deque[tuple[float, float, int, float]] = deque(maxlen=200_000)
        self.source = Source(self.name, self.source_id, N_CHANNELS)
        self.pipeline = self._start_pipeline()

    def _start_pipeline(self):
        from bci_app.config import parse_config
        from bci_app.pipeline import Pipeline

        config = parse_config({"stream": {"name": self.name}, "model_rate": RATE_HZ})
        pipeline = Pipeline(config, with_model=True, model_path=self.model)
        pipeline.add_sink(
            lambda w: self._windows.append(
                (w.first_timestamp, w.last_timestamp, w.flags, time.monotonic())
            )
        )
        pipeline.start()
        return pipeline

    def _check_health(self) -> None:
        status = self.pipeline.status()
        if status is None:
            return
        error = status.stream.error
        if error and "crashed" in error:
            self.figures.crashes.append(error)
        if status.worker is not None and status.worker.errors:
            self.figures.crashes.append(f"inference errors: {status.worker.errors}")

    def _recovered(self, kind: str, back: tuple[float, float, float], timeout: float = 15.0):
        """Seconds from ``back`` (the first chunk after the fault) to the first window whose
        newest sample came after the fault."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, last, _, cut in list(self._windows):
                if back[0] <= last <= back[0] + 10.0 and cut >= back[2]:
                    self.figures.recovery_s.setdefault(kind, []).append(cut - back[2])
                    return
            time.sleep(0.01)
        self.figures.recovery_s.setdefault(kind, []).append(float("inf"))

    def _gap(self, kind: str, before: tuple | None, back: tuple) -> None:
        """A discontinuity between chunk ``before`` and chunk ``back``; waits for recovery."""
        if before is not None:
            self.figures.discontinuities.append((before[1], back[0]))
        self._recovered(kind, back)

    def kill_and_restart(self) -> None:
        before = self.source.last_chunk()
        self.source.kill()
        time.sleep(OUTAGE_S)
        self.source = Source(self.name, self.source_id, N_CHANNELS)
        self._gap("kill_restart", before, self.source.wait_chunk_after(time.monotonic()))

    def pause(self) -> None:
        self.source.pause()
        time.sleep(0.05)
        before = self.source.last_chunk()
        time.sleep(PAUSE_S)
        self.source.resume()
        self._gap("pause", before, self.source.wait_chunk_after(time.monotonic()))

    def clock_jumps(self) -> None:
        for kind, step in (("clock_forward", JUMP_S), ("clock_back", -JUMP_S)):
            start = len(self.source.chunks)
            self.source.send(f"jump {step}")
            before, back = self.source.wait_jump(start)
            self._gap(kind, before, back)
            time.sleep(SETTLE_S)

    def nan_burst(self) -> None:
        seen = len(self.source.nans)
        self.source.send(f"nan {NAN_SAMPLES}")
        deadline = time.monotonic() + 5.0
        while len(self.source.nans) == seen and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        burst = self.source.nans[seen:]
        if burst:
            self.figures.nan_spans.append((burst[0][0], burst[-1][1]))

    def impostor(self) -> None:
        other = Source(self.name, f"{self.name}-other", N_CHANNELS, IMPOSTOR_OFFSET_S)
        try:
            other.wait_chunk_after(time.monotonic())
            before = self.source.last_chunk()
            self.source.kill()
            time.sleep(OUTAGE_S + 2.0)  # several reconnect attempts while only the other is up
            self.source = Source(self.name, self.source_id, N_CHANNELS)
            self._gap("impostor_outage", before, self.source.wait_chunk_after(time.monotonic()))
        finally:
            other.kill()

    def channel_change(self) -> None:
        from bci_app.stream.inlet import StreamState

        self.source.kill()
        time.sleep(1.0)
        self.source = Source(self.name, self.source_id, OTHER_CHANNELS)
        deadline = time.monotonic() + 15.0
        refused = False
        while time.monotonic() < deadline and not refused:
            status = self.pipeline.status()
            refused = status is not None and status.stream.state is StreamState.FAILED
            time.sleep(0.05)
        if refused and f"came back with {OTHER_CHANNELS} channels" in (status.stream.error or ""):
            self.figures.refused_channel_changes += 1
        else:
            self.figures.crashes.append("a source with other channels was not refused clearly")
        self._collect()
        self._stop_pipeline()
        self.source.kill()
        self.source = Source(self.name, self.source_id, N_CHANNELS)
        self.source.wait_chunk_after(time.monotonic())
        self._windows.clear()
        self.pipeline = self._start_pipeline()

    def _stop_pipeline(self) -> None:
        if not self.pipeline.stop():
            self.figures.crashes.append("the pipeline did not stop within 2 s")

    def _collect(self) -> None:
        impostor_after = pylsl.local_clock() + IMPOSTOR_OFFSET_S / 2
        for first, last, flags, _ in list(self._windows):
            if last > impostor_after:
                self.figures.impostor_windows += 1
            self.figures.windows.append((first, last, flags))
        self._windows.clear()

    def cycle(self) -> None:
        for fault in (
            self.kill_and_restart,
            self.pause,
            self.clock_jumps,
            self.nan_burst,
            self.impostor,
            self.channel_change,
        ):
            time.sleep(SETTLE_S)
            fault()
            self._check_health()
            self._collect()

    def close(self) -> None:
        self._collect()
        self._stop_pipeline()
        self.source.kill()


def straddles(first: float, last: float, before: float, after: float, window_s: float) -> bool:
    """Whether a window with timestamps ``first``..``last`` holds samples from both sides of a
    discontinuity from ``before`` (the last timestamp before it) to ``after`` (the first after
    it). Forward (after > before): it starts before and ends after. Backward: its first sample
    lies within one window before ``before`` and its newest within one window after ``after``
    (the jump is longer than a window, so no whole window satisfies both)."""
    if after > before:
        return first <= before and last >= after
    return before - window_s <= first <= before and after <= last <= after + window_s


def corrupt_windows(figures: Figures, window_s: float) -> tuple[int, int]:
    """(windows that straddle a discontinuity or overlap a NaN burst, those without a flag)."""
    corrupt = unflagged = 0
    for first, last, flags in figures.windows:
        hit = any(straddles(first, last, b, a, window_s) for b, a in figures.discontinuities)
        hit = hit or any(first <= end and last >= start for start, end in figures.nan_spans)
        if hit:
            corrupt += 1
            unflagged += flags == 0
    return corrupt, unflagged


def _percentile(values: list[float], q: float) -> float | None:
    return None if not values else round(float(np.percentile(values, q)), 3)


def main(duration: float, as_json: bool) -> int:
    """Run fault cycles for ``duration`` seconds; prints one line per cycle, then the figures."""
    from bci_app.bench.latency import WINDOW_S, make_checkpoint
    from bci_app.io.montage import channel_set

    with tempfile.TemporaryDirectory() as folder:
        model = make_checkpoint(Path(folder) / "model", channel_set(N_CHANNELS), RATE_HZ)
        bench = Bench(model)
        started = time.monotonic()
        rss_start = None
        cycles = 0
        try:
            while cycles == 0 or time.monotonic() - started < duration:
                bench.cycle()
                cycles += 1
                if rss_start is None:
                    rss_start = rss_mb()
                recoveries = [r for v in bench.figures.recovery_s.values() for r in v]
                print(
                    f"cycle {cycles}: {time.monotonic() - started:.0f} s, recovery p99 "
                    f"{_percentile(recoveries, 99)} s, rss {rss_mb():.1f} MB",
                    flush=True,
                )
        except Exception as exc:  # a crash of the app's side is a figure, not a traceback
            bench.figures.crashes.append(f"{type(exc).__name__}: {exc}")
        finally:
            bench.close()
    figures = bench.figures
    recoveries = [r for values in figures.recovery_s.values() for r in values]
    corrupt, unflagged = corrupt_windows(figures, WINDOW_S + 0.5)
    result = {
        "duration_s": round(time.monotonic() - started, 1),
        "cycles": cycles,
        "recovery_p50_s": _percentile(recoveries, 50),
        "recovery_p99_s": _percentile(recoveries, 99),
        "recovery_s_by_fault": {
            kind: {"p50": _percentile(v, 50), "max": round(max(v), 3)}
            for kind, v in figures.recovery_s.items()
        },
        "windows": len(figures.windows),
        "flagged_windows": sum(1 for *_, flags in figures.windows if flags),
        "corrupt_windows": corrupt,
        "unflagged_corrupt_windows": unflagged,
        "wrong_source_adoptions": figures.impostor_windows,
        "refused_channel_changes": figures.refused_channel_changes,
        "crashes": len(figures.crashes),
        "crash_reasons": figures.crashes[:5],
        "rss_growth_mb": None if rss_start is None else round(rss_mb() - rss_start, 2),
    }
    if as_json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", nargs=4, metavar=("NAME", "SOURCE_ID", "CHANNELS", "OFFSET"))
    args = parser.parse_args()
    name, source_id, channels, offset = args.source
    run_source(name, source_id, int(channels), float(offset))
