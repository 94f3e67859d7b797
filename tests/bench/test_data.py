"""sparsenet.bench.data: the quick workspace converts its synthetic raw files through the registry."""

from __future__ import annotations

import numpy as np
import pytest

from sparsenet.bench.data import QUICK_DIGITS, QUICK_WRITERS, Workspace
from sparsenet.bench.synthetic import STEPS, digit_images
from sparsenet.errors import ConfigError
from sparsenet.shards import ShardReader


def test_quick_workspace_converts_on_demand(tmp_path):
    workspace = Workspace.synthetic(tmp_path, seed=0)
    assert workspace.quick and not (tmp_path / "data" / "assamese").exists()
    folder = workspace.shards("assamese")
    assert folder == tmp_path / "data" / "assamese"
    train, test = ShardReader(folder / "train"), ShardReader(folder / "test")
    assert (len(train), len(test)) == ((QUICK_WRITERS - 1) * len(STEPS), len(STEPS))
    assert train.meta.dataset == "assamese" and train.meta.params["test_writers"] == [QUICK_WRITERS]
    mtime = (folder / "train" / "manifest.json").stat().st_mtime_ns
    assert workspace.shards("assamese") == folder  # present: not converted again
    assert (folder / "train" / "manifest.json").stat().st_mtime_ns == mtime


def test_mnist_images_rebuild_the_raw_digits(tmp_path):
    workspace = Workspace.synthetic(tmp_path, seed=4)
    images, labels = workspace.mnist_images(10)
    raw_images, raw_labels = digit_images(QUICK_DIGITS[0], size=28, seed=4)  # what the raw train file holds
    assert images.dtype == np.float32 and images.shape == (10, 28, 28)
    np.testing.assert_allclose(images * 255, raw_images[:10], atol=1e-3)
    np.testing.assert_array_equal(labels, raw_labels[:10])
    assert len(workspace.mnist_images(10_000)[0]) == QUICK_DIGITS[0]


def test_convert_refuses_other_datasets(tmp_path):
    with pytest.raises(ConfigError, match="'caltech101'.*assamese, mnist"):
        Workspace(tmp_path).convert("caltech101", tmp_path / "out")
