"""Random sparse inputs shared by the network tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from sparsenet import spconv_compat as sc


@dataclass
class SparseSample:
    """The same random input three ways: ``dense [B, C, H, W]`` (zeros off the active sites),
    ``mask [B, 1, H, W]`` (1 at active sites) and ``sparse`` (a validated SparseConvTensor)."""

    dense: torch.Tensor
    mask: torch.Tensor
    sparse: sc.SparseConvTensor


def make_sample(
    batch: int, channels: int, size: int, density: float, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> SparseSample:
    generator = torch.Generator().manual_seed(seed)
    active = torch.rand(batch, size, size, generator=generator) < density
    active[:, size // 2, size // 2] = True  # never an empty sample
    sites = active.nonzero()
    features = torch.randn(len(sites), channels, generator=generator, dtype=dtype)
    dense = torch.zeros(batch, size, size, channels, dtype=dtype)
    dense[active] = features
    return SparseSample(
        dense.permute(0, 3, 1, 2).contiguous(),
        active[:, None].to(dtype),
        sc.to_sparse_tensor(features, sites, (size, size), batch),
    )


@pytest.fixture
def sample() -> Callable[..., SparseSample]:
    """``sample(batch, channels, size, density, seed=0, dtype=float64)`` -> :class:`SparseSample`."""
    return make_sample


def _at_sites(dense: Tensor, indices: Tensor) -> Tensor:
    """``dense [B, C, H, W]`` read at ``indices [N, 3]`` -> ``[N, C]``."""
    b, y, x = indices.long().unbind(1)
    return dense[b, :, y, x]


def _compare(
    layer: torch.nn.Module, x: sc.SparseConvTensor, dense_in: Tensor, reference: Callable[[Tensor], Tensor]
) -> sc.SparseConvTensor:
    """Runs ``layer`` on ``x`` and ``reference`` on ``dense_in`` (the same input, densified) and
    asserts equal outputs at the layer's output sites, equal input gradients at the input sites
    and equal parameter gradients, for a random upstream gradient. Returns the layer's output."""
    features = x.features.detach().clone().requires_grad_()
    dense = dense_in.detach().clone().requires_grad_()
    out = layer(x.replace_feature(features))
    expected = _at_sites(reference(dense), out.indices)
    torch.testing.assert_close(out.features, expected)
    upstream = torch.randn(out.features.shape, dtype=out.features.dtype, generator=torch.Generator().manual_seed(1))
    sparse_grads = torch.autograd.grad((out.features * upstream).sum(), [features, *layer.parameters()])
    dense_grads = torch.autograd.grad((expected * upstream).sum(), [dense, *layer.parameters()])
    torch.testing.assert_close(sparse_grads[0], _at_sites(dense_grads[0], x.indices))
    for sparse_grad, dense_grad in zip(sparse_grads[1:], dense_grads[1:]):
        torch.testing.assert_close(sparse_grad, dense_grad)
    return out


@pytest.fixture
def at_sites() -> Callable[[Tensor, Tensor], Tensor]:
    """``at_sites(dense [B, C, H, W], indices [N, 3]) -> [N, C]``."""
    return _at_sites


@pytest.fixture
def compare() -> Callable[..., sc.SparseConvTensor]:
    """``compare(layer, x, dense_in, reference)``: forward and backward of a sparse layer against a
    dense reference at the active sites (see :func:`_compare`)."""
    return _compare


@pytest.fixture
def rulebook_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-element list counting calls of spconv's ``get_indice_pairs`` (the rulebook builder
    that spconv's layers and :mod:`sparsenet.spconv_compat` both look up in ``spconv.pytorch.ops``)."""
    builds = [0]
    build = sc.spconv_ops.get_indice_pairs

    def counted(*args: object, **kwargs: object) -> object:
        builds[0] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(sc.spconv_ops, "get_indice_pairs", counted)
    return builds
