"""One shard file: portable HDF5 (pyfive, h5dump), strings, checksums, and validation of bad files."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import h5py
import numpy as np
import pyfive
import pytest

from sparsenet.shardfile import ShardMeta, content_sha256, read_meta, validate_file, write_shard
from sparsenet.shards import ShardError, ShardReader

FIXTURE = "tests/fixtures/v1-shards-0.1.0"
META = ShardMeta(
    (4, 4), 3, ("a", "b"), ("zéro", "一", "two"), "here", "mnist", {"k": [1, 2], "s": "ü"}, dataset="mnist"
)


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


def _written(tmp_path, ids=("x", "ÿ-long id")):
    path = tmp_path / "shard.h5"
    write_shard(path, META, _arrays(), list(ids))
    return path


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def test_pyfive_reads_every_array_and_attribute(tmp_path):
    """pyfive is an independent, pure-Python HDF5 reader: it fails on files written with libver="latest"."""
    path = _written(tmp_path)
    with pyfive.File(str(path)) as f:
        for name, want in _arrays().items():
            got = f[name][...]
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        assert [_text(v) for v in f["sample_ids"][...]] == ["x", "ÿ-long id"]
        attrs = dict(f.attrs)
    assert _text(attrs["format"]) == "sparsenet.shard" and int(attrs["version"]) == 1
    assert list(attrs["spatial_shape"]) == [4, 4] and int(attrs["num_classes"]) == 3
    assert [_text(v) for v in attrs["feature_names"]] == ["a", "b"]
    assert [_text(v) for v in attrs["class_names"]] == ["zéro", "一", "two"]
    assert _text(attrs["source"]) == "here" and _text(attrs["converter"]) == "mnist"
    assert _text(attrs["dataset"]) == "mnist"
    assert json.loads(_text(attrs["params"])) == {"k": [1, 2], "s": "ü"}
    assert _text(attrs["content_sha256"]) == content_sha256(_arrays())


def test_sample_ids_are_fixed_length_utf8(tmp_path):
    with h5py.File(_written(tmp_path), "r") as f:
        ids = f["sample_ids"]
        assert ids.dtype.kind == "S" and h5py.check_string_dtype(ids.dtype).encoding == "utf-8"
        assert ids.asstr()[...].tolist() == ["x", "ÿ-long id"]


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump not installed (Debian: hdf5-tools)")
def test_h5dump_reads_every_dataset(tmp_path):
    path = _written(tmp_path)
    for name, want in _arrays().items():
        out = subprocess.run(
            ["h5dump", "-d", f"/{name}", "-y", "-w", "0", str(path)], capture_output=True, text=True, check=True
        ).stdout
        data = out[out.index("DATA {") + 6 : out.rindex("}")]
        values = np.array(re.findall(r"-?[\d.]+(?:e[-+]?\d+)?", data), dtype=np.float64)
        np.testing.assert_allclose(values, want.ravel(), rtol=1e-6)
    out = subprocess.run(["h5dump", "-A", str(path)], capture_output=True, text=True, check=True).stdout
    assert '"sparsenet.shard"' in out and '"a", "b"' in out
    ids = subprocess.run(["h5dump", "-d", "/sample_ids", str(path)], capture_output=True, text=True, check=True)
    assert '(0): "x' in ids.stdout


def test_variable_length_sample_ids_of_older_files_still_read(tmp_path):
    path = _written(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["sample_ids"]
        f.create_dataset("sample_ids", data=np.array(["é", "b"], dtype=object), dtype=h5py.string_dtype())
    assert [s.sample_id for s in ShardReader(path)] == ["é", "b"]


def test_content_checksum_covers_the_four_arrays_only(tmp_path):
    arrays = _arrays()
    digest = hashlib.sha256(b"".join(arrays[n].tobytes() for n in ("coords", "features", "offsets", "labels")))
    assert content_sha256(arrays) == digest.hexdigest()
    with h5py.File(_written(tmp_path, ids=("other", "ids")), "r") as f:
        assert f.attrs["content_sha256"] == digest.hexdigest()


def test_v1_fixture_of_release_0_1_0_reads(repo_root):
    """Shards written by sparsenet 0.1.0 (converter "preprocess.masked", vlen strings, libver="latest")."""
    folder = repo_root / FIXTURE / "train"
    reader = ShardReader(folder)
    assert (reader.meta.dataset, reader.meta.converter) == ("masked-mnist", "masked")
    assert reader.meta.class_names == ("a", "b", "c") and reader.meta.feature_names == ("intensity",)
    assert reader.meta.params == {"dataset": "mnist", "sparsity": 0.5, "seed": 0} and reader.run_id is None
    samples = list(reader)
    assert [s.sample_id for s in samples] == ["train/0", "train/1", "train/2", "train/3"]
    assert [s.label for s in samples] == [1, 1, 0, 1] and [len(s.coords) for s in samples] == [7, 4, 1, 4]
    with h5py.File(folder / "shard-00001.h5", "r") as f:  # the file itself, as the oracle
        np.testing.assert_array_equal(samples[3].coords, f["coords"][...])
        np.testing.assert_array_equal(samples[3].features, f["features"][...])
    np.testing.assert_array_equal(samples[0].coords[:2], [[4, 1], [1, 1]])


def test_duplicate_sites_are_refused_naming_the_file_and_sample(tmp_path):
    path = tmp_path / "dup.h5"
    arrays = _arrays(coords=[[0, 0], [1, 2], [1, 2]], offsets=[0, 1, 3])  # sample 1 holds (1, 2) twice
    write_shard(path, META, arrays, ["first", "second"])  # with a matching content checksum
    with pytest.raises(ShardError, match=r"sample 1 \(second\) has the site \(y=1, x=2\) twice") as info:
        validate_file(path)
    assert str(path) in str(info.value)
    same_site_in_two_samples = _arrays(coords=[[1, 2], [1, 2], [3, 3]], offsets=[0, 1, 3])
    write_shard(path, META, same_site_in_two_samples, ["a", "b"])
    assert validate_file(path)[1] == 2


def test_version_that_is_not_a_number_names_the_file(tmp_path):
    path = _written(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = "one"
    with pytest.raises(ShardError, match="attribute version='one' is not an integer") as info:
        validate_file(path)
    assert str(info.value).startswith(str(path))


def _signature_flipped(path, signature: bytes):
    data = bytearray(path.read_bytes())
    at = data.index(signature)
    data[at : at + len(signature)] = bytes(b ^ 0xFF for b in signature)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("signature", [b"TREE", b"HEAP", b"SNOD", b"spatial_shape", b"coords"])
def test_flipped_metadata_bytes_name_the_file(tmp_path, signature):
    """h5py raises KeyError, OSError, AttributeError... deep inside; the reader says which file is bad."""
    path = _written(tmp_path)
    _signature_flipped(path, signature)
    with pytest.raises(ShardError) as info:
        validate_file(path)
    assert str(info.value).startswith(f"{path}: ")


def test_read_meta_wraps_unreadable_attributes(tmp_path):
    path = _written(tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["spatial_shape"] = np.array([2**40, 4])
    with h5py.File(path, "r") as f, pytest.raises(ShardError, match="spatial_shape"):
        read_meta(f, path)
