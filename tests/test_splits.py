"""The split rules shared by the inkml and images converters: names, rule choice, split files, fractions."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from preprocess import splits
from sparsenet.errors import ConfigError, RawDataError
from sparsenet.shards import ShardMeta, ShardReader


def test_an_archive_loses_its_one_top_folder_unless_it_is_a_split(tmp_path):
    archive = tmp_path / "c.zip"
    archive.write_bytes(b"")
    names = ["corpus/a/1.png", "corpus/b/2.png"]
    assert splits.corpus_names(archive, names) == {"corpus/a/1.png": "a/1.png", "corpus/b/2.png": "b/2.png"}
    assert splits.corpus_names(archive, ["train/a/1.png", "train/b/2.png"])["train/a/1.png"] == "train/a/1.png"
    assert splits.corpus_names(archive, ["./x/1.png", "./x/2.png"]) == {"./x/1.png": "1.png", "./x/2.png": "2.png"}
    assert splits.corpus_names(tmp_path, names) == {n: n for n in names}  # a folder: names as they are


@pytest.mark.parametrize(
    ("names", "options", "rule"),
    [
        (["train/a/1", "test/a/2"], {}, "folder"),
        (["train/a/1", "val/a/2"], {}, "folder"),
        (["test/a/1", "test/a/2"], {}, "fraction"),  # no train/: not a split layout
        (["train/a/1", "other/a/2"], {}, "fraction"),
        (["train/a/1", "test/a/2"], {"test_fraction": 0.3}, "fraction"),
        (["train/a/1", "test/a/2"], {"split_file": "s.tsv"}, "list"),
        (["a/1"], {"mode": "folder"}, "folder"),
    ],
)
def test_auto_picks_the_rule_the_layout_and_options_say(names, options, rule):
    options = {"mode": "auto", "split_file": None, **options}
    assert splits.resolve_mode(names, **options) == rule


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "list"}, "needs a split file"),
        ({"mode": "folder", "split_file": "s"}, "a split file goes with the split rule 'list', not 'folder'"),
        ({"mode": "folder", "test_fraction": 0.1}, "a test fraction goes with the split rule 'fraction'"),
        ({"split_file": "s", "test_fraction": 0.1}, "not both"),
        ({"mode": "random"}, "unknown split rule 'random'"),
    ],
)
def test_contradicting_split_options_are_refused(options, match):
    options = {"mode": "auto", "split_file": None, **options}
    with pytest.raises(ConfigError, match=match):
        splits.resolve_mode(["a/1"], **options)


def test_split_files_take_tabs_or_a_last_word_and_skip_comments(tmp_path):
    listing = tmp_path / "s.txt"
    listing.write_text("# comment\n\nmy files/a 1.inkml\ttest\n./b/2.inkml   train\r\n  c/3.inkml val  \n")
    assert splits.read_split_file(listing) == {"my files/a 1.inkml": "test", "b/2.inkml": "train", "c/3.inkml": "val"}
    listing.write_text("a/1.inkml\n")
    with pytest.raises(ConfigError, match=r"s.txt, line 1: expected 'relative/path<TAB>split'"):
        splits.read_split_file(listing)
    listing.write_text("a/1.inkml\ttr/ain\n")
    with pytest.raises(ConfigError, match="line 1"):
        splits.read_split_file(listing)
    listing.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="lists no files"):
        splits.read_split_file(listing)


def test_fraction_is_per_folder_seeded_and_rounded():
    names = [f"{c}/{k}" for c, n in (("a", 10), ("b", 5), ("c", 3)) for k in range(n)]
    assigned, notes = splits.assign_splits(names, "fraction", test_fraction=0.3, seed=5)
    assert notes == [] and set(assigned) == set(names)
    tests = Counter(n.split("/")[0] for n, s in assigned.items() if s == "test")
    assert tests == {"a": 3, "b": 2, "c": 1}  # round(0.3 * n) per folder
    assert splits.assign_splits(names[::-1], "fraction", test_fraction=0.3, seed=5)[0] == assigned  # order-free
    with pytest.raises(RawDataError, match="leaves test/ empty"):
        splits.assign_splits(["a/1", "b/1"], "fraction", test_fraction=0.2)
    with pytest.raises(RawDataError, match=r"src/x: not in a train/, val/, test/ folder"):
        splits.assign_splits(["train/a", "x"], "folder", source="src")


def test_samples_are_grouped_sorted_and_numbered_by_class_name(tmp_path):
    one = (np.zeros((1, 2), np.int32), np.ones((1, 1), np.float32))
    items = [
        splits.Item("f2", 0, "f2", "b", *one),
        splits.Item("f1", 1, "f1#y", "a", *one),
        splits.Item("f1", 0, "f1#x", "c", *one),
        splits.Item("f3", 0, "f3", "z", *one),  # not in a split: left out, and so is its class
    ]
    samples, names = splits.by_split(items, {"f1": "test", "f2": "train"})
    assert names == ("a", "b", "c") and list(samples) == ["train", "test"]
    assert [(s.sample_id, s.label) for s in samples["test"]] == [("f1#x", 2), ("f1#y", 0)]
    meta = ShardMeta((4, 4), 3, ("v",), names, dataset="d", params={"split": "list"})
    summary = splits.write_splits(tmp_path / "out", meta, samples, notes=["1 file left out"])
    assert summary == {
        "out_dir": str(tmp_path / "out"),
        "samples": {"train": 1, "test": 2},
        "num_classes": 3,
        "split": "list",
        "skipped": ["1 file left out"],
        "run_id": summary["run_id"],
        "kept": [],
    }
    assert len(summary["run_id"]) == 32
    assert [s.sample_id for s in ShardReader(tmp_path / "out" / "test")] == ["f1#x", "f1#y"]
    with pytest.raises(RawDataError, match="no samples for the val split"):
        splits.write_splits(tmp_path / "other", meta, {"val": []})
    assert not (tmp_path / "other").exists()
