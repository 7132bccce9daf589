"""Calibration: balanced cue order, the paradigm's state machine, and the whole flow in the GUI on
the simulator (real LSL streams, real LabRecorder recordings, the real trainer)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf
from conftest import unique_id
from pylsl.util import LostError

from bci_app.calibrate.controller import (
    INVALID_MARKER,
    CalibrationController,
    Phase,
)
from bci_app.calibrate.paradigm import ParadigmPlanner, PlannedTrial
from bci_app.calibrate.settings import CalibrationSettings, Timings
from bci_app.calibrate.training import train_calibration, valid_cue_events
from bci_app.config import parse_config
from bci_app.decoders import load_decoder
from bci_app.gui.calibration import CalibrationWindow
from bci_app.gui.cue_screen import CueScreen
from bci_app.gui.paradigm_run import ParadigmRun
from bci_app.io import Recording
from bci_app.pipeline import ProcessPipeline
from bci_app.record.recorder import FLUSH_S
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.train.commands import TrainingError

SHORT = Timings(fixation_s=0.3, imagery_s=0.8, rest_min_s=0.2, rest_max_s=0.3)


# -- the paradigm, without Qt ---------------------------------------------------------------


def test_class_order_is_balanced_and_seedable():
    classes = ["left_hand", "right_hand", "feet"]
    plan = ParadigmPlanner(classes, Timings(), seed=3)
    needed = dict.fromkeys(classes, 100)
    trials = [plan.next_trial(10.0 * k, needed) for k in range(30)]
    names = [t.class_name for t in trials]
    for block in range(10):  # every block of 3 is a permutation of the classes
        assert sorted(names[3 * block : 3 * block + 3]) == sorted(classes)
    assert Counter(names) == dict.fromkeys(classes, 10)
    again = ParadigmPlanner(classes, Timings(), seed=3)
    assert [again.next_trial(0.0, needed).class_name for _ in range(30)] == names
    other = ParadigmPlanner(classes, Timings(), seed=4)
    assert [other.next_trial(0.0, needed).class_name for _ in range(30)] != names
    for t in trials:
        assert t.cue - t.start == pytest.approx(2.0)
        assert t.imagery_stop - t.cue == pytest.approx(4.0)
        assert 1.5 <= t.stop - t.imagery_stop <= 2.5
    # Classes that have all their trials are not drawn again.
    assert {plan.next_trial(0.0, {"left_hand": 0, "right_hand": 0, "feet": 2}).class_name
            for _ in range(5)} == {"feet"}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"imagery_s": 0.0}, r"(?s)imagery_s.*greater than 0"),
        ({"rest_min_s": 3.0, "rest_max_s": 2.0}, "rest_max_s"),
        ({"fixation_s": float("nan")}, r"(?s)fixation_s.*finite number"),
    ],
)
def test_bad_timings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Timings(**kwargs)


class _Markers:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, float]] = []

    def push(self, label: str, stamp: float) -> None:
        self.pushed.append((label, stamp))


class _FixedPlanner:
    """Trials of 1 s fixation, 2 s imagery, 1 s rest, classes in turn."""

    def __init__(self, classes):
        self.classes, self.k = classes, 0

    def next_trial(self, not_before, needed):
        name = self.classes[self.k % len(self.classes)]
        self.k += 1
        return PlannedTrial(name, not_before, not_before + 1, not_before + 3, not_before + 4)


def test_controller_runs_phases_stamps_cues_and_invalidates_on_pause():
    markers = _Markers()
    c = CalibrationController(_FixedPlanner(["a", "b"]), ["a", "b"], 2, markers=markers)
    c.start(100.0)  # first trial from 100.5 s
    assert c.tick(100.2) is Phase.WAIT
    assert c.tick(100.6) is Phase.FIXATION
    assert c.tick(101.6) is Phase.CUE
    c.cue_drawn(101.62)
    c.cue_drawn(101.70)  # a repaint of the same cue sends nothing more
    assert markers.pushed == [("a", 101.62)]
    assert c.tick(103.6) is Phase.REST
    assert c.seconds_to_next_change(103.6) == pytest.approx(0.9)
    assert c.tick(104.6) is Phase.FIXATION  # trial 2 follows without a hole
    assert c.valid_counts() == {"a": 1, "b": 0}
    assert c.tick(105.6) is Phase.CUE
    c.cue_drawn(105.6)
    c.pause(106.0, "stream lost", auto_resume=True)
    assert c.phase is Phase.PAUSED and c.auto_resume
    assert markers.pushed[-1] == (INVALID_MARKER, 106.0)
    assert c.tick(200.0) is Phase.PAUSED
    c.resume(200.0)
    assert c.trials[1].valid is False and c.valid_counts() == {"a": 1, "b": 0}
    now = 200.0
    while c.tick(now) is not Phase.FINISHED and now < 300:
        if c.phase is Phase.CUE:
            c.cue_drawn(now)
        now += 0.05
    assert c.phase is Phase.FINISHED  # the fixed planner ignores what is needed: a may exceed
    assert min(c.valid_counts().values()) == 2
    lateness = c.draw_lateness()
    np.testing.assert_allclose(lateness[:2], [0.12, 0.1], atol=1e-9)  # drawn - planned cue
    assert lateness[2:].max() < 0.06


def test_a_cue_never_painted_sends_no_marker_and_its_trial_is_not_used(qtbot):
    """The participant's window minimised or behind a screen lock: nothing is painted, so
    the cue gets no marker (it had the time of the last paint, seconds old) and its trial
    is left out of training."""
    markers = _Markers()
    c = CalibrationController(_FixedPlanner(["a", "b"]), ["a", "b"], 1, markers=markers)
    screen = CueScreen()
    qtbot.addWidget(screen)
    screen.resize(400, 300)
    screen.show()
    qtbot.waitUntil(lambda: screen.paints > 0)  # shown: painted once
    run = ParadigmRun(c, screen, lambda: None, "calibration")
    c.start(100.0)
    painted = screen.paints
    run.tick(100.2)
    assert screen.paints > painted
    screen.hide()
    now = 100.2
    while c.tick(now) is not Phase.FINISHED and now < 120:
        run.tick(now)
        now += 0.05
    assert markers.pushed == []
    assert len(c.trials) > 3 and c.valid_counts() == {"a": 0, "b": 0}


def test_feedback_decides_each_trial_from_windows_inside_it():
    c = CalibrationController(
        _FixedPlanner(["a", "b"]), ["a", "b"], 1, feedback=True, window_s=1.0,
        trial_span_s=(0.0, 2.0),
    )  # fmt: skip
    c.start(0.0)  # trial a: cue at 1.5, imagery until 3.5
    c.tick(1.6)
    c.cue_drawn(1.6)
    c.add_prediction(2.0, np.array([0.1, 0.9]))  # window [1.0, 2.0] starts before the cue
    c.add_prediction(2.6, np.array([0.8, 0.2]))
    c.add_prediction(3.4, np.array([0.6, 0.4]))
    c.add_prediction(3.6, np.array([0.0, 1.0]))  # after the trial span
    np.testing.assert_allclose(c.running_probabilities(), [0.7, 0.3])
    c.tick(4.6)
    assert c.trials[0].decision == "a" and c.online_accuracy() == (1, 1)


def test_training_drops_invalidated_trials_and_needs_enough_of_them():
    events = ((10, "a"), (20, "b"), (25, INVALID_MARKER), (30, "a"), (35, "bci-app:other"))
    recording = Recording(np.zeros((50, 2), np.float32), 10.0, ("C3", "C4"), events, None, "x", "x")
    assert valid_cue_events(recording).events == ((10, "a"), (30, "a"))


# -- the window, on the simulator ---------------------------------------------------------


def open_calibration(
    qtbot,
    tmp_path: Path,
    stream: dict | None = None,
    window_class: type[CalibrationWindow] = CalibrationWindow,
    **overrides,
) -> CalibrationWindow:
    """The window on the built-in simulator, or on the LSL stream ``stream`` selects. The
    pipeline runs in this process, which starts faster; the full flow below runs it in its
    child process, as the app does by default."""
    config = parse_config(
        {
            "outlets": {"enabled": False},
            "model": {"device": "cpu"},
            "stream": stream or {},
            "gui": {"separate_process": False},
        }
    )
    values = {
        "classes": ("left_hand", "right_hand"),
        "trials_per_class": 3,
        "out_dir": tmp_path / "session",
        "timings": SHORT,
        "feedback_trials": 0,
        "epochs": 40,
    }
    values.update(overrides)
    window = window_class(config, CalibrationSettings(**values))
    qtbot.addWidget(window)
    window.show()
    return window


class CueListener:
    """Reads the window's cue marker outlet; ``poll()`` while the window runs (the outlet
    closes when the stage ends, and an inlet would then wait for it to come back)."""

    def __init__(self, window: CalibrationWindow) -> None:
        infos = pylsl.resolve_byprop("source_id", window.stage.markers.source_id, timeout=5.0)
        self.inlet = pylsl.StreamInlet(infos[0], recover=False)
        self.inlet.open_stream(timeout=5.0)
        self.labels: list[str] = []
        self.stamps: list[float] = []

    def poll(self) -> None:
        try:
            labels, stamps = self.inlet.pull_chunk(timeout=0.0)
        except LostError:
            return
        self.labels += [label[0] for label in labels]
        self.stamps += stamps


def read_markers(path: Path) -> tuple[list[str], dict]:
    streams, _ = pyxdf.load_xdf(str(path))
    by_type = {s["info"]["type"][0]: s for s in streams}
    labels = [v[0] for v in by_type["Markers"]["time_series"]]
    return labels, by_type


def test_cue_markers_carry_the_draw_time_and_too_few_trials_are_explained(qtbot, tmp_path):
    window = open_calibration(qtbot, tmp_path)
    cues = CueListener(window)

    def trained() -> bool:
        cues.poll()
        return window.state in ("error", "results")

    # 3 trials per class are below the trainer's minimum of 4: training must explain that.
    qtbot.waitUntil(trained, timeout=60_000)
    assert window.state == "error"
    assert "too few valid trials" in window.error and "at least 4" in window.error
    assert "too few valid trials" in window.screen_widget.view.message
    labels, stamps = cues.labels, cues.stamps
    drawn = [t for t, phase in window.screen_widget.paint_log if phase is Phase.CUE]
    errors_ms = [1e3 * min(abs(d - s) for d in drawn) for s in stamps]
    print(f"cue marker - draw time: p99 {np.percentile(errors_ms, 99):.4f} ms over {len(stamps)}")
    assert max(errors_ms) < 1e-3  # the marker is stamped with the moment the cue was drawn
    lateness = window.summary["calibration"]["cue_draw_lateness_ms"]
    print(f"cue drawn after its planned time: p50 {lateness['p50']} ms, p99 {lateness['p99']} ms")
    assert lateness["p99"] < 50
    counts = Counter(labels)
    assert min(counts["left_hand"], counts["right_hand"]) == 3
    recorded, streams = read_markers(tmp_path / "session" / "calibration.xdf")
    assert Counter(recorded) == counts
    assert streams["EEG"]["time_series"].shape[1] == 64


def test_abort_keeps_the_recording(qtbot, tmp_path):
    window = open_calibration(qtbot, tmp_path, trials_per_class=10)
    qtbot.waitUntil(
        lambda: (
            window.stage.controller is not None
            and sum(t.drawn_cue is not None for t in window.stage.controller.trials) >= 2
        ),
        timeout=30_000,
    )
    qtbot.waitUntil(lambda: window.stage.controller.phase is Phase.CUE, timeout=5_000)
    window.abort()
    assert window.state == "aborted"
    qtbot.waitUntil(
        lambda: "recording is kept" in window.screen_widget.view.message, timeout=20_000
    )
    labels, _ = read_markers(tmp_path / "session" / "calibration.xdf")
    assert labels[-1] == INVALID_MARKER and len(labels) >= 3  # aborted mid-trial: invalid
    assert not (tmp_path / "session" / "model").exists()


def test_a_recorder_that_dies_mid_run_stops_the_calibration_at_once(qtbot, tmp_path):
    """LabRecorderCLI killed (disk full, out of memory): the run stops within a tick and says
    why, instead of cueing on for minutes with nothing recorded."""
    window = open_calibration(qtbot, tmp_path, trials_per_class=10)
    qtbot.waitUntil(
        lambda: window.stage.controller is not None and len(window.stage.controller.trials) >= 2,
        timeout=30_000,
    )
    os.kill(window.stage.recorder.pid, signal.SIGKILL)
    killed = time.monotonic()
    qtbot.waitUntil(lambda: window.state == "error", timeout=10_000)
    assert time.monotonic() - killed < 5.0
    assert "The recording of the calibration failed" in window.error
    assert "killed by signal SIGKILL" in window.error


class _StageThatCannotStart(CalibrationWindow):
    """A stage whose own start-up fails after the recorder started, as the speller's free
    spelling does when the worker's characters outlet never appears."""

    def _stage_starting(self, stage) -> None:
        raise TrainingError("no LSL stream named 'bci-app-characters' within 5 s")


def test_a_stage_that_cannot_start_leaves_no_recorder_running(qtbot, tmp_path):
    window = open_calibration(qtbot, tmp_path, window_class=_StageThatCannotStart)
    qtbot.waitUntil(lambda: window.state == "error", timeout=30_000)
    assert "could not start: no LSL stream named 'bci-app-characters'" in window.error
    assert window.stage.recorder is not None and not window.stage.recorder.running
    assert not window.stage.pipeline.running


def test_stream_loss_pauses_marks_the_trial_invalid_and_resumes(qtbot, tmp_path):
    # An amplifier of its own (the built-in simulator runs in the pipeline's child process).
    simulator = SimulatorStream(SimulatorSettings(n_channels=8, source_id=unique_id("amp")))
    simulator.start()
    window = open_calibration(
        qtbot, tmp_path, stream={"source_id": simulator.source_id}, trials_per_class=10
    )
    qtbot.waitUntil(
        lambda: (
            window.stage.controller is not None
            and window.stage.controller.phase is Phase.CUE
            and window.stage.controller.current.drawn_cue is not None
        ),
        timeout=30_000,
    )
    controller = window.stage.controller
    interrupted = controller.current
    simulator.pause()  # the amplifier stops sending
    qtbot.waitUntil(lambda: controller.phase is Phase.PAUSED, timeout=5_000)
    assert "EEG stream" in controller.pause_reason and controller.auto_resume
    assert "EEG stream" in window.screen_widget.view.message
    assert interrupted.valid is False
    simulator.resume()
    qtbot.waitUntil(lambda: controller.phase not in (Phase.PAUSED,), timeout=10_000)
    qtbot.waitUntil(
        lambda: controller.current is not None and controller.current.drawn_cue is not None,
        timeout=20_000,
    )
    window.abort()
    qtbot.waitUntil(
        lambda: "recording is kept" in window.screen_widget.view.message, timeout=20_000
    )
    simulator.stop()
    labels, _ = read_markers(tmp_path / "session" / "calibration.xdf")
    assert labels.count(INVALID_MARKER) == 2  # the lost trial and the aborted one
    first_invalid = labels.index(INVALID_MARKER)
    assert labels[first_invalid - 1] == interrupted.class_name  # follows the interrupted cue


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_full_simulated_calibration_trains_and_gives_online_feedback(qtbot, tmp_path):
    """The demo of the feature: calibration -> XDF -> checkpoint -> online feedback (~2 min:
    the simulator streams in real time)."""
    config = parse_config({"windows": {"length": 1.0, "hop": 0.25}, "model": {"device": "cpu"}})
    settings = CalibrationSettings(
        classes=("left_hand", "right_hand"),
        trials_per_class=7,
        out_dir=tmp_path / "session",
        timings=Timings(fixation_s=0.3, imagery_s=3.0, rest_min_s=0.2, rest_max_s=0.3),
        feedback_trials=3,
        epochs=40,
        cv_folds=2,
        auto_feedback=True,
    )
    window = CalibrationWindow(config, settings)
    qtbot.addWidget(window)
    window.show()
    started = time.monotonic()
    # As the app runs it: the pipeline in a child process, painting cannot stall it.
    assert isinstance(window.stage.pipeline, ProcessPipeline)
    qtbot.waitUntil(lambda: window.state in ("done", "error"), timeout=400_000)
    assert window.state == "done", window.error
    summary = window.summary
    print(f"full calibration flow: {time.monotonic() - started:.0f} s; {summary}")
    # The recording: EEG, the cue markers (balanced), nothing lost.
    labels, streams = read_markers(settings.calibration_xdf)
    counts = Counter(labels)
    assert min(counts["left_hand"], counts["right_hand"]) >= 7
    # The checkpoint, chosen by auto on this calibration alone, with its card and report.
    decoder, metadata = load_decoder(settings.model_dir)
    assert metadata.classes == ["left_hand", "right_hand"]
    assert (settings.model_dir / "MODEL_CARD.md").is_file()
    training = summary["training"]
    selection = training["selection"]
    assert selection["protocol"] == "3 blocks of consecutive trials"  # one run
    scored_or_left_out = set(selection["candidates"]) | set(selection["left_out"])
    assert {"se", "riemann", "mdm", "csp-lda"} <= scored_or_left_out  # each with its reason
    assert training["decoder"] == selection["chosen"]
    assert training["n_trials"] == np.sum(training["confusion"]) >= 14
    assert 0.0 <= training["cv_accuracy"] <= 1.0 and training["chance"] == 0.5
    # Online feedback: recorded with the app's outlets; per-trial accuracy well above chance.
    feedback = summary["feedback"]
    _, fb_streams = read_markers(settings.feedback_xdf)
    assert {"Predictions", "ElectrodeWeights", "Latency"} <= set(fb_streams)
    assert feedback["online_trials"] >= 6
    assert feedback["online_accuracy"] >= 5 / 6  # chance 1/2
    window.close()


def test_training_refuses_a_recording_without_enough_trials(tmp_path):
    # A real (tiny) recording from the recorder is not needed for this message: the checks
    # run on the events before any training.
    from xdf_files import write_xdf

    rate, n = 160.0, 1600
    eeg = {
        "name": "eeg", "type": "EEG", "rate": rate, "fmt": "float32",
        "channels": [("C3", "microvolts", "EEG"), ("C4", "microvolts", "EEG")],
        "times": (np.arange(n) / rate).tolist(), "values": np.zeros((n, 2)),
    }  # fmt: skip
    markers = {
        "name": "cues", "type": "Markers", "rate": 0, "fmt": "string",
        "times": [1.0, 3.0, 4.0, 6.0], "values": ["a", "b", INVALID_MARKER, "a"],
    }  # fmt: skip
    path = tmp_path / "short.xdf"
    write_xdf(path, [eeg, markers])
    with pytest.raises(TrainingError, match=r"too few valid trials.*'a': 2, 'b': 0.*at least 4"):
        train_calibration(path, ["a", "b"], tmp_path / "m", parse_config({}), imagery_s=1.0)


def test_closing_mid_calibration_stops_every_thread_and_keeps_the_last_markers(qtbot, tmp_path):
    """Closing the window mid-run is an abort: the trial in progress gets its invalid marker,
    the recorder its last pull (FLUSH_S) before the file closes, the summary the stage."""
    window = open_calibration(qtbot, tmp_path, trials_per_class=10)
    qtbot.waitUntil(
        lambda: (
            window.stage.controller is not None
            and sum(t.drawn_cue is not None for t in window.stage.controller.trials) >= 2
        ),
        timeout=30_000,
    )
    controller = window.stage.controller
    qtbot.waitUntil(
        lambda: controller.phase is Phase.CUE and controller.current.drawn_cue is not None,
        timeout=5_000,
    )
    before = {t.name for t in threading.enumerate()}
    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < FLUSH_S + 4.0
    alive = {t.name for t in threading.enumerate() if t.name.startswith("bci-")}
    assert not alive, f"threads still running: {alive} (before: {before})"
    assert window.state == "aborted" and window.summary["calibration"]["trials"] >= 2
    labels, _ = read_markers(Path(window.summary["calibration"]["xdf"]))
    assert labels[-1] == INVALID_MARKER and len(labels) >= 3
