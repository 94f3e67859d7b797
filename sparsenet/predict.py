"""Classify raw inputs with a trained checkpoint: ``sparsenet predict``.

Inputs are converted exactly as the checkpoint's shards were: by the ``read_input`` of the
converter registered under the shards' converter name (:mod:`sparsenet.converters`), with the
converter options stored in the checkpoint (``data["params"]``). Assamese checkpoints read
stroke files in the dataset's ``.txt`` format, MNIST ones image files (PNG, JPEG, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch

from sparsenet.augment import field_transform
from sparsenet.batch import collate
from sparsenet.checkpoint import class_names
from sparsenet.converters import read_input
from sparsenet.pipeline import inputs as network_inputs
from sparsenet.pipeline import load_network, resolve_device


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
    batch = collate(
        [place(read_input(path, data["converter"], json.loads(data["params"]))) for path in paths], field
    ).to(dev)
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
