"""Damaged recordings: what was recovered and what was lost, one policy for XDF and EDF/BDF.

A recorder that crashed leaves an XDF without footers or an EDF shorter than its header says;
a copy can be cut mid-chunk. By default every intact part is used and each damaged stream gets
one warning with the recovered and lost seconds and samples; ``strict`` refuses the file with
the same figures instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bci_app.io.recording import RecordingError

__all__ = ["StreamDamage", "edf_declared_seconds", "report_damage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamDamage:
    """One damaged stream of ``path``. ``rate_hz`` 0: an irregular (marker) stream, counted
    in markers. ``lost_samples`` None: how much is lost cannot be known (the file ends before
    the stream's footer or header count)."""

    path: Path
    stream: str
    reason: str
    recovered_samples: int
    rate_hz: float
    lost_samples: int | None
    markers: int | None = None

    def _amount(self, samples: int) -> str:
        if self.rate_hz > 0:
            return f"{samples / self.rate_hz:.1f} s ({samples} samples)"
        return f"{samples} markers"

    def describe(self) -> str:
        """``<file>: stream 'EEG' is damaged (<reason>): recovered 74.5 s (11920 samples) and
        18 markers; lost 50.5 s (8080 samples)``."""
        recovered = self._amount(self.recovered_samples)
        if self.markers is not None:
            recovered += f" and {self.markers} markers"
        if self.lost_samples is None:
            lost = "lost: everything after that, of unknown length (the file ends there)"
        else:
            lost = f"lost {self._amount(self.lost_samples)}"
        return (
            f"{self.path}: stream {self.stream!r} is damaged ({self.reason}): "
            f"recovered {recovered}; {lost}"
        )


def report_damage(damages: Sequence[StreamDamage], strict: bool) -> tuple[str, ...]:
    """Refuse the file (``strict``: :class:`RecordingError` naming every damaged stream) or
    log one warning per damaged stream; returns the descriptions."""
    notes = tuple(d.describe() for d in damages)
    if notes and strict:
        raise RecordingError(
            "; ".join(notes) + ". Refused (--strict): copy the file again from the recording "
            "machine or re-record, or leave out --strict to use what was recovered"
        )
    for note in notes:
        log.warning("%s; using what was recovered (--strict refuses damaged files)", note)
    return notes


def edf_declared_seconds(path: Path) -> float | None:
    """The duration an EDF/BDF header declares (number of data records x record duration, s);
    None when the header does not say (-1 records: the recorder did not finish it)."""
    with open(path, "rb") as f:
        header = f.read(256)
    try:
        records = int(header[236:244].decode("ascii").strip())
        record_s = float(header[244:252].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        return None
    if records < 0 or record_s <= 0:
        return None
    return records * record_s
