"""Batch-1 CPU inference cost per window: torch eager vs ONNX Runtime vs torch.compile, one run.

    python benchmarks/inference_cpu.py [--repeats 2000] [--json]

Cases: 64 electrodes x 1 s at 160 Hz and at 250 Hz, and the demo model's 64 x 2 s at 160 Hz,
SE attention. Each runtime gets the same input and its outputs are checked against eager. Prints
p50/p99 in microseconds and the ratio to eager; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
import torch

from bci_app.nn.classifier import ClassifierConfig, EEGClassifier

CASES = ((64, 160.0, 1.0), (64, 250.0, 1.0), (64, 160.0, 2.0))


def _time(fn, x: np.ndarray, repeats: int) -> np.ndarray:
    for _ in range(50):
        fn(x)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - start
    return times * 1e6


def _stats(times_us: np.ndarray) -> dict:
    return {
        "p50_us": round(float(np.percentile(times_us, 50)), 1),
        "p99_us": round(float(np.percentile(times_us, 99)), 1),
    }


def run_case(n_electrodes: int, rate: float, seconds: float, repeats: int) -> dict:
    torch.manual_seed(0)
    n_samples = round(rate * seconds)
    config = ClassifierConfig(
        n_electrodes=n_electrodes, n_samples=n_samples, n_classes=4, rate_hz=rate
    )
    model = EEGClassifier(config).eval()
    x = (np.random.default_rng(0).standard_normal((1, n_electrodes, n_samples)) * 20).astype(
        np.float32
    )

    def eager(batch: np.ndarray):
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    reference = eager(x)[0].numpy()
    results = {"eager": _stats(_time(eager, x, repeats))}

    try:
        import onnxruntime as ort

        buffer = io.BytesIO()
        torch.onnx.export(
            model,
            (torch.from_numpy(x),),
            buffer,
            input_names=["x"],
            output_names=["probabilities", "weights"],
            dynamo=False,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )

        def onnx(batch: np.ndarray):
            return session.run(None, {"x": batch})

        np.testing.assert_allclose(onnx(x)[0], reference, atol=1e-5)
        results["onnxruntime"] = _stats(_time(onnx, x, repeats))
    except Exception as exc:  # noqa: BLE001 - report a peer that cannot run, do not hide it
        results["onnxruntime"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    try:
        compiled = torch.compile(model, mode="max-autotune-no-cudagraphs")

        def compiled_fn(batch: np.ndarray):
            with torch.inference_mode():
                return compiled(torch.from_numpy(batch))

        np.testing.assert_allclose(compiled_fn(x)[0].numpy(), reference, atol=1e-5)
        results["torch_compile"] = _stats(_time(compiled_fn, x, repeats))
    except Exception as exc:  # noqa: BLE001
        results["torch_compile"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    base = results["eager"]["p50_us"]
    for figures in results.values():
        if "p50_us" in figures:
            figures["p50_ratio_to_eager"] = round(figures["p50_us"] / base, 3)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    summary = {"torch_threads": torch.get_num_threads(), "cases": {}}
    for n_electrodes, rate, seconds in CASES:
        key = f"{n_electrodes}ch x {seconds:g}s @ {rate:g}Hz"
        summary["cases"][key] = result = run_case(n_electrodes, rate, seconds, args.repeats)
        line = ", ".join(
            f"{name} {r['p50_us']}/{r['p99_us']} us" if "p50_us" in r else f"{name} failed"
            for name, r in result.items()
        )
        print(f"{key}: p50/p99 {line}", flush=True)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
