"""Inlet thread against real LSL outlets over loopback: data, checks, gaps, NaN, recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
from conftest import unique_id, wait_until

from bci_app.config import HealthConfig, StreamConfig
from bci_app.stream.inlet import InletThread, StreamState, TimestampDejitter
from bci_app.stream.resolve import StreamError, resolve_stream
from bci_app.stream.ring import FLAG_GAP, FLAG_NONFINITE, RingOverrun

FAST_HEALTH = HealthConfig(stale_after=0.2, recover_after=0.6, lost_after=4.0, gap_tolerance=0.02)


def make_inlet(source_id: str, **kwargs) -> InletThread:
    stream = StreamConfig(source_id=source_id, resolve_timeout=3.0, **kwargs.pop("stream", {}))
    return InletThread(stream, kwargs.pop("health", FAST_HEALTH), ring_seconds=10.0, **kwargs)


def test_no_match_lists_the_visible_streams(outlet_factory):
    visible = outlet_factory(n_channels=2)
    with pytest.raises(StreamError) as error:
        resolve_stream(StreamConfig(source_id="no-such-amp", resolve_timeout=0.3))
    message = str(error.value)
    assert "no LSL stream matches source_id='no-such-amp'" in message
    assert visible.outlet.get_info().source_id() in message
    assert "Fix stream.source_id" in message


@pytest.mark.parametrize(
    ("rate", "fmt", "expected"),
    [
        (250.0, pylsl.cf_string, r"carries strings \(a marker stream\?\)"),
        (0.0, pylsl.cf_float32, "irregular sampling rate"),
    ],
)
def test_marker_or_irregular_stream_selected_as_eeg_is_refused(rate, fmt, expected):
    source_id = unique_id()
    info = pylsl.StreamInfo("markers", "Markers", 1, rate, fmt, source_id)
    outlet = pylsl.StreamOutlet(info)
    with pytest.raises(StreamError, match=expected):
        make_inlet(source_id).connect()
    del outlet


def test_rate_channel_and_label_mismatches_are_refused(outlet_factory):
    source = outlet_factory(n_channels=3, rate=250.0, labels=["C3", "Cz", "C4"])
    sid = source.outlet.get_info().source_id()
    with pytest.raises(StreamError, match="runs at 250 Hz but stream.expected_rate is 500 Hz"):
        make_inlet(sid, stream={"expected_rate": 500.0}).connect()
    with pytest.raises(StreamError, match="has 3 channels but stream.expected_channels is 64"):
        make_inlet(sid, stream={"expected_channels": 64}).connect()
    with pytest.raises(StreamError, match=r"names \['Pz'\].*its channels are: C3, Cz, C4"):
        make_inlet(sid, pick=["C3", "Pz"]).connect()
    # two channels read as C3: the pick would take one of them silently
    twice = outlet_factory(n_channels=3, labels=["EEG C3", "Cz", "C3."])
    with pytest.raises(StreamError, match=r"names \['C3'\], which .* has more than once"):
        make_inlet(twice.outlet.get_info().source_id(), pick=["C3"]).connect()


def test_reads_every_sample_exactly_with_labels_and_pick(outlet_factory):
    source = outlet_factory(n_channels=3, labels=["C3", "Cz", "C4"])
    inlet = make_inlet(source.outlet.get_info().source_id(), pick=["C4", "C3"])
    description = inlet.connect()
    assert description.labels == ("C4", "C3")
    assert description.channels[0].unit == "microvolts"
    inlet.start()
    try:
        source.push(100)
        assert wait_until(lambda: inlet.ring.written == 500)
        out = inlet.ring.read(0, 500)
        expected, timestamps = source.make_chunk(0, 500)
        np.testing.assert_array_equal(out.data, expected[:, [2, 0]])
        np.testing.assert_allclose(out.timestamps, timestamps, atol=1e-4)
        assert not out.flags.any()
        health = inlet.health()
        assert health.state is StreamState.LIVE
        assert health.samples == 500 and health.gaps == 0
    finally:
        inlet.stop()


VOLTS = ["V", "mV", ""]  # as files do: volts, millivolts, and no unit (µV, LSL's convention)


@pytest.mark.parametrize(
    ("fmt", "pick", "columns", "units"),
    [
        (pylsl.cf_double64, None, [0, 1, 2], None),
        (pylsl.cf_double64, ["C4", "C3"], [2, 0], None),
        (pylsl.cf_int16, None, [0, 1, 2], None),
        (pylsl.cf_int16, ["C4", "C3"], [2, 0], None),
        (pylsl.cf_int32, ["Cz"], [1], None),
        (pylsl.cf_float32, None, [0, 1, 2], VOLTS),
        (pylsl.cf_float32, ["C4", "C3"], [2, 0], VOLTS),
    ],
)
def test_any_sample_format_and_unit_reaches_the_ring_as_float32_microvolts(
    outlet_factory, fmt, pick, columns, units
):
    """mne-lsl's player, for one, streams double64 (liblsl writes the stream's own type); a
    stream in volts reads as the file LabRecorder makes of it (io.xdf scales it alike)."""
    source = outlet_factory(
        n_channels=3, labels=["C3", "Cz", "C4"], channel_format=fmt, units=units
    )  # fmt: skip
    inlet = make_inlet(source.outlet.get_info().source_id(), pick=pick)
    inlet.connect()
    inlet.start()
    try:
        source.push(20)
        assert wait_until(lambda: inlet.ring.written == 100)
        expected, _ = source.make_chunk(0, 100)
        if units is not None:
            expected = expected * np.array([1e6, 1e3, 1.0], dtype=np.float32)
        np.testing.assert_allclose(inlet.ring.read(0, 100).data, expected[:, columns], rtol=1e-6)
    finally:
        inlet.stop()


def test_timestamp_jump_forward_and_backward_marks_gaps(outlet_factory):
    def transform(first, data, timestamps):
        if first >= 200:
            timestamps += 0.4  # 100 samples missing at 250 Hz
        if first >= 400:
            timestamps -= 1.0  # the source clock stepped back

    source = outlet_factory(transform=transform)
    inlet = make_inlet(source.outlet.get_info().source_id())
    inlet.connect()
    inlet.start()
    try:
        source.push(120)
        assert wait_until(lambda: inlet.ring.written == 600)
        out = inlet.ring.read(0, 600)
        assert np.flatnonzero(out.flags & FLAG_GAP).tolist() == [200, 400]
        health = inlet.health()
        assert health.gaps == 2
        assert health.missing_samples == 100
        assert health.backward_timestamps == 1
        # Dejittered timestamps stay regular on each side of a jump, never smeared across it.
        steps = np.diff(out.timestamps)
        good = np.ones_like(steps, dtype=bool)
        good[[199, 399]] = False
        np.testing.assert_allclose(steps[good], 1 / 250.0, atol=2e-5)
        # A marker's time after the step back is placed on the new clock's samples: sample 450
        # has the time sample 200 had, which the search found before
        assert inlet.ring.position_of(out.timestamps[450]) == pytest.approx(450, abs=0.01)
        assert out.timestamps[450] == pytest.approx(out.timestamps[200], abs=1e-3)
        with pytest.raises(RingOverrun):  # a time of the old clock only: missed, not misplaced
            inlet.ring.position_of(out.timestamps[100])
    finally:
        inlet.stop()


def test_nan_and_inf_samples_are_counted_and_flagged(outlet_factory):
    def transform(first, data, timestamps):
        if first == 100:
            data[1:3, 0] = np.nan
            data[4, 2] = np.inf

    source = outlet_factory(transform=transform)
    inlet = make_inlet(source.outlet.get_info().source_id())
    inlet.connect()
    inlet.start()
    try:
        source.push(40)
        assert wait_until(lambda: inlet.ring.written == 200)
        out = inlet.ring.read(0, 200)
        assert np.flatnonzero(out.flags & FLAG_NONFINITE).tolist() == [101, 102, 104]
        assert inlet.health().nonfinite_samples == 3
    finally:
        inlet.stop()


def test_outlet_killed_and_restarted_recovers_with_the_gap_marked(outlet_factory):
    sid = unique_id()
    first = outlet_factory(source_id=sid)
    inlet = make_inlet(sid)
    inlet.connect()
    inlet.start()
    try:
        first.push(50)
        assert wait_until(lambda: inlet.ring.written == 250)
        first.stop()  # the amplifier's outlet disappears
        assert wait_until(lambda: inlet.health().state is StreamState.RECOVERING, 3.0)
        second = outlet_factory(source_id=sid)
        second.start()
        assert wait_until(lambda: inlet.health().state is StreamState.LIVE, 8.0)
        assert wait_until(lambda: inlet.ring.written >= 300)
        health = inlet.health()
        assert health.reconnects == 1
        out = inlet.ring.read(0, inlet.ring.written)
        assert FLAG_GAP in out.flags[250:251]
        assert not (out.flags[:250] & FLAG_GAP).any()
    finally:
        inlet.stop()


def test_several_streams_matching_at_start_are_refused_with_the_list(outlet_factory):
    name = f"dup-{unique_id()}"
    first = outlet_factory(name=name)
    second = outlet_factory(name=name)
    with pytest.raises(StreamError) as error:
        resolve_stream(StreamConfig(name=name, resolve_timeout=2.0))
    message = str(error.value)
    assert f"2 LSL streams match name='{name}'" in message
    for source in (first, second):
        assert source.outlet.get_info().source_id() in message
    assert "Set stream.source_id in the config" in message


def test_reconnect_never_adopts_another_source_of_the_same_name(outlet_factory):
    """Bound by name to A; A dies and B (same name, other source_id) is there: B is named in
    the health and never read; when A comes back it is adopted."""
    name = f"amp-{unique_id()}"
    first = outlet_factory(name=name)
    inlet = make_inlet(None, stream={"name": name})
    bound = inlet.connect().source_id
    assert bound == first.outlet.get_info().source_id()
    inlet.start()
    try:
        first.push(50)
        assert wait_until(lambda: inlet.ring.written == 250)
        first.stop()
        impostor = outlet_factory(name=name, n_channels=4)
        impostor.make_chunk = lambda first_index, n: (
            np.full((n, 4), -7.0, dtype=np.float32),
            impostor.t0 + np.arange(first_index, first_index + n) / impostor.rate,
        )
        impostor.start()
        assert wait_until(lambda: inlet.health().foreign_source is not None, 8.0)
        health = inlet.health()
        other = impostor.outlet.get_info().source_id()
        assert f"source_id {other!r}" in health.foreign_source
        assert f"not from {bound!r}" in health.foreign_source
        assert "not adopted" in health.foreign_source
        time.sleep(1.0)
        assert inlet.ring.written == 250 and health.reconnects == 0
        back = outlet_factory(name=name, source_id=bound)
        back.pushed = 300  # its ramp continues where it left off, stamped from now on
        back.t0 = pylsl.local_clock() - 300 / back.rate
        back.start()
        assert wait_until(lambda: inlet.ring.written >= 300, 8.0)
        assert inlet.health().reconnects == 1 and inlet.health().foreign_source is None
        out = inlet.ring.read(0, inlet.ring.written)
        assert not (out.data == -7.0).any()
    finally:
        inlet.stop()


def test_the_first_pull_marks_the_connection_backlog(outlet_factory):
    """Samples pushed between connect() and start() wait in liblsl and arrive in the first
    pull: first_arrival marks them, so the worker can keep them out of its latency figures."""
    source = outlet_factory()
    inlet = make_inlet(source.outlet.get_info().source_id())
    inlet.connect()
    source.push(40)  # 200 samples, 0.8 s, before the inlet pulls anything
    inlet.start()
    try:
        assert wait_until(lambda: inlet.first_arrival is not None)
        source.push(20)
        assert wait_until(lambda: inlet.ring.written == 300)
        out = inlet.ring.read(0, 300)
        backlog = np.flatnonzero(out.arrival <= inlet.first_arrival)
        assert backlog.tolist() == list(range(200))
    finally:
        inlet.stop()


def test_states_go_stale_then_lost_when_data_stops(outlet_factory):
    source = outlet_factory()
    health = HealthConfig(stale_after=0.1, recover_after=0.5, lost_after=1.0)
    inlet = make_inlet(source.outlet.get_info().source_id(), health=health)
    inlet.connect()
    inlet.start()
    seen = set()
    try:
        assert inlet.health().state is StreamState.CONNECTING
        source.push(20)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and StreamState.LOST not in seen:
            seen.add(inlet.health().state)
            time.sleep(0.01)
        assert {
            StreamState.LIVE,
            StreamState.STALE,
            StreamState.RECOVERING,
            StreamState.LOST,
        } <= seen
    finally:
        inlet.stop()


def test_channel_count_change_on_reconnect_fails_clearly(outlet_factory):
    sid = unique_id()
    first = outlet_factory(source_id=sid, n_channels=4)
    inlet = make_inlet(sid)
    inlet.connect()
    inlet.start()
    try:
        first.push(20)
        assert wait_until(lambda: inlet.ring.written == 100)
        first.stop()
        outlet_factory(source_id=sid, n_channels=6).start()
        assert wait_until(lambda: inlet.health().state is StreamState.FAILED, 8.0)
        assert "came back with 6 channels at 250 Hz, but it had 4 channels" in inlet.health().error
    finally:
        inlet.stop()


def test_stop_joins_quickly_even_while_waiting_for_data(outlet_factory):
    source = outlet_factory()
    inlet = make_inlet(source.outlet.get_info().source_id())
    inlet.connect()
    inlet.start()
    started = time.monotonic()
    inlet.stop()
    assert time.monotonic() - started < 2.0
    assert not inlet.running


_HANGING_OUTLET = """
import sys, time
import numpy as np, pylsl
info = pylsl.StreamInfo("hanging", "EEG", 3, 250.0, pylsl.cf_float32, sys.argv[1])
outlet = pylsl.StreamOutlet(info)
print("ready", flush=True)
start, sent = time.monotonic(), 0
while True:
    due = int((time.monotonic() - start) * 250)
    if due > sent:
        outlet.push_chunk(np.zeros((due - sent, 3), np.float32))
        sent = due
    time.sleep(0.01)
"""


def test_an_outlet_that_hangs_and_twitches_never_ends_the_inlet_thread():
    """An amplifier's process that hangs (SIGSTOP) and wakes for a moment now and then: the
    clock-offset query inside a pull times out (liblsl's own TimeoutError, not Python's),
    which used to end the inlet thread for good. It must ride it out and read again after."""
    sid = unique_id("hanging")
    child = subprocess.Popen(
        [sys.executable, "-c", _HANGING_OUTLET, sid], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        inlet = make_inlet(sid)
        inlet.connect()
        inlet.start()
        try:
            assert wait_until(lambda: inlet.health().state is StreamState.LIVE, 5.0)
            child.send_signal(signal.SIGSTOP)
            deadline = time.monotonic() + 8.0  # the thread used to end within 3 s of this
            while time.monotonic() < deadline and inlet.running:
                time.sleep(0.7)
                child.send_signal(signal.SIGCONT)
                time.sleep(0.015)
                child.send_signal(signal.SIGSTOP)
            assert inlet.running, inlet.health().error
            child.send_signal(signal.SIGCONT)
            written = inlet.ring.written
            assert wait_until(lambda: inlet.ring.written > written + 250, 10.0)
            assert inlet.health().state is StreamState.LIVE
        finally:
            started = time.monotonic()
            inlet.stop()
            assert time.monotonic() - started < 2.0
    finally:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait()


@pytest.mark.parametrize("true_rate", [250.0, 252.75, 247.25, 1000.0])
def test_dejittered_timestamps_follow_the_streams_own_clock(true_rate):
    """A stream declared at 250 Hz whose samples come at ``true_rate`` (a clock 1.1 % off;
    a replay at 4x speed), stamped with 1 ms jitter in chunks of 10: once 2 s of samples are
    in, the smoothed timestamps stay within 2 ms of the true ones (the slope was pinned to
    nominal: 0.4 s off after a minute at 1.1 %)."""
    rng = np.random.default_rng(0)
    dejitter = TimestampDejitter(250.0)
    true = 1000.0 + np.arange(round(60 * true_rate)) / true_rate
    errors = []
    for start in range(0, true.size, 10):
        chunk = true[start : start + 10] + rng.normal(0, 0.001, len(true[start : start + 10]))
        dejitter.apply(chunk)
        if start >= 2.5 * 250:
            errors.append(np.abs(chunk - true[start : start + 10]).max())
    assert max(errors) < 0.002, max(errors)
