"""Shard samples -> one batch contract (:class:`SparseBatch`) -> whatever a network eats.

Two torch datasets read a :class:`~sparsenet.shards.ShardReader`: the map-style
:class:`ShardDataset` (any sampler; training uses it) and the streaming :class:`ShardStream`,
which gives each (DDP rank, DataLoader worker) a disjoint share of the shards, so any number
of ranks and workers read every sample once per epoch, each holding a few shards in memory.
Both take a per-sample ``transform(sample, rng)`` seeded by ``(seed, epoch, index)`` and have a
picklable ``collate`` (a :class:`Collate`) for the DataLoader's ``collate_fn``, which stacks
samples into a :class:`SparseBatch`. A batch converts with one call to each network input
kind: ``batch.sparse()`` (a ``spconv.pytorch.SparseConvTensor``), ``batch.dense()``
([B, C, H, W]), ``batch.dense_mask()``, and to other libraries' layouts:
``batch.to_sparse_coo()`` and ``batch.coordinates_bxy()``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sparsenet.shards import Sample, ShardReader

INPUT_KINDS = ("sparse", "dense", "dense-mask")
Transform = Callable[[Sample, np.random.Generator], Sample]


@dataclass
class SparseBatch:
    """B samples on one field.

    coords        int32 [N, 3] contiguous, columns (batch, y, x), rows of one sample together
    features      float32 [N, C]
    labels        int64 [B]
    spatial_shape (H, W)
    feature_names the C feature columns' names; num_classes; sample_ids [B] (where each sample came from)
    """

    coords: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    spatial_shape: tuple[int, int]
    feature_names: tuple[str, ...] = ()
    num_classes: int | None = None
    sample_ids: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> SparseBatch:
        """The same batch on ``device`` (coords stay int32 and contiguous)."""
        return dataclasses.replace(
            self,
            coords=self.coords.to(device, non_blocking=True).contiguous(),
            features=self.features.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
        )

    def sparse(self):
        """``spconv.pytorch.SparseConvTensor`` with features [N, C], indices [N, 3] int32."""
        from sparsenet.spconv_compat import to_sparse_tensor

        return to_sparse_tensor(self.features, self.coords, self.spatial_shape, self.batch_size)

    def dense(self) -> torch.Tensor:
        """Features scattered onto the field, zeros elsewhere: float32 [B, C, H, W]."""
        return self.dense_mask()[0]

    def dense_mask(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x [B, C, H, W], mask [B, 1, H, W]): features on the field and 1 at every site."""
        h, w = self.spatial_shape
        b, y, x = self.coords.long().unbind(1)
        channels = self.features.shape[1]
        dense = self.features.new_zeros(self.batch_size, h, w, channels)
        dense[b, y, x] = self.features
        mask = self.features.new_zeros(self.batch_size, 1, h, w)
        mask[b, 0, y, x] = 1.0
        return dense.permute(0, 3, 1, 2).contiguous(), mask

    def to_sparse_coo(self) -> torch.Tensor:
        """A coalesced ``torch.sparse_coo_tensor`` of shape [B, H, W, C]: three sparse dimensions
        (batch, y, x) and the C features as one dense dimension (``.to_dense()`` is ``dense()``
        permuted to channels-last)."""
        h, w = self.spatial_shape
        size = (self.batch_size, h, w, self.features.shape[1])
        coo = torch.sparse_coo_tensor(self.coords.long().t(), self.features, size, check_invariants=False)
        return coo.coalesce()

    def coordinates_bxy(self) -> torch.Tensor:
        """int32 [N, 3] columns (batch, x, y), x the column and y the row: the batch-first layout of
        MinkowskiEngine's ``SparseTensor(features, coordinates)`` and torchsparse 2.x; rows as ``features``."""
        return self.coords[:, [0, 2, 1]].contiguous()

    def as_input(self, kind: str):
        """The input a network of ``input_kind`` ``kind`` takes (one of :data:`INPUT_KINDS`)."""
        if kind == "sparse":
            return self.sparse()
        if kind == "dense":
            return self.dense()
        if kind == "dense-mask":
            return self.dense_mask()
        raise ValueError(f"unknown input kind {kind!r}; expected one of {', '.join(INPUT_KINDS)}")


def collate(
    samples: Sequence[Sample],
    spatial_shape: tuple[int, int],
    *,
    feature_names: Sequence[str] = (),
    num_classes: int | None = None,
) -> SparseBatch:
    """Stack samples (each coords [n_i, 2], features [n_i, C]) into one :class:`SparseBatch`."""
    sizes = np.fromiter((len(s.coords) for s in samples), dtype=np.int64, count=len(samples))
    coords = np.empty((int(sizes.sum()), 3), dtype=np.int32)
    coords[:, 0] = np.repeat(np.arange(len(samples), dtype=np.int32), sizes)
    np.concatenate([s.coords for s in samples], out=coords[:, 1:])
    features = np.concatenate([s.features for s in samples]).astype(np.float32, copy=False)
    labels = np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))
    return SparseBatch(
        torch.from_numpy(coords),
        torch.from_numpy(features),
        torch.from_numpy(labels),
        tuple(spatial_shape),
        tuple(feature_names),
        num_classes,
        tuple(s.sample_id for s in samples),
    )


@dataclass(frozen=True)
class Collate:
    """:func:`collate` onto one field: a picklable ``collate_fn`` for any DataLoader (workers
    forked or spawned). The field is the dataset's (after its transform), not the samples': a
    sample does not know the field it lies in, so the dataset hands out its ``collate``."""

    spatial_shape: tuple[int, int]
    feature_names: tuple[str, ...] = ()
    num_classes: int | None = None

    def __call__(self, samples: Sequence[Sample]) -> SparseBatch:
        return collate(samples, self.spatial_shape, feature_names=self.feature_names, num_classes=self.num_classes)


class _Samples:
    """What both datasets share: the reader, the seeded per-sample transform, the epoch, ``collate``."""

    def __init__(self, reader: ShardReader | str | os.PathLike, transform: Transform | None, seed: int):
        self.reader = reader if isinstance(reader, ShardReader) else ShardReader(reader)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """The field of the samples this dataset gives: the transform's ``field``, else the shards'."""
        return tuple(getattr(self.transform, "field", self.reader.meta.spatial_shape))

    @property
    def collate(self) -> Collate:
        """The DataLoader ``collate_fn`` for this dataset's samples."""
        meta = self.reader.meta
        return Collate(self.spatial_shape, meta.feature_names, meta.num_classes)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: it seeds the augmentation (and :class:`ShardStream`'s order)."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng((self.seed, self.epoch, index))


class ShardDataset(_Samples, torch.utils.data.Dataset):
    """A map-style torch ``Dataset`` over shard samples, with an optional per-sample ``transform``.

    ``transform(sample, rng) -> sample`` (e.g. augmentation) gets a numpy ``Generator``
    seeded from ``(seed, epoch, index)``, so an epoch's augmentation is the same whichever
    worker or process draws the sample. Call :meth:`set_epoch` at every epoch. A transform
    with a ``batch(samples, rngs) -> samples`` method (:class:`~sparsenet.augment.FieldTransform`)
    transforms the whole index list of :meth:`__getitems__` at once, with the same results.
    Random access keeps ``reader.cache_shards`` shards per process in memory; a shuffle over
    more shards than that reloads shards (use :class:`ShardStream` for large splits).
    """

    def __init__(self, reader: ShardReader | str | os.PathLike, transform: Transform | None = None, *, seed: int = 0):
        super().__init__(reader, transform, seed)
        self.seconds = {"load": 0.0, "augment": 0.0}  # spent in __getitems__ in this process

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> Sample:
        sample = self.reader[index]
        if self.transform is None:
            return sample
        return self.transform(sample, self._rng(index))

    def __getitems__(self, indices: Sequence[int]) -> list[Sample]:
        """``[self[i] for i in indices]``; torch's DataLoader fetches a batch with it. Adds the time
        spent reading and transforming to :attr:`seconds` (``load``, ``augment``)."""
        start = time.perf_counter()
        samples = [self.reader[i] for i in indices]
        read = time.perf_counter()
        self.seconds["load"] += read - start
        if self.transform is None:
            return samples
        rngs = [self._rng(i) for i in indices]
        batch = getattr(self.transform, "batch", None)
        out = (
            [self.transform(sample, rng) for sample, rng in zip(samples, rngs)]
            if batch is None
            else batch(samples, rngs)
        )
        self.seconds["augment"] += time.perf_counter() - read
        return out


def _balance(shards: Sequence[int], counts: Sequence[int], parts: int) -> list[list[int]]:
    """``shards`` dealt into ``parts`` lists of near-equal sample totals (largest first, each to the
    lightest list; ties keep the order of ``shards``). Each list keeps the order of ``shards``."""
    loads, out = [0] * parts, [[] for _ in range(parts)]
    for k in sorted(shards, key=lambda k: -counts[k]):
        lightest = loads.index(min(loads))
        out[lightest].append(k)
        loads[lightest] += counts[k]
    position = {k: i for i, k in enumerate(shards)}
    return [sorted(part, key=position.__getitem__) for part in out]


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world size) as given, else torch.distributed's, else (0, 1)."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardStream(_Samples, torch.utils.data.IterableDataset):
    """A streaming torch ``IterableDataset``: every (rank, worker) reads its own share of the shards.

    Each epoch the shards are put in an order drawn from ``(seed, epoch)`` (file order when
    ``shuffle`` is False), dealt to the ``world_size`` ranks and then to each rank's DataLoader
    workers so that the sample totals (from the manifest) are as even as whole shards allow;
    a worker reads its shards one after the other, each in an order drawn from
    ``(seed, epoch, shard)``. So N ranks x W workers read every sample exactly once per epoch,
    the same way for the same seed, holding at most ``reader.cache_shards`` shards each.
    ``rank``/``world_size`` default to ``torch.distributed``'s when it is initialised. Call
    :meth:`set_epoch` before each epoch (and do not use ``persistent_workers``, which keep the
    epoch the workers started with). ``len()`` is this rank's samples in the current epoch;
    ranks may differ by up to a shard, so DDP loops over it should use ``Join`` or equal shards.
    """

    def __init__(
        self,
        reader: ShardReader | str | os.PathLike,
        transform: Transform | None = None,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        super().__init__(reader, transform, seed)
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size

    def rank_shards(self) -> list[int]:
        """The shards this rank reads in the current epoch, in reading order."""
        order = list(range(len(self.reader.shards)))
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(len(order)).tolist()
        rank, world = _rank_and_world(self.rank, self.world_size)
        return _balance(order, self.reader.file_counts, world)[rank]

    def worker_shards(self, worker: int, workers: int) -> list[int]:
        """The shards DataLoader worker ``worker`` of ``workers`` reads in the current epoch on this rank."""
        return _balance(self.rank_shards(), self.reader.file_counts, workers)[worker]

    def __len__(self) -> int:
        counts = self.reader.file_counts
        return sum(counts[k] for k in self.rank_shards())

    def __iter__(self) -> Iterator[Sample]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for k in self.worker_shards(worker, workers):
            rows = np.arange(self.reader.shards[k].samples)
            if self.shuffle:
                rows = np.random.default_rng((self.seed, self.epoch, k)).permutation(rows)
            first = self.reader.start(k)
            for row in rows.tolist():
                sample = self.reader.sample(k, row)
                yield sample if self.transform is None else self.transform(sample, self._rng(first + row))
