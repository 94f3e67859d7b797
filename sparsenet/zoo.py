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

``export_ensemble(folder, name, files, dataset=..., data=...)`` records, under ``ensembles`` in the
same index, the test error of shipped models evaluated together (`sparsenet eval --checkpoint A
--checkpoint B`, the mean of their class probabilities): ``name``, ``files``, ``dataset``,
``data``, ``top1_error``, ``top5_error`` and, with ``repeats > 1``, ``repeats`` and
``repeated_top1_error``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from sparsenet.checkpoint import CheckpointError, load, save_atomic
from sparsenet.errors import ConfigError
from sparsenet.evaluate import evaluate
from sparsenet.runs import recorded_command

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
    """The model entries of ``folder/index.json`` (empty if there is none)."""
    return _read(folder).get("models", [])


def read_ensembles(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The ensemble entries of ``folder/index.json`` (empty if there are none)."""
    return _read(folder).get("ensembles", [])


def _read(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / INDEX
    return json.loads(path.read_text()) if path.is_file() else {}


def _write(folder: Path, models: list[dict[str, Any]], ensembles: list[dict[str, Any]]) -> None:
    index: dict[str, Any] = {"models": sorted(models, key=lambda e: e["file"])}
    if ensembles:
        index["ensembles"] = sorted(ensembles, key=lambda e: e["name"])
    text = json.dumps(index, indent=1) + "\n"
    save_atomic(folder / INDEX, lambda f: f.write(text), mode="w")


def _errors(checkpoints: str | os.PathLike | list[Path], data: str | os.PathLike, repeats: int) -> dict[str, Any]:
    """top1_error and top5_error of ``checkpoints`` on ``data``, and with ``repeats > 1`` the repeated top-1 error."""
    result = evaluate(checkpoints, data, plot=False)
    errors: dict[str, Any] = {"top1_error": result["top1_error"], "top5_error": result["top5_error"]}
    if repeats > 1:
        errors["repeats"] = repeats
        errors["repeated_top1_error"] = evaluate(checkpoints, data, plot=False, repeats=repeats)["top1_error"]
    return errors


def _command(checkpoint: Path) -> str:
    command = recorded_command(checkpoint.parent)
    return shlex.join(["sparsenet", *command[1:]]) if command else ""


def export(
    checkpoint: str | os.PathLike, out: str | os.PathLike, *, dataset: str, data: str | os.PathLike, repeats: int = 1
) -> dict[str, Any]:
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
        raise CheckpointError(
            checkpoint, f"{size:,} bytes without optimizer state; shipped models are at most {MAX_BYTES:,}"
        )
    errors = _errors(out, data, repeats)
    entry: dict[str, Any] = {
        "file": out.name,
        "dataset": dataset,
        "data": str(data),
        "top1_error": errors.pop("top1_error"),
        "top5_error": errors.pop("top5_error"),
        "sha256": sha256(out),
        "bytes": size,
        "model": ckpt.config.model,
        "epoch": ckpt.epoch,
        "command": _command(Path(checkpoint)),
        **errors,
    }
    entries = [e for e in read_index(out.parent) if e["file"] != out.name] + [entry]
    _write(out.parent, entries, read_ensembles(out.parent))
    return entry


def export_ensemble(
    folder: str | os.PathLike, name: str, files: list[str], *, dataset: str, data: str | os.PathLike, repeats: int = 1
) -> dict[str, Any]:
    """Evaluate the shipped models ``files`` of ``folder`` as one ensemble and index it as ``name``; returns its entry.

    Raises:
        ValueError: fewer than two files, or a file that ``folder/index.json`` does not list.
    """
    folder = Path(folder)
    models = read_index(folder)
    unknown = sorted(set(files) - {e["file"] for e in models})
    if unknown or len(files) < 2:
        listed = ", ".join(e["file"] for e in models) or "none"
        raise ConfigError(
            f"{folder / INDEX}: an ensemble takes two or more of its models (listed: {listed}); got {', '.join(files)}"
        )
    entry = {
        "name": name,
        "files": list(files),
        "dataset": dataset,
        "data": str(data),
        **_errors([folder / f for f in files], data, repeats),
    }
    _write(folder, models, [e for e in read_ensembles(folder) if e["name"] != name] + [entry])
    return entry
