"""``bci-app calibrate``: the guided calibration window.

Stages: calibration (cue paradigm, EEG + cue markers recorded to ``calibration.xdf``) ->
training (the same trainer as ``bci-app train``, cross-validated, checkpoint saved with its model
card) -> results (accuracy, chance level, confusion matrix) -> online feedback (the paradigm
again, the new model's predictions drive bars on the cue screen, per-trial online accuracy
accumulates; recorded with the app's outlets to ``feedback.xdf``).

Besides the model, a calibration leaves (see :mod:`bci_app.calibrate.outputs`): the session
report ``report.html`` in its folder, written with the trained model in a background call after
training (unless ``settings.report`` is False; a failure is a warning in the results view and
the summary, the model and the recording stay), and with ``settings.bids_root`` the calibration
recording exported as BIDS-EEG after training. The "Export to BIDS…" button exports it into a
chosen folder at any time once the recording is closed (:meth:`CalibrationWindow.export_bids`).
These output calls queue one after another beside the stages' own background calls, so that
online feedback can start while the report is being written.

The GUI thread only draws and steers: starting a pipeline or a recorder, stopping them and
training run in background calls whose results the window's timer picks up. The pipeline runs in
its own process (``gui.separate_process``), so painting the cue screen cannot hold up
acquisition and inference. With no stream configured the simulator is started with the
calibration's classes, timings and seed, and the trials are taken from its own cue schedule, so
the whole flow runs without hardware.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from PyQt5 import QtCore, QtGui, QtWidgets

from bci_app.calibrate.controller import (
    ACTIVE,
    CalibrationController,
    MarkerOutlet,
    Phase,
)
from bci_app.calibrate.outputs import (
    bids_summary,
    check_bids_target,
    export_calibration,
    report_summary,
    write_calibration_report,
)
from bci_app.calibrate.paradigm import ParadigmPlanner, SimulatorPlanner
from bci_app.calibrate.settings import CalibrationSettings
from bci_app.calibrate.training import train_calibration
from bci_app.config import AppConfig
from bci_app.export import BidsExportError
from bci_app.gui.cue_screen import CueScreen, CueView
from bci_app.gui.paradigm_run import ParadigmRun
from bci_app.infer.latency import summarize_ms
from bci_app.infer.outlets import outlet_selectors
from bci_app.infer.worker import Prediction
from bci_app.lifecycle import BackgroundCall
from bci_app.pipeline import PipelineView, make_pipeline
from bci_app.pipeline.view import spells
from bci_app.record import SessionRecorder
from bci_app.sources.simulator import SimulatorSettings
from bci_app.stream.selector import StreamSelector

log = logging.getLogger(__name__)

TICK_MS = 4  # paradigm timer; shortened to land on the next phase boundary
STOP_TIMEOUT_S = 2.0
#: After the window closed, how long :func:`run_calibration` waits for a report or an export
#: still being written (a 2-minute session's report takes 5-10 s).
OUTPUTS_TIMEOUT_S = 300.0
WARNING_STYLE = "color: #b35900;"


@dataclass
class CalibrationStage:
    """One paradigm run: its pipeline (and simulator), cue markers, recorder and controller."""

    name: str  # "calibration" | "feedback"
    pipeline: PipelineView
    markers: MarkerOutlet
    recorder: SessionRecorder | None = None
    controller: CalibrationController | None = None
    run: Any = None  # draws the stage on the screen (motor imagery: a ParadigmRun)
    decisions: Any = None  # P300 free spelling: the worker's decided characters (an inlet)


class CalibrationWindow(QtWidgets.QMainWindow):
    """The calibration flow in one window (the cue screen fills it; F11: full screen).

    Keys: Space pauses / resumes, Esc aborts (the recording is kept), F11 full screen.
    The paradigm's part (screen, simulator, trials, training, results) sits in the methods
    under "the paradigm's part", which :class:`~bci_app.gui.speller_calibration.
    SpellerCalibrationWindow` replaces for the P300 speller.
    """

    #: Feedback runs on the worker's predictions (motor imagery), not on decided characters.
    WANTS_PREDICTIONS = True

    def __init__(self, config: AppConfig, settings: CalibrationSettings) -> None:
        super().__init__()
        self.config = config
        self.settings = settings
        self.state = "starting"
        self.summary: dict[str, Any] = {
            "classes": list(settings.classes),
            "out_dir": str(settings.out_dir),
            "report": None,  # {"path", "seconds", "decoder", "accuracy", ..., "error"}
            "report_path": None,
            "bids": None,  # BidsResult.to_json() + subject/session/task, or {"root", "error"}
            "bids_path": None,
            "warnings": [],
        }
        self.stage: CalibrationStage | None = None
        self.training_metrics: dict | None = None
        self.error: str | None = None
        self._task: BackgroundCall | None = None
        self._after_task: Callable[[BackgroundCall], None] | None = None
        # The report and BIDS exports: one at a time, beside the stages' own calls.
        self._outputs: list[tuple[str, Callable[[], Any], Callable[[BackgroundCall], None]]] = []
        self._output_task: BackgroundCall | None = None
        self._after_output: Callable[[BackgroundCall], None] | None = None
        self._close_when_idle = False
        self.recording_closed = False  # calibration.xdf is finished: it can be exported
        self._closed = False

        self.setWindowTitle("bci-app calibration")
        self.resize(1000, 700)
        self.screen_widget = _build_central(self, self._make_screen())
        self.status_label = self.findChild(QtWidgets.QLabel, "status")
        self.results = self.findChild(QtWidgets.QTableWidget, "confusion")
        self.feedback_button = self.findChild(QtWidgets.QPushButton, "feedback")
        self.feedback_button.clicked.connect(self.start_feedback)
        self.report_label = self.findChild(QtWidgets.QLabel, "report")
        self.bids_label = self.findChild(QtWidgets.QLabel, "bids")
        self.export_button = self.findChild(QtWidgets.QPushButton, "export_bids")
        self.export_button.clicked.connect(self._choose_bids_folder)
        for key, slot in (
            (QtCore.Qt.Key_Space, self.toggle_pause),
            (QtCore.Qt.Key_Escape, self.abort),
            (QtCore.Qt.Key_F11, self._toggle_full_screen),
        ):
            QtWidgets.QShortcut(QtGui.QKeySequence(key), self, activated=slot)

        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._timer.start(TICK_MS)
        self._begin_stage("calibration")

    # -- the paradigm's part: a subclass (the P300 speller's) replaces these ----------------
    def _make_screen(self) -> QtWidgets.QWidget:
        """The stimulus screen the stages draw on (fills the window)."""
        return CueScreen()

    def _simulator(self, stage: str, seed: int) -> SimulatorSettings | None:
        """The simulator of stage ``stage`` when no stream is configured, else None."""
        if not self.config.stream.uses_simulator:
            return None
        t = self.settings.timings
        return SimulatorSettings.from_config(
            self.config,
            seed=seed,
            classes=tuple(self.settings.classes),
            fixation_s=t.fixation_s,
            imagery_s=t.imagery_s,
            rest_min_s=t.rest_min_s,
            rest_max_s=t.rest_max_s,
        )

    def _stage_config(self, stage: str, markers: MarkerOutlet) -> AppConfig:
        """The pipeline's config in stage ``stage`` (whose markers go out on ``markers``)."""
        return self.config

    def _start_run(self, stage: CalibrationStage) -> None:
        """The stage's pipeline and recorder are running: plan and start its trials."""
        s = self.settings
        pipeline = stage.pipeline
        if pipeline.simulator is not None:
            planner = SimulatorPlanner(pipeline.simulator)
        else:
            planner = ParadigmPlanner(list(s.classes), s.timings, s.seed)
        feedback = stage.name == "feedback"
        classes = list(pipeline.metadata.classes) if feedback else list(s.classes)
        stage.controller = CalibrationController(
            planner,
            classes,
            s.feedback_trials if feedback else s.trials_per_class,
            markers=stage.markers,
            feedback=feedback,
            window_s=pipeline.config.windows.length,
            trial_span_s=(0.0, s.timings.imagery_s),
        )
        stage.run = ParadigmRun(stage.controller, self.screen_widget, pipeline.status, stage.name)
        stage.controller.start(pylsl.local_clock())

    def _advance_run(self, stage: CalibrationStage) -> bool:
        """Timer: advance and draw the stage's run; True once it has finished."""
        run, controller = stage.run, stage.controller
        phase = run.tick(pylsl.local_clock())
        self.status_label.setText(run.status_text())
        if phase is Phase.FINISHED:
            return True
        # Wake right at the next phase boundary (1 ms timer resolution), not up to a tick late.
        ahead = controller.seconds_to_next_change(pylsl.local_clock())
        if ahead is not None:
            self._timer.setInterval(max(0, min(TICK_MS, int(ahead * 1000))))
        return False

    def _run_active(self, stage: CalibrationStage) -> bool:
        """The stage's run is under way or paused (Esc aborts it)."""
        controller = stage.controller
        return controller is not None and controller.phase in (*ACTIVE, Phase.PAUSED)

    def _abort_run(self, stage: CalibrationStage) -> None:
        if stage.controller is not None:
            stage.controller.abort(pylsl.local_clock())

    def _stage_summary(self, stage: CalibrationStage) -> dict[str, Any]:
        """What the stage's run did, for the summary (its ``xdf`` is filled in later)."""
        controller = stage.controller
        lateness = controller.draw_lateness() if controller is not None else np.zeros(0)
        summary: dict[str, Any] = {
            "trials": 0 if controller is None else len(controller.trials),
            "valid_trials": {} if controller is None else controller.valid_counts(),
            "cue_draw_lateness_ms": summarize_ms(lateness),
            "xdf": None,
        }
        if controller is not None and controller.feedback:
            correct, decided = controller.online_accuracy()
            summary["online_accuracy"] = correct / decided if decided else None
            summary["online_trials"] = decided
        return summary

    def _training_job(self) -> tuple[str, Callable[[], dict]]:
        """What training says while it runs, and the call that trains and saves the model."""
        s = self.settings
        counts = self.summary["calibration"]["valid_trials"]
        message = (
            f"Training on {sum(counts.values())} valid trials "
            f"({', '.join(f'{c} {n}' for c, n in counts.items())})…"
        )

        def train() -> dict:
            return train_calibration(
                s.calibration_xdf,
                list(s.classes),
                s.model_dir,
                self.config,
                imagery_s=s.timings.imagery_s,
                epochs=s.epochs,
                seed=s.seed,
                cv_folds=s.cv_folds,
                decoder=s.decoder,
            )

        return message, train

    def _feedback_message(self) -> str:
        fb = self.summary["feedback"]
        accuracy = fb.get("online_accuracy")
        text = "n/a" if accuracy is None else f"{accuracy:.0%}"
        return (
            f"Feedback finished: online accuracy {text} on {fb.get('online_trials', 0)} trials "
            f"(chance {1 / len(self.settings.classes):.0%}). Recording: {fb.get('xdf')}."
        )

    def _show_message(self, text: str) -> None:
        """A message across the screen (starting, training, results, errors)."""
        view = CueView(phase=Phase.IDLE, status=self.status_label.text(), message=text)
        if self.stage is not None and self.stage.run is not None:
            self.stage.run.redraw()
        self.screen_widget.show_view(view)

    # -- stages -----------------------------------------------------------------------------
    def _begin_stage(self, name: str) -> None:
        feedback = name == "feedback"
        seed = self.settings.seed + (1 if feedback else 0)
        model = self.settings.model_dir if feedback else None
        markers = MarkerOutlet(f"{self.config.outlets.name_prefix}-cues")
        pipeline = make_pipeline(
            self._stage_config(name, markers),
            with_model=feedback,
            model_path=model,
            simulator_settings=self._simulator(name, seed),
            traces=False,  # the stimulus screen draws no EEG
        )
        if feedback and self.WANTS_PREDICTIONS:
            pipeline.add_prediction_sink(self._on_prediction)
        stage = CalibrationStage(name, pipeline, markers)
        self.stage = stage
        self.state = f"starting {name}"
        self._show_message(f"Starting the {name}: connecting to the EEG stream and recorder…")
        path = self.settings.feedback_xdf if feedback else self.settings.calibration_xdf

        def start() -> None:
            description = pipeline.start()
            selectors = [
                StreamSelector(source_id=description.source_id),
                StreamSelector(source_id=markers.source_id),
            ]
            if pipeline.publishes_outlets:
                selectors += outlet_selectors(pipeline.config.outlets, characters=spells(pipeline))
            try:
                stage.recorder = SessionRecorder(path, selectors)
                stage.recorder.start()
                self._stage_starting(stage)
            except BaseException:
                # no session: leave nothing running (the recorder may have started before the
                # stage's own start-up failed; its file keeps what it holds)
                if stage.recorder is not None and stage.recorder.pid is not None:
                    stage.recorder.stop(flush_s=0)  # in the background: waits for its exit
                pipeline.stop(STOP_TIMEOUT_S)
                markers.close()
                raise

        self._run_task(name, start, self._stage_started)

    def _stage_started(self, task: BackgroundCall) -> None:
        stage = self.stage
        if task.error is not None:
            self._fail(f"The {stage.name} could not start: {task.error}")
            return
        self.state = stage.name
        self._start_run(stage)

    def _finish_stage(self, aborted: bool = False) -> None:
        """Stop the recorder and the pipeline (background), then train or report."""
        stage = self.stage
        name = stage.name
        self.summary[name] = self._stage_summary(stage)
        self.state = "aborted" if aborted else f"stopping {name}"

        def stop() -> Any:
            result = stage.recorder.stop() if stage.recorder is not None else None
            stage.pipeline.stop(STOP_TIMEOUT_S)
            stage.markers.close()
            return result

        def stopped(task: BackgroundCall) -> None:
            result = task.result
            if result is not None:
                self.summary[name]["xdf"] = str(result.path)
                if name == "calibration" and Path(result.path).is_file():
                    self.recording_closed = True
                    self._update_export_button()
                if result.error:
                    self._fail(f"The recording of the {name} failed: {result.error}")
                    return
            if aborted:
                where = f" The recording is kept: {result.path}." if result is not None else ""
                self._show_message(f"Aborted.{where} Close the window.")
            elif name == "calibration":
                self._train()
            else:
                self._feedback_done()

        self._run_task(f"stop-{name}", stop, stopped)

    def _train(self) -> None:
        self.state = "training"
        message, train = self._training_job()
        self._show_message(message)
        self._run_task("train", train, self._trained)

    def _trained(self, task: BackgroundCall) -> None:
        if self.settings.bids_root is not None:
            self.export_bids(self.settings.bids_root)  # the recording, trained on or not
        if task.error is not None:
            self._fail(f"Training failed: {task.error}")
            return
        self.training_metrics = task.result
        cv = task.result.get("cross_validation") or task.result.get("validation") or {}
        self.summary["training"] = {
            "checkpoint": str(self.settings.model_dir),
            "decoder": task.result.get("decoder"),
            "selection": task.result.get("selection"),
            "cv_accuracy": cv.get("accuracy"),
            "kappa": cv.get("kappa"),
            "auc": cv.get("auc"),  # two classes: target above non-target (P300), etc.
            "itr_bits_per_min": cv.get("itr_bits_per_min"),
            "chance": cv.get("chance"),
            "chance_95": cv.get("chance_95"),
            "confusion": cv.get("confusion"),
            "n_trials": cv.get("n_trials"),
        }
        self.state = "results"
        self._show_results(cv)
        if self.settings.report:
            self._write_report()
        if self.settings.feedback_trials and self.settings.auto_feedback:
            self.start_feedback()
        elif not self.settings.feedback_trials and self.settings.close_when_done:
            self._close_when_outputs_done()

    def start_feedback(self) -> None:
        """Online feedback with the model just trained (button / automatic)."""
        if self.state != "results" or not self.settings.feedback_trials:
            return
        self.feedback_button.setEnabled(False)
        self.results.setVisible(False)
        self._begin_stage("feedback")

    def _feedback_done(self) -> None:
        self.state = "done"
        self._show_message(self._feedback_message())
        if self.settings.close_when_done:
            self._close_when_outputs_done()

    # -- outputs: the session report and BIDS exports (background calls, one at a time) -----
    def _write_report(self) -> None:
        """``report.html`` with the model just trained, in the background."""
        s = self.settings
        self._set_label(self.report_label, f"Writing the session report {s.report_html.name}…")

        def write() -> Any:
            return write_calibration_report(
                s.calibration_xdf,
                s.report_html,
                list(s.classes),
                s.model_dir,
                imagery_s=s.timings.imagery_s,
            )

        def written(task: BackgroundCall) -> None:
            if task.error is not None:
                message = (
                    f"The session report could not be written: {task.error} (the model and the "
                    "recording are kept; `bci-app report` can write it later)"
                )
                self.summary["report"] = {"path": None, "error": str(task.error)}
                self.summary["report_path"] = None
                self._warn(self.report_label, message)
                return
            self.summary["report"] = report_summary(task.result)
            self.summary["report_path"] = self.summary["report"]["path"]
            path = Path(task.result.out).resolve()
            self._set_label(
                self.report_label,
                f'Open report: <a href="{path.as_uri()}">{html.escape(str(path))}</a>',
                rich=True,
            )

        self._queue_output("report", write, written)

    def export_bids(
        self,
        root: str | Path,
        subject: str | None = None,
        session: str | None = None,
        task: str | None = None,
    ) -> bool:
        """Export ``calibration.xdf`` into the BIDS dataset at ``root`` in the background (the
        "Export to BIDS…" button, after its folder dialog); labels default to the settings'.
        False (and the reason shown) when the recording is not closed yet, an export is
        already under way, or the target is refused."""
        s = self.settings
        if not self.recording_closed or self._exporting():
            return False
        subject = s.bids_subject if subject is None else subject
        session = s.bids_session if session is None else session
        task = s.bids_task if task is None else task
        root = Path(root)
        try:
            check_bids_target(root, subject, session, task)  # quick: files only
        except (BidsExportError, OSError) as exc:
            self._export_failed(root, exc)
            return False
        self._set_label(self.bids_label, f"Exporting the calibration to BIDS at {root}…")
        line_freq = self.config.filters.notch

        def export() -> Any:
            return export_calibration(
                s.calibration_xdf,
                root,
                list(s.classes),
                subject=subject,
                session=session,
                task=task,
                line_freq=None if line_freq is None else float(line_freq),
            )

        def exported(call: BackgroundCall) -> None:
            if call.error is not None:
                self._export_failed(root, call.error)
                return
            self.summary["bids"] = bids_summary(call.result, subject, session, task)
            self.summary["bids_path"] = self.summary["bids"]["bids_path"]
            self._set_label(self.bids_label, f"BIDS: {call.result.bids_path}")

        self._queue_output("bids", export, exported)
        return True

    def _export_failed(self, root: Path, error: BaseException) -> None:
        # "bids" is the latest attempt; "bids_path" stays that of an earlier export, if any
        self.summary["bids"] = {"root": str(root), "bids_path": None, "error": str(error)}
        self._warn(
            self.bids_label,
            f"The BIDS export to {root} failed: {error} (the recording is kept: "
            f"{self.settings.calibration_xdf})",
        )

    def _choose_bids_folder(self) -> None:
        start = self.settings.bids_root or self.settings.out_dir
        folder = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Export the calibration to a BIDS dataset (its root folder)", str(start)
        )
        if folder:
            self.export_bids(folder)

    @property
    def outputs_pending(self) -> bool:
        """A report or an export is queued or being written."""
        return self._output_task is not None or bool(self._outputs)

    def _queue_output(
        self, name: str, job: Callable[[], Any], after: Callable[[BackgroundCall], None]
    ) -> None:
        self._outputs.append((name, job, after))
        self._next_output()

    def _next_output(self) -> None:
        if self._output_task is None and self._outputs:
            name, job, after = self._outputs.pop(0)
            self._output_task = BackgroundCall(job, f"bci-calibrate-{name}")
            self._after_output = after
        self._update_export_button()

    def _poll_outputs(self) -> None:
        """GUI thread: hand a finished output call to its follow-up, start the next one."""
        task = self._output_task
        if task is None or not task.done:
            return
        after = self._after_output
        self._output_task, self._after_output = None, None
        after(task)
        self._next_output()

    def finish_outputs(self, timeout: float = OUTPUTS_TIMEOUT_S) -> bool:
        """Wait (GUI thread, e.g. after the window closed) for the queued outputs, at most
        ``timeout`` s; True when none is left."""
        deadline = time.monotonic() + timeout
        while self.outputs_pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._output_task.join(left):
                return False
            self._poll_outputs()
        return True

    def _close_when_outputs_done(self) -> None:
        self._close_when_idle = True
        if not self.outputs_pending:
            self.close()

    def _exporting(self) -> bool:
        """A BIDS export is queued or running."""
        running = self._output_task is not None and self._output_task.name.endswith("-bids")
        return running or any(name == "bids" for name, _, _ in self._outputs)

    def _update_export_button(self) -> None:
        self.export_button.setEnabled(self.recording_closed and not self._exporting())

    def _set_label(self, label: QtWidgets.QLabel, text: str, rich: bool = False) -> None:
        label.setTextFormat(QtCore.Qt.RichText if rich else QtCore.Qt.PlainText)
        label.setStyleSheet("")
        label.setText(text)
        label.setToolTip(text if not rich else "")
        label.setVisible(True)

    def _warn(self, label: QtWidgets.QLabel, message: str) -> None:
        log.warning("%s", message)
        self.summary["warnings"].append(message)
        self._set_label(label, "⚠ " + message)
        label.setStyleSheet(WARNING_STYLE)

    # -- user actions -----------------------------------------------------------------------
    def toggle_pause(self) -> None:
        run = None if self.stage is None else self.stage.run
        if run is not None:
            run.toggle_pause(pylsl.local_clock())

    def abort(self) -> None:
        stage = self.stage
        if stage is None or stage.run is None or not self._run_active(stage):
            return
        self._abort_run(stage)
        self._finish_stage(aborted=True)

    def _toggle_full_screen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    # -- the timer --------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._task is not None and self._task.done:
            task, after = self._task, self._after_task
            self._task, self._after_task = None, None
            after(task)
        self._poll_outputs()
        if self._close_when_idle and not self.outputs_pending and self._task is None:
            self._close_when_idle = False
            self.close()
            return
        stage = self.stage
        if stage is None or stage.run is None or self.state != stage.name:
            return  # starting, stopping, training or showing results: nothing to run
        if stage.recorder is not None and stage.recorder.finished:
            # LabRecorderCLI ended mid-run: nothing more is recorded, so stop now and say why
            # (stopping reads its error) instead of cueing on for minutes
            self._abort_run(stage)
            self._finish_stage(aborted=True)
            return
        if self._advance_run(stage):
            self._finish_stage()

    # -- helpers ----------------------------------------------------------------------------
    def _stage_starting(self, stage: CalibrationStage) -> None:
        """Background, once the stage's pipeline and recorder run: anything else the run
        needs before it starts (a blocking call is fine here)."""

    def _on_prediction(self, prediction: Prediction) -> None:
        # Worker thread: the run hands it over through a bounded deque (no widgets here).
        run = None if self.stage is None else self.stage.run
        if run is not None:
            run.add_prediction(prediction)

    def _run_task(
        self, name: str, job: Callable[[], Any], after: Callable[[BackgroundCall], None]
    ) -> None:
        self._task = BackgroundCall(job, f"bci-calibrate-{name}")
        self._after_task = after

    def _results_message(self, cv: dict) -> str:
        """The training's results in words (the confusion matrix goes in the table)."""
        accuracy = cv.get("accuracy", float("nan"))
        itr = cv.get("itr_bits_per_min")
        decoder = (self.training_metrics or {}).get("decoder")
        return (
            (f"Decoder {decoder}: " if decoder else "")
            + f"cross-validated accuracy {accuracy:.0%} on {cv.get('n_trials', 0)} trials "
            f"(chance {cv.get('chance', 0):.0%}; above {cv.get('chance_95', 0):.0%} is better "
            f"than chance at p < 0.05), kappa {cv.get('kappa', float('nan')):.2f}"
            + (f", ITR {itr:.1f} bits/min" if itr is not None else "")
            + f". Model saved to {self.settings.model_dir}."
            + ("  Start online feedback when ready." if self.settings.feedback_trials else "")
        )

    def _show_results(self, cv: dict) -> None:
        classes = cv.get("classes", list(self.settings.classes))
        confusion = cv.get("confusion") or []
        self._show_message(self._results_message(cv))
        table = self.results
        table.setRowCount(len(classes))
        table.setColumnCount(len(classes))
        table.setHorizontalHeaderLabels([f"→ {c}" for c in classes])
        table.setVerticalHeaderLabels(classes)
        for i, row in enumerate(confusion):
            for j, value in enumerate(row):
                table.setItem(i, j, QtWidgets.QTableWidgetItem(str(value)))
        table.setVisible(True)
        self.feedback_button.setEnabled(bool(self.settings.feedback_trials))

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = "error"
        log.error("%s", message)
        self._show_message(message + "\n\nClose the window; recordings made so far are kept.")

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every thread (each join within ``timeout``); the recorder finishes its file."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        stage = self.stage
        if stage is not None:
            closed_mid_run = self._run_active(stage) and self.state == stage.name
            self._abort_run(stage)  # the trial in progress: its invalid marker
            if closed_mid_run:
                # as Esc does, less the wait on the GUI: the summary, and the recorder's last
                # pull (the cue and invalid markers of the last second) before the file closes
                self.summary[stage.name] = self._stage_summary(stage)
                self.state = "aborted"
                if stage.recorder is not None:
                    result = stage.recorder.stop()  # its own timeout: the file must close
                    self.summary[stage.name]["xdf"] = str(result.path)
            elif stage.recorder is not None:
                stage.recorder.request_stop()
            stage.pipeline.stop(timeout)
        if self._task is not None:
            self._task.join(timeout)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


def _build_central(window: QtWidgets.QMainWindow, screen: QtWidgets.QWidget) -> QtWidgets.QWidget:
    central = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(central)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(screen, stretch=1)
    bar = QtWidgets.QHBoxLayout()
    status = QtWidgets.QLabel("")
    status.setObjectName("status")
    bar.addWidget(status, stretch=1)
    confusion = QtWidgets.QTableWidget()
    confusion.setObjectName("confusion")
    confusion.setMaximumHeight(120)
    confusion.setVisible(False)
    bar.addWidget(confusion)
    feedback = QtWidgets.QPushButton("Start online feedback")
    feedback.setObjectName("feedback")
    feedback.setEnabled(False)
    bar.addWidget(feedback)
    layout.addLayout(bar)
    outputs = QtWidgets.QHBoxLayout()
    for name in ("report", "bids"):
        label = QtWidgets.QLabel("")
        label.setObjectName(name)
        label.setOpenExternalLinks(True)  # "Open report": the HTML file in the browser
        label.setTextInteractionFlags(
            QtCore.Qt.TextBrowserInteraction | QtCore.Qt.TextSelectableByMouse
        )
        label.setWordWrap(True)
        label.setVisible(False)
        outputs.addWidget(label, stretch=1)
    export = QtWidgets.QPushButton("Export to BIDS…")
    export.setObjectName("export_bids")
    export.setToolTip("Write calibration.xdf into a BIDS-EEG dataset (choose its root folder)")
    export.setEnabled(False)
    outputs.addWidget(export)
    layout.addLayout(outputs)
    window.setCentralWidget(central)
    return screen


def run_calibration(
    config: AppConfig,
    settings: CalibrationSettings,
    window_type: type[CalibrationWindow] = CalibrationWindow,
) -> dict:
    """Open the window (``window_type``: the paradigm's), run until it is closed; returns the
    summary."""
    from bci_app.gui.app import application
    from bci_app.gui.run import run_until_closed

    app = application()
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    window = window_type(config, settings)
    window.show()
    # Ctrl+C / SIGTERM close the window; its shutdown lets the recorder finish the file
    run_until_closed(app, window, None, None, finish=window.shutdown)
    if window.outputs_pending:
        log.info("finishing the session report / BIDS export…")
        window.finish_outputs()
    summary = dict(window.summary)
    summary["state"] = window.state
    summary["error"] = window.error
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return summary
