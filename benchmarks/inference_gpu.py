"""Batch-1 inference on the GPU: eager vs the worker's CUDA graph runner (host copies included),
against the CPU on the same machine, in one run.

    python benchmarks/inference_gpu.py [--repeats 2000] [--json]

Each call is timed as the worker sees it: numpy window in, numpy probabilities and electrode
weights out (pinned-host -> device copy, forward, copies back, synchronise). Needs CUDA; on a
machine without it, prints that and exits 0. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bci_app.infer.worker import CudaGraphRunner, EagerRunner
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier

SHAPES = (
    (64, 1000, 250.0),
    (64, 500, 250.0),
    (64, 320, 160.0),
    (22, 250, 250.0),
    (256, 500, 250.0),
)


def _time(runner, x: np.ndarray, repeats: int) -> dict:
    for _ in range(100):
        runner(x)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        runner(x)
        times[i] = time.perf_counter() - start
    times *= 1e3
    return {
        "p50_ms": round(float(np.percentile(times, 50)), 4),
        "p99_ms": round(float(np.percentile(times, 99)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        if args.json:
            print(json.dumps({"cuda": False}))
        return
    cuda = torch.device("cuda")
    summary = {
        "cuda": True,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cases": {},
    }
    for n_electrodes, n_samples, rate in SHAPES:
        torch.manual_seed(0)
        config = ClassifierConfig(
            n_electrodes=n_electrodes, n_samples=n_samples, n_classes=4, rate_hz=rate
        )
        model = EEGClassifier(config).eval()
        x = (np.random.default_rng(0).standard_normal((n_electrodes, n_samples)) * 20).astype(
            np.float32
        )
        cpu = EagerRunner(EEGClassifier(config).eval(), torch.device("cpu"))
        cpu.model.load_state_dict(model.state_dict())
        eager = EagerRunner(EEGClassifier(config).eval(), cuda)
        eager.model.load_state_dict(model.state_dict())
        graph = CudaGraphRunner(model, cuda)
        reference = cpu(x)[0]
        for runner in (eager, graph):
            np.testing.assert_allclose(runner(x)[0], reference, atol=1e-4)
        case = {
            "cpu_eager": _time(cpu, x, args.repeats),
            "cuda_eager": _time(eager, x, args.repeats),
            "cuda_graph": _time(graph, x, args.repeats),
        }
        key = f"{n_electrodes}x{n_samples}"
        summary["cases"][key] = case
        print(
            f"{key}: p50/p99 ms  cpu {case['cpu_eager']['p50_ms']}/{case['cpu_eager']['p99_ms']}"
            f"  cuda eager {case['cuda_eager']['p50_ms']}/{case['cuda_eager']['p99_ms']}"
            f"  cuda graph {case['cuda_graph']['p50_ms']}/{case['cuda_graph']['p99_ms']}",
            flush=True,
        )
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
