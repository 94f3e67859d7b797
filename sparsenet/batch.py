"""Shard samples -> one batch contract (:class:`SparseBatch`) -> whatever a network eats.

``ShardDataset`` wraps a :class:`~sparsenet.shards.ShardReader` as a torch ``Dataset``;
:func:`collate` stacks its samples into a :class:`SparseBatch`, which converts with one
call to each network input kind: ``batch.sparse()`` (a ``spconv.pytorch.SparseConvTensor``),
``batch.dense()`` ([B, C, H, W]) or ``batch.dense_mask()`` ((x [B, C, H, W], mask [B, 1, H, W])).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sparsenet.shards import Sample, ShardReader

INPUT_KINDS = ("sparse", "dense", "dense-mask")


@dataclass
class SparseBatch:
    """B samples on one field.

    coords   int32 [N, 3] contiguous, columns (batch, y, x), rows of one sample together
    features float32 [N, C]
    labels   int64 [B]
    spatial_shape (H, W)
    """

    coords: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    spatial_shape: tuple[int, int]

    @property
    def batch_size(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> SparseBatch:
        """The same batch on ``device`` (coords stay int32 and contiguous)."""
        return SparseBatch(
            self.coords.to(device, non_blocking=True).contiguous(),
            self.features.to(device, non_blocking=True),
            self.labels.to(device, non_blocking=True),
            self.spatial_shape,
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

    def as_input(self, kind: str):
        """The input a network of ``input_kind`` ``kind`` takes (one of :data:`INPUT_KINDS`)."""
        if kind == "sparse":
            return self.sparse()
        if kind == "dense":
            return self.dense()
        if kind == "dense-mask":
            return self.dense_mask()
        raise ValueError(f"unknown input kind {kind!r}; expected one of {', '.join(INPUT_KINDS)}")


def collate(samples: Sequence[Sample], spatial_shape: tuple[int, int]) -> SparseBatch:
    """Stack samples (each coords [n_i, 2], features [n_i, C]) into one :class:`SparseBatch`."""
    sizes = np.fromiter((len(s.coords) for s in samples), dtype=np.int64, count=len(samples))
    coords = np.empty((int(sizes.sum()), 3), dtype=np.int32)
    coords[:, 0] = np.repeat(np.arange(len(samples), dtype=np.int32), sizes)
    np.concatenate([s.coords for s in samples], out=coords[:, 1:])
    features = np.concatenate([s.features for s in samples]).astype(np.float32, copy=False)
    labels = np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))
    return SparseBatch(
        torch.from_numpy(coords), torch.from_numpy(features), torch.from_numpy(labels), tuple(spatial_shape)
    )


class ShardDataset(torch.utils.data.Dataset):
    """A torch ``Dataset`` over shard samples, with an optional per-sample ``transform``.

    ``transform(sample, rng) -> sample`` (e.g. augmentation) gets a numpy ``Generator``
    seeded from ``(seed, epoch, index)``, so an epoch's augmentation is the same whichever
    worker or process draws the sample. Call :meth:`set_epoch` at every epoch. A transform
    with a ``batch(samples, rngs) -> samples`` method (:class:`~sparsenet.augment.FieldTransform`)
    transforms the whole index list of :meth:`__getitems__` at once, with the same results.
    """

    def __init__(
        self,
        reader: ShardReader | str,
        transform: Callable[[Sample, np.random.Generator], Sample] | None = None,
        *,
        seed: int = 0,
    ):
        self.reader = reader if isinstance(reader, ShardReader) else ShardReader(reader)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.seconds = {"load": 0.0, "augment": 0.0}  # spent in __getitems__ in this process

    @property
    def spatial_shape(self) -> tuple[int, int]:
        return self.reader.meta.spatial_shape

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.reader)

    def _rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng((self.seed, self.epoch, index))

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

    def collate(self, samples: Sequence[Sample]) -> SparseBatch:
        """:func:`collate` on this dataset's field (picklable for DataLoader workers)."""
        return collate(samples, self.spatial_shape)
