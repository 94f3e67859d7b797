"""sparsenet.activity: the active sites of every layer (Graham's Figure 1) as a PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparsenet import models
from sparsenet import spconv_compat as sc
from sparsenet.activity import draw_activity, record_activity


def cross(size: int, channels: int) -> sc.SparseConvTensor:
    """One sample: a thin cross in the middle of a ``size x size`` grid."""
    active = torch.zeros(size, size, dtype=torch.bool)
    active[size // 3 : 2 * size // 3, size // 2] = True
    active[size // 2, size // 3 : 2 * size // 3] = True
    sites = active.nonzero()
    coords = torch.cat([torch.zeros(len(sites), 1, dtype=torch.long), sites], dim=1)
    return sc.to_sparse_tensor(torch.ones(len(sites), channels), coords, (size, size), 1)


def test_draw_activity_writes_one_panel_per_layer(tmp_path: Path) -> None:
    model = models.build("deepcnet", l=5, k=4)
    png = tmp_path / "activity.png"
    records = draw_activity(model, cross(96, 1), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r.spatial_shape[0] for r in records] == [96, 94, 47, 46, 23, 22, 11, 10, 5, 4, 2, 1]
    counts = [len(r.sites) for r in records]
    assert counts[1] > counts[0]  # a valid convolution spreads activity
    assert counts[-1] == 1
    assert model.training  # the mode is restored


def test_record_activity_refuses_dense_networks_and_missing_samples() -> None:
    with pytest.raises(ValueError, match="activity needs a sparse network"):
        record_activity(models.build("deepcnet-dense"), cross(96, 1))
    with pytest.raises(ValueError, match="sample 1 is not in a batch of 1"):
        record_activity(models.build("deepcnet"), cross(96, 1), sample=1)


def test_a_sparsity_invariant_layer_is_one_panel() -> None:
    records = record_activity(models.build("sinet-mnist-sparse"), cross(28, 1))
    assert [r.name for r in records] == [
        "input",
        "convs.0 SparseSparsityInvariantConv2d",
        "convs.1 SparseSparsityInvariantConv2d",
    ]
    assert len(records[1].sites) > len(records[0].sites)  # the 5x5 window dilates the mask
