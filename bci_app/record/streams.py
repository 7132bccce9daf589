"""What a recording records: the default selection, resolving selectors to the visible LSL
streams (each stream once), and :class:`RecordedStream`, what was handed to LabRecorderCLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pylsl

from bci_app.record.errors import RecordError, check_seconds
from bci_app.stream.resolve import format_stream_list
from bci_app.stream.selector import StreamSelector

#: Default time (s) to wait for the requested streams to become visible.
RESOLVE_TIMEOUT_S = 5.0
#: Selectors that may match several streams (no source_id) or are optional wait this long (s)
#: for more streams to answer (LabRecorderCLI itself listens for 1 s).
RESOLVE_SETTLE_S = 1.0
POLL_S = 0.05  # sleep between checks while waiting (start, stop, resolve)


class AnyEvent:
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


def default_input_selectors() -> list[StreamSelector]:
    """What ``bci-app record`` records without ``--stream``: every visible EEG stream (at least
    one) and every visible Markers stream (none is fine)."""
    return [StreamSelector(type="EEG"), StreamSelector(type="Markers", optional=True)]


def check_selectors(selectors: Iterable[StreamSelector]) -> list[StreamSelector]:
    """``selectors`` as a list after checking it: StreamSelector objects, at least one of them
    required; else :class:`RecordError` saying what to pass."""
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


def resolve_selectors(
    selectors: Sequence[StreamSelector],
    timeout: float = RESOLVE_TIMEOUT_S,
    cancel: threading.Event | AnyEvent | None = None,
) -> list[pylsl.StreamInfo]:
    """The visible streams matching ``selectors`` (each stream once, in selector order).

    Returns as soon as every selector matched (after :data:`RESOLVE_SETTLE_S` when a selector may
    match several streams or is optional), else after ``timeout`` seconds. Raises
    :class:`RecordError` listing the visible streams (name, type, source_id) when a required
    selector matched nothing, or when ``cancel`` was set.
    """
    selectors = check_selectors(selectors)
    timeout = check_seconds(timeout, "timeout")
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
