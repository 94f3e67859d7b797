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
* ``affine-wide``: the same kinds with the ranges of Graham's own Assamese code (2013 DeepCNet
  release, ``assamese.cu``): stretch ±0.3 per axis, shear or rotation by up to ±0.3,
  translation by up to ±12 cells.
* ``shift``: integer translations by up to ±2 cells, Graham's MNIST augmentation
  (arXiv:1409.6070, section 4).
* ``none``: nothing. Training's test pass never augments; ``sparsenet eval --repeats R`` does
  (test-time augmentation).

Everything is a function of the ``Generator`` passed in, so a sample's augmentation is
reproducible (see :class:`sparsenet.batch.ShardDataset`).

:func:`apply_affine_batch` (and ``FieldTransform.batch``) moves the sites of a whole batch
together, a few dozen numpy calls in all instead of a few hundred per sample; every result
is exactly the sample's own, whatever else is in the batch. :func:`apply_affine` is the
batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sparsenet.errors import ConfigError
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
    "affine-wide": RandomAffine(stretch=0.3, shear_rotation=0.3, translate=12.0),
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

# The sites of a batch of B samples are columns: coords int [2, n] (rows y, x), features float
# [C, n], grouped by sample, ``sizes`` int [B] columns each. Long rows rather than [n, 2] pairs,
# because numpy gathers (np.take), compares and reduces long rows many times faster.


def _starts(sizes: np.ndarray) -> np.ndarray:
    """First column of each sample: int [B]."""
    return np.cumsum(sizes) - sizes


def _owners(sizes: np.ndarray) -> np.ndarray:
    """The sample of each column: int [n]."""
    return np.repeat(np.arange(len(sizes)), sizes)


def _per_site(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Per-sample values [..., B] repeated for each sample's columns: [..., n]."""
    return np.repeat(values, sizes, axis=-1)


def _bounds(values: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (minimum, maximum) of columns ``values`` [2, n]: two [2, B]."""
    starts = _starts(sizes)
    return np.minimum.reduceat(values, starts, axis=1), np.maximum.reduceat(values, starts, axis=1)


def _times(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Column-wise ``a[:, :, s] @ v[:, s]`` for a float [2, 2, n] and v float [2, n]: float [2, n].

    Written out, so a site's result does not depend on which other sites are computed with it.
    """
    return a[:, 0] * v[0] + a[:, 1] * v[1]


def _move(coords: np.ndarray, sizes: np.ndarray, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Site centres moved through ``p -> a (p - c) + c + t``, ``c`` the centre of each sample's bounding box.

    coords int [2, n], a float [B, 2, 2], t float [B, 2]. Returns float [2, n].
    """
    low, high = _bounds(coords, sizes)
    centre = _per_site((low + high + 1) / 2.0, sizes)
    return _times(_per_site(a.transpose(1, 2, 0), sizes), coords + 0.5 - centre) + centre + _per_site(t.T, sizes)


def _neighbour_pairs(coords: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column pairs (i, j) of 8-connected neighbouring sites of the same sample; a diagonal pair
    only where no site at a corner between them already connects them (a thin stroke's own steps).

    coords int [2, n]. Returns (i int [p], j int [p]), ordered by direction (:data:`_FORWARD`), then by i.
    """
    local = coords - _per_site(_bounds(coords, sizes)[0], sizes)
    height, width = local.max(1) + 1
    # a padded box per sample, boxes stacked: y + 1 and x - 1 .. x + 1 stay inside a sample's box
    stride = width + 2
    key = (_owners(sizes) * (height + 1) + local[0]) * stride + local[1] + 1
    index = np.full(len(sizes) * (height + 1) * stride, -1, dtype=np.int32)
    index[key] = np.arange(key.size)
    near = {(dy, dx): index[key + (dy * stride + dx)] for dy, dx in (*_FORWARD, (0, -1))}  # -1: no site there
    first, second = [], []
    for dy, dx in _FORWARD:
        j = near[dy, dx]
        keep = j >= 0
        if dy and dx:
            keep &= (near[0, dx] < 0) & (near[dy, 0] < 0)
        first.append(np.flatnonzero(keep))
        second.append(j[keep])
    return np.concatenate(first), np.concatenate(second)


def _fill_gaps(
    coords: np.ndarray, sizes: np.ndarray, moved: np.ndarray, features: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add points between neighbouring sites whose moved centres (float [2, n]) fall more than
    one cell apart, so that enlarged or turned strokes stay connected; features float [C, n]
    are interpolated along.

    Returns (points float [2, m], features float [C, m], sizes int [B]), m >= n, grouped by
    sample: each sample's sites in their order, then the points added between them.
    """
    i, j = _neighbour_pairs(coords, sizes)
    cells = np.floor(moved)
    apart = np.abs(np.take(cells, i, axis=1) - np.take(cells, j, axis=1))
    steps = np.maximum(apart[0], apart[1]).astype(np.int64)
    gap = steps > 1
    if not gap.any():
        return moved, features, sizes
    i, j, steps = i[gap], j[gap], steps[gap]
    edge = np.repeat(np.arange(len(steps)), steps - 1)
    k = np.arange(len(edge)) - np.repeat(np.cumsum(steps - 1) - (steps - 1), steps - 1) + 1  # 1 .. steps-1 per edge
    f = k / steps[edge]
    i, j = i[edge], j[edge]
    points = np.take(moved, i, axis=1) * (1 - f) + np.take(moved, j, axis=1) * f
    between = np.take(features, i, axis=1) * (1 - f) + np.take(features, j, axis=1) * f
    owners = _owners(sizes)
    owners = np.concatenate([owners, owners[i]])
    order = np.argsort(owners, kind="stable")  # keeps each sample's sites, then its points, in order
    return (
        np.take(np.concatenate([moved, points], axis=1), order, axis=1),
        np.take(np.concatenate([features, between], axis=1), order, axis=1),
        np.bincount(owners, minlength=len(sizes)),
    )


def _back_inside(cells: np.ndarray, sizes: np.ndarray, field: tuple[int, int]) -> np.ndarray:
    """Shift each sample's cells int [2, m] back inside ``field`` where it leaves it, unless
    the sample is larger than the field: int [2, m]."""
    size = np.array(field, dtype=np.int64)[:, None]
    low, high = _bounds(cells, sizes)
    shift = np.where(high - low < size, np.maximum(0, -low) - np.maximum(0, high - size + 1), 0)
    return cells + _per_site(shift, sizes)


def _turn_directions(
    features: np.ndarray, sizes: np.ndarray, a: np.ndarray, directions: tuple[tuple[int, int], ...]
) -> np.ndarray:
    """Turn the direction feature pairs (rows ``directions``) of features float [C, m] by their
    sample's ``a`` float [B, 2, 2], keeping their length; samples whose ``a`` is close to the
    identity keep theirs. Returns float [C, m]."""
    turn = ~np.isclose(a, np.eye(2)).all((1, 2))
    if not directions or not turn.any():
        return features
    keep = ~_per_site(turn, sizes)
    m = _per_site(a.transpose(1, 2, 0), sizes)
    features = features.copy()
    for pair in directions:
        v = features[list(pair)]
        turned = _times(m, v)
        norm, length = np.sqrt((turned * turned).sum(0)), np.sqrt((v * v).sum(0))  # as np.linalg.norm, bit for bit
        features[list(pair)] = np.where(
            keep, v, turned * np.divide(length, norm, out=np.zeros_like(norm), where=norm > 0)
        )
    return features


def apply_affine_batch(
    samples: Sequence[Sample],
    a: np.ndarray,
    t: np.ndarray,
    field: tuple[int, int],
    directions: tuple[tuple[int, int], ...] = (),
) -> list[Sample]:
    """Move each ``samples[b]`` through ``p -> a[b] (p - c) + c + t[b]`` onto ``field`` (H, W); see the module doc.

    ``a`` float [B, 2, 2] and ``t`` float [B, 2] act on (y, x). The sites of all samples are
    moved, filled in, shifted and merged together; each result is exactly what the sample
    alone gives. Returns samples whose coords are unique and inside ``field``; raises
    ``ValueError`` naming the first sample of which no site would remain, or one without sites.
    Each result has coords int32 [m_b, 2] and features float32 [m_b, C].
    """
    if not samples:
        return []
    sizes = np.array([len(s.coords) for s in samples], dtype=np.int64)
    if not sizes.all():
        raise ValueError(f"sample {samples[int(np.flatnonzero(sizes == 0)[0])].sample_id!r} has no sites")
    coords = np.concatenate([s.coords.T for s in samples], axis=1)
    features = np.concatenate([s.features.T for s in samples], axis=1).astype(np.float64)
    moved, features, sizes = _fill_gaps(coords, sizes, _move(coords, sizes, a, t), features)
    cells = _back_inside(np.floor(moved).astype(np.int64), sizes, field)
    inside = (cells[0] >= 0) & (cells[0] < field[0]) & (cells[1] >= 0) & (cells[1] < field[1])
    owners = np.compress(inside, _owners(sizes))
    sizes = np.bincount(owners, minlength=len(samples))
    if not sizes.all():
        empty = samples[int(np.flatnonzero(sizes == 0)[0])]
        raise ValueError(f"sample {empty.sample_id!r}: no site left inside the field {field[0]}x{field[1]}")
    y, x = np.compress(inside, cells, axis=1)
    features = _turn_directions(np.compress(inside, features, axis=1), sizes, a, directions)
    coords, merged = merge_sites((owners * field[0] + y) * field[1] + x, features.T, field[1])
    owners, coords[:, 0] = np.divmod(coords[:, 0], field[0])
    ends = np.cumsum(np.bincount(owners, minlength=len(samples))).tolist()
    return [
        replace(sample, coords=coords[start:end], features=merged[start:end])
        for sample, start, end in zip(samples, [0, *ends], ends)
    ]


def apply_affine(
    sample: Sample, a: np.ndarray, t: np.ndarray, field: tuple[int, int], directions: tuple[tuple[int, int], ...] = ()
) -> Sample:
    """Move ``sample`` through ``p -> a (p - c) + c + t`` onto ``field`` (H, W): :func:`apply_affine_batch` of one.

    ``a`` float [2, 2] and ``t`` float [2] act on (y, x). Returns a sample whose coords are
    unique and inside ``field``; raises ``ValueError`` if no site would remain.
    """
    return apply_affine_batch([sample], a[None], t[None], field, directions)[0]


@dataclass(frozen=True)
class FieldTransform:
    """Place samples of a shard field into a network's ``field`` and optionally augment them.

    ``offset`` (y, x) centres the shard field in the network field; ``augmentation`` is one of
    :data:`AUGMENTATIONS` (None at test time). Picklable, so DataLoader workers can use it.
    Call as ``transform(sample, rng)`` (the ``ShardDataset`` transform protocol), or as
    ``transform.batch(samples, rngs)`` to move a whole batch at once.
    """

    field: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    augmentation: RandomAffine | RandomShift | None = None
    directions: tuple[tuple[int, int], ...] = ()

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return self.batch([sample], [rng])[0]

    def batch(self, samples: Sequence[Sample], rngs: Sequence[np.random.Generator | None]) -> list[Sample]:
        """``[self(sample, rng) for sample, rng in zip(samples, rngs)]``, all moved at once.

        Each sample draws its augmentation from its own ``rng``, so its result does not
        depend on the other samples of the batch.
        """
        if any(self.offset):
            offset = np.array(self.offset, dtype=np.int32)
            samples = [replace(sample, coords=sample.coords + offset) for sample in samples]
        if self.augmentation is None:
            return list(samples)
        if len(rngs) != len(samples) or any(rng is None for rng in rngs):
            raise ValueError(
                f"augmentation needs one numpy Generator per sample; got {len(rngs)} for {len(samples)} samples"
            )
        if not samples:
            return []
        a, t = zip(*(self.augmentation.draw(rng) for rng in rngs))
        return apply_affine_batch(samples, np.stack(a), np.stack(t), self.field, self.directions)


def field_transform(
    shard_shape: tuple[int, int], field: tuple[int, int], feature_names: tuple[str, ...], augment: str = "none"
) -> FieldTransform:
    """The transform that moves samples of a ``shard_shape`` field into ``field`` and augments them.

    Raises :class:`ConfigError` naming both sizes when the shard field does not fit the network field.
    """
    if shard_shape[0] > field[0] or shard_shape[1] > field[1]:
        raise ConfigError(
            f"samples are on a {shard_shape[0]}x{shard_shape[1]} field but the network takes "
            f"{field[0]}x{field[1]}; preprocess with a field of at most {field[0]}x{field[1]} or pick a larger network"
        )
    if augment not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
    offset = ((field[0] - shard_shape[0]) // 2, (field[1] - shard_shape[1]) // 2)
    return FieldTransform(tuple(field), offset, AUGMENTATIONS[augment], direction_pairs(tuple(feature_names)))
