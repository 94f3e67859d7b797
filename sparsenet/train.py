"""The training loop: ``train(config) -> run_dir`` and ``resume(run_dir) -> run_dir``.

One run folder holds ``config.json`` (config, data, versions), ``metrics.jsonl`` (one row per
epoch), ``curves.png``, ``confusion.png`` (test set, best epoch so far), ``checkpoint.pt``
(after every epoch, the initial weights as epoch 0) and ``best.pt`` (lowest test error).

Resume and determinism
    Everything random in epoch e is derived from ``(seed, e)``: the sample order
    (``numpy.random.default_rng((seed, e))``), each sample's augmentation (``(seed, e, index)``,
    see :class:`~sparsenet.batch.ShardDataset`) and torch's generator for dropout (reseeded at
    every epoch from ``(seed, e, rank)``). A checkpoint after epoch e therefore holds all the
    state there is (weights, BatchNorm statistics, optimizer moments; the learning rate is a
    function of e), and ``resume`` after a kill at any moment repeats the lost epoch exactly.
    Files are replaced atomically (temporary file + ``os.replace``), the checkpoint first;
    metrics.jsonl is rewritten from the checkpoint's history, so it never holds an epoch the
    checkpoint lacks. On the CPU with the same thread count and library versions a resumed run
    is bit-identical to an uninterrupted one (``tests/test_train.py`` checks it). Sources of
    nondeterminism left: a different torch thread count or CPU (BLAS blocking changes float
    rounding), CUDA kernels (scatter-adds with atomics in spconv and torch), and the process
    count: ``--procs N`` splits each batch, which with per-rank BatchNorm (the default) changes the
    normalisation statistics, so results differ beyond float rounding; with ``sync_batchnorm`` only
    the order of float sums changes. ``procs="auto"`` is recorded as the number it resolved to.

Data parallelism
    Under ``torchrun`` or with ``procs > 1`` every rank takes its share of each global batch
    (:mod:`sparsenet.distributed`); rank 0 alone writes files. ``procs`` and ``device`` may
    change on resume; the global batch does not.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from sparsenet import distributed
from sparsenet.batch import ShardDataset
from sparsenet.checkpoint import (
    Checkpoint,
    check_data,
    class_names,
    data_info,
    load,
    load_weights,
    save_atomic,
    versions,
)
from sparsenet.config import TEST_SPLIT, TRAIN_SPLIT, TrainConfig, split_reader
from sparsenet.distributed import Rank
from sparsenet.epoch import EpochContext, run_epoch
from sparsenet.metrics import Tally, plot_confusion, plot_curves
from sparsenet.optim import make_optimizer
from sparsenet.pipeline import build_network, dataset, in_batches, resolve_device
from sparsenet.runs import BEST, CHECKPOINT, CONFIG_JSON, CONFUSION, CURVES, METRICS
from sparsenet.shards import ShardError

RESUMABLE = ("epochs", "procs", "device", "loader_workers", "sync_batchnorm")  # may change on resume
TIMING_KEYS = ("seconds", "train_seconds", "samples_per_s", "profile")  # differ between identical runs


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``run_dir`` holds the last finished epoch, ready for :func:`resume`."""

    def __init__(self, run_dir: Path):
        super().__init__(f"training interrupted; resume from {run_dir}")
        self.run_dir = run_dir


def train(config: TrainConfig) -> Path:
    """Train a new run in ``config.out``; returns the run folder. See the module docstring."""
    if (config.run_dir / CHECKPOINT).exists():
        raise ValueError(
            f"{config.run_dir} already holds a run; continue it with --resume {config.run_dir} or choose another --out"
        )
    return _launch(config, resume=False)


def resume(run_dir: str | Path, **changes: Any) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint; ``changes`` may set only :data:`RESUMABLE` fields."""
    run_dir = Path(run_dir)
    refused = sorted(set(changes) - set(RESUMABLE))
    if refused:
        raise ValueError(f"cannot change {', '.join(refused)} when resuming; only {', '.join(RESUMABLE)} may change")
    ckpt = load(run_dir / CHECKPOINT)
    config = ckpt.config.replace(out=str(run_dir), **{k: v for k, v in changes.items() if v is not None})
    if config.lr_schedule == "cosine" and config.epochs != ckpt.config.epochs:
        raise ValueError(
            f"{ckpt.path}: the cosine schedule is fitted to {ckpt.config.epochs} epochs; "
            "changing --epochs on resume would make the learning rate jump"
        )
    if config.epochs < ckpt.epoch:
        raise ValueError(f"{ckpt.path} is already at epoch {ckpt.epoch}; --epochs {config.epochs} would undo training")
    return _launch(config, resume=True)


def _launch(config: TrainConfig, resume: bool) -> Path:
    rank = Rank.from_env()
    procs = (
        distributed.resolve_procs(config.procs, resolve_device(config.device), config.batch_size)
        if rank.world == 1
        else 1
    )
    if rank.world == 1 and config.procs == "auto":
        config = config.replace(procs=procs)  # config.json and checkpoints record the count used: it shapes BatchNorm
    if procs > 1 and not config.sync_batchnorm and config.batch_size // procs < 2:
        raise ValueError(
            f"--procs {procs} leaves a process {config.batch_size // procs} sample(s) of a batch of "
            f"{config.batch_size}; per-rank BatchNorm needs at least 2 (use fewer processes or --sync-batchnorm)"
        )
    try:
        if procs > 1:
            _setup(config, Rank())  # report bad data or models here, not from a child
            payload = {"config": config.to_dict(), "resume": resume, "command": sys.argv}
            distributed.spawn("sparsenet.train:run_rank", procs, json.dumps(payload))
        else:
            _run(config, rank, resume, sys.argv)
    except KeyboardInterrupt:
        raise Interrupted(config.run_dir) from None
    return config.run_dir


def run_rank(payload: str) -> torch.nn.Module:
    """Entry point of a rank started by :func:`sparsenet.distributed.spawn`: ``payload`` is
    ``{"config": {...}, "resume": bool, "command": [...]}`` as JSON. Returns this rank's trained network; exits
    quietly with status 130 on Ctrl-C."""
    torch.set_num_threads(1)
    values = json.loads(payload)
    try:
        return _run(TrainConfig.from_dict(values["config"]), Rank.from_env(), values["resume"], values["command"])
    except KeyboardInterrupt:
        sys.exit(130)


def _setup(config: TrainConfig, rank: Rank) -> tuple[torch.device, torch.nn.Module, ShardDataset, ShardDataset]:
    """(device, network, train dataset, test dataset) after checking data and network fit."""
    device = resolve_device(config.device, rank.local_rank)
    train_reader, test_reader = (split_reader(config.data, split) for split in (TRAIN_SPLIT, TEST_SPLIT))
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    network, field = build_network(config, data_info(train_reader.meta))
    if not train_reader.meta.compatible(test_reader.meta):
        problem = f"does not match {train_reader.files[0]} (spatial shape, classes or features differ)"
        raise ShardError(test_reader.files[0], problem)
    train_set = dataset(train_reader, field, config.augment, config.seed)
    return device, network, train_set, dataset(test_reader, field)


def _run(config: TrainConfig, rank: Rank, resume: bool, command: list[str]) -> torch.nn.Module:
    """Train on this rank (see the module docstring); ``command`` (the command line) goes into
    config.json. Returns the bare network."""
    device, network, train_set, test_set = _setup(config, rank)
    distributed.init(rank, device)
    run_dir = config.run_dir
    meta = data_info(train_set.reader.meta)
    if resume:
        state = load(run_dir / CHECKPOINT)
        check_data(state.data, train_set.reader.meta, state.path, config.data)
        load_weights(network, state.model, state.path, config.model)
    else:
        state = Checkpoint(run_dir / CHECKPOINT, config, meta, 0, {}, {}, [], math.inf, versions())
    if rank.world > 1 and config.sync_batchnorm:
        distributed.sync_batchnorm(network)
    network.to(device)
    optimizer = make_optimizer(config, network.parameters())
    if resume:
        optimizer.load_state_dict(state.optimizer)
    model = network
    if rank.world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        # BatchNorm statistics are averaged once per epoch (distributed.average_buffers), not sent every step
        model = torch.nn.parallel.DistributedDataParallel(network, device_ids=device_ids, forward_sync_buffers=False)
    state.config = config
    if rank.main:
        _start_files(state, network, optimizer, resume, command)
    test_batches = in_batches(distributed.share(range(len(test_set)), rank.rank, rank.world), config.eval_batch_size)
    context = EpochContext(config, rank, network, model, optimizer, train_set, test_set, test_batches, device)
    try:
        for epoch in range(state.epoch, config.epochs):
            row, test = run_epoch(context, epoch)
            state.history.append(row)
            state.epoch = epoch + 1
            if rank.main:
                _finish_epoch(state, network, optimizer, test, row)
        if rank.world > 1:
            torch.distributed.barrier()
    finally:
        distributed.shutdown()
    return network


def _save_state(state: Checkpoint, network, optimizer, name: str) -> None:
    state.model = network.state_dict()
    state.optimizer = optimizer.state_dict()
    state.versions = versions()
    state.save(state.config.run_dir / name)


def _write_text(path: Path, text: str) -> None:
    save_atomic(path, lambda f: f.write(text), mode="w")


def _write_metrics(state: Checkpoint) -> None:
    """metrics.jsonl from the checkpoint's history, and the curves."""
    run_dir = state.config.run_dir
    _write_text(run_dir / METRICS, "".join(json.dumps(row) + "\n" for row in state.history))
    if state.history:
        plot_curves(state.history, run_dir / CURVES)


def _start_files(state: Checkpoint, network, optimizer, resume: bool, command: list[str]) -> None:
    """config.json, and the epoch-0 checkpoint of a new run or metrics.jsonl matching a resumed one."""
    run_dir = state.config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"config": state.config.to_dict(), "data": state.data, "versions": versions(), "command": command}
    _write_text(run_dir / CONFIG_JSON, json.dumps(record, indent=1) + "\n")
    if not resume:
        _save_state(state, network, optimizer, CHECKPOINT)
    _write_metrics(state)


def _finish_epoch(state: Checkpoint, network, optimizer, test: Tally, row: dict) -> None:
    """Write best.pt and confusion.png (if the test error improved), checkpoint.pt, metrics and curves."""
    run_dir = state.config.run_dir
    if row["test_error"] < state.best_error:
        state.best_error = row["test_error"]
        _save_state(state, network, optimizer, BEST)
        title = f"{state.config.model}, test, epoch {row['epoch']}"
        plot_confusion(test.confusion, run_dir / CONFUSION, class_names(state.data), title=title)
    _save_state(state, network, optimizer, CHECKPOINT)
    _write_metrics(state)
