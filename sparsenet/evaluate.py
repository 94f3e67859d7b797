"""The test error of a checkpoint or an ensemble: ``sparsenet eval``.

``evaluate("runs/assamese-vgg/best.pt", "data/assamese")`` rebuilds the network recorded in
the checkpoint, runs it (eval mode; no augmentation unless ``repeats > 1``) over the test split and returns the
top-1 and top-5 error, the loss, per-class errors, and writes a confusion-matrix PNG.

``repeats=R`` adds test-time augmentation (Graham's repeated testing): the prediction is the mean
of the class probabilities over the plain test sample and ``R - 1`` copies distorted by the run's
own training augmentation, copy ``r`` drawn from ``(TTA_SEED, r, index)``; the result is
deterministic. Several checkpoints make an ensemble: the mean of the members' probabilities.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsenet.checkpoint import check_data, class_names
from sparsenet.config import TEST_SPLIT
from sparsenet.errors import CheckpointError, ConfigError, ShardError
from sparsenet.metrics import plot_confusion
from sparsenet.pipeline import dataset, in_batches, load_network, loader, log_probabilities, resolve_device, tally_of
from sparsenet.shards import ShardReader

TTA_SEED = 20141016  # seed of the test-time augmentation draws (arXiv:1409.6070 v1's date)


def repeated_log_probabilities(
    network: torch.nn.Module,
    reader: ShardReader,
    field: tuple[int, int],
    augment: str,
    repeats: int,
    batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log of the mean class probabilities [N, K] over ``repeats`` passes, labels int64 [N]) for the
    N samples of ``reader``: the first pass undistorted, the others with augmentation ``augment``
    (module docstring)."""
    if len(reader) == 0:
        raise ShardError(reader.files[0].parent, "no test samples")
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
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    if not paths:
        raise ConfigError("no checkpoint to evaluate")
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
            raise CheckpointError(
                ckpt.path, "the run trained without augmentation, so there is nothing to repeat the test with"
            )
        size = batch_size or ckpt.config.eval_batch_size
        log_p, labels = repeated_log_probabilities(network, reader, field, ckpt.config.augment, repeats, size, dev)
        log_ps.append(log_p)
    totals = tally_of(_log_mean_exp(log_ps), labels, first.data["num_classes"])
    names = class_names(first.data)
    png = None
    if plot:
        png = (
            Path(confusion_png)
            if confusion_png is not None
            else first.path.with_name(f"eval-{first.path.stem}-confusion.png")
        )
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
        "per_class_error": {
            name: (None if np.isnan(e) else float(e)) for name, e in zip(names, totals.per_class_error())
        },
        "confusion_png": None if png is None else str(png),
        "repeats": repeats,
    }
