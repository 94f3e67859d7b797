"""MNIST: the IDX reader refuses bad files; the shards rebuild every original image exactly."""

from __future__ import annotations

import gzip
import json

import h5py
import numpy as np
import pytest

from preprocess import mnist
from sparsenet.datasets import dataset_run_id
from sparsenet.shards import ShardReader, shard_files
from sparsenet.sources import RawDataError


def rebuild(folder, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [count, 28, 28] and labels from a split's shards, reading them as the doc says."""
    images, labels, start = np.zeros((count, 28, 28), np.uint8), [], 0
    for path in shard_files(folder):
        with h5py.File(path, "r") as f:
            oy, ox = json.loads(f.attrs["params"])["offset"]
            coords, features, offsets = f["coords"][:], f["features"][:, 0], f["offsets"][:]
            labels.append(f["labels"][:])
        sample = start + np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        values = np.round(features * 255)
        assert ((values >= 1) & (values <= 255)).all()
        images[sample, coords[:, 0] - oy, coords[:, 1] - ox] = values
        start += len(offsets) - 1
    assert start == count
    return images, np.concatenate(labels)


@pytest.mark.realdata
def test_real_round_trip_is_exact(raw_data, tmp_path, assert_digests):
    original = mnist.load(raw_data / "mnist")
    result = mnist.convert(raw_data / "mnist", tmp_path)
    assert_digests(tmp_path, "mnist")
    assert result["samples"] == {"train": 60000, "test": 10000}
    for split, (images, labels) in original.items():
        rebuilt, rebuilt_labels = rebuild(tmp_path / split, len(images))
        np.testing.assert_array_equal(rebuilt, images)
        np.testing.assert_array_equal(rebuilt_labels, labels)
    assert np.bincount(original["test"][1]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_synthetic_round_trip_and_field(mnist_dir, tmp_path):
    mnist.convert(mnist_dir, tmp_path / "out", field=40)
    reader = ShardReader(tmp_path / "out" / "train")
    assert reader.meta.spatial_shape == (40, 40) and reader.meta.params["offset"] == [6, 6]
    assert reader.meta.feature_names == ("intensity",) and reader.meta.class_names[3] == "3"
    images, labels = mnist.load(mnist_dir)["train"]
    rebuilt, rebuilt_labels = (np.zeros_like(images), reader.labels)
    for i, sample in enumerate(reader):
        rebuilt[i, sample.coords[:, 0] - 6, sample.coords[:, 1] - 6] = np.round(sample.features[:, 0] * 255)
    np.testing.assert_array_equal(rebuilt, images)
    np.testing.assert_array_equal(rebuilt_labels, labels)
    with pytest.raises(ValueError, match="field 27 is smaller than the 28x28 digits"):
        mnist.convert(mnist_dir, tmp_path / "small", field=27)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda raw: gzip.compress(raw)[:-100], "corrupt or truncated gzip"),
        (lambda raw: raw[:-5], "truncated: dimensions [12, 28, 28] need 9408 data bytes, found 9403"),
        (lambda raw: raw + b"\0", "has trailing bytes"),
        (lambda raw: raw[:10], "truncated in the header"),
        (lambda raw: b"\x00\x00\x08\x01" + raw[4:], "IDX file with 1 dimensions, expected 3"),
        (lambda raw: b"PK\x03\x04" + raw[4:], "not an IDX file (magic 504b0304)"),
        (lambda raw: b"", "not an IDX file (magic missing)"),
    ],
    ids=["gzip-cut", "payload-cut", "trailing", "header-cut", "wrong-dims", "wrong-magic", "empty"],
)
def test_bad_idx_files_are_named(mnist_dir, damage, problem):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.unlink()
    (mnist_dir / "train-images-idx3-ubyte").write_bytes(damage(raw))
    with pytest.raises(RawDataError, match="train-images-idx3-ubyte") as info:
        mnist.load(mnist_dir)
    assert problem in str(info.value)


def test_mismatched_or_missing_files(mnist_dir, idx_bytes):
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(RawDataError, match="test has 6 images but 5 labels"):
        mnist.load(mnist_dir)
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(6, 10, np.uint8))))
    with pytest.raises(RawDataError, match="labels go up to 10"):
        mnist.load(mnist_dir)
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(RawDataError, match=r"no t10k-labels-idx1-ubyte\[.gz\] file"):
        mnist.load(mnist_dir)


@pytest.mark.parametrize("code, dtype", [(0x0B, ">i2"), (0x0D, ">f4"), (0x09, ">i1")])
@pytest.mark.parametrize("kind", ["images", "labels"])
def test_elements_must_be_unsigned_bytes(mnist_dir, code, dtype, kind):
    """An int16 or float IDX file decodes fine but is not MNIST (features up to 125 once)."""
    name = f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    array = mnist.read_idx(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()), name)
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    (mnist_dir / f"{name}.gz").write_bytes(gzip.compress(header + array.astype(dtype).tobytes()))
    with pytest.raises(RawDataError, match=f"{name}.gz: IDX elements of type 0x{code:02X}") as info:
        mnist.load(mnist_dir)
    assert "expected 0x08 (uint8)" in str(info.value)


def test_blank_digit_is_refused_and_the_old_dataset_kept(mnist_dir, tmp_path, idx_bytes):
    out = tmp_path / "out"
    old = mnist.convert(mnist_dir, out)
    images = mnist.load(mnist_dir)["test"][0].copy()
    images[4] = 0
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    with pytest.raises(RawDataError, match="t10k-images image 4 is blank"):
        mnist.convert(mnist_dir, out)
    assert dataset_run_id(out) == old["run_id"]


def test_a_failure_while_writing_test_keeps_the_old_train(mnist_dir, tmp_path, monkeypatch):
    """Splits are swapped in together: a failure in ``test`` leaves the old ``train`` too."""
    out = tmp_path / "out"
    old = mnist.convert(mnist_dir, out, field=40)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    real = mnist.add_pixel_samples

    def failing(writer, valid, values, labels, ids, offset):
        if ids[0].startswith("test/"):
            raise OSError("disk full")
        real(writer, valid, values, labels, ids, offset)

    monkeypatch.setattr(mnist, "add_pixel_samples", failing)
    with pytest.raises(OSError, match="disk full"):
        mnist.convert(mnist_dir, out)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    assert dataset_run_id(out) == old["run_id"] and ShardReader(out / "train").meta.spatial_shape == (40, 40)


def test_read_input_names_a_damaged_image(tmp_path):
    from PIL import Image

    params = {"image_shape": [28, 28], "offset": [34, 34]}
    Image.new("L", (28, 28), 255).save(tmp_path / "white.png")
    cut = tmp_path / "cut.png"
    image = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(image).save(cut)
    cut.write_bytes(cut.read_bytes()[:200])  # a real PNG header, then nothing: "Truncated File Read"
    (tmp_path / "fake.png").write_bytes(b"not an image at all")
    for name, problem in [("cut.png", "cannot read the image"), ("fake.png", "not an image file")]:
        with pytest.raises(RawDataError, match=f"{name}: {problem}"):
            mnist.read_input(tmp_path / name, params)
    with pytest.raises(RawDataError, match="white.png: the image is blank"):
        mnist.read_input(tmp_path / "white.png", params)


@pytest.mark.parametrize(
    "shape, problem",
    [((6, 20, 28), r"images of \[20, 28\] pixels, but the train images are \[28, 28\]"), ((6, 0, 28), "no images")],
)
def test_image_sizes_must_agree_and_be_non_empty(mnist_dir, idx_bytes, shape, problem):
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.ones(shape, np.uint8))))
    with pytest.raises(RawDataError, match=f"t10k-images-idx3-ubyte.gz: {problem}"):
        mnist.load(mnist_dir)


def test_pixel_layout_of_a_known_asymmetric_pattern(tmp_path, idx_bytes):
    """Non-square 28x24 images with a few marked pixels: each lands at (y + offset y, x + offset x)
    with value / 255, in the order and with the labels written (a transposed or mirrored reader fails)."""
    marks = {  # image -> {(y, x): value}
        0: {(2, 20): 200, (25, 3): 50, (0, 0): 1},
        1: {(27, 23): 255, (5, 6): 17},
        2: {(14, 1): 99},
    }
    images = np.zeros((3, 28, 24), np.uint8)
    for i, pixels in marks.items():
        for (y, x), value in pixels.items():
            images[i, y, x] = value
    labels = np.array([7, 0, 3], np.uint8)
    raw = tmp_path / "raw"
    raw.mkdir()
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    decoded = mnist.read_idx(idx_bytes(images), "images", ndim=3)
    assert decoded.shape == (3, 28, 24) and decoded[0, 2, 20] == 200 and decoded[0, 20, 2] == 0
    mnist.convert(raw, tmp_path / "out", field=40)
    offset = ((40 - 28) // 2, (40 - 24) // 2)  # (6, 8)
    for split in ("train", "test"):
        reader = ShardReader(tmp_path / "out" / split)
        assert reader.meta.spatial_shape == (40, 40)
        for i, pixels in marks.items():
            sample = reader[i]
            assert sample.label == labels[i]
            found = {(int(y), int(x)): float(f[0]) for (y, x), f in zip(sample.coords, sample.features)}
            want = {(y + offset[0], x + offset[1]): v / 255 for (y, x), v in pixels.items()}
            assert found.keys() == want.keys(), (split, i)
            assert all(found[k] == pytest.approx(want[k], abs=1e-7) for k in want)
