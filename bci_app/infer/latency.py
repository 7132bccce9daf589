"""Per-window stage clock and rolling latency percentiles with budget-miss accounting.

All times are ``pylsl.local_clock()`` seconds (the LSL clock, so the newest sample's timestamp
is comparable); figures are reported in milliseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Stages in pipeline order: (name, start mark, end mark).
STAGES: tuple[tuple[str, str, str], ...] = (
    ("acquire", "sample", "pulled"),  # newest sample pushed -> in the ring
    ("dsp", "pulled", "cut"),  # filtered and window cut
    ("queue", "cut", "infer_start"),  # waiting for the worker
    ("inference", "infer_start", "infer_end"),
    ("emit", "infer_end", "emitted"),  # outlets, log, GUI snapshot
    ("e2e", "sample", "emitted"),
)
STAGE_NAMES = tuple(name for name, _, _ in STAGES)


@dataclass(frozen=True)
class StageTimes:
    """When one window passed each point (local_clock seconds)."""

    sample: float  # LSL timestamp of the window's newest sample
    pulled: float  # it reached the ring
    cut: float  # the window was cut
    infer_start: float
    infer_end: float
    emitted: float

    def durations_ms(self) -> dict[str, float]:
        return {
            name: (getattr(self, end) - getattr(self, start)) * 1e3 for name, start, end in STAGES
        }


class LatencyTracker:
    """Rolling window of the last ``capacity`` stage durations; thread-safe snapshots."""

    def __init__(self, total_budget_ms: float, inference_budget_ms: float, capacity: int = 2000):
        self.total_budget_ms = total_budget_ms
        self.inference_budget_ms = inference_budget_ms
        self.capacity = capacity
        self._values = np.zeros((capacity, len(STAGES)), dtype=np.float64)
        self._count = 0
        self._misses: dict[str, int] = {"total": 0, "inference": 0}
        self._miss_stage: dict[str, int] = dict.fromkeys(STAGE_NAMES[:-1], 0)
        self._lock = threading.Lock()

    def record(self, times: StageTimes) -> dict[str, float]:
        """Add one window; returns its stage durations in ms."""
        durations = times.durations_ms()
        with self._lock:
            self._values[self._count % self.capacity] = [durations[n] for n in STAGE_NAMES]
            self._count += 1
            if durations["inference"] > self.inference_budget_ms:
                self._misses["inference"] += 1
            if durations["e2e"] > self.total_budget_ms:
                self._misses["total"] += 1
                # Blame the stage that took the largest share of this window's time.
                worst = max(STAGE_NAMES[:-1], key=lambda n: durations[n])
                self._miss_stage[worst] += 1
        return durations

    @property
    def count(self) -> int:
        return self._count

    def percentiles(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50", "p95", "p99", "max"}}`` in ms over the rolling window."""
        with self._lock:
            n = min(self._count, self.capacity)
            values = self._values[:n].copy()
        if n == 0:
            return {}
        q = np.percentile(values, [50, 95, 99], axis=0)
        return {
            name: {
                "p50": round(float(q[0, i]), 4),
                "p95": round(float(q[1, i]), 4),
                "p99": round(float(q[2, i]), 4),
                "max": round(float(values[:, i].max()), 4),
            }
            for i, name in enumerate(STAGE_NAMES)
        }

    def misses(self) -> dict[str, object]:
        with self._lock:
            return {**self._misses, "total_by_stage": dict(self._miss_stage)}


def summarize_ms(
    durations: np.ndarray | Sequence[float], digits: int = 3, per_ms: float = 1e3
) -> dict[str, float | int | None]:
    """The one percentile summary: p50 / p99 / max in milliseconds (rounded to ``digits``) and
    n of ``durations``, given in seconds (``per_ms`` 1e3) or already in ms (``per_ms`` 1);
    None values (JSON null) when there are none."""
    ms = np.asarray(durations, dtype=np.float64) * per_ms
    if ms.size == 0:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": round(float(np.percentile(ms, 50)), digits),
        "p99": round(float(np.percentile(ms, 99)), digits),
        "max": round(float(ms.max()), digits),
        "n": int(ms.size),
    }
