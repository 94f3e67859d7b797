"""Case 2 of ``sparsenet bench``: time per training step as the active sites per sample grow.

Each sparse network of :data:`GROWTH_MODELS` and its dense twin take turns on batches whose
sites are drawn uniformly at random, at each of ``growth_fractions`` of the field: a worst case
for spreading, since every pooling or valid convolution dilates scattered sites.
:func:`crossing` finds where the sparse step becomes the slower one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sparsenet.batch import SparseBatch, collate
from sparsenet.bench.common import Settings, Stats, interleaved
from sparsenet.bench.nets import build, step_fn
from sparsenet.bench.results import GrowthResult
from sparsenet.shards import Sample

GROWTH_MODELS = (
    ("DeepCNet(5, 10)", "deepcnet", "deepcnet-dense", {"l": 5, "k": 10}, 1),
    ("sparse VGG (VGGplus)", "vgg", "vgg-dense", {}, 3),
)  # label, sparse, dense, kwargs, channels


def random_sites_batch(field: tuple[int, int], sites: int, batch_size: int, channels: int, seed: int) -> SparseBatch:
    """``sites`` distinct uniformly random sites per sample, normal features [sites, channels], random labels."""
    rng = np.random.default_rng(seed)
    h, w = field
    samples = []
    for _ in range(batch_size):
        cells = rng.choice(h * w, size=sites, replace=False)
        coords = np.stack([cells // w, cells % w], axis=1).astype(np.int32)
        samples.append(Sample(coords, rng.standard_normal((sites, channels)).astype(np.float32), int(rng.integers(10))))
    return collate(samples, field)


def crossing(fractions: Sequence[float], sparse: Sequence[float], dense: Sequence[float]) -> float | None:
    """The first fraction where ``sparse`` overtakes ``dense`` (log-log interpolation), None if it never does."""
    gaps = [math.log(s / d) for s, d in zip(sparse, dense)]
    if gaps[0] >= 0:
        return fractions[0]
    for i in range(1, len(gaps)):
        if gaps[i] >= 0:
            t = -gaps[i - 1] / (gaps[i] - gaps[i - 1])
            return math.exp(math.log(fractions[i - 1]) + t * (math.log(fractions[i]) - math.log(fractions[i - 1])))
    return None


def bench_growth(settings: Settings) -> list[GrowthResult]:
    """Case 2 (see the module docstring)."""
    results = []
    for label, sparse, dense, kwargs, channels in GROWTH_MODELS:
        nets = {
            "sparse": build(sparse, channels, 10, settings.seed, **kwargs),
            "dense": build(dense, channels, 10, settings.seed, **kwargs),
        }
        field = nets["sparse"].input_size()
        sites: list[int] = []
        timings: dict[str, list[Stats]] = {"sparse": [], "dense": []}
        for fraction in settings.growth_fractions:
            sites.append(max(1, round(fraction * field[0] * field[1])))
            batch = random_sites_batch(field, sites[-1], settings.batch_size, channels, settings.seed)
            seconds = interleaved({role: step_fn(net, batch) for role, net in nets.items()}, settings.growth_repeats, 1)
            for role in timings:
                timings[role].append(Stats.of(seconds[role]))
        medians = {role: [t.median for t in stats] for role, stats in timings.items()}
        results.append(
            GrowthResult(
                label,
                list(field),
                list(settings.growth_fractions),
                sites,
                timings["sparse"],
                timings["dense"],
                crossing(settings.growth_fractions, medians["sparse"], medians["dense"]),
            )
        )
    return results
