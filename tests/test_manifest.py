"""A split by its manifest: file list, counts and checksums from manifest.json; dataset folders refused."""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace

import pytest

from sparsenet import manifest as manifest_module
from sparsenet.manifest import MANIFEST, dataset_splits, file_sha256, open_split
from sparsenet.shards import ShardError, ShardReader


def _edit(folder, change):
    path = folder / MANIFEST
    values = json.loads(path.read_text())
    change(values)
    path.write_text(json.dumps(values))


def test_file_list_counts_and_checksums_come_from_the_manifest(make_split):
    folder = make_split(samples=7, per_shard=3)
    split = open_split(folder)
    assert [(s.path.name, s.samples) for s in split.files] == [
        ("shard-00000.h5", 3),
        ("shard-00001.h5", 3),
        ("shard-00002.h5", 1),
    ]
    assert all(s.sha256 == file_sha256(s.path) for s in split.files)
    assert split.run_id is None
    _edit(folder, lambda m: m.update(run_id="run-1"))
    assert open_split(folder).run_id == "run-1" and ShardReader(folder).run_id == "run-1"


def _zero_sha(m):
    m["files"][1]["sha256"] = "0" * 64


def _wrong_count(m):
    m["files"][1]["samples"] = 2
    m["samples"] = 6


@pytest.mark.parametrize(
    "damage, where, problem",
    [
        (lambda f: (f / "shard-00001.h5").unlink(), "shard-00001.h5", "listed in manifest.json but missing"),
        (
            lambda f: (f / "shard-00007.h5").write_bytes((f / "shard-00000.h5").read_bytes()),
            "shard-00007.h5",
            "not listed in manifest.json",
        ),
        (lambda f: (f / MANIFEST).write_text("{not json"), MANIFEST, "not valid JSON"),
        (lambda f: (f / MANIFEST).unlink(), "split", r"3 shard-\*\.h5 file\(s\) but no manifest.json"),
        (lambda f: _edit(f, lambda m: m.pop("files")), MANIFEST, "field 'files' is missing"),
        (lambda f: _edit(f, lambda m: m.update(samples=999999)), MANIFEST, '"samples" is 999999'),
        (lambda f: _edit(f, lambda m: m["files"][0].update(file="../x.h5")), MANIFEST, "bad entry"),
        (lambda f: _edit(f, lambda m: m.update(version=2)), MANIFEST, "this sparsenet reads"),
        (lambda f: _edit(f, lambda m: m.update(num_classes=4)), MANIFEST, "does not describe"),
    ],
    ids=[
        "missing-file",
        "unlisted-file",
        "not-json",
        "no-manifest",
        "no-files",
        "wrong-total",
        "path",
        "version",
        "meta",
    ],
)
def test_a_split_that_disagrees_with_its_manifest_is_refused(make_split, damage, where, problem):
    folder = make_split(samples=7, per_shard=3)
    damage(folder)
    with pytest.raises(ShardError, match=problem) as info:
        ShardReader(folder)
    assert info.value.path.endswith(where)


@pytest.mark.parametrize("damage, problem", [(_zero_sha, "SHA-256 differs"), (_wrong_count, "holds 3 samples")])
def test_checksum_or_count_mismatch_names_the_file_on_reading(make_split, damage, problem):
    folder = make_split(samples=7, per_shard=3)
    _edit(folder, damage)
    reader = ShardReader(folder)
    assert reader[0].sample_id == "s0"  # shard 0 is fine
    with pytest.raises(ShardError, match=problem) as info:
        reader.shard(1)
    assert info.value.path == str(folder / "shard-00001.h5")


def test_a_dataset_folder_is_refused_naming_its_splits(make_split, tmp_path):
    make_split("train")
    make_split("test", samples=4)
    (tmp_path / ".train.tmp-1-abc").mkdir()  # a writer's leftover is not a split
    with pytest.raises(ShardError, match=r"holding 2 split\(s\) \(test, train\)"):
        ShardReader(tmp_path)
    assert dataset_splits(tmp_path) == [tmp_path / "test", tmp_path / "train"]
    assert dataset_splits(tmp_path / "train") == [tmp_path / "train"]


def test_a_single_file_reads_without_a_manifest(make_split):
    folder = make_split(samples=7, per_shard=3)
    (folder / MANIFEST).unlink()
    reader = ShardReader(folder / "shard-00001.h5")
    assert [s.sample_id for s in reader] == ["s3", "s4", "s5"] and reader.run_id is None


def test_each_file_is_hashed_once_per_process(make_split, monkeypatch):
    folder = make_split(samples=7, per_shard=3)
    hashed = []
    counting = SimpleNamespace(sha256=lambda: hashed.append(1) or hashlib.sha256())
    monkeypatch.setattr(manifest_module, "hashlib", counting)
    monkeypatch.setattr(manifest_module, "_HASHED", {})
    for _ in range(3):  # three epochs, three readers
        assert len(ShardReader(folder, cache_shards=1).labels) == 7
    assert len(hashed) == 3
    path = folder / "shard-00000.h5"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # changed: hashed again
    assert len(ShardReader(folder).labels) == 7
    assert len(hashed) == 4


def _message(path) -> str:
    with pytest.raises(ShardError) as err:
        open_split(path)
    return str(err.value)


def test_every_refusal_of_open_split_names_its_path_in_full(make_split, tmp_path):
    """The exact message of each way a path is not a split."""
    import h5py

    part = tmp_path / "shard-00000.h5.part"
    part.write_bytes(b"")
    assert _message(part) == f"{part}: not a .h5 shard file (a .part file is an unfinished write)"
    assert _message(tmp_path / "gone") == f"{tmp_path / 'gone'}: no such file or folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    expected = "no manifest.json: not a complete split (write splits with `sparsenet preprocess` or ShardWriter)"
    assert _message(empty) == f"{empty}: {expected}"
    train, test = make_split("data/train", samples=4, per_shard=2), make_split("data/test", samples=2)
    data = train.parent
    assert _message(data) == (
        f"{data}: a dataset folder holding 2 split(s) (test, train); read one split at a time, e.g. {test}"
    )
    (train / MANIFEST).unlink()
    assert _message(train) == f"{train}: 2 shard-*.h5 file(s) but {expected}"
    single = train / "shard-00000.h5"
    split = open_split(single)
    assert split.path == single and [(f.path, f.samples) for f in split.files] == [(single, 2)]
    with h5py.File(single, "r+") as f:
        del f["labels"]
    assert _message(single) == f"{single}: dataset 'labels' is missing"


def test_sample_ids_missing_misshapen_or_miscounted(make_split):
    import h5py
    import numpy as np

    from sparsenet.shardfile import read_sample_ids

    path = make_split(samples=3, per_shard=3) / "shard-00000.h5"
    with h5py.File(path, "r+") as f:
        assert read_sample_ids(f, path, 3).tolist() == ["s0", "s1", "s2"]
        with pytest.raises(ShardError) as err:
            read_sample_ids(f, path, 4)
        assert str(err.value) == f"{path}: sample_ids has 3 entries for 4 labels"
        del f["sample_ids"]
        ids = read_sample_ids(f, path, 3)
        assert ids.tolist() == ["", "", ""] and ids.dtype == object and ids.shape == (3,)
        f.create_dataset("sample_ids", data=np.zeros((3, 2), dtype="S2"))
        with pytest.raises(ShardError) as err:
            read_sample_ids(f, path, 3)
        assert str(err.value) == f"{path}: 'sample_ids' is not a one-dimensional dataset"


def _files(change):
    return lambda m: change(m["files"])


BAD_ENTRY = "(expected a new shard-NNNNN.h5, samples > 0, sha256)"


@pytest.mark.parametrize(
    "change, bad",
    [
        (_files(lambda files: files.__setitem__(0, "shard-00000.h5")), 0),
        (_files(lambda files: files[0].update(samples=0)), 0),
        (_files(lambda files: files[2].update(samples="1")), 2),
        (_files(lambda files: files[2].update(samples=True)), 2),
        (_files(lambda files: files[1].update(sha256="abc")), 1),
        (_files(lambda files: files[2].update(file="shard-00001.h5")), 2),
    ],
    ids=["not-an-object", "no-samples", "samples-as-text", "samples-as-bool", "bad-sha256", "listed-twice"],
)
def test_a_bad_entry_of_files_is_named_in_full(make_split, change, bad):
    folder = make_split(samples=7, per_shard=3)
    _edit(folder, change)
    entry = json.loads((folder / MANIFEST).read_text())["files"][bad]
    assert _message(folder) == f'{folder / MANIFEST}: bad entry in "files": {entry!r} {BAD_ENTRY}'


def test_a_file_of_one_sample_is_a_good_entry(make_split):
    folder = make_split(samples=4, per_shard=3)
    assert [f.samples for f in open_split(folder).files] == [3, 1]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[]", "not a JSON object"),
        (
            "{not json",
            "not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
            "re-run `sparsenet preprocess` to rebuild the split",
        ),
        (
            b"\xff",
            "not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte); "
            "re-run `sparsenet preprocess` to rebuild the split",
        ),
        (lambda m: m.update(version=True), "field 'version' is missing or not an integer"),
        (lambda m: m.update(samples=True), "field 'samples' is missing or not an integer"),
        (
            lambda m: m.update(format="other"),
            "format 'other' version 1; this sparsenet reads 'sparsenet.shard' version 1",
        ),
        (
            lambda m: m.update(version=2),
            "format 'sparsenet.shard' version 2; this sparsenet reads 'sparsenet.shard' version 1",
        ),
        (lambda m: m.update(files=[], samples=0), '"samples" is 0 but the files\' samples add up to another total'),
    ],
    ids=["array", "not-json", "not-utf8", "version-bool", "samples-bool", "format", "version", "no-files"],
)
def test_a_bad_manifest_is_named_in_full(make_split, content, problem):
    folder = make_split(samples=2, per_shard=2)
    if callable(content):
        _edit(folder, content)
    elif isinstance(content, bytes):
        (folder / MANIFEST).write_bytes(content)
    else:
        (folder / MANIFEST).write_text(content)
    assert _message(folder) == f"{folder / MANIFEST}: {problem}"


def test_files_of_equal_size_and_time_are_hashed_apart(tmp_path, monkeypatch):
    """The per-process cache of file_sha256 keys on the file's path as well as its size and time."""
    monkeypatch.setattr(manifest_module, "_HASHED", {})
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 10)
        os.utime(tmp_path / name, ns=(10**18, 10**18))
    for name in ("a", "b"):
        assert file_sha256(tmp_path / name) == hashlib.sha256(name.encode() * 10).hexdigest()


def test_dataset_splits_are_the_sub_folders_that_look_like_splits(make_split, tmp_path):
    """A sub-folder holding a manifest or shard files is a split (even an incomplete one, so that reading it
    says what is wrong); hidden folders (a writer's unfinished output), empty folders and files are not."""
    data = tmp_path / "data"
    make_split("data/full", samples=2, per_shard=2)
    (make_split("data/no-manifest", samples=2, per_shard=2) / MANIFEST).unlink()
    (data / "manifest-only").mkdir()
    (data / "manifest-only" / MANIFEST).write_text("{}")
    make_split("data/.full.tmp-1-abcd", samples=2, per_shard=2)  # renamed into place only when complete
    (data / "empty").mkdir()
    (data / "notes.txt").write_text("not a split")
    assert dataset_splits(data) == [data / "full", data / "manifest-only", data / "no-manifest"]
    for path in (data / "full", data / "no-manifest", data / "full" / "shard-00000.h5", tmp_path / "gone"):
        assert dataset_splits(path) == [path]


def test_a_labels_dataset_without_a_length_names_the_file(make_split):
    import h5py
    import numpy as np

    single = make_split(samples=2, per_shard=2) / "shard-00000.h5"
    with h5py.File(single, "r+") as f:
        del f["labels"]
        f.create_dataset("labels", data=np.int64(2))
    assert _message(single) == (
        f"{single}: dataset 'labels' cannot be read (TypeError: Attempt to take len() of scalar dataset)"
    )
