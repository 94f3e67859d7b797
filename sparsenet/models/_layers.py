"""Shared machinery of the network families: one layer vocabulary compiled two ways.

A family describes its network once, calling the methods of a :class:`LayerFactory`;
``SPARSE`` turns each call into an spconv layer (:mod:`sparsenet.spconv_compat`), ``DENSE`` into
its ``torch.nn`` twin. Both twins therefore have the same modules in the same order, and
:func:`copy_to_dense_twin` can copy parameters across.

=================  ==============================  =====================================
call               sparse (``SPARSE``)              dense twin (``DENSE``)
=================  ==============================  =====================================
``conv``           ``SparseConv2d`` (valid)         ``Conv2d(padding=0)``
``subm``           ``SubMConv2d``                   ``Conv2d(padding=k // 2)``
``inverse``        ``SparseInverseConv2d``          ``ConvTranspose2d(stride)``
``max_pool``       ``SparseMaxPool2d``              ``MaxPool2d``
``batch_norm``     ``BatchNorm1d`` on features      ``BatchNorm2d``
``concat``         ``Concat``                       ``DenseConcat``
``sequential``     ``SparseSequential``             ``Sequential``
=================  ==============================  =====================================

``nn.ReLU`` and ``nn.Dropout`` serve both (spconv's ``SparseSequential`` applies them to features).
The twins agree wherever the sparse net's inactive sites are zero in the dense one: with zero
biases for valid convolutions, on a fully active input for submanifold convolutions.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from sparsenet import spconv_compat as sc


class DenseConcat(nn.Module):
    """Dense twin of :class:`sparsenet.spconv_compat.Concat`: ``[B, C, H, W]`` -> channel concat."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class LayerFactory:
    """Builds the layers of one network twin; see the module docstring for the mapping."""

    def __init__(self, *, sparse: bool) -> None:
        self.sparse = sparse

    def conv(
        self, cin: int, cout: int, k: int, stride: int = 1, *, bias: bool = True, key: str | None = None
    ) -> nn.Module:
        """Valid ``k x k`` convolution; ``key`` names its rulebook, which a later ``inverse`` and
        a later ``conv`` or ``max_pool`` of the same geometry on the same sites reuse."""
        if self.sparse:
            return sc.SparseConv2d(cin, cout, k, stride, bias=bias, indice_key=key)
        return nn.Conv2d(cin, cout, k, stride, bias=bias)

    def subm(self, cin: int, cout: int, k: int, *, bias: bool = True, key: str | None = None) -> nn.Module:
        """Size-preserving ``k x k`` convolution; sparse layers sharing ``key`` share one rulebook."""
        if self.sparse:
            return sc.SubMConv2d(cin, cout, k, bias=bias, indice_key=key)
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)

    def inverse(self, cin: int, cout: int, k: int, stride: int, *, key: str, bias: bool = True) -> nn.Module:
        """Undoes the ``conv`` registered as ``key`` (kernel ``k``, ``stride``)."""
        if self.sparse:
            return sc.SparseInverseConv2d(cin, cout, k, indice_key=key, bias=bias)
        return nn.ConvTranspose2d(cin, cout, k, stride, bias=bias)

    def max_pool(self, k: int, stride: int, *, key: str | None = None, nonnegative: bool = True) -> nn.Module:
        """``k x k`` max-pooling. ``nonnegative``: its input comes from a ReLU, so spconv's kernel,
        which pools ``max(0, window)``, is exact; otherwise the exact signed pooling is used.
        ``key`` names its rulebook as for ``conv``."""
        if self.sparse:
            return sc.SparseMaxPool2d(k, stride, nonnegative_input=nonnegative, indice_key=key)
        return nn.MaxPool2d(k, stride)

    def batch_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm1d(channels) if self.sparse else nn.BatchNorm2d(channels)

    def concat(self, *branches: nn.Module) -> nn.Module:
        return sc.Concat(*branches) if self.sparse else DenseConcat(*branches)

    def sequential(self, *modules: nn.Module) -> nn.Module:
        return sc.SparseSequential(*modules) if self.sparse else nn.Sequential(*modules)


SPARSE = LayerFactory(sparse=True)
DENSE = LayerFactory(sparse=False)


def check_field(model_name: str, expected: tuple[int, int], found: tuple[int, ...]) -> None:
    """Raises ``ValueError`` naming the model and both sizes unless ``found == expected``."""
    if tuple(found) != expected:
        raise ValueError(
            f"{model_name} needs a {expected[0]}x{expected[1]} input field, got "
            f"{'x'.join(str(s) for s in found)}; place each sample in a grid of model.input_size()"
        )


def _first(value: int | tuple[int, ...]) -> int:
    return value[0] if isinstance(value, tuple) else value


def _geometry(module: nn.Module) -> Iterator[tuple[int, int, int]]:
    """``(kernel, stride, padding)`` of each size-changing layer of a trunk, in forward order."""
    if isinstance(module, (sc.Concat, DenseConcat, sc.SubMConv2d)):
        return  # size-preserving: a Concat's branches end where they started
    if isinstance(module, sc.SparseConv2d):
        yield module.conv.kernel_size[0], module.conv.stride[0], module.conv.padding[0]
    elif isinstance(module, sc.SparseMaxPool2d):
        yield module.kernel_size, module.stride, 0
    elif isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        yield _first(module.kernel_size), _first(module.stride), _first(module.padding)
    else:
        for child in module.children():
            yield from _geometry(child)


def field_size(trunk: nn.Module) -> int:
    """The input size a trunk reduces to ``1 x 1`` (SparseConvNet's ``input_spatial_size``)."""
    size = 1
    for kernel, stride, padding in reversed(list(_geometry(trunk))):
        size = (size - 1) * stride + kernel - 2 * padding
    return size


def layer_sizes(trunk: nn.Module, size: int) -> list[int]:
    """Input size followed by the output size of each size-changing layer of ``trunk``."""
    sizes = [size]
    for kernel, stride, padding in _geometry(trunk):
        sizes.append((sizes[-1] + 2 * padding - kernel) // stride + 1)
    return sizes


class TrunkNet(nn.Module):
    """A convolutional trunk that reduces its input field to ``1 x 1``, then a classifier.

    Subclasses build ``trunk`` with a :class:`LayerFactory` and set ``classifier``. The sparse twin
    takes a ``SparseConvTensor`` with spatial shape ``input_size()``, the dense twin
    ``[B, in_channels, H, W]``; both return logits ``[B, num_classes]``.
    """

    trunk: nn.Module
    classifier: nn.Module

    def __init__(self, *, sparse: bool, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.input_kind = "sparse" if sparse else "dense"
        self.in_channels = in_channels
        self.num_classes = num_classes

    def input_size(self) -> tuple[int, int]:
        """The ``(H, W)`` input field, derived from the trunk's layers."""
        size = field_size(self.trunk)
        return (size, size)

    def forward(self, x: sc.SparseConvTensor | Tensor) -> Tensor:
        if self.input_kind == "sparse":
            if not isinstance(x, sc.SparseConvTensor):
                raise TypeError(f"sparse {type(self).__name__} takes a SparseConvTensor, got {type(x).__name__}")
            check_field(type(self).__name__, self.input_size(), tuple(x.spatial_shape))
            features = sc.to_dense(self.trunk(x))
        else:
            check_field(type(self).__name__, self.input_size(), tuple(x.shape[-2:]))
            features = self.trunk(x)
        return self.classifier(features.flatten(1))


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    """Parameter-holding layers in construction order; a layer with ``dense_weight`` (a sparse
    convolution wrapping spconv's) counts as one."""
    if hasattr(module, "dense_weight") or (not list(module.children()) and list(module.parameters(recurse=False))):
        yield module
        return
    for child in module.children():
        yield from _leaves(child)


@torch.no_grad()
def copy_to_dense_twin(sparse: nn.Module, dense: nn.Module) -> None:
    """Copies every parameter and BatchNorm statistic of a sparse network into its dense twin.

    Raises:
        ValueError: the two networks do not have matching layers.
    """
    sources, targets = list(_leaves(sparse)), list(_leaves(dense))
    if len(sources) != len(targets):
        raise ValueError(f"sparse net has {len(sources)} parameter layers, dense twin {len(targets)}")
    for i, (src, dst) in enumerate(zip(sources, targets)):
        if hasattr(src, "dense_weight"):
            weight = src.dense_weight()
            if weight.shape != dst.weight.shape or (src.bias is None) != (dst.bias is None):
                raise ValueError(
                    f"layer {i}: {type(src).__name__} weight {list(weight.shape)} does not fit "
                    f"{type(dst).__name__} weight {list(dst.weight.shape)}"
                )
            dst.weight.copy_(weight)
            if src.bias is not None:
                dst.bias.copy_(src.bias)
        else:
            dst.load_state_dict(src.state_dict())
