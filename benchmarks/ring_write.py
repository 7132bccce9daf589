"""Ring write cost per chunk: our preallocated ring against an ``np.roll`` buffer, same run.

    python benchmarks/ring_write.py [--json]

Prints microseconds per chunk (median over repeats) for typical amplifier chunk sizes and the
ratio np.roll / ours; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import timeit

import numpy as np

from bci_app.stream.ring import RingBuffer

CASES = (  # (channels, rate Hz, chunk samples, ring seconds)
    (64, 1000, 10, 30),
    (256, 2048, 20, 30),
    (8, 250, 1, 30),
)


def bench_case(n_channels: int, rate: int, chunk: int, seconds: int, repeat: int = 7) -> dict:
    capacity = rate * seconds
    data = np.random.default_rng(0).standard_normal((chunk, n_channels)).astype(np.float32)
    timestamps = np.arange(chunk, dtype=np.float64)
    ring = RingBuffer(capacity, n_channels)
    rolled = np.zeros((capacity, n_channels), dtype=np.float32)
    rolled_ts = np.zeros(capacity, dtype=np.float64)

    def ours() -> None:
        ring.write(data, timestamps)

    def with_roll() -> None:
        nonlocal rolled, rolled_ts
        rolled = np.roll(rolled, -chunk, axis=0)
        rolled[-chunk:] = data
        rolled_ts = np.roll(rolled_ts, -chunk)
        rolled_ts[-chunk:] = timestamps

    number_ours, number_roll = 2000, 20
    t_ours = min(timeit.repeat(ours, number=number_ours, repeat=repeat)) / number_ours
    t_roll = min(timeit.repeat(with_roll, number=number_roll, repeat=repeat)) / number_roll
    return {
        "case": f"{n_channels}ch@{rate}Hz chunk={chunk} ring={seconds}s",
        "ours_us_per_chunk": round(t_ours * 1e6, 3),
        "np_roll_us_per_chunk": round(t_roll * 1e6, 3),
        "ratio_roll_over_ours": round(t_roll / t_ours, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [bench_case(*case) for case in CASES]
    for r in results:
        print(
            f"{r['case']}: ours {r['ours_us_per_chunk']} us, np.roll "
            f"{r['np_roll_us_per_chunk']} us ({r['ratio_roll_over_ours']}x)"
        )
    if args.json:
        print(json.dumps({"ring_write": results}))


if __name__ == "__main__":
    main()
