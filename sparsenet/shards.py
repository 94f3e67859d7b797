"""The sparsenet shard format's public API: :class:`ShardWriter` and the lazy :class:`ShardReader`.

A split (``DIR/train``) is a folder of ``shard-00000.h5``, ``shard-00001.h5``, ... plus
``manifest.json`` (``docs/shard-format.md``). The writer builds the whole folder under a hidden
temporary name, with ``.h5.part`` files, and renames everything when complete, so an interrupted
conversion leaves nothing that looks like a split or a shard. The reader takes the file list,
counts and checksums from the manifest (:mod:`sparsenet.manifest`) and keeps at most a few
shards in memory per process. The single-file format lives in :mod:`sparsenet.shardfile`;
its names are re-exported here. numpy and h5py only (no torch): safe in DataLoader workers.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from sparsenet.errors import ShardError
from sparsenet.manifest import MANIFEST, SHARD_GLOB, ShardFile, Split, check_sha256, file_sha256, open_split
from sparsenet.shardfile import (
    FORMAT,
    FORMAT_VERSION,
    Sample,
    ShardMeta,
    check_sample,
    legacy_names,
    merge_sites,
    open_shard,
    read_arrays,
    read_meta,
    validate_file,
    write_shard,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "SHARD_GLOB",
    "Sample",
    "ShardError",
    "ShardMeta",
    "ShardReader",
    "ShardWriter",
    "check_sample",
    "legacy_names",
    "merge_sites",
    "shard_files",
    "validate_file",
    "write_shard",
]

PART = ".part"  # suffix of shard files while their split is being written
_DESCRIBED = ("spatial_shape", "num_classes", "feature_names")  # what a manifest says of its shards


class ShardWriter:
    """Write samples into a split folder, atomically.

    ``with ShardWriter(out_dir, meta) as w: w.add(coords, features, label, sample_id)``
    builds ``out_dir`` under a temporary name beside it; on a clean exit it is renamed to
    ``out_dir`` (replacing an older one), on an exception it is deleted. Every sample is
    checked with :func:`check_sample` and a bad one raises ``ValueError`` naming it.
    ``run_id``, when given, is recorded in the manifest (a dataset writer gives all its splits one).
    """

    def __init__(
        self, out_dir: str | os.PathLike, meta: ShardMeta, *, samples_per_shard: int = 10_000, run_id: str | None = None
    ):
        self.out_dir = Path(out_dir)
        self.meta = meta
        self.samples_per_shard = samples_per_shard
        self.run_id = run_id
        self._tmp: Path | None = None
        self._pending: list[Sample] = []
        self._files: list[dict] = []
        self._class_counts = np.zeros(meta.num_classes, dtype=np.int64)
        self.num_samples = 0

    def __enter__(self) -> ShardWriter:
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(self.out_dir)
        self._tmp = self.out_dir.with_name(f".{self.out_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self._tmp.mkdir()  # unlike tempfile.mkdtemp, honours the umask (the folder is renamed into place)
        return self

    def add(self, coords: np.ndarray, features: np.ndarray, label: int, sample_id: str = "") -> None:
        """Queue one sample; ``coords`` [n, 2] integer (y, x), ``features`` [n, C]."""
        coords = np.asarray(coords)
        features = np.asarray(features, dtype=np.float32)
        try:
            check_sample(self.meta, coords, features, label)
        except ValueError as err:
            raise ValueError(f"sample {sample_id or self.num_samples}: {err}") from None
        self._pending.append(Sample(coords.astype(np.int32), features, int(label), sample_id))
        self.num_samples += 1
        if len(self._pending) >= self.samples_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        assert self._tmp is not None, "use ShardWriter as a context manager"
        name = f"shard-{len(self._files):05d}.h5"
        samples, self._pending = self._pending, []
        sizes = np.array([len(s.coords) for s in samples], dtype=np.int64)
        arrays = {
            "coords": np.concatenate([s.coords for s in samples]),
            "features": np.concatenate([s.features for s in samples]),
            "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            "labels": np.array([s.label for s in samples], dtype=np.int64),
        }
        part = self._tmp / (name + PART)
        write_shard(part, self.meta, arrays, [s.sample_id for s in samples])
        self._class_counts += np.bincount(arrays["labels"], minlength=self.meta.num_classes)
        self._files.append(
            {"file": name, "samples": len(samples), "sites": int(sizes.sum()), "sha256": file_sha256(part)}
        )

    def _manifest(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "samples": self.num_samples,
            "spatial_shape": list(self.meta.spatial_shape),
            "num_classes": self.meta.num_classes,
            "feature_names": list(self.meta.feature_names),
            "class_counts": self._class_counts.tolist(),
            "converter": self.meta.converter,
            "dataset": self.meta.dataset,
            "params": self.meta.params,
            **({"run_id": self.run_id} if self.run_id is not None else {}),
            "files": self._files,
        }

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tmp is not None
        try:
            if exc_type is None:
                self._flush()
                if self.num_samples == 0:
                    raise ValueError(f"{self.out_dir}: no samples were written")
                (self._tmp / MANIFEST).write_text(json.dumps(self._manifest(), indent=1) + "\n")
                for entry in self._files:
                    os.replace(self._tmp / (entry["file"] + PART), self._tmp / entry["file"])
                old = None
                if self.out_dir.exists():
                    old = self.out_dir.with_name(f".{self.out_dir.name}.old-{os.getpid()}")
                    os.replace(self.out_dir, old)
                os.replace(self._tmp, self.out_dir)
                if old is not None:
                    shutil.rmtree(old)
        finally:
            if self._tmp.exists():
                shutil.rmtree(self._tmp)


def _remove_stale_tmp(out_dir: Path) -> None:
    """Delete temporary folders left beside ``out_dir`` by writers that are no longer running."""
    prefix = f".{out_dir.name}.tmp-"
    for tmp in out_dir.parent.glob(prefix + "*-*"):
        try:
            os.kill(int(tmp.name[len(prefix) :].split("-", 1)[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError):  # not our naming, or alive under another user
            pass


def shard_files(path: str | os.PathLike) -> list[Path]:
    """The shard files of ``path`` (a split folder, by its manifest, or one ``.h5`` file)."""
    return [shard.path for shard in open_split(path).files]


class ShardReader:
    """Random access to the samples of one split, a shard file, or several of them (numpy + h5py only).

    ``ShardReader("data/assamese/train")`` reads the files its ``manifest.json`` lists; ``len()``
    and :meth:`locate` use the manifest's counts and open no file. A shard is loaded whole when a
    sample of it is first asked for (its SHA-256 checked against the manifest once per process,
    its content fully validated) and kept in a per-process LRU cache of at most ``cache_shards``
    shards, so memory stays bounded whatever the split's size. A file is opened only while a
    shard is loaded and closed right after: no h5py handle outlives a load, so the reader may be
    created before a DataLoader forks (or spawns, it pickles without its cache) its workers.
    """

    def __init__(self, path: str | os.PathLike | Sequence[str | os.PathLike], *, cache_shards: int = 8):
        if cache_shards < 1:
            raise ValueError(f"cache_shards must be at least 1, got {cache_shards}")
        paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        self.splits: list[Split] = [open_split(p) for p in paths]
        self.shards: list[ShardFile] = [shard for split in self.splits for shard in split.files]
        self.cache_shards = cache_shards
        with open_shard(self.shards[0].path) as f:
            self.meta = read_meta(f, self.shards[0].path)
        described = [list(self.meta.spatial_shape), self.meta.num_classes, list(self.meta.feature_names)]
        for split in self.splits:
            if split.manifest is not None and [split.manifest[k] for k in _DESCRIBED] != described:
                raise ShardError(split.path / MANIFEST, f"does not describe {self.shards[0].path}'s field and features")
        self._starts = np.concatenate([[0], np.cumsum([s.samples for s in self.shards])]).astype(np.int64)
        self._cache: OrderedDict[int, tuple[dict[str, np.ndarray], np.ndarray]] = OrderedDict()

    @property
    def files(self) -> list[Path]:
        """The shard files, in sample order."""
        return [shard.path for shard in self.shards]

    @property
    def file_counts(self) -> list[int]:
        """Samples per shard file, from the manifests."""
        return [shard.samples for shard in self.shards]

    @property
    def run_id(self) -> str | None:
        """The manifests' ``run_id`` (None when absent or when the splits read together differ)."""
        ids = {split.run_id for split in self.splits}
        return ids.pop() if len(ids) == 1 else None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": OrderedDict()}  # a spawned worker loads its own shards

    def __len__(self) -> int:
        return int(self._starts[-1])

    def cached(self) -> list[int]:
        """Numbers of the shards this process holds in memory, least recently used first."""
        return list(self._cache)

    def shard(self, k: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(arrays coords/features/offsets/labels, sample ids) of shard ``k``, loaded and checked on first use."""
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        entry = self.shards[k]
        check_sha256(entry)
        with open_shard(entry.path) as f:
            meta = read_meta(f, entry.path)
            if not meta.compatible(self.meta):
                raise ShardError(
                    entry.path, f"does not match {self.files[0]} (spatial shape, classes or features differ)"
                )
            arrays, ids = read_arrays(f, entry.path, meta)
        if len(ids) != entry.samples:
            raise ShardError(entry.path, f"holds {len(ids)} samples; {MANIFEST} says {entry.samples}")
        while len(self._cache) >= self.cache_shards:
            self._cache.popitem(last=False)
        self._cache[k] = (arrays, ids)
        return arrays, ids

    def locate(self, index: int) -> tuple[int, int]:
        """(file number, row within that file) of sample ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        index %= len(self)
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return k, index - int(self._starts[k])

    def sample(self, k: int, row: int) -> Sample:
        """Row ``row`` of shard ``k``."""
        a, ids = self.shard(k)
        lo, hi = a["offsets"][row], a["offsets"][row + 1]
        return Sample(a["coords"][lo:hi], a["features"][lo:hi], int(a["labels"][row]), ids[row])

    def start(self, k: int) -> int:
        """Index of shard ``k``'s first sample in the reader."""
        return int(self._starts[k])

    def __getitem__(self, index: int) -> Sample:
        return self.sample(*self.locate(index))

    def __iter__(self) -> Iterator[Sample]:
        for k, shard in enumerate(self.shards):
            for row in range(shard.samples):
                yield self.sample(k, row)

    def _column(self, name: str) -> np.ndarray:
        """``name`` (an array, or "sites": sites per sample) of every shard, concatenated."""
        arrays = (self.shard(k)[0] for k in range(len(self.shards)))
        return np.concatenate([np.diff(a["offsets"]) if name == "sites" else a[name] for a in arrays])

    @property
    def labels(self) -> np.ndarray:
        """All labels, int64 [len(self)] (reads every shard once, through the cache)."""
        return self._column("labels")

    @property
    def sites_per_sample(self) -> np.ndarray:
        """Number of sites of every sample, int64 [len(self)]."""
        return self._column("sites")
