"""One training epoch: the sample order, the pass over the training split, and the test pass.

Everything random in epoch e derives from ``(seed, e)`` (see :mod:`sparsenet.train`): the
global batches (:func:`epoch_batches`), each sample's augmentation and, reseeded per rank,
torch's generator for dropout. :func:`run_epoch` returns the epoch's metrics row. A loss or
weights that stop being finite end the run with a :class:`~sparsenet.errors.RunError` naming
the epoch and step. :func:`check_first_batch` tries the network on a batch before a run starts.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sparsenet import distributed
from sparsenet.batch import ShardDataset
from sparsenet.config import TrainConfig
from sparsenet.distributed import Rank
from sparsenet.errors import ConfigError, RunError
from sparsenet.metrics import Tally
from sparsenet.optim import lr_at
from sparsenet.pipeline import in_batches, inputs, loader, tally


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The global batches of ``epoch``: a permutation of ``range(n)`` from ``(seed, epoch)``, cut into
    ``batch_size`` pieces; an incomplete last piece is dropped unless it is the only one."""
    order = np.random.default_rng((seed, epoch)).permutation(n).tolist()
    full = n // batch_size * batch_size
    return in_batches(order[: full or n], batch_size)


def torch_seed(*key: int) -> int:
    """A seed for torch's generator from integers ``key`` (numpy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


class Stopwatch:
    """Seconds spent per stage: ``lap(stage)`` books the time since the previous lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def check_first_batch(config: TrainConfig, network: torch.nn.Module, train_set: ShardDataset, procs: int) -> None:
    """A training-mode forward pass of ``network`` (on the CPU, without gradients; its state is
    restored) on the first batch a process of ``procs`` will train on: the smallest share with
    per-process BatchNorm. A batch the network cannot take raises :class:`ConfigError` now, not
    after the run folder was made."""
    batch = epoch_batches(len(train_set), config.batch_size, config.seed, 0)[0]
    if not (procs > 1 and config.sync_batchnorm):
        batch = distributed.share(batch, 0, procs)
    state = copy.deepcopy(network.state_dict())  # the forward pass moves BatchNorm's running statistics
    network.train()
    try:
        with torch.no_grad():
            network(*inputs(network, next(iter(loader(train_set, [batch])))))
    except ValueError as err:
        if "Expected more than 1 value per channel" not in str(err):
            raise
        raise ConfigError(
            f"batch size {len(batch)} leaves BatchNorm one value per channel; use >= 2"
            + (
                f" per process (--batch-size >= {2 * procs} with --procs {procs})"
                if len(batch) < config.batch_size
                else ""
            )
        ) from None
    finally:
        network.load_state_dict(state)


def _diverged(config: TrainConfig, what: str, epoch: int, where: str) -> RunError:
    return RunError(config.run_dir, f"{what} at epoch {epoch + 1}{where}; lower --lr (it was {config.lr:g})")


def _log(message: str) -> None:
    """``message`` on standard error (a rank's log) and, if that is another stream, the user's console."""
    for stream in dict.fromkeys((sys.stderr, distributed.console())):
        print(message, file=stream, flush=True)


@dataclass
class EpochContext:
    """What an epoch works on; one per training process."""

    config: TrainConfig
    rank: Rank
    network: torch.nn.Module  # the bare network: evaluated, saved
    model: torch.nn.Module  # what the training forward pass calls: the network or its DDP wrapper
    optimizer: torch.optim.Optimizer
    train_set: ShardDataset
    test_set: ShardDataset
    test_batches: list[list[int]]  # this rank's share of the test split, in eval batches
    device: torch.device


def run_epoch(ctx: EpochContext, epoch: int) -> tuple[dict[str, Any], Tally]:
    """Train epoch ``epoch`` (0-based) and test; returns (its metrics.jsonl row, the test tally summed over ranks)."""
    config, rank, optimizer, train_set, test_set = ctx.config, ctx.rank, ctx.optimizer, ctx.train_set, ctx.test_set
    lr = lr_at(config, epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    torch.manual_seed(torch_seed(config.seed, epoch, rank.rank))
    k = test_set.reader.meta.num_classes
    train, profile, samples = Tally(k), {}, 0
    start = time.perf_counter()
    for p in range(
        config.passes_per_epoch
    ):  # pass p of epoch e draws its order and augmentation from pass number e·P + p
        number = epoch * config.passes_per_epoch + p
        train_set.set_epoch(number)
        batches = epoch_batches(len(train_set), config.batch_size, config.seed, number)
        desc = f"epoch {epoch + 1}/{config.epochs}" + (f" pass {p + 1}" if config.passes_per_epoch > 1 else "")
        tallied, seconds = train_epoch(ctx, batches, desc, epoch)
        train = Tally.from_vector(k, train.to_vector() + tallied.to_vector())
        profile = {stage: profile.get(stage, 0.0) + s for stage, s in seconds.items()}
        samples += sum(len(b) for b in batches)
    train_seconds = time.perf_counter() - start
    distributed.average_buffers(ctx.network)
    test = tally(ctx.network, loader(test_set, ctx.test_batches, config.loader_workers), ctx.device, k)
    train, test = (Tally.from_vector(k, distributed.all_sum(t.to_vector())) for t in (train, test))
    if not (math.isfinite(test.loss) and all(torch.isfinite(p).all() for p in ctx.network.state_dict().values())):
        raise _diverged(config, "the weights became non-finite", epoch, " (after its last step)")
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": train.loss,
        "train_error": train.top1_error,
        "test_loss": test.loss,
        "test_error": test.top1_error,
        "test_top5_error": test.top5_error,
        "seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "samples_per_s": samples / train_seconds,
        "procs": rank.world,
        "profile": profile,
    }
    if rank.main:
        _log(
            f"epoch {epoch + 1}/{config.epochs}  lr {lr:.4g}  "
            f"train loss {train.loss:.4f} error {100 * train.top1_error:.2f}%  "
            f"test loss {test.loss:.4f} error {100 * test.top1_error:.2f}% (top-5 {100 * test.top5_error:.2f}%)  "
            f"{row['seconds']:.1f}s  {row['samples_per_s']:.0f} samples/s"
        )
    return row, test


def train_epoch(
    ctx: EpochContext, batches: list[list[int]], desc: str = "", epoch: int = 0
) -> tuple[Tally, dict[str, float]]:
    """One pass over this rank's share of the global ``batches`` (index lists) of epoch ``epoch``;
    returns (train tally, seconds per stage: ``data`` (waiting for batches), ``forward``,
    ``backward``, ``step``, and without loader workers ``data``'s parts ``load``, ``augment``,
    ``collate``). A loss that is not finite raises :class:`RunError` before the step."""
    from tqdm import tqdm

    model, network, optimizer, train_set, rank = ctx.model, ctx.network, ctx.optimizer, ctx.train_set, ctx.rank
    workers = ctx.config.loader_workers
    model.train()
    totals = Tally(train_set.reader.meta.num_classes)
    watch = Stopwatch()
    before = dict(train_set.seconds)
    shares = [distributed.share(batch, rank.rank, rank.world) for batch in batches]
    shown = distributed.console()
    bar = tqdm(total=len(batches), desc=desc, leave=False, file=shown, disable=not (rank.main and shown.isatty()))
    for step, (batch, global_size) in enumerate(zip(loader(train_set, shares, workers), map(len, batches)), 1):
        batch = batch.to(ctx.device)
        watch.lap("data")  # load, augment, collate (waiting for them, with loader workers)
        logits = model(*inputs(network, batch))
        loss_sum = F.cross_entropy(logits, batch.labels, reduction="sum")
        loss_value = loss_sum.item()
        if not math.isfinite(loss_value):
            raise _diverged(ctx.config, f"loss became {loss_value}", epoch, f", step {step}")
        watch.lap("forward")
        optimizer.zero_grad(set_to_none=True)
        (loss_sum * (rank.world / global_size)).backward()  # DDP averages over ranks: the global-batch mean
        watch.lap("backward")
        optimizer.step()
        totals.add(logits, batch.labels, loss_value)
        watch.lap("step")
        bar.update()
        bar.set_postfix(loss=f"{loss_value / len(batch.labels):.3f}", refresh=False)
    bar.close()
    if workers == 0:  # the loader ran here: split its time into reading, augmenting and the rest (collate)
        load, augment = (train_set.seconds[stage] - before[stage] for stage in ("load", "augment"))
        watch.seconds.update(load=load, augment=augment, collate=watch.seconds["data"] - load - augment)
    return totals, watch.seconds
