"""Finding the configured LSL stream and describing it: :func:`resolve_stream` (by the config's
selector, with the visible streams listed when nothing matches), :func:`describe_stream` (checks
the stream against the config: format, rate, channel count, picked labels) and the
:class:`StreamDescription` the rest of the app works with.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pylsl

from bci_app.config import StreamConfig
from bci_app.errors import UserError
from bci_app.io.labels import label_key, microvolt_scale
from bci_app.stream.selector import SelectorError, StreamSelector

__all__ = [
    "ChannelInfo",
    "StreamDescription",
    "StreamError",
    "describe_stream",
    "format_stream_list",
    "read_channels",
    "resolve_stream",
    "sample_dtype",
    "stream_selector",
]

log = logging.getLogger(__name__)

#: Seconds to listen for every stream that matches the selector: two matches are refused, so
#: the first answer alone is not enough (on loopback all outlets answer within 0.1 s).
SETTLE_S = 0.3


class StreamError(UserError, RuntimeError):
    """A stream could not be used; the message says what was found and what to change."""


@dataclass(frozen=True)
class ChannelInfo:
    label: str
    unit: str
    type: str


@dataclass(frozen=True)
class StreamDescription:
    """What the app knows about the stream it reads (after the channel pick)."""

    name: str
    type: str
    source_id: str
    hostname: str
    rate_hz: float
    channels: tuple[ChannelInfo, ...]  # picked channels, in ring column order
    stream_channel_count: int  # channels in the stream before the pick
    #: per picked channel, the factor from its unit to µV (what the ring holds), as a
    #: recording's reader applies it: a stream in volts reads as the same file does
    to_microvolts: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.channels)


def format_stream_list(infos: list[pylsl.StreamInfo]) -> str:
    if not infos:
        return "  (no LSL streams visible on the network)"
    return "\n".join(
        f"  - name={i.name()!r} type={i.type()!r} source_id={i.source_id()!r} "
        f"channels={i.channel_count()} rate={i.nominal_srate():g} Hz host={i.hostname()!r}"
        for i in infos
    )


def stream_selector(config: StreamConfig) -> StreamSelector:
    """The selector of the config's ``stream`` section; :class:`StreamError` when it selects
    nothing or cannot be written as an LSL predicate."""
    if config.uses_simulator:
        raise StreamError("no stream selector configured: set stream.source_id, name or type")
    try:
        return StreamSelector(source_id=config.source_id, name=config.name, type=config.type)
    except SelectorError as exc:
        raise StreamError(f"stream section of the config: {exc}") from None


def resolve_stream(config: StreamConfig, timeout: float | None = None) -> pylsl.StreamInfo:
    """Find the one stream the config selects. Raises :class:`StreamError` listing what is
    visible when nothing matches, and listing the matches when several do (the app never
    guesses which amplifier to read)."""
    predicate = stream_selector(config).predicate()
    wait = config.resolve_timeout if timeout is None else timeout
    found = pylsl.resolve_bypred(predicate, 0, min(SETTLE_S, wait))
    if not found and wait > SETTLE_S:
        # not there yet: wait for the first, then listen a moment longer for others
        found = pylsl.resolve_bypred(predicate, 1, wait - SETTLE_S)
        if found:
            found = pylsl.resolve_bypred(predicate, 0, SETTLE_S) or found
    if not found:
        visible = pylsl.resolve_streams(wait_time=1.0)
        raise StreamError(
            f"no LSL stream matches {predicate} within {wait:g} s. Visible streams:\n"
            f"{format_stream_list(visible)}\n"
            "Fix stream.source_id / name / type in the config, or start the amplifier's outlet."
        )
    if len(found) > 1:
        ids = sorted({info.source_id() for info in found})
        if len(ids) == len(found):
            fix = (
                f"Set stream.source_id in the config to the one to read, e.g. source_id: {ids[0]!r}"
            )
        else:
            fix = "They share a source_id: stop every outlet but the amplifier's own"
        raise StreamError(
            f"{len(found)} LSL streams match {predicate}:\n{format_stream_list(found)}\n"
            f"The app will not guess which one to read. {fix}."
        )
    return found[0]


def read_channels(info: pylsl.StreamInfo) -> list[ChannelInfo]:
    """Channel labels, units and types from the stream description (``<channels>``)."""
    channels = []
    node = info.desc().child("channels").child("channel")
    while not node.empty() and len(channels) < info.channel_count():
        channels.append(
            ChannelInfo(
                label=node.child_value("label") or f"ch{len(channels) + 1}",
                unit=node.child_value("unit") or "unknown",
                type=node.child_value("type") or info.type(),
            )
        )
        node = node.next_sibling("channel")
    if len(channels) != info.channel_count():
        # Streams without a description: number the channels so they can still be shown.
        channels = [
            ChannelInfo(f"ch{i + 1}", "unknown", info.type()) for i in range(info.channel_count())
        ]
    return channels


# LSL channel formats -> the numpy dtype liblsl writes (strings are refused earlier).
_FORMAT_DTYPES = {
    pylsl.cf_float32: np.float32,
    pylsl.cf_double64: np.float64,
    pylsl.cf_int8: np.int8,
    pylsl.cf_int16: np.int16,
    pylsl.cf_int32: np.int32,
    pylsl.cf_int64: np.int64,
}


def sample_dtype(info: pylsl.StreamInfo) -> np.dtype:
    return np.dtype(_FORMAT_DTYPES.get(info.channel_format(), np.float32))


def describe_stream(
    info: pylsl.StreamInfo, config: StreamConfig, pick: list[str] | None
) -> tuple[StreamDescription, np.ndarray | None]:
    """Check a full stream info against the config; returns it and the pick indices (or None)."""
    label = f"stream {info.name()!r} (source_id {info.source_id()!r})"
    if info.channel_format() == pylsl.cf_string:
        raise StreamError(
            f"{label} carries strings (a marker stream?), not EEG samples; select the EEG stream "
            "with stream.source_id / name / type"
        )
    if info.nominal_srate() <= 0:
        raise StreamError(
            f"{label} has an irregular sampling rate; EEG must have a nominal rate. Select the "
            "EEG stream with stream.source_id / name / type"
        )
    if config.expected_rate is not None and not math.isclose(
        info.nominal_srate(), config.expected_rate, rel_tol=1e-6
    ):
        raise StreamError(
            f"{label} runs at {info.nominal_srate():g} Hz but stream.expected_rate is "
            f"{config.expected_rate:g} Hz; fix the amplifier setting or the config"
        )
    if config.expected_channels is not None and info.channel_count() != config.expected_channels:
        raise StreamError(
            f"{label} has {info.channel_count()} channels but stream.expected_channels is "
            f"{config.expected_channels}; fix the montage or the config"
        )
    channels = read_channels(info)
    pick_index = None
    if pick is not None:
        by_label = {label_key(c.label): i for i, c in enumerate(channels)}
        repeated = sorted(
            {p for p in pick if sum(label_key(c.label) == label_key(p) for c in channels) > 1}
        )
        if repeated:
            raise StreamError(
                f"channels.pick names {repeated}, which {label} has more than once; its "
                f"channels are: {', '.join(c.label for c in channels)}. Give the amplifier's "
                "channels unique labels"
            )
        missing = [p for p in pick if label_key(p) not in by_label]
        if missing:
            raise StreamError(
                f"channels.pick names {missing} which {label} does not have; its channels are: "
                f"{', '.join(c.label for c in channels)}"
            )
        pick_index = np.array([by_label[label_key(p)] for p in pick], dtype=np.intp)
        channels = [channels[i] for i in pick_index]
    description = StreamDescription(
        name=info.name(),
        type=info.type(),
        source_id=info.source_id(),
        hostname=info.hostname(),
        rate_hz=info.nominal_srate(),
        channels=tuple(channels),
        stream_channel_count=info.channel_count(),
        to_microvolts=tuple(
            microvolt_scale([c.unit for c in channels], [c.label for c in channels], label)
        ),
    )
    return description, pick_index
