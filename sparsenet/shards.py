"""The sparsenet shard format: HDF5 files of ragged ``(coords, features, label)`` samples.

This module owns the format (see ``docs/shard-format.md``): :data:`FORMAT_VERSION`, the
:class:`ShardWriter` that every converter writes through, :func:`validate_file`, and the
:class:`ShardReader` that training and other pipelines read with. It needs only numpy and
h5py (no torch), so it is safe to use anywhere, DataLoader workers included.

Layout of one file holding S samples with N sites in all and C feature channels::

    coords    int32   [N, 2]   (row y, column x), 0 <= y < H, 0 <= x < W
    features  float32 [N, C]
    offsets   int64   [S+1]    sample i = rows offsets[i]:offsets[i+1]
    labels    int64   [S]      0 <= label < num_classes
    sample_ids  str   [S]      where each sample came from (e.g. "W37/12.37.txt")
    attrs: format="sparsenet.shard", version=1, spatial_shape=[H, W], num_classes,
           feature_names, class_names, source, converter, params (JSON), content_sha256

A split (``DIR/train``) is a folder of ``shard-00000.h5``, ``shard-00001.h5``, ... plus
``manifest.json``. The writer builds the whole folder under a hidden temporary name, with
``.h5.part`` files, and renames everything when complete, so an interrupted conversion
leaves nothing that looks like a split or a shard (readers skip hidden folders).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sparsenet.errors import ShardError

FORMAT = "sparsenet.shard"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PART = ".part"  # suffix of shard files while their split is being written
SHARD_GLOB = "shard-*.h5"
_ARRAYS = ("coords", "features", "offsets", "labels")
_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class ShardMeta:
    """What every sample of a shard (or split) shares."""

    spatial_shape: tuple[int, int]
    num_classes: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...] = ()
    source: str = ""
    converter: str = ""  # the registry name of the converter that wrote it (sparsenet.converters)
    params: dict = field(default_factory=dict, compare=False, hash=False)
    dataset: str = ""  # the dataset's name: "assamese", "mnist", "masked-mnist", ... (configs and the zoo key on it)

    def compatible(self, other: ShardMeta) -> bool:
        """True where samples of both can be batched together and their labels mean the same classes."""
        keys = ("spatial_shape", "num_classes", "feature_names", "class_names")
        return all(getattr(self, key) == getattr(other, key) for key in keys)


@dataclass(frozen=True)
class Sample:
    """One sample: ``coords`` int32 [n, 2] (y, x), ``features`` float32 [n, C], ``label``."""

    coords: np.ndarray
    features: np.ndarray
    label: int
    sample_id: str = ""


def check_sample(meta: ShardMeta, coords: np.ndarray, features: np.ndarray, label: int) -> None:
    """Raise ``ValueError`` saying what is wrong with a sample, or return None."""
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape [n, 2], got {list(coords.shape)}")
    if not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"coords must be integers, got {coords.dtype}")
    if features.ndim != 2 or features.shape[1] != len(meta.feature_names):
        raise ValueError(
            f"features must have shape [n, {len(meta.feature_names)}] "
            f"({', '.join(meta.feature_names)}), got {list(features.shape)}"
        )
    if coords.shape[0] != features.shape[0]:
        raise ValueError(f"{coords.shape[0]} coords but {features.shape[0]} feature rows")
    if coords.shape[0] == 0:
        raise ValueError("a sample needs at least one site")
    h, w = meta.spatial_shape
    if coords.min() < 0 or coords[:, 0].max() >= h or coords[:, 1].max() >= w:
        raise ValueError(
            f"coordinates outside the field {h}x{w}: y in [{coords[:, 0].min()}, "
            f"{coords[:, 0].max()}], x in [{coords[:, 1].min()}, {coords[:, 1].max()}]"
        )
    keys = coords[:, 0].astype(np.int64) * w + coords[:, 1]
    if len(np.unique(keys)) != len(keys):
        raise ValueError(
            "the same site appears twice (merge duplicate sites before writing; spconv needs unique sites)"
        )
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinity")
    if not 0 <= int(label) < meta.num_classes:
        raise ValueError(f"label {label} outside 0..{meta.num_classes - 1}")


def merge_sites(keys: np.ndarray, features: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sites with equal ``keys`` (y * width + x) become one holding their mean features.

    Returns coords int32 [m, 2] (y, x) in row-major order and features float32 [m, C]: the
    unique sites :func:`check_sample` requires.
    """
    order = np.argsort(keys, kind="stable")  # a merge sort, fast on the nearly sorted keys of moved strokes
    ordered = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    unique = ordered[first]
    inverse = np.empty_like(order)
    inverse[order] = np.cumsum(first) - 1
    counts = np.bincount(inverse, minlength=len(unique))
    sums = np.stack([np.bincount(inverse, weights=c, minlength=len(unique)) for c in features.T], axis=1)
    coords = np.stack([unique // width, unique % width], axis=1).astype(np.int32)
    return coords, (sums / counts[:, None]).astype(np.float32)


def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in _ARRAYS:
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Write samples into a split folder, atomically.

    ``with ShardWriter(out_dir, meta) as w: w.add(coords, features, label, sample_id)``
    builds ``out_dir`` under a temporary name beside it; on a clean exit it is renamed to
    ``out_dir`` (replacing an older one), on an exception it is deleted. Every sample is
    checked with :func:`check_sample` and a bad one raises ``ValueError`` naming it.
    """

    def __init__(self, out_dir: str | os.PathLike, meta: ShardMeta, *, samples_per_shard: int = 10_000):
        self.out_dir = Path(out_dir)
        self.meta = meta
        self.samples_per_shard = samples_per_shard
        self._tmp: Path | None = None
        self._pending: list[Sample] = []
        self._files: list[dict] = []
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
        self._files.append(
            {"file": name, "samples": len(samples), "sites": int(sizes.sum()), "sha256": _file_sha256(part)}
        )

    def _manifest(self) -> dict:
        labels = np.zeros(self.meta.num_classes, dtype=np.int64)
        for entry in self._files:
            with h5py.File(self._tmp / (entry["file"] + PART), "r") as f:
                labels += np.bincount(f["labels"][:], minlength=self.meta.num_classes)
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "samples": self.num_samples,
            "spatial_shape": list(self.meta.spatial_shape),
            "num_classes": self.meta.num_classes,
            "feature_names": list(self.meta.feature_names),
            "class_counts": labels.tolist(),
            "converter": self.meta.converter,
            "dataset": self.meta.dataset,
            "params": self.meta.params,
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


def write_shard(path: Path, meta: ShardMeta, arrays: dict[str, np.ndarray], sample_ids: Sequence[str]) -> None:
    """Write one shard file (``arrays`` holds coords, features, offsets, labels) to ``path``.

    Callers normally go through :class:`ShardWriter`; this is the single place the HDF5
    layout is written.
    """
    with h5py.File(path, "w", libver="latest") as f:
        for name in _ARRAYS:
            data = arrays[name]
            chunks = (min(len(data), _CHUNK_ROWS),) + data.shape[1:]
            f.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True)
        f.create_dataset("sample_ids", data=np.array(sample_ids, dtype=object), dtype=h5py.string_dtype())
        f.attrs["format"] = FORMAT
        f.attrs["version"] = FORMAT_VERSION
        f.attrs["spatial_shape"] = np.array(meta.spatial_shape, dtype=np.int64)
        f.attrs["num_classes"] = meta.num_classes
        f.attrs["feature_names"] = list(meta.feature_names)
        f.attrs["class_names"] = list(meta.class_names)
        f.attrs["source"] = meta.source
        f.attrs["converter"] = meta.converter
        f.attrs["dataset"] = meta.dataset
        f.attrs["params"] = json.dumps(meta.params, sort_keys=True)
        f.attrs["content_sha256"] = _content_sha256(arrays)


def legacy_names(converter: str, params: dict) -> tuple[str, str]:
    """(converter, dataset) of shards written before the ``dataset`` attribute existed, whose
    ``converter`` was the module path: ``"preprocess.masked"`` with ``params["dataset"] == "mnist"``
    -> ``("masked", "masked-mnist")``. Names that are already plain pass through."""
    name = converter.rsplit(".", 1)[-1]
    return name, f"{name}-{params['dataset']}" if "dataset" in params else name


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise ShardError(path, "no such shard file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ShardError(path, f"not a readable HDF5 file ({err})") from None


def _str_list(value) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value))


def read_meta(f: h5py.File, path: Path) -> ShardMeta:
    """Check the root attributes of an open shard and return its :class:`ShardMeta`."""
    attrs = f.attrs
    if attrs.get("format") != FORMAT:
        raise ShardError(path, f"not a sparsenet shard (attribute format={attrs.get('format')!r}, expected {FORMAT!r})")
    version = int(attrs.get("version", -1))
    if version != FORMAT_VERSION:
        raise ShardError(
            path,
            f"shard format version {version}; this sparsenet reads version {FORMAT_VERSION}. "
            "Re-run `sparsenet preprocess` to rebuild the shards.",
        )
    try:
        h, w = (int(v) for v in attrs["spatial_shape"])
        params = json.loads(attrs.get("params", "{}"))
        converter, dataset = legacy_names(str(attrs.get("converter", "")), params)
        return ShardMeta(
            spatial_shape=(h, w),
            num_classes=int(attrs["num_classes"]),
            feature_names=_str_list(attrs["feature_names"]),
            class_names=_str_list(attrs.get("class_names", [])) if len(attrs.get("class_names", [])) else (),
            source=str(attrs.get("source", "")),
            converter=converter,
            params=params,
            dataset=str(attrs["dataset"]) if "dataset" in attrs else dataset,
        )
    except (KeyError, ValueError, TypeError) as err:
        raise ShardError(path, f"bad root attributes ({err})") from None


def _load_arrays(f: h5py.File, path: Path, meta: ShardMeta) -> dict[str, np.ndarray]:
    """Read and fully check a shard's arrays; raise :class:`ShardError` naming the problem."""
    want = {"coords": (np.int32, 2), "features": (np.float32, 2), "offsets": (np.int64, 1), "labels": (np.int64, 1)}
    arrays = {}
    for name, (dtype, ndim) in want.items():
        if name not in f:
            raise ShardError(path, f"dataset {name!r} is missing")
        ds = f[name]
        if ds.dtype != dtype or ds.ndim != ndim:
            raise ShardError(
                path, f"dataset {name!r} is {ds.dtype}{list(ds.shape)}, expected {np.dtype(dtype)} with {ndim} dims"
            )
        try:
            arrays[name] = ds[...]
        except OSError as err:
            raise ShardError(path, f"dataset {name!r} cannot be read ({err})") from None
    coords, features, offsets, labels = (arrays[n] for n in _ARRAYS)
    n, s = len(coords), len(labels)
    checks = [  # in order: later checks assume the earlier ones passed
        (lambda: coords.shape[1] == 2, f"coords has {coords.shape[1]} columns, expected 2"),
        (
            lambda: features.shape == (n, len(meta.feature_names)),
            f"features is {list(features.shape)}, expected [{n}, {len(meta.feature_names)}]",
        ),
        (lambda: len(offsets) == s + 1, f"offsets has {len(offsets)} entries for {s} labels, expected {s + 1}"),
        (lambda: offsets[0] == 0 and offsets[-1] == n, f"offsets must run from 0 to {n}"),
        (lambda: (np.diff(offsets) > 0).all(), "offsets are not strictly increasing (an empty or negative sample)"),
        (lambda: ((labels >= 0) & (labels < meta.num_classes)).all(), f"labels outside 0..{meta.num_classes - 1}"),
        (
            lambda: (coords >= 0).all() and (coords < np.array(meta.spatial_shape, dtype=np.int32)).all(),
            f"coords outside the field {meta.spatial_shape}",
        ),
        (lambda: np.isfinite(features).all(), "features contain NaN or infinity"),
    ]
    for ok, what in checks:
        if not ok():
            raise ShardError(path, what)
    stored = f.attrs.get("content_sha256")
    if stored is not None and stored != _content_sha256(arrays):
        raise ShardError(path, "content checksum mismatch: the file was modified or is corrupt")
    return arrays


def shard_files(path: str | os.PathLike) -> list[Path]:
    """The shard files of ``path``: a ``.h5`` file, or a folder of ``shard-*.h5`` (searched
    recursively, skipping hidden folders such as a writer's unfinished temporary split)."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".h5":
            raise ShardError(path, "not a .h5 shard file (a .part file is an unfinished write)")
        return [path]
    if not path.is_dir():
        raise ShardError(path, "no such file or folder")
    files = sorted(f for f in path.rglob(SHARD_GLOB) if not any(p.startswith(".") for p in f.relative_to(path).parts))
    if not files:
        raise ShardError(path, f"no {SHARD_GLOB} files in this folder (run `sparsenet preprocess` first)")
    return files


def validate_file(path: str | os.PathLike) -> tuple[ShardMeta, int, np.ndarray]:
    """Fully check one shard; return its meta, sample count and sites per sample."""
    path = Path(path)
    with _open(path) as f:
        meta = read_meta(f, path)
        arrays = _load_arrays(f, path, meta)
    return meta, len(arrays["labels"]), np.diff(arrays["offsets"])


class ShardReader:
    """Random access to the samples of one or more shard files (numpy + h5py only).

    ``ShardReader("data/assamese/train")`` reads every ``shard-*.h5`` below the folder.
    Files are opened lazily in the process that first touches them and loaded whole into
    memory (shards are small; this makes ``reader[i]`` a pair of slices), so a reader created
    before a DataLoader forks its workers is safe: each worker loads its own copy.
    Every file is validated on load and must agree on spatial shape, classes and features.
    """

    def __init__(self, path: str | os.PathLike | Sequence[str | os.PathLike]):
        if isinstance(path, (str, os.PathLike)):
            self.files = shard_files(path)
        else:
            self.files = [f for p in path for f in shard_files(p)]
        metas, counts = [], []
        for file in self.files:
            with _open(file) as f:
                metas.append(read_meta(f, file))
                if "labels" not in f:
                    raise ShardError(file, "dataset 'labels' is missing")
                counts.append(len(f["labels"]))
        self.meta = metas[0]
        for file, meta in zip(self.files, metas):
            if not meta.compatible(self.meta):
                raise ShardError(file, f"does not match {self.files[0]} (spatial shape, classes or features differ)")
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._arrays: list[dict[str, np.ndarray] | None] = [None] * len(self.files)
        self._ids: list[np.ndarray | None] = [None] * len(self.files)
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if self._pid != os.getpid():  # a forked worker: never share h5py state across processes
            self._arrays, self._ids, self._pid = [None] * len(self.files), [None] * len(self.files), os.getpid()
        if self._arrays[k] is None:
            with _open(self.files[k]) as f:
                self._arrays[k] = _load_arrays(f, self.files[k], self.meta)
                self._ids[k] = f["sample_ids"].asstr()[...] if "sample_ids" in f else np.array([""] * len(f["labels"]))
        return self._arrays[k]

    def locate(self, index: int) -> tuple[int, int]:
        """(file number, row within that file) of sample ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        index %= len(self)
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return k, index - int(self._starts[k])

    def __getitem__(self, index: int) -> Sample:
        k, i = self.locate(index)
        a = self._shard(k)
        lo, hi = a["offsets"][i], a["offsets"][i + 1]
        return Sample(a["coords"][lo:hi], a["features"][lo:hi], int(a["labels"][i]), str(self._ids[k][i]))

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    @property
    def labels(self) -> np.ndarray:
        """All labels, int64 [len(self)]."""
        return np.concatenate([self._shard(k)["labels"] for k in range(len(self.files))])

    @property
    def sites_per_sample(self) -> np.ndarray:
        """Number of sites of every sample, int64 [len(self)]."""
        return np.concatenate([np.diff(self._shard(k)["offsets"]) for k in range(len(self.files))])
