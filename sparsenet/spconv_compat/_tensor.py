"""Entering and leaving spconv: validated ``SparseConvTensor`` inputs, dense outputs, the algorithm
(pitfalls 1, 3 and 6 of :mod:`sparsenet.spconv_compat`)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

with warnings.catch_warnings():
    # spconv decorates its autograd functions with the deprecated torch.cuda.amp.custom_fwd/bwd
    # (FutureWarning); its build helper ccimport calls locale.getdefaultlocale (DeprecationWarning).
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import spconv.pytorch as spconv
    from spconv.pytorch import functional as spconv_functional
    from spconv.pytorch import ops as spconv_ops
    from spconv.pytorch.core import IndiceData

# spconv's modules are imported once, here, under the warning filter; the layers take them from here.
__all__ = [
    "ALGO",
    "IndiceData",
    "SparseConvTensor",
    "SparseModule",
    "SparseSequential",
    "spconv",
    "spconv_functional",
    "spconv_ops",
    "to_dense",
    "to_sparse_tensor",
]


class _DropFxTracingNotice(logging.Filter):
    """Drops torch's one-off "is_fx_tracing will return true ..." notice that every
    ``SparseConvTensor`` construction triggers (spconv's tensor class is fx-proxyable)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("is_fx_tracing will return true")


logging.getLogger("torch.fx._symbolic_trace").addFilter(_DropFxTracingNotice())

ALGO = spconv.ConvAlgo.Native
"""The algorithm of every spconv layer built here (pitfall 1)."""

SparseConvTensor = spconv.SparseConvTensor
SparseSequential = spconv.SparseSequential
SparseModule = spconv.SparseModule


def to_sparse_tensor(
    features: Tensor, coords: Tensor, spatial_shape: Sequence[int], batch_size: int
) -> SparseConvTensor:
    """Builds a validated 2-D ``SparseConvTensor``; the only way sparse inputs enter a network.

    Args:
        features: ``[N, C]`` floating point, one row per active site.
        coords: ``[N, 3]`` integer ``(batch, y, x)``; any integer dtype, converted to contiguous
            int32 on ``features.device``.
        spatial_shape: ``(H, W)`` of the grid.
        batch_size: number of samples ``B``; batch indices must lie in ``[0, B)``.

    Returns:
        ``SparseConvTensor`` with ``features [N, C]``, ``indices [N, 3]`` int32, ``spatial_shape
        [H, W]``, ``batch_size B``.

    Raises:
        ValueError: wrong rank, dtype or length; coordinates outside the grid or the batch;
            duplicate sites (each message states what was expected and what was found).
    """
    if features.ndim != 2 or not features.is_floating_point():
        raise ValueError(
            f"features must be a floating point [N, C] tensor; got {features.dtype} {list(features.shape)}"
        )
    if coords.ndim != 2 or coords.shape[1] != 3 or coords.is_floating_point() or coords.is_complex():
        raise ValueError(
            f"coords must be an integer [N, 3] tensor of (batch, y, x); got {coords.dtype} {list(coords.shape)}"
        )
    if coords.shape[0] != features.shape[0]:
        raise ValueError(
            f"coords has {coords.shape[0]} rows but features has {features.shape[0]}; they must describe the same sites"
        )
    shape = [int(s) for s in spatial_shape]
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"spatial_shape must be two positive sizes (H, W); got {list(spatial_shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    coords64 = coords.to(torch.int64)
    upper = torch.tensor([batch_size, *shape], device=coords.device)
    outside = ((coords64 < 0) | (coords64 >= upper)).any(dim=1)
    if bool(outside.any()):
        row = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"{int(outside.sum())} coords lie outside batch [0, {batch_size}) x grid "
            f"{shape[0]}x{shape[1]}; first: row {row} = {coords64[row].tolist()}"
        )
    keys = (coords64[:, 0] * shape[0] + coords64[:, 1]) * shape[1] + coords64[:, 2]
    unique_keys, counts = torch.unique(keys, return_counts=True)
    if unique_keys.numel() != keys.numel():
        first = int(unique_keys[counts > 1][0])
        raise ValueError(
            f"{keys.numel() - unique_keys.numel()} duplicate sites in coords (spconv would "
            f"silently give each copy a different result); first duplicate (batch, y, x) = "
            f"{[first // (shape[0] * shape[1]), first // shape[1] % shape[0], first % shape[1]]}; "
            "merge duplicate sites before batching"
        )
    indices = coords.to(device=features.device, dtype=torch.int32).contiguous()
    return SparseConvTensor(features.contiguous(), indices, shape, batch_size)


def to_dense(x: SparseConvTensor) -> Tensor:
    """``[B, C, H, W]`` with the features at the active sites and zeros elsewhere (differentiable)."""
    batch, row, col = x.indices.to(device=x.features.device, dtype=torch.int64).unbind(1)
    grid = x.features.new_zeros(x.batch_size, *x.spatial_shape, x.features.shape[1])
    return grid.index_put((batch, row, col), x.features).permute(0, 3, 1, 2)
