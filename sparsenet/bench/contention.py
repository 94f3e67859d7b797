"""Case 7 of ``sparsenet bench``: training under contention (issue 14).

``sparsenet train`` with its defaults and with ``--procs 1`` runs on the full Assamese training
shards, once alone and once with one busy process (a Python ``while True: pass``) beside it on the
same cores; the settings take turns ``contention_rounds`` times. A rate is an epoch's
``samples_per_s`` from ``metrics.jsonl`` without each run's first epoch. What it shows: whether the
defaults (processes x threads per process within the usable cores) degrade gracefully when another
job competes for a core, where torch's default of one thread per core would spin against it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sparsenet.bench.common import Settings, Stats
from sparsenet.bench.data import Workspace
from sparsenet.bench.parallel import train_run
from sparsenet.bench.results import ContentionResult
from sparsenet.checkpoint import load
from sparsenet.runs import CHECKPOINT

SETTINGS: dict[str, list[str]] = {"default": [], "--procs 1": ["--procs", "1"]}  # label -> sparsenet train options
BUSY = "while True: pass"


def _run(workspace: Workspace, settings: Settings, options: list[str], out: Path, loaded: bool) -> list[dict]:
    """One training run, with a busy process beside it while it runs when ``loaded``."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if loaded else None
    try:
        return train_run(workspace, settings, options, out, settings.contention_epochs)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def bench_contention(workspace: Workspace, settings: Settings, scratch: Path) -> list[ContentionResult]:
    """Case 7 (see the module docstring)."""
    loads = (False, True) if settings.contention_alone else (True,)
    rows: dict[tuple[str, bool], list[dict]] = {(label, loaded): [] for label in SETTINGS for loaded in loads}
    threads: dict[tuple[str, bool], int | None] = {}
    for round_ in range(settings.contention_rounds):
        for (label, loaded), found in rows.items():
            out = scratch / f"{label.strip('-').replace(' ', '')}-{'loaded' if loaded else 'alone'}-{round_}"
            history = _run(workspace, settings, SETTINGS[label], out, loaded)
            found.extend(history[1:] or history)
            threads[label, loaded] = getattr(load(out / CHECKPOINT).config, "threads", None)
    return [
        ContentionResult(
            label, loaded, found[0]["procs"], threads[label, loaded], Stats.of([r["samples_per_s"] for r in found])
        )
        for (label, loaded), found in rows.items()
    ]
