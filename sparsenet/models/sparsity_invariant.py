"""Sparsity-invariant convolution — Uhrig, Schneider, Schneider, Franke, Brox, Geiger, "Sparsity
Invariant CNNs", 3DV 2017, doi:10.1109/3DV.2017.00012 — and the classification networks of the
seed reproduction (TU Delft group 66, masked MNIST and masked Caltech-101) with ConvNet twins.

The layer: ``y = conv(x·m; W) / (conv(m; 1) + eps) + b`` and ``m_out = maxpool_k(m)`` with 'same'
padding: each output is the weighted mean of the valid inputs in its window. A window without any
valid pixel gives ``0 / eps + b = b`` and ``m_out = 0`` there; ``eps`` (default ``1e-8``, the
seed's value) only guards that division, since a window with a valid pixel has a normaliser >= 1.

Two forms of the same layer:

- :class:`SparsityInvariantConv2d`, dense-mask mode: ``x [B, C, H, W]``, ``m [B, 1, H, W]``.
- :class:`SparseSparsityInvariantConv2d`, on spconv: the active sites are the valid pixels, the
  normaliser counts active neighbours. With ``submanifold=False`` (default) the output sites are
  exactly ``m_out`` and the values equal the dense-mask layer there; with ``submanifold=True`` the
  active set is kept (values equal the dense-mask layer at the input's valid pixels).

Networks (the seed's shapes; its Figures 4-5 and notebooks): masked MNIST, 28x28: SI 5x5 → 16,
ReLU, SI 1x1 → 1, ReLU, flatten, FC 100, ReLU, FC 10. Masked Caltech-101, 224x224x3: four blocks
[SI → BatchNorm → ReLU → 2x2 max-pool of features and mask] with 16 filters of 11, 7, 5, 3, flatten
(16·14·14), FC 512, ReLU, dropout 0.2, FC 256, ReLU, FC 101. The seed pools only its Caltech mask
2x2, without the k x k dilation; here every layer dilates its mask as in the paper. The ConvNet
twins have exactly the same layers with plain 'same' convolutions (the seed's MNIST ConvNet had one
more 3x3 layer), taking the image with invalid pixels set to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsenet import spconv_compat as sc
from sparsenet.models._layers import DENSE, SPARSE, check_field
from sparsenet.models._registry import register_model


def _check_same_kernel(kernel_size: int) -> None:
    if kernel_size % 2 == 0:
        raise ValueError(f"'same' padding needs an odd kernel_size; got {kernel_size}")


class SparsityInvariantConv2d(nn.Module):
    """Sparsity-invariant convolution in dense-mask mode (Uhrig et al. 2017, eq. 1-2).

    Parameters: ``weight [out, in, k, k]`` and ``bias [out]`` (zero-initialised, as in the seed).
    Forward: ``x [B, in, H, W]``, ``mask [B, 1, H, W]`` in {0, 1} -> ``(y [B, out, H', W'],
    mask_out [B, 1, H', W'])`` with ``H' = (H - 1) // stride + 1``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *, eps: float = 1e-8
    ) -> None:
        super().__init__()
        _check_same_kernel(kernel_size)
        self.stride, self.padding, self.eps = stride, kernel_size // 2, eps
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("ones", torch.ones(1, 1, kernel_size, kernel_size), persistent=False)

    def extra_repr(self) -> str:
        out, cin, k, _ = self.weight.shape
        return f"{cin}, {out}, kernel_size={k}, stride={self.stride}, eps={self.eps}"

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"mask must be [B, 1, H, W] = {[x.shape[0], 1, *x.shape[2:]]} for x {list(x.shape)}; "
                f"got {list(mask.shape)}"
            )
        features = F.conv2d(x * mask, self.weight, None, self.stride, self.padding)
        count = F.conv2d(mask, self.ones, None, self.stride, self.padding)
        y = features / (count + self.eps) + self.bias[:, None, None]
        return y, F.max_pool2d(mask, self.ones.shape[-1], self.stride, self.padding)


class SparseSparsityInvariantConv2d(sc.SparseModule):
    """The sparsity-invariant convolution on spconv (sites = valid pixels).

    Features ``[N, in]`` -> ``[N', out]``: ``conv(x; W) / (active neighbours + eps) + b``; the
    neighbour count is the same convolution of a ones feature with a fixed ones kernel (a buffer),
    run on the rulebook the first one built (which stays private to the layer).
    ``weight`` is spconv's ``[out, k, k, in]``; :meth:`dense_weight` gives ``[out, in, k, k]``.
    """

    RULEBOOK = "sparsity_invariant"
    """The ``indice_key`` of the rulebook that ``conv`` builds and ``count`` reuses."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        submanifold: bool = False,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        _check_same_kernel(kernel_size)
        if submanifold and stride != 1:
            raise ValueError(f"a submanifold layer keeps its sites, so stride must be 1; got {stride}")
        self.eps = eps

        def conv(cin: int, cout: int) -> sc.SubMConv2d | sc.SparseConv2d:
            if submanifold:
                return sc.SubMConv2d(cin, cout, kernel_size, bias=False, indice_key=self.RULEBOOK)
            return sc.SparseConv2d(
                cin, cout, kernel_size, stride, kernel_size // 2, bias=False, indice_key=self.RULEBOOK
            )

        self.conv = conv(in_channels, out_channels)
        self.count = conv(1, 1)
        del self.count.conv.weight
        self.count.conv.register_buffer("weight", torch.ones(1, kernel_size, kernel_size, 1), persistent=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    @property
    def weight(self) -> nn.Parameter:
        return self.conv.weight

    def dense_weight(self) -> Tensor:
        """The weight in :class:`SparsityInvariantConv2d` layout ``[out, in, k, k]``."""
        return self.conv.dense_weight()

    def forward(self, x: sc.SparseConvTensor) -> sc.SparseConvTensor:
        """Features ``[N, in]`` at the valid pixels -> ``[N', out]`` at the output sites (``m_out``, or
        the input sites when submanifold); the output carries ``x``'s rulebooks, not this layer's own."""
        y = self.conv(x)
        ones = x.replace_feature(x.features.new_ones(x.features.shape[0], 1))
        ones.indice_dict = y.indice_dict  # x's rulebooks and the one self.conv built
        count = self.count(ones)
        out = y.replace_feature(y.features / (count.features + self.eps) + self.bias)
        out.indice_dict = {key: data for key, data in y.indice_dict.items() if key != self.RULEBOOK}
        return out


@dataclass(frozen=True)
class SINetSpec:
    """Convolutions ``(out_channels, kernel)``, each followed by optional BatchNorm, ReLU and
    optional 2x2 max-pooling; classifier hidden layers ``(width, dropout after it)``."""

    convs: tuple[tuple[int, int], ...]
    batch_norm: bool
    pool: bool
    hidden: tuple[tuple[int, float], ...]


SPECS: dict[str, SINetSpec] = {
    "mnist": SINetSpec(convs=((16, 5), (1, 1)), batch_norm=False, pool=False, hidden=((100, 0.0),)),
    "caltech": SINetSpec(
        convs=((16, 11), (16, 7), (16, 5), (16, 3)), batch_norm=True, pool=True, hidden=((512, 0.2), (256, 0.0))
    ),
}


class SINet(nn.Module):
    """A network of :class:`SINetSpec` in one of three forms (``input_kind``):

    - ``"dense-mask"``: :class:`SparsityInvariantConv2d`; ``forward(x [B, C, S, S], mask [B, 1, S, S])``;
    - ``"dense"`` (ConvNet twin): ``nn.Conv2d`` with 'same' padding; ``forward(x [B, C, S, S])``;
    - ``"sparse"``: :class:`SparseSparsityInvariantConv2d`; ``forward(SparseConvTensor)``, sites =
      valid pixels. Without BatchNorm it equals the dense-mask form when the layer biases are zero;
      its BatchNorm sees only valid sites and its pooling only valid pixels.

    Output: logits ``[B, num_classes]``.
    """

    def __init__(
        self, spec: SINetSpec, *, input_kind: str, in_channels: int, num_classes: int, image_size: int
    ) -> None:
        super().__init__()
        if input_kind not in ("dense-mask", "dense", "sparse"):
            raise ValueError(f"input_kind must be 'dense-mask', 'dense' or 'sparse'; got {input_kind!r}")
        out_size = image_size // 2 ** len(spec.convs) if spec.pool else image_size
        if spec.pool and out_size * 2 ** len(spec.convs) != image_size:
            raise ValueError(f"image_size must be divisible by {2 ** len(spec.convs)}; got {image_size}")
        self.input_kind, self.in_channels, self.num_classes = input_kind, in_channels, num_classes
        self.image_size, self.spec = image_size, spec
        factory = SPARSE if input_kind == "sparse" else DENSE
        convs, posts, channels = [], [], in_channels
        for out_channels, kernel in spec.convs:
            if input_kind == "dense-mask":
                convs.append(SparsityInvariantConv2d(channels, out_channels, kernel))
            elif input_kind == "dense":
                convs.append(nn.Conv2d(channels, out_channels, kernel, padding=kernel // 2))
            else:
                convs.append(SparseSparsityInvariantConv2d(channels, out_channels, kernel))
            posts.append(
                factory.sequential(
                    *([factory.batch_norm(out_channels)] if spec.batch_norm else []),
                    nn.ReLU(),
                    *([factory.max_pool(2, 2)] if spec.pool else []),
                )
            )
            channels = out_channels
        self.convs, self.posts = nn.ModuleList(convs), nn.ModuleList(posts)
        head: list[nn.Module] = []
        width = channels * out_size * out_size
        for hidden, dropout in spec.hidden:
            head += [nn.Linear(width, hidden), nn.ReLU(), *([nn.Dropout(dropout)] if dropout else [])]
            width = hidden
        self.classifier = nn.Sequential(*head, nn.Linear(width, num_classes))

    def input_size(self) -> tuple[int, int]:
        """The ``(H, W)`` image size the classifier was built for."""
        return (self.image_size, self.image_size)

    def forward(self, x: Tensor | sc.SparseConvTensor, mask: Tensor | None = None) -> Tensor:
        name = f"{type(self).__name__} ({self.input_kind})"
        needs_mask = self.input_kind == "dense-mask"
        if needs_mask != (mask is not None):
            raise TypeError(f"{name} takes {'(x, mask)' if needs_mask else 'x alone'}")
        if isinstance(x, sc.SparseConvTensor) != (self.input_kind == "sparse"):
            raise TypeError(f"{name} got a {type(x).__name__}")
        if self.input_kind == "sparse":
            check_field(name, self.input_size(), tuple(x.spatial_shape))
        else:
            check_field(name, self.input_size(), tuple(x.shape[-2:]))
        for conv, post in zip(self.convs, self.posts):
            if mask is None:
                x = post(conv(x))
            else:
                x, mask = conv(x, mask)
                x = post(x)
                mask = F.max_pool2d(mask, 2) if self.spec.pool else mask
        if self.input_kind == "sparse":
            x = sc.to_dense(x)
        return self.classifier(x.flatten(1))


def _sinet(spec: str, input_kind: str, in_channels: int, num_classes: int, image_size: int) -> SINet:
    return SINet(
        SPECS[spec], input_kind=input_kind, in_channels=in_channels, num_classes=num_classes, image_size=image_size
    )


@register_model("sinet-mnist")
def sinet_mnist(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> SINet:
    """Masked-MNIST sparsity-invariant CNN (dense-mask) — Uhrig et al., "Sparsity Invariant
    CNNs", 3DV 2017, doi:10.1109/3DV.2017.00012. Input ``x [B, 1, 28, 28]``, ``mask [B, 1, 28, 28]``;
    output logits ``[B, 10]``."""
    return _sinet("mnist", "dense-mask", in_channels, num_classes, image_size)


@register_model("sinet-mnist-sparse")
def sinet_mnist_sparse(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> SINet:
    """:func:`sinet_mnist` on spconv (sites = valid pixels) — Uhrig et al., 3DV 2017,
    doi:10.1109/3DV.2017.00012. Input ``SparseConvTensor`` (28 x 28); output logits ``[B, 10]``."""
    return _sinet("mnist", "sparse", in_channels, num_classes, image_size)


@register_model("convnet-mnist")
def convnet_mnist(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> SINet:
    """ConvNet twin of :func:`sinet_mnist` (plain convolutions, invalid pixels = 0) — baseline of
    Uhrig et al., 3DV 2017, doi:10.1109/3DV.2017.00012. Input ``[B, 1, 28, 28]``; output ``[B, 10]``."""
    return _sinet("mnist", "dense", in_channels, num_classes, image_size)


@register_model("sinet-caltech")
def sinet_caltech(*, in_channels: int = 3, num_classes: int = 101, image_size: int = 224) -> SINet:
    """Masked-Caltech-101 sparsity-invariant CNN (dense-mask) — Uhrig et al., 3DV 2017,
    doi:10.1109/3DV.2017.00012. Input ``x [B, 3, 224, 224]``, ``mask [B, 1, 224, 224]``; output
    logits ``[B, 101]``."""
    return _sinet("caltech", "dense-mask", in_channels, num_classes, image_size)


@register_model("sinet-caltech-sparse")
def sinet_caltech_sparse(*, in_channels: int = 3, num_classes: int = 101, image_size: int = 224) -> SINet:
    """:func:`sinet_caltech` on spconv (BatchNorm and pooling over valid sites only) — Uhrig et al.,
    3DV 2017, doi:10.1109/3DV.2017.00012. Input ``SparseConvTensor`` (224 x 224); output ``[B, 101]``."""
    return _sinet("caltech", "sparse", in_channels, num_classes, image_size)


@register_model("convnet-caltech")
def convnet_caltech(*, in_channels: int = 3, num_classes: int = 101, image_size: int = 224) -> SINet:
    """ConvNet twin of :func:`sinet_caltech` — baseline of Uhrig et al., 3DV 2017,
    doi:10.1109/3DV.2017.00012. Input ``[B, 3, 224, 224]``; output logits ``[B, 101]``."""
    return _sinet("caltech", "dense", in_channels, num_classes, image_size)
