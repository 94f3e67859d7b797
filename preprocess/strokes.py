"""Online handwriting (pen strokes) -> sparse sites and features.

A character is a list of strokes, each a float array [m, 2] of pen positions (x, y) in any
unit. :func:`render` turns it into a sample:

1. :func:`normalise` moves the bounding-box centre to the origin and scales the longer side
   to ``scale`` (aspect ratio kept): points land in [-scale/2, scale/2]^2;
2. the caller may transform the strokes here (augmentation: any affine map, jitter...);
3. :func:`rasterise` shifts them to the centre of a ``field`` x ``field`` grid, resamples every
   stroke at (at most) unit arc length so consecutive sites touch, floors to integer sites and
   merges the points that share a site (features averaged, sites in row-major order).

Encodings (after Graham, "Spatially-sparse convolutional neural networks", arXiv:1409.6070):

- ``simple``: ``[1]`` at every inked site;
- ``direction``: ``[dx, dy, 1]``, the unit pen direction of the stroke there, plus a constant;
- ``octogram``: ``[1, a_0 .. a_7]`` with ``a_k = max(0, 1 - angle(d, e_k) / 45deg)``, the pen
  direction ``d`` softly binned onto 8 compass directions ``e_k = (cos k*45deg, sin k*45deg)``
  (as SparseConvNet's ``OnlineHandwritingPicture`` octogram, plus the constant channel).

Directions are in the grid frame: x along columns, y along rows (downwards). A one-point
stroke (a dot) marks one site with direction (0, 0); a character that is only a dot marks
the centre site, and a horizontal or vertical line is scaled by its length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparsenet.shards import merge_sites

_OCTO_ANGLES = np.arange(8) * (np.pi / 4)
ENCODINGS: dict[str, tuple[str, ...]] = {
    "direction": ("dx", "dy", "ink"),
    "simple": ("ink",),
    "octogram": ("ink",) + tuple(f"dir{k * 45:03d}" for k in range(8)),
}


def normalise(strokes: Sequence[np.ndarray], scale: float) -> list[np.ndarray]:
    """Centre the bounding box on the origin and scale its longer side to ``scale``.

    ``strokes``: float arrays [m_i, 2] (x, y). A horizontal or vertical line (zero height or
    width) is scaled by its length and lies on the centre line; a dot (every point the same)
    is not scaled and lands on the centre. Raises ``ValueError`` only for coordinates so far
    apart that their extent is not a finite number.
    """
    points = np.concatenate(strokes)
    lo, hi = points.min(axis=0), points.max(axis=0)
    with np.errstate(over="ignore"):  # checked below: an overflowing extent, factor or centre
        longest = (hi - lo).max()
        factor = scale / longest if longest > 0 else 0.0
        centre = (lo + hi) / 2
    if not np.isfinite(longest):
        raise ValueError(f"the character spans x {lo[0]:g}..{hi[0]:g}, y {lo[1]:g}..{hi[1]:g}, beyond float range")
    factor = factor if np.isfinite(factor) else 0.0  # an extent near the smallest float: a dot for every purpose
    if not np.isfinite(centre).all():  # near the largest float; the usual formula is kept for its exact rounding
        centre = lo + (hi - lo) / 2
    return [(np.asarray(s, dtype=np.float64) - centre) * factor for s in strokes]


def resample(stroke: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points every <= 1 unit of arc length along ``stroke`` [m, 2], ends included.

    Returns (points [k, 2], unit directions [k, 2]); each point takes the direction of the
    segment leaving it (the last one of the segment reaching it). A stroke of length 0 gives
    its first point with direction (0, 0).
    """
    steps = np.hypot(*np.diff(stroke, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    if arc[-1] <= 0:
        return stroke[:1].astype(np.float64), np.zeros((1, 2))
    keep = np.concatenate([[True], steps > 0])  # np.interp needs increasing abscissae
    arc, stroke = arc[keep], stroke[keep]
    t = np.linspace(0.0, arc[-1], int(np.ceil(arc[-1])) + 1)
    points = np.stack([np.interp(t, arc, stroke[:, 0]), np.interp(t, arc, stroke[:, 1])], axis=1)
    delta = np.diff(points, axis=0)
    length = np.hypot(*delta.T)[:, None]  # 0 where the pen came straight back within one step
    delta = np.divide(delta, length, out=np.zeros_like(delta), where=length > 0)
    return points, np.concatenate([delta, delta[-1:]])


def encode(directions: np.ndarray, encoding: str) -> np.ndarray:
    """Per-point features float64 [k, C] from unit directions [k, 2] (rows (0, 0) for dots)."""
    ones = np.ones((len(directions), 1))
    if encoding == "simple":
        return ones
    if encoding == "direction":
        return np.concatenate([directions, ones], axis=1)
    if encoding == "octogram":
        cosines = directions @ np.stack([np.cos(_OCTO_ANGLES), np.sin(_OCTO_ANGLES)])
        soft = 1.0 - np.arccos(np.clip(cosines, -1.0, 1.0)) / (np.pi / 4)
        soft[~directions.any(axis=1)] = 0.0  # a dot has no direction
        return np.concatenate([ones, np.maximum(soft, 0.0)], axis=1)
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def rasterise(
    strokes: Sequence[np.ndarray], field: int, encoding: str = "direction", *, outside: str = "error"
) -> tuple[np.ndarray, np.ndarray]:
    """Draw centred strokes (as from :func:`normalise`) on a ``field`` x ``field`` grid.

    Returns ``coords`` int32 [n, 2] (row y, column x; unique, row-major order) and
    ``features`` float32 [n, C] (``C = len(ENCODINGS[encoding])``, means over the points
    that fall in a site). Points outside the field raise ``ValueError`` (``outside="error"``)
    or are dropped (``outside="drop"``, for augmentation).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    pieces = [resample(np.asarray(s, dtype=np.float64)) for s in strokes]
    points = np.concatenate([p for p, _ in pieces]) + field / 2
    feats = encode(np.concatenate([d for _, d in pieces]), encoding)
    sites = np.floor(points).astype(np.int64)  # (x, y)
    inside = ((sites >= 0) & (sites < field)).all(axis=1)
    if not inside.all():
        if outside != "drop":
            bad = points[~inside][0] - field / 2
            raise ValueError(
                f"stroke point ({bad[0]:.1f}, {bad[1]:.1f}) from the centre falls outside the "
                f"{field}x{field} field; use a larger field or a smaller scale"
            )
        sites, feats = sites[inside], feats[inside]
    return merge_sites(sites[:, 1] * field + sites[:, 0], feats, field)


def render(
    strokes: Sequence[np.ndarray], *, scale: float = 64, field: int = 95, encoding: str = "direction"
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalise` then :func:`rasterise`: raw strokes -> (coords int32 [n, 2], features float32 [n, C])."""
    if not 0 < scale < field:
        raise ValueError(f"scale {scale} must be positive and smaller than the field ({field}) to fit in it")
    return rasterise(normalise(strokes, scale), field, encoding)
