"""What every case of ``sparsenet bench`` shares: the run's sizes and how it times and summarises.

- :class:`Settings`: the sizes of one run (:meth:`Settings.for_mode` gives the full and the
  ``--quick`` ones);
- :class:`Stats`: median, min and max of repeated measurements;
- :func:`interleaved`: several jobs timed in turns, so a slow moment of the machine hits all of
  them; :func:`ratios` then compares two of them repeat by repeat;
- :func:`torch_threads`: the torch thread count for a block.

This module loads neither spconv nor the networks (see :func:`torch_threads`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements of one quantity."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        """The statistics of ``values`` (at least one)."""
        return cls(float(np.median(values)), float(min(values)), float(max(values)), len(values))

    def rate(self, count: float) -> Stats:
        """``count / seconds`` for these timings (the fastest run gives the highest rate)."""
        return Stats(count / self.median, count / self.high, count / self.low, self.runs)


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run; :meth:`for_mode` gives the full and the ``--quick`` ones."""

    quick: bool = False
    batch_size: int = 100  # samples per training step (issue 5)
    repeats: int = 7  # timed repeats of every step measurement
    warmup: int = 2  # untimed repeats first (allocator, rulebook caches, lazy shard loading)
    growth_repeats: int = 3  # repeats per point of the cost-growth curves
    growth_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
    sinet_sparsities: tuple[float, ...] = (0.1, 0.5, 0.9)
    layer_sparsities: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)  # the sparsity-invariant layer alone
    layer_size: int = 224  # its image side (masked Caltech-101's)
    layer_batch: int = 4  # its images per timed step
    pipeline_batches: int = 40  # batches per timed pass of the training loop (less than an Assamese epoch)
    pipeline_repeats: int = 3
    pipeline_workers: tuple[int, ...] = (0, 1)  # DataLoader workers of the timed loops (0 = train's default)
    prep_repeats: int = 2  # full conversions of each raw dataset
    loader_repeats: int = 3
    threads: int = 2
    parallel_epochs: int = 3  # epochs per data-parallel training run (the first is not timed)
    parallel_rounds: int = 3  # runs of each --procs setting, taking turns
    contention_epochs: int = 2  # epochs per run beside a busy process (the first is not timed)
    contention_rounds: int = 2  # runs of each setting, alone and loaded, taking turns
    contention_alone: bool = True  # also run without the busy process (quick mode skips it)
    loader_workers: int = 2  # DataLoader workers of the public-API case
    loader_batch: int = 100
    loader_epochs: int = 3  # the first is a warm-up, not timed
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool, threads: int = 2) -> Settings:
        """The full run's settings, or with ``quick`` the smallest that still run every case."""
        if not quick:
            return cls(threads=threads)
        return cls(
            quick=True,
            batch_size=4,
            repeats=2,
            warmup=1,
            growth_repeats=1,
            growth_fractions=(0.01, 0.2),
            sinet_sparsities=(0.5,),
            layer_sparsities=(0.9,),
            layer_size=32,
            pipeline_batches=2,
            pipeline_repeats=1,
            pipeline_workers=(0,),
            prep_repeats=1,
            loader_repeats=1,
            parallel_epochs=1,
            parallel_rounds=1,
            contention_epochs=1,
            contention_rounds=1,
            contention_alone=False,
            loader_batch=16,
            loader_epochs=1,
            threads=threads,
        )


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, touching torch's setting only if it differs
    (``sparsenet train`` never sets it). ``run_bench`` enters it before spconv is imported;
    see "Noise" in ``docs/bench/analysis.md`` for why."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def interleaved(jobs: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each of ``repeats`` calls of every job, the jobs taking turns (after ``warmup`` rounds)."""
    for _ in range(warmup):
        for job in jobs.values():
            job()
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def ratios(slow: Sequence[float], fast: Sequence[float]) -> Stats:
    """``slow[i] / fast[i]`` over paired repeats."""
    return Stats.of([s / f for s, f in zip(slow, fast)])
