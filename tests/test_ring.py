"""Ring buffer: wrap-around, absolute indexing and explicit overruns (property-based)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bci_app.stream.ring import FLAG_GAP, RingBuffer, RingOverrun


def _chunk(start: int, n: int, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(start, start + n)
    data = (index[:, None] * 10 + np.arange(n_channels)[None, :]).astype(np.float32)
    return data, index * 0.01


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 40),
    n_channels=st.integers(1, 4),
    chunks=st.lists(st.integers(0, 60), min_size=1, max_size=30),
    data=st.data(),
)
def test_reads_return_exactly_what_was_written_or_raise_overrun(capacity, n_channels, chunks, data):
    ring = RingBuffer(capacity, n_channels)
    written = 0
    for n in chunks:
        chunk, ts = _chunk(written, n, n_channels)
        written = ring.write(chunk, ts)
        assert ring.written == written
        assert ring.oldest == max(0, written - capacity)
        start = data.draw(st.integers(0, written), label="start")
        stop = data.draw(st.integers(start, written), label="stop")
        if start < written - capacity:
            with pytest.raises(RingOverrun) as error:
                ring.read(start, stop)
            assert error.value.oldest == written - capacity
        else:
            out = ring.read(start, stop)
            expected, expected_ts = _chunk(start, stop - start, n_channels)
            np.testing.assert_array_equal(out.data, expected)
            np.testing.assert_array_equal(out.timestamps, expected_ts)


def test_newest_timestamp_flags_and_arrival_follow_the_wrap():
    ring = RingBuffer(5, 2)
    assert ring.newest_timestamp() is None
    data, ts = _chunk(0, 7, 2)
    flags = np.zeros(7, dtype=np.uint8)
    flags[6] = FLAG_GAP
    ring.write(data, ts, flags, arrival=np.arange(7.0))
    assert ring.newest_timestamp() == pytest.approx(0.06)
    out = ring.read(2, 7)
    np.testing.assert_array_equal(out.flags, [0, 0, 0, 0, FLAG_GAP])
    np.testing.assert_array_equal(out.arrival, [2, 3, 4, 5, 6])


def test_read_beyond_newest_and_bad_shapes_are_errors():
    ring = RingBuffer(4, 2)
    with pytest.raises(IndexError, match="has not been written yet"):
        ring.read(0, 1)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        ring.write(np.zeros((3, 3), np.float32), np.zeros(3))


def test_write_does_not_allocate_new_storage():
    ring = RingBuffer(100, 8)
    storage = ring._data.__array_interface__["data"][0]
    for start in range(0, 1000, 37):
        ring.write(*_chunk(start, 37, 8))
    assert ring._data.__array_interface__["data"][0] == storage


def test_reader_wakes_when_data_arrives():
    ring = RingBuffer(10, 1)
    woke = threading.Event()

    def reader():
        if ring.wait_for(0, 2.0):
            woke.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert not woke.wait(0.05)
    ring.write(*_chunk(0, 1, 1))
    thread.join(2.0)
    assert woke.is_set()
    assert not ring.wait_for(5, 0.01)


def test_concurrent_reader_never_sees_torn_data():
    """A reader racing a fast writer gets either exact data or an explicit overrun."""
    ring = RingBuffer(64, 4)
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        start = 0
        while not stop.is_set() and start < 200_000:
            ring.write(*_chunk(start, 16, 4))
            start += 16

    thread = threading.Thread(target=writer)
    thread.start()
    overruns = reads = 0
    try:
        while thread.is_alive() and reads < 20_000:
            written = ring.written
            start = max(0, written - 60)
            try:
                out = ring.read(start, written)
            except RingOverrun:
                overruns += 1
                continue
            reads += 1
            expected, _ = _chunk(start, written - start, 4)
            if not np.array_equal(out.data, expected):
                errors.append(f"torn read at {start}")
    finally:
        stop.set()
        thread.join(2.0)
    assert not errors
    assert reads > 0
