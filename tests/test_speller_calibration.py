"""The guided P300 calibration: copy spelling on the speller -> calibration.xdf -> a P300
checkpoint -> free spelling decided live by the worker, on the simulator (real LSL streams, a
real LabRecorder recording, the real trainer, the pipeline in its child process)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import pyxdf

from bci_app.calibrate.settings import CalibrationSettings
from bci_app.calibrate.speller import (
    FlashPlanner,
    SimulatorFlashPlanner,
    SpellerSettings,
)
from bci_app.config import parse_config, with_paradigm
from bci_app.decoders import load_decoder
from bci_app.gui.speller_calibration import SpellerCalibrationWindow
from bci_app.sources.simulator import SimulatorSettings, SpellerSchedule
from bci_app.sources.simulator_stream import SimulatorClock, SimulatorStream
from bci_app.train.erp import ERP_CLASSES
from tests.conftest import run_cli, unique_id

FAST = {"repetitions": 5, "flash_s": 0.075, "blank_s": 0.05, "pause_s": 2.0}


def simulator_clock(text: str | None = None, **values) -> SimulatorClock:
    settings = SimulatorSettings(
        paradigm="p300", repetitions=5, soa_s=0.125, char_pause_s=2.0, text=text, **values
    )
    return SimulatorClock(settings, t0=100.0, source_id="sim")


def test_the_simulated_participant_spells_the_text_after_a_first_pause():
    clock = simulator_clock("CAT", first_pause_s=6.0)
    schedule = SpellerSchedule(clock.settings)
    assert [schedule.character(k).char for k in range(7)] == list("CATCATC")
    rate = clock.settings.rate_hz
    assert schedule.character(0).first_flash == round(6.0 * rate)
    assert schedule.character(1).first_flash - schedule.character(1).start == round(2.0 * rate)
    # The flash order is the seed's, with or without a text.
    plain = SpellerSchedule(simulator_clock().settings)
    assert [f.code for f in plain.flashes_between(0, 4000)][:60] == [
        f.code for f in schedule.flashes_between(0, 4000)
    ][:60]
    with pytest.raises(ValueError, match=r"text 'C\?' has '\?', not in"):
        SimulatorSettings(paradigm="p300", text="C?")


def test_the_screen_follows_the_simulators_flashes_in_copy_and_free_spelling():
    clock = simulator_clock("DOGS")
    schedule = clock.schedule
    copy = SpellerSettings(text="XXX", **FAST)
    # Joining 1 s after the first character's first flash: the screen starts at the second.
    late = clock.timestamp_of(schedule.character(0).first_flash) + 1.0
    planner = SimulatorFlashPlanner(copy, clock, late)
    assert planner.first == 1 and planner.text(3) == "OGS"
    planned = planner.character(0, not_before=0.0)
    char = schedule.character(1)
    assert planned.symbol == "O" and planned.first_flash == clock.timestamp_of(char.first_flash)
    expected = [
        (clock.timestamp_of(sample) - planned.first_flash, label)
        for sample, label in schedule.cues_between(char.first_flash, char.stop)
    ]
    got = [(f.onset_s, label) for f in planned.flashes for label in f.labels]
    assert [label for _, label in got] == [label for _, label in expected]  # the same markers
    np.testing.assert_allclose([t for t, _ in got], [t for t, _ in expected], atol=1e-9)
    assert planner.character(1, not_before=1e9).symbol == "G"  # copy spelling never skips
    # Free spelling: char:? markers, no target labels, and the simulated intent beside them.
    free = SimulatorFlashPlanner(SpellerSettings(characters=2, **FAST), clock, late)
    first = free.character(0, not_before=late)
    assert first.symbol is None and first.intended == "O"
    assert first.flashes[0].labels[0] == "char:?"
    assert all(len(f.labels) <= 2 and "target" not in f.labels for f in first.flashes)
    # A character ended early: the next one is the simulator's first flashing after it.
    after = clock.timestamp_of(schedule.character(3).first_flash) - 0.5
    assert free.character(1, not_before=after).intended == "S"
    with pytest.raises(ValueError, match="must flash as the simulator does"):
        SimulatorFlashPlanner(SpellerSettings(text="A", repetitions=4), clock, 0.0)
    # The screen's own planner starts each character where it is asked to.
    own = FlashPlanner(copy).character(0, not_before=12.5)
    assert own.first_flash == 12.5 and own.symbol == "X"


def test_p300_calibration_settings_and_arguments_are_checked(tmp_path):
    speller = SpellerSettings(text="HI", **FAST)
    base = {"classes": ERP_CLASSES, "out_dir": tmp_path, "paradigm": "p300"}
    settings = CalibrationSettings(**base, trials_per_class=2, speller=speller, feedback_trials=3)
    free = settings.free_spelling()
    assert free.text is None and free.characters == 3 and free.repetitions == 5
    assert free.seed == speller.seed + 1
    with pytest.raises(ValueError, match="the 2 characters of its copy text"):
        CalibrationSettings(**base, trials_per_class=5, speller=speller)
    with pytest.raises(ValueError, match="give the text to copy"):
        CalibrationSettings(**base, trials_per_class=2)
    for args, message in (
        (["--paradigm", "p300"], "give it with --copy TEXT"),
        (["--paradigm", "p300", "--copy", "HI", "--trials", "3"], "leave out --classes"),
        (["--copy", "HI", "--classes", "a", "b", "--trials", "3"], "--copy belongs to"),
        (["--classes", "a", "b"], "needs --classes (at least 2) and --trials"),
        (["--paradigm", "p300", "--copy", "H?"], "'?', not in the speller matrix"),
    ):
        result = run_cli("calibrate", *args, "--out", str(tmp_path / "x"))
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_a_lost_stream_holds_the_speller_and_it_goes_on_when_the_stream_is_back(qtbot, tmp_path):
    """An amplifier's stream (the simulator as a plain LSL source) pauses mid-character: the
    character ends, the screen says why and waits, and the next one starts once it is back."""
    amplifier = SimulatorStream(SimulatorSettings(n_channels=8, source_id=unique_id("amp")))
    amplifier.start()
    config = with_paradigm(
        parse_config(
            {
                "stream": {"source_id": amplifier.source_id},
                "outlets": {"enabled": False},
                "gui": {"separate_process": False},
            }
        ),
        "p300",
    )
    settings = CalibrationSettings(
        classes=ERP_CLASSES,
        trials_per_class=2,
        out_dir=tmp_path / "session",
        paradigm="p300",
        speller=SpellerSettings(text="AB", **FAST),
        feedback_trials=0,
    )
    window = SpellerCalibrationWindow(config, settings)
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(
            lambda: (
                window.stage.run is not None
                and len(window.stage.run.sequencer.drawn_flashes()) >= 3
            ),
            timeout=30_000,
        )
        sequencer = window.stage.run.sequencer
        amplifier.pause()  # the amplifier stops sending
        qtbot.waitUntil(lambda: bool(sequencer.held), timeout=5_000)
        assert "EEG stream" in sequencer.held and sequencer.interrupted == 1
        assert sequencer.characters[0].stopped_after is not None
        qtbot.waitUntil(lambda: "EEG stream" in window.screen_widget.view.message, timeout=2_000)
        amplifier.resume()
        qtbot.waitUntil(
            lambda: len(sequencer.characters) == 2 and bool(sequencer.characters[1].drawn),
            timeout=15_000,
        )
        assert not sequencer.held and sequencer.characters[1].planned.symbol == "B"
        window.abort()
        qtbot.waitUntil(
            lambda: "recording is kept" in window.screen_widget.view.message, timeout=20_000
        )
    finally:
        window.close()
        amplifier.stop()
    assert window.summary["calibration"]["interrupted_characters"] == 1
    streams, _ = pyxdf.load_xdf(str(settings.calibration_xdf))
    markers = next(s for s in streams if s["info"]["type"][0] == "Markers")
    labels = [v[0] for v in markers["time_series"]]
    assert labels.count("char:A") == labels.count("char:B") == 1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_guided_p300_calibration_copy_spells_trains_and_spells_freely(qtbot, tmp_path):
    """The flow of the feature on the simulator (~2 min: it streams in real time)."""
    config = with_paradigm(parse_config({"model": {"device": "cpu"}}), "p300")
    text = "BCI"
    settings = CalibrationSettings(
        classes=ERP_CLASSES,
        trials_per_class=len(text),
        out_dir=tmp_path / "session",
        paradigm="p300",
        speller=SpellerSettings(text=text, **FAST),
        feedback_trials=3,
        auto_feedback=True,
        close_when_done=False,
    )
    window = SpellerCalibrationWindow(config, settings)
    qtbot.addWidget(window)
    window.show()
    started = time.monotonic()
    qtbot.waitUntil(lambda: window.state in ("done", "error"), timeout=400_000)
    assert window.state == "done", window.error
    summary = window.summary
    print(f"P300 calibration flow: {time.monotonic() - started:.0f} s; {summary}")
    calibration = summary["calibration"]
    assert calibration["text"] == text  # the simulator was joined at its first character
    assert calibration["characters"] == 3 and calibration["flashes"] == 3 * 5 * 12
    assert calibration["flash_draw_lateness_ms"]["p99"] < 50
    # The recording: every flash's markers, stamped when it was drawn.
    streams, _ = pyxdf.load_xdf(str(settings.calibration_xdf))
    markers = next(s for s in streams if s["info"]["type"][0] == "Markers")
    labels = [v[0] for v in markers["time_series"]]
    assert [x for x in labels if x.startswith("char:")] == ["char:B", "char:C", "char:I"]
    assert labels.count("target") == 3 * 5 * 2 and labels.count("nontarget") == 3 * 5 * 10
    # The checkpoint: a P300 model that knows its matrix.
    _, metadata = load_decoder(settings.model_dir)
    assert metadata.paradigm.kind == "p300" and metadata.classes == list(ERP_CLASSES)
    training = summary["training"]
    assert training["selection"]["criterion"] == "auc"  # chosen by ranking, as the speller sums
    assert training["decoder"] == training["selection"]["chosen"]
    assert training["auc"] > 0.6  # on 30 target flashes
    # The session report: the P300's own (waveforms, topomaps, characters by repetitions).
    qtbot.waitUntil(lambda: summary["report"] is not None, timeout=60_000)
    assert summary["report"]["error"] is None, summary["report"]
    assert summary["report_path"] == str(settings.report_html) and settings.report_html.is_file()
    assert "Target minus non-target" in settings.report_html.read_text()
    # Free spelling: the worker decided every character from the screen's own markers.
    feedback = summary["feedback"]
    assert feedback["characters"] == 3 and len(feedback["spelled"]) == 3
    assert feedback["online_trials"] == 3 and feedback["online_accuracy"] >= 2 / 3  # chance 1/36
    assert feedback["spelled"] in window.screen_widget.spelled
    streams, _ = pyxdf.load_xdf(str(settings.feedback_xdf))
    names = {s["info"]["name"][0] for s in streams}
    assert any(name.endswith("-characters") for name in names)
    window.close()
