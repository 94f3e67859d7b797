"""The data of ``sparsenet bench``: real shards and raw files, or tiny synthetic stand-ins.

A :class:`Workspace` answers three questions for every benchmark case: where the raw files of a
dataset are (:meth:`Workspace.raw`), how to convert them exactly as ``make preprocess`` does
(:meth:`Workspace.convert`, through the converter registry), and where the converted shards are
(:meth:`Workspace.shards`, converting first when they are missing). For a real run the raw data
comes from ``--raw`` or ``$SPARSENET_RAW`` and the shards live in ``data/``; ``--quick`` writes
a few stroke files and a few hundred MNIST-format digits (:mod:`sparsenet.bench.synthetic`) into a
temporary folder instead, so CI needs no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsenet.bench.synthetic import write_idx_digits, write_stroke_files
from sparsenet.config import TEST_SPLIT, TRAIN_SPLIT
from sparsenet.converters import get_converter
from sparsenet.errors import ConfigError
from sparsenet.shards import MANIFEST, ShardReader
from sparsenet.sources import locate

DATASETS = ("assamese", "mnist")
QUICK_WRITERS = 7  # synthetic stroke writers: the last one is the test split, the others train
QUICK_DIGITS = (240, 40)  # synthetic MNIST train and test digits


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
        write_stroke_files(raw / "assamese", writers=QUICK_WRITERS, seed=seed)
        write_idx_digits(raw / "mnist", *QUICK_DIGITS, seed=seed)
        return cls(folder / "data", raw, quick=True)

    def raw(self, dataset: str) -> Path:
        """The raw files of ``dataset``; a missing copy is a ``RawDataError`` saying how to supply one."""
        if self.raw_root is not None:
            return locate(dataset, self.raw_root / dataset)
        return locate(dataset, download=False)

    def convert(self, dataset: str, out: Path) -> dict[str, Any]:
        """Convert ``dataset`` into ``out`` with the converter's defaults (quick mode: the last writer tests);
        returns the converter's summary (``{"samples": {split: count}, ...}``)."""
        if dataset not in DATASETS:
            raise ConfigError(f"unknown benchmark dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
        options: dict[str, Any] = {}
        if self.quick and dataset == "assamese":
            options = {"train_writers": range(1, QUICK_WRITERS), "test_writers": [QUICK_WRITERS]}
        return get_converter(dataset).convert(self.raw(dataset), out, **options)

    def shards(self, dataset: str) -> Path:
        """``data_root/dataset`` (train/ and test/ splits), converted from the raw data if missing."""
        folder = self.data_root / dataset
        if not all((folder / split / MANIFEST).is_file() for split in (TRAIN_SPLIT, TEST_SPLIT)):
            self.convert(dataset, folder)
        return folder

    def mnist_images(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` MNIST training digits, rebuilt from the shards (the conversion is exact):
        (float32 [count, 28, 28] pixel value / 255, labels int64 [count])."""
        reader = ShardReader(self.shards("mnist") / TRAIN_SPLIT)
        params = reader.meta.params
        count = min(count, len(reader))
        images = np.zeros((count, *params["image_shape"]), dtype=np.float32)
        labels = np.zeros(count, dtype=np.int64)
        for i, image in enumerate(images):
            sample = reader[i]
            y, x = (sample.coords - np.asarray(params["offset"])).T
            image[y, x], labels[i] = sample.features[:, 0], sample.label
        return images, labels
