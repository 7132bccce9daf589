"""One cue paradigm run on a :class:`~bci_app.gui.cue_screen.CueScreen`, for the calibration
window and the participant's screen on another host (``bci-app cue-screen``) alike.

Each tick: pause while the EEG stream is not live (and resume by itself when it is back), hand
the predictions received meanwhile to the controller, advance it, draw what changed, and stamp
a cue marker with the moment its cue was drawn.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import numpy as np

from bci_app.calibrate.controller import ACTIVE, CalibrationController, Phase
from bci_app.gui.cue_screen import CueScreen, CueView
from bci_app.infer.worker import Prediction
from bci_app.pipeline.view import PipelineStatus
from bci_app.stream.inlet import StreamState

__all__ = ["ParadigmRun"]

log = logging.getLogger(__name__)

PREDICTIONS_HELD = 512  # predictions waiting for the next tick at most (a bounded hand-over)


class ParadigmRun:
    """Drives ``controller`` on ``screen`` (GUI thread); ``status()`` is the pipeline's (or a
    remote worker's) status, ``name`` the run's name in the status text."""

    def __init__(
        self,
        controller: CalibrationController,
        screen: CueScreen,
        status: Callable[[], PipelineStatus | None],
        name: str,
    ) -> None:
        self.controller = controller
        self.screen = screen
        self.name = name
        self._status = status
        self._predictions: deque[tuple[float, np.ndarray]] = deque(maxlen=PREDICTIONS_HELD)
        self._shown: tuple | None = None
        self.pauses = 0  # times the run paused for the stream

    def add_prediction(self, prediction: Prediction) -> None:
        """A prediction sink: any thread; never touches widgets."""
        self._predictions.append((prediction.timestamp, prediction.probabilities))

    def tick(self, now: float) -> Phase:
        """Advance and draw at LSL time ``now``; returns the phase."""
        controller = self.controller
        self._watch_stream(now)
        while self._predictions:
            timestamp, probabilities = self._predictions.popleft()
            controller.add_prediction(timestamp, probabilities)
        phase = controller.tick(now)
        self._draw(phase)
        return phase

    def _watch_stream(self, now: float) -> None:
        """Pause while the EEG stream is not live; resume by itself when it is back."""
        status = self._status()
        if status is None:
            return
        controller, health = self.controller, status.stream
        if controller.phase in ACTIVE and health.state is not StreamState.LIVE:
            controller.pause(
                now,
                f"EEG stream {health.state.value}: waiting for it to come back. The trial in "
                "progress is marked invalid; what was recorded is kept.",
                auto_resume=True,
            )
            self.pauses += 1
            log.warning("%s paused: stream %s", self.name, health.state.value)
        elif (
            controller.phase is Phase.PAUSED
            and controller.auto_resume
            and health.state is StreamState.LIVE
        ):
            controller.resume(now)
            log.info("%s resumed: stream live again", self.name)

    def _draw(self, phase: Phase) -> None:
        controller = self.controller
        trial = controller.current
        probabilities = controller.running_probabilities() if controller.feedback else None
        message = controller.pause_reason if phase is Phase.PAUSED else ""
        status = self.status_text()
        key = (
            phase,
            None if trial is None else trial.index,
            message,
            status,
            None if probabilities is None else tuple(np.round(probabilities, 3)),
        )
        if key == self._shown:
            return
        self._shown = key
        view = CueView(
            phase=phase,
            class_name=trial.class_name if trial is not None else "",
            classes=tuple(controller.classes),
            probabilities=probabilities if phase in (Phase.CUE, Phase.REST) else None,
            status=status,
            message=message,
        )
        drawn = self.screen.show_view(view)
        if phase is Phase.CUE and drawn is not None:  # never drawn: the trial is not used
            controller.cue_drawn(drawn)

    def toggle_pause(self, now: float) -> None:
        """Space: pause (the trial in progress is not used) or resume, at LSL time ``now``."""
        if self.controller.phase is Phase.PAUSED:
            self.controller.resume(now)
        else:
            self.controller.pause(now, "Paused (the trial in progress is not used). Space resumes.")

    def redraw(self) -> None:
        """Draw at the next tick even if nothing changed (something else was shown)."""
        self._shown = None

    def status_text(self) -> str:
        controller = self.controller
        counts = controller.valid_counts()
        n = controller.trials_per_class
        text = f"{self.name}: " + "  ".join(f"{c} {counts[c]}/{n}" for c in counts)
        if controller.feedback:
            correct, decided = controller.online_accuracy()
            if decided:
                text += f"   online accuracy {correct}/{decided} ({correct / decided:.0%})"
        return text
