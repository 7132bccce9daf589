"""``bci-app bench decoding`` (also benchmarks/decoders.py) runs its leave-one-run-out folds on
real EEG (S001) and prints one JSON object with every method's per-fold figures (few network
epochs: the contract, not the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    assert set(methods) == {
        "pyriemann_ts_lr",
        "pyriemann_mdm",
        "csp_lda",
        "se",
        "riemann",
        "riemann (no adaptation)",
    }
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
