"""Strokes -> sites: normalising (degenerate characters included), resampling, encodings, rasterising."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.strokes import ENCODINGS, normalise, rasterise, render, resample

LINE = [(0, 0), (10, 0), (20, 5)]


def test_normalise_keeps_aspect_and_centres():
    out = normalise([np.array([[10.0, 100.0], [50.0, 120.0]])], 64)[0]
    np.testing.assert_allclose(out, [[-32, -16], [32, 16]])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_rasterise_encodings(encoding):
    coords, features = rasterise([np.array([[-20.0, 0.3], [20.0, 0.3]]), np.array([[5.0, 5.0]])], 64, encoding)
    assert coords.dtype == np.int32 and features.dtype == np.float32
    assert features.shape == (len(coords), len(ENCODINGS[encoding]))
    assert len(np.unique(coords, axis=0)) == len(coords) and coords.min() >= 0 and coords.max() < 64
    assert (coords[:, 0] == 32).sum() == 41 and [37, 37] in coords.tolist()  # 41 sites along the line, one dot
    ink = features[:, ENCODINGS[encoding].index("ink")]
    np.testing.assert_array_equal(ink, 1)
    line, dot = features[coords[:, 0] == 32], features[coords[:, 0] == 37]
    if encoding == "direction":  # moving right along x
        np.testing.assert_allclose(line[:, :2], np.tile([1, 0], (41, 1)), atol=1e-6)
        np.testing.assert_array_equal(dot[:, :2], 0)
    if encoding == "octogram":
        np.testing.assert_allclose(line[:, 1:], np.tile(np.eye(8)[0], (41, 1)), atol=1e-3)
        np.testing.assert_array_equal(dot[:, 1:], 0)


def test_rasterise_connects_and_merges():
    coords, _ = rasterise([np.array([[-30.0, -29.0], [30.0, 29.0]])], 64)
    assert np.abs(np.diff(coords, axis=0)).max() == 1  # sites of a monotone line in order: 8-connected, no gaps
    right, left = np.array([[-20.0, 0.5], [20.0, 0.5]]), np.array([[20.0, 0.5], [-20.0, 0.5]])
    coords, features = rasterise([right, left], 64, "direction")
    assert len(coords) == 41
    np.testing.assert_allclose(features, np.tile([0, 0, 1], (41, 1)), atol=1e-6)  # opposite directions average out
    with pytest.raises(ValueError, match="outside the 64x64 field"):
        rasterise([np.array([[0.0, 0.0], [40.0, 0.0]])], 64)
    kept, _ = rasterise([np.array([[0.0, 0.0], [40.0, 0.0]])], 64, outside="drop")
    assert kept[:, 1].max() == 63
    with pytest.raises(ValueError, match="smaller than the field"):
        render([np.array(LINE, dtype=float)], scale=95, field=95)


@pytest.mark.parametrize(
    "stroke, expected",
    [
        ([[3.0, 0.0], [3.0, 8.0]], [[0, -32], [0, 32]]),  # zero width: scaled by the height
        ([[0.0, 4.0], [16.0, 4.0]], [[-32, 0], [32, 0]]),  # zero height: scaled by the width
        ([[5.0, 9.0]], [[0, 0]]),  # a dot: on the centre
        ([[5.0, 9.0], [5.0, 9.0]], [[0, 0], [0, 0]]),
    ],
)
def test_normalise_degenerate_characters(stroke, expected):
    with np.errstate(all="raise"):  # no division by zero, no overflow
        out = normalise([np.array(stroke)], 64)[0]
    np.testing.assert_array_equal(out, expected)


def test_normalise_extreme_extents():
    tiny = normalise([np.array([[1.0, 1.0], [1.0 + 5e-324, 1.0]]), np.array([[0.0, 0.0], [5e-324, 0.0]])], 64)
    assert all(np.isfinite(s).all() and np.abs(s).max() <= 32 for s in tiny)
    far_dot = normalise([np.array([[1e308, -1e308]])] * 2, 64)
    np.testing.assert_array_equal(far_dot[0], [[0, 0]])
    with pytest.raises(ValueError, match="beyond float range"):
        normalise([np.array([[-1e308, 0.0], [1e308, 0.0]])], 64)


def test_resample_of_one_point_has_no_direction():
    points, directions = resample(np.array([[2.0, 3.0]]))
    np.testing.assert_array_equal(points, [[2, 3]])
    np.testing.assert_array_equal(directions, [[0, 0]])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_a_dot_renders_as_one_centred_site(encoding):
    coords, features = render([np.array([[7.0, 7.0]])], scale=64, field=96, encoding=encoding)
    assert coords.tolist() == [[48, 48]]
    expected = {"direction": [0, 0, 1], "simple": [1], "octogram": [1] + [0] * 8}[encoding]
    np.testing.assert_array_equal(features, [expected])
