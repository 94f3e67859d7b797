"""sparsenet.bench.efficiency: the multiply-add count agrees with spconv's own rulebooks."""

from __future__ import annotations

import pytest
import torch

from sparsenet.bench.efficiency import offset_pairs
from sparsenet.spconv_compat import ALGO, spconv_ops


@pytest.mark.parametrize("kernel, stride, subm", [(3, 1, True), (3, 2, False), (2, 2, False), (5, 1, False)])
def test_offset_pairs_match_spconv_rulebook(kernel, stride, subm):
    generator = torch.Generator().manual_seed(kernel * 10 + stride)
    shape = (17, 13)
    cells = torch.randperm(shape[0] * shape[1], generator=generator)[:60]
    fine = torch.stack([cells % 2, cells // shape[1], cells % shape[1]], dim=1).int().contiguous()
    padding = kernel // 2 if subm else 0
    out, _, counts = spconv_ops.get_indice_pairs(
        fine, 2, list(shape), ALGO, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], [0, 0], subm
    )
    # spconv lists a submanifold rulebook's first half only: the second half mirrors it, the centre is every site
    expected = 2 * int(counts.sum()) + len(fine) if subm else int(counts.sum())
    assert sum(offset_pairs(fine, out, shape, kernel, stride, padding)) == expected


def test_offset_pairs_by_hand():
    # two neighbouring sites in a row, 3x3 submanifold: each pairs with itself (centre offset), the
    # left one with its right neighbour (offset (1, 2)) and the right one with its left (offset (1, 0))
    sites = torch.tensor([[0, 0, 0], [0, 0, 1]])
    assert offset_pairs(sites, sites, (2, 2), 3, 1, 1) == [0, 0, 0, 1, 2, 1, 0, 0, 0]
    # a 2x2 stride-2 convolution of the same sites onto one output site: offsets (0, 0) and (0, 1)
    assert offset_pairs(sites, torch.tensor([[0, 0, 0]]), (2, 2), 2, 2, 0) == [1, 1, 0, 0]
