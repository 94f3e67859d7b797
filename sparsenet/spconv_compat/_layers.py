"""spconv layers with their pitfalls fixed (2, 4, 5, 7 of :mod:`sparsenet.spconv_compat`) and rulebook reuse."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sparsenet.spconv_compat._tensor import (
    ALGO,
    IndiceData,
    SparseConvTensor,
    SparseModule,
    spconv,
    spconv_functional,
    spconv_ops,
)


def _rulebook_text(
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    spatial_shape: Sequence[int],
    sites: int,
) -> str:
    """A rulebook's geometry (``[h, w]`` each), grid ``(H, W)`` and number of input sites, for errors."""
    return (
        f"kernel {list(kernel_size)}, stride {list(stride)}, padding {list(padding)}, dilation "
        f"{list(dilation)} on a {'x'.join(str(s) for s in spatial_shape)} grid of {sites} sites"
    )


def _rulebook(
    x: SparseConvTensor,
    key: str | None,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> tuple[IndiceData, dict[str, Any]]:
    """The rulebook of a (not submanifold) convolution or pooling of ``x``: ``x.indice_dict[key]``
    when it is there, otherwise built by spconv (and stored under ``key`` unless that is ``None``).

    Args:
        x: the layer's input, ``indices [N, 3]`` on ``spatial_shape (H, W)``.
        key: the ``indice_key`` of the layer.
        kernel_size, stride, padding, dilation: ``[h, w]`` each.

    Returns:
        The ``IndiceData``, with ``out_indices [N', 3]``, ``out_spatial_shape [H', W']``,
        ``indice_pairs [2, kh·kw, N]`` int32 (rows 0/1: input/output row of each pair of a kernel
        offset, -1 past the offset's count) and ``indice_pair_num [kh·kw]``; and the
        ``indice_dict`` of the layer's output (``x``'s, plus the rulebook when it was built).

    Raises:
        ValueError: ``key`` holds a submanifold rulebook, or one of another geometry, grid or set
            of input sites.
    """
    geometry = [list(kernel_size), list(stride), list(padding), list(dilation)]
    indice_dict = dict(x.indice_dict)
    found = indice_dict.get(key) if key is not None else None
    if found is None:
        out_indices, pairs, pair_counts = spconv_ops.get_indice_pairs(
            x.indices, x.batch_size, x.spatial_shape, ALGO, *geometry, [0] * len(x.spatial_shape)
        )
        out_shape = spconv_ops.get_conv_output_size(x.spatial_shape, *geometry)
        data = IndiceData(
            out_indices,
            x.indices,
            pairs,
            pair_counts,
            list(x.spatial_shape),
            out_shape,
            is_subm=False,
            algo=ALGO,
            ksize=geometry[0],
            stride=geometry[1],
            dilation=geometry[3],
            padding=geometry[2],
        )
        if key is not None:
            indice_dict[key] = data
        return data, indice_dict
    if not isinstance(found, IndiceData) or found.is_subm or found.algo != ALGO:
        raise ValueError(
            f"indice_key {key!r} holds a submanifold or non-{ALGO.name} rulebook; a convolution or "
            "pooling that changes the active set needs a key of its own"
        )
    stored = [list(found.ksize), list(found.stride), list(found.padding), list(found.dilation)]
    same_sites = found.indices is x.indices or torch.equal(found.indices, x.indices)
    if stored != geometry or list(found.spatial_shape) != list(x.spatial_shape) or not same_sites:
        raise ValueError(
            f"indice_key {key!r} holds the rulebook of "
            f"{_rulebook_text(*stored, found.spatial_shape, found.indices.shape[0])}, but this layer "
            f"has {_rulebook_text(*geometry, x.spatial_shape, x.indices.shape[0])}"
            f"{'' if same_sites else ' (other input sites)'}; only layers with the same geometry on "
            "the same input sites may share a key"
        )
    return found, indice_dict


def _on_rulebook_outputs(
    x: SparseConvTensor, features: Tensor, rulebook: IndiceData, indice_dict: dict[str, Any]
) -> SparseConvTensor:
    """``x`` moved to the output sites of ``rulebook``, with ``features [N', C]``."""
    out = x.replace_feature(features)
    out.indices = rulebook.out_indices
    out.spatial_shape = list(rulebook.out_spatial_shape)
    out.indice_dict = indice_dict
    return out


class _BiasedConv(SparseModule):
    """An spconv convolution without fused bias, plus a ``bias [out]`` added to its output features."""

    def __init__(self, conv: spconv.conv.SparseConvolution, bias: bool) -> None:
        super().__init__()
        conv.conv1x1 = False  # pitfall 4: spconv's 1x1 shortcut misreads the weight layout
        self.conv = conv
        if bias:
            fan_in = conv.in_channels * math.prod(conv.kernel_size)
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = nn.Parameter(torch.empty(conv.out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    @property
    def weight(self) -> nn.Parameter:
        """spconv layout ``[out, kh, kw, in]``."""
        return self.conv.weight

    def dense_weight(self) -> Tensor:
        """The weight in ``torch.nn.functional.conv2d`` layout ``[out, in, kh, kw]``."""
        return self.conv.weight.permute(0, 3, 1, 2)

    def _convolve(self, x: SparseConvTensor) -> SparseConvTensor:
        """spconv's convolution without bias: features ``[N, in]`` -> ``[N', out]`` on its output sites."""
        return self.conv(x)

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        """``x``: features ``[N, in]`` -> features ``[N', out]`` on the layer's output sites."""
        y = self._convolve(x)
        return y if self.bias is None else y.replace_feature(y.features + self.bias)


class SparseConv2d(_BiasedConv):
    """Sparse convolution (``torch.nn.Conv2d`` twin): an output site is active when its window
    holds an active input site, so the active set grows; output size
    ``(H + 2·padding - kernel_size) // stride + 1``.

    ``indice_key`` names its rulebook: reused when the input already carries it (from a
    convolution or :class:`SparseMaxPool2d` of the same geometry on the same sites), stored
    otherwise, for them and for a :class:`SparseInverseConv2d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        bias: bool = True,
        indice_key: str | None = None,
    ) -> None:
        conv = spconv.SparseConv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=False, indice_key=indice_key, algo=ALGO
        )
        super().__init__(conv, bias)

    def _convolve(self, x: SparseConvTensor) -> SparseConvTensor:
        """spconv's Native convolution kernel on a reused or new rulebook (spconv's own forward
        refuses a stored key), without bias: features ``[N, in]`` -> ``[N', out]`` on the rulebook's output sites."""
        conv = self.conv
        rulebook, indice_dict = _rulebook(
            x, conv.indice_key, conv.kernel_size, conv.stride, conv.padding, conv.dilation
        )
        features = spconv_functional.indice_conv(
            x.features.contiguous(),
            conv.weight,
            rulebook.indice_pairs.to(x.features.device),
            rulebook.indice_pair_num,
            rulebook.out_indices.shape[0],
            ALGO,
        )
        return _on_rulebook_outputs(x, features, rulebook, indice_dict)


class SubMConv2d(_BiasedConv):
    """Submanifold convolution: odd ``kernel_size``, outputs only at the input's active sites
    (equals ``conv2d(padding=kernel_size // 2)`` of the zero-filled input there)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True, indice_key: str | None = None
    ) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"a submanifold convolution needs an odd kernel_size; got {kernel_size}")
        conv = spconv.SubMConv2d(in_channels, out_channels, kernel_size, bias=False, indice_key=indice_key, algo=ALGO)
        super().__init__(conv, bias)


class SparseInverseConv2d(_BiasedConv):
    """Inverse of the :class:`SparseConv2d` (or pool) registered under ``indice_key``: maps its
    output sites back to exactly its input sites (``torch.nn.ConvTranspose2d`` twin)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, indice_key: str, bias: bool = True
    ) -> None:
        conv = spconv.SparseInverseConv2d(
            in_channels, out_channels, kernel_size, bias=False, indice_key=indice_key, algo=ALGO
        )
        super().__init__(conv, bias)

    def dense_weight(self) -> Tensor:
        """The weight in ``torch.nn.functional.conv_transpose2d`` layout ``[in, out, kh, kw]``."""
        return self.conv.weight.permute(3, 0, 1, 2)


class SparseMaxPool2d(SparseModule):
    """Sparse max-pooling (``torch.nn.MaxPool2d`` twin, no padding): an output site is active
    when its window holds an active input site; inactive sites do not take part in the maximum.

    ``nonnegative_input=True`` runs spconv's kernel, which returns ``max(0, window)`` (pitfall 5):
    use it only where inputs cannot be negative, e.g. right after a ReLU. The default path is
    exact for any sign (a maximum over spconv's rulebook, one kernel offset at a time, in plain
    torch); on ties its gradient is shared equally between the tied inputs. ``indice_key`` names
    the rulebook as for :class:`SparseConv2d` (a pool with kernel ``k`` and stride ``s`` has the
    rulebook of a ``k x k`` stride-``s`` convolution without padding).
    """

    def __init__(
        self,
        kernel_size: int,
        stride: int | None = None,
        *,
        nonnegative_input: bool = False,
        indice_key: str | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.nonnegative_input = nonnegative_input
        self.indice_key = indice_key

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, nonnegative_input={self.nonnegative_input}, "
            f"indice_key={self.indice_key!r}"
        )

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        """``x``: features ``[N, C]`` -> features ``[N', C]`` on the pooled grid."""
        rulebook, indice_dict = _rulebook(x, self.indice_key, [self.kernel_size] * 2, [self.stride] * 2, [0, 0], [1, 1])
        device, outputs = x.features.device, rulebook.out_indices.shape[0]
        if self.nonnegative_input:
            features = spconv_functional.indice_maxpool(
                x.features.contiguous(), rulebook.indice_pairs.to(device), rulebook.indice_pair_num.to(device), outputs
            )
            return _on_rulebook_outputs(x, features, rulebook, indice_dict)
        pairs = rulebook.indice_pairs.long().to(device)
        empty = x.features.new_full((outputs, x.features.shape[1]), float("-inf"))
        # One kernel offset maps inputs to outputs one-to-one, so each scatter below (and its
        # gradient) is free of collisions: the result is deterministic whatever the thread count.
        per_offset = [
            empty.index_put((pairs[1, k, :count],), x.features[pairs[0, k, :count]])
            for k, count in enumerate(rulebook.indice_pair_num.tolist())
        ]
        return _on_rulebook_outputs(x, torch.stack(per_offset).amax(dim=0), rulebook, indice_dict)


class Concat(SparseModule):
    """Runs ``branches`` on the same input and concatenates their features (SparseConvNet's
    ``ConcatTable`` + ``JoinTable``); every branch must return the input's sites in its order.
    The output carries the rulebooks of every branch (for a key in several, the first branch's)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        """``x``: ``[N, C]`` -> ``[N, sum of branch widths]`` on the sites of the first branch."""
        outs = [branch(x) for branch in self.branches]
        for i, out in enumerate(outs[1:], start=1):
            if not torch.equal(out.indices, outs[0].indices):
                raise ValueError(
                    f"Concat branch {i} returned {out.indices.shape[0]} sites that differ from branch 0's "
                    f"{outs[0].indices.shape[0]}; a branch that changes scale must end with an inverse conv "
                    "keyed to its downsampling conv"
                )
        out = outs[0].replace_feature(torch.cat([out.features for out in outs], dim=1))
        out.indice_dict = {key: data for branch in reversed(outs) for key, data in branch.indice_dict.items()}
        return out
