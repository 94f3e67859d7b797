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
