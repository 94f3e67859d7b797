"""The one place that knows spconv's pitfalls; every sparse network builds its layers from here.

spconv-cu120 2.3.6 with torch 2.13 on a CPU, measured in this repository
(``tests/models/test_layers.py`` pins each item):

1. **Algorithm.** The default algorithm (implicit GEMM) is CUDA-only: a CPU forward fails with
   ``AssertionError: Torch not compiled with CUDA enabled``. spconv fixes the algorithm when a layer
   is constructed, before it knows the device, so every layer here uses ``ConvAlgo.Native``, which
   is correct on both CPU and CUDA (on a GPU it is slower than implicit GEMM, never wrong).
2. **Bias.** In eval mode the CPU kernel refuses a fused bias (``bias and act don't support cpu``).
   The convolutions here are created with ``bias=False`` and add their own ``bias`` parameter to
   the output features.
3. **Indices.** ``indices`` must be int32 ``[N, 3]`` = ``(batch, y, x)`` and contiguous. int64 is
   rejected, but a non-contiguous int32 tensor (e.g. ``nonzero().int()`` transposed) is accepted
   and gives silently wrong results, and so do duplicate or out-of-range coordinates.
   :func:`to_sparse_tensor` enforces dtype and layout and validates shapes, bounds and uniqueness.
4. **1x1 convolutions.** With kernel 1 and stride 1 spconv takes a shortcut,
   ``features @ weight.view(in, out)``, although the weight is stored ``[out, 1, 1, in]``: silently
   not the convolution the weight describes (unless ``in`` or ``out`` is 1). The convolutions here
   turn the shortcut off.
5. **Max-pooling.** spconv's max-pool starts its running maximum at 0, so it returns
   ``max(0, window)``: an all-negative window yields 0. That is harmless after a ReLU (the only way
   the networks here use it, ``nonnegative_input=True``); :class:`SparseMaxPool2d` is exact for
   signed inputs by default.
6. **Densifying.** ``SparseConvTensor.dense()`` indexes with a list of tensors, which torch 2.13
   deprecates with a ``UserWarning`` ("will be interpreted as tensor index ... error or a different
   result"); :func:`to_dense` uses tuple indexing instead.
7. **Threads.** The CPU-only 2.3.8 wheel races in its CPU scatter-add; with this wheel 1-thread and
   2-thread results are bitwise equal for conv, submanifold conv and max-pool, forward and backward.
   torch's own CPU scatter with colliding indices (``scatter_reduce``, indexing backward) is not,
   so the exact max-pool scatters one kernel offset (a collision-free map) at a time.

Rulebooks. A convolution or pooling first builds its *rulebook* ("indice pairs": for each kernel
offset, the (input row, output row) pairs it connects) with ``spconv.pytorch.ops.get_indice_pairs``,
a large share of a step's time. A ``SparseConvTensor`` carries the rulebooks built so far in
``indice_dict`` (``indice_key`` -> ``IndiceData``), copied into every layer's output. spconv itself
reuses a stored key only for submanifold convolutions (and inverse convolutions, which run their
convolution's rulebook backwards); its strided convolution refuses a key that exists and its
max-pool rebuilds its pairs and refuses any stored key. Here :class:`SparseConv2d` and
:class:`SparseMaxPool2d` (both paths) take an ``indice_key`` too: the first layer with that key
builds and stores the rulebook, later ones with the same kernel, stride, padding, dilation, grid and
input sites reuse it (a mismatch raises ``ValueError``), and the stored ``IndiceData`` is the one
spconv's inverse convolution reads. :class:`Concat` merges the ``indice_dict`` of all its branches,
so a rulebook built inside a branch serves the layers after it.

Layout: features are ``[N, C]``; spconv conv weights are ``[out, kh, kw, in]`` (inverse conv
``[out, kh, kw, in]`` too); :meth:`dense_weight` returns the ``torch.nn.functional`` layout.
"""

from sparsenet.spconv_compat._layers import Concat, SparseConv2d, SparseInverseConv2d, SparseMaxPool2d, SubMConv2d
from sparsenet.spconv_compat._tensor import (
    ALGO,
    SparseConvTensor,
    SparseModule,
    SparseSequential,
    spconv,
    spconv_ops,
    to_dense,
    to_sparse_tensor,
)

__all__ = [
    "ALGO",
    "SparseConv2d",
    "SubMConv2d",
    "SparseInverseConv2d",
    "SparseMaxPool2d",
    "Concat",
    "SparseConvTensor",
    "SparseModule",
    "SparseSequential",
    "spconv",
    "spconv_ops",
    "to_dense",
    "to_sparse_tensor",
]
