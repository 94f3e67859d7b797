"""The shard format: round trip, validation of bad files, atomic writes, the documented reader."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import torch

from sparsenet.batch import ShardDataset
from sparsenet.shards import (
    MANIFEST,
    ShardError,
    ShardMeta,
    ShardReader,
    ShardWriter,
    shard_files,
    validate_file,
    write_shard,
)


def test_round_trip(make_split):
    folder = make_split(samples=7, per_shard=3)
    assert [f.name for f in shard_files(folder)] == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    reader = ShardReader(folder)
    assert len(reader) == 7
    assert reader.meta.spatial_shape == (8, 6) and reader.meta.class_names == ("zero", "one", "two")
    assert reader.meta.params == {"k": 1}
    assert [s.sample_id for s in reader] == [f"s{i}" for i in range(7)]
    assert reader.labels.tolist() == [i % 3 for i in range(7)]
    assert reader.sites_per_sample.tolist() == [1 + i % 5 for i in range(7)]
    last = reader[-1]
    assert last.coords.dtype == np.int32 and last.features.dtype == np.float32 and last.sample_id == "s6"
    with pytest.raises(IndexError):
        reader[7]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["samples"] == 7 and manifest["class_counts"] == [3, 2, 2]
    assert [f["samples"] for f in manifest["files"]] == [3, 3, 1]


def _arrays(**changes) -> dict[str, np.ndarray]:
    arrays = {
        "coords": np.array([[0, 0], [1, 2], [3, 3]], dtype=np.int32),
        "features": np.ones((3, 2), dtype=np.float32),
        "offsets": np.array([0, 2, 3], dtype=np.int64),
        "labels": np.array([0, 2], dtype=np.int64),
    }
    for name, value in changes.items():
        arrays[name] = np.asarray(value, dtype=arrays[name].dtype)
    return arrays


META = ShardMeta((4, 4), 3, ("a", "b"))


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"features": [[1, 1], [np.nan, 1], [1, 1]]}, "NaN"),
        ({"labels": [0, 3]}, "labels outside 0..2"),
        ({"labels": [-1, 0]}, "labels outside"),
        ({"coords": [[0, 0], [1, 4], [3, 3]]}, "coords outside the field"),
        ({"coords": [[0, 0], [-1, 2], [3, 3]]}, "coords outside the field"),
        ({"offsets": [0, 0, 3]}, "not strictly increasing"),
        ({"offsets": [0, 2, 4]}, "offsets must run from 0 to 3"),
        ({"offsets": [0, 3]}, "offsets has 2 entries for 2 labels"),
    ],
)
def test_validation_rejects_bad_content(tmp_path, changes, problem):
    path = tmp_path / "bad.h5"
    write_shard(path, META, _arrays(**changes), ["x", "y"])
    with pytest.raises(ShardError, match=re.escape(problem)) as info:
        validate_file(path)
    assert str(path) in str(info.value)


def _set_attr(path, name, value):
    with h5py.File(path, "r+") as f:
        f.attrs[name] = value


def _bump_feature(path):
    with h5py.File(path, "r+") as f:
        f["features"][0, 0] += 1


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(b"definitely not hdf5" * 10), "not a readable HDF5 file"),
        (
            lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
            "not a readable HDF5 file|cannot be read",
        ),
        (lambda p: h5py.File(p, "w").close(), "not a sparsenet shard"),
        (lambda p: _set_attr(p, "format", "anndata"), "not a sparsenet shard"),
        (lambda p: _set_attr(p, "version", 2), "format version 2; this sparsenet reads version 1"),
        (_bump_feature, "checksum mismatch"),
    ],
    ids=["garbage", "truncated", "foreign-empty", "foreign-format", "wrong-version", "modified"],
)
def test_validation_rejects_bad_files(tmp_path, damage, problem):
    path = tmp_path / "shard.h5"
    write_shard(path, META, _arrays(), ["x", "y"])
    damage(path)
    with pytest.raises(ShardError, match=problem):
        validate_file(path)


def test_writer_refuses_bad_samples(tmp_path):
    with (
        pytest.raises(ValueError, match="sample s1: coordinates outside the field 4x4"),
        ShardWriter(tmp_path / "out", META) as writer,
    ):
        writer.add(np.zeros((1, 2), np.int32), np.zeros((1, 2)), 0, "s0")
        writer.add(np.array([[4, 0]]), np.zeros((1, 2)), 0, "s1")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    with ShardWriter(tmp_path / "out", META) as writer:
        for coords, problem in [
            (np.zeros((1, 2)), "integers"),
            (np.zeros((0, 2), np.int32), "at least one site"),
            (np.array([[1, 2], [1, 2]]), "same site appears twice"),
        ]:
            with pytest.raises(ValueError, match=problem):
                writer.add(coords, np.zeros((len(coords), 2)), 0)
        with pytest.raises(ValueError, match=r"label 3 outside 0..2"):
            writer.add(np.zeros((1, 2), np.int32), np.zeros((1, 2)), 3)
        writer.add(np.zeros((1, 2), np.int32), np.zeros((1, 2)), 2)
    assert len(ShardReader(tmp_path / "out")) == 1


def test_shard_files_skips_unfinished_and_foreign_names(tmp_path, make_split):
    folder = make_split("train")
    hidden = tmp_path / ".train.tmp-1-x"
    hidden.mkdir()
    (hidden / "shard-00000.h5").write_bytes((folder / "shard-00000.h5").read_bytes())
    assert all(".tmp" not in str(f) for f in shard_files(tmp_path))
    part = tmp_path / "shard-00009.h5.part"
    part.write_bytes(b"")
    with pytest.raises(ShardError, match="not a .h5 shard file"):
        shard_files(part)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ShardError, match="no shard-"):
        shard_files(empty)


_KILLED_WRITER = """
import os, sys
import numpy as np
from sparsenet.shards import ShardMeta, ShardWriter
with ShardWriter(sys.argv[1], ShardMeta((4, 4), 2, ("a",)), samples_per_shard=2) as writer:
    for i in range(5):
        writer.add(np.array([[i % 4, 0]]), np.ones((1, 1)), i % 2)
    os._exit(1)  # killed after two shards were flushed, before the split was complete
"""


def test_interrupted_write_leaves_nothing_and_rerun_completes(tmp_path, repo_root):
    out = tmp_path / "data" / "train"
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out)], cwd=repo_root, check=False)
    leftovers = list(out.parent.iterdir())
    assert [p.name.startswith(".train.tmp-") for p in leftovers] == [True]
    assert sorted(p.name for p in leftovers[0].iterdir()) == ["shard-00000.h5.part", "shard-00001.h5.part"]
    for path in (out.parent, leftovers[0]):
        with pytest.raises(ShardError):
            shard_files(path)
    with ShardWriter(out, ShardMeta((4, 4), 2, ("a",))) as writer:
        writer.add(np.array([[0, 0]]), np.ones((1, 1)), 1)
    assert [p.name for p in out.parent.iterdir()] == ["train"]  # the dead writer's folder is gone
    assert len(ShardReader(out)) == 1


def test_reader_in_dataloader_workers(make_split):
    dataset = ShardDataset(str(make_split(samples=10, per_shard=4)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=dataset.collate)
    batches = list(loader)
    assert sum(b.batch_size for b in batches) == 10
    assert torch.cat([b.labels for b in batches]).tolist() == [i % 3 for i in range(10)]
    assert sum(len(b.coords) for b in batches) == int(dataset.reader.sites_per_sample.sum())


def _doc_example(repo_root) -> str:
    text = (repo_root / "docs" / "shard-format.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/shard-format.md should hold one python example"
    return textwrap.dedent(blocks[0])


def test_documented_reader_matches_shard_reader(make_split, capsys, monkeypatch, repo_root):
    folder = make_split(samples=7, per_shard=3)
    namespace: dict = {"__name__": "shard_format_example"}
    exec(compile(_doc_example(repo_root), "docs/shard-format.md", "exec"), namespace)
    reader = ShardReader(folder)
    documented = namespace["read_split"](folder)
    assert len(documented) == len(reader)
    for (coords, features, label), sample in zip(documented, reader):
        np.testing.assert_array_equal(coords, sample.coords)
        np.testing.assert_array_equal(features, sample.features)
        assert label == sample.label
    coords, features, label = namespace["read_sample"](folder / "shard-00001.h5", 1)
    np.testing.assert_array_equal(coords, reader[4].coords)
    dense = namespace["to_dense"](coords, features, reader.meta.spatial_shape)
    np.testing.assert_array_equal(dense[:, coords[:, 0], coords[:, 1]], features.T)
    monkeypatch.setattr(sys, "argv", ["example", str(folder / "shard-00000.h5")])
    exec(compile(_doc_example(repo_root), "docs/shard-format.md", "exec"), {"__name__": "__main__"})
    assert "sample 0: 1 sites, features ['a', 'b'], label 0 (zero)" in capsys.readouterr().out


CHECKS = [
    (np.zeros((1, 2, 2), np.int32), np.zeros((1, 2)), "coords must have shape [n, 2], got [1, 2, 2]"),
    (np.zeros((3, 3), np.int32), np.zeros((3, 2)), "coords must have shape [n, 2], got [3, 3]"),
    (np.zeros((1, 2), np.float32), np.zeros((1, 2)), "coords must be integers, got float32"),
    (np.zeros((1, 2), np.int32), np.zeros((1, 2, 2)), "features must have shape [n, 2] (a, b), got [1, 2, 2]"),
    (np.zeros((1, 2), np.int32), np.zeros((1, 3)), "features must have shape [n, 2] (a, b), got [1, 3]"),
    (np.zeros((1, 2), np.int32), np.zeros((3, 2)), "1 coords but 3 feature rows"),
    (np.zeros((0, 2), np.int32), np.zeros((0, 2)), "a sample needs at least one site"),
    (np.array([[1, 1], [2, 0]]), np.zeros((2, 2)), "coordinates outside the field 8x2: y in [1, 2], x in [0, 1]"),
    (np.array([[1, 0], [7, 2]]), np.zeros((2, 2)), "coordinates outside the field 8x2: y in [1, 7], x in [0, 2]"),
    (np.array([[8, 0], [3, 1]]), np.zeros((2, 2)), "coordinates outside the field 8x2: y in [3, 8], x in [0, 1]"),
    (np.array([[5, 1], [5, 1]]), np.zeros((2, 2)), "the same site appears twice (merge duplicate sites before "),
    (np.array([[0, 0], [1, 1]]), np.array([[0, np.inf], [0, 0]]), "features contain NaN or infinity"),
]


@pytest.mark.parametrize("coords,features,message", CHECKS, ids=[m[:30] for *_, m in CHECKS])
def test_check_sample_says_exactly_what_is_wrong(coords, features, message):
    from sparsenet.shards import check_sample

    meta = ShardMeta((8, 2), 3, ("a", "b"))
    if "outside the field 8x2: y in [1, 2]" in message:
        meta = ShardMeta((8, 1), 3, ("a", "b"))
        message = message.replace("8x2", "8x1")
    with pytest.raises(ValueError) as err:
        check_sample(meta, coords, features, 0)
    assert str(err.value).startswith(message)


def test_sites_of_a_tall_field_are_told_apart():
    """(2, 0) and (0, 1) on an 8x2 field are different sites, and (7, 1) is inside."""
    from sparsenet.shards import check_sample

    check_sample(ShardMeta((8, 2), 3, ("a", "b")), np.array([[2, 0], [0, 1], [7, 1]]), np.zeros((3, 2)), 2)


def test_the_reader_names_the_file_of_each_problem(tmp_path, make_split):
    folder = make_split(samples=4, per_shard=2)
    first, second = shard_files(folder)
    with h5py.File(second, "r+") as f:
        del f["labels"]
    with pytest.raises(ShardError) as err:
        ShardReader(folder)
    assert str(err.value) == f"{second}: dataset 'labels' is missing"
    other = tmp_path / "other"
    other.mkdir()
    write_shard(other / "shard-00000.h5", META, _arrays(), ["x", "y"])
    write_shard(other / "shard-00001.h5", ShardMeta((4, 4), 3, ("a", "c")), _arrays(), ["x", "y"])
    with pytest.raises(ShardError) as err:
        ShardReader(other)
    problem = "(spatial shape, classes or features differ)"
    assert str(err.value) == f"{other / 'shard-00001.h5'}: does not match {other / 'shard-00000.h5'} {problem}"
    _set_attr(other / "shard-00001.h5", "version", 2)
    with pytest.raises(ShardError, match=re.escape(f"{other / 'shard-00001.h5'}: shard format version 2")):
        ShardReader(other)
    with pytest.raises(ShardError, match=re.escape(f"{other / 'shard-00001.h5'}: shard format version 2")):
        validate_file(other / "shard-00001.h5")


def test_the_reader_checks_each_file_as_it_loads_it(tmp_path):
    write_shard(tmp_path / "shard-00000.h5", META, _arrays(), ["x", "y"])
    assert validate_file(tmp_path / "shard-00000.h5")[1:2] == (2,)
    assert validate_file(tmp_path / "shard-00000.h5")[2].tolist() == [2, 1]
    _bump_feature(tmp_path / "shard-00000.h5")
    reader = ShardReader(tmp_path)
    with pytest.raises(ShardError, match=re.escape(f"{tmp_path / 'shard-00000.h5'}: content checksum mismatch")):
        reader[0]


def test_reader_of_several_folders_indexes_and_bounds(tmp_path, make_split):
    a, b = make_split("a", samples=3, per_shard=2), make_split("b", samples=4, per_shard=4)
    reader = ShardReader([a, b])
    assert len(reader) == 7 and [s.sample_id for s in reader] == ["s0", "s1", "s2", "s0", "s1", "s2", "s3"]
    assert reader[-7].sample_id == "s0" and reader[-1].sample_id == "s3"
    for index in (7, -8):
        with pytest.raises(IndexError) as err:
            reader[index]
        assert str(err.value) == f"sample {index} out of range for 7 samples"


def test_samples_without_ids_read_as_empty_ids(tmp_path):
    write_shard(tmp_path / "shard-00000.h5", META, _arrays(), ["x", "y"])
    with h5py.File(tmp_path / "shard-00000.h5", "r+") as f:
        del f["sample_ids"]
    assert [s.sample_id for s in ShardReader(tmp_path)] == ["", ""]


def _replace(name: str, value: np.ndarray):
    def damage(path):
        with h5py.File(path, "r+") as f:
            del f[name]
            f.create_dataset(name, data=value)

    return damage


def _delete(name: str, attribute: bool = False):
    def damage(path):
        with h5py.File(path, "r+") as f:
            del (f.attrs if attribute else f)[name]

    return damage


ARRAY_PROBLEMS = [
    (_delete("features"), "dataset 'features' is missing"),
    (_delete("offsets"), "dataset 'offsets' is missing"),
    (_replace("coords", np.zeros((3, 2), np.float32)), "dataset 'coords' is float32[3, 2], expected int32 with 2 dims"),
    (_replace("offsets", np.zeros((3, 1), np.int64)), "dataset 'offsets' is int64[3, 1], expected int64 with 1 dims"),
    (_replace("labels", np.zeros(2, np.int32)), "dataset 'labels' is int32[2], expected int64 with 1 dims"),
    (_replace("coords", np.zeros((3, 3), np.int32)), "coords has 3 columns, expected 2"),
    (_replace("features", np.zeros((3, 3), np.float32)), "features is [3, 3], expected [3, 2]"),
    (_replace("features", np.zeros((2, 2), np.float32)), "features is [2, 2], expected [3, 2]"),
    (_replace("offsets", np.array([0, 3], np.int64)), "offsets has 2 entries for 2 labels, expected 3"),
    (_replace("offsets", np.array([1, 2, 3], np.int64)), "offsets must run from 0 to 3"),
    (_replace("offsets", np.array([0, 1, 2], np.int64)), "offsets must run from 0 to 3"),
    (_replace("offsets", np.array([0, 3, 3], np.int64)), "offsets are not strictly increasing (an empty or negative"),
    (_replace("labels", np.array([0, 3], np.int64)), "labels outside 0..2"),
    (_replace("labels", np.array([-1, 0], np.int64)), "labels outside 0..2"),
    (_replace("coords", np.array([[0, 0], [0, 4], [3, 3]], np.int32)), "coords outside the field (4, 4)"),
    (_replace("coords", np.array([[0, 0], [4, 0], [3, 3]], np.int32)), "coords outside the field (4, 4)"),
    (_replace("coords", np.array([[0, 0], [0, -1], [3, 3]], np.int32)), "coords outside the field (4, 4)"),
    (_replace("features", np.array([[1, 1], [1, np.inf], [1, 1]], np.float32)), "features contain NaN or infinity"),
    (_bump_feature, "content checksum mismatch: the file was modified or is corrupt"),
    (_delete("format", True), "not a sparsenet shard (attribute format=None, expected 'sparsenet.shard')"),
    (
        lambda p: _set_attr(p, "format", "anndata"),
        "not a sparsenet shard (attribute format='anndata', expected 'sparsenet.shard')",
    ),
    (
        _delete("version", True),
        "shard format version -1; this sparsenet reads version 1. Re-run `sparsenet preprocess` to rebuild the shards.",
    ),
    (_delete("spatial_shape", True), "bad root attributes ("),
    (_delete("num_classes", True), "bad root attributes ("),
    (_delete("feature_names", True), "bad root attributes ("),
]


@pytest.mark.parametrize(
    "damage,message", ARRAY_PROBLEMS, ids=[f"{i}-{m[:24]}" for i, (_, m) in enumerate(ARRAY_PROBLEMS)]
)
def test_validation_messages_in_full(tmp_path, damage, message):
    path = tmp_path / "shard-00000.h5"
    write_shard(path, META, _arrays(), ["x", "y"])
    damage(path)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_optional_attributes_and_the_checksum_may_be_absent(tmp_path):
    path = tmp_path / "shard-00000.h5"
    meta = ShardMeta((4, 4), 3, ("a", "b"), ("x", "y", "z"), "src", "mnist", {"k": 2}, "mnist")
    write_shard(path, meta, _arrays(), ["x", "y"])
    assert validate_file(path)[0] == meta and validate_file(path)[0].params == {"k": 2}
    for name in ("class_names", "source", "params", "content_sha256"):
        _delete(name, True)(path)
    _bump_feature(path)  # without a stored checksum nothing can tell
    found = validate_file(path)[0]
    assert (found.class_names, found.source, found.params, found.dataset) == ((), "", {}, "mnist")
    assert validate_file(path)[1] == 2


def test_shard_files_in_order_below_a_folder_and_their_messages(tmp_path, make_split):
    folder = make_split("train", samples=7, per_shard=3)
    nested = tmp_path / "outer"
    (nested / "b").mkdir(parents=True)
    (nested / ".hidden").mkdir()
    for name in ("shard-00001.h5", "shard-00000.h5"):
        (nested / "b" / name).write_bytes((folder / name).read_bytes())
    (nested / ".hidden" / "shard-00000.h5").write_bytes((folder / "shard-00000.h5").read_bytes())
    (nested / "notes-00000.h5").write_bytes(b"")
    assert shard_files(nested) == [nested / "b" / "shard-00000.h5", nested / "b" / "shard-00001.h5"]
    assert shard_files(folder / "shard-00002.h5") == [folder / "shard-00002.h5"]
    cases = [
        (tmp_path / "nothing", "no such file or folder"),
        (tmp_path / "x.h5.part", "not a .h5 shard file (a .part file is an unfinished write)"),
        (nested / ".hidden", "no shard-*.h5 files in this folder (run `sparsenet preprocess` first)"),
    ]
    (tmp_path / "x.h5.part").write_bytes(b"")
    (nested / ".hidden" / "shard-00000.h5").rename(nested / ".hidden" / "other.h5")
    for path, message in cases:
        with pytest.raises(ShardError) as err:
            shard_files(path)
        assert str(err.value) == f"{path}: {message}"
    with pytest.raises(ShardError) as err:
        validate_file(tmp_path / "missing.h5")
    assert str(err.value) == f"{tmp_path / 'missing.h5'}: no such shard file"
    (tmp_path / "junk.h5").write_bytes(b"junk" * 100)
    with pytest.raises(ShardError, match=re.escape(f"{tmp_path / 'junk.h5'}: not a readable HDF5 file (")):
        validate_file(tmp_path / "junk.h5")


def test_dataset_and_converter_names_old_and_new(tmp_path):
    """The ``dataset`` attribute wins; without it (shards written before it) the dataset follows from
    the converter; without either both are empty. Names stored as bytes read as text."""
    path = tmp_path / "shard-00000.h5"
    write_shard(path, ShardMeta((4, 4), 3, ("a", "b"), (), "", "mnist", {}, "special"), _arrays(), ["x", "y"])
    assert (validate_file(path)[0].converter, validate_file(path)[0].dataset) == ("mnist", "special")
    _delete("dataset", True)(path)
    assert (validate_file(path)[0].converter, validate_file(path)[0].dataset) == ("mnist", "mnist")
    _delete("converter", True)(path)
    assert (validate_file(path)[0].converter, validate_file(path)[0].dataset) == ("", "")
    _set_attr(path, "feature_names", np.array([b"a", b"b"], dtype="S1"))
    assert validate_file(path)[0].feature_names == ("a", "b")


def test_a_dataset_that_cannot_be_decompressed_is_named(tmp_path):
    path = tmp_path / "shard-00000.h5"
    write_shard(path, META, _arrays(), ["x", "y"])
    with h5py.File(path, "r") as f:
        chunk = f["features"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value).startswith(f"{path}: dataset 'features' cannot be read (")
