#!/usr/bin/env bash
# The CUDA checks, run on a lent GPU machine from the repo root: the worker tests (their CUDA
# test runs there), the GPU inference microbenchmark and `bci-app bench latency` on cpu and cuda.
# The machine has torch but not pylsl/pydantic: their wheels travel in .whl (see README of the
# device tool). Output lands in $OUT (or ./gpu-out when OUT is unset).
set -uo pipefail
out=${OUT:-gpu-out}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen PYTHONPATH=${PYTHONPATH:-$PWD}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, pylsl; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'liblsl', pylsl.library_version())" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_worker.py -rs 2>&1 | tee "$out/pytest.txt"
python3 benchmarks/inference_gpu.py --repeats 2000 --json 2>&1 | tee "$out/inference_gpu.txt"
python3 -m bci_app bench latency --duration ${LATENCY_S:-15} --json 2>&1 | grep -v "INFO|" | tee "$out/latency.txt"
