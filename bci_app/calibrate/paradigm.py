"""The cue paradigm: trial timings and the order of classes.

A trial is fixation (cross) -> cue + imagery (the class's arrow and name) -> rest (blank, jittered
length). Classes come in blocks, each block a random permutation of the classes that still need
trials, so the order is balanced and seedable. Times are LSL seconds (``pylsl.local_clock``).

Two planners give the next trial:

- :class:`ParadigmPlanner` times trials itself, from ``not_before`` on (a real amplifier).
- :class:`SimulatorPlanner` takes the trials of the simulator's own cue schedule, so the EEG it
  generates follows what the screen shows (the demo and the tests run without hardware).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bci_app.calibrate.settings import Timings
from bci_app.sources.simulator_stream import SimulatorClock

#: Arrow drawn for a class (by name); other classes show their name only.
CLASS_ARROWS = {"left_hand": "←", "right_hand": "→", "feet": "↓", "tongue": "↑", "hands": "↑"}


@dataclass(frozen=True)
class PlannedTrial:
    """One trial's planned times (LSL seconds): ``start`` (fixation) <= ``cue`` (imagery onset)
    < ``imagery_stop`` <= ``stop`` (end of rest)."""

    class_name: str
    start: float
    cue: float
    imagery_stop: float
    stop: float


class Planner(Protocol):
    def next_trial(self, not_before: float, needed: dict[str, int]) -> PlannedTrial:
        """The next trial starting at or after ``not_before``; ``needed``: valid trials each
        class still lacks (classes at 0 may be skipped)."""
        ...


class ParadigmPlanner:
    """Balanced blocks of the classes still needed, timed from ``not_before``; seedable."""

    def __init__(self, classes: list[str], timings: Timings, seed: int = 0) -> None:
        self.classes = list(classes)
        self.timings = timings
        self._rng = np.random.default_rng(seed)
        self._block: list[str] = []

    def next_trial(self, not_before: float, needed: dict[str, int]) -> PlannedTrial:
        self._block = [c for c in self._block if needed.get(c, 1) > 0]
        if not self._block:
            wanted = [c for c in self.classes if needed.get(c, 1) > 0] or self.classes
            self._block = [wanted[i] for i in self._rng.permutation(len(wanted))]
        name = self._block.pop(0)
        t = self.timings
        rest = float(self._rng.uniform(t.rest_min_s, t.rest_max_s))
        cue = not_before + t.fixation_s
        return PlannedTrial(name, not_before, cue, cue + t.imagery_s, cue + t.imagery_s + rest)


class SimulatorPlanner:
    """The simulator's own schedule (its trials are balanced blocks too), in LSL time."""

    def __init__(self, simulator: SimulatorClock) -> None:
        self.simulator = simulator
        self._next_index = 0

    def next_trial(self, not_before: float, needed: dict[str, int]) -> PlannedTrial:
        sim = self.simulator
        k = self._next_index
        while True:
            trial = sim.schedule.trial(k)
            k += 1
            # Its fixation must still lie ahead. The controller runs until every class has its
            # valid trials, so joining the schedule mid-block cannot leave a class short.
            if sim.timestamp_of(trial.start) >= not_before:
                break
        self._next_index = k
        return PlannedTrial(
            trial.class_name,
            sim.timestamp_of(trial.start),
            sim.timestamp_of(trial.cue),
            sim.timestamp_of(trial.imagery_stop),
            sim.timestamp_of(trial.stop),
        )
