"""XDF recording with the real LabRecorderCLI over real LSL outlets, read back with pyxdf.

LabRecorderCLI needs ~1 s to start (it resolves the network) and 5-7 s after its start to exit
(its clock-offset thread sleeps 5 s), so a recording costs ~7 s whatever its length: each test
records once, for as short as its checks allow.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
import pyxdf
from conftest import PacedOutlet, unique_id, wait_until

from bci_app.bench.latency import make_checkpoint
from bci_app.cli.record import add_parser, cmd_record, record_selectors
from bci_app.config import OutletsConfig, parse_config
from bci_app.infer.latency import STAGE_NAMES
from bci_app.infer.outlets import (
    OUTLET_SUFFIXES,
    PredictionOutlets,
    outlet_selectors,
    outlet_source_id,
)
from bci_app.io.montage import channel_set
from bci_app.pipeline import Pipeline, pipeline_selectors
from bci_app.record import (
    FLUSH_S,
    RecordError,
    SessionRecorder,
    check_output_path,
    default_input_selectors,
)
from bci_app.sources.simulator import EEGSimulator, SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.stream.selector import SelectorError, StreamSelector

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["left_hand", "right_hand", "feet", "rest"]
RATE = 160.0


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained checkpoint for the simulator's 8 channels at 160 Hz (outlets need only
    predictions and weights of the right shape)."""
    return make_checkpoint(tmp_path_factory.mktemp("record-model") / "model", channel_set(8), RATE)


def fast_cues(source_id: str | None = None) -> SimulatorSettings:
    """8 channels at 160 Hz with a cue every 2 s (first at 0.5 s)."""
    return SimulatorSettings(
        n_channels=8,
        rate_hz=RATE,
        fixation_s=0.5,
        imagery_s=1.0,
        rest_min_s=0.5,
        rest_max_s=0.5,
        source_id=source_id or unique_id("rec-sim"),
    )


def app_config(model: Path, prefix: str):
    return parse_config(
        {
            "simulator": {"channels": 8, "rate": RATE},
            "model": {"device": "cpu", "path": str(model)},
            "outlets": {"name_prefix": prefix, "source_id_prefix": prefix},
        }
    )


def read_xdf(path: Path) -> dict[str, dict]:
    """Streams by source_id, raw timestamps (no clock sync, no dejitter)."""
    streams, _ = pyxdf.load_xdf(str(path), synchronize_clocks=False, dejitter_timestamps=False)
    return {s["info"]["source_id"][0]: s for s in streams}


def channel_labels(stream: dict) -> list[str]:
    channels = stream["info"]["desc"][0]["channels"][0]["channel"]
    return [c["label"][0] for c in channels]


def marker_outlet(source_id: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(
        "test-markers", "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id
    )
    return pylsl.StreamOutlet(info)


# -- selectors, paths, arguments (no LSL) ---------------------------------------------------------
def test_selector_specs_predicates_and_their_errors() -> None:
    selector = StreamSelector.parse("name=My EEG, 2,type=EEG")
    assert (selector.name, selector.type, selector.source_id) == ("My EEG, 2", "EEG", None)
    assert selector.predicate() == "name='My EEG, 2' and type='EEG'"
    assert StreamSelector(name="it's").predicate() == 'name="it\'s"'
    assert StreamSelector.parse("source_id=abc") == StreamSelector(source_id="abc")
    for spec, words in [
        ("", "KEY=VALUE"),
        ("host=lab", "KEY one of name, type, source_id"),
        ("name=a,name=b", "twice"),
        ("type=", "empty value"),
    ]:
        with pytest.raises(SelectorError, match=words):
            StreamSelector.parse(spec)
    with pytest.raises(SelectorError, match="at least one of name, type, source_id"):
        StreamSelector()
    with pytest.raises(SelectorError, match="both ' and \""):
        StreamSelector(name="a'b\"c")
    with pytest.raises(SelectorError, match="control character"):
        StreamSelector(source_id="a\nb")
    with pytest.raises(SelectorError, match="non-empty string"):
        StreamSelector(type=3)  # type: ignore[arg-type]


def test_default_and_app_outlet_selection() -> None:
    outlets = OutletsConfig(name_prefix="app", source_id_prefix="sid", session_id="s1")
    assert [str(s) for s in outlet_selectors(outlets)] == [
        "name=app-predictions,source_id=sid-predictions-s1",
        "name=app-electrode-weights,source_id=sid-electrode-weights-s1",
        "name=app-latency,source_id=sid-latency-s1",
        "name=app-status,source_id=sid-status-s1",
    ]
    # a worker of another process, session unknown: by name
    unknown = OutletsConfig(name_prefix="app", source_id_prefix="sid")
    assert [str(s) for s in outlet_selectors(unknown)][0] == "name=app-predictions"
    selectors = record_selectors(None, True, outlets)
    assert selectors[:2] == default_input_selectors()
    assert selectors[0] == StreamSelector(type="EEG") and selectors[1].optional
    # a P300 worker's decided characters too, when it has them
    assert len(selectors) == 7 and selectors[-1].optional
    assert str(selectors[-1]) == "name=app-characters,source_id=sid-characters-s1 (optional)"
    spelling = outlet_selectors(outlets, characters=True)
    assert len(spelling) == 5 and not spelling[-1].optional
    chosen = [StreamSelector(source_id="x")]
    assert record_selectors(chosen, False, outlets) == chosen
    with pytest.raises(RecordError, match="nothing to record"):
        SessionRecorder("x.xdf", [])
    with pytest.raises(RecordError, match="optional"):
        SessionRecorder("x.xdf", [StreamSelector(type="Markers", optional=True)])


def test_output_path_checks(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"must end in \.xdf.*out\.xdf"):
        check_output_path(tmp_path / "out.txt")
    folder = tmp_path / "dir.xdf"
    folder.mkdir()
    with pytest.raises(RecordError, match="is a folder"):
        check_output_path(folder)
    nested = check_output_path(tmp_path / "new" / "deeper" / "a.xdf")
    assert nested == tmp_path / "new" / "deeper" / "a.xdf" and not nested.parent.exists()
    existing = tmp_path / "old.xdf"
    existing.write_bytes(b"keep me")
    with pytest.raises(RecordError, match="--overwrite"):
        check_output_path(existing)
    assert check_output_path(existing, overwrite=True) == existing
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(RecordError, match="permission denied"):
            check_output_path(locked / "a.xdf")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bci-app")
    add_parser(root.add_subparsers(dest="command"))
    return root


def test_record_arguments() -> None:
    args = parser().parse_args(
        [
            "record",
            "o.xdf",
            "--stream",
            "name=X,type=EEG",
            "--stream",
            "source_id=m",
            "--no-app-outlets",
        ]
    )
    assert args.streams == [StreamSelector(name="X", type="EEG"), StreamSelector(source_id="m")]
    assert args.app_outlets is False and args.duration is None and args.overwrite is False
    assert args.func is cmd_record
    defaults = parser().parse_args(["record", "o.xdf", "--duration", "2.5", "--overwrite"])
    assert defaults.streams is None and defaults.app_outlets is True
    assert defaults.duration == 2.5 and defaults.overwrite and defaults.timeout == 5.0
    for bad in (["--stream", "colour=red"], ["--duration", "0"], ["--timeout", "nan"]):
        with pytest.raises(SystemExit):
            parser().parse_args(["record", "o.xdf", *bad])


# -- errors before recording ---------------------------------------------------------------------
def test_a_missing_stream_fails_with_the_visible_streams_listed(tmp_path: Path) -> None:
    present = unique_id("rec-present")
    outlet = marker_outlet(present)
    missing = unique_id("rec-missing")
    recorder = SessionRecorder(
        tmp_path / "m.xdf",
        [StreamSelector(source_id=present), StreamSelector(source_id=missing)],
        resolve_timeout=1.5,
    )
    with pytest.raises(RecordError) as info:
        recorder.start()
    message = str(info.value)
    assert f"no LSL stream matches source_id={missing}" in message
    assert f"name='test-markers' type='Markers' source_id='{present}'" in message
    assert "--no-app-outlets" in message
    assert recorder.pid is None and not (tmp_path / "m.xdf").exists()
    del outlet


def test_an_existing_file_is_refused_without_overwrite_and_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "taken.xdf"
    out.write_bytes(b"an earlier session")
    with pytest.raises(RecordError, match="already exists; pass --overwrite"):
        SessionRecorder(out, [StreamSelector(source_id=unique_id())])
    args = parser().parse_args(["record", str(out), "--stream", "type=EEG", "--no-app-outlets"])
    with pytest.raises(RecordError, match="--overwrite"):
        cmd_record(args)
    assert out.read_bytes() == b"an earlier session"


# -- recordings ------------------------------------------------------------------------------------
def test_exactly_the_pushed_samples_and_markers_are_recorded(tmp_path: Path) -> None:
    """Nothing is pushed before start() returns and everything is pushed before stop(): the file
    holds exactly those samples (values and timestamps) and markers. Also: an existing file is
    replaced with overwrite=True, and a missing folder is created."""
    eeg_id, markers_id = unique_id("rec-eeg"), unique_id("rec-mk")
    outlet = PacedOutlet(
        eeg_id, n_channels=4, rate=250.0, chunk=10, labels=["C3", "Cz", "C4", "Pz"]
    )
    markers = marker_outlet(markers_id)
    out = tmp_path / "sessions" / "today" / "exact.xdf"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"old")
    selectors = [StreamSelector(source_id=eeg_id), StreamSelector(source_id=markers_id)]
    with SessionRecorder(out, selectors, overwrite=True) as recorder:
        assert recorder.running
        assert [s.source_id for s in recorder.streams] == [eeg_id, markers_id]
        labels = []
        for k in range(3):
            outlet.push(10)  # 100 samples, paced at 250 Hz
            labels.append(f"cue-{k}")
            markers.push_sample([labels[-1]], pylsl.local_clock())
    result = recorder.result
    assert result is not None and result.ok, result
    assert result.size_bytes == out.stat().st_size > 1000
    assert f"recorded 2 streams to {out}: {result.size_bytes} bytes" in result.summary()

    streams = read_xdf(out)
    eeg = streams[eeg_id]
    assert eeg["time_series"].shape == (300, 4)
    expected, stamps = outlet.make_chunk(0, 300)
    np.testing.assert_array_equal(eeg["time_series"], expected)
    np.testing.assert_allclose(eeg["time_stamps"], stamps, rtol=0, atol=1e-9)
    assert channel_labels(eeg) == ["C3", "Cz", "C4", "Pz"]
    assert [m[0] for m in streams[markers_id]["time_series"]] == labels
    outlet.stop()


def test_record_duration_writes_that_many_seconds(tmp_path: Path) -> None:
    """``record --duration 3`` holds 3 s of EEG (within one LabRecorder pull, 0.5 s); it held
    4 s when the last flush came after the duration."""
    eeg_id = unique_id("rec-dur")
    outlet = PacedOutlet(eeg_id, n_channels=4, rate=250.0, chunk=10).start()
    out = tmp_path / "three.xdf"
    args = parser().parse_args(
        ["record", str(out), "--stream", f"source_id={eeg_id}", "--no-app-outlets"]
        + ["--duration", "3"]
    )
    try:
        assert cmd_record(args) == 0
    finally:
        outlet.stop()
    stamps = read_xdf(out)[eeg_id]["time_stamps"]
    span = stamps[-1] - stamps[0] + 1 / 250.0
    assert abs(span - 3.0) <= 0.5, span


def test_records_a_simulated_session_with_markers_and_the_app_outlets(
    tmp_path: Path, small_model: Path
) -> None:
    prefix = unique_id("rec-app")
    config = app_config(small_model, prefix)
    settings = fast_cues()
    sim = SimulatorStream(settings)
    pipeline = Pipeline(config, simulator=sim, with_model=True)
    seen: list[tuple[float, float]] = []  # (local_clock when the sink ran, prediction timestamp)
    pipeline.add_prediction_sink(lambda p: seen.append((pylsl.local_clock(), p.timestamp)))
    out = tmp_path / "session.xdf"
    with pipeline:
        selectors = pipeline_selectors(pipeline)
        assert len(selectors) == 6 and not any(s.optional for s in selectors)
        recorder = SessionRecorder(out, selectors)
        recorder.start()
        started_at, first_index = pylsl.local_clock(), sim.next_sample_index
        markers_before = sim.markers_pushed
        assert wait_until(
            lambda: (
                sim.markers_pushed > markers_before
                and sum(t > started_at + 0.1 for t, _ in seen) >= 3
            ),
            timeout=8.0,
        ), "no cue or prediction while recording"
        stop_at, last_index = pylsl.local_clock(), sim.next_sample_index
        result = recorder.stop()
    assert result.ok, result.error
    streams = read_xdf(out)
    assert set(streams) == {s.source_id for s in selectors}

    # EEG: a gapless run of the simulator's samples, bit-identical, covering the whole window.
    eeg = streams[sim.source_id]
    index = np.round((eeg["time_stamps"] - sim.t0) * RATE).astype(np.int64)
    np.testing.assert_array_equal(index, np.arange(index[0], index[0] + index.size))
    assert index[0] <= first_index and index[-1] + 1 >= last_index
    reference = EEGSimulator(settings).generate(int(index[-1]) + 1)[index[0] :]
    np.testing.assert_array_equal(eeg["time_series"], reference)
    assert channel_labels(eeg) == list(sim.labels)

    # Markers: exactly the schedule's cues inside the recorded samples, with their labels.
    recorded = streams[sim.marker_source_id]
    cues = sim.schedule.cues_between(int(index[0]), int(index[-1]) + 1)
    assert cues, "the recording should contain a cue"
    assert [m[0] for m in recorded["time_series"]] == [name for _, name in cues]
    np.testing.assert_allclose(
        recorded["time_stamps"], [sim.timestamp_of(c) for c, _ in cues], rtol=0, atol=1e-9
    )

    # App outlets: every decision made while recording, in all three streams.
    inside = {ts for t, ts in seen if started_at + 0.1 < t < stop_at}
    predictions = streams[outlet_source_id(pipeline.config.outlets, "predictions")]
    weights = streams[outlet_source_id(pipeline.config.outlets, "electrode-weights")]
    latency = streams[outlet_source_id(pipeline.config.outlets, "latency")]
    for stream in (predictions, weights, latency):
        assert inside <= set(stream["time_stamps"].tolist())
    assert predictions["time_series"].shape[1] == len(CLASSES) + 1
    assert channel_labels(predictions) == [*CLASSES, "class_index"]
    assert channel_labels(weights) == list(channel_set(8))
    assert channel_labels(latency) == list(STAGE_NAMES)
    np.testing.assert_allclose(predictions["time_series"][:, :-1].sum(axis=1), 1.0, atol=1e-5)


def test_a_dying_recorder_is_reported_not_raised_and_the_file_kept(tmp_path: Path) -> None:
    source_id = unique_id("rec-die")
    outlet = PacedOutlet(source_id, n_channels=64, rate=500.0, chunk=25)  # 128 kB/s
    out = tmp_path / "killed.xdf"
    recorder = SessionRecorder(out, [StreamSelector(source_id=source_id)])
    recorder.start()
    outlet.start()
    watched: list[object] = []  # what another thread saw: running flags, or an exception

    def watch() -> None:
        try:
            while recorder.running:
                time.sleep(0.01)
            watched.append(recorder.error)
        except BaseException as exc:  # the test asserts there is none
            watched.append(exc)

    watcher = threading.Thread(target=watch, name="test-watch")
    watcher.start()
    # LabRecorder writes in 8 kB blocks: wait for several, so whole sample chunks are on disk.
    assert wait_until(lambda: recorder.size_bytes > 50_000, timeout=5.0)
    os.kill(recorder.pid, signal.SIGKILL)
    watcher.join(2.0)
    outlet.stop()
    assert not watcher.is_alive()
    assert len(watched) == 1 and isinstance(watched[0], str), watched
    assert "LabRecorderCLI was killed by signal SIGKILL unexpectedly" in watched[0]
    assert f"the file stays at {out}" in watched[0]
    assert not recorder.running and recorder.finished
    result = recorder.stop()  # no exception, the same report
    assert result.error == watched[0] and result.returncode == -signal.SIGKILL
    assert out.stat().st_size == result.size_bytes > 0
    (stream,) = pyxdf.load_xdf(str(out), synchronize_clocks=False)[0]
    assert stream["time_series"].shape[1] == 64 and len(stream["time_series"]) > 0


@pytest.mark.slow
def test_cli_records_until_ctrl_c_in_its_terminal(tmp_path: Path) -> None:
    """`bci-app record` in its own process group gets Ctrl+C (SIGINT to the whole group, as a
    terminal sends it): LabRecorderCLI must not die with it, and the file must be complete."""
    prefix = unique_id("rec-cli")
    eeg_id, markers_id = unique_id("rec-cli-eeg"), unique_id("rec-cli-mk")
    outlet = PacedOutlet(eeg_id, n_channels=4, rate=250.0, chunk=10).start()
    markers = marker_outlet(markers_id)
    app = PredictionOutlets(
        OutletsConfig(name_prefix=prefix, source_id_prefix=prefix), CLASSES, ["C3", "Cz", "C4"]
    )
    config = tmp_path / "config.yaml"
    config.write_text(f"outlets:\n  name_prefix: {prefix}\n  source_id_prefix: {prefix}\n")
    out = tmp_path / "cli.xdf"
    code = (
        "import argparse, sys\n"
        "from bci_app.cli.record import add_parser\n"
        "p = argparse.ArgumentParser(prog='bci-app')\n"
        "add_parser(p.add_subparsers(dest='command'))\n"
        "a = p.parse_args(sys.argv[1:])\n"
        "sys.exit(a.func(a))\n"
    )
    args = [
        "record",
        str(out),
        "--stream",
        f"source_id={eeg_id}",
        "--stream",
        f"source_id={markers_id}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"recording 6 streams to {out}"), first + proc.stderr.read()
        for k in range(4):
            markers.push_sample([f"cli-{k}"])
            app.push_decision(pylsl.local_clock(), np.full(4, 0.25), np.ones(3) / 3)
            app.push_latency(pylsl.local_clock(), dict.fromkeys(STAGE_NAMES, 1.0))
            app.push_status({"trial": k})
            time.sleep(0.1)
        time.sleep(FLUSH_S)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        outlet.stop()
    assert proc.returncode == 0, stderr
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"recorded 6 streams to {out}: {out.stat().st_size} bytes"), stdout
    streams = read_xdf(out)
    assert set(streams) == {
        eeg_id,
        markers_id,
        f"{prefix}-predictions",
        f"{prefix}-electrode-weights",
        f"{prefix}-latency",
        f"{prefix}-status",
    }
    assert len(streams[eeg_id]["time_stamps"]) > 100
    assert [m[0] for m in streams[markers_id]["time_series"]] == [f"cli-{k}" for k in range(4)]
    assert len(streams[f"{prefix}-predictions"]["time_stamps"]) == 4
    assert len(streams[f"{prefix}-latency"]["time_stamps"]) == 4


# -- GUI -------------------------------------------------------------------------------------------
def open_recording_window(qtbot, model: Path):
    from bci_app.gui.window import MainWindow

    prefix = unique_id("rec-gui")
    config = app_config(model, prefix)
    pipeline = Pipeline(config, simulator=SimulatorStream(fast_cues()), with_model=True)
    window = MainWindow(config, pipeline)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.running and window.record_action.isEnabled(), timeout=20_000)
    return window, pipeline, prefix


def test_gui_record_action_starts_and_stops_a_recording(qtbot, tmp_path: Path, small_model: Path):
    window, pipeline, prefix = open_recording_window(qtbot, small_model)
    assert window.record_action.isCheckable() and not window.record_action.isChecked()
    assert window.record_action.shortcut().toString() == "Ctrl+Shift+R"

    taken = tmp_path / "taken.xdf"
    taken.write_bytes(b"earlier")
    assert not window.start_recording(taken)  # refused at once, shown, app keeps running
    assert "--overwrite" in window.banner_text() and taken.read_bytes() == b"earlier"
    assert not window.record_action.isChecked() and window.running
    window.dismiss_error()

    out = tmp_path / "gui.xdf"
    assert window.start_recording(out)
    qtbot.waitUntil(lambda: window.recording_state == "recording", timeout=15_000)
    assert window.record_action.isChecked()
    qtbot.waitUntil(lambda: "recording → gui.xdf" in window.record.label.text(), timeout=2_000)
    feed_before = len(window.feed.since(0.0))
    qtbot.waitUntil(lambda: len(window.feed.since(0.0)) >= feed_before + 2, timeout=5_000)
    window.record_action.trigger()  # the user unticks Record…
    assert window.recording_state == "stopping" and not window.record_action.isChecked()
    qtbot.waitUntil(lambda: window.recording_state == "idle", timeout=15_000)
    result = window.record.last_result
    assert result is not None and result.ok, result
    assert window.record.label.text().startswith("recorded → gui.xdf")
    assert window.banner_text() == ""
    streams = read_xdf(out)
    sim = pipeline.simulator
    assert set(streams) == {
        sim.source_id,
        sim.marker_source_id,
        *(outlet_source_id(pipeline.config.outlets, suffix) for suffix in OUTLET_SUFFIXES),
    }
    assert len(streams[sim.source_id]["time_stamps"]) > RATE
    predictions = streams[outlet_source_id(pipeline.config.outlets, "predictions")]
    assert len(predictions["time_stamps"]) >= 2
    assert window.running


def test_closing_the_window_while_recording_stops_it(qtbot, tmp_path: Path, small_model: Path):
    window, pipeline, prefix = open_recording_window(qtbot, small_model)
    out = tmp_path / "closed.xdf"
    assert window.start_recording(out)
    qtbot.waitUntil(lambda: window.recording_state == "recording", timeout=15_000)
    recorder = window.record.recorder
    qtbot.wait(500)

    started = time.monotonic()
    window.close()
    assert time.monotonic() - started < 2.0
    assert wait_until(
        lambda: (
            not {t.name for t in threading.enumerate()}
            & {"bci-inlet", "bci-dsp", "bci-infer", "bci-gui-record"}
        ),
        timeout=2.0 - (time.monotonic() - started),
    )
    # LabRecorderCLI finishes the file in its own process, within seconds.
    assert wait_until(lambda: recorder.finished, timeout=12.0)
    assert recorder.result.ok, recorder.result.error
    streams = read_xdf(out)
    assert pipeline.simulator.source_id in streams
    assert outlet_source_id(pipeline.config.outlets, "latency") in streams
    assert len(streams[pipeline.simulator.source_id]["time_stamps"]) > 0
