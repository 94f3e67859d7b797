"""The batch contract: collate shapes, dtypes and layout; dense views agree with the coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import characters

from sparsenet.augment import field_transform
from sparsenet.batch import Collate, ShardDataset, ShardStream, SparseBatch, collate
from sparsenet.pipeline import loader
from sparsenet.shards import Sample, ShardMeta, ShardReader, ShardWriter


@pytest.fixture
def batch(make_split) -> tuple[SparseBatch, list[Sample]]:
    reader = ShardReader(make_split(samples=5))
    return ShardDataset(reader).collate(list(reader)), list(reader)


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


def test_the_batch_remembers_what_it_is(batch):
    b, samples = batch
    assert b.feature_names == ("a", "b") and b.num_classes == 3
    assert b.sample_ids == tuple(s.sample_id for s in samples) == ("s0", "s1", "s2", "s3", "s4")
    moved = b.to("cpu")
    assert (moved.feature_names, moved.num_classes, moved.sample_ids) == (b.feature_names, 3, b.sample_ids)


def test_sparse_coo_and_bxy_coordinates(batch):
    b, samples = batch
    coo = b.to_sparse_coo()
    assert coo.shape == (5, 8, 6, 2) and coo.is_coalesced() and coo.sparse_dim() == 3
    torch.testing.assert_close(coo.to_dense(), b.dense().permute(0, 2, 3, 1))
    bxy = b.coordinates_bxy()
    assert bxy.dtype == torch.int32 and bxy.shape == b.coords.shape
    row = 0
    for index, sample in enumerate(samples):  # (batch, x = column, y = row), rows in the order of features
        for y, x in sample.coords.tolist():
            assert bxy[row].tolist() == [index, x, y]
            row += 1


def test_collate_is_a_picklable_collate_fn_for_the_dataset_field(strokes_split):
    import pickle

    placed = ShardDataset(str(strokes_split), field_transform((32, 32), (40, 40), ("dx", "dy", "ink"), "none"))
    assert placed.collate == Collate((40, 40), ("dx", "dy", "ink"), 3)
    assert pickle.loads(pickle.dumps(placed.collate)) == placed.collate
    loader = torch.utils.data.DataLoader(placed, batch_size=5, num_workers=2, collate_fn=placed.collate)
    batches = list(loader)
    assert [b.spatial_shape for b in batches] == [(40, 40)] * 3 and batches[0].sample_ids[0] == "char0"


def _stream_ids(split, rank, world, workers, epoch, seed=0):
    stream = ShardStream(ShardReader(split), rank=rank, world_size=world, seed=seed)
    stream.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=workers, collate_fn=stream.collate)
    ids = [i for batch in loader for i in batch.sample_ids]
    assert len(ids) == len(stream)
    return ids


@pytest.fixture
def uneven_split(tmp_path):
    """A split of 10 shards holding 5, 5, ..., 5, 3 samples (48 in all), ids "0".."47"."""
    meta = ShardMeta((8, 8), 2, ("ink",))
    with ShardWriter(tmp_path / "uneven", meta, samples_per_shard=5) as writer:
        for i in range(48):
            writer.add(np.array([[i % 8, i // 8]]), np.ones((1, 1)), i % 2, str(i))
    return tmp_path / "uneven"


def test_two_ranks_by_two_workers_read_every_sample_once_per_epoch(uneven_split):
    epochs = []
    for epoch in (0, 1):
        per_rank = [_stream_ids(uneven_split, rank, 2, 2, epoch) for rank in (0, 1)]
        everything = per_rank[0] + per_rank[1]
        assert sorted(everything, key=int) == [str(i) for i in range(48)]  # once each, no sample twice
        assert abs(len(per_rank[0]) - len(per_rank[1])) <= 5  # balanced to within a shard
        epochs.append(per_rank)
    assert epochs[0] != epochs[1]  # a new order every epoch
    assert _stream_ids(uneven_split, 1, 2, 2, 1) == epochs[1][1]  # and the same order again for the same seed
    assert _stream_ids(uneven_split, 1, 2, 2, 1, seed=5) != epochs[1][1]


def test_a_stream_worker_holds_a_bounded_number_of_shards(uneven_split):
    stream = ShardStream(ShardReader(uneven_split, cache_shards=1), shuffle=False)
    ids = []
    for sample in stream:
        ids.append(sample.sample_id)
        assert len(stream.reader.cached()) == 1
    assert ids == [str(i) for i in range(48)]  # without shuffle: file order, row order


def test_stream_and_map_style_augment_a_sample_alike(strokes_split):
    transform = field_transform((32, 32), (40, 40), ("dx", "dy", "ink"), "affine")
    stream, data = (
        ShardStream(str(strokes_split), transform, seed=3),
        ShardDataset(str(strokes_split), transform, seed=3),
    )
    for d in (stream, data):
        d.set_epoch(2)
    streamed = {s.sample_id: s for s in stream}
    expected = [data[i] for i in range(len(data))]
    assert_same_samples([streamed[s.sample_id] for s in expected], expected)
