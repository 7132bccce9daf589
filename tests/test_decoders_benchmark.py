"""``bci-app bench decoding`` (also benchmarks/decoders.py) runs its leave-one-run-out folds on
real EEG (S001) and prints one JSON object with every method's per-fold figures (few network
epochs: the contract, not the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bci_app.bench import decoding
from bci_app.train.trainer import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
FOLDER = decoding.DATA / "S001"
FIGURES = {"accuracy", "balanced_accuracy", "kappa", "n_trials", "train_seconds"}


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_decoding_benchmark_json_contract() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "decoders.py"),
            "--tasks",
            "imagined_left_vs_right",
            "--methods",
            "se",
            "riemann",
            "riemann (no adaptation)",
            "--epochs",
            "3",
            "--timing",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["protocol"] == "leave one run out"
    task = summary["tasks"]["imagined_left_vs_right"]
    assert task["runs"] == ["S001R04.edf", "S001R08.edf"]
    methods = task["methods"]
    missing = decoding._network_peers_missing()  # the same environment as the subprocess
    networks = set() if missing else set(decoding.NETWORK_PEERS)
    assert set(methods) == {
        "pyriemann_ts_lr",
        "pyriemann_mdm",
        "csp_lda",
        *networks,
        "se",
        "riemann",
        "riemann (no adaptation)",
    }
    named_missing = dict.fromkeys(decoding.NETWORK_PEERS, missing) if missing else {}
    assert task["peers_missing"] == named_missing
    for name, figures in methods.items():
        assert len(figures["folds"]) == 2, name  # each run held out once
        for fold in figures["folds"]:
            assert 0.0 <= fold["accuracy"] <= 1.0 and fold["n_trials"] >= 10
            assert fold["train_seconds"] >= 0.0
    timing = summary["training_seconds_45_trials"]
    assert timing["n_trials"] == 45 and len(timing["runs"]) == 3
    assert timing["se_seconds"] > 0 and timing["riemann_seconds"] > 0 and timing["auto_seconds"] > 0
    assert task["best_peer"] in {"pyriemann_ts_lr", "pyriemann_mdm", "csp_lda"}
    assert task["se_minus_best_peer"] == round(
        methods["se"]["mean_accuracy"] - methods[task["best_peer"]]["mean_accuracy"], 4
    )


@pytest.mark.slow
def test_braindecode_peers_have_per_fold_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """braindecode's EEGNet and ShallowFBCSPNet run on every fold beside the classical peers
    (two training epochs: the contract, not the figures); ``best_peer`` stays classical."""
    missing = decoding._network_peers_missing()
    if missing:
        pytest.skip(missing)
    monkeypatch.setattr(decoding, "BRAINDECODE_EPOCHS", 2)
    lines: list[str] = []
    task = decoding.run_task(
        "imagined_left_vs_right", FOLDER, "S001", ["se"], TrainSettings(epochs=1), lines.append
    )
    methods = task["methods"]
    assert task["peers_missing"] == {}
    for name in decoding.NETWORK_PEERS:
        folds = methods[name]["folds"]
        assert len(folds) == 2, name  # each run held out once
        for fold in folds:
            assert set(fold) == FIGURES
            assert 0.0 <= fold["accuracy"] <= 1.0 and fold["n_trials"] == 15
            assert -1.0 <= fold["kappa"] <= 1.0 and fold["train_seconds"] > 0.0
        assert methods[name]["mean_train_seconds"] > 0.0
    assert len(lines) == 2 and all(f"{name} " in line for line in lines for name in methods)
    assert task["best_peer"] in decoding.PEERS
    best_network = task["best_network_peer"]
    assert best_network in decoding.NETWORK_PEERS
    assert methods[best_network]["mean_accuracy"] == max(
        methods[n]["mean_accuracy"] for n in decoding.NETWORK_PEERS
    )
    assert task["se_minus_best_network_peer"] == round(
        methods["se"]["mean_accuracy"] - methods[best_network]["mean_accuracy"], 4
    )


@pytest.mark.slow
def test_missing_braindecode_is_named_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without braindecode the benchmark runs the other peers and says why the networks are
    missing."""
    monkeypatch.setitem(sys.modules, "braindecode", None)  # import braindecode: not found
    task = decoding.run_task(
        "imagined_left_vs_right", FOLDER, "S001", [], TrainSettings(), lambda line: None
    )
    assert set(task["methods"]) == set(decoding.PEERS)
    assert set(task["peers_missing"]) == set(decoding.NETWORK_PEERS)
    assert all(r.startswith("braindecode not installed") for r in task["peers_missing"].values())
    assert task["best_peer"] in decoding.PEERS and task["best_network_peer"] is None
