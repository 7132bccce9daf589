"""``bci-app board``: BrainFlow's synthetic board as LSL outlets (real BrainFlow, real LSL), end
to end through the pipeline, and the errors a user meets with a real board."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
import yaml
from conftest import REPO, last_json, run_cli, unique_id

from bci_app.config import parse_config
from bci_app.sources.board import BoardSettings, BoardStream, describe_board

SYNTHETIC = describe_board("synthetic")


def resolve_one(name: str, timeout: float = 5.0) -> pylsl.StreamInfo:
    found = pylsl.resolve_byprop("name", name, timeout=timeout)
    assert len(found) == 1, f"expected one stream named {name!r}, found {len(found)}"
    return found[0]


def channel_desc(info: pylsl.StreamInfo) -> list[tuple[str, str, str]]:
    """(label, unit, type) of every channel in a full stream description."""
    out = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        out.append(
            tuple(channel.child_value(key) for key in ("label", "unit", "type"))  # type: ignore[arg-type]
        )
        channel = channel.next_sibling()
    return out


def test_synthetic_board_outlet_carries_its_description_and_timed_samples():
    name = unique_id("board")
    with BoardStream(BoardSettings(board="synthetic", name=name)) as board:
        inlet = pylsl.StreamInlet(resolve_one(name))
        info = inlet.info(timeout=5.0)
        assert info.type() == "EEG" and info.channel_format() == pylsl.cf_float32
        assert info.channel_count() == 16 == len(SYNTHETIC.labels)
        assert info.nominal_srate() == 250.0
        assert info.source_id() == "brainflow-synthetic" == board.source_id
        assert info.desc().child_value("manufacturer") == "BrainFlow synthetic"
        assert channel_desc(info) == [(label, "microvolts", "EEG") for label in SYNTHETIC.labels]
        assert SYNTHETIC.labels[:4] == ("Fz", "C3", "Cz", "C4")

        samples: list[np.ndarray] = []
        stamps: list[float] = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            data, ts = inlet.pull_chunk(timeout=0.2)
            if ts:
                samples.append(np.asarray(data))
                stamps += ts
                # Stamped when BrainFlow read them, so never far behind the LSL clock now.
                assert 0.0 <= pylsl.local_clock() - ts[-1] < 0.5
        assert board.running and board.error is None
        assert board.stop() is True  # joined within 2 s
    assert 250 <= len(stamps) <= 500  # ~1.5 s at 250 Hz, give or take the connection
    assert np.all(np.diff(stamps) >= 0)
    # BrainFlow's per-sample stamps moved onto the LSL clock keep the board's rate.
    assert (stamps[-1] - stamps[0]) * 250 == pytest.approx(len(stamps) - 1, rel=0.05)
    assert np.concatenate(samples).shape[1] == 16
    assert board.samples_pushed >= len(stamps)
    # The session was released: the board opens again at once.
    with BoardStream(BoardSettings(board="synthetic", name=unique_id("board"))) as again:
        assert again.running


def test_labels_replace_brainflows_and_their_count_is_checked():
    labels = tuple(f"X{i}" for i in range(16))
    name = unique_id("board")
    with BoardStream(BoardSettings(board="synthetic", name=name, labels=labels)):
        info = pylsl.StreamInlet(resolve_one(name)).info(timeout=5.0)
        assert [label for label, _, _ in channel_desc(info)] == list(labels)
    with pytest.raises(ValueError, match="3 given .* 'synthetic' has 16 EEG channels"):
        BoardSettings(board="synthetic", labels=("A", "B", "C"))


def test_board_names_follow_brainflows_enum():
    assert BoardSettings(board="cyton-daisy").board_id == 2  # BoardIds.CYTON_DAISY_BOARD
    assert BoardSettings(board="CYTON_DAISY_BOARD").board == "cyton-daisy"
    assert BoardSettings(board="muse-s").board == "muse-s"
    wifi = BoardSettings(board="cyton-wifi", ip_address="192.168.4.1")
    assert wifi.source_id == "brainflow-cyton-wifi-192.168.4.1"
    serial = BoardSettings(board="cyton", serial_port="/dev/ttyUSB0")
    assert serial.source_id == "brainflow-cyton-/dev/ttyUSB0"
    assert serial.stream_name == "brainflow-cyton"


def test_marker_channel_arrives_on_the_marker_outlet_at_its_samples_time():
    name = unique_id("board")
    with BoardStream(BoardSettings(board="synthetic", name=name)) as board:
        assert board.marker_stream_name == name + "-markers"
        info = resolve_one(name + "-markers")
        assert info.type() == "Markers" and info.channel_format() == pylsl.cf_string
        assert info.source_id() == "brainflow-synthetic-markers"
        assert info.nominal_srate() == pylsl.IRREGULAR_RATE
        markers = pylsl.StreamInlet(info)
        markers.open_stream(timeout=5.0)
        eeg = pylsl.StreamInlet(resolve_one(name))
        eeg.open_stream(timeout=5.0)
        time.sleep(0.2)  # let the subscriptions settle before the marker is written
        board.insert_marker(3)
        asked = pylsl.local_clock()
        board.insert_marker(2.5)
        sample, stamp = markers.pull_sample(timeout=3.0)
        assert sample == ["3"]
        assert abs(stamp - asked) < 0.1
        sample2, stamp2 = markers.pull_sample(timeout=3.0)
        assert sample2 == ["2.5"] and stamp2 >= stamp
        # The marker's stamp is the stamp of one of the EEG samples.
        _, eeg_stamps = eeg.pull_chunk(timeout=0.5, max_samples=10_000)
        assert np.min(np.abs(np.asarray(eeg_stamps) - stamp)) < 1e-6
        assert markers.pull_sample(timeout=0.3) == (None, None)  # zeros are no markers
        assert board.markers_pushed == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--board", "nope"], ["unknown BrainFlow board 'nope'", "synthetic", "cyton-daisy"]),
        (
            ["--board", "synthetic", "--labels", "A", "B", "C"],
            ["3 given", "16 EEG channels", "Fz, C3, Cz"],
        ),
        (
            ["--board", "cyton", "--serial-port", "/dev/ttyNOPE"],
            ["cannot open board 'cyton' on serial port /dev/ttyNOPE", "--serial-port"],
        ),
    ],
    ids=["unknown-board", "labels-count", "missing-port"],
)
def test_user_errors_name_the_problem(args, expected):
    started = time.monotonic()
    result = run_cli("board", *args, "--duration", "30", timeout=30)
    assert result.returncode == 2, result.stderr
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 20  # fails fast, never waits for the duration


def write_config(path, stream_name: str) -> None:
    """A config that trains on the simulator at the synthetic board's rate and electrodes, and
    reads the board's stream by name."""
    config = {
        "stream": {
            "name": stream_name,
            "type": "EEG",
            "resolve_timeout": 15.0,
            "expected_rate": SYNTHETIC.rate_hz,
            "expected_channels": len(SYNTHETIC.labels),
        },
        "simulator": {
            "channels": 64,
            "rate": SYNTHETIC.rate_hz,
            "classes": ["left_hand", "right_hand"],
        },
        "channels": {"pick": list(SYNTHETIC.labels)},
        "model": {"device": "cpu"},
        "scheduling": {"realtime_priority": None},
        "outlets": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    parse_config(config)  # valid before any process is started


@pytest.mark.slow
def test_synthetic_board_drives_the_pipeline_to_predictions(tmp_path):
    from bci_app.sources.simulator import SimulatorSettings
    from bci_app.train.commands import simulated_recording, train_command

    name = unique_id("board")
    config_path = tmp_path / "board.yaml"
    write_config(config_path, name)
    config = parse_config(yaml.safe_load(config_path.read_text()))
    model = tmp_path / "model"
    recording = simulated_recording(SimulatorSettings.from_config(config), 100.0)
    train_command(
        [recording], ["left_hand", "right_hand"], model, config, decoder="csp-lda", progress=False
    )

    board = subprocess.Popen(
        [sys.executable, "-m", "bci_app", "board", "--board", "synthetic", "--name", name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run = run_cli(
            "run", "--headless", "--config", str(config_path), "--model", str(model),
            "--duration", "5", timeout=90,
        )  # fmt: skip
    finally:
        board.send_signal(signal.SIGINT)
        board_out, board_err = board.communicate(timeout=10)
    assert board.returncode == 0, board_err
    assert "streaming 16 EEG channels" in board_out and "source_id brainflow-synthetic" in board_out
    assert "pushed" in board_out.splitlines()[-1]

    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert f"reading {name!r} (brainflow-synthetic): 16 channels at 250 Hz" in lines[0]
    predictions = [line for line in lines if line.startswith("window ")]
    assert len(predictions) >= 5, run.stdout[-3000:]
    assert all(("left_hand" in p) or ("right_hand" in p) for p in predictions)
    summary = last_json(run)
    assert summary["state"] == "live" and summary["predicted"] >= 5
