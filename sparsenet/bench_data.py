"""The data of ``sparsenet bench``: real shards and raw files, or tiny synthetic stand-ins.

A :class:`Workspace` answers three questions for every benchmark case: where the raw files of a
dataset are (:meth:`Workspace.raw`), how to convert them exactly as ``make preprocess`` does
(:meth:`Workspace.convert`), and where the converted shards are (:meth:`Workspace.shards`,
converting first when they are missing). For a real run the raw data comes from ``--raw`` or
``$SPARSENET_RAW`` and the shards live in ``data/``; ``--quick`` fabricates a few dozen stroke
files and a few hundred MNIST-format digits in a temporary folder instead, so CI needs no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsenet.config import TEST_SPLIT, TRAIN_SPLIT
from sparsenet.shards import MANIFEST, Sample

DATASETS = ("assamese", "mnist")
QUICK_WRITERS, QUICK_CLASSES, QUICK_DIGITS = 4, 6, (240, 40)  # synthetic sizes: train writers + 1 test writer


@dataclass(frozen=True)
class Workspace:
    """Raw data and shards of one benchmark run (see the module docstring).

    ``data_root`` holds ``assamese/`` and ``mnist/`` shard folders; ``raw_root`` holds the raw
    datasets (None: ``$SPARSENET_RAW``, else ``data/raw``, never a download).
    """

    data_root: Path
    raw_root: Path | None = None
    quick: bool = False

    @classmethod
    def synthetic(cls, folder: Path, seed: int = 0) -> Workspace:
        """A quick-mode workspace in ``folder``: synthetic raw files, shards converted on demand."""
        raw = folder / "raw"
        write_stroke_files(raw / "assamese", writers=QUICK_WRITERS, classes=QUICK_CLASSES, seed=seed)
        write_idx_digits(raw / "mnist", *QUICK_DIGITS, seed=seed)
        return cls(folder / "data", raw, quick=True)

    def raw(self, dataset: str) -> Path:
        """The raw files of ``dataset``; a missing copy is a ``RawDataError`` saying how to supply one."""
        from sparsenet.sources import locate

        if self.raw_root is not None:
            return locate(dataset, self.raw_root / dataset)
        return locate(dataset, download=False)

    def convert(self, dataset: str, out: Path) -> dict:
        """Convert ``dataset`` into ``out`` with the converter's defaults (quick mode: 1 test writer)."""
        if dataset == "assamese":
            from preprocess import assamese

            writers = {}
            if self.quick:
                writers = dict(train_writers=range(1, QUICK_WRITERS), test_writers=[QUICK_WRITERS])
            return assamese.convert(self.raw(dataset), out, **writers)
        if dataset == "mnist":
            from preprocess import mnist

            return mnist.convert(self.raw(dataset), out)
        raise ValueError(f"unknown benchmark dataset {dataset!r}; expected one of {', '.join(DATASETS)}")

    def shards(self, dataset: str) -> Path:
        """``data_root/dataset`` (train/ and test/ splits), converted from the raw data if missing."""
        folder = self.data_root / dataset
        if not all((folder / split / MANIFEST).is_file() for split in (TRAIN_SPLIT, TEST_SPLIT)):
            self.convert(dataset, folder)
        return folder

    def mnist_images(self) -> tuple[np.ndarray, np.ndarray]:
        """The MNIST training digits: (uint8 [N, 28, 28], labels [N])."""
        from preprocess import mnist

        return mnist.load(self.raw("mnist"))[TRAIN_SPLIT]


def _random_walk(rng: np.random.Generator, points: int, step: float) -> np.ndarray:
    """float [points, 2]: a smooth random pen path (turning a little at every step)."""
    angles = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, points))
    return np.cumsum(step * np.stack([np.cos(angles), np.sin(angles)], axis=1), axis=0)


def write_stroke_files(folder: Path, *, writers: int, classes: int, seed: int = 0) -> Path:
    """Raw Assamese-format files ``W<w>/<c>.<w>.txt``: 1-3 random strokes of 10-40 points each."""
    rng = np.random.default_rng(seed)
    for writer in range(1, writers + 1):
        (folder / f"W{writer}").mkdir(parents=True, exist_ok=True)
        for c in range(1, classes + 1):
            lines = [f"CHARACTER_NAME: C{c}", "STROKE_COUNT: {}", "  X           Y   STYLUS_STATE STROKE"]
            strokes = int(rng.integers(1, 4))
            for k in range(1, strokes + 1):
                path = 1000 + rng.uniform(0, 400, 2) + _random_walk(rng, int(rng.integers(10, 41)), 15.0)
                lines += ["PEN_DOWN", *(f"{x:.0f}  {y:.0f}  1  {k}" for x, y in path), "PEN_UP  0"]
            lines[1] = lines[1].format(strokes)
            text = "\r\n".join([*lines, f"END_CHARACTER: C{c}", ""])
            (folder / f"W{writer}" / f"{c}.{writer}.txt").write_text(text)
    return folder


def write_idx_digits(folder: Path, train: int, test: int, *, seed: int = 0) -> Path:
    """MNIST's four IDX files (uncompressed) holding random pen paths drawn on 28x28 images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = np.zeros((count, 28, 28), dtype=np.uint8)
        for image in images:
            y, x = np.clip(14 + _random_walk(rng, 60, 0.8), 0, 27).astype(int).T
            image[y, x] = rng.integers(80, 256, len(y))
        labels = rng.integers(0, 10, count).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
            (folder / f"{prefix}-{kind}-ubyte").write_bytes(header + array.tobytes())
    return folder


def masked_samples(images: np.ndarray, labels: np.ndarray, sparsity: float, seed: int = 0) -> list[Sample]:
    """Masked-MNIST samples built in memory as ``preprocess.masked`` builds its shards: sites at the
    valid pixels (``sparsity`` of them dropped), feature ``value / 255``."""
    from preprocess.masked import validity_masks

    valid = validity_masks(len(images), images.shape[1:], sparsity, np.random.default_rng(seed))
    samples = []
    for image, mask, label in zip(images, valid, labels):
        y, x = np.nonzero(mask)
        coords = np.stack([y, x], axis=1).astype(np.int32)
        samples.append(Sample(coords, (image[y, x, None] / np.float32(255)).astype(np.float32), int(label)))
    return samples
