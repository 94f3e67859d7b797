"""The batch contract: collate shapes, dtypes and layout; dense views agree with the coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsenet.batch import ShardDataset, SparseBatch, collate
from sparsenet.shards import Sample, ShardReader


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
