"""sparsenet.bench.growth: where the cost curves cross, and the random-sites batches."""

from __future__ import annotations

import numpy as np
import pytest

from sparsenet.bench.growth import crossing, random_sites_batch


def test_crossing_interpolates_on_log_scales():
    assert crossing([0.01, 0.1, 1.0], [1, 2, 8], [4, 4, 4]) == pytest.approx(0.1 * 10**0.5)
    assert crossing([0.01, 0.1], [5, 6], [4, 4]) == 0.01
    assert crossing([0.01, 0.1], [1, 2], [4, 4]) is None


def test_random_sites_batch_has_distinct_sites_in_the_field():
    batch = random_sites_batch((7, 5), 12, 3, 2, seed=4)
    assert batch.batch_size == 3 and list(batch.spatial_shape) == [7, 5]
    coords = np.asarray(batch.coords)
    assert coords.shape == (36, 3) and tuple(batch.features.shape) == (36, 2)
    for b in range(3):
        cells = {(y, x) for _, y, x in coords[coords[:, 0] == b]}
        assert len(cells) == 12 and all(0 <= y < 7 and 0 <= x < 5 for y, x in cells)
