"""The P300 and SSVEP paradigms on the shared recordings: epochs cut by the online dsp, the
ERP and SSVEP decoders, the speller's decisions and metrics, their checkpoints and CLI."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pylsl
import pytest

from bci_app.config import ConfigError, load_config, parse_config, with_paradigm
from bci_app.decoders import (
    DecoderError,
    FbccaDecoder,
    FilterBankRiemannDecoder,
    ShrinkageLdaDecoder,
    XdawnRiemannDecoder,
    load_decoder,
)
from bci_app.dsp.epochs import MAX_PENDING, EpochCutter, PendingEpochsFull
from bci_app.dsp.stage import DspStage
from bci_app.infer.speller import Flash, FlashAssembler, OnlineSpeller
from bci_app.infer.worker import Prediction
from bci_app.io import RecordingError, load_recording
from bci_app.io.lslinfo import make_stream_info
from bci_app.io.session import read_session
from bci_app.pipeline.erp import EEG_WAIT_TIMEOUT_S, EPOCH_SCORE_TIMEOUT_S, ErpStage
from bci_app.pipeline.local import Pipeline
from bci_app.sources.replay import Replayer
from bci_app.stream.markers import MarkerInlet
from bci_app.stream.resolve import StreamError
from bci_app.stream.ring import RingBuffer
from bci_app.train.commands import (
    TrainingError,
    evaluate_command,
    train_command,
    training_free_command,
)
from bci_app.train.data import extract_trials
from bci_app.train.erp import FlashEpochs, extract_flash_epochs, speller_metrics
from tests.conftest import SHARED_DATA, last_json, run_cli, unique_id, wait_until

P300 = ("p300-bcicomp2", "AAS010R01_raw.fif"), ("p300-bcicomp2", "AAS010R02_raw.fif")
SSVEP_CLASSES = ("rest", "13Hz", "17Hz", "21Hz")


@pytest.fixture(scope="module")
def p300_config():
    return with_paradigm(load_config(), "p300")


@pytest.fixture(scope="module")
def p300_epochs(p300_config) -> tuple[FlashEpochs, FlashEpochs]:
    return tuple(  # type: ignore[return-value]
        extract_flash_epochs([load_recording(SHARED_DATA.joinpath(*f))], p300_config) for f in P300
    )


# ---- epochs ---------------------------------------------------------------------------------


def _ramp_ring(n: int, capacity: int = 400) -> RingBuffer:
    ring = RingBuffer(capacity, 2)
    samples = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    ring.write(samples, np.arange(n) / 100.0, np.zeros(n, dtype=np.uint8), arrival=0.0)
    return ring


def test_epochs_start_at_the_rounded_stimulus_position_and_wait_for_their_last_sample():
    ring = _ramp_ring(100)
    cutter: EpochCutter[str] = EpochCutter(ring, 100.0, 0.1, 0.5)
    cutter.request(20.4, "a")  # starts at round(20.4 + 10) = 30
    cutter.request(20.6, "b")  # 31
    cutter.request(70.0, "late")  # 80 + 40 samples > 100 written: waits
    cut = cutter.cut(now=1.0)
    assert [tag for tag, _ in cut] == ["a", "b"]
    assert cut[0][1].data[:, 0].tolist() == list(range(30, 70))
    assert cut[1][1].start_index == 31 and cutter.pending == 1
    ring.write(
        np.zeros((40, 2), np.float32), np.arange(100, 140) / 100, np.zeros(40, np.uint8), 0.0
    )
    assert [tag for tag, _ in cutter.cut(now=2.0)] == ["late"]


def test_an_epoch_whose_samples_left_the_ring_is_counted_missed_and_pending_is_bounded():
    ring = _ramp_ring(1000, capacity=100)
    cutter: EpochCutter[int] = EpochCutter(ring, 100.0, 0.0, 0.5)
    cutter.request(10.0, 0)  # overwritten long ago
    cutter.request(950.0, 1)
    assert [tag for tag, _ in cutter.cut(0.0)] == [1] and cutter.missed == 1
    for i in range(MAX_PENDING):
        cutter.request(5000.0 + i, i)
    with pytest.raises(PendingEpochsFull, match="stream stopped"):
        cutter.request(9000.0, -1)


def test_flash_epochs_of_the_speller_runs(p300_epochs, p300_config):
    first, second = p300_epochs
    assert len(first) == len(second) == 540 and first.flagged == 0
    assert first.chars == ("C", "A", "T") and second.chars == ("D", "O", "G")
    assert first.x.shape[1:] == (64, round(0.8 * p300_config.model_rate))
    assert int((first.target == 1).sum()) == 90 and set(first.code.tolist()) == set(range(1, 13))
    # 15 repetitions of each of the 12 codes per character
    assert first.repetition.max() == 14
    assert np.bincount(first.code[first.character == 0])[1:].tolist() == [15] * 12


def test_a_recording_without_flash_markers_is_refused_with_what_it_needs(shared_data, p300_config):
    recording = load_recording(shared_data / "eegmmidb" / "S001" / "S001R04.edf")
    with pytest.raises(RecordingError, match="no flash markers.*code<N>"):
        extract_flash_epochs([recording], p300_config)


# ---- speller decisions ----------------------------------------------------------------------


def test_speller_sums_repetitions_and_stops_early_when_the_posterior_is_high(p300_epochs):
    epochs = p300_epochs[1]
    strength = np.where(epochs.target == 1, 0.6, 0.4)  # weak evidence per flash
    probabilities = np.stack([1 - strength, strength], axis=1)
    matrix = load_config().paradigm.matrix
    metrics = speller_metrics(probabilities, epochs, matrix, stop_posterior=0.95)
    assert metrics["accuracy_by_repetitions"]["15"] == 1.0
    assert set(metrics["accuracy_by_repetitions"]) == {str(r) for r in range(1, 16)}
    assert metrics["spelled"]["15"] == "DOG" and metrics["n_characters"] == 3
    assert metrics["flash_soa_s"] == pytest.approx(0.175, abs=1e-3)
    dynamic = metrics["dynamic_stopping"]
    assert dynamic["accuracy"] == 1.0 and 1 <= dynamic["mean_repetitions"] < 15
    # ITR falls with more repetitions at equal accuracy (more time per character)
    itr = metrics["itr_bits_per_min_by_repetitions"]
    assert itr["5"] > itr["15"] > 0
    noise = np.random.default_rng(0).uniform(0.3, 0.7, len(epochs))
    chance = speller_metrics(np.stack([1 - noise, noise], axis=1), epochs, matrix, 0.95)
    assert chance["accuracy_by_repetitions"]["15"] < 1.0


@pytest.mark.parametrize("kind", [XdawnRiemannDecoder, ShrinkageLdaDecoder])
def test_erp_decoders_spell_the_other_run(p300_epochs, kind):
    train, test = p300_epochs
    tw = train.trial_windows()
    decoder = (
        kind.fit(tw.x, tw.y) if kind is XdawnRiemannDecoder else kind.fit(tw.x, tw.y, tw.rate_hz)
    )
    probabilities, weights = decoder.predict(test.x)
    matrix = load_config().paradigm.matrix
    metrics = speller_metrics(probabilities, test, matrix, 0.95)
    assert metrics["accuracy_by_repetitions"]["15"] == 1.0
    assert weights.shape == (len(test), 64) and weights.max() == pytest.approx(1.0)
    with pytest.raises(DecoderError, match="target from non-target"):
        kind.fit(
            tw.x[:10],
            np.zeros(10, dtype=np.int64),
            *(() if kind is XdawnRiemannDecoder else (60.0,)),
        )


def test_p300_train_and_evaluate_through_the_commands(shared_data, p300_config, tmp_path):
    files = [load_recording(shared_data.joinpath(*f)) for f in P300]
    out = tmp_path / "p300"
    train_command([files[0]], [], out, p300_config, decoder="xdawn-riemann", progress=False)
    decoder, metadata = load_decoder(out)
    assert metadata.paradigm.kind == "p300" and metadata.classes == ["nontarget", "target"]
    assert metadata.window_s == pytest.approx(0.8) and metadata.dsp.bandpass == [0.5, 20.0]
    assert "P300 speller" in (out / "MODEL_CARD.md").read_text()
    metrics = evaluate_command(out, [shared_data.joinpath(*P300[1])])
    characters = metrics["characters"]
    assert characters["accuracy_by_repetitions"]["15"] == 1.0 and characters["n_characters"] == 3
    assert metrics["accuracy"] == 1.0 and metrics["flashes"]["auc"] > 0.75
    with pytest.raises(TrainingError, match="leave out --classes"):
        train_command([files[0]], ["T1:a"], tmp_path / "x", p300_config, decoder="lda")
    with pytest.raises(TrainingError, match="does not decode the p300 paradigm"):
        train_command([files[0]], [], tmp_path / "y", p300_config, decoder="csp-lda")


def test_flash_markers_in_any_order_at_one_time_make_one_flash():
    assembler = FlashAssembler(12)
    flashes = []
    for position, label in [
        (1.0, "nontarget"), (1.0, "char:C"), (1.0, "code8"),
        (1.2, "code3"), (1.2, "target"),
        (1.4, "code3"),  # free: no target marker
    ]:  # fmt: skip
        flashes += assembler.feed(position, label)
    flashes += assembler.flush()
    assert [(f.position, f.code, f.target, f.symbol, f.repetition) for f in flashes] == [
        (1.0, 8, 0, "C", 0),
        (1.2, 3, 1, "C", 0),
        (1.4, 3, -1, "C", 1),
    ]
    with pytest.raises(ValueError, match="before any char:<X>"):
        fresh = FlashAssembler(12)
        fresh.feed(0.0, "code1")
        fresh.flush()


def test_code0_is_no_flash_and_a_code_beyond_the_matrix_is_refused_without_losing_any():
    """BCI2000 writes code0 ("no stimulus") between flashes: no flash, and nothing for the
    speller to score (it used to reach np.bincount as code -1 and stop the spelling)."""
    assembler = FlashAssembler(12)
    flashes = []
    for position, label in [(1.0, "char:A"), (1.0, "code1"), (1.1, "code0"), (1.2, "code7")]:
        flashes += assembler.feed(position, label)
    with pytest.raises(ValueError, match="beyond the speller's 12 flash codes"):
        assembler.feed(1.4, "code13")
    flashes += assembler.flush()
    assert [(f.position, f.code) for f in flashes] == [(1.0, 1), (1.2, 7)]
    speller = OnlineSpeller(load_config().paradigm.matrix, stop_posterior=0.99)
    for flash in flashes:
        speller.add(flash, np.array([0.2, 0.8]))
    assert speller.finish().symbol == "A"


def test_online_speller_stops_early_on_strong_evidence_and_closes_a_character_on_the_next():
    matrix = load_config().paradigm.matrix  # B: row 1 (code 7), column 2 (code 2)
    speller = OnlineSpeller(matrix, stop_posterior=0.99)
    decided = []
    for repetition in range(3):
        for code in range(1, 13):
            target = code in (2, 7)
            p = np.array([0.05, 0.95]) if target else np.array([0.95, 0.05])
            flash = Flash(0.0, code, int(target), 0, "B", repetition)
            decided += speller.add(flash, p)
    assert len(decided) == 1 and decided[0].symbol == "B" and decided[0].stopped_early
    assert decided[0].repetitions == 1
    weak = OnlineSpeller(matrix, stop_posterior=0.999999)
    for code in range(1, 13):
        assert weak.add(Flash(0.0, code, -1, 0, "?", 0), np.array([0.5, 0.5])) == []
    closed = weak.add(Flash(1.0, 1, -1, 1, "?", 0), np.array([0.5, 0.5]))
    assert [c.character for c in closed] == [0] and not closed[0].stopped_early


@pytest.fixture(scope="module")
def p300_model(tmp_path_factory, p300_config):
    out = tmp_path_factory.mktemp("p300") / "model"
    recording = load_recording(SHARED_DATA.joinpath(*P300[0]))
    train_command([recording], [], out, p300_config, decoder="xdawn-riemann", progress=False)
    return out


def test_the_se_network_on_p300_is_three_seeds_averaged(p300_epochs, tmp_path):
    """One network's flash AUC moved with its seed (0.85-0.90 on the shared runs); the
    checkpoint holds three, and predicts as the decoder that was fitted."""
    from bci_app.config import DspConfig
    from bci_app.decoders import EnsembleDecoder, NetworkDecoder, decoder_spec, save_decoder
    from bci_app.nn.checkpoint import CheckpointMetadata
    from bci_app.train.decoders import fit_decoder
    from bci_app.train.trainer import TrainSettings, paradigm_settings

    train, test = p300_epochs
    one_character = train.subset(train.character == 0).trial_windows()
    settings = paradigm_settings(TrainSettings(epochs=2), "p300")
    fitted = fit_decoder("se", one_character, settings, band_hz=None)
    decoder = fitted.decoder
    assert isinstance(decoder, EnsembleDecoder) and fitted.info["seeds"] == 3
    assert all(isinstance(m, NetworkDecoder) for m in decoder.members)
    first, second = (m.model.spatial.weight.detach().numpy() for m in decoder.members[:2])
    assert not np.allclose(first, second)  # other seeds, other networks
    expected, _ = decoder.predict(test.x[:50])
    metadata = CheckpointMetadata(
        classes=list(one_character.classes), channel_labels=list(one_character.labels),
        model_rate_hz=one_character.rate_hz, window_s=0.8, hop_s=0.8,
        dsp=DspConfig.from_config(parse_config({})), decoder=decoder_spec(decoder),
    )  # fmt: skip
    save_decoder(tmp_path / "m", decoder, metadata, "card")  # no pickle: arrays + JSON
    loaded, _ = load_decoder(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(test.x[:50])[0], expected, atol=1e-5)


def test_p300_fast_replay_spells_as_the_live_speller_would(p300_model, tmp_path):
    result = run_cli(
        "run", "--replay", str(SHARED_DATA.joinpath(*P300[1])), "--fast", "--model",
        str(p300_model), "--out", str(tmp_path / "p.jsonl"), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = last_json(result)
    trials = summary["trials"]
    assert trials["online"]["spelled"] == "DOG" and trials["accuracy"] == 1.0
    assert all(r < 15 for r in trials["online"]["repetitions"])  # dynamic stopping
    assert trials["characters"]["accuracy_by_repetitions"]["15"] == 1.0
    assert summary["n_windows"] == 540  # one epoch per flash


def test_live_p300_pipeline_spells_from_real_eeg_and_markers_over_lsl(p300_model):
    """The second run's first character, replayed in real time over LSL (EEG and its flash
    markers), through the live pipeline: markers -> epochs -> worker -> speller -> outlet.

    EEG and markers stop mid-character, as when a session ends or an amplifier is switched
    off: the character is decided from the flashes it has once the markers fall silent.
    (Dynamic stopping would decide 'D' at its 48th flash with posterior 0.951, against the
    0.95 it needs: a one-sample shift of an epoch was enough to miss it, and the character
    was then never decided because nothing stepped the stage without EEG.)"""
    session = read_session(SHARED_DATA.joinpath(*P300[1]))
    # 37-38 flashes have their 0.8 s epoch inside the first 10 s: 'D' leads with posterior
    # 0.43 (next 0.28), far from dynamic stopping's 0.95; at 32 flashes 'F' still led.
    stop = session.origin + 10.0
    streams = []
    for stream in session.streams:
        keep = stream.timestamps < stop
        values = (
            [v for v, k in zip(stream.values, keep, strict=True) if k]
            if stream.is_string
            else stream.values[keep]
        )
        streams.append(
            dataclasses.replace(stream, values=values, timestamps=stream.timestamps[keep])
        )
    session = dataclasses.replace(session, streams=tuple(streams), end=stop)
    replayer = Replayer(session, wait_for_consumers=10.0)
    eeg, markers = (s.name for s in session.streams)
    session_id = unique_id("erp")
    config = parse_config(
        {
            "stream": {
                "source_id": replayer.source_id_of(eeg),
                "markers": replayer.source_id_of(markers),
            },
            "outlets": {"session_id": session_id},
            # Silent until the replay starts: no re-resolving meanwhile, however long the
            # characters outlet takes to resolve on a busy machine.
            "health": {"recover_after": 20.0, "lost_after": 60.0},
        }
    )
    pipeline = Pipeline(config, with_model=True, model_path=p300_model)
    pipeline.start()
    try:
        # Connected before the replay: an inlet gets only the samples pushed after it opens.
        found = pylsl.resolve_bypred(f"source_id='bci-app-characters-{session_id}'", 1, 10.0)
        characters = pylsl.StreamInlet(found[0])
        characters.open_stream(timeout=10.0)
        with replayer:
            sample, _ = characters.pull_sample(timeout=30.0)
            assert replayer.wait(timeout=15.0)
        # every flash whose 0.8 s epoch is inside the 10 s played is cut, however busy the box
        assert wait_until(lambda: pipeline.erp.stats().epochs >= 36, 10.0)
        stats = pipeline.erp.stats()
        worker = pipeline.status().worker
    finally:
        pipeline.stop()
    assert stats.missed == 0 and stats.characters == ("D",), (stats, worker)
    assert sample == ["D"]


def _marker_outlet_and_inlet(
    prefix: str,
) -> tuple[pylsl.StreamInfo, pylsl.StreamOutlet, MarkerInlet]:
    """A string marker stream's info, its outlet and a started :class:`MarkerInlet` on it
    (stop it after)."""
    source_id = unique_id(prefix)
    info = make_stream_info("m", "Markers", source_id, channel_format="string", n_channels=1)
    outlet = pylsl.StreamOutlet(info)
    inlet = MarkerInlet(source_id, resolve_timeout=5.0)
    inlet.start()
    return info, outlet, inlet


class _LiveErp:
    """An :class:`ErpStage` on a ring of 4-channel random EEG at 240 Hz stamped from
    ``t0 - 1 s``, fed by hand: :meth:`eeg_until` writes EEG and runs one dsp and ERP step."""

    rate = 240.0

    def __init__(self, markers: MarkerInlet, config, t0: float) -> None:
        self.ring = RingBuffer(round(10 * self.rate), 4)
        self.stage = DspStage(self.ring, self.rate, config)
        self.decided: list[str] = []
        self.erp = ErpStage(
            markers, self.stage, self.ring, config.paradigm,
            lambda c, _: self.decided.append(c.symbol),
        )  # fmt: skip
        self.stamps = t0 - 1.0 + np.arange(round(4 * self.rate)) / self.rate
        self.eeg = np.random.default_rng(0).normal(0, 10, (len(self.stamps), 4))
        self.epochs: list = []

    def eeg_until(self, end: float, now: float) -> None:
        """Raw EEG up to LSL time ``end`` into the ring, then one dsp and ERP step at ``now``."""
        new = slice(self.ring.written, int(np.searchsorted(self.stamps, end)))
        samples = self.eeg[new].astype(np.float32)
        self.ring.write(samples, self.stamps[new], np.zeros(len(samples), np.uint8), now)
        list(self.stage.process(pylsl.local_clock))
        self.epochs.extend(self.erp.step(now))

    def score(self, index: int, target: float) -> None:
        """The worker's prediction for epoch ``index``: ``target`` probability."""
        epoch = self.epochs[index]
        self.erp.on_prediction(
            Prediction(epoch.seq, epoch.last_timestamp, np.array([1 - target, target]), 1,
                       "target", np.ones(4), "cpu")
        )  # fmt: skip


def _push_markers(outlet, markers: MarkerInlet, labelled: list[tuple[float, str]]) -> None:
    for stamp, label in labelled:
        outlet.push_sample([label], stamp)
    assert wait_until(lambda: markers.received == len(labelled), 5.0)


def test_a_character_ending_on_silence_waits_until_its_epochs_are_scored(p300_config):
    """The markers fall silent: the character is decided once the worker has scored every
    epoch handed to it, not on part of them; one never scored (skipped, failed) stops
    counting after EPOCH_SCORE_TIMEOUT_S."""
    _, outlet, markers = _marker_outlet_and_inlet("flashes")
    try:
        assert outlet.wait_for_consumers(5.0)
        t0 = pylsl.local_clock()
        live = _LiveErp(markers, p300_config, t0)
        live.eeg_until(t0 + 0.3, t0 + 0.3)
        _push_markers(outlet, markers, [(t0, "char:A"), (t0, "code1"), (t0 + 0.175, "code7")])
        live.eeg_until(t0 + 0.3, t0 + 0.4)  # markers in; settled into flashes; epochs asked for
        live.eeg_until(t0 + 1.5, t0 + 0.6)  # both epochs (0.8 s) complete, cut, handed over
        assert len(live.epochs) == 2 and not live.decided
        handed = t0 + 0.6
        silent = t0 + 0.175 + 1.6  # past CHARACTER_END_S after the last marker
        live.erp.step(silent)
        assert not live.decided  # neither epoch scored yet
        live.score(0, 0.8)
        live.erp.step(silent)
        assert not live.decided  # the second is still being scored
        live.erp.step(handed + EPOCH_SCORE_TIMEOUT_S + 0.1)
        assert live.decided == ["A"]  # code1 (column 1) scored; the rows tie: the first one
    finally:
        markers.stop()


def test_a_flash_the_eeg_never_reaches_counts_as_missed_and_the_character_is_decided(
    p300_config,
):
    """The EEG stops before the last flash (an amplifier switched off, a replay's end): that
    flash waits EEG_WAIT_TIMEOUT_S, then counts as missed, and the markers' silence decides
    the character from the epochs that were scored."""
    _, outlet, markers = _marker_outlet_and_inlet("stopped")
    try:
        assert outlet.wait_for_consumers(5.0)
        t0 = pylsl.local_clock()
        live = _LiveErp(markers, p300_config, t0)
        last = t0 + 1.7  # after the EEG's end
        _push_markers(
            outlet, markers, [(t0, "char:A"), (t0, "code2"), (t0 + 0.175, "code8"), (last, "code3")]
        )  # fmt: skip
        live.eeg_until(t0 + 1.5, t0 + 1.8)  # markers in; two epochs asked for
        live.eeg_until(t0 + 1.5, t0 + 1.9)  # ... and cut; the EEG stops here
        assert len(live.epochs) == 2
        live.score(0, 0.9)
        live.score(1, 0.9)
        silent = last + 1.6  # past CHARACTER_END_S, within EEG_WAIT_TIMEOUT_S of the last flash
        live.erp.step(silent)
        assert not live.decided and live.erp.stats().missed == 0
        live.erp.step(last + EEG_WAIT_TIMEOUT_S + 0.1)
        assert live.decided == ["H"]  # column 2, row 2 (code 8)
        assert live.erp.stats().missed == 1
    finally:
        markers.stop()


def test_marker_inlet_follows_its_source_when_it_goes_and_comes_back():
    info, outlet, inlet = _marker_outlet_and_inlet("markers")
    try:
        time.sleep(0.5)
        outlet.push_sample(["code1"], pylsl.local_clock())
        assert wait_until(lambda: inlet.received == 1, 5.0)
        del outlet
        time.sleep(1.0)
        outlet = pylsl.StreamOutlet(info)
        assert wait_until(lambda: inlet.reconnects == 1, 8.0)
        time.sleep(0.5)
        outlet.push_sample(["code2"], pylsl.local_clock())
        assert wait_until(lambda: inlet.received == 2, 5.0)
        assert [label for _, label in inlet.take()] == ["code1", "code2"]
    finally:
        inlet.stop()
    with pytest.raises(StreamError, match="no LSL stream matches"):
        MarkerInlet(unique_id("absent"), resolve_timeout=0.5).start()


# ---- SSVEP ----------------------------------------------------------------------------------


def _flicker(
    frequency: float | None, n: int, rate: float, seed: int, channels: int = 8, seconds=2.0
) -> np.ndarray:
    """Windows ``(n, channels, seconds)``: a flicker at ``frequency`` (+ second harmonic) on
    the first 8 channels, in noise on all."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    x = rng.normal(0, 1.0, (n, channels, t.size))
    if frequency is not None:
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        gain = rng.uniform(0.5, 1.0, (1, 8, 1))
        x[:, :8] += gain * (
            np.sin(2 * np.pi * frequency * t + phase)
            + 0.5 * np.sin(4 * np.pi * frequency * t + phase)
        )
    return x.astype(np.float32)


def test_training_free_fbcca_holds_with_many_channels_and_short_windows():
    """64 channels against 128 samples: CCA on all of them found a correlation near 1 for
    every frequency, so every window was called rest; it now reads the window's strongest
    components (CCA_DIMENSIONS)."""
    rate = 128.0
    decoder = FbccaDecoder.fit(None, None, SSVEP_CLASSES, rate, 64)
    for index, frequency in ((1, 13.0), (2, 17.0), (3, 21.0)):
        windows = _flicker(frequency, 10, rate, index, channels=64, seconds=1.0)
        probabilities, weights = decoder.predict(windows)
        assert (probabilities.argmax(axis=1) == index).mean() >= 0.8
        assert weights.shape == (10, 64)


def test_training_free_fbcca_finds_the_flicker_and_tells_rest_on_real_sessions(tmp_path):
    rate = 128.0
    decoder = FbccaDecoder.fit(None, None, SSVEP_CLASSES, rate, 8)
    for index, frequency in ((1, 13.0), (2, 17.0), (3, 21.0)):
        probabilities, weights = decoder.predict(_flicker(frequency, 10, rate, index))
        assert (probabilities.argmax(axis=1) == index).mean() >= 0.9
        assert weights.shape == (10, 8) and np.all(weights <= 1.0)
    # A checkpoint without a recording, then a real session: rest and the three flickers told
    # apart well above chance (0.25).
    config = with_paradigm(load_config(), "ssvep")
    out = tmp_path / "training-free"
    occipital = ["Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4"]
    training_free_command(SSVEP_CLASSES, occipital, out, config)
    metrics = evaluate_command(out, [SHARED_DATA / "ssvep-exo" / "s03_r2_raw.fif"])
    assert metrics["accuracy"] >= 0.6 and metrics["recall_per_class"]["rest"] >= 0.5
    with pytest.raises(TrainingError, match="needs the electrodes"):
        training_free_command(SSVEP_CLASSES, [], tmp_path / "none", config)
    with pytest.raises(DecoderError, match="not a stimulation frequency"):
        FbccaDecoder.fit(None, None, ("rest", "left"), rate, 8)


def test_ssvep_decoders_on_the_other_session_beat_chance(shared_data, tmp_path):
    config = with_paradigm(load_config(), "ssvep")
    class_map = {c: c for c in SSVEP_CLASSES}
    sessions = [
        extract_trials(
            [load_recording(shared_data / "ssvep-exo" / f"s03_r{r}_raw.fif")], class_map, config
        )
        for r in (1, 2)
    ]
    train, test = sessions
    for decoder in (
        FbccaDecoder.fit(train.x, train.y, train.classes, train.rate_hz, 8),
        FilterBankRiemannDecoder.fit(train.x, train.y, train.classes, train.rate_hz),
    ):
        probabilities, _ = decoder.predict(test.x)
        trials = np.unique(test.trial)
        predicted = [probabilities[test.trial == t].mean(axis=0).argmax() for t in trials]
        assert np.mean(predicted == test.trial_classes[trials]) >= 0.6  # chance 0.25


def test_the_se_network_on_ssvep_trains_on_every_window(shared_data, tmp_path):
    """SSVEP sessions hold few trials: the network sees every window each epoch (3 random
    crops per trial left it at 0.49 on the shared sessions, against 0.62 now)."""
    config = with_paradigm(load_config(), "ssvep")
    folder = shared_data / "ssvep-exo"
    out = tmp_path / "se"
    recording = load_recording(folder / "s03_r1_raw.fif")
    train_command([recording], list(SSVEP_CLASSES), out, config, decoder="se", progress=False)
    metrics = evaluate_command(out, [folder / "s03_r2_raw.fif"])
    _, metadata = load_decoder(out)
    assert metadata.training["settings"]["crops_per_trial"] is None
    assert metrics["accuracy"] >= 0.5  # chance 0.25; 0.72 measured


@pytest.mark.slow
def test_ssvep_cli_train_and_evaluate(shared_data, tmp_path):
    folder = shared_data / "ssvep-exo"
    out = tmp_path / "ssvep"
    trained = run_cli(
        "train", str(folder / "s03_r1_raw.fif"), "--paradigm", "ssvep", "--classes",
        *SSVEP_CLASSES, "--decoder", "fbcca", "--out", str(out), "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    evaluated = run_cli("evaluate", str(out), str(folder / "s03_r2_raw.fif"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = last_json(evaluated)
    assert metrics["accuracy"] >= 0.6 and metrics["n_trials"] == 32 and metrics["chance"] == 0.25
    assert set(metrics["accuracy_by_window_s"]) == {"1", "2", "3", "4"}
    assert metrics["itr_bits_per_min_by_window_s"]["4"] > 0
    wrong = run_cli(
        "train", str(folder / "s03_r1_raw.fif"), "--paradigm", "ssvep", "--classes", "rest",
        "left", "--decoder", "fbcca", "--out", str(tmp_path / "bad"),
    )  # fmt: skip
    assert wrong.returncode == 2 and "not a stimulation frequency" in wrong.stderr


# ---- config ---------------------------------------------------------------------------------


def test_paradigm_defaults_fill_what_a_config_file_leaves_out():
    shipped = with_paradigm(load_config(), "ssvep")
    assert shipped.model_rate == 128.0 and shipped.filters.bandpass == [5.0, 45.0]
    own = parse_config({"model_rate": 256.0, "filters": {"order": 4}})
    mine = with_paradigm(own, "p300", keep_set_keys=True)
    assert mine.model_rate == 256.0 and mine.filters.order == 4
    assert mine.filters.bandpass == [0.5, 20.0] and mine.paradigm.kind == "p300"
    with pytest.raises(ConfigError, match="paradigm: epoch end 0.2 s must be after its start"):
        parse_config({"paradigm": {"epoch": [0.5, 0.2]}})
    with pytest.raises(ConfigError, match="unknown paradigm"):
        with_paradigm(load_config(), "motor")
