"""Checkpoint files: what a run saves every epoch, written atomically, read with ``weights_only``.

A checkpoint is a ``torch.save`` of a dict of tensors and plain values only, so it loads
with ``torch.load(..., weights_only=True)``::

    format      "sparsenet.checkpoint"      version   1
    config      TrainConfig as a JSON string
    data        the shards' meta (field, classes, features, converter params, format version)
    data_identity  per split: the manifest's ``run_id`` and the manifest file's sha256
                (see :func:`data_identity`; absent in checkpoints of older sparsenet versions)
    versions    python, torch, spconv, numpy, sparsenet
    epoch       completed epochs (0: the initial weights)
    model       state_dict of the bare network (no DDP prefix)
    optimizer   optimizer state_dict
    history     one metrics.jsonl row per completed epoch
    best_error  lowest test top-1 error so far (inf before the first epoch)

Nothing else is needed to rebuild the network, evaluate it or continue training. The sample
order, augmentation and dropout of an epoch are derived from ``(seed, epoch)``, so no RNG
state has to be stored for a resumed run to repeat the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparsenet.config import SPLITS, TrainConfig
from sparsenet.datasets import split_run_id
from sparsenet.errors import CheckpointError
from sparsenet.runs import BEST, CHECKPOINT
from sparsenet.shards import FORMAT_VERSION, MANIFEST, ShardMeta, legacy_names

FORMAT = "sparsenet.checkpoint"
VERSION = 1
_REQUIRED = ("config", "data", "epoch", "model", "optimizer", "history", "best_error")


def versions() -> dict[str, str]:
    """Versions of everything a result depends on."""
    import spconv

    import sparsenet

    found = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "spconv": getattr(spconv, "__version__", "unknown"),
        "numpy": np.__version__,
        "sparsenet": sparsenet.__version__,
    }
    return {name: str(version) for name, version in found.items()}  # torch's is a str subclass


def data_info(meta: ShardMeta) -> dict[str, Any]:
    """The shard meta as plain values (stored in checkpoints and config.json)."""
    return {
        "spatial_shape": list(meta.spatial_shape),
        "num_classes": meta.num_classes,
        "feature_names": list(meta.feature_names),
        "class_names": list(meta.class_names),
        "source": meta.source,
        "converter": meta.converter,
        "dataset": meta.dataset,
        "params": json.dumps(meta.params, sort_keys=True),
        "format_version": FORMAT_VERSION,
    }


def class_names(info: dict[str, Any]) -> list[str]:
    """The class names of data ``info`` (see :func:`data_info`), or the class numbers where it has none."""
    return list(info["class_names"]) or [str(k) for k in range(info["num_classes"])]


def check_data(info: dict[str, Any], meta: ShardMeta, path: str | os.PathLike, data: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` if shards with ``meta`` (from ``data``) do not fit checkpoint ``path``."""
    found = data_info(meta)
    for key in ("spatial_shape", "num_classes", "feature_names"):
        if found[key] != info[key]:
            raise CheckpointError(path, f"was trained on data with {key} {info[key]}, but {data} has {found[key]}")


def data_identity(data: str | os.PathLike) -> dict[str, dict[str, str | None]]:
    """What identifies the dataset folder ``data``: ``{split: {"run_id": the manifest's run id or None,
    "manifest_sha256": the manifest file's sha256 or None}}`` for the train and test splits. The
    manifest lists every shard file's checksum, so its own checksum changes with any shard."""
    identity = {}
    for split in SPLITS:
        path = Path(data) / split / MANIFEST
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            identity[split] = {"run_id": None, "manifest_sha256": None}
            continue
        identity[split] = {"run_id": split_run_id(path.parent), "manifest_sha256": hashlib.sha256(text).hexdigest()}
    return identity


def check_identity(recorded: dict | None, found: dict, path: str | os.PathLike, data: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` if the splits of ``data`` (identity ``found``) are not those
    checkpoint ``path`` was trained on (``recorded``); a checkpoint without a record gets a warning."""
    if recorded is None:
        print(
            f"warning: {path} records no data identity (an older sparsenet wrote it); "
            f"cannot check that {data} is the data it was trained on",
            file=sys.stderr,
        )
        return
    for split in SPLITS:
        before, now = recorded.get(split, {}), found[split]
        if before.get("run_id") != now["run_id"]:
            change = f"preprocess run {before.get('run_id')} became {now['run_id']}"
        elif before.get("manifest_sha256") != now["manifest_sha256"]:
            change = "its manifest.json changed (other shards or checksums)"
        else:
            continue
        raise CheckpointError(
            path,
            f"the data changed since this run started: {Path(data) / split}: {change}; "
            "start a new run (another --out) on the new data",
        )


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the fields)."""

    path: Path
    config: TrainConfig
    data: dict[str, Any]
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    history: list[dict[str, Any]]
    best_error: float
    versions: dict[str, str]
    data_identity: dict | None = None  # None: an older checkpoint without the record

    def payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_json(),
            "data": self.data,
            "versions": self.versions,
            "epoch": self.epoch,
            "model": self.model,
            "optimizer": self.optimizer,
            "history": self.history,
            "best_error": self.best_error,
            **({"data_identity": self.data_identity} if self.data_identity is not None else {}),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temporary file in the same folder, flushed, then renamed over ``path``."""
        save_atomic(path, lambda f: torch.save(self.payload(), f))


def save_atomic(path: str | os.PathLike, write, mode: str = "wb") -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, and rename it to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(path, "not a torch checkpoint (not a zip archive written by torch.save)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        if "Weights only load failed" in str(err):
            raise CheckpointError(
                path, "holds Python objects other than tensors and plain values; refusing to load it"
            ) from None
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({str(err).splitlines()[0]})") from None


def load(path: str | os.PathLike) -> Checkpoint:
    """Read and check a checkpoint; any problem raises :class:`CheckpointError` naming it."""
    path = Path(path)
    raw = _read(path)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(path, f"not a sparsenet checkpoint (no format={FORMAT!r} entry)")
    if raw.get("version") != VERSION:
        raise CheckpointError(
            path, f"checkpoint version {raw.get('version')!r}; this sparsenet reads version {VERSION}"
        )
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise CheckpointError(path, f"entries missing: {', '.join(missing)}")
    try:
        values = json.loads(raw["config"])
        values.setdefault("sync_batchnorm", True)  # written before per-rank BatchNorm existed: ranks always synced
        config = TrainConfig.from_dict(values)
    except (TypeError, ValueError) as err:
        raise CheckpointError(path, f"stored config is invalid ({err})") from None
    return Checkpoint(
        path=path,
        config=config,
        data=_with_names(raw["data"]),
        epoch=int(raw["epoch"]),
        model=raw["model"],
        optimizer=raw["optimizer"],
        history=list(raw["history"]),
        best_error=float(raw["best_error"]),
        versions=dict(raw.get("versions", {})),
        data_identity=raw.get("data_identity"),
    )


def _with_names(info: dict[str, Any]) -> dict[str, Any]:
    """Data info of a checkpoint from before the ``dataset`` entry: converter and dataset by name."""
    if "dataset" in info:
        return info
    converter, dataset = legacy_names(info.get("converter", ""), json.loads(info.get("params", "{}")))
    return {**info, "converter": converter, "dataset": dataset}


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else its checkpoint.pt)."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, CHECKPOINT):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(path, f"run folder without {BEST} or {CHECKPOINT}")
    return path


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | os.PathLike, name: str) -> None:
    """``model.load_state_dict(state)``, with a mismatch reported as :class:`CheckpointError`."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(path, f"weights do not fit model {name!r}: {detail[:400]}") from None
