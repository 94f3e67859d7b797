"""Sparse VGG (SparseConvNet's VGGplus and VGG-C): shapes, sizes, parameter counts, dense twins."""

from __future__ import annotations

import copy

import pytest
import torch

from sparsenet import models
from sparsenet import spconv_compat as sc
from sparsenet.activity import record_activity
from sparsenet.models._layers import layer_sizes


def conv_bn(cin: int, cout: int, kernel: int = 3) -> int:
    """Parameters of a bias-free conv plus its BatchNorm."""
    return cin * kernel * kernel * cout + 2 * cout


def plus_block(cin: int, a: int, b: int) -> int:
    """``C a+b``: main conv, branch (down conv + BN, submanifold + BN, inverse), joint BN."""
    return cin * 9 * a + conv_bn(cin, b) + conv_bn(b, b) + b * 9 * b + 2 * (a + b)


def test_vggplus_parameter_count_by_hand() -> None:
    expected = (
        conv_bn(3, 8)
        + conv_bn(8, 8)
        + conv_bn(8, 16)
        + conv_bn(16, 16)
        + plus_block(16, 16, 8)
        + plus_block(24, 16, 8)
        + plus_block(24, 24, 8)
        + plus_block(32, 24, 8)
        + conv_bn(32, 64, 5)
        + 64 * 183
        + 183
    )
    assert expected == 97295
    for name in ("vgg", "vgg-dense"):
        assert sum(p.numel() for p in models.build(name).parameters()) == expected


def test_plain_vgg_parameter_count_by_hand() -> None:
    widths = [3, 16, 16, 32, 32, 48, 48, 64, 64, 96, 96]
    expected = sum(conv_bn(a, b) for a, b in zip(widths, widths[1:])) + conv_bn(96, 128) + 128 * 10 + 10
    for name in ("vgg-plain", "vgg-plain-dense"):
        assert sum(p.numel() for p in models.build(name, num_classes=10).parameters()) == expected


@pytest.mark.parametrize(
    "name,field,sizes", [("vgg", 95, [95, 47, 23, 11, 5, 1]), ("vgg-plain", 63, [63, 31, 15, 7, 3, 1])]
)
def test_field_sizes_and_output_shape(sample, name: str, field: int, sizes: list[int]) -> None:
    model = models.build(name, in_channels=2, num_classes=11)
    assert model.input_size() == (field, field)
    assert layer_sizes(model.trunk, field) == sizes
    s = sample(3, 2, field, 0.04, dtype=torch.float32)
    records = record_activity(model, s.sparse)
    assert sorted({r.spatial_shape[0] for r in records}, reverse=True) == sizes
    assert model(s.sparse).shape == (3, 11)


def test_plus_block_returns_to_the_input_sites(sample) -> None:
    """Each ``C a+b`` (a Concat) keeps the active set: its inverse conv undoes the stride-2 conv."""
    model = models.build("vgg")
    s = sample(2, 3, 95, 0.03, dtype=torch.float32)
    records = record_activity(model, s.sparse)
    concats = [i for i, r in enumerate(records) if r.name.endswith("Concat")]
    assert len(concats) == 4
    for i in concats:
        assert torch.equal(records[i].sites, records[i - 1].sites)


@pytest.mark.parametrize("name", ["vgg", "vgg-plain"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sparse_equals_dense_twin_on_a_fully_active_input(sample, name: str, mode: str) -> None:
    """Meaningful only when every site is active: then a submanifold conv is a 'same' conv and the
    sparse BatchNorm sees the same values as the dense one. float64: the head's train-mode
    BatchNorm normalises over just two values and amplifies float32 rounding."""
    torch.manual_seed(0)
    sparse, dense = models.build(name).double(), models.build(name + "-dense").double()
    models.copy_to_dense_twin(sparse, dense)
    field = sparse.input_size()[0]
    s = sample(2, 3, field, 1.0)
    getattr(sparse, mode)()
    getattr(dense, mode)()
    torch.testing.assert_close(sparse(s.sparse), dense(s.dense))


def test_rulebooks_are_shared_per_scale(sample) -> None:
    model = models.build("vgg")
    s = sample(1, 3, 95, 0.05, dtype=torch.float32)
    first = model.trunk[0](s.sparse)  # the two C8 convolutions, without BN-ReLU between
    second = model.trunk[3](first)
    assert set(second.indice_dict) == {"subm0"}
    assert second.indice_dict["subm0"] is first.indice_dict["subm0"]
    keys = [m.conv.indice_key for m in model.modules() if isinstance(m, sc.SubMConv2d)]
    assert keys.count("subm0") == 2 and keys.count("subm2") == 2
    assert keys.count("subm3") == 4 and keys.count("subm4") == 2  # main path and branches
    pools = [m.indice_key for m in model.modules() if isinstance(m, sc.SparseMaxPool2d)]
    assert pools == ["down0", "down1", "down2", "down3"]
    branches = [m.conv.indice_key for m in model.modules() if isinstance(m, (sc.SparseConv2d, sc.SparseInverseConv2d))]
    assert branches == ["down2", "down2"] * 2 + ["down3", "down3"] * 2 + [None]  # conv and inverse; head


def without_shared_rulebooks(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` in which every layer builds its own rulebook, except each branch's inverse
    conv, which needs the rulebook of its branch's downsampling conv (a key private to the branch)."""
    clone = copy.deepcopy(model)
    for name, module in clone.named_modules():
        if isinstance(module, sc.SparseMaxPool2d):
            module.indice_key = None
        elif isinstance(module, sc.SubMConv2d):
            module.conv.indice_key = None
        elif isinstance(module, (sc.SparseConv2d, sc.SparseInverseConv2d)) and module.conv.indice_key is not None:
            module.conv.indice_key = name.rsplit(".", 1)[0]
    return clone


def test_one_rulebook_per_scale_and_kind_gives_the_same_results(sample, rulebook_builds) -> None:
    """One step builds subm0, down0, subm1, down1, subm2, down2, subm3, down3, subm4 and the head's
    rulebook; outputs and gradients equal those of every layer building its own."""
    torch.manual_seed(0)
    shared = models.build("vgg").double()
    unshared = without_shared_rulebooks(shared)
    s = sample(3, 3, 95, 0.05)
    results = []
    for model, builds in ((shared, 10), (unshared, 21)):
        rulebook_builds[0] = 0
        logits = model(s.sparse)
        grads = torch.autograd.grad(logits.square().sum(), list(model.parameters()))
        assert rulebook_builds[0] == builds
        results.append([logits, *grads])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b)


def test_copy_to_dense_twin_rejects_a_different_network() -> None:
    with pytest.raises(ValueError, match="parameter layers"):
        models.copy_to_dense_twin(models.build("vgg"), models.build("vgg-plain-dense"))
