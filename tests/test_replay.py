"""Replay of recordings as LSL outlets: real XDF/EDF files, real outlets, real inlets."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
from conftest import SHARED_DATA
from xdf_files import synthetic_xdf_streams, write_xdf

from bci_app.config import HealthConfig, StreamConfig
from bci_app.io import RecordingError, load_recording
from bci_app.io.session import ReplaySession, ReplayStream, read_session
from bci_app.sources.replay import LOOP_GAP_S, Replayer
from bci_app.stream.inlet import InletThread

XDF_EEG = "EEGMMIDB-S001"
XDF_MARKERS = "EEGMMIDB-S001-Markers"


@pytest.fixture(scope="module")
def r06_xdf():
    path = SHARED_DATA / "xdf" / "S001R06-labrecorder.xdf"
    if not path.is_file():
        pytest.fail(f"the shared recording is expected at {path}")
    return path


@pytest.fixture(scope="module")
def r06_session(r06_xdf) -> ReplaySession:
    return read_session(r06_xdf)


def open_inlet(source_id: str) -> pylsl.StreamInlet:
    infos = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
    assert infos, f"replay outlet {source_id} not visible"
    inlet = pylsl.StreamInlet(infos[0], max_buflen=30)
    inlet.open_stream(timeout=5.0)
    return inlet


def pull_for(inlet: pylsl.StreamInlet, seconds: float) -> tuple[list, np.ndarray, np.ndarray]:
    """Samples, stamps and receipt times (local clock) pulled for ``seconds``."""
    samples, stamps, receipts = [], [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sample, stamp = inlet.pull_sample(timeout=0.05)
        if stamp is None:
            continue
        more, more_stamps = inlet.pull_chunk(timeout=0.0)
        now = pylsl.local_clock()  # after the drain: every sample pulled had arrived by now
        for s, t in zip([sample, *more], [stamp, *more_stamps], strict=True):
            samples.append(s)
            stamps.append(t)
            receipts.append(now)
    return samples, np.asarray(stamps), np.asarray(receipts)


def labels_of(info: pylsl.StreamInfo) -> list[str]:
    channel = info.desc().child("channels").child("channel")
    labels = []
    while not channel.empty():
        labels.append(channel.child_value("label"))
        channel = channel.next_sibling()
    return labels


def test_reads_every_xdf_stream_with_its_description(r06_session):
    streams = {s.name: s for s in r06_session.streams}
    assert set(streams) == {XDF_EEG, XDF_MARKERS}
    eeg, markers = streams[XDF_EEG], streams[XDF_MARKERS]
    assert (eeg.type, eeg.channel_format, eeg.rate_hz, eeg.n_channels) == (
        "EEG",
        "float32",
        160.0,
        64,
    )
    assert eeg.values.shape == (20000, 64)
    assert markers.is_string and markers.rate_hz == 0 and markers.n_samples == 30
    assert {m[0] for m in markers.values} == {"T0", "T1", "T2"}
    assert r06_session.duration_s == pytest.approx(125.0, abs=0.01)


def test_xdf_replay_keeps_data_labels_markers_and_relative_timing(r06_xdf, r06_session):
    replayer = Replayer(r06_session, speed=8.0, start_s=3.0, wait_for_consumers=5.0)
    eeg_inlet = open_inlet(replayer.source_id_of(XDF_EEG))
    marker_inlet = open_inlet(replayer.source_id_of(XDF_MARKERS))
    info = eeg_inlet.info()
    assert (info.name(), info.type(), info.channel_count(), info.nominal_srate()) == (
        XDF_EEG,
        "EEG",
        64,
        160.0,
    )
    assert labels_of(info) == [c["label"] for c in r06_session.streams[1].channels]
    assert labels_of(info)[:3] == ["Fc5", "Fc3", "Fc1"]
    assert marker_inlet.info().channel_format() == pylsl.cf_string
    with replayer:
        samples, stamps, receipts = pull_for(eeg_inlet, 2.5)
        markers, marker_stamps = marker_inlet.pull_chunk(timeout=0.0)
    eeg = next(s for s in r06_session.streams if s.name == XDF_EEG)
    first = int(np.searchsorted(eeg.timestamps, r06_session.origin + 3.0))
    got = np.asarray(samples, dtype=np.float32)
    assert len(got) > 2 * 160 * 8 * 0.8
    np.testing.assert_array_equal(got, eeg.values[first : first + len(got)])  # exact, in order
    # Stamped with the sample's own (mapped) time, which is never ahead of its receipt.
    file_steps = np.diff(eeg.timestamps[first : first + len(got)]) / 8.0
    np.testing.assert_allclose(np.diff(stamps), file_steps, atol=1e-6)
    assert np.all(receipts >= stamps)
    # Markers: labels, and their offset to the EEG as in the file.
    file_markers = next(s for s in r06_session.streams if s.name == XDF_MARKERS)
    assert markers, "no marker replayed within the window"
    for label, stamp in zip(markers, marker_stamps, strict=True):
        file_time = eeg.timestamps[first] + (stamp - stamps[0]) * 8.0
        j = int(np.argmin(np.abs(file_markers.timestamps - file_time)))
        assert abs(file_markers.timestamps[j] - file_time) < 1e-4
        assert file_markers.values[j] == label


def test_edf_replay_has_microvolt_eeg_and_annotation_markers(shared_data):
    path = shared_data / "eegmmidb" / "S001" / "S001R04.edf"
    session = read_session(path)
    recording = load_recording(path)
    eeg, markers = session.streams
    assert eeg.name == "S001R04" and markers.name == "S001R04-markers"
    assert [c["unit"] for c in eeg.channels] == ["microvolts"] * 64
    replayer = Replayer(session, speed=10.0, wait_for_consumers=5.0)
    eeg_inlet = open_inlet(replayer.source_id_of(eeg.name))
    marker_inlet = open_inlet(replayer.source_id_of(markers.name))
    assert labels_of(eeg_inlet.info()) == list(recording.labels)
    with replayer:
        samples, stamps, _ = pull_for(eeg_inlet, 1.5)
        labels, marker_stamps = marker_inlet.pull_chunk(timeout=0.0)
    np.testing.assert_array_equal(np.asarray(samples, np.float32), recording.data[: len(samples)])
    assert [label[0] for label in labels] == [e[1] for e in recording.events[: len(labels)]]
    # A marker is stamped with the time of its event's sample.
    for (sample, _), stamp in zip(recording.events, marker_stamps, strict=False):
        assert stamp == pytest.approx(stamps[0] + sample / 160.0 / 10.0, abs=1e-6)


def tiny_session(seconds: float = 1.0, rate: float = 100.0) -> ReplaySession:
    n = round(seconds * rate)
    values = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    times = 50.0 + np.arange(n) / rate
    stream = ReplayStream(
        "tiny", "EEG", "float32", rate, "tiny", values, times,
        channels=({"label": "C3", "unit": "microvolts", "type": "EEG"},
                  {"label": "C4", "unit": "microvolts", "type": "EEG"}),
    )  # fmt: skip
    return ReplaySession("tiny", (stream,), float(times[0]), float(times[-1]) + 1 / rate)


def test_loop_boundary_is_a_gap_the_inlet_flags():
    replayer = Replayer(tiny_session(0.6), loop=True, wait_for_consumers=5.0)
    inlet = InletThread(
        StreamConfig(source_id=replayer.source_id_of("tiny")), HealthConfig(), ring_seconds=10.0
    )
    inlet.connect()
    inlet.start()
    try:
        with replayer:
            deadline = time.monotonic() + 10.0
            while replayer.passes < 3 and time.monotonic() < deadline:
                time.sleep(0.05)  # passes counts loop boundaries: 3 = a fourth pass begins
            health = inlet.health()
    finally:
        inlet.stop()
    assert replayer.passes >= 3
    assert health.state.value == "live"  # the short loop pause does not look like a lost stream
    assert health.gaps >= 2  # one per loop boundary, never stitched
    assert health.samples >= 3 * 60
    ring = inlet.ring
    stamps = np.zeros(ring.written)
    ring.read_into(0, ring.written, np.zeros((ring.written, 2), np.float32), stamps)
    steps = np.diff(stamps)
    assert np.sum(steps > LOOP_GAP_S) >= 2


def test_speed_scales_the_stamps():
    replayer = Replayer(tiny_session(2.0), speed=4.0, wait_for_consumers=5.0)
    inlet = open_inlet(replayer.source_id_of("tiny"))
    with replayer:
        replayer.wait(5.0)
        samples, stamps = inlet.pull_chunk(timeout=0.5, max_samples=1000)
    assert len(samples) == 200
    np.testing.assert_allclose(np.diff(stamps), 0.01 / 4.0, atol=1e-6)
    assert max(replayer.lateness) < 0.05


def test_stream_selection_and_bad_arguments(r06_xdf, r06_session):
    only = read_session(r06_xdf, streams=[XDF_EEG])
    assert [s.name for s in only.streams] == [XDF_EEG]
    with pytest.raises(RecordingError, match="no stream named 'EEG'.*EEGMMIDB-S001"):
        read_session(r06_xdf, streams=["EEG"])
    with pytest.raises(RecordingError, match="nothing to replay"):
        read_session(r06_xdf, streams=[XDF_MARKERS])
    with pytest.raises(ValueError, match="speed"):
        Replayer(r06_session, speed=0)
    with pytest.raises(ValueError, match=r"outside the recording.*pass a --start below"):
        Replayer(r06_session, start_s=500.0)
    with pytest.raises(ValueError, match=r"outside the recording.*pass a --start at least 0"):
        Replayer(r06_session, start_s=-5.0)


def test_missing_truncated_and_corrupt_files_are_refused(tmp_path, r06_xdf):
    with pytest.raises(RecordingError, match="does not exist"):
        read_session(tmp_path / "nope.xdf")
    truncated = tmp_path / "truncated.xdf"
    truncated.write_bytes(r06_xdf.read_bytes()[: r06_xdf.stat().st_size // 2])
    with pytest.raises(RecordingError, match=r"no footer.*Refused \(--strict\)"):
        read_session(truncated, strict=True)
    partial = read_session(truncated)  # every intact chunk, the damage named per stream
    assert 55 < partial.duration_s < 70
    assert len(partial.damage) == 2 and all("recovered" in n for n in partial.damage)
    corrupt = tmp_path / "corrupt.xdf"
    corrupt.write_bytes(b"XDF:" + bytes(range(256)) * 20)
    with pytest.raises(RecordingError, match="corrupt"):
        read_session(corrupt)
    not_xdf = tmp_path / "other.xdf"
    not_xdf.write_bytes(b"hello")
    with pytest.raises(RecordingError, match="not an XDF file"):
        read_session(not_xdf)
    bad_edf = tmp_path / "bad.edf"
    bad_edf.write_bytes(b"0       " * 40)
    with pytest.raises(RecordingError, match="cannot be read as EDF"):
        read_session(bad_edf)


def test_the_xdf_formats_own_example_files_load(caplog):
    """libxdf's reader tests (../shared/data/xdf/example-files): a minimal file, a clock reset
    mid-file, and streams declared without samples (the one with data is taken)."""
    folder = SHARED_DATA / "xdf" / "example-files"
    minimal = load_recording(folder / "minimal.xdf")
    assert minimal.data.shape == (9, 3) and minimal.rate_hz == 10.0
    resets = load_recording(folder / "clock_resets.xdf")
    assert resets.data.shape[1] == 8 and resets.data.shape[0] > 20_000
    assert np.all(np.diff(resets.timestamps) > 0)  # synchronised across the reset
    assert np.all(np.isfinite(resets.data))
    with caplog.at_level("WARNING"):
        empty = load_recording(folder / "empty_streams.xdf")
    assert empty.data.shape == (10, 1)
    assert "left out streams without samples: 'Empty data stream" in caplog.text


def test_xdf_without_numeric_stream_is_refused(tmp_path):
    _, markers, _ = synthetic_xdf_streams()
    path = tmp_path / "markers-only.xdf"
    write_xdf(path, [markers])
    with pytest.raises(RecordingError, match="no numeric stream"):
        read_session(path)


def test_replay_cli_prints_streams_progress_and_json(r06_xdf):
    out = subprocess.run(
        [sys.executable, "-m", "bci_app", "replay", str(r06_xdf), "--duration", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"outlet '{XDF_EEG}'" in out.stdout and "bci-app-replay:" in out.stdout
    assert "replay" in out.stderr and "/ 125.00 s" in out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["pushed"][XDF_EEG] == pytest.approx(2 * 160, abs=40)
    assert summary["push_lateness_ms"]["p99"] < 50


def test_replay_cli_error_names_the_problem(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "bci_app", "replay", str(tmp_path / "missing.xdf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "bci-app replay: error:" in out.stderr and "does not exist" in out.stderr
