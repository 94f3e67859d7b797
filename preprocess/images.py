"""Shared by the image converters: a batch of pixel grids -> shard samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparsenet.shards import Sample, ShardWriter


class SampleList:
    """Stands in for a :class:`ShardWriter` where samples are wanted in memory (one raw input for predict)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def add(self, coords: np.ndarray, features: np.ndarray, label: int, sample_id: str = "") -> None:
        self.samples.append(
            Sample(np.asarray(coords, dtype=np.int32), np.asarray(features, dtype=np.float32), label, sample_id)
        )


def add_pixel_samples(
    writer: ShardWriter | SampleList,
    valid: np.ndarray,
    values: np.ndarray,
    labels: Sequence[int],
    sample_ids: Sequence[str],
    offset: tuple[int, int] = (0, 0),
) -> None:
    """Add one sample per image: sites = the ``valid`` pixels, features = their ``values``.

    ``valid`` bool [B, H, W]; ``values`` [B, H, W, C]; pixel (y, x) becomes site
    ``(y + offset[0], x + offset[1])``. Sites come in row-major order.
    """
    image, ys, xs = np.nonzero(valid)
    coords = np.stack([ys + offset[0], xs + offset[1]], axis=1).astype(np.int32)
    features = values[image, ys, xs].astype(np.float32)
    bounds = np.concatenate([[0], np.cumsum(valid.reshape(len(valid), -1).sum(axis=1))])
    for i, (label, sample_id) in enumerate(zip(labels, sample_ids)):
        lo, hi = bounds[i], bounds[i + 1]
        writer.add(coords[lo:hi], features[lo:hi], int(label), sample_id)
