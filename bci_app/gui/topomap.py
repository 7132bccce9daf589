"""Scalp-map maths (no Qt): the head projection, a spherical-spline interpolation matrix and the
pixel mask, so that one repaint of a topographic map is one matrix-vector product.

Projection: azimuthal equidistant from the vertex, as MNE's topomaps: a unit-sphere point at
polar angle ``theta`` from Cz lands at radius ``theta / 90 deg`` (1 on the Fpz-T7-Oz-T8
circle), nose up (+y), right ear right (+x).

Interpolation: spherical splines (Perrin et al. 1989) with MNE's constants for bad-channel
interpolation (stiffness m = 4, 50 Legendre terms, ridge 1e-5). The pixels are lifted back onto
the sphere and interpolated there, so the map reaches the head border without the made-up
border points of a planar interpolator. MNE has no public function for the matrix
(``mne.channels.interpolation._make_interpolation_matrix`` is private), hence the short series
here; ``tests/test_scalp_map.py`` checks it against MNE's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.polynomial.legendre import legval

from bci_app.io.montage import label_position

__all__ = [
    "HEAD_RADIUS",
    "Topomap",
    "build_topomap",
    "head_projection",
    "sphere_points",
    "spline_matrix",
]

HEAD_RADIUS = 1.0  # head outline: the Fpz-T7-Oz-T8 circle, as MNE draws it; the map goes
# beyond it to reach lower electrodes (T9/T10 at 1.32, Iz at 1.13), as MNE's "head" mode does
BORDER = 1.04  # the map reaches at least this far beyond the outermost electrode
STIFFNESS = 4
LEGENDRE_TERMS = 50
RIDGE = 1e-5
MIN_ELECTRODES = 3  # fewer known positions: no map
TABLE_POINTS = 2**14 + 1


def head_projection(xyz: np.ndarray) -> np.ndarray:
    """Unit-sphere positions ``(n, 3)`` -> azimuthal equidistant map ``(n, 2)`` (nose up):
    radius 1 on the Fpz-T7-Oz-T8 circle, 0 at Cz."""
    theta = np.arccos(np.clip(xyz[:, 2], -1.0, 1.0)) / (np.pi / 2)
    phi = np.arctan2(xyz[:, 1], xyz[:, 0])
    return np.stack([theta * np.cos(phi), theta * np.sin(phi)], axis=1)


def sphere_points(xy: np.ndarray) -> np.ndarray:
    """Inverse of :func:`head_projection`: map points ``(n, 2)`` -> unit vectors ``(n, 3)``."""
    theta = np.hypot(xy[:, 0], xy[:, 1]) * (np.pi / 2)
    phi = np.arctan2(xy[:, 1], xy[:, 0])
    sin = np.sin(theta)
    return np.stack([sin * np.cos(phi), sin * np.sin(phi), np.cos(theta)], axis=1)


def _spline_g(cosang: np.ndarray) -> np.ndarray:
    """Spherical-spline kernel g(cos angle), same shape as ``cosang`` (MNE's ``_calc_g``)."""
    n = np.arange(1, LEGENDRE_TERMS + 1, dtype=np.float64)
    factors = (2 * n + 1) / ((n * (n + 1)) ** STIFFNESS * 4 * np.pi)
    return legval(np.clip(cosang, -1.0, 1.0), np.r_[0.0, factors])


@functools.cache
def _g_table() -> np.ndarray:
    """g at ``TABLE_POINTS`` evenly spaced cosines from -1 to 1 (float64)."""
    return _spline_g(np.linspace(-1.0, 1.0, TABLE_POINTS))


def _g_lookup(cosang: np.ndarray) -> np.ndarray:
    """g read linearly from the table: within 4e-12 of the series (g <= 0.015) and several
    times faster for the thousands of pixel-electrode pairs of a map."""
    table = _g_table()
    at = (np.clip(cosang, -1.0, 1.0) + 1.0) * ((TABLE_POINTS - 1) / 2.0)
    index = np.minimum(at.astype(np.intp), TABLE_POINTS - 2)
    at -= index
    low = table[index]
    return low + at * (table[index + 1] - low)


def spline_matrix(source: np.ndarray, target: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Linear operator ``(m, n)`` from values at ``n`` unit vectors ``source (n, 3)`` to the
    spherical-spline interpolant at ``m`` unit vectors ``target (m, 3)``."""
    n = len(source)
    g = _spline_g(source @ source.T)
    g.flat[:: n + 1] += ridge  # positive definite: the bordered system is regular
    system = np.block([[g, np.ones((n, 1))], [np.ones((1, n)), np.zeros((1, 1))]])
    inverse = np.linalg.solve(system, np.eye(n + 1)[:, :n])  # (n + 1, n): weights, constant
    kernel = _g_lookup(target @ source.T)
    return np.c_[kernel, np.ones(len(target))] @ inverse


@dataclass(frozen=True)
class Topomap:
    """A precomputed map for one electrode set.

    ``known``: indices (into the bound labels) of the electrodes on the map, ``known_labels``
    their labels and ``xy (n_known, 2)`` their projected positions; ``missing``: labels without
    a position. The image is ``size x size`` pixels covering ``[-radius, radius]^2`` (projection
    units), row 0 at the bottom (y = -radius); ``mask (size, size)`` marks the pixels inside
    the head and ``matrix (n_inside, n_known)`` float32 interpolates onto them, in mask order.
    """

    known: np.ndarray
    known_labels: tuple[str, ...]
    missing: tuple[str, ...]
    xy: np.ndarray
    radius: float
    size: int
    mask: np.ndarray
    matrix: np.ndarray

    def render(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Image ``(size, size)`` float32 of ``values (n_known,)``; NaN outside the head.
        Writes into ``out`` when given (NaN outside the head there already)."""
        if out is None:
            out = np.full((self.size, self.size), np.nan, dtype=np.float32)
        out[self.mask] = self.matrix @ np.asarray(values, dtype=np.float32)
        return out


def _place(labels: Sequence[str]) -> tuple[list[int], list[np.ndarray], list[str]]:
    known, xyz, missing = [], [], []
    for i, label in enumerate(labels):
        try:
            xyz.append(label_position(label))
            known.append(i)
        except ValueError:
            missing.append(label)
    return known, xyz, missing


@functools.lru_cache(maxsize=8)
def build_topomap(labels: tuple[str, ...], size: int = 64) -> Topomap | None:
    """The map of ``labels`` (any order; unplaceable ones go to ``missing``) on a ``size``-pixel
    grid; None when fewer than ``MIN_ELECTRODES`` have a position. Cached per label set."""
    known, xyz, missing = _place(labels)
    if len(known) < MIN_ELECTRODES:
        return None
    source = np.stack(xyz)
    xy = head_projection(source)
    radius = max(HEAD_RADIUS, BORDER * float(np.hypot(xy[:, 0], xy[:, 1]).max()))
    centres = (np.arange(size) + 0.5) * (2 * radius / size) - radius
    gx, gy = np.meshgrid(centres, centres)  # row index = y, column index = x
    mask = np.hypot(gx, gy) <= radius
    pixels = sphere_points(np.stack([gx[mask], gy[mask]], axis=1))
    matrix = spline_matrix(source, pixels).astype(np.float32)
    return Topomap(
        known=np.asarray(known, dtype=np.intp),
        known_labels=tuple(labels[i] for i in known),
        missing=tuple(missing),
        xy=xy,
        radius=radius,
        size=size,
        mask=mask,
        matrix=matrix,
    )
