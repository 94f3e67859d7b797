"""Sparse VGG networks of Graham's SparseConvNet (``SparseVggNet``), with dense twins.

Graham, "Spatially-sparse convolutional neural networks", arXiv:1409.6070; the layer lists are
those of SparseConvNet's handwriting examples (``examples/Assamese_handwriting/VGGplus.py``,
``examples/Chinese_handwriting/VGG-C.py``). Vocabulary of a layer list:

- ``n``: ``C n``, a 3x3 submanifold convolution without bias to ``n`` planes, BatchNorm, ReLU;
- ``(a, b)``: ``C a+b``, the concatenation of a 3x3 submanifold convolution (``a`` planes) and a
  branch [3x3 stride-2 valid conv → BN-ReLU → 3x3 submanifold → BN-ReLU → inverse conv back to
  the input sites] (``b`` planes), then BatchNorm and ReLU;
- ``"MP"``: 3x3 max-pooling with stride 2 (valid).

Then a valid ``head`` convolution to 1x1 without bias, BatchNorm, ReLU, and a linear classifier.
Layers share rulebooks (``indice_key``, see :mod:`sparsenet.spconv_compat`), so one step builds one
per scale and kind: the submanifold convolutions at scale ``s`` (including the branch convolutions
that work at ``s`` from scale ``s - 1``) share ``subm{s}``; every 3x3 stride-2 operation from scale
``s`` (the branch convolutions and the max-pool, all on the same sites) shares ``down{s}``, and each
branch's inverse conv runs ``down{s}`` backwards, so it restores exactly the input sites.

The dense twins use 'same' 3x3 convolutions for ``C`` and a transposed convolution for the
inverse; they equal the sparse networks on a fully active input, not on a sparse one (a
submanifold convolution does not spread activity, a dense one does).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from sparsenet.models._layers import DENSE, SPARSE, LayerFactory, TrunkNet
from sparsenet.models._registry import register_model

Entry = int | tuple[int, int] | str


@dataclass(frozen=True)
class VggSpec:
    """A SparseVggNet layer list and its head ``(kernel, stride, channels)``."""

    layers: tuple[Entry, ...]
    head: tuple[int, int, int]


SPECS: dict[str, VggSpec] = {
    # VGGplus, Assamese handwriting: field 95 (95→47→23→11→5→1).
    "plus": VggSpec(layers=(8, 8, "MP", 16, 16, "MP", (16, 8), (16, 8), "MP", (24, 8), (24, 8), "MP"), head=(5, 1, 64)),
    # VGG-C, Chinese handwriting: field 63 (63→31→15→7→3→1).
    "plain": VggSpec(layers=(16, 16, "MP", 32, 32, "MP", 48, 48, "MP", 64, 64, "MP", 96, 96), head=(3, 2, 128)),
}


def _bn_relu(factory: LayerFactory, channels: int) -> list[nn.Module]:
    return [factory.batch_norm(channels), nn.ReLU()]


def make_layers(factory: LayerFactory, spec: VggSpec, in_channels: int) -> tuple[nn.Module, int]:
    """Builds the trunk of ``spec``; returns it and its output width."""
    layers: list[nn.Module] = []
    channels, scale = in_channels, 0
    for entry in spec.layers:
        down = f"down{scale}"
        if entry == "MP":
            layers.append(factory.max_pool(3, 2, key=down))
            scale += 1
            continue
        planes, branch_planes = (entry, 0) if isinstance(entry, int) else entry
        layer = factory.subm(channels, planes, 3, bias=False, key=f"subm{scale}")
        if branch_planes:
            layer = factory.concat(
                layer,
                factory.sequential(
                    factory.conv(channels, branch_planes, 3, 2, bias=False, key=down),
                    *_bn_relu(factory, branch_planes),
                    factory.subm(branch_planes, branch_planes, 3, bias=False, key=f"subm{scale + 1}"),
                    *_bn_relu(factory, branch_planes),
                    factory.inverse(branch_planes, branch_planes, 3, 2, key=down, bias=False),
                ),
            )
        channels = planes + branch_planes
        layers += [layer, *_bn_relu(factory, channels)]
    kernel, stride, head_channels = spec.head
    layers += [factory.conv(channels, head_channels, kernel, stride, bias=False), *_bn_relu(factory, head_channels)]
    return factory.sequential(*layers), head_channels


class VGG(TrunkNet):
    """A SparseVggNet (sparse or dense twin according to the factory).

    Input: ``SparseConvTensor`` (sparse) or ``[B, in_channels, F, F]`` (dense), ``F`` the field
    (95 for ``"plus"``, 63 for ``"plain"``). Output: logits ``[B, num_classes]``.
    """

    def __init__(self, factory: LayerFactory, spec: VggSpec, *, in_channels: int, num_classes: int) -> None:
        super().__init__(sparse=factory.sparse, in_channels=in_channels, num_classes=num_classes)
        self.trunk, width = make_layers(factory, spec, in_channels)
        self.classifier = nn.Linear(width, num_classes)


@register_model("vgg")
def vgg(*, in_channels: int = 3, num_classes: int = 183) -> VGG:
    """Sparse VGGplus of SparseConvNet's Assamese example (field 95) — Graham, arXiv:1409.6070.

    Args:
        in_channels: features per active site (3 = pen-stroke features in SparseConvNet).
        num_classes: number of logits (183 Assamese characters).

    Input ``SparseConvTensor`` (95 x 95); output logits ``[B, num_classes]``.
    """
    return VGG(SPARSE, SPECS["plus"], in_channels=in_channels, num_classes=num_classes)


@register_model("vgg-dense")
def vgg_dense(*, in_channels: int = 3, num_classes: int = 183) -> VGG:
    """Dense twin of :func:`vgg` — Graham, arXiv:1409.6070. Input ``[B, in_channels, 95, 95]``;
    output logits ``[B, num_classes]``."""
    return VGG(DENSE, SPECS["plus"], in_channels=in_channels, num_classes=num_classes)


@register_model("vgg-plain")
def vgg_plain(*, in_channels: int = 3, num_classes: int = 183) -> VGG:
    """Sparse plain VGG (SparseConvNet's VGG-C list: C16, C16, MP, C32, C32, MP, …, field 63) —
    Graham, arXiv:1409.6070. Input ``SparseConvTensor`` (63 x 63); output logits
    ``[B, num_classes]``."""
    return VGG(SPARSE, SPECS["plain"], in_channels=in_channels, num_classes=num_classes)


@register_model("vgg-plain-dense")
def vgg_plain_dense(*, in_channels: int = 3, num_classes: int = 183) -> VGG:
    """Dense twin of :func:`vgg_plain` — Graham, arXiv:1409.6070. Input
    ``[B, in_channels, 63, 63]``; output logits ``[B, num_classes]``."""
    return VGG(DENSE, SPECS["plain"], in_channels=in_channels, num_classes=num_classes)
