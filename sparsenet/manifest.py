"""A split of shards: ``manifest.json`` is authoritative for its file list, counts and checksums.

A split folder holds ``shard-00000.h5``, ``shard-00001.h5``, ... and ``manifest.json``
(``docs/shard-format.md``). :func:`open_split` takes the file list, the samples per file and
each file's SHA-256 from the manifest; a listed file missing, an unlisted ``shard-*.h5``, a
manifest that is not JSON or lacks a field is a :class:`~sparsenet.errors.ShardError` naming
the file. A folder holding several splits (``data/mnist``) is refused, naming them; a single
``.h5`` file given directly reads without a manifest (its content checksum still applies).
:func:`check_sha256` hashes each file once per process. numpy and h5py only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sparsenet.errors import ShardError
from sparsenet.shardfile import FORMAT, FORMAT_VERSION, h5_errors, open_shard

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.h5"
_SHARD_NAME = re.compile(r"shard-\d{5}\.h5")
_FIELDS = {  # field -> (type, what it must be)
    "format": (str, f'"{FORMAT}"'),
    "version": (int, "an integer"),
    "samples": (int, "an integer"),
    "spatial_shape": (list, "[H, W]"),
    "num_classes": (int, "an integer"),
    "feature_names": (list, "a list of names"),
    "files": (list, 'a list of {"file", "samples", "sha256"}'),
}
_SHA256 = re.compile(r"[0-9a-f]{64}")

# (path, size, mtime) -> SHA-256 of the files hashed in this process; forked workers inherit it,
# so a split checked by the parent is not hashed again in every DataLoader worker.
_HASHED: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class ShardFile:
    """One shard of a split: its path, samples (from the manifest) and SHA-256 (None: no manifest)."""

    path: Path
    samples: int
    sha256: str | None = None


@dataclass(frozen=True)
class Split:
    """A split folder as its manifest describes it (or a single file given directly, ``manifest`` None)."""

    path: Path
    files: tuple[ShardFile, ...]
    manifest: dict | None = None

    @property
    def run_id(self) -> str | None:
        """The ``run_id`` of the dataset writer that made the split (None: older shards, or no manifest)."""
        return None if self.manifest is None else self.manifest.get("run_id")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a whole file, computed once per process for an unchanged file."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHED[key] = digest.hexdigest()
    return _HASHED[key]


def check_sha256(shard: ShardFile) -> None:
    """Raise :class:`ShardError` if ``shard``'s file is gone or does not have the SHA-256 its manifest lists."""
    if not shard.path.is_file():  # deleted after the split was opened
        raise ShardError(shard.path, f"listed in {MANIFEST} but missing")
    if shard.sha256 is not None and file_sha256(shard.path) != shard.sha256:
        raise ShardError(shard.path, f"SHA-256 differs from {MANIFEST}: the file was modified or is corrupt")


def read_manifest(folder: Path) -> dict:
    """The checked ``manifest.json`` of split ``folder``."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShardError(path, f"not valid JSON ({err}); re-run `sparsenet preprocess` to rebuild the split") from None
    if not isinstance(manifest, dict):
        raise ShardError(path, "not a JSON object")
    for name, (kind, what) in _FIELDS.items():
        if not isinstance(manifest.get(name), kind) or isinstance(manifest.get(name), bool):
            raise ShardError(path, f"field {name!r} is missing or not {what}")
    if manifest["format"] != FORMAT or manifest["version"] != FORMAT_VERSION:
        raise ShardError(
            path,
            f"format {manifest['format']!r} version {manifest['version']}; this sparsenet reads "
            f"{FORMAT!r} version {FORMAT_VERSION}",
        )
    names = set()
    for entry in manifest["files"]:
        ok = isinstance(entry, dict) and _SHARD_NAME.fullmatch(str(entry.get("file")))
        ok = ok and type(entry.get("samples")) is int and entry["samples"] > 0  # not a bool
        if not (ok and _SHA256.fullmatch(str(entry.get("sha256")))) or entry["file"] in names:
            raise ShardError(
                path, f'bad entry in "files": {entry!r} (expected a new shard-NNNNN.h5, samples > 0, sha256)'
            )
        names.add(entry["file"])
    if not names or sum(e["samples"] for e in manifest["files"]) != manifest["samples"]:
        raise ShardError(path, f'"samples" is {manifest["samples"]} but the files\' samples add up to another total')
    return manifest


def _splits_inside(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder`` that look like splits (hidden ones skipped)."""
    return sorted(
        sub.name
        for sub in folder.iterdir()
        if sub.is_dir() and not sub.name.startswith(".") and ((sub / MANIFEST).exists() or any(sub.glob(SHARD_GLOB)))
    )


def dataset_splits(path: str | os.PathLike) -> list[Path]:
    """The split folders of ``path``: itself if it is a split (or a shard file), else its splits."""
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST).exists() and not any(path.glob(SHARD_GLOB)):
        names = _splits_inside(path)
        if names:
            return [path / name for name in names]
    return [path]


def open_split(path: str | os.PathLike) -> Split:
    """The :class:`Split` at ``path``: a split folder (by its manifest) or one ``.h5`` file."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".h5":
            raise ShardError(path, "not a .h5 shard file (a .part file is an unfinished write)")
        with open_shard(path) as f, h5_errors(path, "dataset 'labels' cannot be read"):
            if "labels" not in f:
                raise ShardError(path, "dataset 'labels' is missing")
            return Split(path, (ShardFile(path, len(f["labels"])),))
    if not path.is_dir():
        raise ShardError(path, "no such file or folder")
    present = {f.name for f in path.glob(SHARD_GLOB)}
    if not (path / MANIFEST).exists():
        names = _splits_inside(path)
        if names and not present:
            raise ShardError(
                path,
                f"a dataset folder holding {len(names)} split(s) ({', '.join(names)}); "
                f"read one split at a time, e.g. {path / names[0]}",
            )
        what = f"{len(present)} {SHARD_GLOB} file(s) but " if present else ""
        raise ShardError(
            path, f"{what}no {MANIFEST}: not a complete split (write splits with `sparsenet preprocess` or ShardWriter)"
        )
    manifest = read_manifest(path)
    files = tuple(ShardFile(path / e["file"], e["samples"], e["sha256"]) for e in manifest["files"])
    for shard in files:
        if shard.path.name not in present:
            raise ShardError(shard.path, f"listed in {MANIFEST} but missing")
    for name in sorted(present - {f.path.name for f in files}):
        raise ShardError(path / name, f"not listed in {MANIFEST}: a foreign or stale shard; remove it or rebuild")
    return Split(path, files, manifest)
