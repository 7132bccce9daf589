"""Channel sets and scalp positions: MNE's standard 10-05 montage for every label it has, a
synthetic high-density cap for ``E001`` .. ``E256``.

Coordinates are unit vectors ``(x, y, z)`` from the head centre (the centre of the sphere
fitted to the montage): x towards the right ear, y towards the nose, z towards the vertex.
Labels are matched after :func:`~bci_app.io.labels.canonical_label` (``'Fc5.'`` is ``FC5``);
the old 10-20 names T3/T4/T5/T6 are T7/T8/P7/P8.

The 256-channel set is not a real cap: points on a Fibonacci (golden-angle) spiral that covers
the spherical cap ``z >= -0.3`` with equal area per electrode, ``E001`` at the vertex. It serves
the simulator and benchmarks at high channel counts.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

import numpy as np

from bci_app.io.labels import canonical_label, label_key

__all__ = [
    "ALLOWED_CHANNEL_COUNTS",
    "EEGMMIDB_64",
    "HD_256",
    "OCCIPITAL_8",
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

#: An 8-channel occipital montage for SSVEP (the electrodes of the shared SSVEP sessions).
OCCIPITAL_8: tuple[str, ...] = ("PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2")

#: Synthetic 256-channel high-density set, positions from a Fibonacci spiral (see module doc).
HD_256: tuple[str, ...] = tuple(f"E{i:03d}" for i in range(1, 257))

ALLOWED_CHANNEL_COUNTS: tuple[int, ...] = (8, 64, 256)

_SETS: dict[int, tuple[str, ...]] = {8: SMALL_8, 64: EEGMMIDB_64, 256: HD_256}
_HD_Z_MIN = -0.3  # lowest point of the 256-channel spiral cap (about 107 deg from the vertex)
_HD_RE = re.compile(r"^E(\d{3})$", re.IGNORECASE)
_ALIASES: dict[str, str] = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
# MNE renamed standard_1005 (deprecated in 1.13) to colin27_1005: the same template head.
_MONTAGE_NAMES = ("colin27_1005", "standard_1005")


def channel_set(n: int, paradigm: str = "mi") -> tuple[str, ...]:
    """Labels for ``n`` channels: 8 -> ``SMALL_8`` (``OCCIPITAL_8`` for an SSVEP paradigm,
    whose responses are occipital), 64 -> ``EEGMMIDB_64``, 256 -> ``HD_256``."""
    if paradigm == "ssvep" and n == 8:
        return OCCIPITAL_8
    try:
        return _SETS[int(n)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"no channel set with {n!r} channels; allowed values: {ALLOWED_CHANNEL_COUNTS}"
        ) from None


@functools.cache
def _standard_positions() -> dict[str, np.ndarray]:
    """MNE's 10-05 template positions as unit vectors from the fitted head centre, by key."""
    import mne

    builtin = set(mne.channels.get_builtin_montages())
    name = next(n for n in _MONTAGE_NAMES if n in builtin)
    ch_pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    labels = list(ch_pos)
    points = np.array([ch_pos[label] for label in labels], dtype=np.float64)
    # Least-squares sphere: |p|^2 = 2 p.c + (r^2 - |c|^2), linear in (c, r^2 - |c|^2).
    design = np.c_[2.0 * points, np.ones(len(points))]
    solution = np.linalg.lstsq(design, (points**2).sum(axis=1), rcond=None)[0]
    units = points - solution[:3]
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    return {label_key(label): units[i] for i, label in enumerate(labels)}


def _spiral_position(index: int, count: int = 256, z_min: float = _HD_Z_MIN) -> np.ndarray:
    """Point ``index`` (0-based) of a ``count``-point golden-angle spiral on the cap z >= z_min."""
    golden = math.pi * (3.0 - math.sqrt(5.0))
    z = 1.0 - (index + 0.5) * (1.0 - z_min) / count
    r = math.sqrt(max(0.0, 1.0 - z * z))
    phi = index * golden
    return np.array([r * math.sin(phi), r * math.cos(phi), z])


def label_position(label: str) -> np.ndarray:
    """Unit-sphere position ``(3,)`` of one 10-05 label (case-insensitive) or ``E001``-``E256``.

    Raises ValueError for labels that cannot be placed.
    """
    text = canonical_label(label)
    hd = _HD_RE.match(text)
    if hd is not None:
        i = int(hd.group(1))
        if not 1 <= i <= len(HD_256):
            raise ValueError(f"high-density label {label!r} out of range E001..E{len(HD_256)}")
        return _spiral_position(i - 1, len(HD_256))
    key = label_key(text)
    key = _ALIASES.get(key, key)
    position = _standard_positions().get(key)
    if position is None:
        raise ValueError(
            f"cannot place channel label {label!r}: not in MNE's 10-05 montage and not E###"
        )
    return position.copy()


def positions(labels: Iterable[str]) -> np.ndarray:
    """Unit-sphere positions ``(n, 3)`` float64 for ``labels`` (see the module docstring)."""
    labels = list(labels)
    if not labels:
        return np.zeros((0, 3))
    return np.stack([label_position(lab) for lab in labels])
