"""Synthetic raw datasets: Assamese-format stroke files and MNIST IDX files, numpy only.

One generator for everything that needs raw files without the real data: ``sparsenet bench
--quick`` converts them with the real converters, and the tests (``tests/synthetic.py``) train
on them. Class ``c`` is a straight line along :data:`STEPS` ``[c]`` (horizontal, vertical,
diagonal), so a network tells the classes apart within a few epochs. Everything depends only
on ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STEPS = ((0, 1), (1, 0), (1, 1))  # (dy, dx) of each class: horizontal, vertical, diagonal
CLASS_NAMES = ("horizontal", "vertical", "diagonal")
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes, the only one MNIST uses


def line_points(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """int [n, 2]: points (y, x) of a line of class ``label`` inside a ``size`` x ``size`` box,
    ``size // 2 <= n < size - 1`` points long."""
    step = np.array(STEPS[label])
    length = int(rng.integers(size // 2, size - 1))
    start = rng.integers(0, size - length, size=2)
    return start + np.arange(length)[:, None] * step


def write_stroke_files(raw: Path, *, writers: int = 12, seed: int = 0) -> Path:
    """Stroke files ``raw/W<w>/<c>.<w>.txt`` for writers 1..``writers`` and classes 1..3 in the
    Assamese release's format (CRLF lines, one pen-down stroke in tablet units); returns ``raw``."""
    rng = np.random.default_rng(seed)
    for writer in range(1, writers + 1):
        folder = raw / f"W{writer}"
        folder.mkdir(parents=True, exist_ok=True)
        for label in range(len(STEPS)):
            points = line_points(rng, label, 20) * 40 + 1000
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
    """(uint8 images [count, size, size], labels [count] = index mod 3): light lines on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), dtype=np.uint8)
    labels = np.arange(count) % len(STEPS)
    for image, label in zip(images, labels):
        y, x = line_points(rng, label, size).T
        image[y, x] = rng.integers(120, 256, size=len(y))
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    """An uncompressed IDX file holding the uint8 ``array`` (any number of dimensions)."""
    if array.dtype != np.uint8:
        raise ValueError(f"idx_bytes writes uint8 arrays only, got {array.dtype}")
    header = bytes([0, 0, IDX_UBYTE, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.tobytes()


def write_idx_digits(folder: Path, train: int, test: int, *, seed: int = 0) -> Path:
    """MNIST's four uncompressed IDX files in ``folder``: ``train`` and ``test`` 28x28
    :func:`digit_images` (seeds ``seed`` and ``seed + 1``) and their labels; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, (prefix, count) in enumerate((("train", train), ("t10k", test))):
        images, labels = digit_images(count, size=28, seed=seed + k)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels.astype(np.uint8)))
    return folder
