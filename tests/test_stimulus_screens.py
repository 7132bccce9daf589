"""Stimulus screens: the P300 speller (flash planner, screen, markers stamped at paint time,
decisions and dynamic stopping) and the SSVEP flicker (frequencies locked to the refresh, the
frame-counted square wave, class markers at the first stimulation frame), with real Qt widgets
offscreen and real LSL outlets and inlets over loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pylsl
import pytest
from pydantic import ValidationError
from PyQt5 import QtGui

from bci_app.calibrate.settings import Timings
from bci_app.calibrate.speller import (
    FlashPlanner,
    SpellerPhase,
    SpellerSequencer,
    SpellerSettings,
    cells_of_code,
    codes_of_symbol,
)
from bci_app.cli import main
from bci_app.config import SPELLER_MATRIX
from bci_app.gui.flicker import (
    FlickerScreen,
    FlickerView,
    FlickerWindow,
    UnproducibleFrequency,
    check_frequency,
    flicker_targets,
    producible_frequencies,
)
from bci_app.gui.speller import SpellerWindow
from tests.conftest import unique_id

REPO = Path(__file__).resolve().parents[1]
FAST = {"flash_s": 0.05, "blank_s": 0.03, "pause_s": 0.15}  # 80 ms SOA keeps the tests short


class MarkerListener:
    """A real inlet on a marker outlet (by source_id), opened before the run starts."""

    def __init__(self, source_id: str) -> None:
        infos = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
        assert infos, f"no marker stream {source_id}"
        self.inlet = pylsl.StreamInlet(infos[0], recover=False)
        self.inlet.open_stream(timeout=5.0)
        self.labels: list[str] = []
        self.stamps: list[float] = []

    def poll(self) -> None:
        labels, stamps = self.inlet.pull_chunk(timeout=0.0)
        self.labels += [label[0] for label in labels]
        self.stamps += stamps


# -- the speller, without Qt ----------------------------------------------------------------
def test_every_code_flashes_once_per_repetition_in_a_seeded_order():
    settings = SpellerSettings(text="CAT", repetitions=5, seed=3)
    first = [FlashPlanner(settings).character(i) for i in range(3)]
    again = [FlashPlanner(settings).character(i) for i in range(3)]
    other = FlashPlanner(settings.model_copy(update={"seed": 4})).character(0)
    assert [f.code for f in first[0].flashes] == [f.code for f in again[0].flashes]
    assert [f.code for f in first[0].flashes] != [f.code for f in other.flashes]
    for char in first:
        codes = [f.code for f in char.flashes]
        assert len(codes) == 5 * 12
        for r in range(5):
            assert sorted(codes[12 * r : 12 * (r + 1)]) == list(range(1, 13))
            assert {f.repetition for f in char.flashes[12 * r : 12 * (r + 1)]} == {r}
        assert all(a != b for a, b in zip(codes, codes[1:], strict=False))  # never twice in a row
        assert [f.onset_s for f in char.flashes[:3]] == pytest.approx([0.0, 0.175, 0.35])


def test_copy_spelling_marks_targets_and_free_spelling_does_not():
    copy = FlashPlanner(SpellerSettings(text="cat dog", repetitions=2)).character(0)
    assert copy.symbol == "C"
    assert copy.flashes[0].labels[0] == "char:C"
    assert all(not f.labels[0].startswith("char:") for f in copy.flashes[1:])
    assert codes_of_symbol(SPELLER_MATRIX, "C") == (3, 7)  # column 3, row 1 (codes 7..12)
    targets = [f for f in copy.flashes if "target" in f.labels]
    assert sorted(f.code for f in targets) == [3, 3, 7, 7]  # 2 per repetition
    assert all(f.labels[-1] in ("target", "nontarget") and len(f.labels) >= 2 for f in copy.flashes)
    assert SpellerSettings(text="cat dog").text == "CAT_DOG"  # upper case, space as _
    free = FlashPlanner(SpellerSettings(repetitions=2)).character(0)
    assert free.symbol is None
    assert free.flashes[0].labels == ("char:?", f"code{free.flashes[0].code}")
    assert all(len(f.labels) == 1 for f in free.flashes[1:])
    assert cells_of_code(SPELLER_MATRIX, 2) == [(r, 1) for r in range(6)]
    assert cells_of_code(SPELLER_MATRIX, 8) == [(1, c) for c in range(6)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text": "HÉ"}, "'É', not in the speller matrix"),
        ({"text": ""}, "copy text is empty"),
        ({"repetitions": 0}, "repetitions"),
        ({"flash_s": 0.0}, "flash_s"),
        ({"matrix": ("AB", "CDE")}, "as many symbols"),
        ({"matrix": ("AB", "CA")}, "appears twice"),
    ],
)
def test_bad_speller_settings_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SpellerSettings(**kwargs)


def test_sequencer_times_flashes_stops_early_and_finishes():
    class Sink:
        def __init__(self) -> None:
            self.pushed: list[tuple[str, float]] = []

        def push(self, label: str, stamp: float) -> None:
            self.pushed.append((label, stamp))

    sink = Sink()
    settings = SpellerSettings(text="AB", repetitions=2, **FAST)
    sequencer = SpellerSequencer(settings, sink)
    t = 100.0
    sequencer.start(t)
    onsets = []
    while sequencer.tick(t) is not SpellerPhase.FINISHED and t < 200:
        if sequencer.awaiting_draw:
            onsets.append(t)
            sequencer.flash_drawn(t + 0.001)
        if len(onsets) == 30 and sequencer.character_index == 1:  # 6 flashes into B
            assert sequencer.add_decision("A", t) is False  # A's decision: B goes on
            assert sequencer.add_decision("B", t) is True  # B decided early: it ends
        t += 0.001
    assert sequencer.phase is SpellerPhase.FINISHED
    assert [c.stopped_after for c in sequencer.characters] == [None, 6]
    assert np.diff(onsets[:24]) == pytest.approx(np.full(23, 0.08), abs=2e-3)
    assert onsets[24] - onsets[23] == pytest.approx(0.08 + 0.15, abs=2e-3)  # + the pause
    labels = [label for label, _ in sink.pushed]
    assert labels.count("char:A") == labels.count("char:B") == 1
    assert labels.count("target") == 4 + sum(
        1 for f in sequencer.characters[1].drawn if "target" in f.flash.labels
    )
    assert sink.pushed[0] == ("char:A", pytest.approx(onsets[0] + 0.001))
    assert sequencer.stop_character(t) is False  # nothing left to stop


def test_a_hold_ends_the_flashing_character_and_starts_none_until_released():
    settings = SpellerSettings(text="ABC", repetitions=2, **FAST)
    sequencer = SpellerSequencer(settings)
    t = 100.0
    sequencer.start(t)
    while len(sequencer.drawn_flashes()) < 5:  # 5 flashes into A
        sequencer.tick(t)
        if sequencer.awaiting_draw:
            sequencer.flash_drawn(t)
        t += 0.001
    sequencer.hold(t, "EEG stream stale: waiting")
    assert sequencer.interrupted == 1 and sequencer.characters[0].stopped_after == 5
    for _ in range(3000):  # 3 s held: far past B's planned start, nothing flashes
        assert sequencer.tick(t) is SpellerPhase.PAUSE and sequencer.current is None
        assert sequencer.seconds_to_next_change(t) is None
        t += 0.001
    sequencer.release(t)
    released = t
    while len(sequencer.characters) < 2 or not sequencer.characters[1].drawn:
        sequencer.tick(t)
        if sequencer.awaiting_draw:
            sequencer.flash_drawn(t)
        t += 0.001
    assert sequencer.characters[1].planned.symbol == "B"
    assert sequencer.characters[1].drawn[0].drawn >= released + settings.pause_s
    # Held while B's target is cued, before its first flash: B waits, whole, for the release.
    sequencer = SpellerSequencer(settings)
    sequencer.start(t := 0.0)
    sequencer.tick(t)
    sequencer.hold(t, "lost")
    assert sequencer.interrupted == 0
    for _ in range(5000):
        assert sequencer.tick(t) is SpellerPhase.PAUSE and not sequencer.drawn_flashes()
        t += 0.001
    sequencer.release(t)
    while not sequencer.drawn_flashes():
        sequencer.tick(t)
        if sequencer.awaiting_draw:
            sequencer.flash_drawn(t)
        t += 0.001
    assert len(sequencer.characters) == 1 and sequencer.characters[0].planned.symbol == "A"


# -- the speller screen ---------------------------------------------------------------------
def open_speller(qtbot, **overrides) -> SpellerWindow:
    values = {"repetitions": 1, **FAST, **overrides}
    window = SpellerWindow(
        SpellerSettings(**values), close_when_done=False, markers_source_id=unique_id("speller")
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_flash_markers_carry_the_paint_time_in_order(qtbot):
    window = open_speller(qtbot, text="HI")
    listener = MarkerListener(window.markers.source_id)
    window.start()

    def done() -> bool:
        listener.poll()
        return window.sequencer.phase is SpellerPhase.FINISHED

    qtbot.waitUntil(done, timeout=15_000)
    qtbot.waitUntil(lambda: listener.poll() or len(listener.labels) >= 2 * 12 * 2 + 2)
    window.close()
    flashes = window.sequencer.drawn_flashes()
    assert len(flashes) == 24 and all(f.drawn is not None for f in flashes)
    expected = [label for f in flashes for label in f.flash.labels]
    assert listener.labels == expected  # char:, code<N>, target|nontarget, in order
    stamps = [f.drawn for f in flashes for _ in f.flash.labels]
    assert np.max(np.abs(np.subtract(listener.stamps, stamps))) < 1e-6
    painted = {code: [] for code in range(1, 13)}
    for time, code in window.screen_widget.paint_log:
        if code is not None:
            painted[code].append(time)
    for f in flashes:  # each stamp is the end of a paint that showed that code
        assert min(abs(t - f.drawn) for t in painted[f.flash.code]) < 1e-3
    assert listener.labels.count("target") == 2 * 2
    lateness = window.summary()["flash_draw_lateness_ms"]
    print(f"flash drawn after its planned onset: p50 {lateness['p50']} p99 {lateness['p99']} ms")
    assert lateness["p50"] < 20


def test_decisions_show_and_end_the_flashing_character(qtbot):
    window = open_speller(qtbot, characters=3, repetitions=10)
    run, sequencer = window.run, window.sequencer
    window.start()
    qtbot.waitUntil(lambda: sequencer.phase is SpellerPhase.FLASH, timeout=5_000)
    qtbot.wait(100)
    run.show_decision("Q")  # the decoder is sure of character 1 early: it ends
    assert window.screen_widget.spelled == "Q"
    assert sequencer.characters[0].stopped_after is not None
    assert sequencer.characters[0].stopped_after < 120
    qtbot.waitUntil(
        lambda: sequencer.character_index == 1 and sequencer.phase is SpellerPhase.FLASH
    )
    assert run.stop_character()  # dynamic stopping called directly
    poster = threading.Thread(target=run.post_decision, args=("Z",))  # from another thread
    poster.start()
    poster.join()
    qtbot.waitUntil(lambda: window.screen_widget.spelled == "QZ")
    assert run.early_stops == 2
    window.grab()  # the spelled text is drawn
    assert "QZ" in window.screen_widget.view.spelled
    window.close()
    assert not run.running


# -- the flicker ----------------------------------------------------------------------------
def test_producible_frequencies_and_refusals():
    # 60 Hz / n frames for n = 2..12: the brief's 6 ... 30 Hz, and 60/11 and 60/12 also lie in
    # [5, 30] Hz
    rounded = [round(f, 2) for f in producible_frequencies(60, 5, 30)]
    assert rounded == [5.0, 5.45, 6.0, 6.67, 7.5, 8.57, 10.0, 12.0, 15.0, 20.0, 30.0]
    assert producible_frequencies(60, 5.5, 30)[0] == 6.0
    assert producible_frequencies(60, 6, 30) == pytest.approx(
        [6, 60 / 9, 7.5, 60 / 7, 10, 12, 15, 20, 30]
    )
    assert check_frequency(15, 60) == 4 and check_frequency(8.57, 60) == 7
    with pytest.raises(UnproducibleFrequency) as refused:
        check_frequency(13, 60)
    text = str(refused.value)
    assert "13 Hz" in text and "60 Hz" in text and "12 Hz" in text and "15 Hz" in text
    with pytest.raises(UnproducibleFrequency, match=r"12 Hz \(12 frames\) and 13\.09 Hz"):
        check_frequency(13, 144)
    with pytest.raises(UnproducibleFrequency, match="above half the refresh rate"):
        check_frequency(40, 60)
    targets = {t.name: (t.on, t.off) for t in flicker_targets(["12Hz", "15Hz", "rest"], 60)}
    assert targets == {"12Hz": (3, 2), "15Hz": (2, 2)}


def test_flicker_frames_follow_the_frame_counter(qtbot):
    screen = FlickerScreen(flicker_targets(["12Hz", "15Hz", "20Hz"], 60), 60.0)
    qtbot.addWidget(screen)
    screen.resize(600, 500)
    screen.show()
    qtbot.waitExposed(screen)
    screen.on_frame = lambda now: FlickerView(stimulating=screen.frame >= 5)
    screen.start_frames()
    qtbot.waitUntil(lambda: len(screen.frame_log) >= 65, timeout=10_000)
    screen.stop_frames()
    log = list(screen.frame_log)
    assert screen.frame_source == "timer" and "no vsync" in screen.frame_note
    assert [r.frame for r in log] == list(range(log[0].frame, log[0].frame + len(log)))
    stim = [r for r in log if r.stimulation_frame is not None][:60]
    assert [r.stimulation_frame for r in stim] == list(range(60))
    assert [r.lit[1] for r in stim] == [True, True, False, False] * 15  # 15 Hz: 2 on, 2 off
    assert [r.lit[0] for r in stim] == [True, True, True, False, False] * 12  # 12 Hz: 3/2
    assert [r.lit[2] for r in stim] == [True, True, False] * 20  # 20 Hz: 2/1
    intervals = screen.frame_intervals() * 1e3
    print(f"frame interval p50 {np.median(intervals):.2f} ms, max {intervals.max():.2f} ms")
    assert 14 < np.median(intervals) < 20  # paced at the 60 Hz period, no vsync offscreen


def test_flicker_cue_stamps_the_class_at_the_first_stimulation_frame(qtbot):
    timings = Timings(fixation_s=0.1, imagery_s=0.2, rest_min_s=0.1, rest_max_s=0.1)
    window = FlickerWindow(["15Hz", "20Hz", "rest"], 60.0, 1, timings, close_when_done=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    listener = MarkerListener(window.markers.source_id)
    window.start()

    def done() -> bool:
        listener.poll()
        return window.summary()["finished"] and len(listener.labels) >= 3

    qtbot.waitUntil(done, timeout=15_000)
    window.close()
    assert Counter(listener.labels) == Counter(["15Hz", "20Hz", "rest"])
    firsts = [r.time for r in window.screen_widget.frame_log if r.stimulation_frame == 0]
    assert len(firsts) == 3
    assert np.max(np.abs(np.subtract(listener.stamps, firsts))) < 1e-3
    stimulated = Counter(
        r.lit for r in window.screen_widget.frame_log if r.stimulation_frame is not None
    )
    assert sum(stimulated.values()) == pytest.approx(3 * 0.2 * 60, abs=6)  # 0.2 s x 3 trials


# -- the command line -----------------------------------------------------------------------
def run_cli(*args: str, env: dict | None = None, wrapper: tuple[str, ...] = ()) -> dict:
    result = subprocess.run(
        [*wrapper, sys.executable, "-m", "bci_app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_png(path: Path) -> None:
    image = QtGui.QImage(str(path))
    assert not image.isNull() and image.width() >= 400 and image.height() >= 300


def test_cli_speller_screenshot(tmp_path):
    out = tmp_path / "speller.png"
    summary = run_cli(
        "speller", "--copy", "BCI", "--repetitions", "2", "--pause", "0.1",
        "--duration", "0.8", "--screenshot", str(out), "--json",
    )  # fmt: skip
    assert_png(out)
    assert summary["mode"] == "copy" and summary["flashes"] > 0
    assert summary["markers_sent"] >= summary["flashes"] * 2


def test_cli_flicker_screenshot(tmp_path):
    out = tmp_path / "flicker.png"
    summary = run_cli(
        "flicker", "--classes", "12Hz", "15Hz", "20Hz", "rest", "--refresh", "60",
        "--cue", "0.2", "--stimulation", "0.5", "--duration", "1.0", "--screenshot", str(out),
        "--json",
    )  # fmt: skip
    assert_png(out)
    assert summary["frame_source"] == "timer"
    assert summary["targets"]["15Hz"] == {"frequency_hz": 15.0, "frames_on": 2, "frames_off": 2}
    assert summary["frames"] > 30


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs Xvfb (xvfb-run)")
def test_cli_flicker_on_x11_measures_whether_swaps_wait_for_vsync(tmp_path):
    """Under Xvfb there is OpenGL but no vsync: the probe sees it and falls back to a raster
    canvas on the timer (a display whose swaps wait for its refresh keeps vsync)."""
    out = tmp_path / "flicker-x11.png"
    summary = run_cli(
        "flicker", "--classes", "15Hz", "rest", "--refresh", "60", "--duration", "1.2",
        "--screenshot", str(out), "--json",
        env={"QT_QPA_PLATFORM": "xcb"}, wrapper=("xvfb-run", "-a"),
    )  # fmt: skip
    assert_png(out)
    print(summary["frame_note"])
    assert summary["frame_source"] in ("vsync", "timer")
    if summary["frame_source"] == "timer":
        assert "swaps do not wait" in summary["frame_note"]
    assert 14 < summary["frame_interval_ms"]["p50"] < 20


def test_cli_refuses_frequencies_and_a_missing_decision_stream(qtbot, tmp_path, capsys):
    assert main(["flicker", "--classes", "13Hz", "15Hz", "--refresh", "60"]) == 2
    err = capsys.readouterr().err
    assert "13 Hz cannot flicker on a 60 Hz display" in err and "12 Hz" in err
    config = tmp_path / "config.yaml"
    config.write_text("stream:\n  resolve_timeout: 0.3\n")
    code = main(["speller", "--free", "--attach", "no-such-worker", "--config", str(config)])
    assert code == 2
    assert "'no-such-worker-characters'" in capsys.readouterr().err
    assert main(["speller", "--copy", "ÄB"]) == 2
    assert "not in the speller matrix" in capsys.readouterr().err
