"""``bci-app bench acquisition``: our inlet + ring vs mne-lsl's StreamLSL, one outlet, same run.

One simulated outlet (a child process) is read at the same time by two child processes, one with
our :class:`~bci_app.stream.inlet.InletThread`, one with ``mne_lsl.stream.StreamLSL`` (defaults:
``acquisition_delay=1 ms``, clock sync on, as for ours). Separate processes keep the two readers
from competing for one GIL. Each child reports:

- age of the newest sample when it becomes readable: ``local_clock()`` at the moment a reader
  sees new samples, minus the moment the outlet pushed that sample. The simulator pushes each
  chunk as soon as the clock reaches its last sample's timestamp ``t0 + n / rate``, so a sample's
  push time is the timestamp of the last sample of its chunk (a reader that gets the first samples
  of a chunk before the rest has arrived is not credited with their older timestamps). Ours is
  observed the way our dsp thread sees it (woken by the ring); StreamLSL offers no wake-up, so its
  acquisition job is timed from outside: the moment it returns having added samples.
- dropped samples: samples the outlet pushed in the measured span that the reader never got.
- CPU seconds per stream second of the acquisition (process CPU minus the measuring thread's).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl

from bci_app.bench.outlet import BenchOutlet, PushClock

CASES = ((64, 1000.0), (256, 2048.0))


def _summary(ages: list[float], received: int, expected: int, cpu_s: float, span_s: float) -> dict:
    ages_ms = np.asarray(ages) * 1e3
    return {
        "age_p50_ms": round(float(np.percentile(ages_ms, 50)), 4) if ages else None,
        "age_p99_ms": round(float(np.percentile(ages_ms, 99)), 4) if ages else None,
        "age_max_ms": round(float(ages_ms.max()), 4) if ages else None,
        "reads": len(ages),
        "samples": received,
        "dropped_samples": max(0, expected - received),
        "cpu_s_per_stream_s": round(cpu_s / span_s, 5) if span_s > 0 else None,
    }


def _read_ours(source_id: str, duration: float, clock: PushClock) -> dict:
    from bci_app.config import HealthConfig, StreamConfig
    from bci_app.stream.inlet import InletThread

    inlet = InletThread(StreamConfig(source_id=source_id), HealthConfig(), ring_seconds=10.0)
    description = inlet.connect()
    inlet.start()
    ring = inlet.ring
    try:
        ring.wait_for(0, 10.0)
        cpu0, main0 = time.process_time(), time.thread_time()
        first_index = ring.written
        first_ts = ring.newest_timestamp()
        seen = first_index
        ages, in_ring = [], []
        newest = np.zeros((1, ring.n_channels), dtype=np.float32)
        timestamp, arrival = np.zeros(1), np.zeros(1)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            if not ring.wait_for(seen, 0.1):
                continue
            now = pylsl.local_clock()
            seen = ring.written
            ring.read_into(seen - 1, seen, newest, timestamp, arrival_out=arrival)
            pushed = clock.pushed_at(float(timestamp[0]))
            ages.append(now - pushed)
            in_ring.append(float(arrival[0]) - pushed)
        cpu = (time.process_time() - cpu0) - (time.thread_time() - main0)
        last_ts = ring.newest_timestamp()
        received = seen - first_index
    finally:
        inlet.stop()
    expected = round((last_ts - first_ts) * description.rate_hz)
    summary = _summary(ages, received, expected, cpu, last_ts - first_ts)
    # The part of the age spent before the inlet thread wrote the sample into the ring.
    summary["in_ring_p99_ms"] = round(float(np.percentile(in_ring, 99)) * 1e3, 4)
    return summary


def _read_mne_lsl(source_id: str, duration: float, clock: PushClock) -> dict:
    from mne_lsl.stream import StreamLSL

    stream = StreamLSL(bufsize=10.0, source_id=source_id)
    chunk_newest: list[float] = []  # newest timestamp of each chunk, set by the callback
    ages: list[float] = []
    counts = {"received": 0, "first_ts": None, "last_ts": None, "measuring": False}

    def on_chunk(data, timestamps, info):
        chunk_newest.append(float(timestamps[-1]))
        if counts["measuring"]:
            counts["received"] += timestamps.size
            counts["last_ts"] = float(timestamps[-1])
        return data, timestamps

    acquire = stream._acquire  # mne-lsl's acquisition job; timed so no polling is needed

    def timed_acquire() -> None:
        before = len(chunk_newest)
        acquire()
        if counts["measuring"] and len(chunk_newest) > before:
            ages.append(pylsl.local_clock() - clock.pushed_at(chunk_newest[-1]))
        del chunk_newest[:-1]

    stream._acquire = timed_acquire
    stream.connect(processing_flags=["clocksync"], timeout=10.0)
    stream.add_callback(on_chunk)
    try:
        while not chunk_newest:
            time.sleep(0.01)
        counts["first_ts"] = chunk_newest[-1]
        counts["last_ts"] = chunk_newest[-1]
        cpu0, main0 = time.process_time(), time.thread_time()
        counts["measuring"] = True
        time.sleep(duration)
        counts["measuring"] = False
        cpu = (time.process_time() - cpu0) - (time.thread_time() - main0)
        rate = stream.info["sfreq"]
    finally:
        stream.disconnect()
    span = counts["last_ts"] - counts["first_ts"]
    return _summary(ages, counts["received"], round(span * rate), cpu, span)


def _reader(reader: str, source_id: str, duration: float, clock: PushClock) -> None:
    read = _read_ours if reader == "ours" else _read_mne_lsl
    print(json.dumps(read(source_id, duration, clock)), flush=True)


def _spawn(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bci_app.bench.acquisition", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def run_case(n_channels: int, rate_hz: float, duration: float) -> dict:
    """Stream one simulated outlet and read it with both readers at once."""
    results = {}
    with BenchOutlet(n_channels, rate_hz, duration + 15.0) as outlet:
        common = ["--source-id", outlet.source_id, "--rate", repr(rate_hz)]
        clock = ["--t0", repr(outlet.t0), "--chunk", str(outlet.chunk)]
        readers = {
            reader: _spawn("--child", reader, *common, *clock, "--duration", str(duration))
            for reader in ("ours", "mne_lsl")
        }
        for reader, child in readers.items():
            out, _ = child.communicate(timeout=duration + 60)
            if child.returncode != 0:
                raise RuntimeError(f"{reader} reader failed (exit {child.returncode})")
            results[reader] = json.loads(out.strip().splitlines()[-1])
    results["outlet"] = outlet.lateness
    return results


def main(duration: float = 20.0, as_json: bool = False, cases=CASES) -> int:
    try:
        import mne_lsl  # noqa: F401
    except ImportError:
        print(
            "bench acquisition needs mne-lsl as the peer: pip install -e '.[dev]'",
            file=sys.stderr,
        )
        return 2
    ours, peer, ratios, outlets = {}, {}, {}, {}
    for n_channels, rate_hz in cases:
        key = f"{n_channels}ch@{rate_hz:g}Hz"
        result = run_case(n_channels, rate_hz, duration)
        ours[key], peer[key], outlets[key] = result["ours"], result["mne_lsl"], result["outlet"]
        a, b = ours[key]["age_p99_ms"], peer[key]["age_p99_ms"]
        ratios[key] = round(a / b, 4) if a is not None and b else math.nan
        print(
            f"{key}: age p50/p99 ours {ours[key]['age_p50_ms']:.3f}/{a:.3f} ms, mne-lsl "
            f"{peer[key]['age_p50_ms']:.3f}/{b:.3f} ms (ratio p99 {ratios[key]:.3f}); dropped "
            f"ours {ours[key]['dropped_samples']}, mne-lsl {peer[key]['dropped_samples']}; CPU "
            f"s/stream-s ours {ours[key]['cpu_s_per_stream_s']}, mne-lsl "
            f"{peer[key]['cpu_s_per_stream_s']}",
            flush=True,
        )
    summary = {
        "duration_s": duration,
        "ours": ours,
        "mne_lsl": peer,
        "ratio_age_p99": max(ratios.values()),
        "ratio_age_p99_by_case": ratios,
        "dropped_samples": sum(r["dropped_samples"] for r in ours.values()),
        "dropped_samples_mne_lsl": sum(r["dropped_samples"] for r in peer.values()),
        "outlet": outlets,
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["ours", "mne_lsl"], required=True)
    parser.add_argument("--source-id", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--t0", type=float)
    parser.add_argument("--chunk", type=int)
    args = parser.parse_args()
    threading.current_thread().name = f"bench-{args.child}"
    _reader(args.child, args.source_id, args.duration, PushClock(args.t0, args.rate, args.chunk))
