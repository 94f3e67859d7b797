"""Shared by the converters of a user's own corpus (``inkml``, ``images``): file names, splits, output.

A corpus is a folder or an archive (read with :func:`sparsenet.sources.iter_members`). Each
data file is named by its POSIX path relative to the corpus root; in an archive whose members
all sit in one top folder that is not a split folder (``tar czf corpus.tgz corpus/``), that
folder is left out of the names (:func:`corpus_names`).

Files are assigned to splits by one of four rules (:func:`assign_splits`):

- ``folder``: the top folder of every file is its split: ``train/``, ``val/`` or ``test/``;
- ``list``: a split file of lines ``relative/path<TAB>split`` (or the path, spaces, the
  split: the last word is the split); blank lines and ``#`` comments are ignored. Files it
  does not list are left out and reported; a listed file that does not exist is an error;
- ``fraction``: within each folder, a seeded shuffle of its files sends
  ``round(test_fraction * n)`` of them to ``test/``, the rest to ``train/`` (stratified by
  class when classes are folders; whole files, so the samples of one file stay together);
  the test fraction is 0.2 unless given;
- ``auto``: ``list`` when a split file is given, ``fraction`` when a test fraction is given,
  else ``folder`` when every file lies in a top ``train/``, ``val/`` or ``test/`` folder and
  ``train/`` is one of them, else ``fraction``.

:func:`write_splits` is the one place the converters' output is written.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.caltech101 import split_indices
from sparsenet.datasets import DatasetWriter
from sparsenet.errors import ConfigError, RawDataError
from sparsenet.shards import Sample, ShardMeta

SPLIT_FOLDERS = ("train", "val", "test")
SPLIT_MODES = ("auto", "folder", "list", "fraction")
DEFAULT_TEST_FRACTION = 0.2
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def corpus_names(source: str | os.PathLike, names: Iterable[str]) -> dict[str, str]:
    """Member name -> corpus-relative name (see the module docstring: an archive's one top folder is dropped)."""
    names = list(names)
    relative = {name: name.removeprefix("./") for name in names}
    if Path(source).is_file():
        tops = {n.split("/", 1)[0] for n in relative.values()}
        if len(tops) == 1 and tops.pop() not in SPLIT_FOLDERS and all("/" in n for n in relative.values()):
            relative = {name: n.split("/", 1)[1] for name, n in relative.items()}
    return relative


def within_split(name: str) -> str:
    """The part of ``name`` below its top ``train/``, ``val/`` or ``test/`` folder, if it is in one, whatever the
    split rule (so classes are never named after split folders), else ``name`` itself."""
    top, _, rest = name.partition("/")
    return rest if rest and top in SPLIT_FOLDERS else name


def resolve_mode(
    names: Sequence[str], mode: str, split_file: str | os.PathLike | None, test_fraction: float | None = None
) -> str:
    """The rule ``auto`` stands for with these corpus names and options (module docstring); others pass through."""
    if mode not in SPLIT_MODES:
        raise ConfigError(f"unknown split rule {mode!r}; expected one of {', '.join(SPLIT_MODES)}")
    if mode == "list" and split_file is None:
        raise ConfigError("the split rule 'list' needs a split file (--split-file)")
    for option, value, rule in (("a split file", split_file, "list"), ("a test fraction", test_fraction, "fraction")):
        if value is not None and mode not in ("auto", rule):
            raise ConfigError(f"{option} goes with the split rule {rule!r}, not {mode!r}")
    if split_file is not None and test_fraction is not None:
        raise ConfigError("give a split file or a test fraction, not both")
    if mode != "auto":
        return mode
    if split_file is not None:
        return "list"
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    in_folders = all("/" in n for n in names) and tops <= set(SPLIT_FOLDERS)
    return "folder" if in_folders and "train" in tops and test_fraction is None else "fraction"


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """Corpus-relative path -> split, from a split file (format in the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the split file ({err})") from None
    splits: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, split = line.rpartition("\t") if "\t" in line else line.strip().rpartition(" ")
        name, split = name.strip().removeprefix("./"), split.strip()
        if not name or not _SPLIT_NAME.fullmatch(split):
            raise ConfigError(f"{path}, line {number}: expected 'relative/path<TAB>split', found {line.strip()!r}")
        if splits.setdefault(name, split) != split:
            raise ConfigError(f"{path}, line {number}: {name} is listed in both {splits[name]} and {split}")
    if not splits:
        raise ConfigError(f"{path}: the split file lists no files")
    return splits


def assign_splits(
    names: Sequence[str],
    mode: str,
    *,
    split_file: str | os.PathLike | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    source: str | os.PathLike = "",
) -> tuple[dict[str, str], list[str]]:
    """Corpus name -> split for the files under the resolved rule ``mode``; and notes on files left out."""
    if mode == "folder":
        outside = [n for n in names if "/" not in n or n.split("/", 1)[0] not in SPLIT_FOLDERS]
        if outside:
            raise RawDataError(
                f"{posixpath.join(str(source), outside[0])}: not in a {'/, '.join(SPLIT_FOLDERS)}/ folder "
                "(the split rule is 'folder')"
            )
        return {n: n.split("/", 1)[0] for n in names}, []
    if mode == "list":
        listed = read_split_file(split_file)
        missing = sorted(set(listed) - set(names))
        if missing:
            raise RawDataError(
                f"{split_file}: {len(missing)} listed files are not in {source} (first: {missing[0]}); "
                "paths are relative to the corpus root"
            )
        unlisted = [n for n in names if n not in listed]
        notes = [f"{len(unlisted)} files not listed in {split_file} (first: {unlisted[0]})"] if unlisted else []
        return {n: listed[n] for n in names if n in listed}, notes
    if mode == "fraction":
        test_fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0 < test_fraction < 1:
            raise ConfigError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        ordered = sorted(names)
        folders = {f: k for k, f in enumerate(sorted({posixpath.dirname(n) for n in ordered}))}
        groups = np.array([folders[posixpath.dirname(n)] for n in ordered], dtype=np.int64)
        parts = split_indices(groups, {"train": 1 - test_fraction, "test": test_fraction}, seed)
        for split, indices in parts.items():
            if not len(indices):
                raise RawDataError(
                    f"{source}: a test fraction of {test_fraction} of each folder's files leaves {split}/ empty "
                    f"({len(names)} files in {len(folders)} folders); change --test-fraction or split by a file list"
                )
        return {ordered[i]: split for split, indices in parts.items() for i in indices}, []
    raise ConfigError(f"unknown split rule {mode!r}; expected one of {', '.join(SPLIT_MODES[1:])}")


@dataclass(frozen=True)
class Corpus:
    """The data files of a corpus under a split rule: member name -> corpus name, and the resolved rule."""

    source: str
    names: dict[str, str]
    mode: str
    split_file: str | os.PathLike | None = None
    test_fraction: float | None = None
    seed: int = 0

    @classmethod
    def of(
        cls,
        source: str | os.PathLike,
        members: Iterable[str],
        *,
        split: str = "auto",
        split_file: str | os.PathLike | None = None,
        test_fraction: float | None = None,
        seed: int = 0,
    ) -> Corpus:
        """The corpus of ``members`` (names from :func:`sparsenet.sources.iter_members`) at ``source``."""
        names = corpus_names(source, members)
        mode = resolve_mode(list(names.values()), split, split_file, test_fraction)
        return cls(str(source), names, mode, split_file, test_fraction, seed)

    def where(self, member: str) -> str:
        """The member as errors name it: ``source/member``."""
        return str(Path(self.source) / member)

    def inside(self, member: str) -> str:
        """The member's corpus name below its split folder, if any (:func:`within_split`)."""
        return within_split(self.names[member])

    def assign(self) -> tuple[dict[str, str], list[str]]:
        """Corpus name -> split, and notes on files left out (:func:`assign_splits`)."""
        return assign_splits(
            list(self.names.values()),
            self.mode,
            split_file=self.split_file,
            test_fraction=self.test_fraction,
            seed=self.seed,
            source=self.source,
        )

    @property
    def params(self) -> dict:
        """The split rule as recorded in the shards' ``params``."""
        return (
            {"split": self.mode, "seed": self.seed}
            | ({"test_fraction": self.test_fraction or DEFAULT_TEST_FRACTION} if self.mode == "fraction" else {})
            | ({"split_file": str(self.split_file)} if self.mode == "list" else {})
        )


@dataclass(frozen=True)
class Item:
    """One converted sample before labels are numbered: ``name`` is its file's corpus name, ``order``
    ranks it among the samples of that file, ``label`` is its class name."""

    name: str
    order: int
    sample_id: str
    label: str
    coords: np.ndarray
    features: np.ndarray


def by_split(items: Iterable[Item], splits: Mapping[str, str]) -> tuple[dict[str, list[Sample]], tuple[str, ...]]:
    """Samples per split (``splits``: corpus name -> split; files without one are left out) and the class names.

    Class names are the sorted distinct labels of every item kept; label ``k`` is ``class_names[k]``.
    Samples come sorted by (file name, order); splits in the order train, val, test, then others by name.
    """
    kept = sorted((i for i in items if i.name in splits), key=lambda i: (i.name, i.order))
    names = tuple(sorted({i.label for i in kept}))
    index = {c: k for k, c in enumerate(names)}
    rank = {s: k for k, s in enumerate(SPLIT_FOLDERS)}
    out: dict[str, list[Sample]] = {s: [] for s in sorted(set(splits.values()), key=lambda s: (rank.get(s, 3), s))}
    for i in kept:
        out[splits[i.name]].append(Sample(i.coords, i.features, index[i.label], i.sample_id))
    return out, names


def write_splits(
    out_dir: str | os.PathLike,
    meta: ShardMeta,
    samples_by_split: Mapping[str, Sequence[Sample]],
    *,
    overwrite: bool = False,
    notes: Sequence[str] = (),
) -> dict:
    """Write ``out_dir/<split>/`` for every split (samples in the given order); returns the converter's summary.

    All splits replace ``out_dir`` together (:class:`~sparsenet.datasets.DatasetWriter`: files sparsenet
    did not write there are refused, or kept with ``overwrite``). Every split must hold samples (an
    empty one raises :class:`RawDataError`), checked before anything is written. The summary:
    ``out_dir``, ``samples`` (split -> count), ``num_classes``, ``split`` (the rule), ``skipped``
    (``notes``), ``run_id`` and ``kept`` (foreign files kept).
    """
    if not meta.dataset.strip():
        raise ConfigError("the dataset name (--name) must not be empty")
    for split, samples in samples_by_split.items():
        if not samples:
            raise RawDataError(f"{meta.source}: no samples for the {split} split")
    with DatasetWriter(out_dir, meta, overwrite=overwrite) as dataset:
        for split, samples in samples_by_split.items():
            writer = dataset.split(split)
            for s in samples:
                writer.add(s.coords, s.features, s.label, s.sample_id)
    return {
        "out_dir": str(out_dir),
        "samples": {split: len(samples) for split, samples in samples_by_split.items()},
        "num_classes": meta.num_classes,
        "split": meta.params.get("split"),
        "skipped": list(notes),
        "run_id": dataset.run_id,
        "kept": dataset.kept,
    }


def write_items(
    out_dir: str | os.PathLike, meta: ShardMeta, items: Sequence[Item], splits: Mapping[str, str], **write: Any
) -> dict:
    """:func:`by_split` of ``items``, their class names and count put into ``meta``, then :func:`write_splits`
    (``write``: its ``overwrite`` and ``notes``)."""
    samples, class_names = by_split(items, splits)
    meta = dataclasses.replace(meta, num_classes=len(class_names), class_names=class_names)
    return write_splits(out_dir, meta, samples, **write)


def read_raw(path: str | os.PathLike) -> bytes:
    """The bytes of one raw input file (``read_input``); an unreadable one raises :class:`RawDataError`."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise RawDataError(f"{path}: cannot read ({err.strerror})") from None
