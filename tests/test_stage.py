"""Processing stage and window cutter: alignment by absolute index, equivalence with offline
filtering, gap and NaN flags, reseeding after a gap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bci_app.config import parse_config
from bci_app.dsp.filters import preprocess_offline
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import WindowCutter
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingBuffer


def make_config(stream_rate=1000.0, model_rate=250.0, length=1.0, hop=0.2, **filters):
    return parse_config(
        {
            "model_rate": model_rate,
            "windows": {"length": length, "hop": hop},
            "filters": {"bandpass": [1.0, 40.0], "notch": 50, **filters},
            "ring": {"capacity": 20.0},
        }
    )


def signal(n: int, n_channels: int, rate: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 20 * rng.standard_normal((n, n_channels)) + 40.0
    x += 30 * np.sin(2 * np.pi * 10 * t)[:, None] + 10 * np.sin(2 * np.pi * 50 * t)[:, None]
    return x.astype(np.float32)


def feed(stage: DspStage, raw: RingBuffer, x: np.ndarray, chunks, rate: float, flags=None):
    windows, start = [], 0
    for n in chunks:
        n = min(n, len(x) - start)
        ts = (start + np.arange(n)) / rate
        raw.write(
            x[start : start + n],
            ts,
            None if flags is None else flags[start : start + n],
            arrival=100.0 + start,
        )
        start += n
        windows.extend(stage.process(lambda: 200.0))
    return windows


@settings(max_examples=15, deadline=None)
@given(chunks=st.lists(st.integers(1, 400), min_size=1, max_size=60))
def test_windows_equal_offline_filtering_whatever_the_chunking(chunks):
    rate, n = 1000.0, 4000
    config = make_config()
    x = signal(n, 8, rate)
    raw = RingBuffer(30_000, 8)
    stage = DspStage(raw, rate, config)
    chunks = [*chunks, n]  # whatever is left arrives at the end
    windows = feed(stage, raw, x, chunks, rate)
    offline = preprocess_offline(
        x,
        stream_rate_hz=rate,
        model_rate_hz=250.0,
        bandpass_hz=(1.0, 40.0),
        order=config.filters.order,
        notch_hz=50.0,
    )
    assert [w.seq for w in windows] == list(range(len(windows)))
    assert len(windows) == (len(offline) - 250) // 50 + 1
    scale = float(np.std(x))
    for window in windows:
        assert window.start_index == window.seq * 50
        assert window.data.shape == (250, 8)
        expected = offline[window.start_index : window.start_index + 250]
        assert np.max(np.abs(window.data - expected)) <= 1e-4 * scale
        # Timestamps and arrival come from the newest stream sample behind each edge sample.
        last_raw = (window.start_index + 249) * 4
        assert window.last_timestamp == pytest.approx(last_raw / rate)
        assert window.first_timestamp == pytest.approx(window.start_index * 4 / rate)
        assert window.usable


def test_gap_flags_every_window_spanning_it_and_reseeds_the_filters():
    rate = 250.0
    config = make_config(stream_rate=rate, model_rate=250.0, length=1.0, hop=0.5, notch=None)
    x = np.full((2000, 2), 100.0, dtype=np.float32)
    x[1000:] = -300.0  # the amplifier came back at another DC level after the gap
    flags = np.zeros(2000, dtype=np.uint8)
    flags[1000] = FLAG_GAP
    raw = RingBuffer(10_000, 2)
    stage = DspStage(raw, rate, config)
    windows = feed(stage, raw, x, [37] * 60, rate, flags)
    spanning = [w.seq for w in windows if w.start_index < 1000 < w.start_index + 250]
    assert spanning and all(windows[s].has_gap for s in spanning)
    # A window starting exactly at the gap does not contain both sides: it is clean.
    assert windows[1000 // 125].start_index == 1000 and windows[1000 // 125].usable
    # Reseeded from the first sample after the gap: no step transient.
    after = np.concatenate([w.data for w in windows if w.start_index >= 1000])
    assert np.max(np.abs(after)) < 1e-2


def test_nan_burst_flags_windows_and_does_not_poison_the_filter():
    rate = 160.0
    config = make_config(stream_rate=rate, model_rate=160.0, length=1.0, hop=0.25)
    x = signal(3200, 4, rate)
    flags = np.zeros(3200, dtype=np.uint8)
    x[800:805, 1] = np.nan
    x[810, 3] = np.inf
    flags[[800, 801, 802, 803, 804, 810]] = FLAG_NONFINITE
    raw = RingBuffer(10_000, 4)
    stage = DspStage(raw, rate, config)
    windows = feed(stage, raw, x, [16] * 200, rate, flags)
    flagged = [w for w in windows if w.has_nonfinite]
    assert flagged
    for w in windows:
        contains = w.start_index <= 810 and w.start_index + 160 > 800
        assert w.has_nonfinite == contains
        assert np.isfinite(w.data).all()
    assert all(w.usable for w in windows if w.start_index > 900)


def test_cutter_recovers_from_falling_behind_the_ring_with_an_overrun():
    ring = RingBuffer(100, 1)
    cutter = WindowCutter(ring, 100.0, length_s=0.5, hop_s=0.1)
    ring.write(np.zeros((300, 1), np.float32), np.arange(300) / 100.0)
    windows = cutter.cut(now=0.0)
    assert cutter.overruns == 1
    assert windows[0].start_index >= ring.oldest
    assert windows[-1].start_index + 50 == 300


def test_epochs_asked_for_after_an_overrun_start_at_their_stimulus():
    """The stage fell behind the raw ring once and skipped samples the preprocessor never
    saw: an epoch asked for afterwards still starts at its stimulus (it was 2 s late)."""
    rate = 250.0
    config = parse_config(
        {"model_rate": 125.0, "paradigm": {"kind": "p300"}, "windows": {"length": 1.0}}
    )
    raw = RingBuffer(1000, 2)
    stage = DspStage(raw, rate, config)
    stamps = np.arange(3000) / rate
    raw.write(np.zeros((500, 2), np.float32), stamps[:500])
    stage.process(lambda: 0.0)
    raw.write(np.zeros((1500, 2), np.float32), stamps[500:2000])  # 501 samples are lost
    stage.process(lambda: 0.0)
    assert stage.overruns == 1
    for stimulus in (2100, 2300):
        stage.request_epoch(float(stimulus), stimulus)
    raw.write(np.zeros((1000, 2), np.float32), stamps[2000:])
    stage.process(lambda: 0.0)
    epochs = stage.take_epochs()
    assert [stimulus for stimulus, _ in epochs] == [2100, 2300]
    for stimulus, epoch in epochs:  # within half a model sample (an odd skip shifts the phase)
        assert abs(epoch.first_timestamp - stamps[stimulus]) <= 0.5 / 125.0 + 1e-9


def test_window_longer_than_ring_is_refused():
    with pytest.raises(ValueError, match="raise ring.capacity"):
        WindowCutter(RingBuffer(10, 1), 100.0, length_s=1.0, hop_s=0.5)


def test_each_window_is_stamped_cut_after_its_samples_are_filtered():
    """The cut time is read from the clock once the window's last sample is filtered, so the
    latency stage "dsp" (arrival -> cut) holds the filtering and "queue" only the hand-over."""
    rate, n = 1000.0, 3000
    config = make_config(length=0.5, hop=0.1)
    raw = RingBuffer(30_000, 4)
    stage = DspStage(raw, rate, config)  # it filters at most 0.5 s (500 raw samples) a step
    raw.write(signal(n, 4, rate), np.arange(n) / rate, None, arrival=0.0)
    windows = stage.process(lambda: float(stage.cursor))  # the clock reads the raw samples done
    assert len(windows) > 5
    for window in windows:
        last_raw = (window.start_index + 125) * 4  # model rate 250 Hz, one raw sample in four
        assert last_raw <= window.cut_time < last_raw + 500 + 4
