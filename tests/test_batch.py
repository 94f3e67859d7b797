"""The batch contract: collate shapes, dtypes and layout; dense views agree with the coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import characters

from sparsenet.augment import field_transform
from sparsenet.batch import ShardDataset, SparseBatch, collate
from sparsenet.pipeline import loader
from sparsenet.shards import Sample, ShardMeta, ShardReader, ShardWriter


@pytest.fixture
def batch(make_split) -> tuple[SparseBatch, list[Sample]]:
    samples = list(ShardReader(make_split(samples=5)))
    return collate(samples, (8, 6)), samples


def test_collate_shapes_dtypes_layout(batch):
    b, samples = batch
    sizes = [len(s.coords) for s in samples]
    assert b.coords.dtype == torch.int32 and b.coords.shape == (sum(sizes), 3) and b.coords.is_contiguous()
    assert b.features.dtype == torch.float32 and b.features.shape == (sum(sizes), 2)
    assert b.labels.dtype == torch.int64 and b.labels.tolist() == [s.label for s in samples]
    assert b.batch_size == 5 and b.spatial_shape == (8, 6)
    assert b.coords[:, 0].tolist() == np.repeat(np.arange(5), sizes).tolist()
    np.testing.assert_array_equal(b.coords[:, 1:].numpy(), np.concatenate([s.coords for s in samples]))
    moved = b.to("cpu")
    assert moved.coords.dtype == torch.int32 and moved.coords.is_contiguous()


def test_dense_and_mask_agree_with_coords(batch):
    b, _ = batch
    x, mask = b.dense_mask()
    assert x.shape == (5, 2, 8, 6) and mask.shape == (5, 1, 8, 6)
    n, y, xx = b.coords.long().unbind(1)
    torch.testing.assert_close(x[n, :, y, xx], b.features)
    assert mask.sum() == len(b.coords) and (mask[n, 0, y, xx] == 1).all()
    assert (x * (1 - mask)).abs().sum() == 0  # nothing off the sites
    torch.testing.assert_close(b.dense(), x)
    with pytest.raises(ValueError, match="unknown input kind"):
        b.as_input("voxels")


def test_sparse_tensor_input(batch):
    b, _ = batch
    tensor = b.sparse()
    assert tensor.indices.dtype == torch.int32 and tensor.indices.shape == b.coords.shape
    assert list(tensor.spatial_shape) == [8, 6] and tensor.batch_size == 5


def test_dataset_transform_is_reproducible(make_split):
    def jitter(sample: Sample, rng: np.random.Generator) -> Sample:
        return Sample(sample.coords, sample.features + rng.normal(), sample.label, sample.sample_id)

    dataset = ShardDataset(str(make_split()), jitter, seed=7)
    first, again = dataset[2].features, dataset[2].features
    dataset.set_epoch(1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, dataset[2].features)


@pytest.fixture
def strokes_split(tmp_path: Path) -> Path:
    """A split of 12 handwriting-like samples (dx, dy, ink) on a 32x32 field."""
    meta = ShardMeta((32, 32), 3, ("dx", "dy", "ink"), ("a", "b", "c"), "synthetic", "tests.test_batch")
    with ShardWriter(tmp_path / "strokes", meta, samples_per_shard=5) as writer:
        for sample in characters(12, field=32, seed=4):
            writer.add(sample.coords, sample.features, sample.label, sample.sample_id)
    return tmp_path / "strokes"


def assert_same_samples(got: list[Sample], want: list[Sample]) -> None:
    assert [(s.label, s.sample_id) for s in got] == [(s.label, s.sample_id) for s in want]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.coords, w.coords)
        np.testing.assert_array_equal(g.features, w.features)


@pytest.mark.parametrize("augment", ["affine", "shift", "none"])
def test_getitems_equals_getitem_one_by_one(strokes_split, augment):
    data = ShardDataset(str(strokes_split), field_transform((32, 32), (40, 40), ("dx", "dy", "ink"), augment), seed=3)
    data.set_epoch(2)
    indices = [5, 0, 11, 7, 7, 2]
    assert_same_samples(data.__getitems__(indices), [data[i] for i in indices])


def test_getitems_with_a_per_sample_transform_or_none(make_split):
    def jitter(sample: Sample, rng: np.random.Generator) -> Sample:
        return Sample(sample.coords, sample.features + rng.normal(), sample.label, sample.sample_id)

    for transform in (jitter, None):
        data = ShardDataset(str(make_split()), transform, seed=7)
        assert_same_samples(data.__getitems__([3, 1, 6]), [data[i] for i in (3, 1, 6)])


def test_the_loader_fetches_whole_batches_with_getitems(strokes_split, monkeypatch):
    data = ShardDataset(str(strokes_split), field_transform((32, 32), (40, 40), ("dx", "dy", "ink"), "affine"), seed=3)
    fetched = []
    getitems = data.__getitems__
    monkeypatch.setattr(data, "__getitems__", lambda indices: fetched.append(list(indices)) or getitems(indices))
    batches = [[4, 1, 9], [0, 11]]
    for batch, indices in zip(loader(data, batches), batches):
        expected = collate([data[i] for i in indices], (40, 40))
        torch.testing.assert_close(batch.coords, expected.coords, rtol=0, atol=0)
        torch.testing.assert_close(batch.features, expected.features, rtol=0, atol=0)
    assert fetched == batches
