"""DeepCNet(l, k): spatial sizes, sparse = dense with zero biases, dropout schedule, parameters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsenet import models
from sparsenet import spconv_compat as sc
from sparsenet.activity import record_activity
from sparsenet.models.deepcnet import dropout_schedule


def paper_sizes(l: int) -> list[int]:
    """Graham's rule: 3·2^l, 3x3 conv, then (pool, 2x2 conv) l times."""
    sizes = [3 * 2**l, 3 * 2**l - 2]
    for _ in range(l):
        sizes += [sizes[-1] // 2, sizes[-1] // 2 - 1]
    return sizes


def dense_sizes(model: nn.Module, size: int) -> list[int]:
    """Output sizes of every conv and pool of a dense net on a ``size x size`` input."""
    sizes = [size]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
        for m in model.trunk
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d))
    ]
    model(torch.zeros(1, model.in_channels, size, size))
    for hook in hooks:
        hook.remove()
    return sizes


def test_paper_sizes_for_l5() -> None:
    assert paper_sizes(5) == [96, 94, 47, 46, 23, 22, 11, 10, 5, 4, 2, 1]


@pytest.mark.parametrize("l", [1, 2, 3, 4, 5, 6])
def test_spatial_sizes_follow_the_paper(sample, l: int) -> None:
    sparse, dense = models.build("deepcnet", l=l, k=2), models.build("deepcnet-dense", l=l, k=2)
    field = 3 * 2**l
    assert sparse.input_size() == dense.input_size() == (field, field)
    s = sample(1, 1, field, 0.02, dtype=torch.float32)
    assert [r.spatial_shape[0] for r in record_activity(sparse, s.sparse)] == paper_sizes(l)
    assert dense_sizes(dense, field) == paper_sizes(l)


@pytest.mark.parametrize("l", [1, 3, 5])
def test_submanifold_variant_keeps_the_field_and_halves_by_pooling(sample, l: int) -> None:
    model = models.build("deepcnet", l=l, k=2, conv="submanifold")
    field = 3 * 2**l
    s = sample(1, 1, field, 0.05, dtype=torch.float32)
    records = record_activity(model, s.sparse)
    expected = [field]
    for i in range(l):
        expected += [field >> i, field >> (i + 1)]  # submanifold conv, then pool
    assert [r.spatial_shape[0] for r in records] == [*expected, 1]
    assert len(records[1].sites) == len(records[0].sites)  # the active set is kept


def zero_biases(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(getattr(module, "bias", None), nn.Parameter):
            nn.init.zeros_(module.bias)


def test_sparse_equals_dense_with_zero_biases(sample) -> None:
    """No ground state: with zero biases the sites outside the active set are 0 in the dense net."""
    torch.manual_seed(0)
    sparse, dense = models.build("deepcnet", k=4, num_classes=7), models.build("deepcnet-dense", k=4, num_classes=7)
    zero_biases(sparse)
    models.copy_to_dense_twin(sparse, dense)
    s = sample(3, 1, 96, 0.03, dtype=torch.float32)
    logits = sparse.eval()(s.sparse)
    assert logits.shape == (3, 7)
    torch.testing.assert_close(logits, dense.eval()(s.dense), rtol=1e-4, atol=1e-5)


def test_with_biases_the_dense_net_has_a_ground_state(sample) -> None:
    torch.manual_seed(0)
    sparse, dense = models.build("deepcnet", l=3, k=4), models.build("deepcnet-dense", l=3, k=4)
    models.copy_to_dense_twin(sparse, dense)
    s = sample(2, 1, 24, 0.05, dtype=torch.float32)
    assert not torch.allclose(sparse.eval()(s.sparse), dense.eval()(s.dense), atol=1e-4)


def test_submanifold_variant_equals_its_dense_twin_on_a_full_input(sample) -> None:
    torch.manual_seed(0)
    sparse = models.build("deepcnet", l=3, k=4, conv="submanifold")
    dense = models.build("deepcnet-dense", l=3, k=4, conv="submanifold")
    models.copy_to_dense_twin(sparse, dense)
    s = sample(2, 1, 24, 1.0, dtype=torch.float32)
    torch.testing.assert_close(sparse.eval()(s.sparse), dense.eval()(s.dense), rtol=1e-4, atol=1e-5)


def test_dropout_schedule() -> None:
    assert dropout_schedule(5, 0.5) == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5])
    seed = [0, 0, 0, 0.5, 0.5, 0.5, 0.5]
    assert dropout_schedule(5, seed) == seed
    with pytest.raises(ValueError, match="l \\+ 2 = 7"):
        dropout_schedule(5, [0.5] * 6)


@pytest.mark.parametrize("name", ["deepcnet", "deepcnet-dense"])
def test_dropout_layers_sit_where_the_schedule_says(name: str) -> None:
    model = models.build(name, l=5, dropout=[0, 0, 0, 0.5, 0.5, 0.5, 0.25])
    trunk = list(model.trunk)
    convs = [i for i, m in enumerate(trunk) if isinstance(m, (sc.SparseConv2d, nn.Conv2d))]
    dropped = [trunk[i - 1].p if isinstance(trunk[i - 1], nn.Dropout) else 0.0 for i in convs]
    assert dropped == [0, 0, 0, 0.5, 0.5, 0.5]
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.25


@pytest.mark.parametrize("l,k", [(5, 10), (3, 7)])
def test_parameter_count(l: int, k: int) -> None:
    channels = [1] + [i * k for i in range(1, l + 2)]
    kernels = [3] + [2] * l
    expected = sum((channels[i] * kernels[i] ** 2 + 1) * channels[i + 1] for i in range(l + 1))
    expected += ((l + 1) * k + 1) * 10
    for name in ("deepcnet", "deepcnet-dense"):
        model = models.build(name, l=l, k=k)
        assert sum(p.numel() for p in model.parameters()) == expected


def test_wrong_field_names_both_sizes(sample) -> None:
    model = models.build("deepcnet")
    with pytest.raises(ValueError, match="96x96.*28x28"):
        model(sample(1, 1, 28, 0.1, dtype=torch.float32).sparse)
    with pytest.raises(ValueError, match="conv must be"):
        models.build("deepcnet", conv="dense")


def masked_reference(dense_net: nn.Module, x: torch.Tensor, mask: torch.Tensor, leak: float) -> torch.Tensor:
    """Graham's sparse DeepCNet written with torch.nn.functional on dense arrays: a valid convolution's
    output site is active when its window holds an active site, inactive sites are 0 after the
    activation and take no part in a maximum. ``x`` [B, C, H, W], ``mask`` [B, 1, H, W] -> logits."""
    for module in dense_net.trunk:
        if isinstance(module, nn.Conv2d):
            x = F.conv2d(x, module.weight, module.bias)
            mask = F.max_pool2d(mask, module.kernel_size, stride=1)
        elif isinstance(module, nn.LeakyReLU):
            x = torch.where(mask > 0, F.leaky_relu(x, leak), 0.0)
        elif isinstance(module, nn.MaxPool2d):
            x = F.max_pool2d(torch.where(mask > 0, x, -torch.inf), 2)
            mask = F.max_pool2d(mask, 2)
            x = torch.where(mask > 0, x, 0.0)
    return dense_net.classifier(x.flatten(1))


def test_leaky_relus_and_signed_pooling_equal_a_masked_dense_reference(sample) -> None:
    torch.manual_seed(0)
    sparse = models.build("deepcnet", l=3, k=3, num_classes=5, leak=1 / 3).double().eval()
    dense = models.build("deepcnet-dense", l=3, k=3, num_classes=5, leak=1 / 3).double().eval()
    models.copy_to_dense_twin(sparse, dense)
    s = sample(2, 1, 24, 0.1)
    features = s.sparse.features.clone().requires_grad_()
    dense_in = s.dense.clone().requires_grad_()
    logits = sparse(s.sparse.replace_feature(features))
    expected = masked_reference(dense, dense_in, s.mask, 1 / 3)
    torch.testing.assert_close(logits, expected)
    assert not torch.allclose(logits, dense(s.dense), atol=1e-3)  # the zeros of inactive sites would change it
    upstream = torch.randn(logits.shape, dtype=logits.dtype, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad((logits * upstream).sum(), features)
    (dense_grad,) = torch.autograd.grad((expected * upstream).sum(), dense_in)
    b, y, x = s.sparse.indices.long().unbind(1)
    torch.testing.assert_close(grad, dense_grad[b, :, y, x])


def test_batchnorm_and_leaky_relus_equal_the_dense_twin_on_a_full_input(sample) -> None:
    torch.manual_seed(0)
    sparse = models.build("deepcnet", l=3, k=4, leak=0.25, batchnorm=True).double().train()
    dense = models.build("deepcnet-dense", l=3, k=4, leak=0.25, batchnorm=True).double().train()
    models.copy_to_dense_twin(sparse, dense)
    norms = [m for m in sparse.trunk if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [4, 8, 12, 16]
    assert all(m.bias is None for m in sparse.trunk if isinstance(m, sc.SparseConv2d))
    s = sample(3, 1, 24, 1.0)
    features = s.sparse.features.clone().requires_grad_()
    dense_in = s.dense.clone().requires_grad_()
    logits = sparse(s.sparse.replace_feature(features))
    expected = dense(dense_in)
    torch.testing.assert_close(logits, expected)
    (grad,) = torch.autograd.grad(logits.square().sum(), features)
    (dense_grad,) = torch.autograd.grad(expected.square().sum(), dense_in)
    b, y, x = s.sparse.indices.long().unbind(1)
    torch.testing.assert_close(grad, dense_grad[b, :, y, x])


@pytest.mark.parametrize("leak", [-0.1, 1.0])
def test_a_leak_outside_0_1_is_refused(leak: float) -> None:
    with pytest.raises(ValueError, match=f"negative slope, in \\[0, 1\\); got {leak}"):
        models.build("deepcnet", leak=leak)
