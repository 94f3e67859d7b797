"""Tiny synthetic datasets for the training tests, written through the real converters' code paths.

Class c is a straight line along ``STEPS[c]``; networks tell the classes apart within a few epochs.

* :func:`write_stroke_files` and :func:`digit_images` come from the library's one generator of
  synthetic raw data, :mod:`sparsenet.bench.synthetic` (``sparsenet bench --quick`` uses it too):
  raw Assamese stroke files (``W<w>/<c>.<w>.txt``) for ``preprocess.assamese.convert`` and
  ``predict``, and small grey line images;
* :func:`write_digit_shards` writes MNIST-style shards (``converter="mnist"``, pixels
  of :func:`digit_images` placed in a larger field) and keeps the images for ``predict``;
* :func:`characters` draws handwriting-like samples (random curved pen strokes) with the
  Assamese converter's rasteriser, for augmentation tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocess.images import add_pixel_samples
from preprocess.strokes import render
from sparsenet.bench.synthetic import CLASS_NAMES, STEPS, digit_images, write_stroke_files
from sparsenet.shards import Sample, ShardMeta, ShardWriter

__all__ = ["STEPS", "characters", "digit_images", "write_digit_shards", "write_stroke_files"]


def write_digit_shards(
    root: Path, *, field: int = 12, size: int = 8, train: int = 48, test: int = 24, seed: int = 0
) -> Path:
    """``root/train`` and ``root/test`` like ``preprocess.mnist`` writes them, from :func:`digit_images`."""
    offset = ((field - size) // 2,) * 2
    meta = ShardMeta(
        spatial_shape=(field, field),
        num_classes=len(STEPS),
        feature_names=("intensity",),
        class_names=CLASS_NAMES,
        source="synthetic",
        converter="mnist",
        dataset="mnist",
        params={"field": field, "offset": list(offset), "image_shape": [size, size], "feature": "value / 255"},
    )
    for k, (split, count) in enumerate((("train", train), ("test", test))):
        images, labels = digit_images(count, size=size, seed=seed + k)
        with ShardWriter(root / split, meta, samples_per_shard=max(count // 2, 1)) as writer:
            ids = [f"{split}/{i}" for i in range(count)]
            add_pixel_samples(writer, images > 0, images[..., None] / np.float32(255), labels, ids, offset)
    return root


def _pen_stroke(rng: np.random.Generator) -> np.ndarray:
    """Pen positions (x, y) [m, 2] of one smoothly turning stroke, in tablet-like units."""
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.5, size=int(rng.integers(3, 12))))
    steps = rng.uniform(5, 20) * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return rng.uniform(-40, 40, size=2) + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def characters(count: int, *, field: int = 64, seed: int = 0) -> list[Sample]:
    """``count`` handwriting-like samples on a ``field`` x ``field`` grid, "direction" features
    (dx, dy, ink): 1-3 random pen strokes each, scaled to between 3 and ``field - 4`` cells."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        strokes = [_pen_stroke(rng) for _ in range(int(rng.integers(1, 4)))]
        coords, features = render(strokes, scale=rng.uniform(3, field - 4), field=field)
        samples.append(Sample(coords, features, i % 3, f"char{i}"))
    return samples
