"""Across machines over LSL, on real network namespaces: the simulator in namespace A, a headless
worker in B, the viewer (``gui --attach``'s code path, offscreen) in C, joined by veth pairs on a
bridge in a fourth namespace. Addresses exist only inside these namespaces; all of them are
deleted at the end, also after a failure. Needs root and ``ip`` (CI has both)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bci_app.bench.netns import Hosts, namespaces_unavailable

REPO = Path(__file__).resolve().parents[1]
VIEWER = Path(__file__).with_name("multihost_viewer.py")


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(namespaces_unavailable()), reason=str(namespaces_unavailable())),
]


@pytest.fixture
def hosts(request) -> Iterator[Hosts]:
    made = Hosts(net=request.param["net"], multicast=request.param["multicast"], cwd=REPO)
    try:
        yield made
    finally:
        made.close()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert made.prefix not in left


def _bci(*args: str) -> list[str]:
    return [sys.executable, "-m", "bci_app", *args]


def _worker_config(tmp: Path, name: str, sim_source: str, prefix: str, log: Path) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        "stream:\n"
        f"  source_id: {sim_source}\n"
        "  resolve_timeout: 20.0\n"
        "outlets:\n"
        f"  name_prefix: {prefix}\n"
        f"  source_id_prefix: {prefix}\n"
        f"  jsonl: {log}\n"
        "scheduling:\n"
        "  realtime_priority: null\n"
    )
    return path


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # the line being written
            out.append(json.loads(line))
    return out


def _wait_for(what: str, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _worker_predictions(log: Path) -> dict[float, list[float]]:
    return {round(r["time"], 6): r["probabilities"] for r in _lines(log)[1:]}


@pytest.mark.parametrize("hosts", [{"net": 61, "multicast": True}], indirect=True)
def test_worker_viewer_and_amplifier_on_three_hosts(hosts: Hosts, tmp_path: Path) -> None:
    """Predictions cross to C with the worker's values; killing the worker shows lost, a new
    worker with the prefix brings C back; a second worker with the prefix is never mixed in."""
    sim = f"mh-sim-{os.getpid()}"
    prefix = f"mh{os.getpid()}"
    hosts.start("a", *_bci("simulate", "--name", sim, "--source-id", sim), log=tmp_path / "a.log")
    worker_log = tmp_path / "worker.jsonl"
    config = _worker_config(tmp_path, "b", sim, prefix, worker_log)
    worker = hosts.start("b", *_bci("run", "--headless", "--config", str(config), "--quiet"),
                         log=tmp_path / "b.log")  # fmt: skip
    viewed = tmp_path / "viewer.jsonl"
    hosts.start("c", sys.executable, str(VIEWER), prefix, str(viewed), "90",
                log=tmp_path / "c.log")  # fmt: skip

    def predictions() -> list[dict]:
        return [r for r in _lines(viewed) if r["kind"] == "prediction"]

    _wait_for("predictions at the viewer", lambda: len(predictions()) >= 12, 60)
    first_session = predictions()[0]["session"]
    # A second worker with the same prefix, another session and another model (2 classes).
    other_log = tmp_path / "other.jsonl"
    other = _worker_config(tmp_path, "other", sim, prefix, other_log)
    hosts.start("a", *_bci("run", "--headless", "--config", str(other), "--quiet", "--model",
                           str(REPO / "models" / "eegmmidb-s001-hands-feet")),
                log=tmp_path / "other.log")  # fmt: skip
    _wait_for("the second worker", lambda: len(_lines(other_log)) > 10, 60)
    time.sleep(2.0)

    seen = predictions()
    logged = _worker_predictions(worker_log)
    matched = [r for r in seen if round(r["time"], 6) in logged]
    assert len(matched) >= len(seen) - 2  # the last ones may not be flushed to the log yet
    for r in matched:
        expected = logged[round(r["time"], 6)]
        assert max(abs(a - b) for a, b in zip(r["probabilities"], expected, strict=True)) < 1e-5
        assert r["weights_finite"]
    assert {r["session"] for r in seen} == {first_session}
    assert all(len(r["probabilities"]) == 4 for r in seen)  # never the 2-class worker's
    states = [r for r in _lines(viewed) if r["kind"] == "state"]
    assert any(s["window_live"] and s["shown"] for s in states)  # the panels drew them
    assert set(states[-1]["offsets"]) == {"predictions", "electrode-weights", "latency", "status"}

    # Kill the worker: C reports lost. Restart it (a new session): C binds to it by the prefix
    # (the 2-class worker, also of that prefix, is stopped first so the new one is unambiguous).
    worker.kill()
    worker.wait(5)
    _wait_for("lost", lambda: any(s["lost"] for s in _lines(viewed) if s["kind"] == "state"), 15)
    assert any(s["stream"] == "lost" for s in _lines(viewed) if s["kind"] == "state")
    hosts.processes[-1].terminate()
    hosts.processes[-1].wait(5)
    restarted_log = tmp_path / "restarted.jsonl"
    again = _worker_config(tmp_path, "again", sim, prefix, restarted_log)
    hosts.start("b", *_bci("run", "--headless", "--config", str(again), "--quiet"),
                log=tmp_path / "again.log")  # fmt: skip
    _wait_for("the viewer back on the restarted worker",
              lambda: any(r["session"] != first_session for r in predictions()), 60)  # fmt: skip
    back = [r for r in predictions() if r["session"] != first_session]
    restarted = _worker_predictions(restarted_log)
    time.sleep(1.0)
    restarted = _worker_predictions(restarted_log)
    for r in back:
        if round(r["time"], 6) in restarted:
            expected = restarted[round(r["time"], 6)]
            assert max(abs(a - b) for a, b in zip(r["probabilities"], expected, strict=True)) < 1e-5
    state = [s for s in _lines(viewed) if s["kind"] == "state"][-1]
    assert not state["lost"] and state["rebinds"] >= 1


@pytest.mark.parametrize("hosts", [{"net": 62, "multicast": False}], indirect=True)
def test_known_peers_find_streams_without_multicast(hosts: Hosts, tmp_path: Path) -> None:
    """No multicast route in any namespace: with the default LSL config nothing is found; with
    an lsl_api.cfg listing the peers (--lsl-config), the worker and the viewer work."""
    sim = f"kp-sim-{os.getpid()}"
    prefix = f"kp{os.getpid()}"
    hosts.start("a", *_bci("simulate", "--name", sim, "--source-id", sim), log=tmp_path / "a.log")
    blind = subprocess.run(
        ["ip", "netns", "exec", hosts.ns("b"), *_bci("streams", "--json")],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert sim not in blind.stdout  # multicast discovery cannot cross: the control case

    peers = ", ".join(hosts.address.values())
    lsl_config = tmp_path / "lsl_api.cfg"
    lsl_config.write_text(
        f"[multicast]\nKnownPeers = {{{peers}}}\n"
        "[lab]\nSessionID = bci-multihost-test\n[ports]\nIPv6 = disable\n"
    )
    hosts.processes[-1].terminate()  # the simulator restarts under the config
    hosts.processes[-1].wait(5)
    cfg = ("--lsl-config", str(lsl_config))
    hosts.start("a", *_bci(*cfg, "simulate", "--name", sim, "--source-id", sim),
                log=tmp_path / "a2.log")  # fmt: skip
    worker_log = tmp_path / "worker.jsonl"
    config = _worker_config(tmp_path, "b", sim, prefix, worker_log)
    hosts.start("b", *_bci(*cfg, "run", "--headless", "--config", str(config), "--quiet"),
                log=tmp_path / "b.log")  # fmt: skip
    viewed = tmp_path / "viewer.jsonl"
    hosts.start("c", sys.executable, str(VIEWER), prefix, str(viewed), "60",
                env={"LSLAPICFG": str(lsl_config)}, log=tmp_path / "c.log")  # fmt: skip
    _wait_for(
        "predictions at the viewer through known peers",
        lambda: sum(r["kind"] == "prediction" for r in _lines(viewed)) >= 5,
        60,
    )
    logged = _worker_predictions(worker_log)
    seen = [r for r in _lines(viewed) if r["kind"] == "prediction"]
    assert any(round(r["time"], 6) in logged for r in seen)


def test_bench_multihost_reports_the_ratio() -> None:
    from conftest import last_json, run_cli

    figures = last_json(run_cli("bench", "multihost", "--duration", "3", "--json", timeout=300))
    for case in ("loopback", "cross"):
        assert figures[case]["predictions"] >= 5
        assert figures[case]["at_viewer_ms"]["p99"] > 0
        assert set(figures[case]["clock_offsets_s"]) >= {"predictions", "status"}
    assert figures["cross"]["placement"] == {"sim": "a", "worker": "b", "viewer": "c"}
    assert figures["ratio_e2e_p99"] == pytest.approx(
        figures["cross"]["at_viewer_ms"]["p99"] / figures["loopback"]["at_viewer_ms"]["p99"], 1e-3
    )
