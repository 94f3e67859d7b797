"""The lr schedules against their formulas, and every optimizer setting against steps computed by hand.

The hand-written updates follow the documented algorithms (torch.optim's SGD with coupled weight
decay and optional Nesterov momentum; Adam of Kingma & Ba with coupled weight decay), in numpy float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sparsenet.config import TrainConfig
from sparsenet.optim import lr_at, make_optimizer


def config(**values) -> TrainConfig:
    return TrainConfig(data="d", out="o", model="m", **values)


@pytest.mark.parametrize("lr,decay", [(0.1, 0.05), (0.3, 0.5), (1e-3, 0.0)])
def test_exp_schedule_is_lr_times_exp_of_minus_decay_epoch(lr, decay):
    c = config(lr=lr, lr_decay=decay, lr_schedule="exp", epochs=30)
    for epoch in range(30):
        assert lr_at(c, epoch) == pytest.approx(lr * math.exp(-decay * epoch), rel=1e-12)
    if decay:
        assert lr_at(c, 10) < lr_at(c, 9)


@pytest.mark.parametrize("epochs", [1, 2, 5, 12])
def test_cosine_schedule_falls_from_lr_to_zero_over_the_run(epochs):
    c = config(lr=0.2, lr_schedule="cosine", epochs=epochs)
    for epoch in range(epochs):
        assert lr_at(c, epoch) == pytest.approx(0.2 * (1 + math.cos(math.pi * epoch / epochs)) / 2, rel=1e-12)
    assert lr_at(c, 0) == pytest.approx(0.2)  # a one-epoch run trains at the full lr, not at 0
    assert all(lr_at(c, e) > 0 for e in range(epochs))
    assert lr_at(c, epochs) == pytest.approx(0.0, abs=1e-12)


def test_cosine_halfway_and_constant():
    assert lr_at(config(lr=0.4, lr_schedule="cosine", epochs=10), 5) == pytest.approx(0.2)
    c = config(lr=0.07, lr_schedule="constant", lr_decay=0.5, epochs=9)
    assert [lr_at(c, e) for e in range(9)] == [0.07] * 9


CURVATURE = np.array([0.5, 2.0, -1.0, 3.0])
START = np.array([1.0, -2.0, 0.5, 3.0])


def steps_of(optimizer_config: TrainConfig, steps: int) -> np.ndarray:
    """Weights after ``steps`` steps of ``make_optimizer`` on loss 0.5·sum(c·w²) (gradient c·w)."""
    w = torch.nn.Parameter(torch.tensor(START, dtype=torch.float64))
    opt = make_optimizer(optimizer_config, [w])
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (torch.tensor(CURVATURE) * w * w).sum()).backward()
        opt.step()
    return w.detach().numpy()


def sgd_by_hand(lr: float, momentum: float, nesterov: bool, decay: float, steps: int) -> np.ndarray:
    w, buf = START.copy(), None
    for _ in range(steps):
        d = CURVATURE * w + decay * w
        buf = d.copy() if buf is None else momentum * buf + d
        w = w - lr * (d + momentum * buf if nesterov else buf)
    return w


def adam_by_hand(lr: float, beta1: float, decay: float, steps: int, beta2: float = 0.999, eps: float = 1e-8):
    w, m, v = START.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, steps + 1):
        g = CURVATURE * w + decay * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return w


@pytest.mark.parametrize(
    "momentum,nesterov,decay",
    [(0.9, True, 0.01), (0.9, False, 0.01), (0.5, True, 0.2), (0.5, False, 0.0), (0.0, True, 0.1), (0.0, False, 0.0)],
)
def test_sgd_steps_match_the_hand_computed_ones(momentum, nesterov, decay):
    c = config(optimizer="sgd", lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=decay)
    want = sgd_by_hand(0.05, momentum, nesterov and momentum > 0, decay, 3)
    np.testing.assert_allclose(steps_of(c, 3), want, rtol=1e-12, atol=1e-14)


def test_each_sgd_setting_changes_the_steps():
    """Weight decay, momentum and Nesterov each move the weights differently after 2 steps."""
    base = dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)
    reference = steps_of(config(**base), 2)
    for change in (dict(weight_decay=0.0), dict(nesterov=False), dict(momentum=0.5)):
        assert np.abs(steps_of(config(**{**base, **change}), 2) - reference).max() > 1e-4, change


@pytest.mark.parametrize("beta1,decay", [(0.9, 0.0), (0.8, 0.05), (0.5, 0.3)])
def test_adam_steps_match_the_hand_computed_ones(beta1, decay):
    c = config(optimizer="adam", lr=0.01, momentum=beta1, weight_decay=decay)
    np.testing.assert_allclose(steps_of(c, 4), adam_by_hand(0.01, beta1, decay, 4), rtol=1e-10, atol=1e-12)


def test_optimizers_start_at_the_configured_lr():
    w = torch.nn.Parameter(torch.zeros(2))
    for name in ("sgd", "adam"):
        opt = make_optimizer(config(optimizer=name, lr=0.0123), [w])
        assert [group["lr"] for group in opt.param_groups] == [0.0123]
