"""The pipeline from shards to a network's outputs, shared by training, evaluation and prediction.

A network is built for a config and the shards' data description (:func:`build_network`), or
loaded from a checkpoint (:func:`load_network`); a split's samples are placed into its input
field (:func:`dataset`) and served in batches (:func:`loader`, :func:`in_batches`); a batch
becomes the network's arguments (:func:`inputs`); :func:`tally` sums loss and hits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sparsenet.augment import field_transform
from sparsenet.batch import ShardDataset
from sparsenet.checkpoint import Checkpoint, load, load_weights, resolve
from sparsenet.config import TrainConfig
from sparsenet.errors import ConfigError
from sparsenet.metrics import Tally
from sparsenet.shards import ShardReader


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device cuda requested but no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def _shape(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))


def build_network(config: TrainConfig, data: dict[str, Any]) -> tuple[torch.nn.Module, tuple[int, int]]:
    """(network, its input field (H, W)) for ``config.model`` on data described by ``data`` (see ``data_info``).

    A network that takes an ``image_size`` and is not given one in ``config.model_kwargs`` is built
    for the shards' field when that is square (masked Caltech-101 preprocessed at any ``--size``)."""
    from sparsenet import models

    kwargs = {"num_classes": data["num_classes"], "in_channels": len(data["feature_names"]), **config.model_kwargs}
    if "image_size" in models.parameters(config.model) and "image_size" not in kwargs:  # the shards' square field
        height, width = data["spatial_shape"]
        if height == width:
            kwargs["image_size"] = height
    network = models.build(config.model, **kwargs)
    return network, _shape(network.input_size())


def dataset(reader: ShardReader, network_field: tuple[int, int], augment: str = "none", seed: int = 0) -> ShardDataset:
    """The samples of ``reader`` placed into ``network_field`` (and augmented)."""
    meta = reader.meta
    return ShardDataset(
        reader, field_transform(meta.spatial_shape, network_field, meta.feature_names, augment), seed=seed
    )


def loader(data: ShardDataset, batches: Sequence[Sequence[int]], workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader yielding one :class:`~sparsenet.batch.SparseBatch` per index list of ``batches``."""
    return torch.utils.data.DataLoader(data, batch_sampler=batches, num_workers=workers, collate_fn=data.collate)


def in_batches(indices: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` cut into consecutive lists of ``size`` (the last may be shorter)."""
    indices = list(indices)
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def inputs(network: torch.nn.Module, batch) -> tuple:
    """The positional arguments ``network`` takes for ``batch`` (by its ``input_kind``)."""
    value = batch.as_input(network.input_kind)
    return value if isinstance(value, tuple) else (value,)


@torch.no_grad()
def log_probabilities(
    network: torch.nn.Module, batches: torch.utils.data.DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-softmax of ``network`` in eval mode [N, K], labels int64 [N]) over every batch, on the CPU."""
    was_training = network.training
    network.eval()
    outputs, labels = [], []
    for batch in batches:
        batch = batch.to(device)
        outputs.append(F.log_softmax(network(*inputs(network, batch)), dim=1).cpu())
        labels.append(batch.labels.cpu())
    network.train(was_training)
    return torch.cat(outputs), torch.cat(labels)


def tally_of(log_p: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Tally:
    """Tally of log-probabilities [N, K] against labels [N] (loss: summed negative log-likelihood)."""
    totals = Tally(num_classes)
    totals.add(log_p, labels, F.nll_loss(log_p, labels, reduction="sum").item())
    return totals


def tally(
    network: torch.nn.Module, batches: torch.utils.data.DataLoader, device: torch.device, num_classes: int
) -> Tally:
    """Loss and hits of ``network`` (in eval mode) over every batch of ``batches``."""
    return tally_of(*log_probabilities(network, batches, device), num_classes)


def load_network(
    checkpoint: str | os.PathLike, device: torch.device
) -> tuple[torch.nn.Module, tuple[int, int], Checkpoint]:
    """(network with the checkpoint's weights, in eval mode on ``device``, its field, the checkpoint)."""
    ckpt = load(resolve(checkpoint))
    network, field = build_network(ckpt.config, ckpt.data)
    load_weights(network, ckpt.model, ckpt.path, ckpt.config.model)
    return network.to(device).eval(), field, ckpt
