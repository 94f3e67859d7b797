"""On-the-fly augmentation of sparse samples, and their placement into a network's field.

A sample is a set of sites ``coords`` int32 [n, 2] (y, x) with ``features`` float32 [n, C].
An augmentation draws an affine map ``p -> A (p - c) + c + t`` (``c`` the centre of the
sample's bounding box) from a numpy ``Generator``; :func:`apply_affine` moves every site
centre through it, rounds to the grid, merges sites that land on the same cell (mean of their
features) and shifts the result back inside the field where it would leave it, dropping
sites only when the sample is larger than the field. Direction features (a ``<stem>y`` /
``<stem>x`` pair of feature names, e.g. ``dy``, ``dx``) are turned by ``A`` and keep their
length, so pen directions stay consistent with the moved strokes. Where two neighbouring
sites land more than one cell apart (``A`` enlarges, or turns a diagonal step), points are
added between them, so strokes stay connected without getting thicker.

* ``affine``: random stretch, shear, rotation and translation for strokes, as in
  SparseConvNet's ``examples/Assamese_handwriting/data.py`` (shear along one axis or
  rotation by up to ±0.2, translation by up to ±8 cells) plus Graham's per-axis stretch.
* ``shift``: integer translations by up to ±2 cells, Graham's MNIST augmentation
  (arXiv:1409.6070, section 4).
* ``none``: nothing; evaluation never augments.

Everything is a function of the ``Generator`` passed in, so a sample's augmentation is
reproducible (see :class:`sparsenet.batch.ShardDataset`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sparsenet.shards import Sample, merge_sites


@dataclass(frozen=True)
class RandomAffine:
    """Stretch each axis by ``1 ± stretch``, then shear (one axis) or rotate by ``± shear_rotation``,
    then translate by up to ``± translate`` cells."""

    stretch: float = 0.15
    shear_rotation: float = 0.2
    translate: float = 8.0

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(A float64 [2, 2], t float64 [2]) acting on (y, x)."""
        a = np.diag(1.0 + rng.uniform(-self.stretch, self.stretch, size=2))
        kind = rng.integers(3)
        alpha = rng.uniform(-self.shear_rotation, self.shear_rotation)
        if kind == 2:
            m = np.array([[math.cos(alpha), -math.sin(alpha)], [math.sin(alpha), math.cos(alpha)]])
        else:
            m = np.eye(2)
            m[kind, 1 - kind] = alpha
        return m @ a, rng.uniform(-self.translate, self.translate, size=2)


@dataclass(frozen=True)
class RandomShift:
    """Translate by a whole number of cells in ``[-max_shift, max_shift]`` on each axis."""

    max_shift: int = 2

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(identity [2, 2], integer t [2])."""
        return np.eye(2), rng.integers(-self.max_shift, self.max_shift + 1, size=2).astype(np.float64)


AUGMENTATIONS: dict[str, RandomAffine | RandomShift | None] = {
    "none": None,
    "affine": RandomAffine(),
    "shift": RandomShift(),
}


def direction_pairs(feature_names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Column pairs (y component, x component) of the direction features among ``feature_names``.

    A pair is two names that differ only in a final ``y`` / ``x``: ``("ink", "dy", "dx")`` -> ``((1, 2),)``.
    """
    index = {name: i for i, name in enumerate(feature_names)}
    return tuple(
        (i, index[name[:-1] + "x"])
        for i, name in enumerate(feature_names)
        if len(name) > 1 and name.endswith("y") and name[:-1] + "x" in index
    )


_FORWARD = ((0, 1), (1, 0), (1, 1), (1, -1))  # each neighbour pair of sites once


def _neighbour_pairs(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of 8-connected neighbouring sites; a diagonal pair only where no
    site at a corner between them already connects them (a thin stroke's own steps)."""
    low = coords.min(0)
    local = coords - low
    height, width = local.max(0) + 1
    index = np.full((height + 1, width + 2), -1, dtype=np.int64)  # padded: y + 1, x - 1 .. x + 1 stay inside
    index[local[:, 0], local[:, 1] + 1] = np.arange(len(coords))
    y, x = local[:, 0], local[:, 1] + 1
    first, second = [], []
    for dy, dx in _FORWARD:
        j = index[y + dy, x + dx]
        keep = j >= 0
        if dy and dx:
            keep &= (index[y, x + dx] < 0) & (index[y + dy, x] < 0)
        first.append(np.flatnonzero(keep))
        second.append(j[keep])
    return np.concatenate(first), np.concatenate(second)


def _fill_gaps(coords: np.ndarray, moved: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add points between neighbouring sites whose moved centres (float [n, 2]) fall more than
    one cell apart, so that enlarged or turned strokes stay connected; features float [n, C]
    are interpolated along. Returns (points [m, 2], features [m, C]), m >= n."""
    i, j = _neighbour_pairs(coords)
    cells = np.floor(moved)
    steps = np.abs(cells[i] - cells[j]).max(1).astype(np.int64)
    gap = steps > 1
    if not gap.any():
        return moved, features
    i, j, steps = i[gap], j[gap], steps[gap]
    edge = np.repeat(np.arange(len(steps)), steps - 1)
    k = np.arange(len(edge)) - np.repeat(np.cumsum(steps - 1) - (steps - 1), steps - 1) + 1  # 1 .. steps-1 per edge
    f = (k / steps[edge])[:, None]
    points = moved[i[edge]] * (1 - f) + moved[j[edge]] * f
    between = features[i[edge]] * (1 - f) + features[j[edge]] * f
    return np.concatenate([moved, points]), np.concatenate([features, between])


def apply_affine(
    sample: Sample,
    a: np.ndarray,
    t: np.ndarray,
    field: tuple[int, int],
    directions: tuple[tuple[int, int], ...] = (),
) -> Sample:
    """Move ``sample`` through ``p -> a (p - c) + c + t`` onto ``field`` (H, W); see the module doc.

    ``a`` float [2, 2] and ``t`` float [2] act on (y, x). Returns a sample whose coords are
    unique and inside ``field``; raises ``ValueError`` if no site would remain.
    """
    centre = (sample.coords.min(0) + sample.coords.max(0) + 1) / 2.0
    moved = (sample.coords + 0.5 - centre) @ a.T + centre + t  # site centres
    moved, features = _fill_gaps(sample.coords, moved, sample.features.astype(np.float64))
    cells = np.floor(moved).astype(np.int64)
    size = np.array(field, dtype=np.int64)
    low, high = cells.min(0), cells.max(0)
    cells += np.where(high - low < size, np.maximum(0, -low) - np.maximum(0, high - size + 1), 0)  # back inside
    inside = ((cells >= 0) & (cells < size)).all(1)
    if not inside.any():
        raise ValueError(f"sample {sample.sample_id!r}: no site left inside the field {field[0]}x{field[1]}")
    cells, features = cells[inside], features[inside]
    if directions and not np.allclose(a, np.eye(2)):
        features = features.copy()
        for iy, ix in directions:
            v = features[:, [iy, ix]]
            turned = v @ a.T
            norm = np.linalg.norm(turned, axis=1, keepdims=True)
            length = np.linalg.norm(v, axis=1, keepdims=True)
            features[:, [iy, ix]] = turned * np.divide(length, norm, out=np.zeros_like(norm), where=norm > 0)
    coords, merged = merge_sites(cells[:, 0] * field[1] + cells[:, 1], features, field[1])
    return replace(sample, coords=coords, features=merged)


@dataclass(frozen=True)
class FieldTransform:
    """Place samples of a shard field into a network's ``field`` and optionally augment them.

    ``offset`` (y, x) centres the shard field in the network field; ``augmentation`` is one of
    :data:`AUGMENTATIONS` (None at test time). Picklable, so DataLoader workers can use it.
    Call as ``transform(sample, rng)`` (the ``ShardDataset`` transform protocol).
    """

    field: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    augmentation: RandomAffine | RandomShift | None = None
    directions: tuple[tuple[int, int], ...] = ()

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        placed = replace(sample, coords=sample.coords + np.array(self.offset, dtype=np.int32)) if any(self.offset) else sample
        if self.augmentation is None:
            return placed
        if rng is None:
            raise ValueError("augmentation needs a numpy Generator")
        a, t = self.augmentation.draw(rng)
        return apply_affine(placed, a, t, self.field, self.directions)


def field_transform(
    shard_shape: tuple[int, int],
    field: tuple[int, int],
    feature_names: tuple[str, ...],
    augment: str = "none",
) -> FieldTransform:
    """The transform that moves samples of a ``shard_shape`` field into ``field`` and augments them.

    Raises ``ValueError`` naming both sizes when the shard field does not fit the network field.
    """
    if shard_shape[0] > field[0] or shard_shape[1] > field[1]:
        raise ValueError(
            f"samples are on a {shard_shape[0]}x{shard_shape[1]} field but the network takes "
            f"{field[0]}x{field[1]}; preprocess with a field of at most {field[0]}x{field[1]} or pick a larger network"
        )
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
    offset = ((field[0] - shard_shape[0]) // 2, (field[1] - shard_shape[1]) // 2)
    return FieldTransform(tuple(field), offset, AUGMENTATIONS[augment], direction_pairs(tuple(feature_names)))
