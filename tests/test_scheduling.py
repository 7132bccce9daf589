"""Real-time priority of the acquisition threads (SCHED_FIFO), on real threads and a real stream."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import unique_id, wait_until

from bci_app.bench.outlet import PushClock
from bci_app.config import AppConfig, HealthConfig, StreamConfig
from bci_app.pipeline import Pipeline
from bci_app.scheduling import (
    realtime_for_new_threads,
    realtime_priority_of_thread,
    set_realtime_priority,
)
from bci_app.stream.inlet import InletThread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_FIFO is Linux")


def _in_thread(function):
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=function()))
    thread.start()
    thread.join(5)
    return result["value"]


def _realtime_allowed() -> bool:
    return _in_thread(lambda: set_realtime_priority(1) is None)


needs_permission = pytest.mark.skipif(
    not _realtime_allowed(), reason="this user may not raise threads to real-time priority"
)


def _fifo_threads() -> dict[int, int]:
    """Native id -> SCHED_FIFO priority of every thread of this process at real-time priority."""
    found = {}
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        try:
            if os.sched_getscheduler(tid) == os.SCHED_FIFO:
                found[tid] = os.sched_getparam(tid).sched_priority
        except OSError:  # the thread ended meanwhile
            continue
    return found


@pytest.mark.parametrize("priority", [0, 100, True, 2.5])
def test_invalid_priorities_are_refused(priority):
    with pytest.raises((ValueError, TypeError), match="realtime priority must be"):
        set_realtime_priority(priority)
    with pytest.raises((ValueError, TypeError), match="realtime priority must be"):
        InletThread(StreamConfig(source_id="x"), HealthConfig(), 10.0, realtime_priority=priority)


@needs_permission
def test_calling_thread_is_raised_and_the_context_restores_it():
    def raise_and_report():
        before = realtime_priority_of_thread()
        refused = set_realtime_priority(7)
        return before, refused, realtime_priority_of_thread()

    assert _in_thread(raise_and_report) == (None, None, 7)

    def inherit():
        seen = {}
        with realtime_for_new_threads(12) as raised:
            child = threading.Thread(
                target=lambda: seen.update(child=realtime_priority_of_thread())
            )
            child.start()
            child.join(5)
            seen["inside"] = realtime_priority_of_thread()
        seen["after"] = realtime_priority_of_thread()
        return raised, seen

    raised, seen = _in_thread(inherit)
    assert raised
    assert seen == {"child": 12, "inside": 12, "after": None}


def test_refusal_returns_the_fix_and_warns_once():
    # Drop the permission the way an ordinary desktop user lacks it: no CAP_SYS_NICE, rtprio 0.
    script = """
import logging, os, resource
from bci_app.scheduling import set_realtime_priority
logging.basicConfig(level=logging.WARNING, format="WARN %(message)s")
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
print("first:", set_realtime_priority(10))
print("second:", set_realtime_priority(10))
print("policy:", os.sched_getscheduler(0) == os.SCHED_FIFO)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "first: the system refused real-time priority 10 (no permission)" in result.stdout
    assert "rtprio" in result.stdout and "scheduling.realtime_priority: null" in result.stdout
    assert "second: the system refused" in result.stdout
    assert "policy: False" in result.stdout
    assert result.stderr.count("WARN acquisition threads stay at normal priority") == 1


@needs_permission
def test_inlet_thread_and_liblsl_receiver_run_at_realtime_priority(outlet_factory):
    sid = unique_id()
    outlet = outlet_factory(source_id=sid)
    before = set(_fifo_threads())
    inlet = InletThread(
        StreamConfig(source_id=sid, resolve_timeout=3.0),
        HealthConfig(),
        ring_seconds=10.0,
        realtime_priority=11,
    )
    inlet.connect()
    assert realtime_priority_of_thread() is None  # the caller is back to normal
    inlet.start()
    try:
        outlet.push(40)
        assert wait_until(lambda: inlet.ring.written == 200)
        raised = {tid: p for tid, p in _fifo_threads().items() if tid not in before}
        assert raised.get(inlet.threads[0].native_id) == 11
        # At least liblsl's receiver thread besides ours, started while the inlet opened.
        assert len(raised) >= 2 and set(raised.values()) == {11}
        assert inlet.health().realtime_priority == 11
    finally:
        inlet.stop()


def test_without_a_priority_no_thread_is_raised(outlet_factory):
    sid = unique_id()
    outlet = outlet_factory(source_id=sid)
    before = set(_fifo_threads())
    inlet = InletThread(StreamConfig(source_id=sid, resolve_timeout=3.0), HealthConfig(), 10.0)
    inlet.connect()
    inlet.start()
    try:
        outlet.push(10)
        time.sleep(0.3)
        assert set(_fifo_threads()) <= before
        assert inlet.health().realtime_priority is None
    finally:
        inlet.stop()


@needs_permission
def test_pipeline_dsp_thread_runs_at_the_configured_priority():
    config = AppConfig.model_validate({"scheduling": {"realtime_priority": 9}})
    with Pipeline(config) as pipeline:
        assert wait_until(lambda: pipeline.status().windows > 0, timeout=10.0)
        assert _fifo_threads().get(pipeline.threads[0].native_id) == 9
        assert pipeline.status().stream.realtime_priority == 9


def test_push_clock_uses_measured_push_times():
    clock = PushClock(t0=100.0, rate_hz=1000.0, chunk=10, push_done=np.array([100.0095, 100.0192]))
    timestamps = np.array([100.0, 100.009, 100.010, 100.019])
    assert clock.pushed_at(timestamps).tolist() == [100.0095, 100.0095, 100.0192, 100.0192]
    assert clock.pushed_at(100.005) == 100.0095
    nominal = PushClock(t0=100.0, rate_hz=1000.0, chunk=10)
    assert nominal.pushed_at(timestamps) == pytest.approx([100.009, 100.009, 100.019, 100.019])
    with pytest.raises(ValueError, match="outside the chunks"):
        clock.pushed_at(np.array([100.025]))
