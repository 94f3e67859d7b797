"""sparsenet.bench.steps: the validity masks and masked samples of the sparsity-invariant cases."""

from __future__ import annotations

import numpy as np

from sparsenet.bench.steps import masked_samples, random_masks


def test_random_masks_drop_an_exact_count_per_image():
    masks = random_masks(50, (4, 5), 0.3, np.random.default_rng(0))
    assert masks.dtype == bool and masks.shape == (50, 4, 5)
    assert (masks.sum(axis=(1, 2)) == 20 - 6).all()  # round(0.3 * 20) = 6 dropped
    assert len({m.tobytes() for m in masks}) > 40  # a different set per image
    # every pixel is dropped about equally often: 50 * 6 / 20 = 15 times on average
    assert (~masks).sum(axis=0).min() > 3 and (~masks).sum(axis=0).max() < 30


def test_random_masks_edge_sparsities():
    rng = np.random.default_rng(1)
    assert random_masks(2, (3, 3), 0.0, rng).all()
    # round(0.85 * 9) = 8 of 9 dropped
    assert random_masks(2, (3, 3), 0.85, rng).sum(axis=(1, 2)).tolist() == [1, 1]


def test_masked_samples_keep_valid_pixels_whatever_their_value():
    images = np.zeros((2, 4, 4), dtype=np.float32)
    images[0, 1, 2], images[1, 3, 3] = 0.5, 1.0
    samples = masked_samples(images, np.array([7, 3]), sparsity=0.25, seed=2)
    masks = random_masks(2, (4, 4), 0.25, np.random.default_rng(2))
    for sample, image, mask, label in zip(samples, images, masks, (7, 3)):
        assert sample.label == label and len(sample.coords) == 12 == mask.sum()
        y, x = sample.coords.T
        assert mask[y, x].all() and sample.coords.dtype == np.int32
        np.testing.assert_array_equal(sample.features[:, 0], image[y, x])
        assert sample.features.shape == (12, 1) and sample.features.dtype == np.float32
