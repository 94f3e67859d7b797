"""One shard file of the sparsenet format: what it holds, how it is written, read and checked.

The format is specified in ``docs/shard-format.md``; this module is its single-file half
(:data:`FORMAT_VERSION`, :class:`ShardMeta`, :func:`write_shard`, :func:`read_meta`,
:func:`read_arrays`, :func:`validate_file`). Splits (a folder of shards and its manifest) are
:mod:`sparsenet.manifest`; the public writer and reader are in :mod:`sparsenet.shards`.
numpy and h5py only (no torch). Every failure to read a file, h5py's included, becomes a
:class:`~sparsenet.errors.ShardError` naming the file.

Layout of one file holding S samples with N sites in all and C feature channels::

    coords      int32   [N, 2]   (row y, column x), 0 <= y < H, 0 <= x < W
    features    float32 [N, C]
    offsets     int64   [S+1]    sample i = rows offsets[i]:offsets[i+1]
    labels      int64   [S]      0 <= label < num_classes
    sample_ids  fixed-length UTF-8 bytes [S]   where each sample came from
    attrs: format="sparsenet.shard", version=1, spatial_shape=[H, W], num_classes,
           feature_names, class_names, source, converter, dataset, params (JSON), content_sha256
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from sparsenet.errors import ShardError

FORMAT = "sparsenet.shard"
FORMAT_VERSION = 1
ARRAYS = ("coords", "features", "offsets", "labels")
_DTYPES = {"coords": (np.int32, 2), "features": (np.float32, 2), "offsets": (np.int64, 1), "labels": (np.int64, 1)}
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
    if _first_duplicate(coords.astype(np.int64), np.zeros(len(coords), np.int64)) is not None:
        raise ValueError(
            "the same site appears twice (merge duplicate sites before writing; spconv needs unique sites)"
        )
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinity")
    if not 0 <= int(label) < meta.num_classes:
        raise ValueError(f"label {label} outside 0..{meta.num_classes - 1}")


def _first_duplicate(coords: np.ndarray, owner: np.ndarray) -> tuple[int, int, int] | None:
    """(sample, y, x) of the first site that appears twice in one sample, or None.

    ``coords`` int64 [N, 2] (y, x) in the field, ``owner`` int64 [N] the sample of each row. Rows
    are compared as (sample, y, x) triples: one integer key per site would overflow int64 on the
    largest fields a shard may declare.
    """
    ds, dy, dx = np.diff(owner), np.diff(coords[:, 0]), np.diff(coords[:, 1])
    if ((ds > 0) | ((ds == 0) & ((dy > 0) | ((dy == 0) & (dx > 0))))).all():  # row-major, as converters write
        return None
    order = np.lexsort((coords[:, 1], coords[:, 0], owner))
    s, y, x = owner[order], coords[order, 0], coords[order, 1]
    twice = np.flatnonzero((s[1:] == s[:-1]) & (y[1:] == y[:-1]) & (x[1:] == x[:-1]))
    if not len(twice):
        return None
    row = order[twice[0]]
    return int(owner[row]), int(coords[row, 0]), int(coords[row, 1])


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


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Hex SHA-256 of the raw little-endian C-order bytes of coords, features, offsets, labels."""
    digest = hashlib.sha256()
    for name in ARRAYS:
        digest.update(np.ascontiguousarray(arrays[name], dtype=np.dtype(_DTYPES[name][0]).newbyteorder("<")).tobytes())
    return digest.hexdigest()


def _utf8(strings: Sequence[str]) -> np.ndarray:
    """Fixed-length UTF-8 byte strings [len(strings)]: a string type every HDF5 reader handles
    (PyTables and pyfive cannot read variable-length string datasets)."""
    encoded = [s.encode("utf-8") for s in strings]
    return np.array(encoded, dtype=h5py.string_dtype("utf-8", max([1, *map(len, encoded)])))


def write_shard(path: Path, meta: ShardMeta, arrays: dict[str, np.ndarray], sample_ids: Sequence[str]) -> None:
    """Write one shard file (``arrays`` holds coords, features, offsets, labels) to ``path``.

    Callers normally go through :class:`~sparsenet.shards.ShardWriter`; this is the single
    place the HDF5 layout is written. The library's default file format bounds (no
    ``libver="latest"``) keep the file readable by HDF5 1.8 and every later release.
    """
    with h5py.File(path, "w") as f:
        for name in ARRAYS:
            data = arrays[name]
            chunks = (min(len(data), _CHUNK_ROWS),) + data.shape[1:]
            f.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=4, shuffle=True)
        f.create_dataset("sample_ids", data=_utf8(sample_ids))
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
        f.attrs["content_sha256"] = content_sha256(arrays)


def legacy_names(converter: str, params: dict) -> tuple[str, str]:
    """(converter, dataset) of shards written before the ``dataset`` attribute existed, whose
    ``converter`` was the module path: ``"preprocess.masked"`` with ``params["dataset"] == "mnist"``
    -> ``("masked", "masked-mnist")``. Names that are already plain pass through."""
    name = converter.rsplit(".", 1)[-1]
    return name, f"{name}-{params['dataset']}" if "dataset" in params else name


@contextlib.contextmanager
def h5_errors(path: Path, what: str = "cannot be read") -> Iterator[None]:
    """Turn whatever h5py raises on a damaged file (OSError, KeyError, RuntimeError...) into a
    :class:`ShardError` naming ``path``."""
    try:
        yield
    except ShardError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, TypeError, IndexError, OverflowError) as err:
        raise ShardError(path, f"{what} ({type(err).__name__}: {err})") from None


def open_shard(path: str | os.PathLike) -> h5py.File:
    """An h5py file opened for reading; a missing or non-HDF5 file is a :class:`ShardError`."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(path, "no such shard file")
    with h5_errors(path, "not a readable HDF5 file"):
        return h5py.File(path, "r")


def text(value) -> str:
    """A string attribute or element as ``str``: fixed-length bytes are UTF-8, variable-length ones str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _texts(value) -> tuple[str, ...]:
    return tuple(text(v) for v in np.atleast_1d(value)) if np.size(value) else ()


def read_meta(f: h5py.File, path: Path) -> ShardMeta:
    """Check the root attributes of an open shard and return its :class:`ShardMeta`."""
    with h5_errors(path, "cannot read the root attributes"):
        attrs = dict(f.attrs)
    found = text(attrs["format"]) if "format" in attrs else None
    if found != FORMAT:
        raise ShardError(path, f"not a sparsenet shard (attribute format={found!r}, expected {FORMAT!r})")
    try:
        version = int(attrs.get("version", -1))
    except (TypeError, ValueError):
        raise ShardError(
            path, f"attribute version={attrs['version']!r} is not an integer (this sparsenet reads version 1)"
        ) from None
    if version != FORMAT_VERSION:
        raise ShardError(
            path,
            f"shard format version {version}; this sparsenet reads version {FORMAT_VERSION}. "
            "Re-run `sparsenet preprocess` to rebuild the shards.",
        )
    try:
        h, w = (int(v) for v in attrs["spatial_shape"])
        if not (0 < h < 2**31 and 0 < w < 2**31):
            raise ValueError(f"spatial_shape {[h, w]} is not two positive int32 sizes")
        params = json.loads(text(attrs.get("params", "{}")))
        converter, dataset = legacy_names(text(attrs.get("converter", "")), params)
        return ShardMeta(
            spatial_shape=(h, w),
            num_classes=int(attrs["num_classes"]),
            feature_names=_texts(attrs["feature_names"]),
            class_names=_texts(attrs.get("class_names", [])),
            source=text(attrs.get("source", "")),
            converter=converter,
            params=params,
            dataset=text(attrs["dataset"]) if "dataset" in attrs else dataset,
        )
    except (KeyError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as err:
        raise ShardError(path, f"bad root attributes ({type(err).__name__}: {err})") from None


def read_sample_ids(f: h5py.File, path: Path, count: int) -> np.ndarray:
    """The ``sample_ids`` of an open shard as a str array [count] ("" where the file has none)."""
    if "sample_ids" not in f:
        return np.full(count, "", dtype=object)
    with h5_errors(path, "dataset 'sample_ids' cannot be read"):
        ds = f["sample_ids"]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
            raise ShardError(path, "'sample_ids' is not a one-dimensional dataset")
        ids = np.array([text(v) for v in ds[...]], dtype=object)
    if len(ids) != count:
        raise ShardError(path, f"sample_ids has {len(ids)} entries for {count} labels")
    return ids


def read_arrays(f: h5py.File, path: Path, meta: ShardMeta) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(coords, features, offsets, labels as a dict, sample ids) of an open shard, fully checked:
    a :class:`ShardError` names the file and the problem (and the sample, for duplicate sites)."""
    arrays = {}
    for name, (dtype, ndim) in _DTYPES.items():
        with h5_errors(path, f"dataset {name!r} cannot be read"):
            if name not in f:
                raise ShardError(path, f"dataset {name!r} is missing")
            ds = f[name]
            if not isinstance(ds, h5py.Dataset):
                raise ShardError(path, f"{name!r} is a {type(ds).__name__}, not a dataset")
            if ds.dtype != dtype or ds.ndim != ndim:
                raise ShardError(
                    path, f"dataset {name!r} is {ds.dtype}{list(ds.shape)}, expected {np.dtype(dtype)} with {ndim} dims"
                )
            arrays[name] = ds[...]
    coords, features, offsets, labels = (arrays[n] for n in ARRAYS)
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
    with h5_errors(path, "attribute content_sha256 cannot be read"):
        stored = f.attrs.get("content_sha256")
    if stored is not None and text(stored) != content_sha256(arrays):
        raise ShardError(path, "content checksum mismatch: the file was modified or is corrupt")
    ids = read_sample_ids(f, path, s)
    owner = np.repeat(np.arange(s, dtype=np.int64), np.diff(offsets))
    duplicate = _first_duplicate(coords.astype(np.int64), owner)
    if duplicate is not None:
        i, y, x = duplicate
        raise ShardError(
            path, f"sample {i} ({ids[i] or 'no id'}) has the site (y={y}, x={x}) twice; sites MUST be unique"
        )
    return arrays, ids


def validate_file(path: str | os.PathLike) -> tuple[ShardMeta, int, np.ndarray]:
    """Fully check one shard; return its meta, sample count and sites per sample."""
    path = Path(path)
    with open_shard(path) as f:
        meta = read_meta(f, path)
        arrays, _ = read_arrays(f, path, meta)
    return meta, len(arrays["labels"]), np.diff(arrays["offsets"])
