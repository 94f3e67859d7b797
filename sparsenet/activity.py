"""Active sites of every layer of a sparse network for one sample: Graham's Figure 1
("Spatially-sparse convolutional neural networks", arXiv:1409.6070)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from sparsenet import spconv_compat as sc
from sparsenet.batch import collate
from sparsenet.errors import ConfigError
from sparsenet.models import build
from sparsenet.models.sparsity_invariant import SparseSparsityInvariantConv2d
from sparsenet.pipeline import dataset
from sparsenet.shards import ShardReader

# Layers whose outputs are recorded; a composite one counts once, its inner layers not at all.
_COMPOSITE = (sc.Concat, SparseSparsityInvariantConv2d)
_LAYERS = (sc.SparseConv2d, sc.SubMConv2d, sc.SparseInverseConv2d, sc.SparseMaxPool2d, *_COMPOSITE)


@dataclass(frozen=True)
class LayerActivity:
    """The active sites ``[M, 2]`` (y, x) of one layer's output on its ``(H, W)`` grid."""

    name: str
    spatial_shape: tuple[int, int]
    sites: Tensor


def _sample_sites(x: sc.SparseConvTensor, sample: int) -> Tensor:
    indices = x.indices.long().cpu()
    return indices[indices[:, 0] == sample, 1:]


def record_activity(model: nn.Module, x: sc.SparseConvTensor, *, sample: int = 0) -> list[LayerActivity]:
    """Runs ``model`` (in eval mode, without gradients) and returns the input's active sites, then
    those of every convolution, pooling and concatenation (a ``Concat`` or a sparsity-invariant
    convolution counts as one layer), in execution order, for batch entry ``sample``.

    Raises:
        ConfigError: ``model`` is not a sparse network.
        ValueError: ``sample`` is not in the batch.
    """
    if getattr(model, "input_kind", None) != "sparse":
        raise ConfigError(
            f"{type(model).__name__} takes {getattr(model, 'input_kind', None)!r} input; "
            "activity needs a sparse network (input kind 'sparse')"
        )
    if not 0 <= sample < x.batch_size:
        raise ValueError(f"sample {sample} is not in a batch of {x.batch_size}")
    composites = [name for name, module in model.named_modules() if isinstance(module, _COMPOSITE)]
    records = [LayerActivity("input", tuple(x.spatial_shape), _sample_sites(x, sample))]

    def hook(name: str):
        def record(_module: nn.Module, _inputs: object, output: sc.SparseConvTensor) -> None:
            records.append(
                LayerActivity(
                    f"{name} {type(_module).__name__}", tuple(output.spatial_shape), _sample_sites(output, sample)
                )
            )

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, _LAYERS) and not any(name.startswith(c + ".") for c in composites)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return records


def draw_activity(
    model: nn.Module, x: sc.SparseConvTensor, png_path: str | Path, *, sample: int = 0
) -> list[LayerActivity]:
    """Draws the active sites (black) and ground state (grey) of every layer side by side and
    saves the PNG; returns what :func:`record_activity` recorded."""
    records = record_activity(model, x, sample=sample)
    columns = min(len(records), 12)
    rows = math.ceil(len(records) / columns)
    figure = Figure(figsize=(2.0 * columns, 2.3 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for i, record in enumerate(records):
        axes = figure.add_subplot(rows, columns, i + 1)
        grid = torch.full(record.spatial_shape, 0.8)
        grid[record.sites[:, 0], record.sites[:, 1]] = 0.0
        axes.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        height, width = record.spatial_shape
        axes.set_title(f"{record.name}\n{height}x{width}, {len(record.sites)} active", fontsize=7)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.savefig(png_path, dpi=120)
    return records


def sample_activity(
    data: str | Path, index: int, model_name: str, model_kwargs: dict[str, Any], png_path: str | Path
) -> list[LayerActivity]:
    """:func:`draw_activity` of a freshly built ``model_name`` for sample ``index`` of shards ``data``.

    Active sites depend only on the input and the layers, not on the weights, so the network is
    built fresh; the sample is centred in the network's input field.
    """
    reader = ShardReader(data)
    meta = reader.meta
    network = build(model_name, in_channels=len(meta.feature_names), num_classes=meta.num_classes, **model_kwargs)
    placed = dataset(reader, tuple(network.input_size()))
    if not 0 <= index < len(placed):
        raise ConfigError(f"{data}: sample {index} is out of range; it holds {len(placed)} samples")
    batch = collate([placed[index]], placed.transform.field)
    return draw_activity(network, batch.sparse(), png_path)
