"""``bci-app bench latency``: ours and the mne-lsl pipeline side by side, and the fixed delays."""

from __future__ import annotations

import pytest
from conftest import last_json, run_cli


@pytest.mark.slow
def test_bench_latency_reports_the_peer_ratio_and_the_group_delays() -> None:
    figures = last_json(run_cli("bench", "latency", "--duration", "2", "--json", timeout=400))
    assert len(figures["cases"]) >= 3
    for case in figures["cases"]:
        for key in ("e2e_p99_ms", "inference_p99_ms", "device", "dropped_windows"):
            assert key in case  # the keys outside checks read
        peer = case["peer"]
        assert peer["windows"] > 5 and peer["e2e_p99_ms"] > 0
        assert case["ratio_e2e_p99"] == pytest.approx(case["e2e_p99_ms"] / peer["e2e_p99_ms"], 1e-3)
        assert set(case["group_delay_ms"]) == {"10", "20"}
        assert case["settling_s"] > 0
        assert peer["inference_p50_ms"] > 0 and case["ratio_inference_p50"] > 0
        if case["runner"] == "onnxruntime":
            assert case["warm_runs"] > 0  # the CPU worker keeps the model warm between windows
    tangent = next(c for c in figures["cases"] if c["body"] == "tangent")
    assert tangent["runner"] == "eager"  # the motor-imagery default: torch, band and alignment
    assert tangent["warm_runs"] == 0  # eager: a warm run bought nothing and delayed windows
    one_khz = next(c for c in figures["cases"] if c["stream_rate_hz"] == 1000.0)
    assert max(one_khz["group_delay_ms"].values()) <= 20.0  # the default chain's target
    # the time from the cue to a reliable decision, on the simulator and on S001 with its cues
    for session in ("simulator", "S001R06"):
        reached = figures["decision"][session]["decision_latency_s"]
        assert 0 < reached["70"] <= reached["90"] <= 4.0
