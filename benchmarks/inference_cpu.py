"""Batch-1 CPU inference cost per window: torch eager vs ONNX Runtime vs torch.compile, one run.

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

CASES = ((64, 160.0, 1.0), (64, 250.0, 1.0), (64, 160.0, 2.0))


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

    base = results[f"eager_{threads}_threads"]["paced_p50_us"]
    for figures in results.values():
        if "p50_us" in figures:
            figures["paced_p50_ratio_to_eager"] = round(figures["paced_p50_us"] / base, 3)
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
