"""What ``sparsenet inspect`` shows: a validated summary of shards, and pictures of samples."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsenet.datasets import check_same_run
from sparsenet.manifest import dataset_splits
from sparsenet.shards import ShardMeta, ShardReader


@dataclass(frozen=True)
class SplitSummary:
    """One folder of shards (a split), fully validated."""

    path: Path
    files: int
    samples: int
    meta: ShardMeta
    sites: np.ndarray  # int64 [samples], sites per sample
    run_id: str | None = None  # the dataset writer's run id from the manifest

    def describe(self) -> str:
        """Human-readable lines for the terminal."""
        names = self.meta.class_names
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} names)" if len(names) > 8 else "")
        lo, mid, hi = np.min(self.sites), np.median(self.sites), np.max(self.sites)
        return "\n".join(
            [
                f"{self.path}: {self.samples} samples in {self.files} file(s), valid",
                f"  classes:        {self.meta.num_classes}" + (f" ({shown})" if names else ""),
                f"  spatial shape:  {self.meta.spatial_shape[0]} x {self.meta.spatial_shape[1]}",
                f"  features:       {', '.join(self.meta.feature_names)}",
                f"  sites / sample: min {lo}, median {mid:g}, max {hi}",
                *([f"  run id:         {self.run_id}"] if self.run_id else []),
                f"  converter:      {self.meta.converter or '?'}",
                *(f"    {key}: {_compact(value)}" for key, value in sorted(self.meta.params.items())),
            ]
        )


def _compact(value) -> str:
    """A parameter for display: runs of consecutive integers shown as ranges (``1-36``)."""
    if isinstance(value, list) and len(value) > 4 and all(isinstance(v, int) for v in value):
        runs, start = [], value[0]
        for prev, cur in zip(value, value[1:] + [None]):
            if cur != prev + 1 if cur is not None else True:
                runs.append(f"{start}-{prev}" if prev != start else str(start))
                start = cur
        return ",".join(runs)
    return str(value)


def summarize(path: str | os.PathLike) -> list[SplitSummary]:
    """Validate every shard of ``path`` (a shard file, a split folder or a dataset folder of splits)
    and summarise each split: its manifest, every file's SHA-256, counts and content.

    Raises :class:`~sparsenet.shards.ShardError` naming the first bad file, or the splits of a
    dataset folder whose manifests record different run ids (written by different runs).
    """
    out = []
    for split in dataset_splits(path):
        reader = ShardReader(split, cache_shards=1)
        sites = reader.sites_per_sample  # loads, and so fully checks, every shard
        out.append(SplitSummary(split, len(reader.files), len(reader), reader.meta, sites, reader.run_id))
    check_same_run([s.path for s in out])
    return out


def _image(meta: ShardMeta, coords: np.ndarray, features: np.ndarray) -> np.ndarray:
    """One sample as an RGB float image [H, W, 3] on white: colours for RGB features, else ink = feature norm."""
    h, w = meta.spatial_shape
    image = np.ones((h, w, 3))
    if meta.feature_names == ("red", "green", "blue"):
        mean = np.asarray(meta.params.get("mean", 0.0))
        std = np.asarray(meta.params.get("std", 1.0))
        image[coords[:, 0], coords[:, 1]] = np.clip(features * std + mean, 0, 1)
    else:
        ink = np.linalg.norm(features, axis=1)
        image[coords[:, 0], coords[:, 1]] = 1 - (ink / max(ink.max(), 1e-12))[:, None]
    return image


def render_samples(path: str | os.PathLike | Sequence[str | os.PathLike], count: int, png: str | os.PathLike) -> Path:
    """Draw ``count`` samples spread over the shards at ``path`` (one or several) into ``png`` (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reader = ShardReader(path)
    picks = np.unique(np.linspace(0, len(reader) - 1, min(count, len(reader))).astype(int))
    cols = min(len(picks), 8)
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    names = reader.meta.class_names
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, picks):
        sample = reader[int(index)]
        ax.imshow(_image(reader.meta, sample.coords, sample.features), interpolation="nearest")
        label = names[sample.label] if sample.label < len(names) else str(sample.label)
        ax.set_title(f"{sample.sample_id or index}\n{label}", fontsize=7)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
