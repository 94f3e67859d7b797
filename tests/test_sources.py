"""Finding raw data: lookup order, downloads (checksums, atomicity, no network), reading archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
import zipfile

import pytest

from sparsenet import sources
from sparsenet.sources import RawDataError, Remote, fetch, iter_members, locate


@pytest.fixture
def offline(monkeypatch):
    """Every download fails as it does without network."""

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.delenv(sources.ENV_VAR, raising=False)


def test_lookup_order(tmp_path, monkeypatch, offline):
    env, raw = tmp_path / "env", tmp_path / "raw"
    (raw / "mnist").mkdir(parents=True)
    (raw / "mnist" / "x").write_text("x")
    assert locate("mnist", raw_root=raw) == raw / "mnist"
    (env / "mnist").mkdir(parents=True)
    (env / "mnist" / "x").write_text("x")
    monkeypatch.setenv(sources.ENV_VAR, str(env))
    assert locate("mnist", raw_root=raw) == env / "mnist"
    assert locate("mnist", tmp_path, raw_root=raw) == tmp_path
    with pytest.raises(RawDataError, match="does not exist"):
        locate("mnist", tmp_path / "nope")
    with pytest.raises(RawDataError, match="unknown dataset 'cifar'"):
        locate("cifar")


def test_download_failure_says_how_to_supply_data(tmp_path, offline):
    with pytest.raises(RawDataError) as info:
        locate("mnist", raw_root=tmp_path / "raw")
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz" in message
    assert "ossci-datasets" in message and "yann.lecun.com" in message
    assert "--source" in message and sources.ENV_VAR in message
    assert [p.name for p in (tmp_path / "raw" / "mnist").iterdir()] == []
    with pytest.raises(RawDataError, match="no raw assamese data"):
        locate("assamese", raw_root=tmp_path / "raw", download=False)


def _published(tmp_path, payload: bytes) -> tuple[str, str]:
    path = tmp_path / "published.bin"
    path.write_bytes(payload)
    return path.as_uri(), hashlib.sha256(payload).hexdigest()


def test_fetch_verifies_and_renames(tmp_path):
    url, sha = _published(tmp_path, b"payload" * 1000)
    missing = (tmp_path / "missing").as_uri()  # the first mirror fails, the second serves the file
    target = fetch(Remote("data.bin", (missing, url), f"sha256:{sha}"), tmp_path / "raw")
    assert target.read_bytes() == b"payload" * 1000
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]
    with pytest.raises(RawDataError, match="sha256 checksum mismatch"):
        fetch(Remote("other.bin", (url,), "sha256:" + "0" * 64), tmp_path / "raw")
    assert [p.name for p in target.parent.iterdir()] == ["data.bin"]  # no partial download left


def test_fetch_takes_member_of_zip(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("caltech-101/inner.tar.gz", b"inner bytes")
    url, _ = _published(tmp_path, buffer.getvalue())
    md5 = hashlib.md5(b"inner bytes").hexdigest()
    target = fetch(Remote("inner.tar.gz", (url,), f"md5:{md5}", member="caltech-101/inner.tar.gz"), tmp_path / "raw")
    assert target.read_bytes() == b"inner bytes"


def _tar_gz(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_iter_members_folders_and_archives(tmp_path):
    files = {"top/W1/1.1.txt": b"one", "top/W1/2.1.txt": b"two", "top/.hidden/3.1.txt": b"no", "top/readme": b"r"}
    match = lambda name: name.endswith(".txt")  # noqa: E731
    _tar_gz(tmp_path / "data.tar.gz", files)
    expected = [("top/W1/1.1.txt", b"one"), ("top/W1/2.1.txt", b"two")]
    assert list(iter_members(tmp_path / "data.tar.gz", match)) == expected
    assert list(iter_members(tmp_path, match)) == expected  # a folder holding only the archive
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    assert list(iter_members(tmp_path / "data.zip", match)) == expected
    plain = tmp_path / "plain"
    for name, data in files.items():
        (plain / name).parent.mkdir(parents=True, exist_ok=True)
        (plain / name).write_bytes(data)
    assert list(iter_members(plain, match)) == expected


def test_iter_members_bad_archives(tmp_path):
    (tmp_path / "cut.tar.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(RawDataError, match="cut.tar.gz: cannot read the archive"):
        list(iter_members(tmp_path / "cut.tar.gz", lambda n: True))
    (tmp_path / "data.rar").write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(RawDataError, match=r"RAR archive.*unrar x.*--source"):
        list(iter_members(tmp_path / "data.rar", lambda n: True))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RawDataError, match="no matching data files and no archive"):
        list(iter_members(tmp_path / "empty", lambda n: True))


def test_iter_members_reports_what_it_skips(tmp_path):
    """A folder (or link, or pipe) named like a data file is not read, and is reported, not silently dropped."""
    match = lambda name: name.endswith(".txt")  # noqa: E731
    plain = tmp_path / "plain"
    (plain / "W3").mkdir(parents=True)
    (plain / "W3" / "1.3.txt").write_bytes(b"one")
    (plain / "W3" / "12.3.txt").mkdir()
    (plain / "W3" / "13.3.txt").symlink_to("nowhere")
    os.mkfifo(plain / "W3" / "14.3.txt")  # reading it would block forever
    skipped: list[str] = []
    assert list(iter_members(plain, match, skipped=skipped)) == [("W3/1.3.txt", b"one")]
    assert skipped == [
        "W3/12.3.txt: a folder, not a data file",
        "W3/13.3.txt: a broken link, not a data file",
        "W3/14.3.txt: not a regular file, not a data file",
    ]
    with tarfile.open(tmp_path / "data.tar", "w") as tar:
        tar.add(plain / "W3" / "1.3.txt", "W3/1.3.txt")
        tar.add(plain / "W3" / "12.3.txt", "W3/12.3.txt")
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as archive:
        archive.writestr("W3/1.3.txt", b"one")
        archive.writestr("W3/12.3.txt/", b"")
    for archive in ("data.tar", "data.zip"):
        skipped = []
        assert list(iter_members(tmp_path / archive, match, skipped=skipped)) == [("W3/1.3.txt", b"one")]
        assert skipped == ["W3/12.3.txt: a folder, not a data file"]
