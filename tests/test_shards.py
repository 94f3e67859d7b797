"""The shard format: round trip, validation of bad files, atomic writes, the documented reader."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sparsenet.batch import ShardDataset
from sparsenet.shards import MANIFEST, ShardError, ShardMeta, ShardReader, ShardWriter, shard_files
from sparsenet.summary import summarize


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


META = ShardMeta((4, 4), 3, ("a", "b"))


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


def test_shard_files_skip_unfinished_writes(tmp_path, make_split):
    folder = make_split("train")
    hidden = tmp_path / ".train.tmp-1-x"
    hidden.mkdir()
    (hidden / "shard-00000.h5").write_bytes((folder / "shard-00000.h5").read_bytes())
    assert shard_files(tmp_path / "train") == [
        folder / "shard-00000.h5",
        folder / "shard-00001.h5",
        folder / "shard-00002.h5",
    ]
    part = tmp_path / "shard-00009.h5.part"
    part.write_bytes(b"")
    with pytest.raises(ShardError, match="not a .h5 shard file"):
        shard_files(part)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ShardError, match="no manifest.json"):
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


def _doc_examples(repo_root) -> list[str]:
    """The python blocks of docs/shard-format.md: the reader without sparsenet, then the writer example."""
    text = (repo_root / "docs" / "shard-format.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2, "docs/shard-format.md should hold two python examples (reading, writing)"
    return [textwrap.dedent(block) for block in blocks]


def _documented_split(repo_root):
    namespace: dict = {"__name__": "shard_format_example"}
    exec(compile(_doc_examples(repo_root)[0], "docs/shard-format.md", "exec"), namespace)
    return namespace


def test_documented_reader_matches_shard_reader(make_split, capsys, monkeypatch, repo_root):
    folder = make_split(samples=7, per_shard=3)
    namespace = _documented_split(repo_root)
    documented, reader = namespace["Split"](folder), ShardReader(folder)
    assert len(documented) == len(reader)
    for i, sample in enumerate(reader):
        coords, features, label, sample_id = documented[i]
        np.testing.assert_array_equal(coords, sample.coords)
        np.testing.assert_array_equal(features, sample.features)
        assert (label, sample_id) == (sample.label, sample.sample_id)
    dense = namespace["to_dense"](coords, features, reader.meta.spatial_shape)
    np.testing.assert_array_equal(dense[:, coords[:, 0], coords[:, 1]], features.T)
    monkeypatch.setattr(sys, "argv", ["example", str(folder)])
    exec(compile(_doc_examples(repo_root)[0], "docs/shard-format.md", "exec"), {"__name__": "__main__"})
    assert "7 samples; sample 0 (s0): 1 sites, features ['a', 'b'], label 0, dense (2, 8, 6)" in capsys.readouterr().out


def test_documented_reader_in_dataloader_workers_opens_each_file_once(make_split, repo_root, monkeypatch):
    folder = make_split(samples=10, per_shard=4)
    namespace = _documented_split(repo_root)
    split = namespace["Split"](folder)
    opened = []
    real_open = namespace["open_shard"]
    namespace["open_shard"] = lambda path: opened.append(path) or real_open(path)
    assert [split[i][3] for i in range(10)] == [f"s{i}" for i in range(10)]
    assert len(opened) == 3  # one handle per file in this process, not one per sample
    loader = torch.utils.data.DataLoader(split, batch_size=4, num_workers=2, collate_fn=list)
    assert sorted(s[3] for batch in loader for s in batch) == sorted(f"s{i}" for i in range(10))


def test_documented_writer_example_runs(tmp_path, monkeypatch, repo_root, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_doc_examples(repo_root)[1], "docs/shard-format.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip() == "100 [40, 40, 20] cloud-0 ('height', 'ink')"
    (split,) = summarize(tmp_path / "my-points")
    assert split.samples == 100 and split.meta.class_names == ("flat", "bump")
    labels = ShardReader(tmp_path / "my-points" / "train").labels
    assert labels.tolist() == [i % 2 for i in range(100)]


@pytest.fixture
def many_shards(tmp_path):
    """A split of 30 shards of 2 samples each (sample i has i % 4 + 1 sites, label i % 3)."""
    meta = ShardMeta((8, 6), 3, ("a",), ("zero", "one", "two"))
    with ShardWriter(tmp_path / "many", meta, samples_per_shard=2) as writer:
        for i in range(60):
            writer.add(
                np.stack([np.arange(i % 4 + 1), np.full(i % 4 + 1, i % 6)], axis=1),
                np.ones((i % 4 + 1, 1)),
                i % 3,
                f"s{i}",
            )
    return tmp_path / "many"


def test_len_and_locate_come_from_the_manifest(many_shards):
    reader = ShardReader(many_shards)
    for k in range(1, 30):  # only the first file is opened (for the meta); the others may even be gone
        (many_shards / f"shard-{k:05d}.h5").unlink()
    assert len(reader) == 60 and reader.locate(59) == (29, 1) and reader.file_counts == [2] * 30
    assert reader.cached() == []


def test_the_cache_holds_at_most_cache_shards(many_shards):
    reader = ShardReader(many_shards, cache_shards=3)
    order = np.random.default_rng(0).permutation(60)
    for i in order:
        sample = reader[int(i)]
        assert sample.sample_id == f"s{i}" and len(sample.coords) == i % 4 + 1
        assert len(reader.cached()) <= 3
    assert reader.cached()[-1] == reader.locate(int(order[-1]))[0]  # least recently used goes first
    with pytest.raises(ValueError, match="cache_shards"):
        ShardReader(many_shards, cache_shards=0)


def _cached_in_worker(samples):
    """A collate_fn reporting how many shards the worker's reader holds."""
    info = torch.utils.data.get_worker_info()
    return len(info.dataset.reader.cached()), [s.sample_id for s in samples]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_workers_read_lazily_forked_or_spawned(many_shards, context):
    dataset = ShardDataset(ShardReader(many_shards, cache_shards=2))
    dataset[0]  # the parent holds a shard before the workers start
    workers = 2 if context == "fork" else 1  # a spawned worker imports torch: keep it to one
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=5,
        shuffle=True,
        num_workers=workers,
        multiprocessing_context=context,
        collate_fn=_cached_in_worker,
    )
    seen = []
    for cached, ids in loader:
        assert cached <= 2
        seen += ids
    assert sorted(seen) == sorted(f"s{i}" for i in range(60))


def test_a_reader_pickles_without_its_cache(many_shards):
    import pickle

    reader = ShardReader(many_shards)
    [reader[i] for i in range(0, 60, 2)]
    copy = pickle.loads(pickle.dumps(reader))
    assert reader.cached() and copy.cached() == []
    assert copy[59].sample_id == "s59" and len(copy) == 60


def test_the_data_api_is_exported_from_the_package_top_without_importing_torch():
    code = (
        "import sys, sparsenet; assert 'torch' not in sys.modules and 'h5py' not in sys.modules; "
        "from sparsenet import ShardReader, ShardDataset, ShardStream, ShardWriter, ShardMeta, collate, SparseBatch; "
        "import sparsenet.shards, sparsenet.batch; "
        "assert ShardReader is sparsenet.shards.ShardReader and collate is sparsenet.batch.collate; "
        "import os; assert os.environ['MKL_CBWR'] == 'AUTO,STRICT'"
    )
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_reader_of_several_folders_indexes_and_bounds(tmp_path, make_split):
    a, b = make_split("a", samples=3, per_shard=2), make_split("b", samples=4, per_shard=4)
    reader = ShardReader([a, b])
    assert len(reader) == 7 and [s.sample_id for s in reader] == ["s0", "s1", "s2", "s0", "s1", "s2", "s3"]
    assert reader[-7].sample_id == "s0" and reader[-1].sample_id == "s3"
    for index in (7, -8):
        with pytest.raises(IndexError) as err:
            reader[index]
        assert str(err.value) == f"sample {index} out of range for 7 samples"


def test_a_cache_hit_makes_its_shard_the_most_recently_used(make_split):
    reader = ShardReader(make_split(samples=7, per_shard=3), cache_shards=2)
    first = reader.shard(0)[0]
    reader.shard(1)
    assert reader.shard(0)[0] is first and reader.cached() == [1, 0]  # not read again
    reader.shard(2)  # evicts shard 1, the least recently used
    assert reader.cached() == [0, 2] and reader.shard(0)[0] is first
    assert [reader.start(k) for k in range(3)] == [0, 3, 6]


def _edit_manifest(folder, change):
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("ids, expected", [(("r1", "r1"), "r1"), (("r1", "r2"), None), (("r1", None), None)])
def test_run_id_of_several_splits_is_theirs_only_when_they_agree(make_split, ids, expected):
    folders = [make_split(name, samples=2, per_shard=2) for name in ("a", "b")]
    for folder, run_id in zip(folders, ids):
        if run_id is not None:
            _edit_manifest(folder, lambda m, run_id=run_id: m.update(run_id=run_id))
    assert ShardReader(folders).run_id == expected


def _rehash(folder):
    """Make the manifest list the shards' current SHA-256, so a damaged shard gets past that check."""
    import hashlib

    def update(manifest):
        for entry in manifest["files"]:
            entry["sha256"] = hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest()

    _edit_manifest(folder, update)


def _with_h5(change):
    def damage(path):
        import h5py

        with h5py.File(path, "r+") as f:
            change(f)

    return damage


def _replace_labels(f):
    del f["labels"]
    f.create_dataset("labels", data=np.array([0, 1, 3], dtype=np.int64))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (
            _with_h5(lambda f: f.attrs.__setitem__("class_names", ["0", "1", "2"])),
            "does not match {first} (spatial shape, classes or features differ)",
        ),
        (
            _with_h5(lambda f: f.attrs.__setitem__("format", "anndata")),
            "not a sparsenet shard (attribute format='anndata', expected 'sparsenet.shard')",
        ),
        (_with_h5(_replace_labels), "labels outside 0..2"),
    ],
    ids=["other-classes", "foreign", "bad-labels"],
)
def test_a_bad_shard_is_named_when_it_is_loaded(make_split, damage, problem):
    folder = make_split(samples=7, per_shard=3)
    damage(folder / "shard-00001.h5")
    _rehash(folder)
    reader = ShardReader(folder)  # reads the first shard only
    with pytest.raises(ShardError) as err:
        reader.shard(1)
    first = folder / "shard-00000.h5"
    assert str(err.value) == f"{folder / 'shard-00001.h5'}: {problem.format(first=first)}"


def test_a_shard_deleted_after_the_reader_opened_is_named_when_it_is_loaded(make_split):
    folder = make_split(samples=7, per_shard=3)
    reader = ShardReader(folder)
    (folder / "shard-00001.h5").unlink()
    with pytest.raises(ShardError) as err:
        reader.shard(1)
    assert str(err.value) == f"{folder / 'shard-00001.h5'}: listed in {MANIFEST} but missing"


def test_the_first_shard_and_the_manifests_are_checked_when_the_reader_opens(make_split):
    folder = make_split(samples=7, per_shard=3)
    first = folder / "shard-00000.h5"
    _edit_manifest(folder, lambda m: m.update(feature_names=["a", "c"]))
    with pytest.raises(ShardError) as err:
        ShardReader(folder)
    assert str(err.value) == f"{folder / MANIFEST}: does not describe {first}'s field and features"
    _with_h5(lambda f: f.attrs.__setitem__("format", "anndata"))(first)
    with pytest.raises(ShardError) as err:
        ShardReader(folder)
    assert str(err.value) == f"{first}: not a sparsenet shard (attribute format='anndata', expected 'sparsenet.shard')"


def test_the_cache_holds_eight_shards_by_default_and_may_hold_one(many_shards):
    reader = ShardReader(many_shards)
    for k in range(10):
        reader.shard(k)
    assert reader.cache_shards == 8 and reader.cached() == list(range(2, 10))
    single = ShardReader(many_shards, cache_shards=1)
    assert [single.shard(k)[1].tolist() for k in (0, 1)] == [["s0", "s1"], ["s2", "s3"]]
    assert single.cached() == [1]
    with pytest.raises(ValueError) as err:
        ShardReader(many_shards, cache_shards=0)
    assert str(err.value) == "cache_shards must be at least 1, got 0"
