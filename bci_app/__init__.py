"""bci-app: real-time EEG BCI over Lab Streaming Layer."""

import os

# OpenBLAS on one thread unless the user says otherwise; it reads this once, when numpy loads,
# so it is set before any import of numpy. Its idle helper threads spin between the worker's
# per-window products: at 64 ch @ 1 kHz (bench latency's tangent case) they kept the process at
# 1.11 cores against 0.21 on one thread, a core the GUI and the dsp thread need (e2e p99 varied
# 9-38 ms either way on this 2-core machine). threadpoolctl's runtime limit did not stop the
# spinning. Fast replay of S001R06: 207x against 171x real time with the tangent network, 0.34
# against 0.30 s with an EEGNet one; the covariance algebra already ran on one thread
# (decoders/threads.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
