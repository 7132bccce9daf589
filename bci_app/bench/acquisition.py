"""``bci-app bench acquisition``: our inlet + ring vs mne-lsl's StreamLSL, one outlet, same run.

One simulated outlet (a child process) is read at the same time by two child processes, one with
our :class:`~bci_app.stream.inlet.InletThread`, one with ``mne_lsl.stream.StreamLSL`` (defaults:
``acquisition_delay=1 ms``, clock sync on, as for ours). Separate processes keep the two readers
from competing for one GIL. Figures:

- age of the newest sample when it becomes readable: ``local_clock()`` at the moment a reader
  sees new samples, minus the moment the outlet's ``push_chunk`` call for that sample returned
  (the outlet records it; a sample counts as pushed with the last sample of its chunk). Ours is
  observed the way our dsp thread sees it: a thread woken by the ring, at the same scheduling
  priority as the pipeline's dsp thread. StreamLSL offers no wake-up, so its acquisition job is
  timed from outside: the moment it returns having added samples.
- dropped samples: samples the outlet pushed in the measured span that the reader never got.
- CPU seconds per stream second of the acquisition (process CPU minus the measuring thread's).

Ours runs as the app does, with ``scheduling.realtime_priority`` (default 10; the figures say
whether the system granted it); ``--no-realtime`` measures it at normal priority.
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
from bci_app.config import SchedulingConfig
from bci_app.infer.latency import summarize_ms

CASES = ((64, 1000.0), (256, 2048.0))
DEFAULT_PRIORITY = SchedulingConfig().realtime_priority


def _summary(reads: dict, rate_hz: float, clock: PushClock) -> dict:
    """Figures of one reader from its raw report (read times and newest timestamps)."""
    read_at, newest = np.asarray(reads["read_at"]), np.asarray(reads["newest_ts"])
    ages_ms = (read_at - clock.pushed_at(newest)) * 1e3
    nominal = PushClock(clock.t0, clock.rate_hz, clock.chunk)  # when the push was due
    nominal_ms = (read_at - nominal.pushed_at(newest)) * 1e3
    span = reads["last_ts"] - reads["first_ts"]
    expected = round(span * rate_hz)
    ages = summarize_ms(ages_ms, digits=4, per_ms=1.0)
    summary = {
        "age_p50_ms": ages["p50"],
        "age_p99_ms": ages["p99"],
        "age_max_ms": ages["max"],
        # The same ages counted from when each push was due: includes the outlet's lateness.
        "age_p99_from_due_ms": summarize_ms(nominal_ms, digits=4, per_ms=1.0)["p99"],
        "reads": int(ages_ms.size),
        "samples": reads["received"],
        "dropped_samples": max(0, expected - reads["received"]),
        "cpu_s_per_stream_s": round(reads["cpu_s"] / span, 5) if span > 0 else None,
    }
    if "arrival" in reads:
        # The part of the age spent before the inlet thread wrote the sample into the ring.
        in_ring = (np.asarray(reads["arrival"]) - clock.pushed_at(newest)) * 1e3
        summary["in_ring_p99_ms"] = summarize_ms(in_ring, digits=4, per_ms=1.0)["p99"]
        summary["realtime_priority"] = reads["realtime_priority"]
    return summary


def _read_ours(source_id: str, duration: float, priority: int | None) -> dict:
    from bci_app.config import HealthConfig, StreamConfig
    from bci_app.scheduling import set_realtime_priority
    from bci_app.stream.inlet import InletThread

    inlet = InletThread(
        StreamConfig(source_id=source_id),
        HealthConfig(),
        ring_seconds=10.0,
        realtime_priority=priority,
    )
    inlet.connect()
    inlet.start()
    if priority is not None:
        set_realtime_priority(priority)  # this thread stands in for the pipeline's dsp thread
    ring = inlet.ring
    try:
        ring.wait_for(0, 10.0)
        cpu0, main0 = time.process_time(), time.thread_time()
        first_index = ring.written
        first_ts = ring.newest_timestamp()
        seen = first_index
        read_at, newest_ts, arrivals = [], [], []
        newest = np.zeros((1, ring.n_channels), dtype=np.float32)
        timestamp, arrival = np.zeros(1), np.zeros(1)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            if not ring.wait_for(seen, 0.1):
                continue
            now = pylsl.local_clock()
            seen = ring.written
            ring.read_into(seen - 1, seen, newest, timestamp, arrival_out=arrival)
            read_at.append(now)
            newest_ts.append(float(timestamp[0]))
            arrivals.append(float(arrival[0]))
        cpu = (time.process_time() - cpu0) - (time.thread_time() - main0)
        last_ts = ring.newest_timestamp()
        received = seen - first_index
        granted = inlet.health().realtime_priority
    finally:
        inlet.stop()
    return {
        "read_at": read_at,
        "newest_ts": newest_ts,
        "arrival": arrivals,
        "received": received,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "cpu_s": cpu,
        "realtime_priority": granted,
    }


def _read_mne_lsl(source_id: str, duration: float) -> dict:
    from mne_lsl.stream import StreamLSL

    stream = StreamLSL(bufsize=10.0, source_id=source_id)
    chunk_newest: list[float] = []  # newest timestamp of each chunk, set by the callback
    read_at: list[float] = []
    newest_ts: list[float] = []
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
            read_at.append(pylsl.local_clock())
            newest_ts.append(chunk_newest[-1])
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
    finally:
        stream.disconnect()
    return {
        "read_at": read_at,
        "newest_ts": newest_ts,
        "received": counts["received"],
        "first_ts": counts["first_ts"],
        "last_ts": counts["last_ts"],
        "cpu_s": cpu,
    }


def _reader(reader: str, source_id: str, duration: float, priority: int | None) -> None:
    if reader == "ours":
        report = _read_ours(source_id, duration, priority)
    else:
        report = _read_mne_lsl(source_id, duration)  # mne-lsl has no priority setting
    print(json.dumps(report), flush=True)


def _spawn(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bci_app.bench.acquisition", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def run_case(
    n_channels: int, rate_hz: float, duration: float, priority: int | None = DEFAULT_PRIORITY
) -> dict:
    """Stream one simulated outlet and read it with both readers at once."""
    raw = {}
    with BenchOutlet(n_channels, rate_hz, duration + 15.0) as outlet:
        args = ["--source-id", outlet.source_id, "--duration", str(duration)]
        ours = args if priority is None else [*args, "--realtime-priority", str(priority)]
        readers = {
            "ours": _spawn("--child", "ours", *ours),
            "mne_lsl": _spawn("--child", "mne_lsl", *args),
        }
        for reader, child in readers.items():
            out, _ = child.communicate(timeout=duration + 60)
            if child.returncode != 0:
                raise RuntimeError(f"{reader} reader failed (exit {child.returncode})")
            raw[reader] = json.loads(out.strip().splitlines()[-1])
    clock = PushClock(outlet.t0, rate_hz, outlet.chunk, outlet.push_done)
    results = {reader: _summary(reads, rate_hz, clock) for reader, reads in raw.items()}
    results["outlet"] = outlet.lateness
    return results


def main(
    duration: float = 20.0,
    as_json: bool = False,
    cases=CASES,
    realtime: bool = True,
) -> int:
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
        result = run_case(n_channels, rate_hz, duration, DEFAULT_PRIORITY if realtime else None)
        ours[key], peer[key], outlets[key] = result["ours"], result["mne_lsl"], result["outlet"]
        a, b = ours[key]["age_p99_ms"], peer[key]["age_p99_ms"]
        ratios[key] = round(a / b, 4) if a is not None and b else math.nan
        print(
            f"{key}: age p50/p99 ours {ours[key]['age_p50_ms']:.3f}/{a:.3f} ms, mne-lsl "
            f"{peer[key]['age_p50_ms']:.3f}/{b:.3f} ms (ratio p99 {ratios[key]:.3f}); dropped "
            f"ours {ours[key]['dropped_samples']}, mne-lsl {peer[key]['dropped_samples']}; CPU "
            f"s/stream-s ours {ours[key]['cpu_s_per_stream_s']}, mne-lsl "
            f"{peer[key]['cpu_s_per_stream_s']}; ours at real-time priority "
            f"{ours[key]['realtime_priority']}",
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
        # Asked for; what the system granted is in ours[case]["realtime_priority"].
        "ours_realtime_priority_requested": DEFAULT_PRIORITY if realtime else None,
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["ours", "mne_lsl"], required=True)
    parser.add_argument("--source-id", required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--realtime-priority", type=int)
    args = parser.parse_args()
    threading.current_thread().name = f"bench-{args.child}"
    _reader(args.child, args.source_id, args.duration, args.realtime_priority)
