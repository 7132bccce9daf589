"""``bci-app bench multihost``: the decision's age at a viewer on another host, against the same
three processes on one host, in one run.

Three network namespaces joined by a bridge stand for the amplifier's PC (the simulator), the
decoding worker (``run --headless`` with the shipped model) and the experimenter's viewer (the
``gui --attach`` client, :class:`~bci_app.pipeline.remote.RemoteWorker`, headless). "loopback"
runs all three in namespace ``a``; "cross" puts each in its own. The figure is, per prediction,
the viewer's clock minus the EEG sample's timestamp mapped by LSL's clock correction
(``at_viewer``): sample -> worker -> LSL across the bridge -> viewer. The last line is one JSON
object with ``ratio_e2e_p99`` (cross / loopback). Needs root (:mod:`bci_app.bench.netns`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bci_app.bench.netns import Hosts, namespaces_unavailable
from bci_app.infer.latency import summarize_ms

WARMUP_S = 4.0  # after the first prediction at the viewer: start-up is not measured
NET = 63  # 10.231.63.0/24, inside the namespaces only


def record_viewer(target: str, out: str, seconds: float) -> None:
    """The viewer process: attach to ``target`` and write each prediction's ``at_viewer`` (ms)
    and the clock offsets applied, one JSON line each, for ``seconds``."""
    from bci_app.config import AppConfig
    from bci_app.pipeline.remote import RemoteWorker

    config = AppConfig()
    stream = config.stream.model_copy(update={"resolve_timeout": 30.0})
    view = RemoteWorker(config.model_copy(update={"stream": stream}), target)
    with open(out, "w", buffering=1, encoding="utf-8") as log:
        view.add_prediction_sink(
            lambda p: log.write(
                json.dumps(
                    {
                        "at_viewer_ms": p.latency_ms["at_viewer"],
                        "e2e_ms": p.latency_ms.get("e2e"),
                        "offsets": view.clock_offsets_s,
                    }
                )
                + "\n"  # fmt: skip
            )
        )
        view.start()
        try:
            time.sleep(seconds)
        finally:
            view.stop()


def _python(*code: str) -> list[str]:
    return [sys.executable, "-c", "\n".join(code)]


def _measure(hosts: Hosts, placement: dict[str, str], duration: float, tmp: Path) -> dict:
    tag = f"{placement['worker']}{placement['viewer']}{os.getpid()}"
    sim, prefix = f"mhb-sim-{tag}", f"mhb{tag}"
    started = len(hosts.processes)
    hosts.start(placement["sim"], sys.executable, "-m", "bci_app", "simulate", "--name", sim,
                "--source-id", sim, log=tmp / f"sim-{tag}.log")  # fmt: skip
    config = tmp / f"worker-{tag}.yaml"
    config.write_text(
        f"stream:\n  source_id: {sim}\n  resolve_timeout: 30.0\n"
        f"outlets:\n  name_prefix: {prefix}\n  source_id_prefix: {prefix}\n"
    )
    hosts.start(placement["worker"], sys.executable, "-m", "bci_app", "run", "--headless",
                "--quiet", "--config", str(config), log=tmp / f"worker-{tag}.log")  # fmt: skip
    out = tmp / f"viewer-{tag}.jsonl"
    seconds = duration + WARMUP_S + 30.0
    viewer = (
        "from bci_app.bench.multihost import record_viewer",
        f"record_viewer({prefix!r}, {str(out)!r}, {seconds})",
    )
    hosts.start(placement["viewer"], *_python(*viewer), log=tmp / f"viewer-{tag}.log")
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
        time.sleep(0.2)
    time.sleep(WARMUP_S)
    first = len(out.read_text().splitlines()) if out.exists() else 0
    time.sleep(duration)
    rows = (
        [json.loads(line) for line in out.read_text().splitlines()[first:-1]]
        if out.exists()
        else []
    )
    for process in hosts.processes[started:]:
        process.terminate()
    for process in hosts.processes[started:]:
        process.wait(10)
    at_viewer = summarize_ms([r["at_viewer_ms"] for r in rows], digits=3, per_ms=1.0)
    worker_e2e = summarize_ms([r["e2e_ms"] for r in rows if r["e2e_ms"] is not None], 3, 1.0)
    return {
        "placement": placement,
        "predictions": len(rows),
        "at_viewer_ms": at_viewer,
        "worker_e2e_ms": worker_e2e,
        "clock_offsets_s": rows[-1]["offsets"] if rows else None,
    }


def main(duration: float = 20.0, as_json: bool = False) -> int:
    why = namespaces_unavailable()
    if why:
        print(f"bench multihost: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        hosts = Hosts(net=NET, multicast=True)
        try:
            loopback = _measure(hosts, {"sim": "a", "worker": "a", "viewer": "a"}, duration, tmp)
            cross = _measure(hosts, {"sim": "a", "worker": "b", "viewer": "c"}, duration, tmp)
        finally:
            hosts.close()
    for name, case in (("loopback (one host)", loopback), ("cross (three hosts)", cross)):
        figures = case["at_viewer_ms"]
        print(
            f"{name}: {case['predictions']} predictions; sample -> viewer p50/p99 "
            f"{figures['p50']}/{figures['p99']} ms (the worker's own e2e p99 "
            f"{case['worker_e2e_ms']['p99']} ms); clock offsets applied {case['clock_offsets_s']}",
            flush=True,
        )
    a, b = loopback["at_viewer_ms"]["p99"], cross["at_viewer_ms"]["p99"]
    ratio = None if not a or b is None else round(b / a, 4)
    print(f"ratio_e2e_p99 cross / loopback: {ratio}", flush=True)
    if as_json:
        summary = {"duration_s": duration, "loopback": loopback, "cross": cross,
                   "ratio_e2e_p99": ratio}  # fmt: skip
        print(json.dumps(summary), flush=True)
    return 0
