"""Training data: loading EDF/FIF/XDF recordings and cutting trial windows with the online code
(offline windows must equal the windows the live DspStage cuts from the same samples)."""

from __future__ import annotations

import gzip
import logging
from collections import Counter
from pathlib import Path

import mne
import numpy as np
import pytest
from xdf_files import synthetic_xdf_streams, write_xdf

from bci_app.config import parse_config
from bci_app.dsp.stage import DspStage
from bci_app.io import Recording, RecordingError, canonical_label, load_recording
from bci_app.io.montage import EEGMMIDB_64, SMALL_8
from bci_app.sources.simulator import EEGSimulator, SimulatorSettings
from bci_app.stream.ring import RingBuffer
from bci_app.train.data import TrialWindows, extract_trials, parse_class_map, trials_per_class

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EDF = DATA / "eegmmidb" / "S001"
XDF_R06 = DATA / "xdf" / "S001R06-labrecorder.xdf"
EDF_R06 = EDF / "S001R06.edf"
HANDS_FEET = {"T1": "hands", "T2": "feet"}


def config(**overrides):
    data = {"windows": {"length": 2.0, "hop": 0.5}}
    data.update(overrides)
    return parse_config(data)


@pytest.fixture(scope="module")
def r06():
    return load_recording(EDF / "S001R06.edf")


@pytest.fixture(scope="module")
def r10():
    return load_recording(EDF / "S001R10.edf")


@pytest.fixture(scope="module")
def hands_feet(r06, r10) -> TrialWindows:
    return extract_trials([r06, r10], HANDS_FEET, config())


def cue_counts(recording: Recording) -> Counter:
    return Counter(label for _, label in recording.events)


# -- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Fc5.", "FC5"),
        ("Cz..", "Cz"),
        ("Fp1.", "Fp1"),
        ("Fpz.", "Fpz"),
        ("Afz.", "AFz"),
        ("T10.", "T10"),
        ("Iz..", "Iz"),
        ("fcz", "FCz"),
        ("EEG Po7", "PO7"),
        ("ch1", "ch1"),
        ("Status", "Status"),
    ],
)
def test_canonical_label(raw, canonical):
    assert canonical_label(raw) == canonical


# -- EDF / FIF -------------------------------------------------------------------------------


@pytest.mark.parametrize("run", ["S001R06", "S001R10"])
def test_edf_loads_canonical_labels_microvolts_and_events(run):
    rec = load_recording(EDF / f"{run}.edf")
    assert rec.labels == EEGMMIDB_64
    assert rec.labels[0] == "FC5" and "Cz" in rec.labels
    assert rec.rate_hz == 160.0
    assert rec.data.dtype == np.float32 and rec.data.shape == (20000, 64)
    assert 10.0 < float(rec.data.std()) < 200.0  # microvolts, not volts
    assert rec.timestamps is None and rec.run == run and rec.source.endswith(f"{run}.edf")

    raw = mne.io.read_raw_edf(EDF / f"{run}.edf", preload=False, verbose=False)
    expected = [
        (round(onset * 160.0), desc)
        for onset, desc in zip(raw.annotations.onset, raw.annotations.description, strict=True)
    ]
    assert list(rec.events) == expected
    counts = cue_counts(rec)
    assert set(counts) == {"T0", "T1", "T2"}
    assert counts["T1"] + counts["T2"] == 15


def test_fif_with_first_samp_keeps_events_on_their_samples(r06, tmp_path):
    raw = mne.io.read_raw_edf(EDF / "S001R06.edf", preload=True, verbose=False)
    raw.crop(tmin=12.5)  # first_samp becomes 2000, at a T1 onset (no annotation is cut)
    path = tmp_path / "S001R06_raw.fif"
    raw.save(path, verbose=False)
    rec = load_recording(path)
    assert rec.run == "S001R06_raw" and rec.labels == r06.labels
    np.testing.assert_allclose(rec.data, r06.data[2000:], rtol=1e-5, atol=1e-3)
    # MNE keeps the T0 annotation that ends at the crop point (onset clipped to it).
    cues = [(s, d) for s, d in rec.events if d != "T0"]
    assert cues == [(s - 2000, d) for s, d in r06.events if s >= 2000 and d != "T0"]


# -- XDF -------------------------------------------------------------------------------------


def test_xdf_matches_the_edf_of_the_same_run(r06):
    rec = load_recording(XDF_R06)
    assert rec.labels == r06.labels
    assert rec.rate_hz == 160.0 and rec.data.shape == (20000, 64)
    assert rec.timestamps is not None and rec.timestamps.shape == (20000,)

    def cues(r):
        return [(s, label) for s, label in r.events if label in ("T1", "T2")]

    assert [label for _, label in cues(rec)] == [label for _, label in cues(r06)]
    # Align on the first marker, then the samples are the EDF's (float32 in both).
    offset = rec.events[0][0] - r06.events[0][0]
    n = min(rec.data.shape[0] - max(offset, 0), r06.data.shape[0] - max(-offset, 0))
    np.testing.assert_allclose(
        rec.data[max(offset, 0) : max(offset, 0) + n],
        r06.data[max(-offset, 0) : max(-offset, 0) + n],
        rtol=1e-6,
        atol=1e-4,
    )
    xdf_rel = np.array([s for s, _ in rec.events]) - rec.events[0][0]
    edf_rel = np.array([s for s, _ in r06.events]) - r06.events[0][0]
    assert xdf_rel.shape == edf_rel.shape
    assert np.abs(xdf_rel - edf_rel).max() <= 2


def test_xdf_units_labels_channel_types_and_marker_mapping(tmp_path, caplog):
    eeg, markers, values = synthetic_xdf_streams()
    # one more cue in the middle of the 2 s dropout before sample 1000: no sample is its place
    markers["times"].append(eeg["times"][999] + 1.0)
    markers["values"].append("right")
    path = tmp_path / "synthetic.xdf"
    write_xdf(path, [markers, eeg])
    with caplog.at_level(logging.WARNING, logger="bci_app.train.data"):
        rec = load_recording(path)
    assert rec.labels == ("FC5", "Cz", "X1")  # the trigger channel is not EEG
    assert rec.rate_hz == 100.0
    np.testing.assert_allclose(rec.data[:, :2], values[:, :2] * 1e6, rtol=1e-6)
    np.testing.assert_array_equal(rec.data[:, 2], values[:, 2])
    assert np.isnan(rec.data[1500, 0])
    assert rec.events == ((200, "left"), (900, "right"), (1400, "left"))
    assert "1 marker(s) outside the EEG stream" in caplog.text
    assert "1 marker(s) inside a dropout of the EEG" in caplog.text


def test_flagged_windows_are_skipped_and_counted(tmp_path):
    eeg, markers, _ = synthetic_xdf_streams()
    path = tmp_path / "synthetic.xdf"
    write_xdf(path, [eeg, markers])
    rec = load_recording(path)
    cfg = parse_config(
        {
            "model_rate": None,
            "filters": {"notch": None},
            "windows": {"length": 1.0, "hop": 0.25},
        }
    )
    tw = extract_trials([rec], {"left": "left", "right": "right"}, cfg, 0.0, 3.0)
    # Span 300 samples, window 100, hop 25: 9 grid windows per cue. The gap (sample 1000)
    # flags windows starting 925/950/975; the NaN (1500) those starting 1425..1500.
    assert tw.trial_flagged.tolist() == [0, 3, 4]
    assert np.bincount(tw.trial).tolist() == [9, 6, 5]
    assert tw.classes == ("left", "right")
    assert trials_per_class(tw) == {"left": 2, "right": 1}
    assert np.isfinite(tw.x).all()


# -- trials ----------------------------------------------------------------------------------


def expected_windows(cue: int, span: int, length: int, hop: int) -> int:
    """Grid windows [k*hop, k*hop+length) inside [cue, cue+span)."""
    first = -(-cue // hop)
    last = (cue + span - length) // hop
    return max(0, last - first + 1)


@pytest.mark.parametrize("hop_s", [0.5, 0.125])
def test_extract_hands_feet_r06_r10(r06, r10, hop_s):
    tw = extract_trials(
        [r06, r10],
        parse_class_map(["T1:hands", "T2:feet"]),
        config(windows={"length": 2.0, "hop": hop_s}),
    )
    n_t1 = cue_counts(r06)["T1"] + cue_counts(r10)["T1"]
    n_t2 = cue_counts(r06)["T2"] + cue_counts(r10)["T2"]
    assert n_t1 + n_t2 == 30
    assert trials_per_class(tw) == {"hands": n_t1, "feet": n_t2}
    assert tw.classes == ("hands", "feet") and tw.labels == EEGMMIDB_64 and tw.rate_hz == 160.0
    assert tw.x.dtype == np.float32 and tw.x.shape[1:] == (64, 320)
    assert tw.y.dtype == np.int64 and tw.trial.dtype == np.int64 and tw.run.dtype == np.int64
    assert len(tw.trial_classes) == 30 and tw.trial_runs.tolist() == [0] * 15 + [1] * 15
    np.testing.assert_array_equal(tw.y, tw.trial_classes[tw.trial])
    np.testing.assert_array_equal(tw.run, tw.trial_runs[tw.trial])
    assert tw.runs == ("S001R06", "S001R10") and not tw.trial_flagged.any()
    hop = round(hop_s * 160)
    cues = [(run, s) for run, rec in enumerate([r06, r10]) for s, d in rec.events if d != "T0"]
    assert tw.trial_cues.tolist() == [s for _, s in cues]
    counts = np.bincount(tw.trial, minlength=30)
    assert counts.tolist() == [expected_windows(s, 640, 320, hop) for _, s in cues]
    assert len(tw) == counts.sum()
    # Every window lies inside its trial's [cue, cue + 4 s) and on the hop grid.
    cue_of = tw.trial_cues[tw.trial]
    assert (tw.start >= cue_of).all() and (tw.start + 320 <= cue_of + 640).all()
    assert (tw.start % hop == 0).all()


def online_windows(recording: Recording, cfg, columns=None, seed: int = 0) -> dict:
    """Windows of a live DspStage fed the recording in random chunks, by window number."""
    data = recording.data if columns is None else recording.data[:, columns]
    rate = recording.rate_hz
    raw = RingBuffer(round(cfg.ring.capacity * rate), data.shape[1])
    stage = DspStage(raw, rate, cfg)
    rng = np.random.default_rng(seed)
    windows, start = {}, 0
    while start < len(data):
        n = int(rng.integers(1, 60))
        chunk = data[start : start + n]
        raw.write(chunk, (start + np.arange(len(chunk))) / rate, None, arrival=1.0)
        start += len(chunk)
        windows.update((w.seq, w) for w in stage.process(lambda: 2.0))
    return windows, stage.cutter.hop


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "model_rate": 100.0,
            "filters": {"bandpass": [8.0, 30.0], "notch": None},
            "channels": {"pick": ["c3", "CZ", "C4", "Fc3", "CP4"], "reference": "car"},
        },
    ],
    ids=["160Hz-all", "100Hz-pick-car"],
)
def test_offline_windows_equal_online_windows(r10, overrides):
    """The offline == online guarantee: same samples in, same windows out."""
    cfg = config(**overrides)
    tw = extract_trials([r10], HANDS_FEET, cfg)
    pick = cfg.channels.pick
    columns = None if pick is None else [r10.labels.index(canonical_label(p)) for p in pick]
    assert tw.labels == (EEGMMIDB_64 if pick is None else ("C3", "Cz", "C4", "FC3", "CP4"))
    online, hop = online_windows(r10, cfg, columns)
    assert len(tw.trial_classes) == 15
    rate_ratio = cfg.model_rate / 160.0 if cfg.model_rate else 1.0
    for trial in (0, 7, 14):
        rows = np.flatnonzero(tw.trial == trial)
        assert rows.size > 0
        for row in rows:
            window = online[int(tw.start[row]) // hop]
            assert window.start_index == tw.start[row] and window.usable
            np.testing.assert_allclose(tw.x[row], window.data.T, rtol=1e-5, atol=1e-4)
        # Windows lie in [cue, cue + 4 s) at the model rate (cue index scaled by the rates).
        cue = tw.trial_cues[trial] * rate_ratio
        assert tw.start[rows].min() >= cue - 0.5
        assert tw.start[rows].max() + tw.x.shape[2] <= cue + 4.0 * tw.rate_hz + 0.5


def test_simulated_recording_gives_balanced_classes():
    settings = SimulatorSettings(n_channels=8, seed=3)
    sim = EEGSimulator(settings)
    blocks = 6  # each block is one permutation of the 4 simulator classes
    n = sim.schedule.trial(blocks * len(settings.classes) - 1).stop
    rec = Recording(
        data=sim.generate(n),
        rate_hz=settings.rate_hz,
        labels=sim.labels,
        events=tuple(sim.schedule.cues_between(0, n)),
        timestamps=None,
        source="simulator",
        run="sim",
    )
    class_map = {"left_hand": "left_hand", "right_hand": "right_hand"}
    tw = extract_trials([rec], class_map, config())
    assert tw.labels == SMALL_8 and tw.x.shape[1:] == (8, 320)
    assert trials_per_class(tw) == {"left_hand": blocks, "right_hand": blocks}
    assert set(np.bincount(tw.trial).tolist()) <= {4, 5}  # 2 s windows, 0.5 s hop, 4 s trials


def test_subset_keeps_trial_ids_and_concatenate_shifts_them(hands_feet):
    tw = hands_feet
    part = tw.subset(np.isin(tw.trial, [3, 20]))
    assert sorted(set(part.trial.tolist())) == [3, 20]
    assert part.trial_classes is tw.trial_classes
    assert trials_per_class(part) == {
        c: int(sum(tw.trial_classes[t] == i for t in (3, 20))) for i, c in enumerate(tw.classes)
    }
    indexed = tw.subset(np.arange(5))
    np.testing.assert_array_equal(indexed.x, tw.x[:5])
    both = TrialWindows.concatenate([tw, part])
    assert len(both) == len(tw) + len(part)
    assert len(both.trial_classes) == 60 and both.runs == tw.runs * 2
    assert set(both.trial[len(tw) :].tolist()) == {33, 50}
    np.testing.assert_array_equal(both.y, both.trial_classes[both.trial])
    assert "S001R06: hands 7 trials" in tw.summary()


def test_channel_selection_reorders_case_insensitively(r06):
    tw = extract_trials([r06], HANDS_FEET, config(), channels=["cz", "C3", "c4"])
    assert tw.labels == ("Cz", "C3", "C4") and tw.x.shape[1] == 3


# -- class maps ------------------------------------------------------------------------------


def test_parse_class_map_order_and_shared_classes():
    assert parse_class_map(["T1:hands", "T2:feet"]) == {"T1": "hands", "T2": "feet"}
    mapping = parse_class_map(["T2:feet", " T1 : hands ", "T3:feet"])
    assert mapping == {"T2": "feet", "T1": "hands", "T3": "feet"}
    assert tuple(dict.fromkeys(mapping.values())) == ("feet", "hands")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["T1"], "LABEL:CLASS"),
        (["T1:"], "LABEL:CLASS"),
        ([":hands"], "LABEL:CLASS"),
        (["T1:hands", "T1:feet"], "given twice"),
        ([], "no classes"),
    ],
)
def test_parse_class_map_errors(items, message):
    with pytest.raises(ValueError, match=message):
        parse_class_map(items)


# -- errors ----------------------------------------------------------------------------------


def test_xdf_cut_mid_chunk_gives_every_intact_chunk(tmp_path, caplog):
    """LabRecorder's R06 cut at 60 %: the 74.5 s and 18 markers before the cut, a warning per
    stream with what was recovered; --strict refuses with the same figures."""
    data = XDF_R06.read_bytes()
    path = tmp_path / "cut.xdf"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING):
        recording = load_recording(path)
    assert recording.n_samples == 11924 and len(recording.events) == 18
    assert 74.0 < recording.duration_s < 75.0
    assert len(recording.damage) == 2
    eeg_note = next(n for n in recording.damage if "'EEGMMIDB-S001'" in n)
    assert "no footer" in eeg_note and "recovered 74.5 s (11924 samples)" in eeg_note
    assert any("recovered 18 markers" in n for n in recording.damage)
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 2 and all("--strict refuses" in w for w in warned)
    with pytest.raises(RecordingError, match=r"recovered 74\.5 s.*Refused \(--strict\)") as info:
        load_recording(path, strict=True)
    assert str(path) in str(info.value)


def test_compressed_xdf_cut_short_gives_what_decompresses(tmp_path):
    """A .xdfz cut short: gzip refused the whole file (EOFError) where the same cut .xdf gives
    every intact chunk; now it gives what decompresses, with the same damage notes."""
    whole = load_recording(XDF_R06)
    packed = gzip.compress(XDF_R06.read_bytes())
    path = tmp_path / "cut.xdfz"
    path.write_bytes(packed[: int(len(packed) * 0.6)])
    recording = load_recording(path)
    assert 40.0 < recording.duration_s < 110.0 and recording.events
    np.testing.assert_array_equal(recording.data, whole.data[: recording.n_samples])
    assert recording.events == whole.events[: len(recording.events)]
    assert all("no footer" in note for note in recording.damage)
    with pytest.raises(RecordingError, match="Refused"):
        load_recording(path, strict=True)


def test_xdf_with_fewer_samples_than_its_footer_counts_says_what_is_lost(tmp_path):
    eeg, markers, _ = synthetic_xdf_streams()
    path = tmp_path / "short.xdf"
    write_xdf(path, [eeg, markers], footer_counts=[len(eeg["times"]) + 250, len(markers["times"])])
    recording = load_recording(path)
    assert recording.n_samples == len(eeg["times"])
    (note,) = recording.damage
    assert "'synthetic-eeg'" in note and "footer counts 2250" in note
    assert "lost 2.5 s (250 samples)" in note
    with pytest.raises(RecordingError, match="lost 2.5 s"):
        load_recording(path, strict=True)


def test_xdf_sample_with_a_corrupt_timestamp_is_dropped_and_the_markers_kept(tmp_path):
    """One NaN timestamp (corrupt bytes) used to become NaN for the whole stream in pyxdf's
    dejitter: every marker was dropped as outside the EEG, and --strict let it pass."""
    eeg, markers, _ = synthetic_xdf_streams()
    eeg["times"][500] = float("nan")
    path = tmp_path / "nan-stamp.xdf"
    write_xdf(path, [eeg, markers])
    recording = load_recording(path)
    assert recording.n_samples == len(eeg["times"]) - 1
    assert np.isfinite(recording.timestamps).all()
    assert recording.events == ((200, "left"), (899, "right"), (1399, "left"))
    (note,) = recording.damage
    assert "'synthetic-eeg'" in note and "1 samples with a corrupt (non-finite) timestamp" in note
    with pytest.raises(RecordingError, match="non-finite"):
        load_recording(path, strict=True)


def test_whole_xdf_has_no_damage():
    assert load_recording(XDF_R06).damage == ()


def test_truncated_edf_is_read_in_part_with_what_was_lost(tmp_path, caplog):
    """An EDF shorter than its header declares loaded whole before, with only MNE's warning."""
    data = EDF_R06.read_bytes()
    path = tmp_path / "cut.edf"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with caplog.at_level(logging.WARNING):
        recording = load_recording(path)
    assert recording.duration_s == pytest.approx(74.0)
    (note,) = recording.damage
    assert "shorter than the 125 s its header declares" in note
    assert "recovered 74.0 s (11840 samples) and 18 markers; lost 51.0 s (8160 samples)" in note
    assert any("--strict refuses" in r.getMessage() for r in caplog.records)
    with pytest.raises(RecordingError, match=r"lost 51\.0 s.*Refused \(--strict\)"):
        load_recording(path, strict=True)
    assert load_recording(EDF_R06).damage == ()


def test_xdf_without_footer_or_numeric_stream(tmp_path):
    eeg, markers, _ = synthetic_xdf_streams()
    no_footer = tmp_path / "no_footer.xdf"
    write_xdf(no_footer, [eeg, markers], footers=False)
    recording = load_recording(no_footer)
    assert recording.n_samples == len(eeg["times"])
    assert all("no footer" in note for note in recording.damage)
    with pytest.raises(RecordingError, match="no footer"):
        load_recording(no_footer, strict=True)
    only_markers = tmp_path / "markers.xdf"
    write_xdf(only_markers, [markers])
    with pytest.raises(RecordingError, match="no numeric stream") as info:
        load_recording(only_markers)
    assert "synthetic-markers" in str(info.value)
    garbage = tmp_path / "garbage.xdf"
    garbage.write_bytes(b"not an xdf file at all")
    with pytest.raises(RecordingError, match="garbage.xdf"):
        load_recording(garbage)


def test_unknown_extension_and_missing_file(tmp_path):
    csv = tmp_path / "rec.csv"
    csv.write_text("1,2,3\n")
    with pytest.raises(RecordingError, match=r"unsupported file type '\.csv'.*\.edf.*\.xdf"):
        load_recording(csv)
    with pytest.raises(RecordingError, match="does not exist"):
        load_recording(tmp_path / "nope.edf")


def test_missing_channel_is_named(r06):
    with pytest.raises(RecordingError, match="XX9") as info:
        extract_trials([r06], HANDS_FEET, config(), channels=["C3", "XX9"])
    assert "S001R06.edf" in str(info.value)


def test_no_matching_cues_is_an_error(r06, caplog):
    with pytest.raises(RecordingError, match="no trial windows"):
        extract_trials([r06], {"X7": "nothing"}, config())
    assert "X7" in caplog.text


def test_span_shorter_than_a_window_is_refused(r06):
    with pytest.raises(ValueError, match="shorter than one window"):
        extract_trials([r06], HANDS_FEET, config(), 0.0, 1.5)
