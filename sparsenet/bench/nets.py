"""The networks and training steps the cases of ``sparsenet bench`` time.

:data:`STEP_CASES` pairs each sparse network with its dense twin and the dataset it runs on;
:func:`build` makes a network reproducibly, :func:`step_fn` one training step of it on a batch,
:func:`shard_batch` a batch of real training samples. Importing this module loads spconv (through
``sparsenet.models``), so ``run_bench`` imports it only once the torch thread count is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sparsenet import models
from sparsenet.batch import SparseBatch, collate
from sparsenet.bench.common import Settings
from sparsenet.bench.data import Workspace
from sparsenet.config import TRAIN_SPLIT
from sparsenet.pipeline import dataset, inputs
from sparsenet.shards import ShardReader


def build(name: str, in_channels: int, num_classes: int, seed: int, **kwargs: Any) -> torch.nn.Module:
    """``models.build`` with a fixed seed, in training mode."""
    torch.manual_seed(seed)
    return models.build(name, in_channels=in_channels, num_classes=num_classes, **kwargs).train()


def sgd(network: torch.nn.Module) -> torch.optim.Optimizer:
    """Nesterov SGD as the training recipes use it (a small lr: the benchmarks only need finite weights)."""
    return torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)


def step_fn(
    network: torch.nn.Module, batch: SparseBatch, optimizer: torch.optim.Optimizer | None = None
) -> Callable[[], None]:
    """One training step of ``network`` on ``batch``: input conversion (as training does it), forward,
    cross-entropy, backward, optimizer step (default: :func:`sgd`)."""
    optimizer = optimizer or sgd(network)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(*inputs(network, batch)), batch.labels).backward()
        optimizer.step()

    return step


def shard_batch(folder: Path, field: tuple[int, int], size: int, seed: int) -> tuple[SparseBatch, int]:
    """(``size`` random training samples of the shards in ``folder`` placed into ``field``, number of classes)."""
    data = dataset(ShardReader(folder / TRAIN_SPLIT), field)
    chosen = np.random.default_rng(seed).choice(len(data), size=min(size, len(data)), replace=False)
    return collate([data[int(i)] for i in chosen], field), data.reader.meta.num_classes


@dataclass(frozen=True)
class StepCase:
    """A sparse network and its dense twin, timed on one batch of ``dataset``."""

    name: str
    dataset: str  # "assamese", "mnist" or "masked-mnist"
    sparse: str
    dense: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: float | None = None  # issue 5's speed-up target (dense time / sparse time)

    @property
    def label(self) -> str:
        return f"{self.name} vs {self.dense}"

    def batch(self, workspace: Workspace, settings: Settings) -> tuple[SparseBatch, int]:
        """(a batch of the dataset's training shards in the network's field, number of classes)."""
        field = build(self.sparse, 1, 10, settings.seed, **self.kwargs).input_size()
        return shard_batch(workspace.shards(self.dataset), field, settings.batch_size, settings.seed)


STEP_CASES = (
    StepCase("sparse VGG (VGGplus)", "assamese", "vgg", "vgg-dense", target=4.0),
    StepCase("DeepCNet(5, 10)", "mnist", "deepcnet", "deepcnet-dense", {"l": 5, "k": 10}, 15.0),
    StepCase("DeepCNet(5, 60)", "mnist", "deepcnet", "deepcnet-dense", {"l": 5, "k": 60}),
)
