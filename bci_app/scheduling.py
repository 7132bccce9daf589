"""Real-time (SCHED_FIFO) priority for the acquisition threads, and the interpreter lock's
switch interval.

On a busy machine a thread woken by new data can wait a millisecond or more for a core behind
ordinary threads (the GUI, other processes). At a real-time priority it runs as soon as it is
woken. The acquisition threads only ever run briefly and then block again, so they cannot starve
the rest of the machine (by default the kernel also keeps 5 % of CPU time for ordinary threads).

Raising needs permission: root, ``CAP_SYS_NICE``, or an ``rtprio`` limit for the user. Without it
the app logs one warning that says how to grant it and runs at normal priority. Linux only; other
systems keep normal priority.

A thread woken by the OS still needs Python's interpreter lock; a busy thread gives it up only
after ``sys.getswitchinterval()`` (5 ms by default). :func:`gil_switch_interval` shortens that
while a pipeline runs: at 64 ch @ 1 kHz, 0.5 ms cut the e2e p99 from 8.3 to 6.5 ms
(``bci-app bench latency``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bci_app.errors import InvalidArgument

log = logging.getLogger(__name__)

MIN_PRIORITY, MAX_PRIORITY = 1, 99

_warned = False
_warn_lock = threading.Lock()

GRANT_HINT = (
    "grant it with an rtprio limit (a line '<user> - rtprio 20' in "
    "/etc/security/limits.d/bci-app.conf, then log in again) or with "
    "'sudo setcap cap_sys_nice+ep <path of the python binary>'; set "
    "scheduling.realtime_priority: null to run at normal priority without this warning"
)


def check_priority(priority: int) -> None:
    """Raise TypeError or ValueError unless ``priority`` is an integer in 1-99."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"realtime priority must be an integer, got {priority!r}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidArgument(
            f"realtime priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )


def _warn_once(reason: str) -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    log.warning("acquisition threads stay at normal priority: %s", reason)


def set_realtime_priority(priority: int) -> str | None:
    """Put the calling thread on ``SCHED_FIFO`` at ``priority`` (1-99).

    Returns None when it worked, else why not (also logged once per process as a warning).
    """
    check_priority(priority)
    if not sys.platform.startswith("linux") or not hasattr(os, "sched_setscheduler"):
        reason = f"real-time scheduling is not supported on {sys.platform}"
        log.debug(reason)
        return reason
    try:
        # pid 0 is the calling thread on Linux, not the whole process.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError:
        reason = f"the system refused real-time priority {priority} (no permission); " + GRANT_HINT
        _warn_once(reason)
        return reason
    except OSError as exc:
        reason = f"real-time priority {priority} failed: {exc}"
        _warn_once(reason)
        return reason
    return None


def realtime_priority_of_thread() -> int | None:
    """The calling thread's SCHED_FIFO priority, or None when it runs at normal priority."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    if os.sched_getscheduler(0) != os.SCHED_FIFO:
        return None
    return os.sched_getparam(0).sched_priority


@contextmanager
def realtime_for_new_threads(priority: int | None) -> Iterator[bool]:
    """Run the block with the calling thread at real-time ``priority`` and restore it after.

    Threads started inside the block inherit the priority: this is how the receiver thread that
    liblsl starts when an inlet opens its stream gets it. Yields whether the priority was raised;
    ``priority=None`` changes nothing.
    """
    if priority is None or not hasattr(os, "sched_getscheduler"):
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    raised = set_realtime_priority(priority) is None
    try:
        yield raised
    finally:
        if raised:
            os.sched_setscheduler(0, policy, param)


@contextmanager
def gil_switch_interval(milliseconds: float | None) -> Iterator[None]:
    """Run the block with ``sys.setswitchinterval(milliseconds / 1000)`` (process-wide) and
    restore the previous interval after; ``None`` changes nothing."""
    if milliseconds is None:
        yield
        return
    if not milliseconds > 0:
        raise InvalidArgument(f"the switch interval must be > 0 ms, got {milliseconds}")
    previous = sys.getswitchinterval()
    sys.setswitchinterval(milliseconds / 1e3)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
