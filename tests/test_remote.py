"""A worker's outlets as a viewer sees them, on loopback: the session id in every outlet, the
status outlet, :class:`RemoteWorker` (``gui --attach``) with the worker's values, never another
worker's, ``lost`` when it goes; the LSL config file option. Across real network namespaces:
tests/test_multihost.py."""

from __future__ import annotations

import os
import time

import numpy as np
import pylsl
import pytest
from conftest import run_cli, unique_id

from bci_app.config import parse_config
from bci_app.errors import InvalidArgument
from bci_app.infer.outlets import OUTLET_SUFFIXES
from bci_app.pipeline import Pipeline
from bci_app.pipeline.remote import LOST_AFTER_S, RemoteWorker, find_workers
from bci_app.pipeline.view import status_from_json, status_to_json
from bci_app.stream.lslconfig import use_lsl_config


def _worker(prefix: str, seed: int = 0) -> Pipeline:
    config = parse_config(
        {
            "outlets": {"name_prefix": prefix, "source_id_prefix": prefix},
            "simulator": {"seed": seed},
            "scheduling": {"realtime_priority": None},
        }
    )
    return Pipeline(config, with_model=True)


def test_status_survives_its_json() -> None:
    with _worker(unique_id("st")) as worker:  # started by the context manager
        time.sleep(3.0)
        status = worker.status()
    assert status_from_json(status_to_json(status)) == status


@pytest.mark.slow
def test_viewer_gets_the_workers_values_only_and_sees_it_go() -> None:
    prefix = unique_id("rw")
    received, logged = [], {}
    worker = _worker(prefix)
    worker.add_prediction_sink(lambda p: logged.__setitem__(p.timestamp, p))
    other = _worker(prefix, seed=5)  # the same prefix, another session
    worker.start()
    session = worker.config.outlets.session_id
    try:
        infos = pylsl.resolve_byprop("source_id", f"{prefix}-status-{session}", 1, 5.0)
        assert infos, "the status outlet carries the session in its source_id"
        for suffix in OUTLET_SUFFIXES:
            assert pylsl.resolve_byprop("source_id", f"{prefix}-{suffix}-{session}", 1, 5.0)
        assert [w.session_id for w in find_workers(2.0, prefix)] == [session]

        view = RemoteWorker(worker.config, session)
        view.add_prediction_sink(received.append)
        view.start()
        other.start()  # appears after the viewer bound: never read
        assert view.metadata.classes == worker.metadata.classes
        assert view.description.source_id == worker.description.source_id
        time.sleep(4.0)
        status = view.status()
        assert status is not None and status.worker.predicted > 0
        assert set(view.clock_offsets_s) == set(OUTLET_SUFFIXES)
        assert view.trace("raw").ring.written > 0
    finally:
        worker.stop()
        other_session = other.config.outlets.session_id
    try:
        deadline = time.monotonic() + LOST_AFTER_S + 3.0
        while not view.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert view.lost
        assert view.status().stream.state.value == "lost"
        assert "lost" in view.status().stream.error
        time.sleep(2.0)  # the other worker (same prefix) is still there: bound by session, no
        assert view.worker.session_id == session and view.rebinds == 0
    finally:
        view.stop()
        other.stop()
    assert other_session != session
    assert len(received) >= 8
    for prediction in received:
        mine = logged[prediction.timestamp]  # any other worker's stamp would be missing here
        np.testing.assert_allclose(prediction.probabilities, mine.probabilities, atol=1e-6)
        np.testing.assert_allclose(prediction.weights, mine.weights, atol=1e-6)
        assert prediction.class_name == mine.class_name
        assert prediction.latency_ms["e2e"] == pytest.approx(mine.latency_ms["e2e"], rel=1e-5)
        assert prediction.latency_ms["at_viewer"] > 0


def test_lsl_config_file_must_exist(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LSLAPICFG", raising=False)
    with pytest.raises(InvalidArgument, match="does not exist"):
        use_lsl_config(tmp_path / "missing.cfg")
    config = tmp_path / "lsl_api.cfg"
    config.write_text("[multicast]\nKnownPeers = {10.0.0.1}\n")
    assert use_lsl_config(config) == config
    other = tmp_path / "other.cfg"
    other.write_text("[lab]\nSessionID = x\n")
    assert use_lsl_config(other, replace=False) is None  # --lsl-config wins over the config file
    assert os.environ["LSLAPICFG"] == str(config)
    result = run_cli("--lsl-config", str(tmp_path / "nope.cfg"), "streams", timeout=60)
    assert result.returncode == 2 and "nope.cfg does not exist" in result.stderr


@pytest.mark.slow
def test_the_participants_screen_runs_apart_and_publishes_its_cues() -> None:
    """``bci-app cue-screen --attach`` in its own process: the cue paradigm with feedback from
    the worker's outlets; its cue markers, stamped when drawn, reach any inlet."""
    import subprocess
    import sys

    from conftest import REPO, last_json

    prefix = unique_id("cue")
    with _worker(prefix) as worker:
        classes = list(worker.metadata.classes)
        screen = subprocess.Popen(
            [sys.executable, "-m", "bci_app", "cue-screen", "--attach", prefix, "--trials", "1",
             "--fixation", "0.3", "--imagery", "2.5", "--rest", "0.3", "0.3", "--json"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        )  # fmt: skip
        try:
            infos = pylsl.resolve_byprop("name", f"{prefix}-cues", 1, 30.0)
            assert infos, "no cue marker stream"
            assert infos[0].source_id() == f"{prefix}-cues-{worker.config.outlets.session_id}"
            inlet = pylsl.StreamInlet(infos[0])
            inlet.open_stream(timeout=5.0)
            markers: list[tuple[str, float, float]] = []
            deadline = time.monotonic() + 40.0
            while len(markers) < len(classes) and time.monotonic() < deadline:
                sample, stamp = inlet.pull_sample(timeout=0.5)
                if stamp is not None:
                    markers.append((sample[0], stamp, pylsl.local_clock()))
            out, err = screen.communicate(timeout=40.0)
        finally:
            if screen.poll() is None:
                screen.kill()
    result = subprocess.CompletedProcess(screen.args, screen.returncode, out, err)
    summary = last_json(result)
    assert summary["finished"] and summary["trials"] == len(classes)
    assert summary["worker"] == worker.config.outlets.session_id
    assert summary["online_trials"] >= 1  # feedback came from the worker's predictions
    assert sorted(label for label, _, _ in markers) == sorted(classes)
    for _, stamp, received in markers:
        assert 0.0 <= received - stamp < 0.5  # stamped when drawn, not when sent


def test_the_stream_picker_lists_a_worker_and_views_it(qtbot) -> None:
    """The main window's picker lists the workers it can see; choosing one views it (as
    ``gui --attach`` does), with the same panels."""
    from bci_app.gui.stream_panel import WORKER_PREFIX
    from bci_app.gui.window import MainWindow

    prefix = unique_id("pick")
    with _worker(prefix) as worker:
        session = worker.config.outlets.session_id
        window = MainWindow(worker.config, None, autostart=False)
        qtbot.addWidget(window)
        window.show()
        picker = window.stream_panel.picker
        data = WORKER_PREFIX + session

        def listed() -> bool:
            if picker.findData(data) < 0 and window._resolving is None:
                window.refresh_streams()
            return picker.findData(data) >= 0

        qtbot.waitUntil(listed, timeout=20_000)
        assert session in picker.itemText(picker.findData(data))
        picker.setCurrentIndex(picker.findData(data))
        window.stream_panel.connect_button.click()
        qtbot.waitUntil(lambda: window.running, timeout=20_000)
        assert isinstance(window.pipeline, RemoteWorker)
        assert window.pipeline.worker.session_id == session
        qtbot.waitUntil(lambda: window.prediction_panel.shown is not None, timeout=20_000)
        qtbot.waitUntil(lambda: "decision age" in window.latency_panel.remote.text(), timeout=5000)
        assert "clock offsets applied: predictions" in window.latency_panel.remote.text()
        window.close()
