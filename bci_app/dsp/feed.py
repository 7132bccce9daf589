"""Feeding a whole recording through the online dsp: the one path that training, evaluation
and fast replay share, so an offline window is the window the live app would cut.

The recording is written in order into the stage's raw ring, as much as it holds at a time, with
the flags the live inlet would set (a timestamp jump beyond one period plus the gap tolerance:
``FLAG_GAP``; a NaN/Inf sample: ``FLAG_NONFINITE``), and the stage cuts its windows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from bci_app.config import AppConfig
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import Window
from bci_app.io.recording import Recording, timestamp_breaks
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer

__all__ = ["feed_recording", "gap_flags", "offline_read_seconds", "offline_stage"]

log = logging.getLogger(__name__)

#: Raw signal filtered per DspStage step offline (s), where the model-rate ring holds it beside
#: a window: on S001R06 (64 ch @ 160 Hz) fast replay ran 1.2x faster than with the live 0.5 s.
OFFLINE_READ_S = 8.0
#: Raw signal written per DspStage.process() call offline (s): the raw ring's capacity.
BLOCK_S = 32.0


def offline_read_seconds(config: AppConfig) -> float:
    """The offline step: :data:`OFFLINE_READ_S`, less where the model-rate ring (``ring.capacity``)
    would not hold a step beside a window and an ERP epoch, never under the live 0.5 s."""
    epoch = config.paradigm.epoch[1] - config.paradigm.epoch[0] if config.paradigm.erp else 0.0
    room = config.ring.capacity - config.windows.length - epoch
    return max(0.5, min(OFFLINE_READ_S, room / 2))


def offline_stage(recording: Recording, n_columns: int, config: AppConfig) -> DspStage:
    """A fresh :class:`DspStage` over a raw ring sized for feeding ``recording`` in blocks."""
    read_s = offline_read_seconds(config)
    read = max(1, round(read_s * recording.rate_hz))
    capacity = max(1, min(recording.n_samples, read * max(1, round(BLOCK_S / read_s))))
    return DspStage(RingBuffer(capacity, n_columns), recording.rate_hz, config, read_s)


def gap_flags(recording: Recording, tolerance_s: float) -> np.ndarray:
    """``(n_samples,)`` uint8: FLAG_GAP where the timestamps jump as the inlet would flag it."""
    flags = np.zeros(recording.n_samples, dtype=np.uint8)
    ts = recording.timestamps
    if ts is None or ts.size < 2:
        return flags
    jumps = timestamp_breaks(ts, recording.rate_hz, tolerance_s)
    flags[jumps] |= FLAG_GAP
    if jumps.size:
        log.warning(
            "%s: %d timestamp gap(s); windows across them are skipped", recording.source, jumps.size
        )
    return flags


def feed_recording(
    recording: Recording, columns: np.ndarray, stage: DspStage, config: AppConfig
) -> Iterator[list[Window]]:
    """Write the ``columns`` of ``recording`` in order into ``stage.raw_ring`` and yield the
    windows each block completes."""
    n = recording.n_samples
    block = stage.raw_ring.capacity
    timestamps = recording.sample_times()
    flags = gap_flags(recording, config.health.gap_tolerance)
    for start in range(0, n, block):
        stop = min(n, start + block)
        chunk = np.take(recording.data[start:stop], columns, axis=1).astype(np.float32, copy=False)
        chunk_flags = flags[start:stop].copy()
        chunk_flags[~np.isfinite(chunk).all(axis=1)] |= FLAG_NONFINITE
        stage.raw_ring.write(chunk, timestamps[start:stop], chunk_flags, arrival=0.0)
        yield stage.process(lambda: 0.0)
