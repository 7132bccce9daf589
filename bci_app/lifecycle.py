"""One lifecycle for every owner of a thread or a process (inlet, dsp, worker, simulator,
replayer, recorder, pipeline, pipeline process, the GUI's background calls).

A :class:`Background` runs once: :meth:`~Background.start` (set-up errors are raised there and
leave nothing running), :meth:`~Background.stop` (asks every thread to end, joins it, then joins
every child process and terminates one that is still alive: the same rule everywhere, bounded by
one timeout), the exception that ended a thread in :attr:`~Background.error`, and a context
manager. In the spirit of mne-lsl's base classes: subclasses only say what to set up
(:meth:`~Background._setup`), what each thread does, and what to release
(:meth:`~Background._teardown`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.process
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0  # every stop joins within this unless told otherwise
TERMINATE_WAIT_S = 0.5  # after terminate(): how long to wait before kill()

ChildProcess = multiprocessing.process.BaseProcess | subprocess.Popen


def end_process(process: ChildProcess, timeout: float, what: str) -> bool:
    """Join ``process`` within ``timeout`` seconds; terminate it (then kill it) when it is
    still alive. Returns True when it ended by itself."""
    if isinstance(process, subprocess.Popen):
        try:
            process.wait(max(0.0, timeout))
            return True
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in time; terminating it", what)
            process.terminate()
            try:
                process.wait(TERMINATE_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(TERMINATE_WAIT_S)
            return False
    process.join(max(0.0, timeout))
    if not process.is_alive():
        return True
    log.error("%s did not stop in time; terminating it", what)
    process.terminate()
    process.join(TERMINATE_WAIT_S)
    if process.is_alive():
        process.kill()
        process.join(TERMINATE_WAIT_S)
    return False


@contextlib.contextmanager
def on_signals(
    callback: Callable[[], None], signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[bool]:
    """The one signal helper: ``callback()`` runs on each of ``signums`` (Ctrl+C, SIGTERM) while
    the block runs, and the previous handlers come back at its end. Yields False (and installs
    nothing) off the main thread, where Python cannot catch signals."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {signum: signal.signal(signum, lambda *_: callback()) for signum in signums}
    try:
        yield True
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


class Background:
    """Base of every thread and process owner; see the module docstring.

    Subclasses start their threads with :meth:`_spawn` (inside :meth:`_setup` or later) and
    register child processes with :meth:`_adopt`; loops check :attr:`stopping` or wait on
    :meth:`_wait_stop`.
    """

    name = "bci-background"
    log_errors = True  # False where the owner shows the error itself (a GUI call)

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._processes: list[ChildProcess] = []
        self._started = False
        self._stopped = False

    # -- to override ---------------------------------------------------------------------------
    def _setup(self) -> Any:
        """Open resources and spawn threads; its return value is :meth:`start`'s."""
        return None

    def _request_stop(self) -> None:
        """Wake threads that wait on something other than the stop flag (called by stop)."""

    def _teardown(self) -> None:
        """Release what :meth:`_setup` opened, after every thread and process was joined."""

    # -- the lifecycle ---------------------------------------------------------------------------
    def start(self) -> Any:
        """Set up and start; an error is raised here after everything begun was stopped."""
        if self._started:
            raise RuntimeError(f"{self.name} runs once; create a new one to start again")
        self._started = True
        try:
            return self._setup()
        except BaseException:
            self.stop()
            raise

    def request_stop(self) -> None:
        """Ask every thread to end and return at once (:meth:`stop` also joins)."""
        self._stop_event.set()
        self._request_stop()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Ask every thread to end, join threads then processes within ``timeout`` seconds in
        all (a process still alive is terminated), then release resources. Idempotent; returns
        True when everything ended by itself."""
        self.request_stop()
        deadline = time.monotonic() + timeout
        clean = True
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error("%s: thread %s did not stop in %.1f s", self.name, thread.name, timeout)
                clean = False
        for process in self._processes:
            what = f"{self.name}: process {getattr(process, 'name', None) or process.pid}"
            clean &= end_process(process, deadline - time.monotonic(), what)
        if not self._stopped:
            self._stopped = True
            self._teardown()
        return clean

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every thread has ended by itself; True when none is left running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """Its threads, in the order they were started."""
        return tuple(self._threads)

    @property
    def running(self) -> bool:
        """True while any of its threads is alive."""
        return any(t.is_alive() for t in self._threads)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called: loops end when they see it."""
        return self._stop_event.is_set()

    def __enter__(self) -> Any:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- for subclasses ------------------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], name: str | None = None) -> threading.Thread:
        """Start ``target`` on a daemon thread; an exception it raises lands in :attr:`error`."""

        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # kept for the owner to show
                self.error = exc
                if self.log_errors:
                    log.exception("%s: thread %s ended on an error", self.name, thread.name)

        thread = threading.Thread(target=guarded, name=name or self.name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _adopt(self, process: ChildProcess) -> None:
        """Register a started child process: :meth:`stop` joins it, or terminates it."""
        self._processes.append(process)

    def _wait_stop(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on :meth:`stop`; True when stopping."""
        return self._stop_event.wait(seconds)


class BackgroundCall(Background):
    """One blocking call (a stream resolve, a pipeline start, a training) on a daemon thread,
    so that a GUI never blocks: poll :attr:`done`, then read :attr:`result` or :attr:`error`."""

    log_errors = False

    def __init__(self, fn: Callable[[], Any], name: str) -> None:
        super().__init__()
        self.name = name
        self.result: Any = None
        self._fn = fn
        self.start()

    def _setup(self) -> None:
        self._spawn(self._call, self.name)

    def _call(self) -> None:
        self.result = self._fn()

    @property
    def done(self) -> bool:
        return not self.running

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when the call has finished."""
        return self.wait(timeout)
