"""The bci-app command line as a user runs it (real processes, real LSL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pylsl
import pytest
from conftest import run_cli, unique_id

ROOT = Path(__file__).resolve().parents[1]


def bci_app(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=timeout)


def test_headless_run_prints_status_lines_and_a_json_summary(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "simulator:\n  channels: 8\n  rate: 250.0\nmodel_rate: 250.0\n"
        "windows:\n  length: 1.0\n  hop: 0.25\n"
    )
    result = bci_app("run", "--headless", "--no-model", "--config", str(config), "--duration", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "8 channels at 250 Hz" in lines[0]
    status_lines = [line for line in lines if line.startswith("state=")]
    assert len(status_lines) >= 2
    assert "state=live" in status_lines[-1] and "windows/s=" in status_lines[-1]
    assert "missing=0" in status_lines[-1]
    summary = json.loads(lines[-1])
    assert summary["windows"] >= 5
    assert summary["flagged_windows"] == 0 and summary["gaps"] == 0
    assert summary["missing_samples"] == 0 and summary["foreign_refusals"] == 0
    assert summary["samples"] > 500
    assert summary["realtime_priority"] in (10, None)  # None where the system refuses it


def test_invalid_config_exits_with_the_field_named(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("windows:\n  length: 1.0\n  hop: 2.0\nfilters:\n  notchh: 50\n")
    result = bci_app("run", "--headless", "--config", str(config), "--duration", "1")
    assert result.returncode == 2
    assert "filters.notchh: unknown key" in result.stderr
    assert "hop 2.0 s is longer than the window length 1.0 s" in result.stderr


def test_missing_stream_lists_what_is_visible(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("stream:\n  source_id: no-such-amplifier\n  resolve_timeout: 0.5\n")
    result = bci_app("run", "--headless", "--config", str(config), "--duration", "1")
    assert result.returncode == 2
    assert "no LSL stream matches source_id='no-such-amplifier'" in result.stderr


def test_simulate_streams_and_streams_lists_it():
    sid = unique_id("cli-sim")
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bci_app",
            "simulate",
            "--channels",
            "8",
            "--rate",
            "256",
            "--source-id",
            sid,
            "--duration",
            "6",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        found = pylsl.resolve_byprop("source_id", sid, 1, 5.0)
        assert found and found[0].channel_count() == 8 and found[0].nominal_srate() == 256
        listed = bci_app("streams", "--json", "--wait", "1.0")
        assert listed.returncode == 0
        streams = {s["source_id"]: s for s in json.loads(listed.stdout.strip().splitlines()[-1])}
        assert streams[sid]["channels"] == 8
        assert streams[f"{sid}-markers"]["format"] == pylsl.cf_string
    finally:
        out, _ = sim.communicate(timeout=15)
    assert sim.returncode == 0
    assert "pushed" in out


@pytest.mark.slow
def test_bench_acquisition_json_contract():
    result = bci_app("bench", "acquisition", "--duration", "2", "--json", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"ours", "mne_lsl", "ratio_age_p99", "dropped_samples"} <= summary.keys()
    for case in ("64ch@1000Hz", "256ch@2048Hz"):
        for reader in ("ours", "mne_lsl"):
            figures = summary[reader][case]
            assert figures["samples"] > 0
            assert figures["age_p50_ms"] > 0
            assert figures["cpu_s_per_stream_s"] > 0
    assert summary["dropped_samples"] == 0


def test_a_bug_is_one_line_and_exit_1_while_user_errors_exit_2(monkeypatch, capsys):
    from bci_app import cli
    from bci_app.cli import streams

    def broken(args):  # stands in for a bug: no real command fails on purpose
        raise KeyError("class_map")

    monkeypatch.setattr(streams, "cmd_streams", broken)
    assert cli.main(["streams"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "bci-app streams: unexpected error (a bug, please report it): KeyError: 'class_map'; "
        "run with --debug for the traceback"
    ]
    with pytest.raises(KeyError):
        cli.main(["--debug", "streams"])
    # A user error keeps its own message and exit code 2.
    assert cli.main(["replay", "missing.xdf"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_json_last_line_is_strict_json(capsys):
    """A figure that is not a number is written null: NaN is not JSON, and outside checks
    parse the last line with a strict parser."""
    from bci_app.cli._common import print_json

    print_json({"recall": {"feet": float("nan")}, "folds": [0.5, float("inf")], "n": 3})
    line = capsys.readouterr().out.strip()
    assert json.loads(line, parse_constant=lambda name: pytest.fail(name)) == {
        "recall": {"feet": None},
        "folds": [0.5, None],
        "n": 3,
    }
