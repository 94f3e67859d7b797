"""A dataset folder (``--out DIR``: ``DIR/train``, ``DIR/test``, ...) written as one atomic unit.

``sparsenet preprocess`` writes every split through one :class:`DatasetWriter`::

    with DatasetWriter(out_dir, meta, overwrite=False) as dataset:
        writer = dataset.split("train")  # a ShardWriter
        writer.add(coords, features, label, sample_id)
        writer = dataset.split("test")   # closes "train", opens "test"
        ...

Every split is built inside a hidden folder beside ``DIR`` (``.<DIR name>.new-<pid>-<hex>``).
On a clean exit each split's ``manifest.json`` gets the same new ``run_id`` (uuid4 hex) and
the new folder replaces ``DIR`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``), then the
old dataset, now under the hidden name, is discarded. On an exception or a kill, ``DIR`` is untouched.

Guarantees:

- **Only sparsenet's files are replaced.** ``DIR`` may hold split folders whose ``manifest.json``
  says ``format: "sparsenet.shard"`` and the files it lists; any other entry (``DIR/notes.txt``,
  ``DIR/train/thesis.tex``) is *foreign*, and the writer refuses with a :class:`DatasetError`
  naming it. ``overwrite=True`` (``--overwrite``) replaces the splits and *keeps* foreign entries:
  they are hard-linked (or copied) into the new folder before the swap, and the old copy is
  removed only where the new folder holds the same file. One whose name the new dataset
  writes is refused in every mode.
- **One writer at a time.** ``fcntl.flock`` on ``.<DIR name>.lock`` beside ``DIR`` is held for the
  whole conversion; a second writer fails at once (no waiting), naming the holder's pid.
- **Leftovers are cleaned, never user data.** The next writer removes temporary folders whose
  writer (the pid in the name) is dead; a foreign file in them goes only if ``DIR`` holds it too.
- **Fallback** without ``renameat2`` (not Linux/glibc, or a file system without exchange): ``DIR``
  is renamed to ``.<DIR name>.old-<pid>-<hex>``, then the new folder to ``DIR``. A kill between
  the two leaves no ``DIR`` and the old dataset whole under the hidden name, which the next
  writer renames back first. Splits are never mixed either way; :func:`check_same_run` refuses
  splits whose run ids differ.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import filecmp
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from sparsenet.errors import DatasetError
from sparsenet.manifest import dataset_splits
from sparsenet.shards import FORMAT, MANIFEST, ShardMeta, ShardWriter

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_WRITER_LEFTOVER = re.compile(r"^\..+\.(tmp-\d+-[0-9a-f]+|old-\d+)$")  # ShardWriter's temporary split folders
_HOW = "pass --overwrite to replace sparsenet's splits and keep the other files, or choose another --out"


class DatasetWriter:
    """Write the splits of one dataset folder together; see the module docstring.

    ``meta`` is shared by every split; ``samples_per_shard`` is passed to each
    :class:`~sparsenet.shards.ShardWriter`. After a clean exit ``run_id`` names the conversion,
    ``samples`` maps split -> sample count and ``kept`` lists the foreign entries kept.
    """

    def __init__(
        self, out_dir: str | os.PathLike, meta: ShardMeta, *, overwrite: bool = False, samples_per_shard: int = 10_000
    ):
        self.out_dir = Path(os.path.abspath(out_dir))
        self.meta = meta
        self.overwrite = overwrite
        self.samples_per_shard = samples_per_shard
        self.run_id = uuid.uuid4().hex
        self.samples: dict[str, int] = {}
        self.kept: list[str] = []
        self._lock: TextIO | None = None
        self._new: Path | None = None
        self._open: ShardWriter | None = None
        self._swapped = False

    def __enter__(self) -> DatasetWriter:
        if self.out_dir.is_symlink():
            self.out_dir = self.out_dir.resolve()
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise DatasetError(self.out_dir, "is a file, not a dataset folder; choose another --out")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _acquire(self.out_dir)
        try:
            recover(self.out_dir)
            self._check_foreign()
            self._new = _temp_name(self.out_dir, "new")
            self._new.mkdir()
        except BaseException:
            _release(self._lock)
            raise
        return self

    def split(self, name: str) -> ShardWriter:
        """Close the split being written, if any, and start split ``name``; returns its ShardWriter."""
        assert self._new is not None, "use DatasetWriter as a context manager"
        if not name or name.startswith(".") or Path(name).name != name:
            raise ValueError(f"split name {name!r} must be a plain folder name")
        if name in self.samples or (self._open is not None and self._open.out_dir.name == name):
            raise ValueError(f"split {name!r} was already written")
        self._close_split()
        writer = ShardWriter(self._new / name, self.meta, samples_per_shard=self.samples_per_shard, run_id=self.run_id)
        self._open = writer.__enter__()
        return self._open

    def _close_split(self, exc_info: tuple = (None, None, None)) -> None:
        writer, self._open = self._open, None
        if writer is None:
            return
        if exc_info[0] is None and writer.num_samples == 0:  # named by its final path, not the temporary one
            empty = DatasetError(self.out_dir / writer.out_dir.name, "no samples for this split; nothing was changed")
            writer.__exit__(DatasetError, empty, None)
            raise empty
        writer.__exit__(*exc_info)
        self.samples[writer.out_dir.name] = writer.num_samples

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._new is not None
        try:
            if exc_type is not None:
                self._close_split((exc_type, exc, tb))
                return
            self._close_split()
            if not self.samples:
                raise ValueError(f"{self.out_dir}: no splits were written")
            self._check_foreign()  # again: the user may have added files while we converted
            self._keep_foreign()
            self._swap()
        finally:
            if not self._swapped and self._new.exists():
                _discard(self._new, self.out_dir)
            _release(self._lock)

    def _check_foreign(self) -> None:
        if not self.out_dir.is_dir():
            return
        foreign = [rel for rel, owned in _entries(self.out_dir) if not owned]
        if foreign and not self.overwrite:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise DatasetError(
                self.out_dir / foreign[0], f"was not written by sparsenet{more}; nothing was changed: {_HOW}"
            )

    def _keep_foreign(self) -> None:
        """Link every foreign entry of ``out_dir`` into the new folder, at the same place."""
        if not self.out_dir.is_dir():
            return
        for rel, owned in _entries(self.out_dir):
            if not owned:
                _link_tree(self.out_dir / rel, self._new / rel)
                self.kept.append(str(rel))

    def _swap(self) -> None:
        assert self._new is not None
        if not self.out_dir.exists():
            os.rename(self._new, self.out_dir)
            self._swapped = True
        elif _exchange(self._new, self.out_dir):
            self._swapped = True
            _discard(self._new, self.out_dir)  # the exchange left the old dataset under the temporary name
        else:
            old = _temp_name(self.out_dir, "old")
            os.rename(self.out_dir, old)
            os.rename(self._new, self.out_dir)
            self._swapped = True
            _discard(old, self.out_dir)


def _temp_name(out_dir: Path, kind: str) -> Path:
    return out_dir.with_name(f".{out_dir.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def lock_path(out_dir: str | os.PathLike) -> Path:
    """The lock file of dataset folder ``out_dir`` (``.<name>.lock`` beside it)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.lock")


def _acquire(out_dir: Path) -> TextIO:
    """Lock ``out_dir`` for this process (the handle holds the lock until :func:`_release`)."""
    handle = open(lock_path(out_dir), "a+")  # noqa: SIM115 - held open for the whole conversion
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        busy = f"another sparsenet process (pid {holder}) is writing this dataset; wait for it or choose another --out"
        raise DatasetError(out_dir, busy) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _release(handle: TextIO | None) -> None:
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths ``a`` and ``b`` in one step (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a file system without exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def _split_files(folder: Path) -> set[str] | None:
    """The names sparsenet wrote in split folder ``folder``, or None if it is not a sparsenet split."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            return None
        return {MANIFEST} | {str(entry["file"]) for entry in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _entries(root: Path) -> Iterator[tuple[Path, bool]]:
    """(path relative to ``root``, written by sparsenet) for the entries of a dataset folder.

    A split's own files are listed one by one; a foreign folder is one entry, and so is a
    ShardWriter's leftover temporary split folder (sparsenet's).
    """
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            owned = _split_files(entry)
            if owned is not None:
                for child in sorted(entry.iterdir()):
                    is_ours = child.name in owned and child.is_file() and not child.is_symlink()
                    yield child.relative_to(root), is_ours
                continue
            yield entry.relative_to(root), bool(_WRITER_LEFTOVER.match(entry.name))
        else:
            yield entry.relative_to(root), False


def _link_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` hold the same files as ``src``: hard links, or copies where links fail."""
    if dst.exists() or dst.is_symlink():
        if dst.is_dir() and src.is_dir() and not src.is_symlink():
            for child in sorted(src.iterdir()):
                _link_tree(child, dst / child.name)
            return
        clash = "was not written by sparsenet but has the name of a file the new dataset writes; nothing was changed"
        raise DatasetError(src, f"{clash}: move it away or choose another --out")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            _link_tree(child, dst / child.name)
    elif src.is_file():
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    else:
        raise DatasetError(src, "is not a regular file, folder or link; nothing was changed: move it away")


def _same(path: Path, twin: Path) -> bool:
    """True where ``twin`` holds what ``path`` holds (the same file, or equal bytes or link target)."""
    if path.is_symlink():
        return twin.is_symlink() and os.readlink(path) == os.readlink(twin)
    if not twin.is_file() or twin.is_symlink() or not path.is_file():
        return False
    return os.path.samefile(path, twin) or filecmp.cmp(path, twin, shallow=False)


def _discard_foreign(path: Path, twin: Path) -> bool:
    """Remove the foreign tree ``path`` where ``twin`` holds the same files; True if all of it went."""
    if path.is_dir() and not path.is_symlink():
        gone = all([_discard_foreign(child, twin / child.name) for child in sorted(path.iterdir())])
        if gone:
            path.rmdir()
        return gone
    if _same(path, twin):
        path.unlink()
        return True
    return False


def _discard(folder: Path, current: Path) -> None:
    """Remove a temporary or replaced dataset folder: sparsenet's files, and foreign files that
    ``current`` (the dataset in place) also holds. Anything else stays, with a warning."""
    for rel, owned in list(_entries(folder)):
        path = folder / rel
        if owned and path.is_dir():
            shutil.rmtree(path)
        elif owned:
            path.unlink()
        else:
            _discard_foreign(path, current / rel)
    for split in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        if not any(split.iterdir()):
            split.rmdir()
    if any(folder.iterdir()):
        warnings.warn(f"{folder}: kept, it holds files that are not in {current}; look through it", stacklevel=2)
    else:
        folder.rmdir()


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        pass
    return False


def recover(out_dir: str | os.PathLike) -> None:
    """Clean up after writers into ``out_dir`` that died: restore an old dataset moved aside by
    the fallback swap (if ``out_dir`` is missing), then discard their temporary folders.
    Only folders named by :class:`DatasetWriter` whose pid is dead are touched."""
    out_dir = Path(out_dir)
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(new|old)-(\d+)-[0-9a-f]{{8}}$")
    found = [(m[1], p) for p in out_dir.parent.iterdir() if (m := pattern.match(p.name)) and _dead(int(m[2]))]
    for kind, path in sorted(found, key=lambda kp: (kp[0] != "old", kp[1])):  # restore an old dataset first
        if kind == "old" and not out_dir.exists():
            os.rename(path, out_dir)
        elif path.is_dir():
            _discard(path, out_dir)


def split_run_id(split_dir: str | os.PathLike) -> str | None:
    """The ``run_id`` in ``split_dir/manifest.json``; None for a split written before run ids
    (or a folder without a manifest, which the shard reader judges)."""
    path = Path(split_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        run_id = json.loads(path.read_text()).get("run_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        raise DatasetError(path, "is not a valid JSON manifest; re-run `sparsenet preprocess`") from None
    return None if run_id is None else str(run_id)


def check_same_run(split_dirs: Sequence[str | os.PathLike]) -> str | None:
    """The run id shared by the split folders ``split_dirs`` (None: all written before run ids).

    Raises :class:`DatasetError` naming a split whose run id differs from the first one's:
    the splits come from different conversions. Entries that are not folders (single shard
    files) carry no run id and are skipped.
    """
    runs = [(Path(d), split_run_id(d)) for d in split_dirs if Path(d).is_dir()]
    for path, run_id in runs[1:]:
        first, first_id = runs[0]
        if run_id != first_id:
            raise DatasetError(
                path,
                f"comes from {_run(run_id)} but {first} from {_run(first_id)}: the splits were written by "
                "different conversions; re-run `sparsenet preprocess` to rebuild the whole dataset",
            )
    return runs[0][1] if runs else None


def _run(run_id: str | None) -> str:
    return f"run {run_id}" if run_id else "a conversion that recorded no run id"


def dataset_run_id(data_dir: str | os.PathLike) -> str | None:
    """The run id of every split of ``data_dir`` (see :func:`check_same_run`)."""
    return check_same_run(dataset_splits(data_dir))
