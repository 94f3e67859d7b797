"""Tiny synthetic datasets for the training tests, written through the real converters' code paths.

Class c is a straight line along ``STEPS[c]``; networks tell the classes apart within a few epochs.

* :func:`write_stroke_files` fabricates raw Assamese stroke files (``W<w>/<c>.<w>.txt``) for
  ``preprocess.assamese.convert`` and ``predict``;
* :func:`write_digit_shards` writes MNIST-style shards (``converter="mnist"``, pixels
  of small grey images placed in a larger field) and keeps the images for ``predict``;
* :func:`characters` draws handwriting-like samples (random curved pen strokes) with the
  Assamese converter's rasteriser, for augmentation tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from preprocess.images import add_pixel_samples
from preprocess.strokes import render
from sparsenet.shards import Sample, ShardMeta, ShardWriter

STEPS = ((0, 1), (1, 0), (1, 1))  # (dy, dx) of each class: horizontal, vertical, diagonal


def _line(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """Points (y, x) of a line of class ``label`` inside a ``size`` x ``size`` box."""
    step = np.array(STEPS[label])
    length = int(rng.integers(size // 2, size - 1))
    start = rng.integers(0, size - length, size=2)
    return start + np.arange(length)[:, None] * step


def write_stroke_files(raw: Path, *, writers: int = 12, seed: int = 0) -> Path:
    """Stroke files for writers 1..``writers`` and classes 1..3 in the Assamese dataset's format."""
    rng = np.random.default_rng(seed)
    for writer in range(1, writers + 1):
        folder = raw / f"W{writer}"
        folder.mkdir(parents=True, exist_ok=True)
        for label in range(len(STEPS)):
            points = _line(rng, label, 20) * 40 + 1000
            points += rng.integers(-8, 9, size=points.shape)  # a hand's wobble, in tablet units
            rows = "".join(f"{x}        {y}        1        1\r\n" for y, x in points)
            name = f"C{label + 1}"
            header = (
                f"CHARACTER_NAME: {name}\r\nSTROKE_COUNT: 1\r\n  X           Y   STYLUS_STATE STROKE\r\nPEN_DOWN\r\n"
            )
            text = f"{header}{rows}PEN_UP                  0\r\nEND_CHARACTER: {name}\r\n"
            (folder / f"{label + 1}.{writer}.txt").write_text(text)
    return raw


def digit_images(count: int, *, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [count, size, size], labels [count]): light lines on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), dtype=np.uint8)
    labels = np.arange(count) % len(STEPS)
    for image, label in zip(images, labels):
        y, x = _line(rng, label, size).T
        image[y, x] = rng.integers(120, 256, size=len(y))
    return images, labels


def write_digit_shards(
    root: Path, *, field: int = 12, size: int = 8, train: int = 48, test: int = 24, seed: int = 0
) -> Path:
    """``root/train`` and ``root/test`` like ``preprocess.mnist`` writes them, from :func:`digit_images`."""
    offset = ((field - size) // 2,) * 2
    meta = ShardMeta(
        spatial_shape=(field, field),
        num_classes=len(STEPS),
        feature_names=("intensity",),
        class_names=("horizontal", "vertical", "diagonal"),
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
