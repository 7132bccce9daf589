"""``bci-app bench replay``: fast replay throughput, and replay timing against mne-lsl's player.

1. Throughput: ``run --replay --fast`` on ../shared/data/xdf/S001R06-labrecorder.xdf with the
   shipped EEGMMIDB model (the live dsp, window and worker code, no LSL); stream seconds per
   wall second, median of ``REPEATS`` runs.
2. Timing at speed 1 on ../shared/data/eegmmidb/S001/S001R06.edf, side by side in one run (one
   after the other, ``duration`` s each, same reader): our :class:`Replayer` and mne-lsl's
   ``PlayerLSL`` (its default chunk of 10 samples). Ours reports its push lateness (local time
   of the push minus the sample's stamp); for both, an inlet in this process records for every
   sample ``receipt time - stamp``: a negative value means the sample was stamped in the future.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pylsl

from bci_app.config import parse_config
from bci_app.infer.latency import summarize_ms
from bci_app.io.session import read_session
from bci_app.lifecycle import Background
from bci_app.nn.checkpoint import DEFAULT_MODEL_DIR
from bci_app.pipeline.replay import REPLAY_BATCH, run_fast
from bci_app.sources.replay import Replayer

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
XDF_FILE = SHARED_DATA / "xdf" / "S001R06-labrecorder.xdf"
EDF_FILE = SHARED_DATA / "eegmmidb" / "S001" / "S001R06.edf"
EEGMMIDB_MODEL = DEFAULT_MODEL_DIR.parent / "eegmmidb-s001-hands-feet"
REPEATS = 3


def throughput() -> dict:
    """Batched fast replay (the default) and, side by side, window by window (batch 1)."""
    config = parse_config({})
    figures: dict = {"file": XDF_FILE.name, "model": EEGMMIDB_MODEL.name}
    for key, batch_size in (("", REPLAY_BATCH), ("_batch1", 1)):
        runs = [
            run_fast(XDF_FILE, config, EEGMMIDB_MODEL, batch_size=batch_size)
            for _ in range(REPEATS)
        ]
        windows = len(runs[0].windows)
        wall = statistics.median(r.wall_s for r in runs)
        figures.update(
            {
                "stream_s": runs[0].duration_s,
                "windows": windows,
                f"wall_s_median{key}": round(wall, 4),
                f"stream_s_per_wall_s{key}": round(
                    statistics.median(r.duration_s / r.wall_s for r in runs), 1
                ),
                f"us_per_window{key}": round(wall / windows * 1e6, 1),
                # the model's share: window copies, the decoder's band-pass, the network
                f"model_s_median{key}": round(statistics.median(r.model_s for r in runs), 4),
            }
        )
    figures["batch_size"] = REPLAY_BATCH
    return figures


class _Reader(Background):
    """Pulls one stream and keeps ``receipt - stamp`` of every sample (s)."""

    name = "bci-bench-reader"

    def __init__(self, source_id: str) -> None:
        super().__init__()
        infos = pylsl.resolve_byprop("source_id", source_id, timeout=10.0)
        if not infos:
            raise RuntimeError(f"stream {source_id} not found")
        self.inlet = pylsl.StreamInlet(infos[0], max_buflen=10)
        self.inlet.open_stream(timeout=10.0)
        self.ages: list[np.ndarray] = []

    def _setup(self) -> None:
        self._spawn(self._run, self.name)

    def _run(self) -> None:
        # Wake on the first sample, then drain (pull_chunk with a timeout waits it out).
        while not self.stopping:
            _, stamp = self.inlet.pull_sample(timeout=0.1)
            if stamp is None:
                continue
            _, stamps = self.inlet.pull_chunk(timeout=0.0)
            # Read the clock after the drain, so no sample counts as received before it was.
            now = pylsl.local_clock()
            self.ages.append(now - np.asarray([stamp, *stamps]))

    def _teardown(self) -> None:
        self.inlet.close_stream()

    def received(self) -> np.ndarray:
        """Every ``receipt - stamp`` (s) so far, ``(n_samples,)``."""
        return np.concatenate(self.ages) if self.ages else np.zeros(0)


def _reader_summary(ages: np.ndarray) -> dict:
    return {
        "receipt_minus_stamp_ms": summarize_ms(ages, 4),
        "abs_error_ms": summarize_ms(np.abs(ages), 4),
        "stamped_in_future": round(float((ages < 0).mean()), 4) if ages.size else None,
        "stamped_ahead_max_ms": round(float(max(0.0, -ages.min()) * 1e3), 4) if ages.size else None,
    }


def timing_ours(duration: float) -> dict:
    session = read_session(EDF_FILE)
    replayer = Replayer(session, wait_for_consumers=5.0)
    eeg = session.streams[0].name
    reader = _Reader(replayer.source_id_of(eeg))
    reader.start()
    replayer.start()
    time.sleep(duration)
    replayer.stop()
    time.sleep(0.2)
    reader.stop()
    result = _reader_summary(reader.received())
    result["push_lateness_ms"] = summarize_ms(np.asarray(replayer.lateness), 4)
    result["samples"] = replayer.pushed[eeg]
    return result


def timing_mne_lsl(duration: float) -> dict:
    from mne_lsl.player import PlayerLSL

    source_id = f"bench-player-{time.time_ns()}"
    player = PlayerLSL(EDF_FILE, source_id=source_id, annotations=False)
    player.start()
    try:
        reader = _Reader(source_id)
        reader.start()
        time.sleep(duration)
    finally:
        player.stop()
    time.sleep(0.2)
    reader.stop()
    result = _reader_summary(reader.received())
    result["chunk_size"] = player.chunk_size
    return result


def main(duration: float = 20.0, as_json: bool = False) -> int:
    for path in (XDF_FILE, EDF_FILE):
        if not path.is_file():
            print(f"bench replay needs {path} (../shared/data beside the repo)", file=sys.stderr)
            return 2
    try:
        import mne_lsl  # noqa: F401
    except ImportError:
        print("bench replay needs mne-lsl as the peer: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    fast = throughput()
    print(
        f"fast replay: {fast['stream_s']:.0f} s of {fast['file']} in {fast['wall_s_median']:.3f} s"
        f" = {fast['stream_s_per_wall_s']:.0f} x real time ({fast['us_per_window']:.0f} µs per "
        f"window incl. dsp, batches of {fast['batch_size']}; of it the model "
        f"{fast['model_s_median']:.3f} s, the rest dsp); window by window "
        f"{fast['stream_s_per_wall_s_batch1']:.0f} x ({fast['us_per_window_batch1']:.0f} µs)",
        flush=True,
    )
    ours, peer = timing_ours(duration), timing_mne_lsl(duration)
    a = ours["abs_error_ms"]["p99"]
    b = peer["abs_error_ms"]["p99"]
    print(
        f"speed 1, {duration:g} s: ours push lateness p99 {ours['push_lateness_ms']['p99']:.3f} ms;"
        f" |receipt - stamp| p50/p99 ours {ours['abs_error_ms']['p50']:.3f}/{a:.3f} ms, "
        f"mne-lsl PlayerLSL {peer['abs_error_ms']['p50']:.3f}/{b:.3f} ms; stamped in "
        f"the future: ours {ours['stamped_in_future']:.1%}, mne-lsl {peer['stamped_in_future']:.1%}"
        f" (up to {peer['stamped_ahead_max_ms']:.1f} ms ahead)",
        flush=True,
    )
    summary = {
        "fast_replay": fast,
        "timing": {"duration_s": duration, "file": EDF_FILE.name, "ours": ours, "mne_lsl": peer},
        "replay_timing_error_p99_ms": ours["push_lateness_ms"]["p99"],
        "ratio_reader_abs_error_p99": round(a / b, 4) if a is not None and b else None,
        "stream_s_per_wall_s": fast["stream_s_per_wall_s"],
    }
    if as_json:
        print(json.dumps(summary), flush=True)
    return 0
