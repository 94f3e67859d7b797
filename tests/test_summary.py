"""``sparsenet inspect``: a split, a dataset folder of splits, or a file, validated against the spec."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sparsenet.cli import main
from sparsenet.manifest import MANIFEST
from sparsenet.shards import ShardError, ShardMeta, write_shard
from sparsenet.summary import render_samples, summarize


def inspect(*args):
    return CliRunner().invoke(main, ["inspect", *map(str, args)])


def test_a_dataset_folder_is_summarised_split_by_split(make_split, tmp_path):
    make_split("train", samples=7)
    make_split("test", samples=4)
    summaries = summarize(tmp_path)
    assert [(s.path.name, s.samples, s.files) for s in summaries] == [("test", 4, 2), ("train", 7, 3)]
    assert summaries[1].sites.tolist() == [1 + i % 5 for i in range(7)]
    result = inspect(tmp_path)
    assert result.exit_code == 0 and "train: 7 samples in 3 file(s), valid" in result.output


def test_splits_of_different_runs_are_refused(make_split, tmp_path):
    for name, run_id in (("train", "run-a"), ("test", "run-b")):
        path = make_split(name) / MANIFEST
        path.write_text(json.dumps({**json.loads(path.read_text()), "run_id": run_id}))
    result = inspect(tmp_path)
    assert (
        result.exit_code == 1
        and "comes from run run-a but" in result.output
        and "different conversions" in result.output
    )
    assert "run id:         run-a" in inspect(tmp_path / "train").output


def _with_duplicate_site(folder):
    """Rewrite shard 1 of ``folder`` with sample 4 holding one site twice, checksums updated."""
    path = folder / "shard-00001.h5"
    meta = ShardMeta((8, 6), 3, ("a", "b"), ("zero", "one", "two"))
    coords = np.array([[0, 0], [2, 3], [2, 3], [5, 5]], dtype=np.int32)
    arrays = {
        "coords": coords,
        "features": np.ones((4, 2), np.float32),
        "offsets": np.array([0, 1, 3, 4]),
        "labels": np.array([0, 1, 2]),
    }
    write_shard(path, meta, arrays, ["s3", "s4", "s5"])
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][1].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), sites=4)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return path


def test_duplicate_sites_are_invalid_naming_file_and_sample(make_split):
    folder = make_split(samples=7, per_shard=3)
    path = _with_duplicate_site(folder)
    result = inspect(folder)
    assert result.exit_code == 1
    assert f"Error: {path}: sample 1 (s4) has the site (y=2, x=3) twice; sites MUST be unique" in result.output


def test_damaged_metadata_and_bad_versions_are_one_line_errors(make_split):
    folder = make_split(samples=7, per_shard=3)
    path = folder / "shard-00002.h5"
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = "one"
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][2]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))
    result = inspect(folder)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Error: {path}: attribute version='one' is not an integer" in result.output
    data = bytearray(path.read_bytes())
    at = data.index(b"TREE")
    data[at : at + 4] = b"EERT"
    path.write_bytes(bytes(data))
    result = inspect(path)
    assert result.exit_code == 1 and result.output.startswith(f"Error: {path}: ")


def test_render_draws_the_samples_of_several_splits(make_split, tmp_path):
    splits = [make_split("train"), make_split("test", samples=4)]
    png = render_samples(splits, 5, tmp_path / "pics" / "samples.png")
    assert png.stat().st_size > 0
    with pytest.raises(ShardError, match="holding 2 split"):
        render_samples(tmp_path, 5, png)
