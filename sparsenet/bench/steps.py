"""Case 1 of ``sparsenet bench``: one training step of each sparse network against its dense twin.

- ``steps``: forward, backward and SGD step on a batch of ``batch_size`` real training samples
  (:data:`~sparsenet.bench.nets.STEP_CASES`), and the sparsity-invariant net on masked MNIST
  digits built in memory at each of ``sinet_sparsities``; both twins get the same batch;
- ``layer`` (1b): the sparsity-invariant layer alone, dense-mask form against spconv form, on
  random masks of ``layer_size``² pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sparsenet.batch import SparseBatch, collate
from sparsenet.bench.common import Settings, Stats, interleaved, ratios
from sparsenet.bench.data import Workspace
from sparsenet.bench.nets import STEP_CASES, StepCase, build, step_fn
from sparsenet.bench.results import LayerResult, StepResult
from sparsenet.models.sparsity_invariant import SparseSparsityInvariantConv2d, SparsityInvariantConv2d
from sparsenet.shards import Sample
from sparsenet.spconv_compat import to_sparse_tensor

SINET = ("sinet-mnist-sparse", "sinet-mnist")  # the sparsity-invariant net on spconv, and in dense-mask mode
LAYER = dict(in_channels=3, out_channels=16, kernel_size=11)  # sinet-caltech's first layer


def random_masks(count: int, shape: tuple[int, int], sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """bool [count, H, W], True = valid: ``round(sparsity * H * W)`` pixels of each image dropped, a
    uniformly random set per image (the validity masks of ``sparsenet preprocess masked``)."""
    pixels = shape[0] * shape[1]
    kept = np.arange(pixels) >= round(sparsity * pixels)
    return rng.permuted(np.tile(kept, (count, 1)), axis=1).reshape(count, *shape)


def masked_samples(images: np.ndarray, labels: np.ndarray, sparsity: float, seed: int = 0) -> list[Sample]:
    """Masked-MNIST samples from float ``images`` [N, H, W] (pixel value / 255), as ``sparsenet preprocess
    masked`` makes them: sites at the valid pixels whatever their value, feature the pixel value."""
    valid = random_masks(len(images), images.shape[1:], sparsity, np.random.default_rng(seed))
    samples = []
    for image, mask, label in zip(images, valid, labels):
        y, x = np.nonzero(mask)
        samples.append(Sample(np.stack([y, x], axis=1).astype(np.int32), image[y, x, None], int(label)))
    return samples


def _time_twins(case: StepCase, batch: SparseBatch, classes: int, data: str, settings: Settings) -> StepResult:
    channels = batch.features.shape[1]
    nets = {
        role: build(name, channels, classes, settings.seed, **case.kwargs)
        for role, name in (("sparse", case.sparse), ("dense", case.dense))
    }
    seconds = interleaved({role: step_fn(net, batch) for role, net in nets.items()}, settings.repeats, settings.warmup)
    return StepResult(
        case.label,
        data,
        batch.batch_size,
        list(batch.spatial_shape),
        len(batch.coords) / batch.batch_size,
        Stats.of(seconds["sparse"]),
        Stats.of(seconds["dense"]),
        ratios(seconds["dense"], seconds["sparse"]),
        case.target,
    )


def bench_steps(workspace: Workspace, settings: Settings) -> list[StepResult]:
    """Case 1 (see the module docstring)."""
    results = []
    for case in STEP_CASES:
        batch, classes = case.batch(workspace, settings)
        results.append(_time_twins(case, batch, classes, f"{case.dataset} shards", settings))
    images, labels = workspace.mnist_images(settings.batch_size)
    for sparsity in settings.sinet_sparsities:
        samples = masked_samples(images, labels, sparsity, settings.seed)
        case = StepCase(f"sinet-mnist-sparse (sparsity {sparsity:g})", "masked-mnist", *SINET)
        data = f"masked MNIST (in memory), sparsity {sparsity:g}"
        results.append(_time_twins(case, collate(samples, images.shape[1:]), 10, data, settings))
    return results


def _layer_jobs(mask: torch.Tensor, x: torch.Tensor) -> dict[str, Callable[[], None]]:
    """Forward + backward of a new dense-mask and spconv (submanifold) layer on images ``x`` [B, C, H, W]
    whose valid pixels are ``mask`` [B, 1, H, W] (float 0/1)."""
    dense, sparse = SparsityInvariantConv2d(**LAYER), SparseSparsityInvariantConv2d(**LAYER, submanifold=True)
    valid = mask[:, 0].bool()
    coords, features = valid.nonzero(), x.permute(0, 2, 3, 1)[valid]

    def dense_step() -> None:
        image = x.clone().requires_grad_()
        dense(image, mask)[0].sum().backward()

    def sparse_step() -> None:
        sites = features.clone().requires_grad_()
        sparse(to_sparse_tensor(sites, coords, tuple(x.shape[2:]), len(x))).features.sum().backward()

    return {"dense": dense_step, "sparse": sparse_step}


def bench_sinet_layer(settings: Settings) -> list[LayerResult]:
    """Case 1b: ``SparsityInvariantConv2d`` (dense-mask) against ``SparseSparsityInvariantConv2d(submanifold=True)``
    (spconv, outputs at the valid pixels, where the two agree) on ``layer_batch`` random masks of
    ``layer_size``² pixels per sparsity."""
    count, size, results = settings.layer_batch, settings.layer_size, []
    for sparsity in settings.layer_sparsities:
        valid = random_masks(count, (size, size), sparsity, np.random.default_rng(settings.seed))
        mask = torch.from_numpy(valid[:, None]).float()
        torch.manual_seed(settings.seed)
        x = torch.rand(count, LAYER["in_channels"], size, size) * mask
        seconds = interleaved(_layer_jobs(mask, x), settings.repeats, settings.warmup)
        results.append(
            LayerResult(
                sparsity,
                int(valid.sum()) // count,
                Stats.of(seconds["dense"]),
                Stats.of(seconds["sparse"]),
                ratios(seconds["dense"], seconds["sparse"]),
            )
        )
    return results
