"""Batch-1 CPU inference cost per window: torch eager vs ONNX Runtime vs torch.compile, one run;
and, at 64 x 500 (2 s at 250 Hz), ONNX Runtime's graph optimisation levels, dynamic int8
quantisation, and the worker's own path (its runner, with the keep-warm run before each paced
window) side by side with plain batch-1 ONNX Runtime, paced alike.

    python benchmarks/inference_cpu.py [--repeats 2000] [--json]

Cases: 64 electrodes x 1 s at 160 Hz and at 250 Hz, and the demo model's 64 x 2 s at 160 Hz,
SE attention. Each runtime gets the same input and its outputs are checked against eager. Each
is timed back to back ("hot") and paced like the worker, one call every 50 ms ("paced": thread
pools go to sleep between windows). torch eager runs with 1 thread and with torch's default.
Prints p50/p99 in microseconds; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bci_app.infer.worker import OnnxRunner
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier

CASES = ((64, 160.0, 1.0), (64, 250.0, 1.0), (64, 160.0, 2.0), (64, 250.0, 2.0))
WARM_LEAD_S = 0.002  # the keep-warm run comes this long before the window, as in the worker


PACE_S = 0.05


def _time(fn, x: np.ndarray, repeats: int, pace_s: float = 0.0) -> np.ndarray:
    for _ in range(50):
        fn(x)
    times = np.empty(repeats)
    for i in range(repeats):
        if pace_s:
            time.sleep(pace_s)
        start = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - start
    return times * 1e6


def _paced_side_by_side(ours, peer, x: np.ndarray, repeats: int) -> tuple[np.ndarray, ...]:
    """Paced windows, ours and the peer's in turn so that both see the same machine: ours as
    the worker runs it (a keep-warm run on the previous window ``WARM_LEAD_S`` before each),
    the peer called once per window. Returns both runs' times (µs)."""
    times = np.empty((2, repeats))
    for i in range(repeats):
        time.sleep(PACE_S - WARM_LEAD_S)
        ours(x)
        time.sleep(WARM_LEAD_S)
        start = time.perf_counter()
        ours(x)
        times[0, i] = time.perf_counter() - start
        time.sleep(PACE_S)
        start = time.perf_counter()
        peer(x)
        times[1, i] = time.perf_counter() - start
    return times[0] * 1e6, times[1] * 1e6


def _stats(fn, x: np.ndarray, repeats: int) -> dict:
    hot = _time(fn, x, repeats)
    paced = _time(fn, x, max(100, repeats // 10), PACE_S)
    return {
        "p50_us": round(float(np.percentile(hot, 50)), 1),
        "p99_us": round(float(np.percentile(hot, 99)), 1),
        "paced_p50_us": round(float(np.percentile(paced, 50)), 1),
        "paced_p99_us": round(float(np.percentile(paced, 99)), 1),
    }


def run_case(n_electrodes: int, rate: float, seconds: float, repeats: int) -> dict:
    torch.manual_seed(0)
    n_samples = round(rate * seconds)
    config = ClassifierConfig(
        n_electrodes=n_electrodes, n_samples=n_samples, n_classes=4, rate_hz=rate
    )
    model = EEGClassifier(config).eval().fold_max_norm()  # as the worker runs it
    x = (np.random.default_rng(0).standard_normal((1, n_electrodes, n_samples)) * 20).astype(
        np.float32
    )

    def eager(batch: np.ndarray):
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    reference = eager(x)[0].numpy()
    threads = torch.get_num_threads()
    results = {f"eager_{threads}_threads": _stats(eager, x, repeats)}
    torch.set_num_threads(1)
    results["eager_1_thread"] = _stats(eager, x, repeats)
    torch.set_num_threads(threads)

    try:
        for n_threads in sorted({1, threads}):
            runner = OnnxRunner(model, threads=n_threads)
            np.testing.assert_allclose(runner(x[0])[0], reference[0], atol=1e-5)
            results[f"onnxruntime_{n_threads}_thread"] = _stats(
                lambda b, r=runner: r(b[0]), x, repeats
            )
    except Exception as exc:  # report a peer that cannot run, do not hide it
        results["onnxruntime"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    try:
        compiled = torch.compile(model, mode="max-autotune-no-cudagraphs")

        def compiled_fn(batch: np.ndarray):
            with torch.inference_mode():
                return compiled(torch.from_numpy(batch))

        np.testing.assert_allclose(compiled_fn(x)[0].numpy(), reference, atol=1e-5)
        results["torch_compile"] = _stats(compiled_fn, x, repeats)
    except Exception as exc:
        results["torch_compile"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    if (n_electrodes, n_samples) == (64, 500):
        results.update(_onnx_options(model, x, reference, repeats))
    base = results[f"eager_{threads}_threads"]["paced_p50_us"]
    for figures in results.values():
        if "p50_us" in figures:
            figures["paced_p50_ratio_to_eager"] = round(figures["paced_p50_us"] / base, 3)
    return results


def _onnx_options(model, x: np.ndarray, reference: np.ndarray, repeats: int) -> dict:
    """ONNX Runtime at each graph optimisation level, dynamically quantised to int8, and at
    the default level with the worker's keep-warm run before each paced call."""
    import tempfile
    from pathlib import Path

    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from bci_app.nn.export import export_onnx

    graph = export_onnx(model)
    levels = onnxruntime.GraphOptimizationLevel
    results = {}

    def session(source, level=levels.ORT_ENABLE_ALL):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.graph_optimization_level = level
        run = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        return lambda b: run.run(None, {"x": b})

    for name in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        results[f"onnxruntime_{name.lower()}"] = _stats(
            session(graph, getattr(levels, name)), x, repeats
        )
    with tempfile.TemporaryDirectory() as tmp:
        plain, quantised = Path(tmp) / "m.onnx", Path(tmp) / "m-int8.onnx"
        plain.write_bytes(graph)
        quantize_dynamic(str(plain), str(quantised), weight_type=QuantType.QInt8)
        int8 = session(str(quantised))
        figures = _stats(int8, x, repeats)
        figures["max_abs_probability_change"] = round(
            float(np.abs(int8(x)[0] - reference).max()), 5
        )
        results["onnxruntime_int8_dynamic"] = figures
    # The worker's path (OnnxRunner on one window, a keep-warm run before each) against plain
    # batch-1 ONNX Runtime (session.run per window), same graph.
    ours, default = OnnxRunner(model), session(graph)
    for _ in range(50):
        ours(x[0])
        default(x)
    warm, plain_paced = _paced_side_by_side(
        lambda b: ours(b[0]), default, x, max(200, repeats // 5)
    )
    results["onnxruntime_keep_warm"] = {
        "paced_p50_us": round(float(np.percentile(warm, 50)), 1),
        "paced_p99_us": round(float(np.percentile(warm, 99)), 1),
        "plain_paced_p50_us": round(float(np.percentile(plain_paced, 50)), 1),
        "plain_paced_p99_us": round(float(np.percentile(plain_paced, 99)), 1),
        "ratio_paced_p50": round(
            float(np.percentile(warm, 50) / np.percentile(plain_paced, 50)), 3
        ),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = {"torch_threads": torch.get_num_threads(), "cases": {}}
    for n_electrodes, rate, seconds in CASES:
        key = f"{n_electrodes}ch x {seconds:g}s @ {rate:g}Hz"
        summary["cases"][key] = result = run_case(n_electrodes, rate, seconds, args.repeats)
        for name, r in result.items():
            if name == "onnxruntime_keep_warm":
                print(
                    f"{key}: keep-warm paced p50 {r['paced_p50_us']} us vs "
                    f"{r['plain_paced_p50_us']} us plain (ratio {r['ratio_paced_p50']})"
                )
                continue
            if "p50_us" not in r:
                print(f"{key}: {name} failed: {r['error']}", flush=True)
                continue
            print(
                f"{key}: {name:<16} hot p50/p99 {r['p50_us']}/{r['p99_us']} us, paced "
                f"{r['paced_p50_us']}/{r['paced_p99_us']} us",
                flush=True,
            )
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
