"""Case 6 of ``sparsenet bench``: data-parallel training, ``--procs auto`` against ``--procs 1`` (issue 7).

``sparsenet.train.train`` itself runs the ``make train-assamese`` recipe (sparse VGG, ``affine``
augmentation, batch 100) on the full Assamese training shards with the default ``--procs auto``,
with ``--procs auto --sync-batchnorm`` and with ``--procs 1``, each for ``parallel_epochs``
epochs; the three take turns ``parallel_rounds`` times. A rate is an epoch's ``samples_per_s`` as ``metrics.jsonl``
records it (the first epoch of every run is left out: it also reads the shards from disk), the
speed-up is taken round by round (ratio of the rounds' median rates), and the profile is rank 0's
seconds per epoch in each stage (training's own stopwatch, ``profile`` in ``metrics.jsonl``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsenet.bench import Settings, Stats
from sparsenet.bench_data import Workspace


@dataclass(frozen=True)
class ParallelResult:
    """One ``--procs`` setting of case 6."""

    label: str
    procs: int  # processes the setting resolved to
    rate: Stats  # samples/s of the timed epochs
    speedup: Stats | None  # against --procs 1, round by round (None for --procs 1 itself)
    profile: dict[str, float]  # seconds per epoch per stage, rank 0, mean over the timed epochs
    test_error: float  # after the last epoch of the last round


SETTINGS: dict[str, dict] = {  # label -> sparsenet train options
    "--procs auto (default)": dict(procs="auto"),
    "--procs auto --sync-batchnorm": dict(procs="auto", sync_batchnorm=True),
    "--procs 1": dict(procs=1),
}
BASELINE = "--procs 1"


def _run(workspace: Workspace, settings: Settings, options: dict, out: Path) -> list[dict]:
    """Train the Assamese recipe with ``options`` for ``settings.parallel_epochs`` epochs into ``out``; its metrics rows."""
    from sparsenet import config as configs
    from sparsenet import train
    from sparsenet.checkpoint import load

    data = workspace.shards("assamese")
    overrides = dict(options, epochs=settings.parallel_epochs, seed=settings.seed)
    if settings.quick:
        overrides["batch_size"] = settings.batch_size
    train.train(configs.for_dataset(data, out, **overrides))
    return load(out / "checkpoint.pt").history


def bench_parallel(workspace: Workspace, settings: Settings, scratch: Path) -> list[ParallelResult]:
    """Case 6 (see the module docstring), the settings of :data:`SETTINGS` taking turns."""
    runs_by_label: dict[str, list[list[dict]]] = {label: [] for label in SETTINGS}
    for round_ in range(settings.parallel_rounds):
        for i, (label, options) in enumerate(SETTINGS.items()):
            runs_by_label[label].append(_run(workspace, settings, options, scratch / f"setting{i}-round{round_}"))
    timed = {label: [rows[1:] or rows for rows in runs] for label, runs in runs_by_label.items()}
    medians = {label: [float(np.median([row["samples_per_s"] for row in rows])) for rows in runs]
               for label, runs in timed.items()}
    results = []
    for label, runs in timed.items():
        rows = [row for rows in runs for row in rows]
        stages = list(dict.fromkeys(stage for row in rows for stage in row["profile"]))
        profile = {stage: float(np.mean([row["profile"].get(stage, 0.0) for row in rows])) for stage in stages}
        speedup = None if label == BASELINE else Stats.of([a / b for a, b in zip(medians[label], medians[BASELINE])])
        count = rows[0]["procs"]
        results.append(ParallelResult(f"{label}: {count} process{'es' * (count > 1)}", count, Stats.of([row["samples_per_s"] for row in rows]), speedup, profile,
                                      runs[-1][-1]["test_error"]))
    return results
