"""Shipped models: small trained checkpoints in ``models/`` and their ``models/index.json``.

``export(checkpoint, out, dataset=..., data=...)`` writes a copy of a run's checkpoint without
its optimizer state (a model to evaluate or predict with; resuming needs the run's own
checkpoint), refuses one larger than :data:`MAX_BYTES`, evaluates it on the test split of
``data`` and records in ``index.json`` beside it (replacing an entry for the same file)::

    file         name of the checkpoint in the folder
    dataset      assamese, mnist, masked-mnist-S, masked-caltech101-S
    data         the shard folder as `make preprocess` leaves it (e.g. data/assamese)
    top1_error   test error measured by `sparsenet eval --checkpoint FILE --data DATA` (a fraction)
    top5_error   likewise
    sha256       of the file; bytes: its size
    model, epoch the network and its training epochs
    command      the `sparsenet train` command line that trained it (from the run's config.json)
    repeats, repeated_top1_error   with ``repeats > 1``: the test error with test-time augmentation
                 (`sparsenet eval --repeats R`)
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from sparsenet.checkpoint import CheckpointError, load, save_atomic
from sparsenet.evaluate import evaluate
from sparsenet.train import CONFIG_JSON

MAX_BYTES = 2 * 1024 * 1024
INDEX = "index.json"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_index(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of ``folder/index.json`` (empty if there is none)."""
    path = Path(folder) / INDEX
    return json.loads(path.read_text())["models"] if path.is_file() else []


def _command(checkpoint: Path) -> str:
    record = checkpoint.parent / CONFIG_JSON
    if record.is_file():
        command = json.loads(record.read_text()).get("command") or []
        return shlex.join(["sparsenet", *command[1:]]) if command else ""
    return ""


def export(checkpoint: str | os.PathLike, out: str | os.PathLike, *, dataset: str, data: str | os.PathLike,
           repeats: int = 1) -> dict[str, Any]:
    """Write ``out`` (the checkpoint without optimizer state), evaluate it and index it; returns its entry.

    Raises:
        CheckpointError: the exported file is larger than :data:`MAX_BYTES` (nothing is left behind).
    """
    ckpt = load(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt.optimizer = {}
    ckpt.save(out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise CheckpointError(checkpoint, f"{size:,} bytes without optimizer state; shipped models are at most {MAX_BYTES:,}")
    result = evaluate(out, data, plot=False)
    entry: dict[str, Any] = {
        "file": out.name,
        "dataset": dataset,
        "data": str(data),
        "top1_error": result["top1_error"],
        "top5_error": result["top5_error"],
        "sha256": sha256(out),
        "bytes": size,
        "model": ckpt.config.model,
        "epoch": ckpt.epoch,
        "command": _command(Path(checkpoint)),
    }
    if repeats > 1:
        entry["repeats"] = repeats
        entry["repeated_top1_error"] = evaluate(out, data, plot=False, repeats=repeats)["top1_error"]
    entries = [e for e in read_index(out.parent) if e["file"] != out.name] + [entry]
    text = json.dumps({"models": sorted(entries, key=lambda e: e["file"])}, indent=1) + "\n"
    save_atomic(out.parent / INDEX, lambda f: f.write(text), mode="w")
    return entry
