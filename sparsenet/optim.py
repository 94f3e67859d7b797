"""The optimizer and the learning-rate schedule of a :class:`~sparsenet.config.TrainConfig`.

Schedules (``lr_schedule``): ``exp`` is Graham's lr·exp(−d·epoch) (arXiv:1409.6070),
``cosine`` falls from lr to 0 over ``epochs`` (lr·(1 + cos(π·epoch/epochs))/2), ``constant``
keeps lr. Optimizers: SGD with momentum (Nesterov where ``nesterov`` and momentum > 0) and
coupled weight decay, or Adam with betas (momentum, 0.999).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from sparsenet.config import TrainConfig


def lr_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate during ``epoch`` (0-based): exp is Graham's lr·exp(−d·epoch)."""
    if config.lr_schedule == "exp":
        return config.lr * math.exp(-config.lr_decay * epoch)
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    return config.lr


def make_optimizer(config: TrainConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer ``config`` asks for, over ``params``, at the learning rate of epoch 0."""
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay)
    nesterov = config.nesterov and config.momentum > 0
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, nesterov=nesterov, weight_decay=config.weight_decay
    )
