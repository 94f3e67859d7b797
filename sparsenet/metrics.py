"""Classification metrics and plots: top-k errors, per-class errors, confusion matrix, curves.

:class:`Tally` accumulates what an epoch needs (loss sum, top-1/top-5 hits, a confusion
matrix) from logits batch by batch; its counts are one int64/float64 vector, so distributed
ranks add theirs with a single ``all_reduce``. Plots use matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [B]: label among the ``k`` highest of ``logits`` [B, K] (k is capped at K)."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1)


@dataclass
class Tally:
    """Running totals over batches for a ``num_classes``-way classifier."""

    num_classes: int
    loss_sum: float = 0.0
    top5_hits: int = 0
    confusion: np.ndarray = field(init=False)  # int64 [K, K]: rows true class, columns predicted

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: float = 0.0) -> None:
        """Count a batch: ``logits`` [B, K], ``labels`` int64 [B]; ``loss_sum`` summed over it."""
        logits, labels = logits.detach().cpu(), labels.cpu()
        self.loss_sum += float(loss_sum)
        self.top5_hits += int(topk_hits(logits, labels, 5).sum())
        np.add.at(self.confusion, (labels.numpy(), logits.argmax(1).numpy()), 1)

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    def to_vector(self) -> torch.Tensor:
        """float64 [2 + K*K]: (loss_sum, top5_hits, confusion...), for ``all_reduce``."""
        head = torch.tensor([self.loss_sum, float(self.top5_hits)], dtype=torch.float64)
        return torch.cat([head, torch.from_numpy(self.confusion.reshape(-1).astype(np.float64))])

    @classmethod
    def from_vector(cls, num_classes: int, vector: torch.Tensor) -> Tally:
        tally = cls(num_classes, float(vector[0]), int(round(float(vector[1]))))
        tally.confusion = vector[2:].round().long().numpy().reshape(num_classes, num_classes)
        return tally

    @property
    def top1_error(self) -> float:
        return 1.0 - float(np.trace(self.confusion)) / max(self.count, 1)

    @property
    def top5_error(self) -> float:
        return 1.0 - self.top5_hits / max(self.count, 1)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    def per_class_error(self) -> np.ndarray:
        """float64 [K]: error rate per true class (NaN for a class without samples)."""
        totals = self.confusion.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, 1.0 - np.diag(self.confusion) / totals, np.nan)


def printable(text: str) -> str:
    """``text`` with undecodable bytes of a path (``os.fsdecode``'s surrogate escapes) shown as U+FFFD,
    so that fonts and UTF-8 files can take it; other text is unchanged."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no file name produced
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> None:
    """Write a figure atomically (temporary file + rename) and close it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    pyplot().close(fig)


def plot_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Loss and top-1 error per epoch (train and test) from metrics.jsonl rows."""
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "test"):
        left.plot(epochs, [row[f"{split}_loss"] for row in history], marker=".", label=split)
        right.plot(epochs, [100 * row[f"{split}_error"] for row in history], marker=".", label=split)
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    right.set(xlabel="epoch", ylabel="top-1 error (%)", title="error", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(
    confusion: np.ndarray, path: str | os.PathLike, class_names: Sequence[str] = (), title: str = ""
) -> None:
    """Row-normalised confusion matrix [K, K] as an image; class names as ticks up to 40 classes."""
    plt = pyplot()
    k = confusion.shape[0]
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = min(4 + k / 12, 16)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    title = printable(title) or f"confusion matrix ({confusion.sum()} samples)"  # titles often name a path
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    if class_names and k <= 40:
        names = [printable(name) for name in class_names]
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
