"""Networks from configs and checkpoints, and their test error: ``sparsenet eval``.

``evaluate("runs/assamese-vgg/best.pt", "data/assamese")`` rebuilds the network recorded in
the checkpoint, runs it (eval mode; no augmentation unless ``repeats > 1``) over the test split and returns the
top-1 and top-5 error, the loss, per-class errors, and writes a confusion-matrix PNG. The
helpers here (:func:`build_network`, :func:`loader`, :func:`tally`) are the ones training uses.

``repeats=R`` adds test-time augmentation (Graham's repeated testing): the prediction is the mean
of the class probabilities over the plain test sample and ``R - 1`` copies distorted by the run's
own training augmentation, copy ``r`` drawn from ``(TTA_SEED, r, index)``; the result is
deterministic. Several checkpoints make an ensemble: the mean of the members' probabilities.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sparsenet.augment import field_transform
from sparsenet.batch import ShardDataset, collate
from sparsenet.checkpoint import Checkpoint, check_data, class_names, load, load_weights, resolve
from sparsenet.config import TEST_SPLIT, TrainConfig
from sparsenet.metrics import Tally, plot_confusion
from sparsenet.shards import ShardReader


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; ``"cuda"`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda requested but no CUDA device is available; use --device cpu or auto")
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
    return ShardDataset(reader, field_transform(meta.spatial_shape, network_field, meta.feature_names, augment), seed=seed)


def loader(data: ShardDataset, batches: Sequence[Sequence[int]], workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader yielding one :class:`~sparsenet.batch.SparseBatch` per index list of ``batches``."""
    return torch.utils.data.DataLoader(
        data,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=partial(collate, spatial_shape=data.transform.field),
    )


def in_batches(indices: Sequence[int], size: int) -> list[list[int]]:
    """``indices`` cut into consecutive lists of ``size`` (the last may be shorter)."""
    indices = list(indices)
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def inputs(network: torch.nn.Module, batch) -> tuple:
    """The positional arguments ``network`` takes for ``batch`` (by its ``input_kind``)."""
    value = batch.as_input(network.input_kind)
    return value if isinstance(value, tuple) else (value,)


TTA_SEED = 20141016  # seed of the test-time augmentation draws (arXiv:1409.6070 v1's date)


@torch.no_grad()
def log_probabilities(network: torch.nn.Module, batches: torch.utils.data.DataLoader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
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


def _tally_of(log_p: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Tally:
    """Tally of log-probabilities [N, K] against labels [N] (loss: summed negative log-likelihood)."""
    totals = Tally(num_classes)
    totals.add(log_p, labels, F.nll_loss(log_p, labels, reduction="sum").item())
    return totals


def tally(network: torch.nn.Module, batches: torch.utils.data.DataLoader, device: torch.device, num_classes: int) -> Tally:
    """Loss and hits of ``network`` (in eval mode) over every batch of ``batches``."""
    return _tally_of(*log_probabilities(network, batches, device), num_classes)


def repeated_log_probabilities(network: torch.nn.Module, reader: ShardReader, field: tuple[int, int], augment: str,
                               repeats: int, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(log of the mean class probabilities [N, K] over ``repeats`` passes, labels int64 [N]) for the
    N samples of ``reader``: the first pass undistorted, the others with augmentation ``augment``
    (module docstring)."""
    if len(reader) == 0:
        raise ValueError(f"{reader.files[0].parent}: no test samples")
    passes = []
    for r in range(repeats):
        data = dataset(reader, field, augment if r else "none", seed=TTA_SEED)
        data.set_epoch(r)
        log_p, labels = log_probabilities(network, loader(data, in_batches(range(len(data)), batch_size)), device)
        passes.append(log_p)
    return _log_mean_exp(passes), labels


def _log_mean_exp(log_ps: Sequence[torch.Tensor]) -> torch.Tensor:
    """log of the mean of the probabilities ``exp(log_ps)`` (a list of equal-shape tensors)."""
    return torch.logsumexp(torch.stack(list(log_ps)), dim=0) - math.log(len(log_ps))


def load_network(checkpoint: str | os.PathLike, device: torch.device) -> tuple[torch.nn.Module, tuple[int, int], Checkpoint]:
    """(network with the checkpoint's weights, in eval mode on ``device``, its field, the checkpoint)."""
    ckpt = load(resolve(checkpoint))
    network, field = build_network(ckpt.config, ckpt.data)
    load_weights(network, ckpt.model, ckpt.path, ckpt.config.model)
    return network.to(device).eval(), field, ckpt


def evaluate(
    checkpoint: str | os.PathLike | Sequence[str | os.PathLike],
    data: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    confusion_png: str | os.PathLike | None = None,
    repeats: int = 1,
    plot: bool = True,
) -> dict[str, Any]:
    """Test error of a checkpoint (a file, or a run folder: its best.pt), or of an ensemble of several.

    ``data`` is a dataset folder (its ``test`` split is used) or a split folder; by default
    the one the (first) run trained on. An ensemble predicts the mean of its members' class
    probabilities; each member must fit the data. The confusion matrix goes to ``confusion_png``
    (default: ``eval-<checkpoint stem>-confusion.png`` beside the first checkpoint, so the run's own
    ``confusion.png`` is kept). Returns plain values: ``top1_error`` and
    ``top5_error`` (fractions), ``loss``, ``samples``, ``per_class_error`` {class: fraction},
    ``checkpoint`` (the first), ``checkpoints`` (all), ``data``, ``epoch`` (of the first),
    ``confusion_png`` (None with ``plot=False``), ``repeats``. ``repeats > 1`` averages each member
    over augmented copies (module docstring); it needs runs trained with augmentation.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    if not paths:
        raise ValueError("no checkpoint to evaluate")
    dev = resolve_device(device)
    members = [load_network(path, dev) for path in paths]
    first = members[0][2]
    path = Path(data if data is not None else first.config.data)
    split = path / TEST_SPLIT if (path / TEST_SPLIT).is_dir() else path
    reader = ShardReader(split)
    log_ps = []
    for network, field, ckpt in members:
        check_data(ckpt.data, reader.meta, ckpt.path, split)
        if repeats > 1 and ckpt.config.augment == "none":
            raise ValueError(f"{ckpt.path}: the run trained without augmentation, so there is nothing to repeat the test with")
        size = batch_size or ckpt.config.eval_batch_size
        log_p, labels = repeated_log_probabilities(network, reader, field, ckpt.config.augment, repeats, size, dev)
        log_ps.append(log_p)
    totals = _tally_of(_log_mean_exp(log_ps), labels, first.data["num_classes"])
    names = class_names(first.data)
    png = None
    if plot:
        png = Path(confusion_png) if confusion_png is not None else first.path.with_name(f"eval-{first.path.stem}-confusion.png")
        models = " + ".join(ckpt.config.model for _, _, ckpt in members)
        plot_confusion(totals.confusion, png, names, title=f"{models} on {split} (epoch {first.epoch})")
    return {
        "checkpoint": str(first.path),
        "checkpoints": [str(ckpt.path) for _, _, ckpt in members],
        "data": str(split),
        "epoch": first.epoch,
        "samples": totals.count,
        "top1_error": totals.top1_error,
        "top5_error": totals.top5_error,
        "loss": totals.loss,
        "per_class_error": {name: (None if np.isnan(e) else float(e)) for name, e in zip(names, totals.per_class_error())},
        "confusion_png": None if png is None else str(png),
        "repeats": repeats,
    }
