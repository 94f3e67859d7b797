"""One training epoch against a step computed here: the epoch's lr from its schedule, the mean
cross-entropy over the global batch (no label smoothing), one plain SGD step, and the metrics row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import write_digit_shards
from torch import nn

from sparsenet import checkpoint as ckpt_io
from sparsenet import train as training
from sparsenet.config import TrainConfig
from sparsenet.distributed import Rank
from sparsenet.epoch import EpochContext, check_first_batch, epoch_batches, run_epoch
from sparsenet.errors import ConfigError, RunError
from sparsenet.optim import make_optimizer
from sparsenet.pipeline import build_network, dataset, in_batches
from sparsenet.shards import ShardReader

FIELD = 12


class Flat(nn.Module):
    """A linear classifier of the dense field: logits [B, K] from x [B, 1, H, W]."""

    input_kind = "dense"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(FIELD * FIELD, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_digit_shards(tmp_path_factory.mktemp("epoch"), field=FIELD, train=9, test=6)


def images(split: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [N, 1, H, W] with every site's feature at (y, x), labels [N]) of a split, built here."""
    reader = ShardReader(split)
    x = torch.zeros(len(reader), 1, FIELD, FIELD)
    for i, sample in enumerate(reader):
        x[i, 0, sample.coords[:, 0], sample.coords[:, 1]] = torch.from_numpy(sample.features[:, 0])
    return x, torch.tensor([sample.label for sample in reader])


def mean_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log softmax(logits)[label], averaged over the samples, written out."""
    picked = logits[torch.arange(len(labels)), labels]
    return (torch.logsumexp(logits, dim=1) - picked).mean()


def epoch_context(config: TrainConfig, network: nn.Module, digits: Path, test_batches: list[list[int]]) -> EpochContext:
    """A one-process context training ``network`` with ``config``'s optimizer on the digits' splits."""
    train_set = dataset(ShardReader(digits / "train"), (FIELD, FIELD))
    test_set = dataset(ShardReader(digits / "test"), (FIELD, FIELD))
    optimizer = make_optimizer(config, network.parameters())
    return EpochContext(
        config, Rank(), network, network, optimizer, train_set, test_set, test_batches, torch.device("cpu")
    )


def test_an_epoch_takes_one_plain_sgd_step_on_the_mean_loss_at_the_epochs_lr(digits, tmp_path):
    config = TrainConfig(
        data=str(digits),
        out=str(tmp_path),
        model="flat",
        epochs=4,
        batch_size=9,  # the whole training split: one step
        optimizer="sgd",
        lr=0.8,
        lr_schedule="exp",
        lr_decay=0.3,
        momentum=0.0,
        weight_decay=0.0,
        eval_batch_size=4,
    )
    network = Flat()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    ctx = epoch_context(config, network, digits, in_batches(range(6), 4))
    optimizer = ctx.optimizer
    row, test = run_epoch(ctx, 2)

    x, labels = images(digits / "train")
    reference = Flat()
    reference.load_state_dict(before)
    logits = reference(x)
    loss = mean_cross_entropy(logits, labels)
    loss.backward()
    lr = 0.8 * math.exp(-0.3 * 2)
    assert row["lr"] == pytest.approx(lr) and optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    with torch.no_grad():
        for name, parameter in reference.named_parameters():
            torch.testing.assert_close(
                network.state_dict()[name], parameter - lr * parameter.grad, rtol=1e-5, atol=1e-6
            )
    assert row["train_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert row["train_error"] == pytest.approx((logits.argmax(1) != labels).float().mean().item())

    x_test, labels_test = images(digits / "test")
    with torch.no_grad():
        logits_test = network(x_test)
    assert row["test_loss"] == pytest.approx(mean_cross_entropy(logits_test, labels_test).item(), rel=1e-5)
    assert row["test_error"] == pytest.approx((logits_test.argmax(1) != labels_test).float().mean().item())
    assert test.count == 6 and row["epoch"] == 3 and row["procs"] == 1


def test_an_epoch_of_three_passes_takes_three_steps_at_one_lr_and_tallies_every_pass(digits, tmp_path):
    config = TrainConfig(
        data=str(digits),
        out=str(tmp_path),
        model="flat",
        epochs=4,
        passes_per_epoch=3,
        batch_size=9,  # the whole training split: one step per pass
        optimizer="sgd",
        lr=0.5,
        lr_decay=0.3,
        momentum=0.0,
        weight_decay=0.0,
    )
    network = Flat()
    reference = Flat()
    reference.load_state_dict(network.state_dict())
    row, _ = run_epoch(epoch_context(config, network, digits, in_batches(range(6), 6)), 1)

    x, labels = images(digits / "train")
    lr = 0.5 * math.exp(-0.3)  # epoch 1's lr for all three passes
    losses, wrong = [], 0
    for _ in range(3):
        reference.zero_grad()
        logits = reference(x)
        loss = mean_cross_entropy(logits, labels)
        loss.backward()
        losses.append(loss.item())
        wrong += int((logits.argmax(1) != labels).sum())
        with torch.no_grad():
            for parameter in reference.parameters():
                parameter -= lr * parameter.grad
    for name, parameter in reference.named_parameters():
        torch.testing.assert_close(network.state_dict()[name], parameter.detach(), rtol=1e-5, atol=1e-6)
    assert row["lr"] == pytest.approx(lr)
    assert row["train_loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert row["train_error"] == pytest.approx(wrong / 27)
    assert row["samples_per_s"] == pytest.approx(27 / row["train_seconds"])


def test_the_passes_of_an_epoch_draw_the_orders_of_consecutive_pass_numbers(digits, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(
        "sparsenet.epoch.epoch_batches", lambda n, size, seed, number: drawn.append(number) or [list(range(n))]
    )
    config = TrainConfig(data=str(digits), out=str(tmp_path), model="flat", passes_per_epoch=4, batch_size=9)
    ctx = epoch_context(config, Flat(), digits, [[0]])
    run_epoch(ctx, 2)
    assert drawn == [8, 9, 10, 11] and ctx.train_set.epoch == 11


def test_epoch_batches_are_a_seeded_permutation_without_a_short_last_batch():
    batches = epoch_batches(10, 4, seed=1, epoch=0)
    assert [len(b) for b in batches] == [4, 4]
    assert len(set(sum(batches, []))) == 8 and set(sum(batches, [])) <= set(range(10))
    assert epoch_batches(10, 4, seed=1, epoch=0) == batches
    assert epoch_batches(10, 4, seed=1, epoch=1) != batches and epoch_batches(10, 4, seed=2, epoch=0) != batches
    assert sorted(sum(epoch_batches(3, 8, seed=0, epoch=0), [])) == [0, 1, 2]  # one short batch is kept
    orders = np.array([sum(epoch_batches(6, 6, seed=0, epoch=e), []) for e in range(200)])
    assert (np.bincount(orders[:, 0], minlength=6) > 15).all()  # every sample comes first now and then


@pytest.fixture(scope="module")
def digit_shards(tmp_path_factory):
    return write_digit_shards(tmp_path_factory.mktemp("epoch") / "digits")


def config(data, out, **changes) -> TrainConfig:
    values = dict(model="vgg-plain", data=str(data), out=str(out), epochs=1, batch_size=4, procs=1, seed=1)
    return TrainConfig.from_dict({**values, **changes})


def strict_json(line: str):
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def test_a_diverged_run_stops_naming_epoch_and_step(digit_shards, tmp_path):
    run = tmp_path / "run"
    diverging = config(
        digit_shards, run, model="deepcnet", model_kwargs={"l": 2, "k": 8}, epochs=3, batch_size=6, lr=1e10
    )
    with pytest.raises(RunError, match=r"loss became (nan|inf) at epoch \d+, step \d+; lower --lr \(it was 1e\+10\)"):
        training.train(diverging)
    for saved in run.glob("*.pt"):  # the epoch-0 checkpoint; no best.pt of NaN weights
        state = ckpt_io.load(saved)
        assert all(torch.isfinite(v).all() for v in state.model.values()), saved
    for line in (run / "metrics.jsonl").read_text().splitlines():
        strict_json(line)


def test_batch_size_one_with_batchnorm_is_refused_before_the_run_folder(digit_shards, tmp_path):
    with pytest.raises(ConfigError, match=r"^batch size 1 leaves BatchNorm one value per channel; use >= 2$"):
        training.train(config(digit_shards, tmp_path / "run", batch_size=1))
    assert not (tmp_path / "run").exists()


def test_the_first_batch_check_leaves_the_network_as_it_was(digit_shards, tmp_path):
    cfg = config(digit_shards, tmp_path / "run")
    reader = ShardReader(digit_shards / "train")
    torch.manual_seed(0)
    network, field = build_network(cfg, ckpt_io.data_info(reader.meta))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    check_first_batch(cfg, network, dataset(reader, field), procs=1)
    assert all(torch.equal(network.state_dict()[k], v) for k, v in before.items())
    assert any("running_mean" in k for k in before)  # BatchNorm statistics were at stake
