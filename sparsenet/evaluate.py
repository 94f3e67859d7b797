"""The test error of a checkpoint or an ensemble: ``sparsenet eval``.

``evaluate("runs/assamese-vgg/best.pt", "data/assamese")`` rebuilds the network recorded in
the checkpoint, runs it (eval mode; no augmentation unless ``repeats > 1``) over the test split and returns the
top-1 and top-5 error, the loss, per-class errors, and writes a confusion-matrix PNG.

``repeats=R`` adds test-time augmentation (Graham's repeated testing): the prediction is the mean
of the class probabilities over the plain test sample and ``R - 1`` copies distorted by the run's
own training augmentation, copy ``r`` drawn from ``(TTA_SEED, r, index)``; the result is
deterministic. Several checkpoints make an ensemble: the mean of the members' probabilities.

``compare(a, b)`` (``sparsenet compare``) scores two checkpoints on the same test samples and asks
whether they differ by more than chance with McNemar's exact test on the samples where they disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsenet.checkpoint import Checkpoint, check_data, class_names
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


def _test_log_probabilities(
    paths: Sequence[str | os.PathLike],
    data: str | os.PathLike | None,
    device: str,
    batch_size: int | None,
    repeats: int,
) -> tuple[list[torch.Tensor], torch.Tensor, list[Checkpoint], Path]:
    """(each checkpoint's log class probabilities [N, K] on the test split, labels int64 [N], the loaded
    checkpoints, the split folder); ``data`` defaults to the first run's, and every checkpoint must fit it."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    if not paths:
        raise ConfigError("no checkpoint to evaluate")
    dev = resolve_device(device)
    members = [load_network(path, dev) for path in paths]
    path = Path(data if data is not None else members[0][2].config.data)
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
    return log_ps, labels, [ckpt for _, _, ckpt in members], split


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
    paths = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    log_ps, labels, ckpts, split = _test_log_probabilities(paths, data, device, batch_size, repeats)
    first = ckpts[0]
    totals = tally_of(_log_mean_exp(log_ps), labels, first.data["num_classes"])
    names = class_names(first.data)
    png = None
    if plot:
        png = (
            Path(confusion_png)
            if confusion_png is not None
            else first.path.with_name(f"eval-{first.path.stem}-confusion.png")
        )
        models = " + ".join(ckpt.config.model for ckpt in ckpts)
        plot_confusion(totals.confusion, png, names, title=f"{models} on {split} (epoch {first.epoch})")
    return {
        "checkpoint": str(first.path),
        "checkpoints": [str(ckpt.path) for ckpt in ckpts],
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


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test of two classifiers on the same N samples (bool [N] each: right or not).

    Only the samples where they disagree count: under "equally good" the ``only_a`` of them that A
    gets right are Binomial(only_a + only_b, 1/2). Returns ``only_a``, ``only_b`` and the two-sided
    ``p_value`` (1 when they never disagree).
    """
    from scipy.stats import binomtest

    a_right, b_right = np.asarray(a_right, bool), np.asarray(b_right, bool)
    if a_right.shape != b_right.shape:
        raise ConfigError(f"the two classifiers were scored on {a_right.shape} and {b_right.shape} samples")
    only_a, only_b = int((a_right & ~b_right).sum()), int((b_right & ~a_right).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a": only_a, "only_b": only_b, "p_value": float(p)}


def compare(
    checkpoint_a: str | os.PathLike,
    checkpoint_b: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """Two checkpoints on the same test split, paired: each one's ``top1_error`` [A, B], the samples
    only A (``only_a``) or only B (``only_b``) gets right, and McNemar's exact two-sided ``p_value``
    (:func:`mcnemar`); also ``checkpoints``, ``epochs``, ``data``, ``samples``, ``repeats``. Paired
    samples tell two networks apart with fewer test samples than two independent error rates."""
    log_ps, labels, ckpts, split = _test_log_probabilities(
        [checkpoint_a, checkpoint_b], data, device, batch_size, repeats
    )
    right = [(log_p.argmax(1) == labels).numpy() for log_p in log_ps]
    return {
        "checkpoints": [str(ckpt.path) for ckpt in ckpts],
        "epochs": [ckpt.epoch for ckpt in ckpts],
        "data": str(split),
        "samples": len(labels),
        "repeats": repeats,
        "top1_error": [float(1 - r.mean()) for r in right],
        **mcnemar(*right),
    }
