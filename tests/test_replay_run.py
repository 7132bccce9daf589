"""``run --replay``: fast replay is deterministic, equals a live-paced replay over LSL, and
evaluates the online decisions per trial like ``bci-app evaluate``."""

from __future__ import annotations

import json
import subprocess
import sys

import mne
import numpy as np
import pytest
from conftest import SHARED_DATA
from xdf_files import synthetic_xdf_streams, write_xdf

from bci_app.config import parse_config
from bci_app.io import load_recording
from bci_app.io.montage import EEGMMIDB_64
from bci_app.nn.checkpoint import DEFAULT_MODEL_DIR
from bci_app.pipeline.replay import pseudo_online_metrics, run_fast, run_paced, write_jsonl
from bci_app.train.commands import evaluate_command

R06_XDF = SHARED_DATA / "xdf" / "S001R06-labrecorder.xdf"
EEGMMIDB_MODEL = DEFAULT_MODEL_DIR.parent / "eegmmidb-s001-hands-feet"


@pytest.fixture(scope="module")
def fast_r06():
    return run_fast(R06_XDF, parse_config({}), EEGMMIDB_MODEL)


def test_fast_replay_is_deterministic_and_classifies_every_window(fast_r06):
    again = run_fast(R06_XDF, parse_config({}), EEGMMIDB_MODEL)
    assert len(fast_r06.windows) == len(again.windows) == 493  # (125 s - 2 s) / 0.25 s + 1
    assert [w.seq for w in fast_r06.windows] == list(range(493))
    for a, b in zip(fast_r06.windows, again.windows, strict=True):
        np.testing.assert_array_equal(a.prediction.probabilities, b.prediction.probabilities)
        np.testing.assert_array_equal(a.prediction.weights, b.prediction.weights)
    assert fast_r06.summary()["n_flagged"] == 0


@pytest.mark.slow
def test_fast_replay_equals_live_paced_replay_over_lsl():
    # Adaptation off: the model's alignment follows the windows it is given, and live is
    # latest-wins (a window may be replaced at start-up, never changed), so with adaptation on
    # the two paths would differ after the first window live did not see.
    config = parse_config({"model": {"adapt": False}})
    paced = run_paced(R06_XDF, config, EEGMMIDB_MODEL, speed=5.0)
    fast, live = run_fast(R06_XDF, config, EEGMMIDB_MODEL).predictions, paced.predictions
    assert len(live) >= 0.97 * len(fast)
    assert set(live) <= set(fast)
    for seq, prediction in live.items():
        np.testing.assert_allclose(prediction.probabilities, fast[seq].probabilities, atol=1e-5)
        np.testing.assert_allclose(prediction.weights, fast[seq].weights, atol=1e-5)
        assert prediction.class_name == fast[seq].class_name


def test_pseudo_online_accuracy_matches_evaluate(fast_r06):
    metrics = pseudo_online_metrics(fast_r06, load_recording(R06_XDF))
    evaluated = evaluate_command(EEGMMIDB_MODEL, [R06_XDF])
    # The default hop (0.25 s) is the checkpoint's, so both see the same windows per trial.
    assert metrics["n_trials"] == evaluated["n_trials"] == 15
    assert metrics["accuracy"] == evaluated["accuracy"]
    assert metrics["confusion"] == evaluated["confusion"]
    assert metrics["accuracy"] > metrics["chance_95"]


def test_jsonl_has_one_line_per_window_with_flags(tmp_path):
    eeg, markers, _ = synthetic_xdf_streams(rate=160.0, n=4000)
    # The model's 64 electrodes: rename the synthetic EEG channels and widen it to 64.
    n = len(eeg["times"])
    rng = np.random.default_rng(0)
    values = rng.standard_normal((n, 64)).astype(np.float32) * 10.0
    values[2500, 5] = np.nan
    eeg.update(
        values=values,
        channels=[(label, "microvolts", "EEG") for label in EEGMMIDB_64],
    )
    path = tmp_path / "gap-and-nan.xdf"
    write_xdf(path, [eeg, markers])
    run = run_fast(path, parse_config({}), EEGMMIDB_MODEL)
    out = write_jsonl(run, tmp_path / "p.jsonl")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    header, records = lines[0], lines[1:]
    assert header["classes"] == ["hands", "feet"] and len(header["electrodes"]) == 64
    assert header["mode"] == "fast"
    assert [r["seq"] for r in records] == [w.seq for w in run.windows]
    flagged = [r for r in records if r["flags"]]
    assert any("gap" in r["flags"] for r in flagged)  # the 2 s timestamp jump
    assert any("nonfinite" in r["flags"] for r in flagged)  # the NaN sample
    assert all(r["probabilities"] is None and r["class"] is None for r in flagged)
    usable = [r for r in records if not r["flags"]]
    assert usable and all(abs(sum(r["probabilities"]) - 1) < 1e-4 for r in usable)
    times = [r["time"] for r in records]
    assert times == sorted(times)
    # No cue of the model's class map (T1/T2) in this file: no per-trial accuracy.
    assert pseudo_online_metrics(run, load_recording(path)) is None


def test_fast_replay_of_an_edf_through_the_cli(tmp_path):
    edf = SHARED_DATA / "eegmmidb" / "S001" / "S001R10.edf"
    out = tmp_path / "r10.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bci_app", "run", "--replay", str(edf), "--fast",
         "--model", str(EEGMMIDB_MODEL), "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (
        summary["mode"] == "fast" and summary["n_windows"] == len(out.read_text().splitlines()) - 1
    )
    assert summary["stream_s_per_wall_s"] > 10
    trials = summary["trials"]
    assert trials["n_trials"] == 15 and trials["accuracy"] > trials["chance_95"]
    assert "online per-trial accuracy" in result.stdout


def test_fast_replay_refuses_a_recording_without_the_model_channels(tmp_path):
    info = mne.create_info(["C3", "C4", "Cz"], 160.0, "eeg")
    raw = mne.io.RawArray(np.zeros((3, 1600)), info, verbose=False)
    path = tmp_path / "three_channels_raw.fif"
    raw.save(path, verbose=False)
    result = subprocess.run(
        [sys.executable, "-m", "bci_app", "run", "--replay", str(path), "--fast",
         "--model", str(EEGMMIDB_MODEL)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "lacks 61 of the model's 64 channels" in result.stderr


@pytest.mark.slow
def test_bench_replay_json_contract():
    result = subprocess.run(
        [sys.executable, "-m", "bci_app", "bench", "replay", "--duration", "2", "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["stream_s_per_wall_s"] > 10
    ours, peer = summary["timing"]["ours"], summary["timing"]["mne_lsl"]
    assert ours["stamped_in_future"] == 0.0 and ours["samples"] > 200
    assert summary["replay_timing_error_p99_ms"] == ours["push_lateness_ms"]["p99"]
    assert peer["abs_error_ms"]["n"] > 200 and summary["ratio_reader_abs_error_p99"] > 0


def test_fast_replay_across_a_clock_reset_flags_the_gap_not_a_rate_change(tmp_path):
    """clock_resets.xdf (libxdf's example): synchronised, the EEG has one 274 s gap where the
    sending machine's clock was reset. Replayed, the windows across it are flagged as a gap,
    every other window is classified, and the time base keeps its nominal 100 Hz."""
    from bci_app.bench.latency import make_checkpoint
    from bci_app.config import DspConfig

    path = SHARED_DATA / "xdf" / "example-files" / "clock_resets.xdf"
    labels = tuple(f"ch{i}" for i in range(1, 9))
    config = parse_config({"model_rate": 100.0, "filters": {"notch": None}})
    model = make_checkpoint(tmp_path / "model", labels, 100.0, DspConfig.from_config(config))
    run = run_fast(path, config, model)
    flagged = [w for w in run.windows if w.prediction is None]
    assert flagged and all(w.flags == ["gap"] for w in flagged)
    assert len(flagged) <= 2 / 0.25 + 1  # only windows holding samples from both sides
    stamps = np.array([w.time for w in run.windows])
    steps = np.diff(stamps)
    assert np.sum(steps > 10) == 1  # the one gap
    regular = steps[steps < 10]
    assert np.allclose(regular, 0.25, atol=0.02)  # the hop at the nominal rate on both sides


@pytest.mark.parametrize("model", [EEGMMIDB_MODEL, "riemann"])
def test_batched_fast_replay_equals_window_by_window(model, tmp_path):
    """Fast replay classifies its windows in batches (ONNX Runtime for a network, the decoder's
    own arrays otherwise); the decisions equal the live worker's one window at a time."""
    if model == "riemann":
        from bci_app.train.commands import train_command

        recordings = [load_recording(R06_XDF)]
        train_command(
            recordings, ["T1:hands", "T2:feet"], tmp_path / "riemann", parse_config({}),
            decoder="riemann", progress=False,
        )  # fmt: skip
        model = tmp_path / "riemann"
    one = run_fast(R06_XDF, parse_config({}), model, batch_size=1)
    batched = run_fast(R06_XDF, parse_config({}), model, batch_size=64)
    assert [w.seq for w in one.windows] == [w.seq for w in batched.windows]
    for a, b in zip(one.windows, batched.windows, strict=True):
        assert (a.prediction is None) == (b.prediction is None)
        if a.prediction is not None:
            for field in ("probabilities", "weights"):
                np.testing.assert_allclose(
                    getattr(a.prediction, field), getattr(b.prediction, field), atol=1e-5
                )
    with pytest.raises(ValueError, match="batch_size"):
        run_fast(R06_XDF, parse_config({}), model, batch_size=0)
