"""The one builder of LSL stream descriptions (:class:`pylsl.StreamInfo`) for every outlet the
app opens: simulator, replay, board, cue markers, prediction outlets and benchmarks.

Channels go under ``desc/channels/channel`` with ``label``, ``unit`` and ``type``, as the XDF
and LSL meta-data conventions (and LabRecorder, MNE-LSL) expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pylsl

__all__ = ["CHANNEL_FORMATS", "copy_desc", "make_stream_info"]

#: XDF / LSL channel format names -> pylsl constants.
CHANNEL_FORMATS: dict[str, int] = {
    "float32": pylsl.cf_float32,
    "double64": pylsl.cf_double64,
    "string": pylsl.cf_string,
    "int8": pylsl.cf_int8,
    "int16": pylsl.cf_int16,
    "int32": pylsl.cf_int32,
    "int64": pylsl.cf_int64,
}


def make_stream_info(
    name: str,
    stream_type: str,
    source_id: str,
    *,
    rate_hz: float = 0.0,
    channel_format: str = "float32",
    labels: Sequence[str] | None = None,
    unit: str = "",
    channels: Sequence[Mapping[str, str]] = (),
    n_channels: int | None = None,
    manufacturer: str | None = None,
    desc: Mapping | None = None,
) -> pylsl.StreamInfo:
    """A stream description.

    ``rate_hz`` 0 means an irregular stream. Channels come from ``labels`` (each with ``unit``
    and type ``stream_type``), or from ``channels`` (mappings of ``label``/``unit``/``type``),
    or ``n_channels`` without a channel list. ``desc`` (a pyxdf-parsed ``<desc>`` tree) is
    copied as it is instead, as replay does to keep a recording's meta-data.
    """
    if labels is not None:
        channels = [{"label": lab, "unit": unit, "type": stream_type} for lab in labels]
    count = n_channels if n_channels is not None else len(channels)
    if count < 1:
        raise ValueError(f"stream {name!r} needs at least one channel (labels or n_channels)")
    if channel_format not in CHANNEL_FORMATS:
        raise ValueError(
            f"channel_format {channel_format!r}; allowed: {', '.join(CHANNEL_FORMATS)}"
        )
    info = pylsl.StreamInfo(
        name,
        stream_type,
        count,
        rate_hz if rate_hz > 0 else pylsl.IRREGULAR_RATE,
        CHANNEL_FORMATS[channel_format],
        source_id,
    )
    if desc is not None:
        copy_desc(info.desc(), desc)
        return info
    if manufacturer is not None:
        info.desc().append_child_value("manufacturer", manufacturer)
    if channels:
        node = info.desc().append_child("channels")
        for channel in channels:
            child = node.append_child("channel")
            for key, value in channel.items():
                child.append_child_value(key, str(value))
    return info


def copy_desc(node: pylsl.XMLElement, tree: Mapping) -> None:
    """Write a pyxdf-parsed XML tree (``{tag: [text | subtree | None, ...]}``) under ``node``."""
    for tag, entries in tree.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict):
                copy_desc(node.append_child(tag), entry)
            elif entry is None:
                node.append_child(tag)
            else:
                node.append_child_value(tag, str(entry))
