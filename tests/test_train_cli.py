"""bci-app train / evaluate on real recordings, and the shipped models."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from bci_app.config import load_config, parse_config
from bci_app.decoders import load_decoder
from bci_app.io import load_recording
from bci_app.nn.checkpoint import (
    DEFAULT_MODEL_DIR,
    CheckpointError,
    apply_checkpoint,
    load_checkpoint,
)
from bci_app.nn.metadata import FORMAT_VERSION
from bci_app.pipeline import Pipeline
from bci_app.train.commands import TrainingError, train_command
from bci_app.train.data import extract_trials

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
CONFIG = ROOT / "benchmarks" / "eegmmidb.yaml"


def bci_app(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=timeout)


@pytest.mark.slow
def test_train_on_labrecorder_xdf_then_evaluate_on_edf(shared_data, tmp_path):
    xdf = shared_data / "xdf" / "S001R06-labrecorder.xdf"
    out = tmp_path / "model"
    trained = bci_app(
        "train",
        str(xdf),
        "--classes",
        "T1:hands",
        "T2:feet",
        "--out",
        str(out),
        "--config",
        str(ROOT / "benchmarks" / "eegmmidb.yaml"),
        "--epochs",
        "25",
        "--json",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads(trained.stdout.strip().splitlines()[-1])
    assert metrics["decoder"] == "se" and metrics["epochs_run"] == 25
    assert metrics["train_trials"] == 15  # the recipe trains on every trial, fixed epochs
    decoder, metadata = load_decoder(out)
    assert decoder.config.body == "tangent" and decoder.alignment is not None
    assert metadata.decoder.band_hz == [8.0, 30.0] and metadata.decoder.alignment is not None
    with pytest.raises(CheckpointError, match="load_decoder, which applies the alignment"):
        load_checkpoint(out)  # the network alone would see windows it was not trained on
    assert metadata.classes == ["hands", "feet"]
    assert len(metadata.channel_labels) == 64 and metadata.model_rate_hz == 160.0
    assert metadata.dsp.notch == 60
    assert "S001R06-labrecorder.xdf" in metadata.training["files"][0]
    assert (out / "MODEL_CARD.md").read_text().startswith("# ")

    edf = shared_data / "eegmmidb" / "S001" / "S001R10.edf"
    evaluated = bci_app("evaluate", str(out), str(edf), "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    result = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert {"accuracy", "balanced_accuracy", "confusion", "n_trials", "chance"} <= result.keys()
    assert result["n_trials"] == 15 and result["chance"] == 0.5
    assert np.array(result["confusion"]).sum() == 15
    assert 0.0 <= result["accuracy"] <= 1.0


def train_40_simulated_seconds(out: Path) -> subprocess.CompletedProcess:
    """``bci-app train`` on 40 s of the simulator (too few trials per class) into ``out``."""
    return bci_app(
        "train", "--simulated", "40", "--classes", "left_hand", "right_hand", "--out", str(out)
    )


def test_too_few_trials_says_how_many_are_needed(tmp_path):
    result = train_40_simulated_seconds(tmp_path / "m")
    assert result.returncode == 2
    assert "too few trials to train" in result.stderr
    assert "at least 4 trials" in result.stderr


@pytest.mark.slow
def test_train_refuses_to_overwrite_and_evaluate_refuses_a_bad_folder(tmp_path):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    result = train_40_simulated_seconds(occupied)
    assert result.returncode == 2 and "pass --overwrite" in result.stderr
    assert (occupied / "keep.txt").read_text() == "mine"
    result = bci_app("evaluate", str(occupied), "missing.edf", "--json")
    assert result.returncode == 2
    assert "model.safetensors" in result.stderr or "metadata.json" in result.stderr


@pytest.mark.parametrize("name", ["sim-motor-imagery", "eegmmidb-s001-hands-feet"])
def test_shipped_models_load_and_carry_their_metrics(name):
    decoder, metadata = load_decoder(MODELS / name)
    assert metadata.format_version == FORMAT_VERSION and metadata.paradigm.kind == "mi"
    assert decoder.config.body == "tangent" and decoder.alignment is not None
    assert len(metadata.weights_sha256) == 64
    assert metadata.onnx_sha256 is None  # the tangent body runs in torch
    weights = (MODELS / name / "model.safetensors").stat().st_size
    assert weights < 200_000
    held_out = metadata.metrics["cross_validation"]
    assert held_out["accuracy"] > held_out["chance_95"]
    card = (MODELS / name / "MODEL_CARD.md").read_text()
    assert "Reproduce: bci-app train" in card


def test_a_format_3_eegnet_checkpoint_still_loads_and_runs_its_graph(shared_data):
    """The EEGMMIDB model shipped before the tangent body (format 3: before paradigms and
    bodies), kept in tests/data: read as motor imagery with the EEGNet body, its ONNX graph
    checked against its weights and run offline, equal to torch."""
    folder = Path(__file__).parent / "data" / "eegmmidb-s001-eegnet-format3"
    decoder, metadata = load_decoder(folder)
    assert metadata.format_version == 3 < FORMAT_VERSION and metadata.paradigm.kind == "mi"
    assert decoder.config.body == "eegnet" and decoder.onnx is not None
    tw = extract_trials(
        [load_recording(shared_data / "eegmmidb" / "S001" / "S001R06.edf")],
        {"T1": "hands", "T2": "feet"},
        apply_checkpoint(load_config(CONFIG), metadata),
    )
    from_graph, _ = decoder.predict(tw.x[:40])
    assert decoder.onnx is not None  # the graph was used, not dropped
    with torch.inference_mode():
        from_torch = decoder.model(torch.from_numpy(decoder.prepare(tw.x[:40])))[0].numpy()
    np.testing.assert_allclose(from_graph, from_torch, atol=1e-5)


def test_shipped_eegmmidb_model_beats_chance_on_its_runs(shared_data):
    runs = [shared_data / "eegmmidb" / "S001" / f"S001R{r}.edf" for r in ("06", "10")]
    result = bci_app(
        "evaluate", str(MODELS / "eegmmidb-s001-hands-feet"), *map(str, runs), "--json"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["n_trials"] == 30
    assert metrics["accuracy"] > metrics["chance_95"]


@pytest.mark.slow
def test_damaged_recordings_in_evaluate_and_run_replay(shared_data, tmp_path):
    """A cut EDF is evaluated on what it holds and the JSON says what was lost; --strict
    refuses it as a user error (exit 2) naming the file. A cut XDF replays in fast mode."""
    model = str(MODELS / "eegmmidb-s001-hands-feet")
    edf = shared_data / "eegmmidb" / "S001" / "S001R06.edf"
    cut_edf = tmp_path / "cut.edf"
    cut_edf.write_bytes(edf.read_bytes()[: int(edf.stat().st_size * 0.6)])
    result = bci_app("evaluate", model, str(cut_edf), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["n_trials"] < 15 and "lost 51.0 s (8160 samples)" in metrics["damage"][0]
    assert "is damaged" in result.stderr
    refused = bci_app("evaluate", model, str(cut_edf), "--strict")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "cut.edf" in refused.stderr and "--strict" in refused.stderr
    xdf = shared_data / "xdf" / "S001R06-labrecorder.xdf"
    cut_xdf = tmp_path / "cut.xdf"
    cut_xdf.write_bytes(xdf.read_bytes()[: int(xdf.stat().st_size * 0.6)])
    replayed = bci_app("run", "--replay", str(cut_xdf), "--fast", "--model", model, "--json")
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    summary = json.loads(replayed.stdout.strip().splitlines()[-1])
    assert 70 < summary["duration_s"] < 80 and len(summary["damage"]) == 2
    assert summary["trials"]["n_trials"] >= 8


@pytest.mark.slow
def test_headless_pipeline_with_the_default_model_predicts_the_cued_class():
    """The demo: simulator + shipped model; windows inside an imagery period are classified
    as the cued class far above chance (25 %)."""
    assert DEFAULT_MODEL_DIR == MODELS / "sim-motor-imagery"
    config = parse_config({"windows": {"hop": 0.25}, "simulator": {"seed": 7}})
    pipeline = Pipeline(config, with_model=True)
    predictions, lock = [], threading.Lock()

    def keep(prediction):
        with lock:
            predictions.append(prediction)

    pipeline.add_prediction_sink(keep)
    with pipeline:
        time.sleep(45.0)
        status = pipeline.status()
    simulator = pipeline.simulator
    rate = simulator.settings.rate_hz
    n = round(pipeline.config.windows.length * rate)
    hits, total = 0, 0
    for p in predictions:
        last = round((p.timestamp - simulator.t0) * rate)
        cued = simulator.schedule.class_at(last)
        if cued is not None and simulator.schedule.class_at(last - n + 1) == cued:
            total += 1
            hits += p.class_name == cued
    assert status.worker.predicted == len(predictions) > 100
    assert status.worker.errors == 0
    assert total >= 20
    assert hits / total > 0.6, (hits, total)


def test_cross_validation_needs_two_folds(tmp_path):
    result = bci_app(
        "train", "--simulated", "40", "--classes", "a", "b", "--out", str(tmp_path), "--cv", "1"
    )
    assert result.returncode == 2
    assert "--cv: must be a whole number of folds >= 2" in result.stderr
    with pytest.raises(TrainingError, match="at least 2 folds"):
        train_command([], ["a", "b"], tmp_path / "m", parse_config({}), cv_folds=1)


def test_evaluate_names_a_missing_class_map_instead_of_a_traceback(tmp_path):
    checkpoint = tmp_path / "model"
    shutil.copytree(MODELS / "eegmmidb-s001-hands-feet", checkpoint)
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    del metadata["training"]["class_map"]
    (checkpoint / "metadata.json").write_text(json.dumps(metadata))
    edf = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb" / "S001"
    result = bci_app("evaluate", str(checkpoint), str(edf / "S001R10.edf"))
    assert result.returncode == 2
    assert "metadata.json: training.class_map is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_refuses_files_without_trials_of_a_class_and_cv_beyond_the_trials(tmp_path):
    """No trial of one class: balanced accuracy and chance would count on a class that is not
    there (its recall NaN, which is not JSON); more folds than trials: empty folds."""
    checkpoint = tmp_path / "model"
    shutil.copytree(MODELS / "eegmmidb-s001-hands-feet", checkpoint)
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    metadata["training"]["class_map"] = {"T1": "hands", "T9": "feet"}  # R10 has no T9
    (checkpoint / "metadata.json").write_text(json.dumps(metadata))
    edf = Path(__file__).resolve().parents[2] / "shared" / "data" / "eegmmidb" / "S001"
    result = bci_app("evaluate", str(checkpoint), str(edf / "S001R10.edf"), "--json")
    assert result.returncode == 2, result.stderr[-2000:]
    assert (
        "{'hands': 7, 'feet': 0}" in result.stderr and "every class needs trials" in result.stderr
    )
    trained = bci_app(
        "train", str(edf / "S001R10.edf"), "--classes", "T1:hands", "T2:feet", "--decoder",
        "riemann", "--cv", "16", "--out", str(tmp_path / "cv"),
    )  # fmt: skip
    assert trained.returncode == 2
    assert "--cv 16 asks for more folds than the 15 trials" in trained.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_classical_decoder_evaluates_and_replays_on_the_same_online_path(shared_data, tmp_path):
    """A riemann checkpoint through ``evaluate`` and through ``run --replay --fast`` (dsp, online
    windows, the live worker): the same trials, the same decisions."""
    folder = shared_data / "eegmmidb" / "S001"
    out = tmp_path / "riemann"
    trained = bci_app(
        "train", str(folder / "S001R04.edf"), "--classes", "T1:left", "T2:right",
        "--decoder", "riemann", "--no-adapt", "--out", str(out),
        "--config", str(ROOT / "benchmarks" / "eegmmidb.yaml"), "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout.strip().splitlines()[-1])["decoder"] == "riemann"
    decoder, metadata = load_decoder(out)
    assert metadata.decoder.kind == "riemann" and metadata.decoder.band_hz == [8.0, 30.0]
    assert metadata.decoder.alignment.memory_windows == 0  # --no-adapt
    assert "tangent space" in (out / "MODEL_CARD.md").read_text()
    test_run = str(folder / "S001R08.edf")
    evaluated = bci_app("evaluate", str(out), test_run, "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    offline = json.loads(evaluated.stdout.strip().splitlines()[-1])
    replayed = bci_app(
        "run", "--replay", test_run, "--fast", "--model", str(out), "--out",
        str(tmp_path / "p.jsonl"), "--json",
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    online = json.loads(replayed.stdout.strip().splitlines()[-1])["trials"]
    assert online["n_trials"] == offline["n_trials"] == 15
    assert online["accuracy"] == offline["accuracy"] > 0.5  # 0.600 here; chance 0.5
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[1])  # after the header
    assert len(first["weights"]) == 64 and max(first["weights"]) == pytest.approx(1.0)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_auto_chooses_on_the_calibration_runs_and_records_every_candidate(shared_data, tmp_path):
    folder = shared_data / "eegmmidb" / "S001"
    out = tmp_path / "auto"
    trained = bci_app(
        "train", str(folder / "S001R04.edf"), str(folder / "S001R08.edf"),
        "--classes", "T1:left", "T2:right", "--decoder", "auto", "--epochs", "5",
        "--time-budget", "600",
        "--config", str(ROOT / "benchmarks" / "eegmmidb.yaml"), "--out", str(out), "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads(trained.stdout.strip().splitlines()[-1])
    selection = metrics["selection"]
    assert selection["protocol"] == "leave one run out"
    assert {"se", "riemann", "mdm", "csp-lda", "riemann+mdm+csp-lda+se", "riemann+se"} <= set(
        selection["candidates"]
    )
    assert selection["chosen"] == metrics["decoder"]
    assert metrics["cross_validation"] == selection["candidates"][selection["chosen"]]
    decoder, metadata = load_decoder(out)
    expected_kind = "ensemble" if "+" in metrics["decoder"] else metrics["decoder"]
    assert metadata.decoder.kind in (expected_kind, "network")
    assert metadata.metrics["selection"]["candidates"].keys() == selection["candidates"].keys()
    card = (out / "MODEL_CARD.md").read_text()
    assert "selection.candidates.riemann.balanced_accuracy" in card
