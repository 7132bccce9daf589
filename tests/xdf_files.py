"""Test helper: a minimal XDF 1.0 writer, to make files a recorder would write, and broken ones."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2**32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def write_xdf(
    path: Path, streams: list[dict], footers: bool = True, footer_counts: list[int] | None = None
) -> None:
    """A minimal XDF 1.0 writer: each stream ``{name, type, rate, fmt, channels, times,
    values}``; ``channels`` are ``(label, unit, type)`` tuples for the header ``desc``;
    ``footer_counts``: the sample counts the footers claim (default: the true ones)."""
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for sid, s in enumerate(streams, 1):
        desc = "".join(
            f"<channel><label>{lab}</label><unit>{unit}</unit><type>{typ}</type></channel>"
            for lab, unit, typ in s.get("channels", ())
        )
        n_ch = 1 if s["fmt"] == "string" else np.shape(s["values"])[1]
        header = (
            f'<?xml version="1.0"?><info><name>{s["name"]}</name><type>{s["type"]}</type>'
            f"<channel_count>{n_ch}</channel_count><nominal_srate>{s['rate']}</nominal_srate>"
            f"<channel_format>{s['fmt']}</channel_format><source_id>{s['name']}</source_id>"
            f"<desc><channels>{desc}</channels></desc></info>"
        )
        out += _chunk(2, struct.pack("<I", sid) + header.encode())
    for sid, s in enumerate(streams, 1):
        times, values = s["times"], s["values"]
        for first in range(0, len(times), 500):
            body = bytearray(struct.pack("<I", sid)) + _varlen(len(times[first : first + 500]))
            for t, v in zip(times[first : first + 500], values[first : first + 500], strict=True):
                body += b"\x08" + struct.pack("<d", t)
                if s["fmt"] == "string":
                    body += _varlen(len(v.encode())) + v.encode()
                else:
                    body += np.asarray(v, dtype="<f4").tobytes()
            out += _chunk(3, bytes(body))
    if footers:
        counts = footer_counts or [len(s["times"]) for s in streams]
        for sid, s in enumerate(streams, 1):
            footer = (
                f'<?xml version="1.0"?><info><first_timestamp>{s["times"][0]}</first_timestamp>'
                f"<last_timestamp>{s['times'][-1]}</last_timestamp>"
                f"<sample_count>{counts[sid - 1]}</sample_count></info>"
            )
            out += _chunk(6, struct.pack("<I", sid) + footer.encode())
    path.write_bytes(bytes(out))


def synthetic_xdf_streams(rate: float = 100.0, n: int = 2000):
    """4 channels (3 EEG in volts/µV + 1 trigger), a 2 s timestamp gap before sample 1000, a
    NaN at sample 1500, cues at 200 / 900 / 1400 and one marker after the end."""
    rng = np.random.default_rng(1)
    values = rng.standard_normal((n, 4)).astype(np.float32)
    values[:, :2] *= 20e-6  # volts
    values[:, 2] *= 20.0  # microvolts
    values[1500, 0] = np.nan
    times = 100.0 + np.arange(n) / rate
    times[1000:] += 2.0
    eeg = {
        "name": "synthetic-eeg",
        "type": "EEG",
        "rate": rate,
        "fmt": "float32",
        "channels": [
            ("Fc5.", "V", "EEG"),
            ("cz", "volts", "EEG"),
            ("X1", "microvolts", "EEG"),
            ("TRIG", "", "Trigger"),
        ],
        "times": times.tolist(),
        "values": values,
    }
    markers = {
        "name": "synthetic-markers",
        "type": "Markers",
        "rate": 0,
        "fmt": "string",
        "times": [times[200] + 0.003, times[900] - 0.004, times[1400], times[-1] + 5.0],
        "values": ["left", "right", "left", "right"],
    }
    return eeg, markers, values
