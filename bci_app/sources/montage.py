"""Channel sets and approximate scalp positions (no MNE needed at runtime).

Coordinates are unit-sphere ``(x, y, z)``: x towards the right ear, y towards the nose
(anterior), z towards the vertex. Cz is ``(0, 0, 1)``; Fpz, T7, Oz and T8 lie on the equator
``z = 0`` (nasion, inion and T9/T10 one 10 % step below it).

10-10 labels are placed by rule on an idealised spherical head (azimuthal equidistant layout):

* the row prefix (``Fp AF F FC/FT C/T CP/TP P PO O I``) fixes the point on the midline
  (nasion -> inion arc, 22.5 deg per 10 % row: Fz 45 deg anterior of Cz, Fpz 90 deg, Pz 45 deg
  posterior, Oz 90 deg, Iz 112.5 deg);
* the number fixes the lateral step away from the midline (``ceil(k / 2)``; odd = left,
  even = right, ``z`` = midline). Each row is divided into equal steps between its midline
  point and its point on the ring through Fpz-T7-Oz-T8 (theta = 90 deg from Cz), e.g.
  ``F7`` / ``T7`` / ``P7`` lie on that ring and ``F9`` / ``T9`` / ``P9`` one step below it.

The 256-channel set (``E001`` .. ``E256``) is a synthetic high-density cap: points on a
Fibonacci (golden-angle) spiral that covers the spherical cap ``z >= -0.3`` with equal area
per electrode, ``E001`` at the vertex and numbering spiralling downwards.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

__all__ = [
    "ALLOWED_CHANNEL_COUNTS",
    "EEGMMIDB_64",
    "HD_256",
    "SMALL_8",
    "channel_set",
    "label_position",
    "positions",
]

#: The 64 channels of the PhysioNet EEG Motor Movement/Imagery database, in EDF file order.
EEGMMIDB_64: tuple[str, ...] = (
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6",
    "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
    "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6",
    "Fp1", "Fpz", "Fp2",
    "AF7", "AF3", "AFz", "AF4", "AF8",
    "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8",
    "FT7", "FT8", "T7", "T8", "T9", "T10", "TP7", "TP8",
    "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8",
    "PO7", "PO3", "POz", "PO4", "PO8",
    "O1", "Oz", "O2", "Iz",
)  # fmt: skip

#: A small 8-channel motor-imagery montage around the sensorimotor cortex.
SMALL_8: tuple[str, ...] = ("FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4", "Pz")

#: Synthetic 256-channel high-density set, positions from a Fibonacci spiral (see module doc).
HD_256: tuple[str, ...] = tuple(f"E{i:03d}" for i in range(1, 257))

ALLOWED_CHANNEL_COUNTS: tuple[int, ...] = (8, 64, 256)

_SETS: dict[int, tuple[str, ...]] = {8: SMALL_8, 64: EEGMMIDB_64, 256: HD_256}

# Lowest point of the 256-channel spiral cap (z = cos(polar angle)); -0.3 ~ 107 deg from Cz.
_HD_Z_MIN = -0.3

# One 10 % step of the nasion-inion arc. 22.5 deg (ring Fpz-T7-Oz-T8 on the equator of the
# best-fitting sphere, as in EEGLAB's spherical convention) matches real heads better than the
# 18 deg of a perfect sphere through nasion/inion: median error vs MNE's standard_1005 ~ 6 deg.
_STEP_DEG = 22.5
_RING_DEG = 4 * _STEP_DEG  # polar angle of the Fpz-T7-Oz-T8 ring (90 deg)
_LOW_DEG = 5 * _STEP_DEG  # polar angle of the Nz-T9-Iz-T10 ring


def _row(mid_steps: int, ring_steps: int, n_steps: int, ring_deg: float = _RING_DEG):
    """(midline offset deg, ring azimuth deg, lateral steps to the ring, ring polar angle)."""
    return (mid_steps * _STEP_DEG, ring_steps * 18.0, n_steps, ring_deg)


# prefix -> (midline offset along nasion->inion in deg (+ = anterior), ring azimuth in deg
# from anterior (10 % of the half circumference = 18 deg), number of lateral steps from the
# midline to the ring, ring polar angle in deg)
_ROWS: dict[str, tuple[float, float, int, float]] = {
    "FP": _row(4, 1, 1),
    "AF": _row(3, 2, 4),
    "F": _row(2, 3, 4),
    "FC": _row(1, 4, 4),
    "FT": _row(1, 4, 4),
    "C": _row(0, 5, 4),
    "T": _row(0, 5, 4),
    "CP": _row(-1, 6, 4),
    "TP": _row(-1, 6, 4),
    "P": _row(-2, 7, 4),
    "PO": _row(-3, 8, 4),
    "O": _row(-4, 9, 1),
    "I": _row(-5, 9, 1, _LOW_DEG),
}

# Old 10-20 names -> 10-10 names.
_ALIASES: dict[str, str] = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

_LABEL_RE = re.compile(r"^(FP|AF|FC|FT|CP|TP|PO|F|C|T|P|O|I)(Z|\d{1,2})$")
_HD_RE = re.compile(r"^E(\d{3})$")


def channel_set(n: int) -> tuple[str, ...]:
    """Labels for ``n`` channels: 8 -> ``SMALL_8``, 64 -> ``EEGMMIDB_64``, 256 -> ``HD_256``."""
    try:
        return _SETS[int(n)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"no channel set with {n!r} channels; allowed values: {ALLOWED_CHANNEL_COUNTS}"
        ) from None


def _spiral_position(index: int, count: int = 256, z_min: float = _HD_Z_MIN) -> np.ndarray:
    """Point ``index`` (0-based) of a ``count``-point golden-angle spiral on the cap z >= z_min."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    z = 1.0 - (index + 0.5) * (1.0 - z_min) / count
    r = math.sqrt(max(0.0, 1.0 - z * z))
    phi = index * golden
    return np.array([r * math.sin(phi), r * math.cos(phi), z])


def _from_layout(px: float, py: float) -> np.ndarray:
    """Azimuthal equidistant layout (deg from Cz; px right, py anterior) -> unit vector."""
    theta = math.hypot(px, py)
    if theta == 0.0:
        return np.array([0.0, 0.0, 1.0])
    t = math.radians(theta)
    return np.array([math.sin(t) * px / theta, math.sin(t) * py / theta, math.cos(t)])


def label_position(label: str) -> np.ndarray:
    """Unit-sphere position ``(3,)`` of one 10-10 label (case-insensitive) or ``E001``-``E256``.

    Raises ValueError for labels that cannot be placed.
    """
    raw = label.strip().rstrip(".")
    key = raw.upper()
    hd = _HD_RE.match(key)
    if hd is not None:
        i = int(hd.group(1))
        if not 1 <= i <= len(HD_256):
            raise ValueError(f"high-density label {label!r} out of range E001..E{len(HD_256)}")
        return _spiral_position(i - 1, len(HD_256))
    if key == "NZ":
        return _from_layout(0.0, _LOW_DEG)
    key = _ALIASES.get(key, key)
    m = _LABEL_RE.match(key)
    if m is None:
        raise ValueError(f"cannot place channel label {label!r}: not a 10-10 or E### label")
    prefix, num = m.groups()
    mid_y, ring_az, n_steps, ring_theta = _ROWS[prefix]
    if num == "Z":
        return _from_layout(0.0, mid_y)
    k = int(num)
    if k == 0:
        raise ValueError(f"cannot place channel label {label!r}: electrode number 0")
    steps = (k + 1) // 2
    if steps > n_steps + 1:
        raise ValueError(f"cannot place channel label {label!r}: too lateral for row {prefix}")
    side = -1.0 if k % 2 else 1.0  # odd = left (x < 0), even = right
    az = math.radians(ring_az)
    ring_x, ring_y = ring_theta * math.sin(az), ring_theta * math.cos(az)
    frac = steps / n_steps
    px = side * frac * ring_x
    py = mid_y + frac * (ring_y - mid_y)
    return _from_layout(px, py)


def positions(labels: Iterable[str]) -> np.ndarray:
    """Unit-sphere positions ``(n, 3)`` float64 for ``labels`` (see module doc for the model)."""
    labels = list(labels)
    if not labels:
        return np.zeros((0, 3))
    return np.stack([label_position(lab) for lab in labels])
