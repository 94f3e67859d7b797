"""Case 5 of ``sparsenet bench``: useful multiply-adds per second of spconv's convolutions.

For each convolution of a sparse network (:class:`~sparsenet.spconv_compat.SubMConv2d`,
``SparseConv2d``, ``SparseInverseConv2d``) in one forward pass of a real batch:

- useful multiply-adds = Σ over output sites of (active input neighbours) × C_in × C_out, counted
  here from the sites alone (:func:`offset_pairs`), i.e. Σ over kernel offsets of that offset's
  pairs × C_in × C_out — no work on inactive sites counts;
- seconds: forward hooks around the layer (``torch.no_grad``), so rulebook building, gathers,
  GEMMs and scatters are all in, as training pays them;
- reference: ``torch.mm`` of the same matrices, ``[pairs_k, C_in] @ [C_in, C_out]`` for every
  kernel offset ``k``: the GEMMs spconv's Native algorithm runs, without anything around them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch import Tensor

from sparsenet import spconv_compat as sc
from sparsenet.bench.common import Settings, Stats, interleaved
from sparsenet.bench.data import Workspace
from sparsenet.bench.nets import STEP_CASES, build
from sparsenet.bench.results import EfficiencyResult, LayerEfficiency


def offset_pairs(
    fine: Tensor, coarse: Tensor, fine_shape: tuple[int, int], kernel: int, stride: int, padding: int
) -> list[int]:
    """Per kernel offset ``(dy, dx)`` (row-major), the number of pairs (coarse site ``c``, fine site ``f``)
    with ``f = c·stride − padding + (dy, dx)``; ``fine`` and ``coarse`` are int ``[N, 3]`` (batch, y, x).

    For a convolution, fine = its input sites and coarse = its output sites; an inverse convolution has
    the pairs of the convolution it inverts.
    """
    h, w = fine_shape
    fine, coarse = fine.long(), coarse.long()
    keys = torch.sort((fine[:, 0] * h + fine[:, 1]) * w + fine[:, 2]).values
    counts = []
    for dy in range(kernel):
        for dx in range(kernel):
            y, x = coarse[:, 1] * stride - padding + dy, coarse[:, 2] * stride - padding + dx
            inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
            key = ((coarse[:, 0] * h + y) * w + x)[inside]
            found = keys[torch.searchsorted(keys, key).clamp(max=len(keys) - 1)] == key
            counts.append(int(found.sum()))
    return counts


CONVS = (sc.SubMConv2d, sc.SparseConv2d, sc.SparseInverseConv2d)


class _Recorder:
    """Forward hooks on every convolution: seconds per call, and the sites of the first call."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.layers = {name: m for name, m in network.named_modules() if isinstance(m, CONVS)}
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.sites: dict[str, tuple[Tensor, list[int], Tensor]] = {}
        self._start: dict[str, float] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._pre(name)))
            self._handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple) -> None:
            self._start[name] = time.perf_counter()

        return hook

    def _post(self, name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple, out: sc.SparseConvTensor) -> None:
            self.seconds[name].append(time.perf_counter() - self._start[name])
            self.sites.setdefault(name, (args[0].indices, list(args[0].spatial_shape), out.indices))

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def pair_counts(self) -> dict[str, list[int]]:
        """Per layer, pairs per kernel offset (in forward order, so an inverse finds its convolution)."""
        counts: dict[str, list[int]] = {}
        by_key: dict[str, list[int]] = {}
        for name, module in self.layers.items():
            conv = module.conv
            fine, shape, coarse = self.sites[name]
            if isinstance(module, sc.SparseInverseConv2d):
                counts[name] = by_key[conv.indice_key]
                continue
            k, stride, padding = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            if isinstance(module, sc.SubMConv2d):
                stride, padding = 1, k // 2
            counts[name] = offset_pairs(fine, coarse, shape, k, stride, padding)
            if conv.indice_key is not None:
                by_key.setdefault(conv.indice_key, counts[name])
        return counts


def _mm_job(counts: list[int], cin: int, cout: int) -> Callable[[], list[Tensor]]:
    """The GEMMs of one convolution: ``[counts[k], cin] @ [cin, cout]`` for every kernel offset ``k``."""
    a, b = torch.randn(max(max(counts), 1), cin), torch.randn(cin, cout)
    return lambda: [torch.mm(a[:c], b) for c in counts if c]


@torch.no_grad()
def measure_network(
    label: str, network: torch.nn.Module, x: sc.SparseConvTensor, settings: Settings
) -> EfficiencyResult:
    """Time every convolution of ``network`` on ``x`` (``settings.repeats`` forward passes), and
    ``torch.mm`` on the same matrices."""
    recorder = _Recorder(network)
    try:
        forward = interleaved({"forward": lambda: network(x)}, settings.repeats, settings.warmup)["forward"]
    finally:
        recorder.remove()
    layers = []
    for name, counts in recorder.pair_counts().items():
        conv = recorder.layers[name].conv
        cin, cout = conv.in_channels, conv.out_channels
        mm = interleaved({"mm": _mm_job(counts, cin, cout)}, settings.repeats, settings.warmup)["mm"]
        fine, _, coarse = recorder.sites[name]
        layers.append(
            LayerEfficiency(
                name,
                type(recorder.layers[name]).__name__,
                [cin, cout],
                conv.kernel_size[0],
                [len(fine), len(coarse)],
                sum(counts) * cin * cout,
                Stats.of(recorder.seconds[name][settings.warmup :]),
                Stats.of(mm),
            )
        )
    return EfficiencyResult(label, x.batch_size, Stats.of(forward), layers)


def bench_efficiency(workspace: Workspace, settings: Settings) -> list[EfficiencyResult]:
    """Case 5 on the sparse networks of case 1 and their batches."""
    results = []
    for case in STEP_CASES:
        batch, classes = case.batch(workspace, settings)
        network = build(case.sparse, batch.features.shape[1], classes, settings.seed, **case.kwargs)
        results.append(measure_network(case.name, network, batch.sparse(), settings))
    return results
