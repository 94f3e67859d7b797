"""Cases 3 and 4 of ``sparsenet bench``: what feeding the network costs.

3. ``pipeline``: samples/s of ``sparsenet.train``'s own epoch loop (shard reading, augmentation,
   collate, step) against the bare network step on the same batches, pre-built;
4. ``loading``: conversion of the raw datasets with the ``sparsenet preprocess`` converters, and
   reader + collate samples/s through training's DataLoader path, on one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sparsenet.bench.common import Settings, Stats, interleaved, ratios, torch_threads
from sparsenet.bench.data import Workspace
from sparsenet.bench.nets import build, sgd, step_fn
from sparsenet.bench.results import LoadingResult, PipelineResult
from sparsenet.config import TRAIN_SPLIT, TrainConfig
from sparsenet.distributed import Rank
from sparsenet.epoch import EpochContext, epoch_batches, train_epoch
from sparsenet.pipeline import dataset, loader
from sparsenet.shards import ShardReader

# --- case 3: pipeline overhead ----------------------------------------------------------------------------


def _loop(context: EpochContext, batches: list[list[int]], profiles: list[dict[str, float]]) -> Callable[[], None]:
    """One pass of training's epoch loop over ``batches`` (index lists); appends its profile to ``profiles``."""

    def loop() -> None:
        profiles.append(train_epoch(context, batches, "bench")[1])

    return loop


def bench_pipeline(workspace: Workspace, settings: Settings) -> list[PipelineResult]:
    """Case 3 on the Assamese VGG with ``affine`` augmentation (the ``make train-assamese`` recipe)."""
    reader = ShardReader(workspace.shards("assamese") / TRAIN_SPLIT)
    network = build("vgg", len(reader.meta.feature_names), reader.meta.num_classes, settings.seed)
    train_set = dataset(reader, network.input_size(), "affine", settings.seed)
    batches = epoch_batches(len(train_set), settings.batch_size, settings.seed, 0)[: settings.pipeline_batches]
    samples = sum(map(len, batches))
    optimizer = sgd(network)
    prebuilt = [train_set.collate([train_set[i] for i in batch]) for batch in batches]
    steps = [step_fn(network, batch, optimizer) for batch in prebuilt]
    results = []
    for workers in settings.pipeline_workers:
        profiles: list[dict[str, float]] = []
        config = TrainConfig(data="", out="", model="vgg", loader_workers=workers)
        context = EpochContext(
            config, Rank(), network, network, optimizer, train_set, train_set, [], torch.device("cpu")
        )
        jobs = {"loop": _loop(context, batches, profiles), "bare": lambda: [step() for step in steps]}
        seconds = interleaved(jobs, settings.pipeline_repeats, 1)
        timed = profiles[1:]  # without the warm-up pass
        profile = {stage: float(np.mean([p.get(stage, 0.0) for p in timed])) for stage in timed[0]}
        label = f"training loop, --loader-workers {workers}" + (" (default)" if workers == 0 else "")
        results.append(
            PipelineResult(
                label,
                workers,
                samples,
                Stats.of(seconds["loop"]).rate(samples),
                Stats.of(seconds["bare"]).rate(samples),
                ratios(seconds["bare"], seconds["loop"]),
                profile,
            )
        )
    return results


# --- case 4: preprocessing and loading --------------------------------------------------------------------


CONVERSION_TARGETS = {"assamese": 10.0, "mnist": 20.0}  # seconds for the whole dataset (issue 5)
LOADER_TARGET = 20_000.0  # samples/s on one core (issue 5)


def _read_split(reader: ShardReader, batch_size: int, seed: int) -> int:
    """One shuffled pass over ``reader`` through training's DataLoader and collate; returns the samples read."""
    data = dataset(reader, reader.meta.spatial_shape)
    return sum(batch.batch_size for batch in loader(data, epoch_batches(len(data), batch_size, seed, 0)))


def bench_loading(workspace: Workspace, settings: Settings, scratch: Path) -> list[LoadingResult]:
    """Case 4; conversions write into ``scratch``. One torch thread throughout."""
    results = []
    with torch_threads(1):
        for name, target in CONVERSION_TARGETS.items():
            seconds, samples = [], 0
            for i in range(settings.prep_repeats):
                start = time.perf_counter()
                summary = workspace.convert(name, scratch / f"{name}-{i}")
                seconds.append(time.perf_counter() - start)
                samples = sum(summary["samples"].values())
            stats = Stats.of(seconds)
            met = None if settings.quick else stats.median <= target
            results.append(
                LoadingResult(
                    f"{name}: raw files -> shards", samples, seconds=stats, target=f"<= {target:g} s", met=met
                )
            )
        for name in CONVERSION_TARGETS:
            folder = workspace.shards(name) / TRAIN_SPLIT
            cold, warm, samples = [], [], 0
            for _ in range(settings.loader_repeats):
                reader = ShardReader(folder)
                for times in (cold, warm):  # first pass loads and checks the HDF5 files, second reads memory
                    start = time.perf_counter()
                    samples = _read_split(reader, settings.batch_size, settings.seed)
                    times.append(time.perf_counter() - start)
            for when, times in (("first pass (HDF5 load + checks)", cold), ("later passes", warm)):
                rate = Stats.of(times).rate(samples)
                met = None if settings.quick else rate.median >= LOADER_TARGET
                results.append(
                    LoadingResult(
                        f"{name}: reader + collate, {when}",
                        samples,
                        rate=rate,
                        target=f">= {LOADER_TARGET:,.0f} samples/s",
                        met=met,
                    )
                )
    return results
