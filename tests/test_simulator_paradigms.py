"""The simulator's P300 speller and SSVEP modes: their schedules and markers, the responses in
the EEG, split-invariance, the LSL marker outlet, and that the app's own decoders learn them
(P300: learnable but not trivial; SSVEP: the training-free FBCCA finds the flicker)."""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np
import pylsl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from bci_app.cli import main as cli_main
from bci_app.config import SPELLER_MATRIX, AppConfig, load_config, parse_config, with_paradigm
from bci_app.decoders import FbccaDecoder, ShrinkageLdaDecoder
from bci_app.io.montage import OCCIPITAL_8, SMALL_8
from bci_app.sources.simulator import (
    MI_CLASSES,
    SSVEP_CLASSES,
    CueSchedule,
    EEGSimulator,
    SimulatorSettings,
    SpellerSchedule,
    make_schedule,
)
from bci_app.sources.simulator_stream import SimulatorStream
from bci_app.train.commands import simulated_recording
from bci_app.train.data import extract_trials
from bci_app.train.erp import extract_flash_epochs, speller_metrics

N_CODES = len(SPELLER_MATRIX) + len(SPELLER_MATRIX[0])
#: Short characters for tests that only need markers: 2 repetitions, 50 ms SOA, 0.2 s pause.
FAST_P300 = {"paradigm": "p300", "repetitions": 2, "soa_s": 0.05, "char_pause_s": 0.2}
OCCIPITAL = ["O1", "Oz", "O2", "PO3", "POz", "PO4", "PO7", "PO8"]  # as the shared SSVEP files


# ---- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"paradigm": "erp"}, r"(?s)paradigm.*'mi', 'p300' or 'ssvep'"),
        ({"paradigm": "ssvep", "classes": ("rest", "left")}, r"'rest' or '<number>Hz'.*'left'"),
        ({"paradigm": "ssvep", "classes": ("41Hz",), "rate_hz": 160.0}, r"\(0, 40\).*'41Hz'"),
        ({"paradigm": "ssvep", "classes": ("0Hz", "rest")}, r"'0Hz'"),
        ({"paradigm": "p300", "soa_s": 0.001}, r"soa_s must be at least one sample"),
        ({"matrix": ("ABC", "DE")}, r"matrix rows must all have the same length"),
        ({"matrix": ("AB", "BA")}, r"matrix symbols must be unique"),
        ({"repetitions": 0}, r"repetitions"),
    ],
)
def test_paradigm_settings_are_validated(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulatorSettings(**kwargs)


def test_paradigm_defaults_and_config() -> None:
    assert SimulatorSettings().paradigm == "mi" and SimulatorSettings().classes == MI_CLASSES
    assert SimulatorSettings(paradigm="ssvep").classes == SSVEP_CLASSES
    assert SimulatorSettings(paradigm="ssvep", classes=("rest", "7.5Hz")).classes[1] == "7.5Hz"
    assert SimulatorSettings(paradigm="p300").matrix == SPELLER_MATRIX

    # the section's classes are for its own paradigm; another paradigm takes its defaults
    def config(**simulator) -> AppConfig:
        return parse_config({"simulator": simulator})

    mi = config(classes=["left_hand", "feet"])
    assert SimulatorSettings.from_config(mi).classes == ("left_hand", "feet")
    assert SimulatorSettings.from_config(mi, paradigm="ssvep").classes == SSVEP_CLASSES
    ssvep = config(paradigm="ssvep", classes=["rest", "10Hz"])
    assert SimulatorSettings.from_config(ssvep).classes == ("rest", "10Hz")
    assert SimulatorSettings.from_config(config(paradigm="ssvep")).classes == SSVEP_CLASSES
    # the speller flashes the app's matrix (it flashed the 6 x 6 one whatever the config said)
    small = parse_config({"paradigm": {"kind": "p300", "matrix": ["ABC", "DEF", "GHI"]}})
    settings = SimulatorSettings.from_config(small, paradigm="p300")
    assert settings.matrix == ("ABC", "DEF", "GHI")
    assert make_schedule(settings).n_codes == 6
    # 8 channels of SSVEP sit over the occipital cortex, where the responses are
    assert EEGSimulator(SimulatorSettings(paradigm="ssvep", n_channels=8)).labels == OCCIPITAL_8
    assert EEGSimulator(SimulatorSettings(n_channels=8)).labels == SMALL_8
    assert isinstance(make_schedule(SimulatorSettings(paradigm="p300")), SpellerSchedule)
    assert isinstance(make_schedule(SimulatorSettings(paradigm="ssvep")), CueSchedule)


# ---- P300 schedule --------------------------------------------------------------------------


def test_speller_schedule_is_well_formed() -> None:
    s = SimulatorSettings(paradigm="p300", seed=4)
    sched = SpellerSchedule(s)
    rate, n_columns = s.rate_hz, len(s.matrix[0])
    chars = [sched.character(k) for k in range(6)]
    assert len({c.char for c in chars}) > 1
    assert chars[0].start == 0
    for c, after in zip(chars, chars[1:], strict=False):
        assert after.start == c.stop
        assert c.first_flash - c.start == round(s.char_pause_s * rate)
        assert s.matrix[c.row][c.column] == c.char
        flashes = sched.flashes_between(c.start, c.stop)
        assert len(flashes) == N_CODES * s.repetitions == sched.flashes_per_character
        assert flashes[0].sample == c.first_flash and c.stop - flashes[-1].sample == 28
        assert np.all(np.diff([f.sample for f in flashes]) == round(s.soa_s * rate))  # 28
        assert [f.first for f in flashes] == [True] + [False] * (len(flashes) - 1)
        assert {f.char for f in flashes} == {c.char}
        for r in range(s.repetitions):
            block = flashes[r * N_CODES : (r + 1) * N_CODES]
            assert sorted(f.code for f in block) == list(range(1, N_CODES + 1))
            targets = sorted(f.code for f in block if f.target)
            assert targets == [c.column + 1, n_columns + c.row + 1]  # its column and its row
        orders = {tuple(f.code for f in flashes[r * N_CODES : (r + 1) * N_CODES]) for r in (0, 1)}
        assert len(orders) == 2  # a new random order each repetition

    # markers: char:<X> (first flash only), code<N>, target|nontarget at each flash, in order
    c = chars[1]
    markers = sched.cues_between(c.start, c.stop)
    first = sched.flashes_between(c.first_flash, c.first_flash + 1)[0]
    assert markers[:3] == [
        (c.first_flash, f"char:{c.char}"),
        (c.first_flash, f"code{first.code}"),
        (c.first_flash, "target" if first.target else "nontarget"),
    ]
    second = sched.flashes_between(c.first_flash + 1, c.stop)[0]
    assert [label for _, label in markers[3:5]] == [
        f"code{second.code}",
        "target" if second.target else "nontarget",
    ]
    labels = Counter(label for _, label in markers)
    assert labels[f"char:{c.char}"] == 1 and len(markers) == 1 + 2 * 120
    assert labels["target"] == 2 * s.repetitions and labels["nontarget"] == 10 * s.repetitions
    assert sched.character_at(c.first_flash) == c and sched.character_at(c.start) == c

    # deterministic per seed, independent of the query order (lazy), different across seeds
    other = SpellerSchedule(s)
    assert other.cues_between(chars[4].start, chars[5].stop) == sched.cues_between(
        chars[4].start, chars[5].stop
    )
    assert [other.character(k) for k in range(6)] == chars
    third = SpellerSchedule(SimulatorSettings(paradigm="p300", seed=5))
    assert third.cues_between(0, chars[3].stop) != sched.cues_between(0, chars[3].stop)


def test_simulated_recording_of_the_speller_has_the_flash_markers() -> None:
    s = SimulatorSettings(n_channels=8, **FAST_P300)
    recording = simulated_recording(s, 10.0)
    assert recording.data.shape == (1600, 8) and "p300" in recording.source
    sched = SpellerSchedule(s)
    assert list(recording.events) == sched.cues_between(0, 1600)
    at_first = [
        label for sample, label in recording.events if sample == sched.character(0).first_flash
    ]
    assert at_first[0] == f"char:{sched.character(0).char}" and at_first[1].startswith("code")
    assert at_first[2] in {"target", "nontarget"}


# ---- generator ------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    st.sampled_from(["p300", "ssvep"]),
    st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=6),
)
def test_generate_independent_of_split_in_each_paradigm(paradigm: str, splits: list[int]) -> None:
    fast = FAST_P300 if paradigm == "p300" else {"fixation_s": 0.3, "imagery_s": 1.0}
    s = SimulatorSettings(n_channels=8, rate_hz=250.0, seed=3, **(fast | {"paradigm": paradigm}))
    whole = EEGSimulator(s).generate(sum(splits))
    sim = EEGSimulator(s)
    np.testing.assert_array_equal(np.concatenate([sim.generate(n) for n in splits]), whole)


def test_target_flashes_carry_a_p300_over_the_midline() -> None:
    s = SimulatorSettings(paradigm="p300", n_channels=64, seed=2, line_freq_hz=None)
    n = round(50 * s.rate_hz)
    x = EEGSimulator(s).generate(n).astype(np.float64)
    flat = EEGSimulator(s.model_copy(update={"p300_amplitude_uv": 0.0})).generate(n)
    p300 = x - flat  # the target responses alone (the background is the same draw)
    sim = EEGSimulator(s)
    labels = sim.labels
    flashes = sim.schedule.flashes_between(0, n - round(0.8 * s.rate_hz))  # type: ignore[union-attr]
    span = round(0.8 * s.rate_hz)
    epochs = np.stack([p300[f.sample : f.sample + span] for f in flashes])
    target = np.array([f.target for f in flashes])
    mean = epochs[target].mean(axis=0)  # (T, C)
    peak_s = np.argmax(mean[:, labels.index("CPz")]) / s.rate_hz
    assert 0.2 < peak_s < 0.4
    pz = mean[:, labels.index("Pz")].max()
    assert 0.6 * s.p300_amplitude_uv < pz < 1.2 * s.p300_amplitude_uv
    assert mean[:, labels.index("Fp1")].max() < 0.5 * pz  # falls off with distance
    # every flash (target or not) has the visual response: the full signal's average at Oz
    evoked = np.stack([x[f.sample : f.sample + span] for f in flashes])[~target].mean(axis=0)
    assert np.ptp(evoked[:, labels.index("Oz")]) > 2.0


def test_ssvep_response_at_the_stimulated_frequency_and_its_harmonic() -> None:
    s = SimulatorSettings(paradigm="ssvep", n_channels=64, rate_hz=256.0, seed=1)
    sim = EEGSimulator(s)
    trials = [sim.schedule.trial(k) for k in range(12)]  # type: ignore[union-attr]
    x = sim.generate(trials[-1].stop)
    oz, fz = sim.labels.index("Oz"), sim.labels.index("Fz")
    power: dict[str, list[np.ndarray]] = {}
    for t in trials:
        f, p = signal.welch(x[t.cue : t.imagery_stop], fs=s.rate_hz, nperseg=512, axis=0)
        power.setdefault(t.class_name, []).append(p)
    mean = {name: np.mean(ps, axis=0) for name, ps in power.items()}

    def at(name: str, hz: float, ch: int) -> float:
        return float(mean[name][np.argmin(abs(f - hz)), ch])

    for name, hz in (("13Hz", 13.0), ("17Hz", 17.0), ("21Hz", 21.0)):
        assert at(name, hz, oz) > 4 * at("rest", hz, oz), name
        assert at(name, 2 * hz, oz) > 2 * at("rest", 2 * hz, oz), name
        assert at(name, hz, oz) > 4 * at(name, hz, fz), name  # occipital
    # no motor-imagery ERD in this paradigm: the rhythms are the background's
    np.testing.assert_array_equal(sim.erd_gain(trials[0].cue, 100), 1.0)


# ---- LSL ------------------------------------------------------------------------------------


def test_lsl_marker_outlet_pushes_every_flash_marker_at_its_sample() -> None:
    s = SimulatorSettings(n_channels=8, rate_hz=250.0, seed=9, **FAST_P300)
    with SimulatorStream(s) as stream:
        found = pylsl.resolve_bypred(f"source_id='{stream.marker_source_id}'", 1, 5.0)
        assert found
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(5.0)
        markers: list[str] = []
        stamps: list[float] = []
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            got, ts = inlet.pull_chunk(timeout=0.1)
            markers += [m[0] for m in got]
            stamps += list(ts)
        t0 = stream.t0
    assert t0 is not None and len(markers) > 20
    samples = [round((ts - t0) * s.rate_hz) for ts in stamps]
    for sample, ts in zip(samples, stamps, strict=True):
        assert ts == pytest.approx(t0 + sample / s.rate_hz, abs=1e-9)
    # every marker of the flashes between the first and the last pulled (those two may have
    # been pulled in part), in order, as separate samples at the flash's timestamp
    pulled = [(n, m) for n, m in zip(samples, markers, strict=True) if samples[0] < n < samples[-1]]
    assert pulled == SpellerSchedule(s).cues_between(samples[0] + 1, samples[-1])
    assert {"target", "nontarget"} <= {m for _, m in pulled}
    assert any(m.startswith("char:") for m in markers)


def test_cli_simulate_runs_each_paradigm(capsys: pytest.CaptureFixture[str]) -> None:
    for paradigm in ("p300", "ssvep"):
        argv = ["simulate", "--paradigm", paradigm, "--channels", "8", "--duration", "0.3"]
        assert cli_main(argv) == 0
        assert f"streaming {paradigm} EEG" in capsys.readouterr().out
    assert (
        cli_main(["simulate", "--paradigm", "ssvep", "--classes", "left", "--duration", "0.1"]) == 2
    )
    assert "'rest' or '<number>Hz'" in capsys.readouterr().err


# ---- learnable by the app's decoders --------------------------------------------------------


def test_p300_is_learnable_but_not_trivial(caplog: pytest.LogCaptureFixture) -> None:
    """LDA trained on 5 characters of one seed spells other seeds' characters without error at
    10 repetitions; at 1 repetition it does not."""
    caplog.set_level(logging.ERROR)  # the epochs cut off by the end of a recording
    config = with_paradigm(load_config(), "p300")

    def epochs(seed: int):
        s = SimulatorSettings(paradigm="p300", n_channels=8, seed=seed)
        return extract_flash_epochs([simulated_recording(s, 116.0)], config)

    train = epochs(1).trial_windows()
    assert Counter(train.y.tolist()) == {0: 500, 1: 100}
    decoder = ShrinkageLdaDecoder.fit(train.x, train.y, train.rate_hz)
    for seed in (2, 3):
        test = epochs(seed)
        probabilities, _ = decoder.predict(test.x)
        metrics = speller_metrics(probabilities, test, config.paradigm.matrix, 0.95)
        by_repetitions = metrics["accuracy_by_repetitions"]
        assert metrics["n_characters"] == 5 and metrics["flash_soa_s"] == pytest.approx(0.175)
        assert by_repetitions["10"] == 1.0, metrics["spelled"]
        assert by_repetitions["1"] < 1.0, metrics["spelled"]


def test_ssvep_is_found_by_the_training_free_fbcca() -> None:
    config = with_paradigm(load_config(), "ssvep")
    s = SimulatorSettings(paradigm="ssvep", n_channels=64, rate_hz=256.0, seed=2)
    recording = simulated_recording(s, 200.0)
    tw = extract_trials(
        [recording], {c: c for c in s.classes}, config, 0.0, s.imagery_s, channels=OCCIPITAL
    )
    decoder = FbccaDecoder.fit(None, None, list(tw.classes), tw.rate_hz, len(OCCIPITAL))
    probabilities, _ = decoder.predict(tw.x)
    predicted = probabilities.argmax(axis=1)
    rest = list(tw.classes).index("rest")
    flicker = tw.y != rest
    accuracy = float(np.mean(predicted[flicker] == tw.y[flicker]))
    assert accuracy >= 0.8, accuracy
    # per trial (log-probabilities summed over its windows): rest trials are mostly rest
    trials = np.unique(tw.trial)
    summed = np.stack([np.log(probabilities[tw.trial == t] + 1e-9).sum(axis=0) for t in trials])
    truth = np.array([tw.trial_classes[t] for t in trials])
    assert np.mean(summed[truth == rest].argmax(axis=1) == rest) > 0.5
    assert np.mean(summed[truth != rest].argmax(axis=1) == truth[truth != rest]) >= 0.8
