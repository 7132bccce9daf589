"""Tests for the montage, the synthetic EEG generator and its LSL outlets (real LSL, loopback)."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pylsl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from bci_app.io.montage import (
    EEGMMIDB_64,
    HD_256,
    SMALL_8,
    channel_set,
    label_position,
    positions,
)
from bci_app.sources.simulator import (
    REST_ERS,
    CueSchedule,
    EEGSimulator,
    SimulatorSettings,
)
from bci_app.sources.simulator_stream import SimulatorStream

EDF = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb" / "S001" / "S001R01.edf"

# Short trials so that LSL tests see several cues within ~2 s.
FAST = {"fixation_s": 0.3, "imagery_s": 0.5, "rest_min_s": 0.2, "rest_max_s": 0.3}


# ---------------------------------------------------------------------------------------------
# montage
# ---------------------------------------------------------------------------------------------


def test_channel_sets() -> None:
    assert channel_set(8) == SMALL_8
    assert channel_set(64) == EEGMMIDB_64
    assert channel_set(256) == HD_256
    assert len(EEGMMIDB_64) == len(set(EEGMMIDB_64)) == 64
    assert len(HD_256) == len(set(HD_256)) == 256
    assert HD_256[0] == "E001" and HD_256[-1] == "E256"
    assert {"C3", "Cz", "C4"} <= set(SMALL_8) and len(SMALL_8) == 8
    with pytest.raises(ValueError, match=r"8, 64, 256"):
        channel_set(32)


def test_eegmmidb_labels_match_edf() -> None:
    mne = pytest.importorskip("mne")
    if not EDF.exists():
        pytest.skip("EEGMMIDB sample file not available")
    raw = mne.io.read_raw_edf(EDF, preload=False, verbose="error")
    edf = [c.strip(".").upper() for c in raw.ch_names]
    assert edf == [c.upper() for c in EEGMMIDB_64]


def test_positions_geometry() -> None:
    labels = list(EEGMMIDB_64)
    pos = positions(labels)
    assert pos.shape == (64, 3)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0, atol=1e-12)
    c3, cz, c4, fz, pz = (label_position(x) for x in ("C3", "Cz", "C4", "Fz", "Pz"))
    assert c3[0] < cz[0] < c4[0]  # x: left -> right
    assert fz[1] > pz[1]  # y: anterior
    assert np.degrees(np.arccos(cz[2])) < 5  # Cz near the vertex of the fitted head sphere
    # mirror symmetry odd/even (MNE's template head is nearly symmetric)
    np.testing.assert_allclose(label_position("FC5") * [-1, 1, 1], label_position("FC6"), atol=0.03)
    # EDF-style labels and old names are accepted
    np.testing.assert_allclose(label_position("Fcz."), label_position("FCz"))
    np.testing.assert_allclose(label_position("T3"), label_position("T7"))
    for lab, near in [
        ("C3", {"C1", "C5", "FC3", "CP3"}),
        ("C4", {"C2", "C6", "FC4", "CP4"}),
        ("Oz", {"O1", "O2", "POz", "Iz"}),
    ]:
        d = np.linalg.norm(pos - label_position(lab), axis=1)
        nearest = {labels[i] for i in np.argsort(d)[1:5]}
        assert len(nearest & near) >= 3, (lab, nearest)
    with pytest.raises(ValueError, match="cannot place"):
        label_position("XYZ")


def test_positions_close_to_mne_standard() -> None:
    mne = pytest.importorskip("mne")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # renamed colin27_1005 in newer MNE
        montage = mne.channels.make_standard_montage("standard_1005")
    ch_pos = montage.get_positions()["ch_pos"]
    ref = np.array([ch_pos[c] for c in EEGMMIDB_64])
    # best-fitting sphere centre, then compare directions
    a = np.c_[2 * ref, np.ones(len(ref))]
    centre = np.linalg.lstsq(a, np.sum(ref**2, axis=1), rcond=None)[0][:3]
    ref = ref - centre
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    ang = np.degrees(np.arccos(np.clip(np.sum(ref * positions(EEGMMIDB_64), axis=1), -1, 1)))
    assert np.median(ang) < 10 and ang.max() < 20


def test_hd256_spiral() -> None:
    pos = positions(HD_256)
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0, atol=1e-12)
    assert pos[:, 2].min() >= -0.3 - 1e-9 and pos[0, 2] > 0.99
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + 10 * np.eye(256)
    nn = d.min(axis=1)
    assert nn.min() > 0.1 and nn.max() / nn.min() < 2.0  # evenly spread


# ---------------------------------------------------------------------------------------------
# settings + schedule
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_channels": 32}, r"(?s)n_channels.*8, 64 or 256"),
        ({"rate_hz": 100.0}, r"(?s)rate_hz.*greater than or equal to 128"),
        ({"rate_hz": 5000}, r"(?s)rate_hz.*less than or equal to 4096"),
        ({"line_freq_hz": 90.0}, r"line_freq_hz.*\(0, 80\)"),
        ({"classes": ()}, r"classes"),
        ({"classes": ("a", "a")}, r"classes.*unique"),
        ({"chunk_seconds": 0.0}, r"chunk_seconds"),
        ({"imagery_s": 0.0}, r"imagery_s"),
        ({"rest_min_s": 2.0, "rest_max_s": 1.0}, r"rest_max_s.*rest_min_s"),
        ({"seed": -1}, r"seed"),
        ({"name": ""}, r"name"),
        ({"source_id": ""}, r"source_id"),
        ({"erd_depth": 1.5}, r"(?s)erd_depth.*less than or equal to 1"),
    ],
)
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SimulatorSettings(**kwargs)


def test_settings_defaults() -> None:
    s = SimulatorSettings(classes=["a", "b"])  # type: ignore[arg-type]
    assert s.classes == ("a", "b")
    d = SimulatorSettings()
    assert (d.n_channels, d.rate_hz, d.line_freq_hz, d.chunk_samples) == (64, 160.0, 50.0, 2)


def test_schedule_balanced_and_timed() -> None:
    s = SimulatorSettings(seed=5)
    sched = CueSchedule(s)
    k = len(s.classes)
    trials = [sched.trial(i) for i in range(10 * k)]
    for b in range(10):
        block = [t.class_name for t in trials[b * k : (b + 1) * k]]
        assert sorted(block) == sorted(s.classes)
    assert len({tuple(t.class_name for t in trials[b * k : (b + 1) * k]) for b in range(10)}) > 1
    assert trials[0].start == 0
    rate = s.rate_hz
    rests = []
    for a, b in zip(trials, trials[1:], strict=False):
        assert a.cue - a.start == round(s.fixation_s * rate)
        assert a.imagery_stop - a.cue == round(s.imagery_s * rate)
        assert b.start == a.stop
        rests.append(a.stop - a.imagery_stop)
    assert round(s.rest_min_s * rate) <= min(rests) <= max(rests) <= round(s.rest_max_s * rate)
    assert len(set(rests)) > 5  # jittered

    # query API, consistent with trials and independent of query order (lazy generation)
    other = CueSchedule(s)
    far = other.cues_between(trials[30].cue, trials[35].cue)
    assert far == [(t.cue, t.class_name) for t in trials[30:35]]
    assert other.cues_between(0, trials[3].cue + 1) == [(t.cue, t.class_name) for t in trials[:4]]
    t = trials[7]
    assert sched.class_at(t.cue) == t.class_name
    assert sched.class_at(t.imagery_stop - 1) == t.class_name
    assert sched.class_at(t.cue - 1) is None
    assert sched.class_at(t.imagery_stop) is None
    assert sched.trial_at(t.start) == t and sched.trial_at(t.stop - 1) == t

    assert [CueSchedule(SimulatorSettings(seed=6)).trial(i) for i in range(20)] != trials[:20]


# ---------------------------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=8))
def test_generate_independent_of_split(splits: list[int]) -> None:
    s = SimulatorSettings(n_channels=8, rate_hz=250.0, seed=11, **FAST)
    whole = EEGSimulator(s).generate(sum(splits))
    sim = EEGSimulator(s)
    parts = [sim.generate(n) for n in splits]
    assert all(
        p.dtype == np.float32 and p.shape == (n, 8) for p, n in zip(parts, splits, strict=True)
    )
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert sim.sample_index == sum(splits)


@pytest.mark.parametrize(("n_ch", "rate"), [(8, 128.0), (64, 160.0), (256, 4096.0)])
def test_generate_determinism(n_ch: int, rate: float) -> None:
    s = SimulatorSettings(n_channels=n_ch, rate_hz=rate, seed=3)
    n = 3 * 300
    sim = EEGSimulator(s)
    split = np.concatenate([sim.generate(300) for _ in range(3)])
    whole = EEGSimulator(s).generate(n)
    assert whole.shape == (n, n_ch) and whole.dtype == np.float32
    assert np.all(np.isfinite(whole))
    np.testing.assert_array_equal(split, whole)
    other = EEGSimulator(SimulatorSettings(n_channels=n_ch, rate_hz=rate, seed=4)).generate(n)
    assert not np.allclose(other, whole)


@pytest.fixture(scope="module")
def minute_64() -> tuple[np.ndarray, tuple[str, ...], float]:
    s = SimulatorSettings(seed=2)
    sim = EEGSimulator(s)
    return sim.generate(int(60 * s.rate_hz)), sim.labels, s.rate_hz


def _psd(x: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    return signal.welch(x, fs=rate, nperseg=int(2 * rate), axis=0)


def test_amplitude_scale(minute_64: tuple[np.ndarray, tuple[str, ...], float]) -> None:
    x, _, _ = minute_64
    rms = x.std(axis=0)
    assert 8.0 < np.median(rms) < 25.0
    assert rms.min() > 5.0 and rms.max() < 40.0
    assert abs(float(np.mean(x))) < 5.0


def test_spectrum(minute_64: tuple[np.ndarray, tuple[str, ...], float]) -> None:
    x, labels, rate = minute_64
    f, p = _psd(x, rate)

    def at(ch: str, lo: float, hi: float) -> float:
        return float(np.mean(p[(f >= lo) & (f <= hi), labels.index(ch)]))

    # posterior alpha peak near 10 Hz, stronger than frontally
    post = np.mean([p[:, labels.index(c)] for c in ("O1", "Oz", "O2")], axis=0)
    band = (f >= 7) & (f <= 14)
    assert 8.5 <= f[band][np.argmax(post[band])] <= 11.5
    assert at("Oz", 9, 11) > 4 * max(at("Oz", 5, 6), at("Oz", 15, 16))
    assert at("Oz", 9, 11) > 4 * at("Fz", 9, 11)
    # sensorimotor mu at C3/C4/Cz
    for ch in ("C3", "C4", "Cz"):
        assert at(ch, 10, 12) > 3 * at(ch, 15, 16)
    # line noise at 50 Hz
    for ch in labels:
        assert at(ch, 50, 50) > 5 * (at(ch, 44, 46) + at(ch, 54, 56)) / 2
    # 1/f background: negative log-log slope away from the rhythms
    mask = ((f >= 2) & (f <= 7)) | ((f >= 14) & (f <= 18)) | ((f >= 28) & (f <= 45))
    for ch in ("Fz", "Fp1", "T7"):
        slope = np.polyfit(np.log10(f[mask]), np.log10(p[mask, labels.index(ch)]), 1)[0]
        assert -2.0 < slope < -0.5, (ch, slope)


def test_no_line_noise_when_disabled() -> None:
    s = SimulatorSettings(n_channels=8, line_freq_hz=None, seed=2)
    f, p = _psd(EEGSimulator(s).generate(int(30 * s.rate_hz)), s.rate_hz)
    line = p[(f >= 49.5) & (f <= 50.5)].mean(axis=0)
    side = p[((f >= 44) & (f <= 46)) | ((f >= 54) & (f <= 56))].mean(axis=0)
    assert np.all(line < 2 * side)


def test_erd_gain_follows_schedule() -> None:
    s = SimulatorSettings(n_channels=8)
    sim = EEGSimulator(s)
    sched = sim.schedule
    by_class = {}
    i = 0
    while len(by_class) < 4:
        t = sched.trial(i)
        by_class.setdefault(t.class_name, t)
        i += 1
    idx = {"C3": 0, "C4": 1, "Cz": 2}
    for cls, target in (("left_hand", "C4"), ("right_hand", "C3"), ("feet", "Cz")):
        t = by_class[cls]
        mid = (t.cue + t.imagery_stop) // 2
        g = sim.erd_gain(mid, 1)[0]
        assert g[idx[target]] == pytest.approx(s.erd_depth)
        assert np.all(np.delete(g, idx[target]) == 1.0)
        np.testing.assert_array_equal(sim.erd_gain(t.start, t.cue - t.start + 1), 1.0)
        np.testing.assert_array_equal(sim.erd_gain(t.imagery_stop, t.stop - t.imagery_stop), 1.0)
        ramp = sim.erd_gain(t.cue, int(0.4 * s.rate_hz))[:, idx[target]]
        assert np.all(np.diff(ramp) <= 0) and ramp[0] == 1.0
    t = by_class["rest"]
    np.testing.assert_allclose(sim.erd_gain((t.cue + t.imagery_stop) // 2, 1), REST_ERS)


def _trial_features(s: SimulatorSettings, n_trials: int) -> tuple[np.ndarray, list[str]]:
    """Log 8-13 Hz power at C3, C4, Cz in [cue + 0.5 s, imagery end) per trial."""
    sim = EEGSimulator(s)
    sched = sim.schedule
    trials = [sched.trial(i) for i in range(n_trials)]
    x = sim.generate(trials[-1].stop)
    chans = [sim.labels.index(c) for c in ("C3", "C4", "Cz")]
    feats = []
    for t in trials:
        seg = x[t.cue + int(0.5 * s.rate_hz) : t.imagery_stop, chans]
        f, p = signal.welch(seg, fs=s.rate_hz, nperseg=int(s.rate_hz), axis=0)
        feats.append(np.log(p[(f >= 8) & (f <= 13)].mean(axis=0)))
    return np.array(feats), [t.class_name for t in trials]


def _lda_fit_predict(xtr, ytr, xte) -> np.ndarray:
    classes = sorted(set(ytr))
    ytr = np.array(ytr)
    means = np.array([xtr[ytr == c].mean(axis=0) for c in classes])
    centred = np.concatenate([xtr[ytr == c] - m for c, m in zip(classes, means, strict=True)])
    cov = np.cov(centred.T) + 1e-6 * np.eye(xtr.shape[1])
    w = np.linalg.solve(cov, means.T)  # (n_feat, n_classes)
    b = -0.5 * np.sum(means.T * w, axis=0)
    return np.array(classes)[np.argmax(xte @ w + b, axis=1)]


def test_learnable_by_simple_classifier() -> None:
    s = SimulatorSettings(n_channels=64, seed=7)
    feats, y = _trial_features(s, 64)  # 16 trials per class
    assert Counter(y) == {c: 16 for c in s.classes}
    y = np.array(y)
    # left vs right hand: untrained threshold on log power C3 - C4 (ERD is contralateral)
    lr = (y == "left_hand") | (y == "right_hand")
    pred = np.where(feats[lr, 0] - feats[lr, 1] < 0, "right_hand", "left_hand")
    acc_lr = float(np.mean(pred == y[lr]))
    assert acc_lr >= 0.8, acc_lr
    # 4 classes: LDA on (C3, C4, Cz), train on first half, test on second half (chance 25 %)
    half = len(y) // 2
    pred4 = _lda_fit_predict(feats[:half], y[:half], feats[half:])
    acc4 = float(np.mean(pred4 == y[half:]))
    assert acc4 >= 0.6, acc4


# ---------------------------------------------------------------------------------------------
# LSL
# ---------------------------------------------------------------------------------------------


def _resolve(source_id: str, timeout: float = 5.0) -> pylsl.StreamInfo:
    found = pylsl.resolve_bypred(f"source_id='{source_id}'", 1, timeout)
    assert found, f"stream {source_id} not found"
    return found[0]


def _channel_labels(info: pylsl.StreamInfo) -> list[str]:
    labels = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label"))
        assert ch.child_value("unit") == "microvolts"
        assert ch.child_value("type") == "EEG"
        ch = ch.next_sibling("channel")
    return labels


def test_lsl_stream_end_to_end() -> None:
    s = SimulatorSettings(n_channels=8, rate_hz=250.0, seed=9, **FAST)
    stream = SimulatorStream(s)
    sid = stream.source_id
    assert sid.startswith("bci-app-sim-")
    with stream:
        eeg_info = _resolve(sid)
        mk_info = _resolve(sid + "-markers")
        inlet = pylsl.StreamInlet(eeg_info, max_buflen=10)
        minlet = pylsl.StreamInlet(mk_info)
        inlet.open_stream(5.0)
        minlet.open_stream(5.0)

        info = inlet.info(5.0)
        assert info.type() == "EEG" and info.name() == s.name
        assert info.nominal_srate() == s.rate_hz
        assert info.channel_format() == pylsl.cf_float32
        assert info.desc().child_value("manufacturer") == "bci-app simulator"
        assert _channel_labels(info) == list(SMALL_8)
        minfo = minlet.info(5.0)
        assert minfo.type() == "Markers" and minfo.name() == s.name + "-markers"
        assert minfo.channel_count() == 1 and minfo.nominal_srate() == pylsl.IRREGULAR_RATE
        assert minfo.channel_format() == pylsl.cf_string

        chunks, stamps = [], []
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            d, ts = inlet.pull_chunk(timeout=0.1, max_samples=4096, as_numpy=True)
            if len(ts):
                chunks.append(d.copy())
                stamps.append(ts.copy())
        d, ts = inlet.pull_chunk(timeout=0.2, max_samples=4096, min_samples=1, as_numpy=True)
        now = pylsl.local_clock()
        chunks.append(d.copy())
        stamps.append(ts.copy())
        markers, mstamps = minlet.pull_chunk(timeout=0.2, max_samples=100)
        t0 = stream.t0
        pushed = stream.markers_pushed
    assert t0 is not None and not stream.is_running

    data = np.concatenate(chunks)
    ts = np.concatenate(stamps)
    assert len(ts) > 2.0 * s.rate_hz
    # pacing: the newest timestamp tracks the clock (no drift, no backlog)
    assert -0.005 < now - ts[-1] < 0.05
    # timestamps exactly on the t0 + n / rate grid, contiguous
    first = round((ts[0] - t0) * s.rate_hz)
    expected = t0 + np.arange(first, first + len(ts)) / s.rate_hz
    np.testing.assert_allclose(ts, expected, rtol=0, atol=1e-9)
    assert stream.timestamp_of(first) == pytest.approx(ts[0], abs=1e-9)
    np.testing.assert_allclose(np.diff(ts), 1 / s.rate_hz, rtol=0, atol=1e-6)
    # values are float32-identical to the pure generator
    ref = EEGSimulator(s).generate(first + len(ts))[first:]
    np.testing.assert_array_equal(data, ref)
    # markers carry the cue sample's timestamp
    assert 1 <= len(markers) <= pushed
    sched = CueSchedule(s)
    for (name,), mts in zip(markers, mstamps, strict=True):
        cue = round((mts - t0) * s.rate_hz)
        assert mts == pytest.approx(t0 + cue / s.rate_hz, abs=1e-9)
        assert sched.cues_between(cue, cue + 1) == [(cue, name)]


def test_stop_is_prompt_and_destroys_outlets() -> None:
    stream = SimulatorStream(SimulatorSettings(n_channels=8)).start()
    _resolve(stream.source_id)
    time.sleep(0.2)
    assert stream.is_running and stream.samples_pushed > 0
    t = time.monotonic()
    stream.stop(timeout=2.0)
    assert time.monotonic() - t < 2.0
    assert not stream.is_running and stream.error is None
    assert pylsl.resolve_bypred(f"source_id='{stream.source_id}'", 1, 0.5) == []
    stream.stop()  # idempotent
    with pytest.raises(RuntimeError):
        stream.start()


def test_inject_modifies_pushed_chunk() -> None:
    calls: list[tuple[int, int]] = []

    def inject(first: int, chunk: np.ndarray) -> None:
        calls.append((first, chunk.shape[0]))
        chunk[:, 0] = np.arange(first, first + chunk.shape[0])
        chunk[:, 1] = np.nan

    s = SimulatorSettings(n_channels=8, rate_hz=200.0)
    with SimulatorStream(s, inject=inject) as stream:
        inlet = pylsl.StreamInlet(_resolve(stream.source_id))
        inlet.open_stream(5.0)
        d, ts = inlet.pull_chunk(timeout=0.5, max_samples=50, min_samples=50, as_numpy=True)
        t0 = stream.t0
    assert len(ts) > 0
    idx = np.round((ts - t0) * s.rate_hz)
    np.testing.assert_array_equal(d[:, 0], idx)
    assert np.all(np.isnan(d[:, 1]))
    firsts = [c[0] for c in calls]
    assert firsts[:3] == [0, s.chunk_samples, 2 * s.chunk_samples]
    assert all(n == s.chunk_samples for _, n in calls)


def test_inject_error_ends_thread() -> None:
    def boom(first: int, chunk: np.ndarray) -> None:
        raise RuntimeError("injected failure")

    stream = SimulatorStream(SimulatorSettings(n_channels=8), inject=boom).start()
    deadline = time.monotonic() + 2.0
    while stream.is_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not stream.is_running
    assert isinstance(stream.error, RuntimeError) and stream.samples_pushed == 0
    stream.stop()
    assert pylsl.resolve_bypred(f"source_id='{stream.source_id}'", 1, 0.5) == []


def test_pause_resume_keeps_clock() -> None:
    s = SimulatorSettings(n_channels=8, rate_hz=200.0)
    with SimulatorStream(s) as stream:
        inlet = pylsl.StreamInlet(_resolve(stream.source_id))
        inlet.open_stream(5.0)
        time.sleep(0.2)
        stream.pause()
        time.sleep(0.05)
        n_paused = stream.samples_pushed
        inlet.pull_chunk(timeout=0.0, max_samples=4096)
        time.sleep(0.3)
        assert stream.samples_pushed == n_paused and stream.is_paused
        stream.resume()
        d, ts = inlet.pull_chunk(timeout=1.0, max_samples=20, min_samples=20, as_numpy=True)
        now = pylsl.local_clock()
        t0 = stream.t0
    assert len(ts) == 20 and stream.samples_pushed > n_paused
    first = round((ts[0] - t0) * s.rate_hz)
    assert ts[0] == pytest.approx(t0 + first / s.rate_hz, abs=1e-9)
    assert now - ts[-1] < 0.1  # resumed at "now", the paused samples were dropped
    ref = EEGSimulator(s).generate(first + 20)[first:]
    np.testing.assert_array_equal(d, ref)


def test_restart_with_same_source_id() -> None:
    sid = f"bci-app-sim-test-restart-{time.monotonic_ns()}"
    s = SimulatorSettings(n_channels=8, source_id=sid)
    first = SimulatorStream(s).start()
    assert first.source_id == sid
    inlet = pylsl.StreamInlet(_resolve(sid), recover=True)
    inlet.open_stream(5.0)
    _, ts = inlet.pull_chunk(timeout=0.5, max_samples=50, min_samples=10)
    assert len(ts) >= 10
    first.stop()
    second = SimulatorStream(s).start()
    try:
        assert second.source_id == sid
        deadline = time.monotonic() + 10.0
        got: list[float] = []
        while not got and time.monotonic() < deadline:
            _, got = inlet.pull_chunk(timeout=0.2, max_samples=50)
        assert got, "inlet did not recover onto the restarted stream"
        assert min(got) >= second.t0 - 1e-9  # data comes from the new instance
    finally:
        second.stop()
