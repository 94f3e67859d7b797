"""Case 6 of ``sparsenet bench``: data-parallel training, ``--procs auto`` against ``--procs 1`` (issue 7).

The ``sparsenet train`` command runs the ``make train-assamese`` recipe (sparse VGG, ``affine``
augmentation, batch 100) on the full Assamese training shards, each run in a fresh process as a
user starts it (so ``--procs 1`` gets torch's default threads and a clean interpreter, not the
benchmark's): with the default ``--procs auto``, with ``--procs auto --sync-batchnorm`` and with
``--procs 1``, each for ``parallel_epochs`` epochs; the three take turns ``parallel_rounds`` times.
A rate is an epoch's ``samples_per_s`` as ``metrics.jsonl`` records it (the first epoch of every
run is left out: it also reads the shards from disk), the speed-up is taken round by round (ratio
of the rounds' median rates), and the profile is rank 0's seconds per epoch in each stage
(training's own stopwatch, ``profile`` in ``metrics.jsonl``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from sparsenet.bench.common import Settings, Stats
from sparsenet.bench.data import Workspace
from sparsenet.bench.results import ParallelResult
from sparsenet.checkpoint import load
from sparsenet.runs import CHECKPOINT

SETTINGS: dict[str, list[str]] = {  # label -> sparsenet train options
    "--procs auto (default)": ["--procs", "auto"],
    "--procs auto --sync-batchnorm": ["--procs", "auto", "--sync-batchnorm"],
    "--procs 1": ["--procs", "1"],
}
BASELINE = "--procs 1"
CLI = "from sparsenet.cli import main; main()"  # the command line, in a fresh interpreter


def train_run(workspace: Workspace, settings: Settings, options: list[str], out: Path, epochs: int) -> list[dict]:
    """``sparsenet train`` of the Assamese recipe with ``options`` for ``epochs`` epochs into ``out``, in a
    new process; its metrics rows. A failed run raises ``RuntimeError`` with its output."""
    data, seed = str(workspace.shards("assamese")), str(settings.seed)
    train = ["train", "--data", data, "--out", str(out), "--epochs", str(epochs), "--seed", seed, *options]
    command = [sys.executable, "-c", CLI, *train]
    if settings.quick:
        command += ["--batch-size", str(settings.batch_size)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:])} failed:\n{done.stderr[-2000:]}")
    return load(out / CHECKPOINT).history


def bench_parallel(workspace: Workspace, settings: Settings, scratch: Path) -> list[ParallelResult]:
    """Case 6 (see the module docstring), the settings of :data:`SETTINGS` taking turns."""
    runs_by_label: dict[str, list[list[dict]]] = {label: [] for label in SETTINGS}
    for round_ in range(settings.parallel_rounds):
        for i, (label, options) in enumerate(SETTINGS.items()):
            runs_by_label[label].append(
                train_run(workspace, settings, options, scratch / f"setting{i}-round{round_}", settings.parallel_epochs)
            )
    timed = {label: [rows[1:] or rows for rows in runs] for label, runs in runs_by_label.items()}
    medians = {
        label: [float(np.median([row["samples_per_s"] for row in rows])) for rows in runs]
        for label, runs in timed.items()
    }
    results = []
    for label, runs in timed.items():
        rows = [row for rows in runs for row in rows]
        stages = list(dict.fromkeys(stage for row in rows for stage in row["profile"]))
        profile = {stage: float(np.mean([row["profile"].get(stage, 0.0) for row in rows])) for stage in stages}
        speedup = None if label == BASELINE else Stats.of([a / b for a, b in zip(medians[label], medians[BASELINE])])
        count = rows[0]["procs"]
        results.append(
            ParallelResult(
                f"{label}: {count} process{'es' * (count > 1)}",
                count,
                Stats.of([row["samples_per_s"] for row in rows]),
                speedup,
                profile,
                runs[-1][-1]["test_error"],
            )
        )
    return results
