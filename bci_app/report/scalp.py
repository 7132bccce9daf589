"""Where the electrodes sit, for the report's figures: an MNE ``Info`` with the channels that
:mod:`bci_app.io.montage` can place (10-05 labels, ``E001``-``E256``), and the electrodes nearest
to C3, Cz and C4 by scalp position.

Positions are the montage's unit vectors scaled to :data:`HEAD_RADIUS_M`; topomaps use a head
sphere of that radius centred on the origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bci_app.io import label_key
from bci_app.io.montage import label_position

__all__ = ["HEAD_RADIUS_M", "MOTOR_SITES", "Scalp", "nearest_sites", "scalp_layout"]

#: Radius of the template head (m); the sphere of every topomap.
HEAD_RADIUS_M = 0.095
#: The sensorimotor sites of the time-frequency maps (left hand, midline/feet, right hand).
MOTOR_SITES: tuple[str, ...] = ("C3", "Cz", "C4")


@dataclass(frozen=True, eq=False)
class Scalp:
    """Channels that can be drawn on the scalp.

    ``columns (n,)``: their indices among the labels given to :func:`scalp_layout`;
    ``labels``: their labels; ``info``: an MNE Info (EEG, positions set) for ``plot_topomap``;
    ``unplaced``: labels without a known position (left out of the maps).
    """

    columns: np.ndarray
    labels: tuple[str, ...]
    info: object  # mne.Info (typed loosely: mne is imported only when a report is made)
    unplaced: tuple[str, ...]

    @property
    def sphere(self) -> tuple[float, float, float, float]:
        """The head sphere ``(x, y, z, radius)`` in metres for ``plot_topomap``."""
        return (0.0, 0.0, 0.0, HEAD_RADIUS_M)


def _position(label: str) -> np.ndarray | None:
    try:
        return label_position(label)
    except ValueError:
        return None


def scalp_layout(labels: Sequence[str], rate_hz: float) -> Scalp:
    """The placeable channels among ``labels`` as an MNE Info with a head-frame montage."""
    import mne

    columns, placed, points, unplaced = [], [], [], []
    seen: set[str] = set()
    for i, label in enumerate(labels):
        position = _position(label)
        if position is None or label_key(label) in seen:
            unplaced.append(label)
            continue
        seen.add(label_key(label))
        columns.append(i)
        placed.append(label)
        points.append(position * HEAD_RADIUS_M)
    info = mne.create_info(placed, float(rate_hz), "eeg") if placed else None
    if info is not None:
        montage = mne.channels.make_dig_montage(
            ch_pos=dict(zip(placed, points, strict=True)), coord_frame="head"
        )
        info.set_montage(montage, verbose=False)
    return Scalp(np.asarray(columns, dtype=np.intp), tuple(placed), info, tuple(unplaced))


def nearest_sites(
    labels: Sequence[str], sites: Sequence[str] = MOTOR_SITES
) -> list[tuple[str, int, str]]:
    """For each of ``sites``: ``(site, column, label)`` of the channel with that label, else of
    the placeable channel nearest to the site on the scalp (smallest angle). Sites go without
    a channel when none of ``labels`` can be placed; a channel serves one site at most."""
    keys = {label_key(label): i for i, label in reversed(list(enumerate(labels)))}
    placed = [(i, p) for i, label in enumerate(labels) if (p := _position(label)) is not None]
    found: list[tuple[str, int, str]] = []
    used: set[int] = set()
    for site in sites:
        column = keys.get(label_key(site))
        if column is None or column in used:
            target = label_position(site)
            free = [(i, p) for i, p in placed if i not in used]
            if not free:
                continue
            column = max(free, key=lambda item: float(item[1] @ target))[0]
        used.add(column)
        found.append((site, column, labels[column]))
    return found
