"""``bci-app calibrate --paradigm p300``: the guided P300 speller calibration.

The same window and stages as motor imagery (:class:`~bci_app.gui.calibration.
CalibrationWindow`: start the pipeline and the recorder, run, stop, train, results, the BIDS
export), with the speller in place of the cue screen:

* calibration: copy spelling of ``settings.speller.text`` on the matrix (each flash stamped with
  ``char:<X>`` / ``code<N>`` / ``target`` / ``nontarget`` when it was drawn), recorded to
  ``calibration.xdf``;
* training: a P300 checkpoint from those markers (``auto`` by default: the decoder chosen on this
  calibration alone), the same trainer as ``bci-app train --paradigm p300``;
* free spelling ("Start free spelling", or by itself with ``auto_feedback``): the worker reads
  the speller's markers (``stream.markers``), decides each character (dynamic stopping ends it
  early) and publishes it on ``<prefix>-characters``, which the screen reads back and shows;
  recorded with the app's outlets to ``feedback.xdf``.

With no stream configured, the simulator runs the speller paradigm and the screen follows the
simulator's own flashes (:class:`~bci_app.calibrate.speller.SimulatorFlashPlanner`): the simulated
participant attends to the copy text, then to characters of its own whose decisions give an
online accuracy, so the whole flow runs without hardware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pylsl
from PyQt5 import QtWidgets

from bci_app.calibrate.controller import MarkerOutlet
from bci_app.calibrate.settings import CalibrationSettings
from bci_app.calibrate.speller import (
    SimulatorFlashPlanner,
    SpellerPhase,
    SpellerSequencer,
    SpellerSettings,
)
from bci_app.calibrate.training import train_speller_calibration
from bci_app.config import AppConfig
from bci_app.gui.calibration import CalibrationStage, CalibrationWindow
from bci_app.gui.speller import (
    DecisionReader,
    SpellerRun,
    SpellerScreen,
    SpellerView,
    resolve_decisions,
)
from bci_app.infer.latency import summarize_ms
from bci_app.infer.outlets import CHARACTERS_SUFFIX, outlet_source_id
from bci_app.sources.simulator import SimulatorSettings
from bci_app.stream.inlet import StreamState

__all__ = ["SpellerCalibrationWindow"]

log = logging.getLogger(__name__)

#: The simulator's first character starts flashing this long after the simulator does: time
#: for the recorder to start and the screen to join it (else the screen joins the next one).
SIMULATOR_FIRST_PAUSE_S = 6.0
#: The screen joins the simulator's first character flashing at least this far ahead (s).
JOIN_LEAD_S = 1.0
_DONE = (SpellerPhase.IDLE, SpellerPhase.FINISHED, SpellerPhase.ABORTED)


class SpellerCalibrationWindow(CalibrationWindow):
    """The P300 speller calibration (``settings.paradigm == "p300"``). Esc aborts the stage
    (the recording is kept). A speller cannot pause in the middle of a character, so Space
    does nothing; a lost EEG stream ends the character in progress and holds the next one
    until the stream is back."""

    WANTS_PREDICTIONS = False  # free spelling shows the worker's decided characters instead

    def __init__(self, config: AppConfig, settings: CalibrationSettings) -> None:
        if settings.paradigm != "p300" or settings.speller is None:
            raise ValueError("the speller calibration needs a p300 CalibrationSettings")
        if not config.paradigm.erp:
            raise ValueError(
                f"the speller calibration needs a p300 config (with_paradigm), got "
                f"{config.paradigm.kind}"
            )
        self._reader: DecisionReader | None = None
        super().__init__(config, settings)
        self.setWindowTitle("bci-app calibration: P300 speller")
        self.feedback_button.setText("Start free spelling")

    # -- the paradigm's part ----------------------------------------------------------------
    def _make_screen(self) -> QtWidgets.QWidget:
        return SpellerScreen(self.settings.speller.matrix)

    def _simulator(self, stage: str, seed: int) -> SimulatorSettings | None:
        if not self.config.stream.uses_simulator:
            return None
        speller = self.settings.speller
        return SimulatorSettings.from_config(
            self.config,
            paradigm="p300",
            seed=seed,
            matrix=speller.matrix,
            repetitions=speller.repetitions,
            soa_s=speller.soa_s,
            char_pause_s=speller.pause_s,
            text=speller.text if stage == "calibration" else None,
            first_pause_s=SIMULATOR_FIRST_PAUSE_S,
        )

    def _stage_config(self, stage: str, markers: MarkerOutlet) -> AppConfig:
        if stage != "feedback":
            return self.config
        # The worker epochs the flashes this screen draws, by their markers' stamps.
        stream = self.config.stream.model_copy(update={"markers": markers.source_id})
        return self.config.model_copy(update={"stream": stream})

    def _stage_starting(self, stage: CalibrationStage) -> None:
        if stage.name == "feedback":
            config = stage.pipeline.config
            stage.decisions = resolve_decisions(
                config.outlets.name_prefix,
                config.stream.resolve_timeout,
                source_id=outlet_source_id(config.outlets, CHARACTERS_SUFFIX),
            )

    def _start_run(self, stage: CalibrationStage) -> None:
        feedback = stage.name == "feedback"
        settings = self.settings.free_spelling() if feedback else self.settings.speller
        planner = None
        simulator = stage.pipeline.simulator
        if simulator is not None:
            planner = SimulatorFlashPlanner(settings, simulator, pylsl.local_clock() + JOIN_LEAD_S)
            if settings.copy:  # the characters the screen joined (the text, unless it was late)
                text = planner.text(len(settings.text))
                settings = SpellerSettings(**(settings.model_dump() | {"text": text}))
        run = SpellerRun(
            self.screen_widget, SpellerSequencer(settings, stage.markers, planner), self
        )
        stage.run = run
        if stage.decisions is not None:
            self._reader = DecisionReader(stage.decisions, run)
        run.start()

    def _advance_run(self, stage: CalibrationStage) -> bool:
        run = stage.run  # it runs on its own precise timer; here the stream, status and end
        self._watch_stream(stage)
        status = run.status_text()
        if self.status_label.text() != status:
            self.status_label.setText(status)
        return run.sequencer.phase is SpellerPhase.FINISHED

    def _watch_stream(self, stage: CalibrationStage) -> None:
        """Hold the speller while the EEG stream is not live (the character in progress ends;
        its flashes the EEG missed are left out of training as epochs over a gap) and go on
        by itself when it is back."""
        status = stage.pipeline.status()
        if status is None:
            return
        sequencer, state = stage.run.sequencer, status.stream.state
        now = pylsl.local_clock()
        if state is not StreamState.LIVE and not sequencer.held:
            if sequencer.phase in _DONE:
                return
            sequencer.hold(
                now,
                f"EEG stream {state.value}: waiting for it to come back. The character in "
                "progress ends here; what was recorded is kept.",
            )
            stage.run.redraw()
            log.warning("%s held: stream %s", stage.name, state.value)
        elif state is StreamState.LIVE and sequencer.held:
            sequencer.release(now)
            stage.run.redraw()
            log.info("%s goes on: stream live again", stage.name)

    def _run_active(self, stage: CalibrationStage) -> bool:
        return stage.run.sequencer.phase not in _DONE

    def _abort_run(self, stage: CalibrationStage) -> None:
        if stage.run is not None:
            stage.run.stop()
        if self._reader is not None:
            self._reader.stop()

    def toggle_pause(self) -> None:
        """A character's flashes cannot pause: Space does nothing (Esc aborts)."""

    def _finish_stage(self, aborted: bool = False) -> None:
        stage = self.stage
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if stage.decisions is not None:
            stage.decisions.close_stream()
            stage.decisions = None
        super()._finish_stage(aborted)

    def _stage_summary(self, stage: CalibrationStage) -> dict[str, Any]:
        run: SpellerRun | None = stage.run
        if run is None:
            return {"characters": 0, "flashes": 0, "xdf": None}
        sequencer = run.sequencer
        drawn = [d for d in sequencer.drawn_flashes() if d.drawn is not None]
        summary: dict[str, Any] = {
            "text": sequencer.settings.text,
            "characters": len(sequencer.characters),
            "repetitions": sequencer.settings.repetitions,
            "flashes": len(drawn),
            "markers_sent": sequencer.markers_sent,
            "flash_draw_lateness_ms": summarize_ms(sequencer.draw_lateness()),
            "shifted_flashes": sequencer.shifts,
            "interrupted_characters": sequencer.interrupted,  # by a lost EEG stream
            "xdf": None,
        }
        if stage.name == "feedback":
            intended = [c.planned.intended for c in sequencer.characters]
            scored = [
                (decided, meant)
                for decided, meant in zip(sequencer.decisions, intended, strict=False)
                if meant is not None
            ]
            correct = sum(decided == meant for decided, meant in scored)
            summary |= {
                "spelled": "".join(sequencer.decisions),
                # the simulated participant's characters (None with real EEG: unknown)
                "intended": "".join(m for m in intended if m is not None) or None,
                "online_accuracy": correct / len(scored) if scored else None,
                "online_trials": len(scored),
                "early_stops": run.early_stops,
            }
        return summary

    def _training_job(self) -> tuple[str, Callable[[], dict]]:
        s = self.settings
        done = self.summary["calibration"]
        message = (
            f"Training on {done['characters']} copy-spelled characters ({done['flashes']} flashes)…"
        )

        def train() -> dict:
            return train_speller_calibration(
                s.calibration_xdf,
                s.model_dir,
                self.config,
                epochs=s.epochs,
                seed=s.seed,
                cv_folds=s.cv_folds,
                decoder=s.decoder,
            )

        return message, train

    def _results_message(self, cv: dict) -> str:
        decoder = (self.training_metrics or {}).get("decoder")
        auc = cv.get("auc")
        scored = (
            f"target flashes scored above the others with AUC {auc:.2f} (chance 0.50), "
            f"cross-validated on {cv.get('n_trials', 0)} flashes. "
            if auc is not None
            else "not cross-validated (--cv). "
        )
        return (
            (f"Decoder {decoder}: " if decoder else "")
            + scored
            + f"Model saved to {self.settings.model_dir}."
            + ("  Start free spelling when ready." if self.settings.feedback_trials else "")
        )

    def _feedback_message(self) -> str:
        fb = self.summary["feedback"]
        accuracy = fb.get("online_accuracy")
        scored = (
            f"; {accuracy:.0%} of the {fb['online_trials']} characters the simulated participant "
            f"attended to ({fb['intended']!r})"
            if accuracy is not None
            else ""
        )
        return (
            f"Free spelling finished: spelled {fb.get('spelled', '')!r}{scored}. "
            f"Recording: {fb.get('xdf')}."
        )

    def _show_message(self, text: str) -> None:
        screen: SpellerScreen = self.screen_widget
        if self.stage is not None and isinstance(self.stage.run, SpellerRun):
            self.stage.run.redraw()
        screen.show_view(SpellerView(screen.view.matrix, spelled=screen.spelled, message=text))
