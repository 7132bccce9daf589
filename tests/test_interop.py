"""Interop with a peer LSL toolkit (mne-lsl): it reads our replay outlets, and its player is a
valid source for our pipeline."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import SHARED_DATA, unique_id

from bci_app.config import parse_config
from bci_app.io import load_recording
from bci_app.io.session import read_session
from bci_app.nn.checkpoint import DEFAULT_MODEL_DIR
from bci_app.pipeline import Pipeline
from bci_app.sources.replay import Replayer

mne_lsl = pytest.importorskip("mne_lsl")

R06_XDF = SHARED_DATA / "xdf" / "S001R06-labrecorder.xdf"
R06_EDF = SHARED_DATA / "eegmmidb" / "S001" / "S001R06.edf"
EEGMMIDB_MODEL = DEFAULT_MODEL_DIR.parent / "eegmmidb-s001-hands-feet"


def test_mne_lsl_stream_reads_our_replay_outlets():
    from mne_lsl.stream import StreamLSL

    session = read_session(R06_XDF)
    eeg = next(s for s in session.streams if s.type == "EEG")
    replayer = Replayer(session, speed=4.0, wait_for_consumers=10.0)
    stream = StreamLSL(bufsize=2.0, source_id=replayer.source_id_of(eeg.name))
    stream.connect(timeout=5.0)
    try:
        assert stream.info["sfreq"] == 160.0
        assert stream.ch_names == [c["label"] for c in eeg.channels]
        assert set(stream.get_channel_types()) == {"eeg"}
        assert {int(ch["unit_mul"]) for ch in stream.info["chs"]} == {-6}  # microvolts
        with replayer:
            time.sleep(1.5)
            data, stamps = stream.get_data(winsize=1.0)
    finally:
        stream.disconnect()
    # StreamLSL keeps the stream's microvolts (unit V, multiplier 1e-6): the file's samples.
    values = data.T
    matches = np.flatnonzero(np.all(eeg.values == values[0], axis=1))
    assert matches.size == 1
    first = int(matches[0])
    assert values.shape == (160, 64)
    np.testing.assert_array_equal(values, eeg.values[first : first + 160])
    np.testing.assert_allclose(np.diff(stamps), 1 / 160 / 4.0, atol=1e-5)


def test_mne_lsl_player_is_a_source_for_our_pipeline():
    from mne_lsl.player import PlayerLSL

    source_id = unique_id("player")
    player = PlayerLSL(R06_EDF, chunk_size=16, source_id=source_id, annotations=False)
    player.start()
    config = parse_config(
        {
            "stream": {"source_id": source_id},
            "outlets": {"enabled": False},
            "model": {"device": "cpu"},
        }
    )
    predictions = []
    try:
        pipeline = Pipeline(config, with_model=True, model_path=EEGMMIDB_MODEL)
        pipeline.add_prediction_sink(predictions.append)
        with pipeline:
            description = pipeline.description
            deadline = time.monotonic() + 15.0
            while len(predictions) < 8 and time.monotonic() < deadline:
                time.sleep(0.1)
            status = pipeline.status()
    finally:
        player.stop()
    labels = load_recording(R06_EDF).labels
    assert description.rate_hz == 160.0 and len(description.channels) == 64
    assert [c.label.rstrip(".").lower() for c in description.channels] == [
        label.lower() for label in labels
    ]
    assert status.stream.state.value == "live"
    assert status.stream.gaps == 0 and status.flagged_windows == 0
    assert len(predictions) >= 8
    assert all(p.class_name in ("hands", "feet") for p in predictions)
    assert all(abs(float(p.probabilities.sum()) - 1) < 1e-4 for p in predictions)
