"""Channel labels and units: one normaliser for every place that reads or matches a label.

:func:`canonical_label` writes a label the 10-10 way (``'Fc5.'`` -> ``'FC5'``); :func:`label_key`
is what two labels are compared by (the stream's pick, a checkpoint's electrodes, a recording's
columns); :func:`microvolt_factor` scales a channel's unit string to microvolts, and
:func:`microvolt_scale` a whole montage's, as every reader of samples (files and live streams)
applies it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["LABEL_PATTERN", "canonical_label", "label_key", "microvolt_factor", "microvolt_scale"]

log = logging.getLogger(__name__)

#: 10-10 / 10-05 label grammar (upper case): row prefix + electrode number or Z.
LABEL_PATTERN = re.compile(r"^(NZ|FP|AF|FC|FT|CP|TP|PO|F|C|T|P|O|I)(Z|\d{1,2})$")
_EEG_PREFIX = re.compile(r"^EEG[\s_-]+", re.IGNORECASE)

# Channel unit strings (lower case) -> factor to microvolts.
_UNIT_TO_UV: dict[str, float] = {
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "uv": 1.0,
    "µv": 1.0,
    "μv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nv": 1e-3,
    "nanovolt": 1e-3,
    "nanovolts": 1e-3,
}


def canonical_label(label: str) -> str:
    """10-10 capitalisation of a channel label: ``'Fc5.'`` -> ``'FC5'``, ``'Cz..'`` -> ``'Cz'``,
    ``'fp1'`` -> ``'Fp1'``, ``'EEG Afz'`` -> ``'AFz'``. Other labels come back stripped of
    padding dots and spaces, otherwise unchanged."""
    text = _EEG_PREFIX.sub("", str(label).strip()).strip(" .")
    match = LABEL_PATTERN.match(text.upper())
    if match is None:
        return text
    prefix, number = match.groups()
    prefix = {"FP": "Fp", "NZ": "Nz"}.get(prefix, prefix)
    return prefix + ("z" if number == "Z" else number)


def label_key(label: str) -> str:
    """What labels are matched by: canonical and case-folded (``'EEG Fc5.'`` -> ``'fc5'``)."""
    return canonical_label(label).casefold()


def microvolt_factor(unit: str) -> float | None:
    """Factor from ``unit`` (``'V'``, ``'mV'``, ``'microvolts'``...) to µV; None if unknown."""
    return _UNIT_TO_UV.get(unit.strip().lower())


#: What a stream or file writes when it names no unit.
_NO_UNIT = {"", "unknown", "n/a"}


def microvolt_scale(units: Sequence[str], labels: Sequence[str], source: str) -> np.ndarray:
    """Factors ``(n_channels,)`` that bring each channel's samples to µV: a known voltage
    unit's factor; 1.0 where no unit is given (µV, the LSL convention) and, with a warning
    naming ``source`` and the channel, where the unit is not a voltage this knows."""
    scale = np.ones(len(units))
    for i, unit in enumerate(units):
        factor = microvolt_factor(unit)
        if factor is not None:
            scale[i] = factor
        elif unit.strip().lower() not in _NO_UNIT:
            log.warning("%s: channel %s has unknown unit %r; taken as µV", source, labels[i], unit)
    return scale
