"""The calibration state machine, free of Qt so that it can be driven by any clock.

The GUI calls :meth:`CalibrationController.tick` with ``pylsl.local_clock()`` from its timer and
draws whatever phase it returns; right after it has drawn a cue it calls :meth:`cue_drawn` with
the time the drawing finished, and that time stamps the cue marker (not the planned time). A
pause (by the user, or because the EEG stream went stale) invalidates the trial in progress: if
its cue was already out, a ``bci-app:invalid`` marker follows it, and training drops that trial.
The session goes on until every class has ``trials_per_class`` valid trials.

Feedback mode: predictions whose window lies inside ``[cue + trial_start_s, cue + trial_stop_s)``
accumulate on the trial; the running mean drives the feedback display, and at the end of the
trial its argmax is the trial's online decision.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

import numpy as np
import pylsl

from bci_app.calibrate.paradigm import PlannedTrial, Planner
from bci_app.calibrate.settings import check_classes
from bci_app.io.lslinfo import make_stream_info

MARKER_PREFIX = "bci-app:"
INVALID_MARKER = MARKER_PREFIX + "invalid"
LEAD_S = 0.5  # the first trial (and the first after a pause) starts this long after "now"
RESTART_AFTER_S = 0.25  # a tick this late after a trial's end plans the next one from "now"


class Phase(enum.Enum):
    IDLE = "idle"  # not started
    WAIT = "wait"  # between trials, before the next fixation
    FIXATION = "fixation"
    CUE = "cue"  # cue shown, imagery
    REST = "rest"
    PAUSED = "paused"
    FINISHED = "finished"
    ABORTED = "aborted"


ACTIVE = (Phase.WAIT, Phase.FIXATION, Phase.CUE, Phase.REST)


class MarkerOutlet:
    """An irregular-rate string LSL outlet for the cue markers (type ``Markers``)."""

    def __init__(self, name: str = "bci-app-cues", source_id: str | None = None) -> None:
        self.source_id = source_id or f"{name}-{uuid.uuid4().hex[:12]}"
        info = make_stream_info(
            name,
            "Markers",
            self.source_id,
            channel_format="string",
            n_channels=1,
            manufacturer="bci-app calibration",
        )
        self.name = name
        self._outlet = pylsl.StreamOutlet(info)

    def push(self, label: str, stamp: float) -> None:
        self._outlet.push_sample([label], stamp)

    def close(self) -> None:
        self._outlet = None


@dataclass
class TrialState:
    """One trial as it happened; times are LSL seconds."""

    index: int
    planned: PlannedTrial
    drawn_cue: float | None = None  # when the cue was drawn (= its marker's stamp)
    valid: bool = True
    probabilities: list[np.ndarray] = field(default_factory=list)  # feedback predictions
    decision: str | None = None  # feedback: the online decision

    @property
    def class_name(self) -> str:
        return self.planned.class_name

    @property
    def correct(self) -> bool | None:
        return None if self.decision is None else self.decision == self.class_name


class CalibrationController:
    """Runs trials from ``planner`` until each class has ``trials_per_class`` valid ones.

    ``markers``: where cue markers go (None: nowhere, e.g. in unit tests). ``feedback``: also
    collect predictions and decide each trial; ``window_s``: the model's window length (a
    prediction's window is ``[timestamp - window_s, timestamp]``); ``trial_span_s``: the part of
    the trial after the cue whose windows count, as in training.
    """

    def __init__(
        self,
        planner: Planner,
        classes: list[str],
        trials_per_class: int,
        markers: MarkerOutlet | None = None,
        feedback: bool = False,
        window_s: float = 0.0,
        trial_span_s: tuple[float, float] = (0.0, 4.0),
    ) -> None:
        check_classes(classes, trials_per_class)
        self.planner = planner
        self.classes = list(classes)
        self.trials_per_class = trials_per_class
        self.markers = markers
        self.feedback = feedback
        self.window_s = window_s
        self.trial_span_s = trial_span_s
        self.phase = Phase.IDLE
        self.trials: list[TrialState] = []
        self.current: TrialState | None = None
        self.pause_reason = ""
        self.auto_resume = False  # a stream-loss pause ends by itself when the stream is back

    # -- progress ---------------------------------------------------------------------------
    def valid_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for trial in self.trials:
            if trial.valid and trial is not self.current and trial.class_name in counts:
                counts[trial.class_name] += 1
        return counts

    def needed(self) -> dict[str, int]:
        return {c: max(0, self.trials_per_class - n) for c, n in self.valid_counts().items()}

    @property
    def complete(self) -> bool:
        return not any(self.needed().values())

    def draw_lateness(self) -> np.ndarray:
        """Drawn minus planned cue time (s) of every drawn cue."""
        return np.asarray(
            [t.drawn_cue - t.planned.cue for t in self.trials if t.drawn_cue is not None]
        )

    def online_accuracy(self) -> tuple[int, int]:
        """(correct, decided) over the valid feedback trials so far."""
        decided = [t for t in self.trials if t.valid and t.decision is not None]
        return sum(bool(t.correct) for t in decided), len(decided)

    def running_probabilities(self) -> np.ndarray | None:
        """Mean probabilities of the current trial's predictions so far (feedback)."""
        if self.current is None or not self.current.probabilities:
            return None
        return np.mean(self.current.probabilities, axis=0)

    # -- control ----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.phase is not Phase.IDLE:
            raise RuntimeError("the calibration was already started")
        self.phase = Phase.WAIT
        self._plan(now + LEAD_S)

    def tick(self, now: float) -> Phase:
        """Advance to the phase of ``now`` and return it."""
        if self.phase not in ACTIVE:
            return self.phase
        while True:
            trial = self.current
            if trial is None:
                if self.complete:
                    self.phase = Phase.FINISHED
                    return self.phase
                previous = self.trials[-1].planned.stop if self.trials else now
                # Trials follow each other without a hole (a late tick must not skip the next
                # simulator trial), unless the timer stalled for long.
                self._plan(previous if now - previous < RESTART_AFTER_S else now)
                continue
            p = trial.planned
            if now >= p.stop:
                self._finish_trial(trial)
                continue
            if now >= p.imagery_stop:
                self.phase = Phase.REST
            elif now >= p.cue:
                self.phase = Phase.CUE
            elif now >= p.start:
                self.phase = Phase.FIXATION
            else:
                self.phase = Phase.WAIT
            return self.phase

    def seconds_to_next_change(self, now: float) -> float | None:
        """Time until the current trial's next phase boundary (None when nothing is planned)."""
        trial = self.current
        if self.phase not in ACTIVE or trial is None:
            return None
        p = trial.planned
        ahead = [t - now for t in (p.start, p.cue, p.imagery_stop, p.stop) if t > now]
        return min(ahead) if ahead else 0.0

    def cue_drawn(self, stamp: float) -> None:
        """The GUI has drawn the current trial's cue at ``stamp``: send its marker."""
        trial = self.current
        if trial is None or trial.drawn_cue is not None or not trial.valid:
            return
        trial.drawn_cue = stamp
        if self.markers is not None:
            self.markers.push(trial.class_name, stamp)

    def pause(self, now: float, reason: str, auto_resume: bool = False) -> None:
        """Stop the paradigm; the trial in progress becomes invalid."""
        if self.phase not in ACTIVE:
            return
        trial = self.current
        if trial is not None:
            self._invalidate(trial, now)
            self.current = None
        self.phase = Phase.PAUSED
        self.pause_reason = reason
        self.auto_resume = auto_resume

    def resume(self, now: float) -> None:
        if self.phase is not Phase.PAUSED:
            return
        self.phase = Phase.WAIT
        self.pause_reason = ""
        self.auto_resume = False
        self._plan(now + LEAD_S)

    def abort(self, now: float) -> None:
        if self.phase in (Phase.FINISHED, Phase.ABORTED):
            return
        if self.current is not None:
            self._invalidate(self.current, now)
            self.current = None
        self.phase = Phase.ABORTED

    def add_prediction(self, timestamp: float, probabilities: np.ndarray) -> None:
        """A prediction whose window's newest sample is at ``timestamp`` (feedback mode)."""
        trial = self.current
        if not self.feedback or trial is None or not trial.valid:
            return
        cue = trial.planned.cue
        lo, hi = cue + self.trial_span_s[0], cue + self.trial_span_s[1]
        if timestamp - self.window_s >= lo - 1e-3 and timestamp < hi:
            trial.probabilities.append(np.asarray(probabilities, dtype=np.float64))

    # -- internals --------------------------------------------------------------------------
    def _plan(self, not_before: float) -> None:
        planned = self.planner.next_trial(not_before, self.needed())
        self.current = TrialState(len(self.trials), planned)
        self.trials.append(self.current)

    def _finish_trial(self, trial: TrialState) -> None:
        if trial.drawn_cue is None:
            trial.valid = False  # the cue never reached the screen (e.g. the window was hidden)
        if self.feedback and trial.valid and trial.probabilities:
            mean = np.mean(trial.probabilities, axis=0)
            trial.decision = self.classes[int(np.argmax(mean))]
        self.current = None

    def _invalidate(self, trial: TrialState, now: float) -> None:
        trial.valid = False
        if trial.drawn_cue is not None and self.markers is not None:
            self.markers.push(INVALID_MARKER, now)
