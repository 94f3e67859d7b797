"""Masked images: exact requested sparsity, reproducible masks and splits, Caltech-101 decoding and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from preprocess import caltech101, masked, mnist
from sparsenet.config import for_dataset
from sparsenet.errors import DatasetError
from sparsenet.evaluate import evaluate
from sparsenet.pipeline import load_network
from sparsenet.shards import ShardReader
from sparsenet.sources import iter_members
from sparsenet.train import train


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.9, 0.99])
def test_masks_drop_exactly_the_requested_fraction(sparsity):
    valid = masked.validity_masks(50, (28, 28), sparsity, np.random.default_rng(0))
    assert valid.shape == (50, 28, 28) and valid.dtype == bool
    assert ((~valid).sum(axis=(1, 2)) == round(sparsity * 784)).all()
    if sparsity > 0:
        assert len({m.tobytes() for m in valid}) == 50  # a different mask per image


def test_masks_are_uniform_and_seeded():
    valid = masked.validity_masks(4000, (4, 4), 0.5, np.random.default_rng(1))
    assert np.abs(valid.mean(axis=0) - 0.5).max() < 0.04  # every pixel equally likely to be dropped
    again = masked.validity_masks(4000, (4, 4), 0.5, np.random.default_rng(1))
    np.testing.assert_array_equal(valid, again)
    with pytest.raises(ValueError, match="drops all 16 pixels"):
        masked.validity_masks(1, (4, 4), 0.99, np.random.default_rng(0))


def test_mnist_sites_are_valid_pixels_including_zeros(mnist_dir, tmp_path):
    masked.convert(mnist_dir, tmp_path / "a", dataset="mnist", sparsity=0.75, seed=3)
    reader = ShardReader(tmp_path / "a" / "train")
    assert reader.meta.spatial_shape == (28, 28) and reader.meta.params["sparsity"] == 0.75
    assert reader.meta.converter == "masked" and reader.meta.dataset == "masked-mnist"
    assert (reader.sites_per_sample == 784 - 588).all()
    images = mnist.load(mnist_dir)["train"][0]
    zeros = 0
    for image, sample in zip(images, reader):
        np.testing.assert_allclose(
            sample.features[:, 0], image[sample.coords[:, 0], sample.coords[:, 1]] / 255, atol=1e-7
        )
        zeros += int((sample.features == 0).sum())
    assert zeros > 0  # zero-valued pixels are sites too: validity, not intensity
    masked.convert(mnist_dir, tmp_path / "b", dataset="mnist", sparsity=0.75, seed=3)
    masked.convert(mnist_dir, tmp_path / "c", dataset="mnist", sparsity=0.75, seed=4)
    same, other = ShardReader(tmp_path / "b" / "train"), ShardReader(tmp_path / "c" / "train")
    np.testing.assert_array_equal(reader[0].coords, same[0].coords)
    assert not np.array_equal(reader[0].coords, other[0].coords)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5])
def test_sparsity_outside_unit_interval(mnist_dir, tmp_path, sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        masked.convert(mnist_dir, tmp_path, dataset="mnist", sparsity=sparsity)
    assert list(tmp_path.iterdir()) == [mnist_dir]


def test_caltech_synthetic(caltech_tree, tmp_path):
    result = masked.convert(caltech_tree, tmp_path / "out", dataset="caltech101", sparsity=0.5, seed=1, size=16)
    assert result["samples"] == {"train": 21, "val": 3, "test": 6}  # per class: 7 / 1 / 2
    readers = {s: ShardReader(tmp_path / "out" / s) for s in ("train", "val", "test")}
    meta = readers["train"].meta
    assert meta.class_names == ("Faces", "accordion", "panda")  # BACKGROUND_Google excluded
    assert meta.spatial_shape == (16, 16) and meta.feature_names == ("red", "green", "blue")
    ids = [s.sample_id for r in readers.values() for s in r]
    assert len(set(ids)) == 30 and not any(i.startswith("BACKGROUND") for i in ids)
    assert all((r.sites_per_sample == 128).all() for r in readers.values())
    gray = caltech101.decode((caltech_tree / "101_ObjectCategories/panda/image_0001.jpg").read_bytes(), 16, "gray")
    assert gray.shape == (16, 16, 3) and (gray[..., 0] == gray[..., 2]).all()  # grayscale JPEG -> RGB
    masked.convert(caltech_tree, tmp_path / "again", dataset="caltech101", sparsity=0.5, seed=1, size=16)
    assert [s.sample_id for s in ShardReader(tmp_path / "again" / "val")] == [s.sample_id for s in readers["val"]]


def test_caltech_split_is_stratified_and_seeded():
    labels = np.repeat(np.arange(3), [31, 50, 800])
    parts = caltech101.split_indices(labels, masked.CALTECH_SPLITS, seed=5)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(881))
    assert np.bincount(labels[parts["test"]]).tolist() == [6, 10, 160]
    assert np.bincount(labels[parts["val"]]).tolist() == [3, 5, 80]
    other = caltech101.split_indices(labels, masked.CALTECH_SPLITS, seed=6)
    assert not np.array_equal(parts["test"], other["test"])


@pytest.mark.realdata
def test_caltech_real_images(raw_data, tmp_path):
    """A few real JPEGs (streamed from the start of the archive) through the whole converter."""
    wanted = {"BACKGROUND_Google": 2, "Faces": 10, "Faces_easy": 10, "Leopards": 10}
    root = tmp_path / "101_ObjectCategories"
    taken = dict.fromkeys(wanted, 0)
    for name, data in iter_members(raw_data / "caltech101", lambda n: caltech101.IMAGE_PATTERN.search(n) is not None):
        category = name.split("/")[-2]
        if category not in wanted:
            break
        if taken[category] < wanted[category]:
            (root / category).mkdir(parents=True, exist_ok=True)
            (root / category / name.split("/")[-1]).write_bytes(data)
            taken[category] += 1
    assert taken == wanted
    masked.convert(tmp_path, tmp_path / "out", dataset="caltech101", sparsity=0.9, size=64)
    reader = ShardReader(tmp_path / "out" / "train")
    assert reader.meta.class_names == ("Faces", "Faces_easy", "Leopards")
    assert (reader.sites_per_sample == 4096 - round(0.9 * 4096)).all()
    sample = reader[0]
    image = caltech101.decode((root / sample.sample_id).read_bytes(), 64, sample.sample_id)
    pixels = image[sample.coords[:, 0], sample.coords[:, 1]] / 255
    np.testing.assert_allclose(sample.features * masked.IMAGENET_STD + masked.IMAGENET_MEAN, pixels, atol=1e-5)


def test_caltech_shards_train_with_their_defaults_at_their_size(caltech_tree, tmp_path):
    masked.convert(caltech_tree, tmp_path / "data", dataset="caltech101", sparsity=0.5, seed=1, size=16)
    config = for_dataset(tmp_path / "data", tmp_path / "run", epochs=1, batch_size=8, procs=1)
    assert (config.model, config.optimizer, config.batch_size, config.model_kwargs) == ("sinet-caltech", "adam", 8, {})
    train(config)
    network = load_network(tmp_path / "run" / "checkpoint.pt", torch.device("cpu"))[0]
    assert network.input_size() == (16, 16)  # built for the shards' field, not the 224 x 224 default
    assert 0 <= evaluate(tmp_path / "run" / "checkpoint.pt", tmp_path / "data", plot=False)["top1_error"] <= 1


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "caltech101"])
def test_real_conversion_is_unchanged(raw_data, tmp_path, assert_digests, dataset):
    result = masked.convert(raw_data / dataset, tmp_path, dataset=dataset, sparsity=0.5)
    assert_digests(tmp_path, f"masked-{dataset}-0.5")
    assert sorted(result["samples"]) == sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


def test_overwrite_keeps_foreign_files(mnist_dir, tmp_path):
    masked.convert(mnist_dir, tmp_path / "out", dataset="mnist", sparsity=0.5)
    (tmp_path / "out" / "test" / "notes.md").write_text("mine")
    with pytest.raises(DatasetError, match="notes.md: was not written by sparsenet"):
        masked.convert(mnist_dir, tmp_path / "out", dataset="mnist", sparsity=0.9)
    result = masked.convert(mnist_dir, tmp_path / "out", dataset="mnist", sparsity=0.9, overwrite=True)
    assert result["kept"] == ["test/notes.md"] and (tmp_path / "out" / "test" / "notes.md").read_text() == "mine"
    assert ShardReader(tmp_path / "out" / "test").meta.params["sparsity"] == 0.9


def test_caltech_features_are_imagenet_normalised(tmp_path):
    """Solid-colour images: every site's features are (value / 255 - mean) / std per channel (R, G, B),
    with the ImageNet mean and std written out here."""
    from PIL import Image

    colours = {"blue": (10, 60, 240), "red": (230, 20, 40), "white": (250, 250, 250)}
    root = tmp_path / "caltech" / "101_ObjectCategories"
    for category, colour in colours.items():
        (root / category).mkdir(parents=True)
        for i in range(1, 11):
            Image.new("RGB", (30 + 7 * i, 40), colour).save(root / category / f"image_{i:04d}.jpg", quality=100)
    masked.convert(root.parent, tmp_path / "out", dataset="caltech101", sparsity=0.25, size=8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    reader = ShardReader(tmp_path / "out" / "train")
    assert reader.meta.class_names == ("blue", "red", "white")
    for sample in reader:
        want = (np.array(colours[reader.meta.class_names[sample.label]]) / 255 - mean) / std
        assert len(sample.coords) == 48  # 64 pixels, a quarter dropped
        np.testing.assert_allclose(sample.features, np.broadcast_to(want, sample.features.shape), atol=0.04)
