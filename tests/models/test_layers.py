"""Every sparse layer of sparsenet.spconv_compat against an independent torch.nn.functional
computation at the active sites (forward and backward, float64), and spconv's CPU pitfalls."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from sparsenet import spconv_compat as sc

spconv = sc.spconv


def site_keys(indices: Tensor) -> list[tuple[int, int, int]]:
    return sorted(map(tuple, indices.tolist()))


@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_submanifold_conv_equals_same_conv_at_active_sites(sample, compare, kernel: int) -> None:
    s = sample(2, 3, 12, 0.3)
    layer = sc.SubMConv2d(3, 4, kernel).double()
    out = compare(
        layer, s.sparse, s.dense, lambda d: F.conv2d(d, layer.dense_weight(), layer.bias, padding=kernel // 2)
    )
    assert torch.equal(out.indices, s.sparse.indices)


@pytest.mark.parametrize("kernel,stride,padding", [(1, 1, 0), (2, 1, 0), (3, 1, 0), (3, 2, 0), (2, 2, 0), (3, 1, 1)])
def test_sparse_conv_equals_conv_on_the_grown_active_set(
    sample, compare, kernel: int, stride: int, padding: int
) -> None:
    s = sample(2, 3, 11, 0.15)
    layer = sc.SparseConv2d(3, 4, kernel, stride, padding).double()
    out = compare(layer, s.sparse, s.dense, lambda d: F.conv2d(d, layer.dense_weight(), layer.bias, stride, padding))
    grown = F.max_pool2d(s.mask, kernel, stride, padding)
    assert site_keys(out.indices) == site_keys(grown[:, 0].nonzero())
    assert list(out.spatial_shape) == list(grown.shape[2:])


def test_inverse_conv_equals_transposed_conv_at_the_input_sites(sample, compare) -> None:
    s = sample(2, 3, 11, 0.3)
    down = sc.SparseConv2d(3, 4, 3, 2, indice_key="down").double()
    inverse = sc.SparseInverseConv2d(4, 2, 3, indice_key="down").double()
    low = down(s.sparse)
    low_dense = sc.to_dense(low)
    out = compare(
        inverse, low, low_dense, lambda d: F.conv_transpose2d(d, inverse.dense_weight(), inverse.bias, stride=2)
    )
    assert torch.equal(out.indices, s.sparse.indices)
    assert list(out.spatial_shape) == [11, 11]


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1)])
def test_max_pool_equals_dense_max_pool_for_signed_inputs(sample, compare, kernel: int, stride: int) -> None:
    s = sample(2, 3, 11, 0.3)
    out = compare(
        sc.SparseMaxPool2d(kernel, stride),
        s.sparse,
        s.dense,
        lambda d: F.max_pool2d(d.masked_fill(s.mask == 0, float("-inf")), kernel, stride),
    )
    assert (out.features < 0).any()


def test_spconv_max_pool_clamps_negative_windows_to_zero(sample) -> None:
    """Pitfall 5: spconv's kernel (nonnegative_input=True) returns max(0, window)."""
    s = sample(1, 2, 8, 0.4)
    negative = s.sparse.replace_feature(-s.sparse.features.abs() - 1)
    clamped = sc.SparseMaxPool2d(2, 2, nonnegative_input=True)(negative)
    exact = sc.SparseMaxPool2d(2, 2)(negative)
    assert torch.equal(clamped.indices, exact.indices)
    assert torch.all(clamped.features == 0)
    assert torch.all(exact.features <= -1)


def test_nonnegative_max_pool_is_exact_after_relu(sample, compare) -> None:
    s = sample(2, 3, 12, 0.3)
    positive = s.sparse.replace_feature(s.sparse.features.abs() + 0.1)
    dense = s.dense.abs() + 0.1 * s.mask
    compare(sc.SparseMaxPool2d(3, 2, nonnegative_input=True), positive, dense, lambda d: F.max_pool2d(d, 3, 2))


def test_to_dense_scatters_features_and_keeps_gradients(sample) -> None:
    s = sample(2, 3, 9, 0.3)
    features = s.sparse.features.clone().requires_grad_()
    dense = sc.to_dense(s.sparse.replace_feature(features))
    torch.testing.assert_close(dense, s.dense)
    dense.sum().backward()
    assert torch.equal(features.grad, torch.ones_like(features))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spconv's .dense() warns about list indexing (pitfall 6)
        torch.testing.assert_close(s.sparse.dense(), s.dense)


def test_to_sparse_tensor_makes_indices_int32_and_contiguous(sample) -> None:
    s = sample(2, 1, 9, 0.3)
    coords = s.sparse.indices.long().t().contiguous().t()  # int64, not contiguous
    x = sc.to_sparse_tensor(s.sparse.features, coords, [9, 9], 2)
    assert x.indices.dtype == torch.int32 and x.indices.is_contiguous()
    assert torch.equal(x.indices, s.sparse.indices)


@pytest.mark.parametrize(
    "coords,features,message",
    [
        ([[0, 1, 1]], torch.ones(2, 1), "2 rows|has 1 rows"),
        ([[0, 1]], torch.ones(1, 1), r"\[N, 3\]"),
        ([[0, 9, 1]], torch.ones(1, 1), "outside"),
        ([[2, 1, 1]], torch.ones(1, 1), "outside"),
        ([[0, -1, 1]], torch.ones(1, 1), "outside"),
        ([[0, 1, 1], [1, 2, 2], [0, 1, 1]], torch.ones(3, 1), r"duplicate.*\[0, 1, 1\]"),
        ([[0, 1, 1]], torch.ones(1, 1, dtype=torch.int64), "floating"),
    ],
)
def test_to_sparse_tensor_rejects_bad_input(coords: list, features: Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sc.to_sparse_tensor(features, torch.tensor(coords), (9, 9), 2)


def test_spconv_pitfalls_that_compat_hides(sample, at_sites) -> None:
    """Pins pitfalls 1-4 on this spconv; if one stops failing, spconv_compat may be simplified."""
    s = sample(1, 2, 9, 0.4, dtype=torch.float32)
    if not torch.cuda.is_available():
        with pytest.raises(AssertionError, match="CUDA"):
            spconv.SubMConv2d(2, 2, 3, bias=False)(s.sparse)
    fused = spconv.SubMConv2d(2, 2, 3, algo=sc.ALGO).eval()
    with pytest.raises(RuntimeError, match="don't support cpu"):
        fused(s.sparse)
    ours = sc.SubMConv2d(2, 2, 3).eval()
    assert ours(s.sparse).features.shape == (s.sparse.features.shape[0], 2)
    one_by_one = spconv.SubMConv2d(2, 3, 1, bias=False, algo=sc.ALGO)
    reference = F.conv2d(s.dense.float(), one_by_one.weight.permute(0, 3, 1, 2))
    assert not torch.allclose(one_by_one(s.sparse).features, at_sites(reference, s.sparse.indices))
    transposed = s.sparse.indices.t().contiguous().t()
    raw = spconv.SparseConvTensor(s.sparse.features, transposed, [9, 9], 1)
    conv = spconv.SparseConv2d(2, 2, 3, bias=False, algo=sc.ALGO)
    assert not torch.allclose(sc.to_dense(conv(raw)), sc.to_dense(conv(s.sparse)))


def test_concat_rejects_branches_on_different_sites(sample) -> None:
    s = sample(1, 2, 9, 0.3, dtype=torch.float32)
    concat = sc.Concat(sc.SubMConv2d(2, 2, 3), sc.SparseConv2d(2, 2, 3))
    with pytest.raises(ValueError, match="inverse conv"):
        concat(s.sparse)


def carrying_rulebooks(x: sc.SparseConvTensor, source: sc.SparseConvTensor) -> sc.SparseConvTensor:
    """``x`` with the rulebooks of ``source``, as a network passes them on from layer to layer."""
    out = x.replace_feature(x.features)
    out.indice_dict = dict(source.indice_dict)
    return out


def forward_backward(layer: torch.nn.Module, x: sc.SparseConvTensor) -> list[Tensor]:
    """Output features, then the gradients of input features and parameters, for a fixed upstream."""
    features = x.features.detach().clone().requires_grad_()
    out = layer(x.replace_feature(features))
    upstream = torch.randn(out.features.shape, dtype=out.features.dtype, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((out.features * upstream).sum(), [features, *layer.parameters()])
    return [out.features.detach(), *grads]


STRIDED: dict[str, Callable[[str | None], torch.nn.Module]] = {
    "conv": lambda key: sc.SparseConv2d(3, 4, 3, 2, indice_key=key),
    "pool": lambda key: sc.SparseMaxPool2d(3, 2, indice_key=key),
    "pool-nonnegative": lambda key: sc.SparseMaxPool2d(3, 2, nonnegative_input=True, indice_key=key),
}


@pytest.mark.parametrize("builder", STRIDED)
@pytest.mark.parametrize("reuser", STRIDED)
def test_strided_layers_sharing_a_key_build_one_rulebook(
    sample, compare, rulebook_builds, builder: str, reuser: str
) -> None:
    """A 3x3 stride-2 conv or pool reuses the rulebook of one before it: the same bits as building its
    own, and the dense result at the output sites (positive inputs: the spconv pool is exact)."""
    s = sample(2, 3, 11, 0.3)
    x = s.sparse.replace_feature(s.sparse.features.abs() + 0.1)
    dense = s.dense.abs() + 0.1 * s.mask
    built = STRIDED[builder]("down").double()(x)
    layer = STRIDED[reuser]("down").double()
    shared_input = carrying_rulebooks(x, built)
    if reuser == "conv":
        out = compare(layer, shared_input, dense, lambda d: F.conv2d(d, layer.dense_weight(), layer.bias, 2))
    else:
        out = compare(layer, shared_input, dense, lambda d: F.max_pool2d(d, 3, 2))
    assert rulebook_builds[0] == 1
    assert out.indices is built.indices and out.indice_dict["down"] is built.indice_dict["down"]
    shared = forward_backward(layer, shared_input)
    own = forward_backward(layer, x)
    assert rulebook_builds[0] == 2
    assert all(torch.equal(a, b) for a, b in zip(shared, own, strict=True))


@pytest.mark.parametrize(
    "second,other,message",
    [
        (lambda: sc.SparseMaxPool2d(2, 2, indice_key="k"), {}, r"rulebook of kernel \[3, 3\].*has kernel \[2, 2\]"),
        (lambda: sc.SparseConv2d(3, 3, 3, 1, indice_key="k"), {}, r"stride \[2, 2\].*stride \[1, 1\]"),
        (lambda: sc.SparseConv2d(3, 3, 3, 2, 1, indice_key="k"), {}, r"padding \[0, 0\].*padding \[1, 1\]"),
        (lambda: sc.SparseMaxPool2d(3, 2, indice_key="k"), {"seed": 1}, "other input sites"),
        (lambda: sc.SparseMaxPool2d(3, 2, indice_key="k"), {"size": 13}, r"11x11 grid.*13x13 grid"),
    ],
)
def test_a_key_shared_by_mismatching_layers_is_refused(
    sample, second: Callable[[], torch.nn.Module], other: dict, message: str
) -> None:
    first = sc.SparseConv2d(3, 3, 3, 2, indice_key="k")(sample(2, 3, 11, 0.3, dtype=torch.float32).sparse)
    x = sample(2, 3, other.get("size", 11), 0.3, seed=other.get("seed", 0), dtype=torch.float32).sparse
    with pytest.raises(ValueError, match=message):
        second()(carrying_rulebooks(x, first))


def test_a_strided_layer_refuses_a_submanifold_key(sample) -> None:
    s = sample(1, 3, 11, 0.3, dtype=torch.float32)
    subm = sc.SubMConv2d(3, 3, 3, indice_key="k")(s.sparse)
    with pytest.raises(ValueError, match="submanifold"):
        sc.SparseConv2d(3, 3, 3, 2, indice_key="k")(subm)


def test_concat_passes_on_the_rulebooks_of_every_branch(sample) -> None:
    s = sample(1, 2, 11, 0.3, dtype=torch.float32)
    branch = sc.SparseSequential(
        sc.SparseConv2d(2, 2, 3, 2, indice_key="down"),
        sc.SubMConv2d(2, 2, 3, indice_key="low"),
        sc.SparseInverseConv2d(2, 2, 3, indice_key="down"),
    )
    out = sc.Concat(sc.SubMConv2d(2, 2, 3, indice_key="high"), branch)(s.sparse)
    assert set(out.indice_dict) == {"high", "down", "low"}
    pooled = sc.SparseMaxPool2d(3, 2, indice_key="down")(out)
    assert pooled.indices is out.indice_dict["down"].out_indices


LAYERS: dict[str, Callable[[], torch.nn.Module]] = {
    "conv": lambda: sc.SparseConv2d(16, 16, 3),
    "submanifold": lambda: sc.SubMConv2d(16, 16, 3),
    "pool": lambda: sc.SparseMaxPool2d(3, 2),
    "pool-nonnegative": lambda: sc.SparseMaxPool2d(3, 2, nonnegative_input=True),
}


@pytest.mark.parametrize("name", LAYERS)
def test_two_threads_give_the_same_bits_as_one(sample, name: str) -> None:
    """The CPU-only spconv 2.3.8 wheel races in its scatter-add; this wheel must not."""
    s = sample(4, 16, 48, 0.3, dtype=torch.float32)
    torch.manual_seed(0)
    layer = LAYERS[name]()
    upstream = None
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 1, 2):
            torch.set_num_threads(count)
            features = s.sparse.features.clone().requires_grad_()
            out = layer(s.sparse.replace_feature(features))
            if upstream is None:
                upstream = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(2))
            grads = torch.autograd.grad((out.features * upstream).sum(), [features, *layer.parameters()])
            results.append([out.features.detach(), *grads])
    finally:
        torch.set_num_threads(threads)
    for result in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], result))
