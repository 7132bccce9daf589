"""Min/max decimation to screen pixels, and traces drawn as an image.

A trace drawn into ``w`` pixel columns needs no more than two values per column: the lowest and
the highest point of the line inside it, which draw the same vertical stroke as all of its
samples would. :func:`column_extremes` reduces any number of samples to that (every peak kept);
:func:`draw_spans` paints those strokes of all channels into one RGBA image.

The image is what the signals panel shows: Qt draws an image in about a millisecond, while
stroking 64 x 800 line segments takes 6-8 ms with the Python GIL held (the pipeline threads
would wait for it), and this numpy work lets them in between its steps.
"""

from __future__ import annotations

import numpy as np

SPAN_PIXELS_PER_CELL = 4  # above this many painted pixels per image pixel, paint by masks


def column_extremes(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max of the polyline through ``(x (n,), y (n, C))`` in each pixel column.

    ``x`` is in pixels (column ``j`` covers ``[j, j + 1)``), increasing; ``y`` in any unit.
    Returns ``(low, high)``, each ``(width, C)``: the extremes of the samples in the column and
    of the line where it crosses the column's edges (so lines connect across columns without
    samples); NaN where the trace does not reach the column.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    n, channels = y.shape
    if x.shape != (n,):
        raise ValueError(f"x must have shape ({n},) to match y {y.shape}, got {x.shape}")
    low = np.full((width, channels), np.nan, dtype=np.float32)
    high = np.full((width, channels), np.nan, dtype=np.float32)
    if n < 2 or width < 1:
        return low, high
    if np.any(np.diff(x) < 0):  # a backward timestamp: keep the line drawable
        x = np.maximum.accumulate(x)
    # The line's value at every column edge, interpolated between the two samples around it.
    edges = np.arange(width + 1, dtype=np.float64)
    position = np.interp(edges, x, np.arange(n, dtype=np.float64), left=np.nan, right=np.nan)
    covered = ~np.isnan(position)
    position = np.where(covered, position, 0.0)
    first = np.minimum(position.astype(np.intp), n - 2)
    weight = (position - first)[:, None].astype(np.float32)
    at_edges = y[first] * (1 - weight) + y[first + 1] * weight  # (width + 1, C)
    at_edges[~covered] = np.nan
    np.fmin(at_edges[:-1], at_edges[1:], out=low)
    np.fmax(at_edges[:-1], at_edges[1:], out=high)
    # The samples themselves, grouped by column.
    column = np.floor(x).astype(np.intp)
    inside = (column >= 0) & (column < width)
    column, values = column[inside], y[inside]
    if column.size:
        starts = np.flatnonzero(np.r_[True, column[1:] != column[:-1]])
        columns = column[starts]
        low[columns] = np.fmin(low[columns], np.minimum.reduceat(values, starts, axis=0))
        high[columns] = np.fmax(high[columns], np.maximum.reduceat(values, starts, axis=0))
    return low, high


def pack_argb(colors: list[tuple[int, int, int]]) -> np.ndarray:
    """Opaque RGB colours -> uint32 ``0xAARRGGBB`` (QImage.Format_ARGB32 pixels)."""
    return np.array([0xFF << 24 | r << 16 | g << 8 | b for r, g, b in colors], dtype=np.uint32)


def draw_spans(low: np.ndarray, high: np.ndarray, height: int, colors: np.ndarray) -> np.ndarray:
    """Paint column ``j`` from row ``floor(low[j, c])`` to ``floor(high[j, c])`` for every
    channel ``c`` in ``colors[c % len(colors)]`` (packed by :func:`pack_argb`).

    ``low``/``high`` are ``(width, C)`` in pixel rows (row 0 first in memory); NaN columns are
    skipped, rows outside ``[0, height)`` clipped. Returns ``(height, width)`` uint32, 0 where
    nothing is drawn; later channels cover earlier ones.
    """
    width, channels = low.shape
    image = np.zeros(height * width, dtype=np.uint32)
    drawn = ~(np.isnan(low) | np.isnan(high))
    top = np.clip(np.floor(np.where(drawn, low, 0)), 0, height).astype(np.intp)
    bottom = np.clip(np.floor(np.where(drawn, high, -1)) + 1, 0, height).astype(np.intp)
    drawn &= bottom > top
    column = np.broadcast_to(np.arange(width)[:, None], low.shape)
    color = np.broadcast_to(colors[np.arange(channels) % len(colors)][None, :], low.shape)
    top, bottom, column, color = top[drawn], bottom[drawn], column[drawn], color[drawn]
    length = bottom - top
    total = int(length.sum())
    if total <= SPAN_PIXELS_PER_CELL * height * width:
        # One flat index per painted pixel, (top + k) * width + column for k < length: the
        # k-th pixel of a span is number start + k of all, so index = base + number * width.
        base = (top - (np.cumsum(length) - length)) * width + column
        index = np.repeat(base, length)
        index += np.arange(0, total * width, width)
        image[index] = np.repeat(color, length)
    else:  # huge strokes (scale far too small): bounded cost, one mask per colour
        cells = (height + 1) * width
        for value in np.unique(color):
            pick = color == value
            steps = np.bincount(top[pick] * width + column[pick], minlength=cells)
            steps -= np.bincount(bottom[pick] * width + column[pick], minlength=cells)
            covered = np.cumsum(steps.reshape(height + 1, width), axis=0)[:height] > 0
            image[covered.ravel()] = value
    return image.reshape(height, width)
