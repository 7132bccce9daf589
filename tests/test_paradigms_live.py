"""Both new paradigms live on the built-in simulator, end to end: simulated EEG and its
markers over LSL -> the pipeline (epochs per flash, or windows over the flicker) -> decisions
-> the worker's outlets -> the participant's screen."""

from __future__ import annotations

import collections
import json

import numpy as np
import pylsl
import pytest

from bci_app.config import load_config, parse_config, with_paradigm
from bci_app.gui.common import Frame
from bci_app.gui.prediction import PredictionPanel
from bci_app.io import Recording
from bci_app.pipeline.local import Pipeline
from bci_app.pipeline.view import status_from_json, status_to_json
from bci_app.sources.simulator import SimulatorSettings
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.train.commands import simulated_recording, train_command, training_free_command
from bci_app.train.erp import extract_flash_epochs
from tests.conftest import unique_id, wait_until

pytestmark = pytest.mark.timeout(180)


def _p300_settings(seed: int, source_id: str | None = None) -> SimulatorSettings:
    return SimulatorSettings(
        paradigm="p300", n_channels=8, rate_hz=160.0, seed=seed, repetitions=8, char_pause_s=1.0,
        source_id=source_id,
    )  # fmt: skip


def test_p300_on_the_simulator_reaches_the_speller_screen(qtbot, tmp_path):
    from bci_app.calibrate.speller import SpellerSettings
    from bci_app.gui.speller import SpellerWindow, resolve_decisions

    config = with_paradigm(load_config(), "p300")
    # Every character to its last flash: on 8 simulated channels shrinkage LDA spells all 12
    # characters of 3 unseen seeds right after 8 repetitions, but its confident early stops
    # are wrong now and then.
    paradigm = config.paradigm.model_copy(update={"stop_posterior": 0.9999})
    config = config.model_copy(update={"paradigm": paradigm})
    model = tmp_path / "model"
    recording = simulated_recording(_p300_settings(seed=1), 120.0)
    train_command([recording], [], model, config, decoder="lda", progress=False)
    session_id = unique_id("sim-p300")
    source = SimulatorStream(_p300_settings(seed=2, source_id=unique_id("sim")))
    live = parse_config({"outlets": {"session_id": session_id, "name_prefix": session_id}})
    pipeline = Pipeline(live, simulator=source, with_model=True, model_path=model)
    pipeline.start()
    window = None
    try:
        inlet = resolve_decisions(session_id, 5.0)
        window = SpellerWindow(
            SpellerSettings(text="AB", repetitions=2),
            close_when_done=False,
            markers_source_id=unique_id("speller"),
        )
        qtbot.addWidget(window)
        window.read_decisions(inlet)
        window.show()
        window.start()
        first = source.schedule.character(0).char
        qtbot.waitUntil(lambda: len(window.screen_widget.spelled) >= 1, timeout=60_000)
        stats = pipeline.erp.stats()
        # The app's own window shows it too: the status carries the speller's state, as far as
        # a viewer on another host (it arrives there as JSON on the status outlet).
        status = status_from_json(json.loads(json.dumps(status_to_json(pipeline.status()))))
        assert status.erp is not None and status.erp.characters[:1] == (first,)
        panel = PredictionPanel()
        qtbot.addWidget(panel)
        panel.bind(tuple(pipeline.metadata.classes))
        panel.update_frame(
            Frame(pylsl.local_clock(), status=status, prediction=pipeline.latest_prediction())
        )
        assert panel.class_label.text().startswith(first)
        assert "flashes" in panel.detail.text() and "missed" in panel.detail.text()
    finally:
        if window is not None:
            window.close()
        pipeline.stop()
    assert window.screen_widget.spelled[0] == first
    assert stats.missed == 0 and stats.epochs >= 12 and stats.characters[0] == first


def test_ssvep_on_the_simulator_decides_the_cued_flicker(tmp_path):
    config = with_paradigm(load_config(), "ssvep")
    model = tmp_path / "model"
    occipital = ["O1", "Oz", "O2", "PO3", "POz", "PO4", "PO7", "PO8"]
    training_free_command(["rest", "13Hz", "17Hz", "21Hz"], occipital, model, config)
    settings = SimulatorSettings(
        paradigm="ssvep", n_channels=64, rate_hz=256.0, seed=3,
        classes=("rest", "13Hz", "17Hz", "21Hz"), fixation_s=0.5, imagery_s=4.0,
        rest_min_s=0.5, rest_max_s=0.5, source_id=unique_id("sim-ssvep"),
    )  # fmt: skip
    source = SimulatorStream(settings)
    pipeline = Pipeline(
        parse_config({"outlets": {"session_id": unique_id("ssvep")}}),
        simulator=source,
        with_model=True,
        model_path=model,
    )
    decided: list = []
    pipeline.add_prediction_sink(decided.append)
    pipeline.start()
    try:
        # three trials of 5 s; the worker's outlet carries each decision
        outlet_name = f"{live_prefix(pipeline)}-predictions"
        found = pylsl.resolve_bypred(f"name='{outlet_name}'", 1, 5.0)
        assert found, f"no {outlet_name} outlet"
        assert wait_until(lambda: source.samples_pushed > 15.5 * settings.rate_hz, 30.0)
        clock = pipeline.simulator
    finally:
        pipeline.stop()
    per_trial: dict = collections.defaultdict(list)
    for prediction in decided:
        sample = round((prediction.timestamp - clock.t0) * settings.rate_hz)
        trial = clock.schedule.trial_at(sample)
        # windows wholly inside the stimulation (1 s windows, 0.3 s ramp in)
        if trial is None or not trial.cue + 1.3 * settings.rate_hz <= sample <= trial.imagery_stop:
            continue
        per_trial[(trial.index, trial.class_name)].append(prediction.probabilities)
    assert len(per_trial) >= 2
    classes = ["rest", "13Hz", "17Hz", "21Hz"]
    right = [
        classes[int(np.mean(p, axis=0).argmax())] == name for (_, name), p in per_trial.items()
    ]
    assert np.mean(right) >= 0.5


def live_prefix(pipeline: Pipeline) -> str:
    return pipeline.config.outlets.name_prefix


def test_an_epoch_over_a_gap_or_nan_is_flagged_and_never_decided_on():
    config = with_paradigm(load_config(), "p300")
    clean = simulated_recording(_p300_settings(seed=4), 20.0)
    data = clean.data.copy()
    data[800:810] = np.nan  # 5 s in: inside the epochs of a few flashes
    broken = Recording(
        data=data, rate_hz=clean.rate_hz, labels=clean.labels, events=clean.events,
        timestamps=None, source="nan burst", run="nan",
    )  # fmt: skip
    whole = extract_flash_epochs([clean], config)
    cut = extract_flash_epochs([broken], config)
    assert cut.flagged >= 4 and len(cut) == len(whole) - cut.flagged + whole.flagged
    assert np.isfinite(cut.x).all()
