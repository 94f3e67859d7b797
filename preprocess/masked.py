"""Randomly masked images -> sparsenet shards (inputs for sparsity-invariant CNNs).

As in reproductions of Uhrig et al., "Sparsity Invariant CNNs" (3DV 2017), each image gets
a random validity mask: exactly ``round(sparsity * H * W)`` pixels are dropped (a uniformly
random subset, fixed count rather than Bernoulli, so every sample has the same number of
sites and the requested sparsity holds per image). Sites are the valid pixels, whatever
their value (validity, not intensity); features are the pixel values.

- ``mnist``: 28x28, features ``value / 255`` (1 channel); the official train/test split.
- ``caltech101``: centre square crop resized to ``size`` x ``size`` (see
  ``preprocess.caltech101``), features ``(value / 255 - mean) / std`` with the ImageNet
  mean/std (3 channels); a stratified train/val/test split (70/10/20 % per class).

Masks and splits depend only on ``seed`` (and the data), so a re-run reproduces them.

Example::

    sparsenet preprocess masked --dataset mnist --sparsity 0.9 --source ../shared/data/mnist --out data/masked-mnist-0.9
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from preprocess import caltech101, mnist
from preprocess.images import add_pixel_samples
from sparsenet.converters import Converter
from sparsenet.datasets import DatasetWriter
from sparsenet.shards import ShardMeta

DATASETS = ("mnist", "caltech101")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CALTECH_SPLITS = {"train": 0.7, "val": 0.1, "test": 0.2}
CHUNK = 4096


def validity_masks(count: int, shape: tuple[int, int], sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """bool [count, H, W]: True = valid; exactly ``round(sparsity * H * W)`` False per image."""
    pixels = shape[0] * shape[1]
    dropped = round(sparsity * pixels)
    if dropped >= pixels:
        raise ValueError(f"sparsity {sparsity} drops all {pixels} pixels of a {shape[0]}x{shape[1]} image")
    valid = np.ones((count, pixels), dtype=bool)
    if dropped:
        drop = np.argpartition(rng.random((count, pixels)), dropped - 1, axis=1)[:, :dropped]
        np.put_along_axis(valid, drop, False, axis=1)
    return valid.reshape(count, *shape)


def _images(dataset: str, source, size: int, seed: int, progress: bool) -> tuple[dict, ShardMeta]:
    """Per split (images uint8 [N, H, W, C], labels [N], ids), and the meta (params hold mean/std)."""
    if dataset == "mnist":
        splits = {
            split: (images[..., None], labels, [f"{split}/{i}" for i in range(len(labels))])
            for split, (images, labels) in mnist.load(source).items()
        }
        meta = ShardMeta(
            spatial_shape=(28, 28),
            num_classes=10,
            feature_names=("intensity",),
            class_names=tuple(str(d) for d in range(10)),
            params={"mean": [0.0], "std": [1.0]},
        )
        return splits, meta
    images, labels, class_names, ids = caltech101.load(source, size=size, progress=progress)
    parts = caltech101.split_indices(labels, CALTECH_SPLITS, seed)
    splits = {split: (images[idx], labels[idx], [ids[i] for i in idx]) for split, idx in parts.items()}
    params = {
        "size": size,
        "resize": "centre square crop, bilinear resize",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "split_fractions": CALTECH_SPLITS,
    }
    meta = ShardMeta(
        spatial_shape=(size, size),
        num_classes=len(class_names),
        feature_names=("red", "green", "blue"),
        class_names=class_names,
        params=params,
    )
    return splits, meta


def convert(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dataset: str,
    sparsity: float,
    seed: int = 0,
    size: int = 64,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write masked ``dataset`` (``mnist`` or ``caltech101``) from ``source`` into ``out_dir/<split>``.

    ``sparsity`` in [0, 1) is the fraction of pixels dropped; ``size`` applies to Caltech-101.
    Every split replaces ``out_dir`` together (:class:`~sparsenet.datasets.DatasetWriter`;
    ``overwrite`` keeps files sparsenet did not write there).
    """
    from tqdm import tqdm

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1) (the fraction of pixels dropped), got {sparsity}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    splits, meta = _images(dataset, source, size, seed, progress)
    meta = dataclasses.replace(
        meta,
        source=str(source),
        converter="masked",
        dataset=f"masked-{dataset}",
        params={
            "dataset": dataset,
            "sparsity": sparsity,
            "seed": seed,
            "mask": "exact count, uniform",
            "feature": "(value / 255 - mean) / std",
            **meta.params,
        },
    )
    mean, std = (np.asarray(meta.params[k], dtype=np.float32) for k in ("mean", "std"))
    with DatasetWriter(out_dir, meta, overwrite=overwrite) as written:
        for k, (split, (images, labels, ids)) in enumerate(splits.items()):
            rng = np.random.default_rng([seed, 1 + k])
            writer = written.split(split)
            with tqdm(total=len(labels), desc=f"{dataset} {split}", unit=" images", disable=not progress) as bar:
                for lo in range(0, len(labels), CHUNK):
                    chunk = (images[lo : lo + CHUNK] / np.float32(255) - mean) / std
                    valid = validity_masks(len(chunk), chunk.shape[1:3], sparsity, rng)
                    add_pixel_samples(writer, valid, chunk, labels[lo : lo + CHUNK], ids[lo : lo + CHUNK])
                    bar.update(len(chunk))
    return {
        "out_dir": str(out_dir),
        "samples": written.samples,
        "sparsity": sparsity,
        "seed": seed,
        "run_id": written.run_id,
        "kept": written.kept,
    }


CONVERTER = Converter(
    "masked",
    convert,
    None,
    "MNIST or Caltech-101 with random validity masks -> valid-pixel sites",
    {"dataset": DATASETS},
)
