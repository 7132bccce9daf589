"""``bci-app bench latency``: end-to-end and per-stage latency of the real pipeline.

A precise simulated outlet (child process) streams; this process runs the whole pipeline (inlet
thread, dsp thread, inference worker, LSL prediction outlets) on it. e2e latency is from the
moment the outlet pushed the newest sample of a window to the moment its prediction left through
the predictions outlet (the outlet pushes 10 ms chunks, so a window's newest sample may wait in
the source for the rest of its chunk: the in-app "acquire" stage, measured from the sample's
timestamp, includes that wait; the reported ``e2e`` does not). The model is an untrained
classifier of the right shape for each case (cost does not depend on the weights): the EEGNet
body, and in the last case the motor-imagery default (a band inside each window, an adapting
alignment and the tangent body, which runs in torch). Filter delay
(group delay at 10 and 20 Hz, ``group_delay_ms``, and the step settling time) and window length
are fixed delays, reported apart.

In the same run, on the same outlet and model, the pipeline a user would otherwise build (see
:func:`run_peer`: mne-lsl's ``StreamLSL`` with its filter, ``get_data`` polled every hop, the
same decoder and runtime) is timed the same way; ``ratio_e2e_p99`` is ours over it. The last
line is one JSON object with ``cases``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pylsl
import torch

from bci_app.bench.outlet import BenchOutlet
from bci_app.config import AppConfig, DspConfig, parse_config
from bci_app.decoders import (
    DEFAULT_MEMORY_WINDOWS,
    Alignment,
    NetworkDecoder,
    load_decoder,
    save_decoder,
)
from bci_app.decoders.band import BandFilter
from bci_app.infer.latency import summarize_ms
from bci_app.infer.worker import Prediction
from bci_app.io.montage import channel_set
from bci_app.nn.checkpoint import CheckpointMetadata, render_model_card, save_checkpoint
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier
from bci_app.pipeline import Pipeline
from bci_app.train.decoders import BAND_HZ

# (channels, stream rate Hz, model rate Hz, network body)
CASES = (
    (64, 160.0, 160.0, "eegnet"),
    (64, 1000.0, 250.0, "eegnet"),
    (256, 2048.0, 250.0, "eegnet"),
    (64, 1000.0, 250.0, "tangent"),
)
WINDOW_S = 2.0
HOP_S = 0.1


def make_checkpoint(
    directory: Path,
    labels: tuple[str, ...],
    model_rate: float,
    dsp: DspConfig | None = None,
    body: str = "eegnet",
) -> Path:
    """An untrained checkpoint for ``labels`` at ``model_rate`` with 2 s windows and ``dsp``
    (default: the default chain). ``body="tangent"``: as motor-imagery training saves the
    network, with its 8-30 Hz band inside each window and an adapting alignment."""
    torch.manual_seed(0)
    classifier = ClassifierConfig(
        n_electrodes=len(labels),
        n_samples=round(WINDOW_S * model_rate),
        n_classes=4,
        rate_hz=model_rate,
        body=body,
    )
    metadata = CheckpointMetadata(
        classes=["left_hand", "right_hand", "feet", "rest"],
        channel_labels=list(labels),
        model_rate_hz=model_rate,
        window_s=WINDOW_S,
        hop_s=HOP_S,
        dsp=dsp or DspConfig.from_config(AppConfig()),
        classifier=classifier,
        training={"description": "untrained, for latency benchmarks"},
    )
    model = EEGClassifier(classifier, channel_labels=labels)
    if body != "tangent":
        return save_checkpoint(directory, model, metadata, render_model_card(metadata))
    decoder = NetworkDecoder(model)
    decoder.band = BandFilter(*BAND_HZ, model_rate)
    decoder.alignment = Alignment(np.eye(len(labels)) * 100.0, 10.0, DEFAULT_MEMORY_WINDOWS)
    return save_decoder(directory, decoder, metadata, render_model_card(metadata))


def run_peer(
    outlet: BenchOutlet, checkpoint: Path, rate_hz: float, model_rate: float, duration: float
) -> dict:
    """The pipeline a user would otherwise build, on the same outlet and model: mne-lsl's
    ``StreamLSL`` with its own causal band-pass (1-40 Hz), ``get_data(winsize)`` polled every
    hop, scipy's ``resample_poly`` to the model rate, the decoder's own band and alignment and
    the runner our CPU worker picks. e2e: from the push of the window's newest sample to the
    model's output."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    try:
        from mne_lsl.stream import StreamLSL
    except ImportError as exc:
        return {"missing": f"mne-lsl not installed ({exc}); pip install -e '.[dev]'"}
    from bci_app.infer.worker import build_runner

    decoder, _ = load_decoder(checkpoint)
    runner, _ = build_runner(decoder.model.fold_max_norm(), torch.device("cpu"), cpu_threads=1)
    ratio = Fraction(model_rate / rate_hz).limit_denominator(1000)
    n_model = round(WINDOW_S * model_rate)
    stream = StreamLSL(bufsize=WINDOW_S + 1.0, source_id=outlet.source_id)
    stream.connect(acquisition_delay=0.001)
    from_push: list[float] = []
    inference: list[float] = []
    try:
        stream.filter(1.0, 40.0, verbose="error")
        time.sleep(WINDOW_S + 0.5)
        started, n = time.monotonic(), 0
        while time.monotonic() - started < duration:
            n += 1
            time.sleep(max(0.0, started + n * HOP_S - time.monotonic()))
            data, stamps = stream.get_data(WINDOW_S)
            x = resample_poly(data, ratio.numerator, ratio.denominator, axis=1)[:, -n_model:]
            x = np.ascontiguousarray(x, dtype=np.float32)
            infer_start = pylsl.local_clock()
            runner(decoder.prepare(x[np.newaxis])[0])  # cost does not depend on scale
            done = pylsl.local_clock()
            decoder.settle()  # its adaptation after the output, as our worker does
            inference.append((done - infer_start) * 1e3)
            from_push.append((done - outlet.clock.pushed_at(float(stamps[-1]))) * 1e3)
    finally:
        stream.disconnect()
    e2e = summarize_ms(from_push, digits=4, per_ms=1.0)
    infer = summarize_ms(inference, digits=4, per_ms=1.0)
    return {"pipeline": "mne-lsl StreamLSL + filter + get_data", "e2e_p50_ms": e2e["p50"],
            "e2e_p99_ms": e2e["p99"], "inference_p50_ms": infer["p50"],
            "inference_p99_ms": infer["p99"], "windows": len(from_push)}  # fmt: skip


def run_case(
    n_channels: int,
    rate_hz: float,
    model_rate: float,
    device: str,
    duration: float,
    body: str = "eegnet",
) -> dict:
    labels = channel_set(n_channels)
    with (
        tempfile.TemporaryDirectory() as tmp,
        BenchOutlet(n_channels, rate_hz, 2 * duration + 30.0) as outlet,  # ours, then the peer
    ):
        checkpoint = make_checkpoint(Path(tmp) / "model", labels, model_rate, body=body)
        config = parse_config(
            {
                "stream": {"source_id": outlet.source_id},
                "model_rate": model_rate,
                "windows": {"length": WINDOW_S, "hop": HOP_S},
                "model": {"path": str(checkpoint), "device": device},
                "outlets": {
                    "name_prefix": f"{outlet.source_id}-out",
                    "source_id_prefix": f"{outlet.source_id}-out",
                },
            }
        )
        pipeline = Pipeline(config, with_model=True)
        from_push: list[float] = []
        measuring = threading.Event()

        def record(prediction: Prediction) -> None:
            if measuring.is_set():
                waited = outlet.clock.pushed_at(prediction.timestamp) - prediction.timestamp
                from_push.append(prediction.latency_ms["e2e"] - waited * 1e3)

        pipeline.add_prediction_sink(record)
        pipeline.start()
        try:
            time.sleep(WINDOW_S + 0.5)  # the first full window
            cpu0, wall0 = time.process_time(), time.monotonic()
            measuring.set()
            time.sleep(duration)
            measuring.clear()
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - wall0
            status = pipeline.status()
        finally:
            pipeline.stop()
        peer = run_peer(outlet, checkpoint, rate_hz, model_rate, duration)
    worker = status.worker
    latency = worker.latency_ms
    e2e = summarize_ms(from_push, digits=4, per_ms=1.0)
    return {
        "channels": n_channels,
        "stream_rate_hz": rate_hz,
        "model_rate_hz": model_rate,
        "body": body,
        "window_samples": round(WINDOW_S * model_rate),
        "device": worker.device,
        "runner": worker.runner,
        "fallback": worker.fallback,
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "e2e_from_sample_time_p99_ms": latency["e2e"]["p99"],
        "inference_p50_ms": latency["inference"]["p50"],
        "inference_p99_ms": latency["inference"]["p99"],
        "stages_ms": latency,
        "predicted": worker.predicted,
        "dropped_windows": worker.replaced + worker.dropped_stale,
        "skipped_flagged": worker.skipped_flagged,
        "errors": worker.errors,
        "budget_misses": worker.budget_misses,
        "cpu_fraction": round(cpu / wall, 3),
        "peer": peer,
        "ratio_e2e_p99": None
        if not peer.get("e2e_p99_ms")
        else round(e2e["p99"] / peer["e2e_p99_ms"], 4),
        # batch-1 ONNX Runtime called once per hop, as the peer does, against our worker
        "ratio_inference_p50": None
        if not peer.get("inference_p50_ms")
        else round(latency["inference"]["p50"] / peer["inference_p50_ms"], 4),
        "warm_runs": worker.warm_runs,
        "filter_delay_ms": round(status.filter_delay_s * 1e3, 2),
        "group_delay_ms": status.filter_delays.group_delay_ms,
        "settling_s": status.filter_delays.settling_s,
        "window_s": WINDOW_S,
        "outlet_lateness": outlet.lateness,
    }


#: Held-out simulator session for the decision latency: seeds 0 and 1 trained the demo model.
DECISION_SIM_SEED = 7
DECISION_SIM_S = 240.0


def decision_latency_figures() -> dict:
    """Time from the cue until the decision reaches 70 % / 90 % of its final accuracy (above
    chance), through ``run --replay --fast``'s windows and worker: the shipped demo model on a
    simulator session it never saw (its cues), and the shipped EEGMMIDB model on S001 run 6
    (its T1/T2 cues; the model was trained on runs 6 and 10, so this is not held out)."""
    from bci_app.bench.replay import EEGMMIDB_MODEL, XDF_FILE
    from bci_app.nn.checkpoint import DEFAULT_MODEL_DIR
    from bci_app.pipeline.replay import pseudo_online_metrics, run_fast
    from bci_app.sources.simulator import SimulatorSettings
    from bci_app.train.commands import simulated_recording

    config = parse_config({})
    sessions = [
        (
            "simulator",
            simulated_recording(
                SimulatorSettings.from_config(config, seed=DECISION_SIM_SEED),
                DECISION_SIM_S,
            ),
            DEFAULT_MODEL_DIR,
        )
    ]
    if XDF_FILE.is_file():
        sessions.append(("S001R06", XDF_FILE, EEGMMIDB_MODEL))
    figures = {}
    for name, source, model in sessions:
        run = run_fast(source, config, model)
        metrics = pseudo_online_metrics(run, run.recording)
        figures[name] = {
            "model": model.name,
            "n_trials": metrics["n_trials"],
            "final_accuracy": metrics["accuracy_over_time"][-1]["accuracy"],
            "chance": metrics["chance"],
            "decision_latency_s": metrics["decision_latency_s"],
            "hop_s": metrics["hop_s"],
            "window_s": run.stage.cutter.length / run.stage.rate_hz,
        }
    return figures


def main(duration: float = 20.0, as_json: bool = False, devices: list[str] | None = None) -> int:
    if devices is None:
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    cases = []
    for device in devices:
        for n_channels, rate_hz, model_rate, body in CASES:
            case = run_case(n_channels, rate_hz, model_rate, device, duration, body)
            cases.append(case)
            print(
                f"{n_channels}ch@{rate_hz:g}Hz -> {model_rate:g} Hz, {body} body, on "
                f"{case['device']} "
                f"({case['runner']}): e2e p50/p99 {case['e2e_p50_ms']:.2f}/"
                f"{case['e2e_p99_ms']:.2f} ms, inference {case['inference_p50_ms']:.3f}/"
                f"{case['inference_p99_ms']:.3f} ms, dropped {case['dropped_windows']}, CPU "
                f"{case['cpu_fraction']:.2f}; fixed: filter "
                + ", ".join(f"{ms} ms at {hz} Hz" for hz, ms in case["group_delay_ms"].items())
                + f", settles in {case['settling_s']} s, window {WINDOW_S:g} s",
                flush=True,
            )
            peer = case["peer"]
            if "missing" in peer:
                print(f"    peer: {peer['missing']}", flush=True)
            else:
                print(
                    f"    peer ({peer['pipeline']}): e2e p50/p99 {peer['e2e_p50_ms']:.2f}/"
                    f"{peer['e2e_p99_ms']:.2f} ms; ratio_e2e_p99 ours/peer "
                    f"{case['ratio_e2e_p99']}",
                    flush=True,
                )
            for stage, figures in case["stages_ms"].items():
                print(f"    {stage:<10} p50 {figures['p50']:8.3f}  p99 {figures['p99']:8.3f} ms")
    decision = decision_latency_figures()
    for name, figures in decision.items():
        reached = figures["decision_latency_s"]
        print(
            f"decision latency on {name} ({figures['model']}, {figures['n_trials']} trials, final "
            f"accuracy {figures['final_accuracy']}): 70 % at {reached['70']} s, 90 % at "
            f"{reached['90']} s after the cue (window {figures['window_s']:g} s, hop "
            f"{figures['hop_s']:g} s)",
            flush=True,
        )
    if as_json:
        summary = {"duration_s": duration, "hop_s": HOP_S, "cases": cases, "decision": decision}
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(as_json=True))
