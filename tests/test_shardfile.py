"""One shard file: portable HDF5 (pyfive, h5dump), strings, checksums, and validation of bad files."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pyfive
import pytest

from sparsenet.shardfile import (
    ShardMeta,
    _first_duplicate,
    content_sha256,
    legacy_names,
    read_arrays,
    read_meta,
    validate_file,
    write_shard,
)
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


PLAIN = ShardMeta((4, 4), 3, ("a", "b"))  # no optional attributes


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
    from sparsenet.shardfile import check_sample

    meta = ShardMeta((8, 2), 3, ("a", "b"))
    if "outside the field 8x2: y in [1, 2]" in message:
        meta = ShardMeta((8, 1), 3, ("a", "b"))
        message = message.replace("8x2", "8x1")
    with pytest.raises(ValueError) as err:
        check_sample(meta, coords, features, 0)
    assert str(err.value).startswith(message)


def test_sites_of_a_tall_field_are_told_apart():
    """(2, 0) and (0, 1) on an 8x2 field are different sites, and (7, 1) is inside."""
    from sparsenet.shardfile import check_sample

    check_sample(ShardMeta((8, 2), 3, ("a", "b")), np.array([[2, 0], [0, 1], [7, 1]]), np.zeros((3, 2)), 2)


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


def validation_error(folder: Path, damage) -> tuple[Path, str]:
    """(path, the ShardError message of ``validate_file``) for a plain shard in ``folder`` after ``damage(path)``."""
    path = folder / "shard-00000.h5"
    write_shard(path, PLAIN, _arrays(), ["x", "y"])
    damage(path)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    return path, str(err.value)


@pytest.mark.parametrize(
    "damage,message", ARRAY_PROBLEMS, ids=[f"{i}-{m[:24]}" for i, (_, m) in enumerate(ARRAY_PROBLEMS)]
)
def test_validation_messages_in_full(tmp_path, damage, message):
    path, error = validation_error(tmp_path, damage)
    assert error.startswith(f"{path}: {message}")


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
    write_shard(path, PLAIN, _arrays(), ["x", "y"])
    with h5py.File(path, "r") as f:
        chunk = f["features"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(b"\xff" * chunk.size)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value).startswith(f"{path}: dataset 'features' cannot be read (")


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()], ids=["missing", "a-folder"])
def test_a_path_that_is_not_a_file_is_no_shard_file(tmp_path, make):
    path = tmp_path / "shard-00000.h5"
    make(path)
    with pytest.raises(ShardError) as err:
        validate_file(str(path))
    assert str(err.value) == f"{path}: no such shard file"


def test_a_file_that_is_not_hdf5_is_named(tmp_path):
    path = tmp_path / "shard-00000.h5"
    path.write_bytes(b"definitely not hdf5" * 10)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value).startswith(f"{path}: not a readable HDF5 file (OSError: ")


class _UnreadableAttributes:
    def keys(self):
        raise OSError("bad attribute heap")


def test_root_attributes_that_cannot_be_listed_name_the_file(tmp_path):
    path = tmp_path / "shard-00000.h5"
    with pytest.raises(ShardError) as err:
        read_meta(SimpleNamespace(attrs=_UnreadableAttributes()), path)
    assert str(err.value) == f"{path}: cannot read the root attributes (OSError: bad attribute heap)"


@pytest.mark.parametrize("shape", [(0, 4), (4, 0), (-1, 4), (4, -1), (2**31, 4), (4, 2**31)])
def test_spatial_shape_outside_positive_int32_is_refused(tmp_path, shape):
    path = _written(tmp_path)
    _set_attr(path, "spatial_shape", np.array(shape, dtype=np.int64))
    with h5py.File(path, "r") as f, pytest.raises(ShardError) as err:
        read_meta(f, path)
    problem = f"bad root attributes (ValueError: spatial_shape {list(shape)} is not two positive int32 sizes)"
    assert str(err.value) == f"{path}: {problem}"


@pytest.mark.parametrize("shape", [(1, 1), (1, 2**31 - 1), (2**31 - 1, 1), (2**31 - 1, 2**31 - 1)])
def test_spatial_shape_of_one_to_int32_max_is_read(tmp_path, shape):
    path = _written(tmp_path)
    _set_attr(path, "spatial_shape", np.array(shape, dtype=np.int64))
    with h5py.File(path, "r") as f:
        assert read_meta(f, path).spatial_shape == shape


def _as_group(name: str):
    def damage(path):
        with h5py.File(path, "r+") as f:
            del f[name]
            f.create_group(name)

    return damage


@pytest.mark.parametrize(
    "damage,message",
    [
        (_as_group("coords"), "'coords' is a Group, not a dataset"),
        (_as_group("labels"), "'labels' is a Group, not a dataset"),
        (_replace("sample_ids", np.array([b"x"], dtype="S1")), "sample_ids has 1 entries for 2 labels"),
    ],
    ids=["coords-group", "labels-group", "ids-miscounted"],
)
def test_validation_names_the_file_of_misshapen_datasets(tmp_path, damage, message):
    path, error = validation_error(tmp_path, damage)
    assert error == f"{path}: {message}"


class _AttributesFail:
    """An open shard whose datasets read but whose attributes do not."""

    def __init__(self, f):
        self._f = f

    def __contains__(self, name):
        return name in self._f

    def __getitem__(self, name):
        return self._f[name]

    @property
    def attrs(self):
        raise OSError("bad attribute heap")


def test_an_unreadable_content_checksum_names_the_file(tmp_path):
    path = _written(tmp_path)
    with h5py.File(path, "r") as f, pytest.raises(ShardError) as err:
        read_arrays(_AttributesFail(f), path, read_meta(f, path))
    assert str(err.value) == f"{path}: attribute content_sha256 cannot be read (OSError: bad attribute heap)"


@pytest.mark.parametrize("ids, named", [(["first", "second"], "second"), (["", ""], "no id")])
def test_duplicate_site_message_in_full(tmp_path, ids, named):
    path = tmp_path / "dup.h5"
    write_shard(path, META, _arrays(coords=[[0, 0], [1, 2], [1, 2]], offsets=[0, 1, 3]), ids)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value) == f"{path}: sample 1 ({named}) has the site (y=1, x=2) twice; sites MUST be unique"


def test_sites_of_a_wide_field_are_told_apart_and_counted(tmp_path):
    """On a 2x5 field (0, 2) and (1, 0) are different sites: rows are W = 5 sites long, not H = 2."""
    path = tmp_path / "wide.h5"
    arrays = _arrays(coords=[[0, 2], [1, 0], [1, 4]], offsets=[0, 2, 3])
    write_shard(path, ShardMeta((2, 5), 3, ("a", "b")), arrays, ["x", "y"])
    meta, count, sites = validate_file(path)
    assert meta.spatial_shape == (2, 5) and count == 2 and sites.tolist() == [2, 1]


def _first_twice(samples: list[list[tuple[int, int]]]) -> tuple[int, int, int] | None:
    """The reference: the lowest (sample, y, x) of a site held twice by one sample."""
    for i, sites in enumerate(samples):
        twice = sorted({site for site in sites if sites.count(site) > 1})
        if twice:
            return (i, *twice[0])
    return None


def test_first_duplicate_is_the_lowest_sample_then_row_then_column():
    """Random small samples on fields of every shape, sorted or not, with and without repeated sites,
    against the brute-force reference; sites shared by two samples are not duplicates."""
    rng = np.random.default_rng(0)
    found = set()
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 7, size=2))
        samples = []
        for _ in range(int(rng.integers(0, 5))):
            count = int(rng.integers(1, 6))
            keys = rng.choice(h * w, size=count, replace=bool(rng.integers(2)) or count > h * w)
            keys = np.sort(keys) if rng.integers(2) else keys
            samples.append([(int(k) // w, int(k) % w) for k in keys])
        coords = np.array([site for sites in samples for site in sites], dtype=np.int64).reshape(-1, 2)
        owner = np.repeat(np.arange(len(samples), dtype=np.int64), np.array([len(s) for s in samples], dtype=np.int64))
        want = _first_twice(samples)
        assert _first_duplicate(coords, owner) == want, (h, w, samples)
        found.add(want is None)
    assert found == {True, False}


def test_first_duplicate_finds_a_repeat_among_rows_that_go_up_and_right():
    """Rows (1, 0), (0, 1), (1, 0): every step moves right, but y falls, so the rows are not in
    row-major order and the repeat of (1, 0) must be looked for."""
    coords = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.int64)
    assert _first_duplicate(coords, np.zeros(3, dtype=np.int64)) == (0, 1, 0)


def test_first_duplicate_does_not_overflow_on_the_largest_field():
    """Sides of 2**31 - 1 are valid; five samples' sites there, none repeated, are not a duplicate."""
    side = 2**31 - 1
    coords = np.array([[0, 0], [side - 1, 0], [1, 1], [1, 0], [2, 2], [8, 4]], dtype=np.int64)
    owner = np.array([0, 1, 2, 2, 3, 4], dtype=np.int64)
    assert _first_duplicate(coords, owner) is None
    assert _first_duplicate(np.concatenate([coords, [[side - 1, side - 1]] * 2]), np.r_[owner, 4, 4]) == (
        4,
        side - 1,
        side - 1,
    )


def test_sample_ids_read_as_str_and_undecodable_ones_name_the_file(tmp_path):
    path = _written(tmp_path)
    with h5py.File(path, "r") as f:
        ids = read_arrays(f, path, META)[1]
    assert ids.tolist() == ["x", "ÿ-long id"] and {type(i) for i in ids} == {str}
    _replace("sample_ids", np.array([b"\xff", b"y"], dtype="S1"))(path)
    with pytest.raises(ShardError) as err:
        validate_file(path)
    assert str(err.value).startswith(f"{path}: dataset 'sample_ids' cannot be read (UnicodeDecodeError: ")


@pytest.mark.parametrize(
    "converter, params, names",
    [
        ("preprocess.masked", {"dataset": "mnist", "sparsity": 0.5}, ("masked", "masked-mnist")),
        ("sparsenet.converters.masked", {"dataset": "mnist"}, ("masked", "masked-mnist")),
        ("mnist", {}, ("mnist", "mnist")),
    ],
)
def test_legacy_names_take_the_last_part_of_a_module_path(converter, params, names):
    assert legacy_names(converter, params) == names


def test_sites_of_the_largest_field_are_told_apart(tmp_path):
    """Sites y * W + x apart by one on a field of int32-max sides: their keys (about 2**61) need exact integers."""
    from sparsenet.shardfile import check_sample

    side = 2**31 - 1
    meta = ShardMeta((side, side), 3, ("a", "b"))
    coords = np.array([[2**30, 0], [2**30, 1], [side - 1, side - 1]], dtype=np.int32)
    check_sample(meta, coords, np.zeros((3, 2)), 0)
    path = tmp_path / "large.h5"
    write_shard(path, meta, _arrays(coords=coords, offsets=[0, 2, 3]), ["x", "y"])
    assert validate_file(path)[1] == 2
