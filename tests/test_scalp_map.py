"""The interpolated scalp map of the electrode-weights panel: the maths (bci_app.gui.topomap)
and the widget on real offscreen Qt items, fed real Prediction objects."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from PyQt5 import QtCore

from bci_app.gui.common import Frame
from bci_app.gui.topomap import (
    HEAD_RADIUS,
    build_topomap,
    head_projection,
    sphere_points,
    spline_matrix,
)
from bci_app.gui.weights import HEAD_PERIOD_S, LATEST, MEAN, WeightsPanel
from bci_app.infer.worker import Prediction
from bci_app.io.montage import EEGMMIDB_64, HD_256, positions


def prediction(seq: int, weights: np.ndarray) -> Prediction:
    return Prediction(
        seq=seq,
        timestamp=float(seq),
        probabilities=np.array([0.5, 0.5]),
        class_index=0,
        class_name="a",
        weights=np.asarray(weights, dtype=np.float32),
        device="cpu",
    )


def open_panel(qtbot, labels: tuple[str, ...]) -> WeightsPanel:
    panel = WeightsPanel()
    qtbot.addWidget(panel)
    panel.resize(800, 300)
    panel.show()
    qtbot.waitExposed(panel)
    panel.bind(labels, "se", "attention")
    return panel


def test_projection_round_trips_and_matches_mne_spline() -> None:
    xyz = positions(EEGMMIDB_64)
    np.testing.assert_allclose(sphere_points(head_projection(xyz)), xyz, atol=1e-12)
    cz = head_projection(positions(["Cz"]))[0]
    assert np.hypot(*cz) < 0.05
    interpolation = pytest.importorskip("mne.channels.interpolation")
    make = getattr(interpolation, "_make_interpolation_matrix", None)
    if make is None:
        pytest.skip("MNE's private spline matrix is gone; nothing to compare with")
    targets = sphere_points(np.array([[0.0, 0.0], [0.5, -0.3], [-1.2, 0.4]]))
    np.testing.assert_allclose(spline_matrix(xyz, targets), make(xyz, targets), atol=1e-6)


@pytest.mark.parametrize("labels", [EEGMMIDB_64, HD_256])
def test_a_left_to_right_field_is_reproduced(labels: tuple[str, ...]) -> None:
    """Values = the electrodes' x coordinate (towards the right ear): exact at the electrodes,
    increasing left to right across the map, NaN outside the head disc."""
    topo = build_topomap(labels)
    assert topo is not None and topo.missing == () and len(topo.known) == len(labels)
    xyz = positions(labels)
    values = xyz[:, 0]
    at_electrodes = spline_matrix(xyz, xyz) @ values
    np.testing.assert_allclose(at_electrodes, values, atol=1e-3)

    image = topo.render(values)
    assert image.shape == (64, 64) and image.dtype == np.float32
    size, radius = topo.size, topo.radius
    centres = (np.arange(size) + 0.5) * (2 * radius / size) - radius
    gx, gy = np.meshgrid(centres, centres)
    inside = np.hypot(gx, gy) <= radius
    assert np.isnan(image[~inside]).all() and np.isfinite(image[inside]).all()
    assert np.isnan(image[0, 0]) and np.isnan(image[-1, -1])  # the corners
    # Where the electrodes are, the map is the sphere's x coordinate there.
    covered = inside & (np.hypot(gx, gy) <= 1.0)
    truth = sphere_points(np.stack([gx[covered], gy[covered]], axis=1))[:, 0]
    np.testing.assert_allclose(image[covered], truth, atol=0.02)
    # Left to right along rows well inside the head circle (beyond it the sphere's x turns
    # back towards 0); the right half positive and the left half negative everywhere.
    head = np.hypot(gx, gy) < 0.9 * HEAD_RADIUS
    for row in (size // 4, size // 2, 3 * size // 4):
        line = image[row][head[row]]
        assert len(line) > size // 3 and np.all(np.diff(line) > 0)
    side = np.abs(gx) > 2 * radius / size
    assert np.array_equal(np.sign(image[inside & side]), np.sign(gx[inside & side]))


def test_unknown_labels_are_listed_not_placed(qtbot) -> None:
    labels = ("C3", "X1", "Cz", "C4", "Fz", "Pz", "X2")
    topo = build_topomap(labels)
    assert topo.missing == ("X1", "X2")
    assert topo.known_labels == ("C3", "Cz", "C4", "Fz", "Pz")
    assert topo.matrix.shape == (int(topo.mask.sum()), 5)
    assert build_topomap(("X1", "X2", "Cz")) is None  # too few to map

    panel = open_panel(qtbot, labels)
    assert panel.scalp.isVisible() and panel.head.isEnabled()
    assert panel.scalp.missing.isVisible()
    assert panel.scalp.missing.text() == "no position: X1, X2"
    assert len(panel.scatter.data) == 5
    np.testing.assert_allclose(
        np.c_[panel.scatter.data["x"], panel.scatter.data["y"]],
        head_projection(positions(["C3", "Cz", "C4", "Fz", "Pz"])),
    )
    weights = np.arange(1.0, 8.0)
    panel.update_frame(Frame(now=1.0, prediction=prediction(1, weights)))
    assert panel.bar_labels() == list(labels)  # the bars still show every electrode
    np.testing.assert_allclose(panel.scalp.values, weights[[0, 2, 3, 4, 5]])

    panel.bind(("X1", "X2", "Cz"))  # no map, the head box off, nothing placed
    assert not panel.head.isEnabled() and not panel.scalp.isVisible()
    assert len(panel.scatter.data) == 0


def test_the_map_follows_new_predictions_and_the_mean_mode(qtbot) -> None:
    panel = open_panel(qtbot, EEGMMIDB_64)
    image = panel.scalp.image
    assert panel.scalp.isVisible() and not panel.scalp.missing.isVisible()
    rng = np.random.default_rng(3)
    first = prediction(1, rng.random(64))
    panel.update_frame(Frame(now=10.0, prediction=first, predictions=[first]))
    drawn = image.image.copy()
    expected = panel.scalp.topomap.render(first.weights.astype(np.float64))
    np.testing.assert_allclose(drawn, expected, rtol=1e-5, equal_nan=True)
    assert image.levels is not None
    np.testing.assert_allclose(image.levels, [first.weights.min(), first.weights.max()], 1e-6)
    rect = image.mapRectToParent(image.boundingRect())
    radius = panel.scalp.topomap.radius
    assert rect.left() == pytest.approx(-radius) and rect.width() == pytest.approx(2 * radius)
    assert radius > HEAD_RADIUS  # T9/T10 lie beyond the head circle: the map reaches them

    image.render()  # what the view paints: LUT colours inside, transparent outside
    painted = pg.functions.ndarray_from_qimage(image.qimage).copy()
    assert painted.shape[:2] == (64, 64)
    inside = panel.scalp.topomap.mask
    assert (painted[~inside][:, 3] == 0).all() and (painted[inside][:, 3] == 255).all()

    second = prediction(2, rng.random(64))
    panel.update_frame(Frame(now=10.1, prediction=second, predictions=[first, second]))
    assert panel.shown_seq == 2  # the bars follow every prediction,
    np.testing.assert_allclose(image.image, drawn, equal_nan=True)  # the map every HEAD_PERIOD_S
    panel.update_frame(Frame(now=10.0 + HEAD_PERIOD_S, prediction=second))  # nothing new but due
    assert not np.allclose(image.image, drawn, equal_nan=True)
    image.render()
    assert (pg.functions.ndarray_from_qimage(image.qimage) != painted).any()
    np.testing.assert_allclose(panel.scalp.values, second.weights, rtol=1e-6)

    panel.mode.setCurrentText(MEAN)
    panel.update_frame(Frame(now=11.0, prediction=second, predictions=[first, second]))
    mean = (first.weights.astype(np.float64) + second.weights) / 2
    np.testing.assert_allclose(panel.scalp.values, mean, rtol=1e-6)
    np.testing.assert_allclose(
        image.image, panel.scalp.topomap.render(mean), rtol=1e-5, equal_nan=True
    )
    panel.mode.setCurrentText(LATEST)
    panel.head.setChecked(False)  # hidden: not drawn; shown again: drawn at the next frame
    third = prediction(3, rng.random(64))
    panel.update_frame(Frame(now=12.0, prediction=third, predictions=[second, third]))
    np.testing.assert_allclose(panel.scalp.values, mean, rtol=1e-6)  # as it was
    panel.head.setChecked(True)
    panel.update_frame(Frame(now=12.0, prediction=third, predictions=[second, third]))
    np.testing.assert_allclose(panel.scalp.values, third.weights, rtol=1e-6)


def test_hovering_an_electrode_shows_its_label_and_value(qtbot) -> None:
    panel = open_panel(qtbot, EEGMMIDB_64)
    weights = np.linspace(0.0, 1.0, 64)
    panel.update_frame(Frame(now=1.0, prediction=prediction(5, weights)))
    qtbot.wait(50)  # laid out and painted
    plot = panel.scalp.plot
    index = EEGMMIDB_64.index("C3")
    x, y = head_projection(positions(["C3"]))[0]
    scene = plot.getViewBox().mapViewToScene(QtCore.QPointF(x, y))
    where = plot.mapFromScene(scene)
    qtbot.mouseMove(plot.viewport(), where)
    qtbot.waitUntil(lambda: plot.getViewBox().toolTip() != "", timeout=2_000)
    assert plot.getViewBox().toolTip() == f"C3: {weights[index]:.3g}"
