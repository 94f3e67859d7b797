"""Case 8 of ``sparsenet bench``: the public data API in a plain ``torch.utils.data.DataLoader`` (issue 15).

A fresh Python process reads the MNIST training split (60,000 samples) as a user's own pipeline
would: ``ShardStream`` (each worker reads its own shards) and the map-style ``ShardDataset`` with
``shuffle=True``, both with 2 DataLoader workers, batch 100 and the dataset's own ``collate``. It
reports samples/s of one full epoch after a warm-up epoch, and the peak resident memory of the
largest worker (``getrusage(RUSAGE_CHILDREN)`` of that process, whose only children are the
workers) next to the split's size on disk, so that memory bounded by a few shards, not by the
split, shows as such.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sparsenet.bench.common import Settings, Stats
from sparsenet.bench.data import Workspace
from sparsenet.bench.results import LoaderResult

# Runs in a fresh interpreter: argv = split folder, mode ("stream" or "dataset"), workers, batch, epochs.
_READ = """
import json, resource, sys, time
import torch
from sparsenet import ShardDataset, ShardReader, ShardStream
split, mode, workers, batch, epochs = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
reader = ShardReader(split)
data = ShardStream(reader, seed=0) if mode == "stream" else ShardDataset(reader)
loader = torch.utils.data.DataLoader(
    data, batch_size=batch, num_workers=workers, shuffle=mode != "stream", collate_fn=data.collate
)
seconds = []
for epoch in range(epochs):
    data.set_epoch(epoch)
    start = time.perf_counter()
    count = sum(len(b.labels) for b in loader)
    seconds.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"samples": count, "seconds": seconds, "worker_peak_bytes": peak}))
"""


def _read(split: Path, mode: str, settings: Settings) -> dict:
    args = [str(split), mode, str(settings.loader_workers), str(settings.loader_batch), str(settings.loader_epochs)]
    done = subprocess.run([sys.executable, "-c", _READ, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"reading {split} with {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def bench_loader(workspace: Workspace, settings: Settings) -> list[LoaderResult]:
    """Case 8 (see the module docstring) on the MNIST training split."""
    split = workspace.shards("mnist") / "train"
    on_disk = sum(f.stat().st_size for f in split.glob("*.h5"))
    results = []
    for mode, label in (("stream", "ShardStream"), ("dataset", "ShardDataset, shuffle=True")):
        found = _read(split, mode, settings)
        timed = found["seconds"][1:] or found["seconds"]
        rate = Stats.of([found["samples"] / s for s in timed])
        results.append(
            LoaderResult(label, settings.loader_workers, found["samples"], rate, found["worker_peak_bytes"], on_disk)
        )
    return results
