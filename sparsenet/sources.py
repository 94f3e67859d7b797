"""Finding raw datasets: a local folder or archive, ``$SPARSENET_RAW``, ``data/raw``, or a download.

:func:`locate` answers "where is the raw ``assamese`` / ``mnist`` / ``caltech101`` data?" in
this order, first hit wins:

1. an explicit ``source`` (``--source PATH``): a folder, or the original archive file;
2. ``$SPARSENET_RAW/<dataset>/`` (a folder laid out like ``../shared/data``);
3. ``data/raw/<dataset>/`` (where downloads go);
4. a download from the official source into ``data/raw/<dataset>/``, with a progress bar,
   a checksum check where a published checksum exists, and an atomic rename.

:func:`iter_members` then reads the data files out of whatever was found: a folder (searched
recursively), a ``.tar``/``.tar.gz`` (streamed, nothing extracted to disk), a ``.zip``, or a
``.rar`` (only with the optional ``rarfile`` package and an unrar tool; otherwise the error
says how to extract it). Every failure is a :class:`RawDataError` whose message names the
file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sparsenet.errors import RawDataError

ENV_VAR = "SPARSENET_RAW"
DEFAULT_RAW = Path("data/raw")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".rar")


@dataclass(frozen=True)
class Remote:
    """One file of a dataset's official distribution.

    ``digest`` is ``"sha256:<hex>"`` or ``"md5:<hex>"`` (the published value), or ``""`` when
    no checksum is published. ``member``, if set, is the file to take out of a downloaded zip.
    """

    name: str
    urls: tuple[str, ...]
    digest: str = ""
    member: str = ""


_LECUN = "http://yann.lecun.com/exdb/mnist/"
_OSSCI = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

REMOTES: dict[str, tuple[Remote, ...]] = {
    # UCI publishes no checksum for the RAR.
    "assamese": (
        Remote(
            "Online Handwritten Assamese Characters Dataset.rar",
            (
                "https://archive.ics.uci.edu/ml/machine-learning-databases/00208/"
                "Online%20Handwritten%20Assamese%20Characters%20Dataset.rar",
            ),
        ),
    ),
    "mnist": tuple(
        Remote(name, (_OSSCI + name, _LECUN + name), f"sha256:{sha}") for name, sha in _MNIST_SHA256.items()
    ),
    # CaltechDATA serves a zip holding the original tarball, whose md5 is the long-published one.
    "caltech101": (
        Remote(
            "101_ObjectCategories.tar.gz",
            ("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip",),
            "md5:b224c7392d521a49829488ab0f1120d9",
            member="caltech-101/101_ObjectCategories.tar.gz",
        ),
    ),
}

HOW_TO_SUPPLY = (
    "Supply a local copy instead: pass --source PATH (a folder or the original archive), or set "
    f"{ENV_VAR} to a folder laid out like ../shared/data (assamese/, mnist/, caltech101/)."
)


def locate(
    dataset: str,
    source: str | os.PathLike | None = None,
    *,
    raw_root: str | os.PathLike = DEFAULT_RAW,
    download: bool = True,
) -> Path:
    """The folder or archive holding ``dataset``'s raw files (see the module docstring for the order)."""
    if dataset not in REMOTES:
        raise RawDataError(f"unknown dataset {dataset!r}; expected one of {', '.join(REMOTES)}")
    if source is not None:
        path = Path(source).expanduser()
        if not path.exists():
            raise RawDataError(f"{path}: --source does not exist")
        return path
    looked = []
    env = os.environ.get(ENV_VAR)
    if env:
        looked.append(Path(env) / dataset)
    looked.append(Path(raw_root) / dataset)
    for path in looked:
        if path.is_dir() and any(path.iterdir()):
            return path
    if not download:
        raise RawDataError(f"no raw {dataset} data in {' or '.join(map(str, looked))}. {HOW_TO_SUPPLY}")
    folder = Path(raw_root) / dataset
    for remote in REMOTES[dataset]:
        fetch(remote, folder)
    return folder


def fetch(remote: Remote, folder: Path) -> Path:
    """Download ``remote`` into ``folder`` unless already there; verify; rename into place atomically."""
    target = folder / remote.name
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f".{remote.name}.part-{os.getpid()}"
    errors = []
    try:
        for url in remote.urls:
            try:
                _download(url, part)
                break
            except (urllib.error.URLError, OSError, ValueError) as err:
                errors.append(f"{url}: {getattr(err, 'reason', err)}")
        else:
            raise RawDataError(f"could not download {remote.name} ({'; '.join(errors)}). {HOW_TO_SUPPLY}")
        if remote.member:
            _take_member(part, remote.member)
        verify(part, remote.digest, remote.name)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)
    return target


def _download(url: str, dest: Path) -> None:
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name.lstrip(".").split(".part-")[0]) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def _take_member(path: Path, member: str) -> None:
    """Replace the zip at ``path`` by its file ``member``."""
    tmp = path.with_name(path.name + ".member")
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, path)
    except (zipfile.BadZipFile, KeyError) as err:
        raise RawDataError(
            f"downloaded archive for {member} is not the expected zip ({err}). {HOW_TO_SUPPLY}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def verify(path: Path, digest: str, name: str = "") -> None:
    """Raise :class:`RawDataError` unless ``path`` matches ``digest`` (``"sha256:.."``/``"md5:.."``; ``""`` skips)."""
    if not digest:
        return
    algorithm, expected = digest.split(":", 1)
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise RawDataError(
            f"{name or path}: {algorithm} checksum mismatch (expected {expected}, found {h.hexdigest()}); "
            f"the download is corrupt or not the official file. {HOW_TO_SUPPLY}"
        )


def is_archive(path: Path) -> bool:
    """True for the archive kinds :func:`iter_members` reads."""
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def iter_members(
    path: str | os.PathLike, match: Callable[[str], bool], *, skipped: list[str] | None = None
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for every file under ``path`` whose POSIX name satisfies ``match``.

    ``path`` is a folder or an archive. In a folder, plain files win; if none match, the
    archives directly inside the folder are read instead (``$SPARSENET_RAW/assamese`` holds
    the tarball). Names are relative to ``path`` (or the archive root). Hidden files are skipped.
    Order is the folder's sorted order or the archive's stored order. A matching name that is
    not a regular file (a folder named ``W3/12.3.txt``, a broken link, a pipe) is not read; a
    note saying so is appended to ``skipped`` when given (the converters report these notes).
    """
    path = Path(path)
    if path.is_file():
        yield from _iter_archive(path, match, skipped)
        return
    if not path.is_dir():
        raise RawDataError(f"{path}: no such file or folder. {HOW_TO_SUPPLY}")
    visible = [p for p in sorted(path.rglob("*")) if not _hidden(p.relative_to(path))]
    hits = [p for p in visible if match(p.relative_to(path).as_posix())]
    files = [p for p in hits if p.is_file()]
    if files:
        for p in hits:
            if p.is_file():
                yield p.relative_to(path).as_posix(), p.read_bytes()
            else:
                _skip(skipped, p.relative_to(path).as_posix(), _kind(p))
        return
    archives = [p for p in sorted(path.iterdir()) if is_archive(p) and not p.name.startswith(".")]
    if not archives:
        raise RawDataError(f"{path}: no matching data files and no archive in this folder. {HOW_TO_SUPPLY}")
    for archive in archives:
        yield from _iter_archive(archive, match, skipped)


def _kind(path: Path) -> str:
    if path.is_dir():
        return "a folder"
    if path.is_symlink() and not path.exists():
        return "a broken link"
    return "not a regular file"


def _skip(skipped: list[str] | None, name: str, kind: str) -> None:
    if skipped is not None:
        skipped.append(f"{name}: {kind}, not a data file")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _iter_archive(path: Path, match: Callable[[str], bool], skipped: list[str] | None) -> Iterator[tuple[str, bytes]]:
    name = path.name.lower()
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(path, "r|*") as tar:  # streamed: one pass, nothing written to disk
                for member in tar:
                    if not match(member.name.rstrip("/")) or _hidden(Path(member.name)):
                        continue
                    if member.isfile():
                        yield member.name, tar.extractfile(member).read()
                    else:
                        _skip(skipped, member.name, "a folder" if member.isdir() else "not a regular file")
        elif name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if not match(info.filename.rstrip("/")) or _hidden(Path(info.filename)):
                        continue
                    if info.is_dir():
                        _skip(skipped, info.filename.rstrip("/"), "a folder")
                    else:
                        yield info.filename, archive.read(info)
        elif name.endswith(".rar"):
            yield from _iter_rar(path, match)
        else:
            raise RawDataError(f"{path}: not a folder or a supported archive ({', '.join(ARCHIVE_SUFFIXES)})")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise RawDataError(f"{path}: cannot read the archive ({err}); it may be truncated or corrupt") from None


def _iter_rar(path: Path, match: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    how = (
        f"{path} is a RAR archive, which Python reads only with the `rarfile` package and an unrar tool. "
        f"Extract it instead (e.g. `unrar x '{path}'`, `7z x '{path}'` or `bsdtar -xf '{path}'`) and pass the "
        "extracted folder with --source."
    )
    try:
        import rarfile
    except ImportError:
        raise RawDataError(how) from None
    try:
        with rarfile.RarFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir() and match(info.filename):
                    yield info.filename, archive.read(info)
    except rarfile.Error as err:
        raise RawDataError(f"{how} ({err})") from None
