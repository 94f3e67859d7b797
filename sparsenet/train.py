"""The run lifecycle: ``train(config) -> run_dir`` starts a run, ``resume(run_dir) -> run_dir`` continues one.

The run folder's files are described in :mod:`sparsenet.runs`, an epoch in :mod:`sparsenet.epoch`,
the processes of ``--procs N`` in :mod:`sparsenet.distributed` (rank 0 alone writes files).
Before a run folder is made (or, on resume, used) the main process checks every shard of both
splits, that they fit each other and come from one preprocess run, and (on resume) that they are
the data the run was trained on, and tries the network on a first batch. The epoch-0 checkpoint
is a new run's first file, so a folder holds nothing or a run that ``resume`` continues.

Everything random in epoch e derives from ``(seed, e)`` (sample order, augmentation, dropout), so
the checkpoint after epoch e holds all the state there is, and a run resumed after a kill at any
moment is bit-identical to an uninterrupted one on the CPU with the same thread count and library
versions (``tests/test_train.py``; docs/training.md lists what else changes results).
``procs`` and ``threads`` of ``"auto"`` are recorded as the numbers they resolved to.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import torch

from sparsenet import distributed, runs
from sparsenet.batch import ShardDataset
from sparsenet.checkpoint import (
    Checkpoint,
    check_data,
    check_identity,
    class_names,
    data_identity,
    data_info,
    load,
    load_weights,
    save_atomic,
    versions,
)
from sparsenet.config import SPLITS, TEST_SPLIT, TRAIN_SPLIT, TrainConfig, split_reader
from sparsenet.datasets import check_same_run
from sparsenet.distributed import Rank
from sparsenet.epoch import EpochContext, check_first_batch, run_epoch
from sparsenet.errors import ConfigError, RunError
from sparsenet.metrics import Tally, plot_confusion, plot_curves
from sparsenet.optim import make_optimizer
from sparsenet.pipeline import build_network, dataset, in_batches, resolve_device
from sparsenet.runs import BEST, CHECKPOINT, CONFIG_JSON, CONFUSION, CURVES, METRICS, RunLock, recorded_command
from sparsenet.shards import ShardError

RESUMABLE = ("epochs", "procs", "threads", "device", "loader_workers", "sync_batchnorm")  # may change on resume
TIMING_KEYS = ("seconds", "train_seconds", "samples_per_s", "profile")  # differ between identical runs


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``run_dir`` holds the last finished epoch, ready for :func:`resume`."""

    def __init__(self, run_dir: Path):
        super().__init__(f"training interrupted; resume from {run_dir}")
        self.run_dir = run_dir


def train(config: TrainConfig) -> Path:
    """Train a new run in ``config.out``, a new or empty folder; returns the run folder."""
    runs.check_new(config.run_dir)
    return _launch(config, resume=False)


def resume(run_dir: str | Path, **changes: Any) -> Path:
    """Continue the run in ``run_dir`` from its checkpoint; ``changes`` may set only :data:`RESUMABLE` fields."""
    run_dir = Path(run_dir)
    refused = sorted(set(changes) - set(RESUMABLE))
    if refused:
        raise ConfigError(f"cannot change {', '.join(refused)} when resuming; only {', '.join(RESUMABLE)} may change")
    ckpt = load(run_dir / CHECKPOINT)
    config = ckpt.config.replace(out=str(run_dir), **{k: v for k, v in changes.items() if v is not None})
    if config.lr_schedule == "cosine" and config.epochs != ckpt.config.epochs:
        raise RunError(
            ckpt.path,
            f"the cosine schedule is fitted to {ckpt.config.epochs} epochs; "
            "changing --epochs on resume would make the learning rate jump",
        )
    if config.epochs < ckpt.epoch:
        raise RunError(ckpt.path, f"is already at epoch {ckpt.epoch}; --epochs {config.epochs} would undo training")
    return _launch(config, resume=True)


def _launch(config: TrainConfig, resume: bool) -> Path:
    rank = Rank.from_env()
    device = resolve_device(config.device)
    procs = distributed.resolve_procs(config.procs, device, config.batch_size) if rank.world == 1 else 1
    if rank.world == 1 and config.procs == "auto":
        config = config.replace(procs=procs)  # config.json and checkpoints record the count used: it shapes BatchNorm
    if procs > 1 and not config.sync_batchnorm and config.batch_size // procs < 2:
        raise ConfigError(
            f"--procs {procs} leaves a process {config.batch_size // procs} sample(s) of a batch of "
            f"{config.batch_size}; per-rank BatchNorm needs at least 2 (use fewer processes or --sync-batchnorm)"
        )
    if not rank.main:  # torchrun's other ranks: rank 0 checks the data and holds the run folder
        _run(config, rank, resume, sys.argv)
        return config.run_dir
    with ExitStack() as stack:
        stack.callback(torch.set_num_threads, torch.get_num_threads())
        if resume:
            lock = stack.enter_context(RunLock(config.run_dir))  # before anything slow
            runs.remove_stale_temporaries(config.run_dir)  # of a writer killed while writing
        config, setup, identity = _prepare(config, rank, procs, resume)
        if not resume:
            lock = stack.enter_context(_new_folder(config.run_dir))
        try:
            if procs > 1:
                if not resume:  # the first checkpoint, so that any failure of a rank leaves a resumable run
                    state = _new_state(config, setup[2], identity)
                    _start_files(state, setup[1], _optimizer(config, setup[1]), False, sys.argv)
                payload = {"config": config.to_dict(), "resume": True, "command": sys.argv, "identity": identity}
                log = partial(runs.rank_log, config.run_dir)
                distributed.spawn(
                    "sparsenet.train:run_rank",
                    procs,
                    json.dumps(payload),
                    threads=config.threads,
                    log=log,
                    pass_fds=[lock.fd],
                )
            else:
                _run(config, rank, resume, sys.argv, setup, identity)
        except KeyboardInterrupt:
            raise Interrupted(config.run_dir) from None
    return config.run_dir


@contextmanager
def _new_folder(run_dir: Path) -> Iterator[RunLock]:
    """``run_dir`` made (or, empty, taken) for a new run and locked; removed again if this made it
    and the run ends before its first checkpoint (it is empty then: the checkpoint is the first file)."""
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(run_dir) as lock:
            runs.check_new(run_dir)  # again, now that no other sparsenet can write here
            yield lock
    finally:
        if created and not (run_dir / CHECKPOINT).exists():
            with suppress(OSError):
                run_dir.rmdir()


def _prepare(
    config: TrainConfig, rank: Rank, procs: int, resume: bool
) -> tuple[TrainConfig, tuple, dict[str, dict[str, str | None]]]:
    """Check the data and the network before the run folder is touched: read and check every shard
    of both splits, that they fit each other and come from one preprocess run, and (on resume) that
    they are the run's data; try the network on a first batch. Returns (the config with its thread
    count resolved, :func:`_setup`'s tuple, the data's identity)."""
    setup = _setup(config, rank, int(os.environ.get("LOCAL_WORLD_SIZE", procs)))  # torchrun sets it
    check_same_run([Path(config.data) / split for split in SPLITS])
    identity = data_identity(config.data)
    if resume:
        state = load(config.run_dir / CHECKPOINT)
        check_identity(state.data_identity, identity, state.path, config.data)
    for data in setup[2:]:
        data.reader.labels  # noqa: B018 -- loads (and so checks) every shard file; a single process keeps them
    check_first_batch(config, setup[1], setup[2], max(procs, rank.world))
    return config.replace(threads=torch.get_num_threads()), setup, identity


def run_rank(payload: str) -> torch.nn.Module:
    """Entry point of a rank started by :func:`sparsenet.distributed.spawn`: ``payload`` is
    ``{"config": {...}, "resume": bool, "command": [...], "identity": {...}}`` as JSON. Returns this
    rank's trained network; exits quietly with status 130 on Ctrl-C."""
    values = json.loads(payload)
    try:
        config, rank = TrainConfig.from_dict(values["config"]), Rank.from_env()
        return _run(config, rank, values["resume"], values["command"], identity=values.get("identity"))
    except KeyboardInterrupt:
        sys.exit(130)


def _setup(
    config: TrainConfig, rank: Rank, local_procs: int
) -> tuple[torch.device, torch.nn.Module, ShardDataset, ShardDataset]:
    """(device, network, train dataset, test dataset) after checking data and network fit; sets
    torch's thread count for ``local_procs`` processes on this machine (distributed.resolve_threads)."""
    device = resolve_device(config.device, rank.local_rank)
    train_reader, test_reader = (split_reader(config.data, split) for split in (TRAIN_SPLIT, TEST_SPLIT))
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    network, field = build_network(config, data_info(train_reader.meta))
    if not train_reader.meta.compatible(test_reader.meta):
        problem = f"does not match {train_reader.files[0]} (spatial shape, classes or features differ)"
        raise ShardError(test_reader.files[0], problem)
    torch.set_num_threads(distributed.resolve_threads(config.threads, local_procs, network.input_kind == "sparse"))
    train_set = dataset(train_reader, field, config.augment, config.seed)
    return device, network, train_set, dataset(test_reader, field)


def _new_state(config: TrainConfig, train_set: ShardDataset, identity: dict | None) -> Checkpoint:
    """The state of a new run before its first epoch (model and optimizer are filled in when saved)."""
    meta = data_info(train_set.reader.meta)
    return Checkpoint(config.run_dir / CHECKPOINT, config, meta, 0, {}, {}, [], math.inf, versions(), identity)


def _optimizer(config: TrainConfig, network: torch.nn.Module) -> torch.optim.Optimizer:
    return make_optimizer(config, network.parameters())


def _run(
    config: TrainConfig,
    rank: Rank,
    resume: bool,
    command: list[str],
    setup: tuple | None = None,
    identity: dict | None = None,
) -> torch.nn.Module:
    """Train on this rank (see the module docstring) with ``setup`` (from :func:`_setup`, made here if
    None); ``command`` (the command line) goes into config.json. Returns the bare network."""
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", rank.world))
    device, network, train_set, test_set = setup or _setup(config, rank, local_procs)
    distributed.init(rank, device)
    if resume:
        state = load(config.run_dir / CHECKPOINT)
        check_data(state.data, train_set.reader.meta, state.path, config.data)
        load_weights(network, state.model, state.path, config.model)
        state.data_identity = state.data_identity or identity  # an older run: recorded from now on
    else:
        state = _new_state(config, train_set, identity)
    if rank.world > 1 and config.sync_batchnorm:
        distributed.sync_batchnorm(network)
    network.to(device)
    optimizer = _optimizer(config, network)
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
    """metrics.jsonl from the checkpoint's history (strict JSON: a NaN would be refused), and the curves."""
    run_dir = state.config.run_dir
    _write_text(run_dir / METRICS, "".join(json.dumps(row, allow_nan=False) + "\n" for row in state.history))
    if state.history:
        plot_curves(state.history, run_dir / CURVES)


def _start_files(state: Checkpoint, network, optimizer, resume: bool, command: list[str]) -> None:
    """The epoch-0 checkpoint of a new run (its first file), config.json, and metrics.jsonl
    matching the checkpoint."""
    run_dir = state.config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _save_state(state, network, optimizer, CHECKPOINT)
    started_by = recorded_command(run_dir) if resume else None
    record = {
        "config": state.config.to_dict(),
        "data": state.data,
        "data_identity": state.data_identity,
        "versions": versions(),
        "command": started_by or command,  # the command that trained it, not the latest --resume
    }
    if started_by and started_by != command:
        record["resumed_with"] = command
    _write_text(run_dir / CONFIG_JSON, json.dumps(record, indent=1, allow_nan=False) + "\n")
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
