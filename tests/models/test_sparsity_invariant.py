"""The sparsity-invariant convolution (Uhrig et al. 2017) in both forms against an F.unfold
reference, and the masked-MNIST / Caltech-101 networks."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from sparsenet import models
from sparsenet.models import SparseSparsityInvariantConv2d, SparsityInvariantConv2d


def reference(x: Tensor, mask: Tensor, weight: Tensor, bias: Tensor, stride: int, eps: float = 1e-8) -> Tensor:
    """Eq. 1 window by window: sum(m·x·w) / (sum(m) + eps) + b, 'same' padding, via F.unfold."""
    kernel = weight.shape[-1]
    size = (x.shape[-1] + 2 * (kernel // 2) - kernel) // stride + 1
    windows = F.unfold(x * mask, kernel, padding=kernel // 2, stride=stride)  # [B, C·k·k, L]
    valid = F.unfold(mask, kernel, padding=kernel // 2, stride=stride).sum(1, keepdim=True)  # [B, 1, L]
    y = (weight.flatten(1) @ windows) / (valid + eps) + bias[:, None]
    return y.unflatten(2, (size, size))


def valid_windows(mask: Tensor, kernel: int, stride: int) -> Tensor:
    counts = F.unfold(mask, kernel, padding=kernel // 2, stride=stride).sum(1, keepdim=True)
    size = (mask.shape[-1] + 2 * (kernel // 2) - kernel) // stride + 1
    return (counts > 0).to(mask.dtype).unflatten(2, (size, size))


@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
def test_dense_mask_layer_equals_the_unfold_reference(sample, kernel: int, stride: int) -> None:
    s = sample(2, 3, 11, 0.3)
    layer = SparsityInvariantConv2d(3, 4, kernel, stride).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = s.dense.clone().requires_grad_()
    y, mask_out = layer(x, s.mask)
    y_ref = reference(x, s.mask, layer.weight, layer.bias, stride)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(mask_out, valid_windows(s.mask, kernel, stride))
    upstream = torch.randn_like(y)
    grads = torch.autograd.grad((y * upstream).sum(), [x, layer.weight, layer.bias])
    grads_ref = torch.autograd.grad((y_ref * upstream).sum(), [x, layer.weight, layer.bias])
    for grad, grad_ref in zip(grads, grads_ref):
        torch.testing.assert_close(grad, grad_ref)


def test_a_window_without_valid_pixels_gives_the_bias() -> None:
    layer = SparsityInvariantConv2d(2, 3, 3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1.0, -2.0, 0.5]))
    mask = torch.zeros(1, 1, 7, 7)
    mask[0, 0, 0, 0] = 1
    y, mask_out = layer(torch.randn(1, 2, 7, 7) * 1e3, mask)
    assert torch.equal(y[0, :, 4, 4], layer.bias.detach())
    assert mask_out[0, 0, 4, 4] == 0 and mask_out[0, 0, 1, 1] == 1
    assert torch.isfinite(y).all()


def test_the_normaliser_is_not_a_parameter() -> None:
    layer = SparsityInvariantConv2d(3, 5, 3)
    assert sum(p.numel() for p in layer.parameters()) == 5 * 3 * 9 + 5
    assert set(layer.state_dict()) == {"weight", "bias"}
    sparse = SparseSparsityInvariantConv2d(3, 5, 3)
    assert sum(p.numel() for p in sparse.parameters()) == 5 * 3 * 9 + 5
    assert set(sparse.state_dict()) == {"conv.conv.weight", "bias"}  # the ones kernel is not saved


def test_weights_start_as_a_plain_convolutions_do() -> None:
    """Uniform in ±1/sqrt(fan in) (nn.Conv2d's default, as the ConvNet twins get), biases zero."""
    layer = SparsityInvariantConv2d(3, 16, 11, 2)
    bound = 1 / math.sqrt(3 * 11 * 11)
    assert 0.97 * bound < layer.weight.abs().max().item() <= bound
    assert not layer.bias.any()
    assert repr(layer) == "SparsityInvariantConv2d(3, 16, kernel_size=11, stride=2, eps=1e-08)"


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="odd kernel_size"):
        SparsityInvariantConv2d(1, 1, 2)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        SparsityInvariantConv2d(2, 1, 3)(torch.zeros(1, 2, 5, 5), torch.zeros(1, 2, 5, 5))
    message = re.escape("mask must be [B, 1, H, W] = [2, 1, 7, 7] for x [2, 3, 7, 7]; got [2, 1, 7, 6]")
    with pytest.raises(ValueError, match=message):
        SparsityInvariantConv2d(3, 4, 3)(torch.zeros(2, 3, 7, 7), torch.zeros(2, 1, 7, 6))
    with pytest.raises(ValueError, match="stride must be 1"):
        SparseSparsityInvariantConv2d(1, 1, 3, 2, submanifold=True)


@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 1), (5, 1), (3, 2)])
def test_spconv_form_equals_the_reference_on_the_dilated_mask(sample, compare, kernel: int, stride: int) -> None:
    s = sample(2, 3, 11, 0.2)
    layer = SparseSparsityInvariantConv2d(3, 4, kernel, stride).double()
    with torch.no_grad():
        layer.bias.normal_()
    out = compare(layer, s.sparse, s.dense, lambda d: reference(d, s.mask, layer.dense_weight(), layer.bias, stride))
    dilated = valid_windows(s.mask, kernel, stride)[:, 0].nonzero()
    assert sorted(map(tuple, out.indices.tolist())) == sorted(map(tuple, dilated.tolist()))


def test_submanifold_spconv_form_keeps_the_valid_pixels(sample, compare) -> None:
    s = sample(2, 3, 11, 0.2)
    layer = SparseSparsityInvariantConv2d(3, 4, 3, submanifold=True).double()
    out = compare(layer, s.sparse, s.dense, lambda d: reference(d, s.mask, layer.dense_weight(), layer.bias, 1))
    assert torch.equal(out.indices, s.sparse.indices)


@pytest.mark.parametrize("submanifold", [False, True])
def test_spconv_form_builds_one_rulebook_and_keeps_it_private(sample, rulebook_builds, submanifold: bool) -> None:
    """The neighbour count runs on the rulebook of the convolution, which later layers do not see."""
    s = sample(2, 3, 11, 0.2, dtype=torch.float32)
    out = SparseSparsityInvariantConv2d(3, 4, 3, submanifold=submanifold)(s.sparse)
    assert rulebook_builds[0] == 1
    assert out.indice_dict == {}


def test_mnist_net_on_spconv_equals_the_dense_mask_net(sample) -> None:
    """The seed's layers with the paper's zero-initialised biases: invalid pixels stay 0 in both."""
    dense_mask, sparse = models.build("sinet-mnist"), models.build("sinet-mnist-sparse")
    models.copy_to_dense_twin(sparse, dense_mask)
    s = sample(3, 1, 28, 0.3, dtype=torch.float32)
    torch.testing.assert_close(sparse(s.sparse), dense_mask(s.dense, s.mask), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "dataset,channels,size,classes,flat", [("mnist", 1, 28, 10, 784), ("caltech", 3, 224, 101, 3136)]
)
def test_networks_and_convnet_twins_share_layers(
    dataset: str, channels: int, size: int, classes: int, flat: int
) -> None:
    nets = {kind: models.build(f"{kind}-{dataset}") for kind in ("sinet", "convnet")}
    assert nets["sinet"].input_kind == "dense-mask" and nets["convnet"].input_kind == "dense"
    counts = {kind: sum(p.numel() for p in net.parameters()) for kind, net in nets.items()}
    assert counts["sinet"] == counts["convnet"]
    assert nets["sinet"].classifier[0].in_features == flat
    assert nets["sinet"].input_size() == (size, size) and nets["sinet"].in_channels == channels
    assert nets["convnet"].classifier[-1].out_features == classes


def test_caltech_blocks_pool_features_and_mask(sample) -> None:
    net = models.build("sinet-caltech", image_size=32)
    s = sample(2, 3, 32, 0.3, dtype=torch.float32)
    masks = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: masks.append(out[1])) for conv in net.convs]
    assert net(s.dense, s.mask).shape == (2, 101)
    for hook in hooks:
        hook.remove()
    assert [m.shape[-1] for m in masks] == [32, 16, 8, 4]


def test_dense_mask_net_needs_its_mask(sample) -> None:
    s = sample(1, 1, 28, 0.3, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"\(x, mask\)"):
        models.build("sinet-mnist")(s.dense)
    with pytest.raises(TypeError, match="x alone"):
        models.build("convnet-mnist")(s.dense, s.mask)
    with pytest.raises(ValueError, match="divisible by 16"):
        models.build("sinet-caltech", image_size=100)


@pytest.mark.parametrize(
    "name,convs,pool,norm,head",
    [
        ("sinet-mnist", [(1, 16, 5), (16, 1, 1)], False, False, [("fc", 784, 100), ("relu",), ("fc", 100, 10)]),
        (
            "sinet-caltech",
            [(3, 16, 11), (16, 16, 7), (16, 16, 5), (16, 16, 3)],
            True,
            True,
            [("fc", 3136, 512), ("relu",), ("dropout", 0.2), ("fc", 512, 256), ("relu",), ("fc", 256, 101)],
        ),
    ],
)
def test_the_networks_have_the_seeds_layers(name: str, convs: list, pool: bool, norm: bool, head: list) -> None:
    """The layers of the module docstring (the seed reproduction's Figures 4-5), written out here."""
    net = models.build(name)
    found = [(c.weight.shape[1], c.weight.shape[0], c.weight.shape[-1]) for c in net.convs]
    assert found == convs and all(isinstance(c, SparsityInvariantConv2d) for c in net.convs)
    for post in net.posts:
        kinds = [type(m).__name__ for m in post]
        assert kinds == [*(["BatchNorm2d"] if norm else []), "ReLU", *(["MaxPool2d"] if pool else [])]
    layers = []
    for m in net.classifier:
        if isinstance(m, torch.nn.Linear):
            layers.append(("fc", m.in_features, m.out_features))
        elif isinstance(m, torch.nn.Dropout):
            layers.append(("dropout", m.p))
        else:
            layers.append((type(m).__name__.lower(),))
    assert layers == head
