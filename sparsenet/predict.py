"""Classify raw inputs with a trained checkpoint: ``sparsenet predict``.

Inputs are converted exactly as the checkpoint's shards were, with the converter options
stored in it (``data["params"]``):

* ``preprocess.assamese`` checkpoints read Assamese stroke files (the dataset's ``.txt``
  format) through ``preprocess.assamese.sample_from_file`` (scale, field, encoding);
* ``preprocess.mnist`` checkpoints read image files (PNG, JPEG, ...): converted to grey,
  resized to the stored image shape (28x28), inverted when the background is light (MNIST
  digits are light on black), then turned into sites like ``preprocess.mnist`` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sparsenet.augment import field_transform
from sparsenet.batch import collate
from sparsenet.checkpoint import class_names
from sparsenet.evaluate import inputs as network_inputs
from sparsenet.evaluate import load_network, resolve_device
from sparsenet.shards import Sample


class _Collector:
    """Stands in for a ``ShardWriter``: keeps the samples a converter adds."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def add(self, coords: np.ndarray, features: np.ndarray, label: int, sample_id: str = "") -> None:
        self.samples.append(Sample(np.asarray(coords, dtype=np.int32), np.asarray(features, dtype=np.float32), label, sample_id))


def _stroke_sample(path: Path, params: dict[str, Any]) -> Sample:
    from preprocess.assamese import sample_from_file

    coords, features = sample_from_file(path, scale=params["scale"], field=params["field"], encoding=params["encoding"])
    return Sample(coords, features, -1, str(path))


def _image_sample(path: Path, params: dict[str, Any]) -> Sample:
    from PIL import Image, UnidentifiedImageError

    from preprocess.images import add_pixel_samples

    height, width = params["image_shape"]
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L").resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file that Pillow can read") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:  # dark ink on light paper -> MNIST's light digit on black
        grey = 255 - grey
    if not grey.any():
        raise ValueError(f"{path}: the image is blank (no pixel above 0 after conversion)")
    collector = _Collector()
    add_pixel_samples(collector, grey[None] > 0, grey[None, :, :, None] / 255, [-1], [str(path)], tuple(params["offset"]))
    return collector.samples[0]


READERS = {"preprocess.assamese": _stroke_sample, "preprocess.mnist": _image_sample}


def read_input(path: str | os.PathLike, data: dict[str, Any]) -> Sample:
    """One raw input as a sample on the shard field described by ``data`` (a checkpoint's data info)."""
    reader = READERS.get(data["converter"])
    if reader is None:
        raise ValueError(
            f"predict reads raw inputs for checkpoints trained on {' or '.join(READERS)} shards; "
            f"this one was trained on shards written by {data['converter']!r}"
        )
    return reader(Path(path), json.loads(data["params"]))


@torch.no_grad()
def predict(
    checkpoint: str | os.PathLike, paths: Sequence[str | os.PathLike], *, top: int = 5, device: str = "auto"
) -> list[dict[str, Any]]:
    """The ``top`` most probable classes for each raw input file.

    Returns one ``{"input": path, "top": [{"class": index, "name": class name, "probability": p}, ...]}``
    per input, most probable first.
    """
    dev = resolve_device(device)
    network, field, ckpt = load_network(checkpoint, dev)
    data = ckpt.data
    place = field_transform(tuple(data["spatial_shape"]), field, tuple(data["feature_names"]))
    batch = collate([place(read_input(path, data)) for path in paths], field).to(dev)
    probabilities = torch.softmax(network(*network_inputs(network, batch)), dim=1).cpu()
    values, indices = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    names = class_names(data)
    return [
        {
            "input": str(path),
            "top": [{"class": int(k), "name": names[int(k)], "probability": float(p)} for p, k in zip(row_p, row_k)],
        }
        for path, row_p, row_k in zip(paths, values, indices)
    ]
