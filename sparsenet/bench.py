"""``sparsenet bench``: does sparsity pay, and what does the rest of the pipeline cost?

``run_bench(out, workspace)`` runs the five cases of issue 5 and writes ``out`` (markdown, see
:mod:`sparsenet.bench_report`), PNG plots and ``results.json`` in ``bench/`` beside it:

1. ``steps``: one training step (forward, backward, SGD step, batch 100) of each sparse network
   against its dense twin on the same batch of real samples;
2. ``growth``: time per step as the active sites per sample grow from 1 % to 60 % of the field;
3. ``pipeline`` (:mod:`sparsenet.bench_pipeline`): samples/s of the training loop
   (``sparsenet.train``'s own) against the bare network step on the same batches, pre-built;
4. ``loading`` (:mod:`sparsenet.bench_pipeline`): conversion of the raw datasets, and reader +
   collate samples/s on one thread;
5. ``efficiency`` (:mod:`sparsenet.bench_efficiency`): useful multiply-adds/s of each sparse
   convolution against ``torch.mm`` on the same matrices;
6. ``parallel`` (:mod:`sparsenet.bench_parallel`): ``sparsenet train`` with ``--procs auto``
   against ``--procs 1`` on the full Assamese training shards (issue 7).

Every timing is a median over repeats, with min and max; two things compared (sparse and dense,
loop and bare) run interleaved in one process, so a slow moment hits both, and each ratio is
taken repeat by repeat. Training steps run on ``threads`` torch threads (2), loading on one.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from sparsenet.batch import SparseBatch, collate
from sparsenet.bench_data import Workspace, masked_samples
from sparsenet.config import TRAIN_SPLIT
from sparsenet.pipeline import dataset, inputs
from sparsenet.shards import Sample, ShardReader

if TYPE_CHECKING:  # the other case modules import this one
    from sparsenet.bench_efficiency import EfficiencyResult
    from sparsenet.bench_parallel import ParallelResult
    from sparsenet.bench_pipeline import LoadingResult, PipelineResult


@dataclass(frozen=True)
class Stats:
    """Median, min and max of repeated measurements of one quantity."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        return cls(float(np.median(values)), float(min(values)), float(max(values)), len(values))

    def rate(self, count: float) -> Stats:
        """``count / seconds`` for these timings (the fastest run gives the highest rate)."""
        return Stats(count / self.median, count / self.high, count / self.low, self.runs)


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run; :meth:`for_mode` gives the full and the ``--quick`` ones."""

    quick: bool = False
    batch_size: int = 100  # samples per training step (issue 5)
    repeats: int = 7  # timed repeats of every step measurement
    warmup: int = 2  # untimed repeats first (allocator, rulebook caches, lazy shard loading)
    growth_repeats: int = 3  # repeats per point of the cost-growth curves
    growth_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)
    sinet_sparsities: tuple[float, ...] = (0.1, 0.5, 0.9)
    layer_sparsities: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)  # the sparsity-invariant layer alone
    layer_size: int = 224  # its image side (masked Caltech-101's)
    pipeline_batches: int = 40  # batches per timed pass of the training loop (an Assamese epoch has 65)
    pipeline_repeats: int = 3
    pipeline_workers: tuple[int, ...] = (0, 1)  # DataLoader workers of the timed loops (0 = train's default)
    prep_repeats: int = 2  # full conversions of each raw dataset
    loader_repeats: int = 3
    threads: int = 2
    parallel_epochs: int = 3  # epochs per data-parallel training run (the first is not timed)
    parallel_rounds: int = 3  # runs of each --procs setting, taking turns
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool, threads: int = 2) -> Settings:
        if not quick:
            return cls(threads=threads)
        return cls(
            quick=True,
            batch_size=4,
            repeats=2,
            warmup=1,
            growth_repeats=1,
            growth_fractions=(0.01, 0.2),
            sinet_sparsities=(0.5,),
            layer_sparsities=(0.9,),
            layer_size=32,
            pipeline_batches=2,
            pipeline_repeats=1,
            pipeline_workers=(0,),
            prep_repeats=1,
            loader_repeats=1,
            parallel_epochs=1,
            parallel_rounds=1,
            threads=threads,
        )


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads, touching torch's setting only if it differs
    (``sparsenet train`` never sets it). :func:`run_bench` enters it before spconv is imported;
    see "Noise" in ``docs/bench/analysis.md`` for why."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def interleaved(jobs: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Seconds of each of ``repeats`` calls of every job, the jobs taking turns (after ``warmup`` rounds)."""
    for _ in range(warmup):
        for job in jobs.values():
            job()
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def ratios(slow: Sequence[float], fast: Sequence[float]) -> Stats:
    """``slow[i] / fast[i]`` over paired repeats."""
    return Stats.of([s / f for s, f in zip(slow, fast)])


def build(name: str, in_channels: int, num_classes: int, seed: int, **kwargs: Any) -> torch.nn.Module:
    """``models.build`` with a fixed seed, in training mode."""
    from sparsenet import models

    torch.manual_seed(seed)
    return models.build(name, in_channels=in_channels, num_classes=num_classes, **kwargs).train()


def sgd(network: torch.nn.Module) -> torch.optim.Optimizer:
    """Nesterov SGD as the training recipes use it (a small lr: the benchmarks only need finite weights)."""
    return torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)


def step_fn(
    network: torch.nn.Module, batch: SparseBatch, optimizer: torch.optim.Optimizer | None = None
) -> Callable[[], None]:
    """One training step of ``network`` on ``batch``: input conversion (as training does it), forward,
    cross-entropy, backward, optimizer step (default: :func:`sgd`)."""
    optimizer = optimizer or sgd(network)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(*inputs(network, batch)), batch.labels).backward()
        optimizer.step()

    return step


def shard_batch(folder: Path, field: tuple[int, int], size: int, seed: int) -> tuple[SparseBatch, int]:
    """(``size`` random training samples of the shards in ``folder`` placed into ``field``, number of classes)."""
    data = dataset(ShardReader(folder / TRAIN_SPLIT), field)
    chosen = np.random.default_rng(seed).choice(len(data), size=min(size, len(data)), replace=False)
    return collate([data[int(i)] for i in chosen], field), data.reader.meta.num_classes


# --- case 1: sparse vs dense ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepCase:
    """A sparse network and its dense twin, timed on one batch of ``dataset``."""

    name: str
    dataset: str  # "assamese", "mnist" or "masked-mnist"
    sparse: str
    dense: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    target: float | None = None  # issue 5's speed-up target (dense time / sparse time)

    @property
    def label(self) -> str:
        return f"{self.name} vs {self.dense}"

    def batch(self, workspace: Workspace, settings: Settings) -> tuple[SparseBatch, int]:
        """(a batch of the dataset's training shards in the network's field, number of classes)."""
        field = build(self.sparse, 1, 10, settings.seed, **self.kwargs).input_size()
        return shard_batch(workspace.shards(self.dataset), field, settings.batch_size, settings.seed)


STEP_CASES = (
    StepCase("sparse VGG (VGGplus)", "assamese", "vgg", "vgg-dense", target=4.0),
    StepCase("DeepCNet(5, 10)", "mnist", "deepcnet", "deepcnet-dense", {"l": 5, "k": 10}, 15.0),
    StepCase("DeepCNet(5, 60)", "mnist", "deepcnet", "deepcnet-dense", {"l": 5, "k": 60}),
)
SINET = ("sinet-mnist-sparse", "sinet-mnist")  # the sparsity-invariant net on spconv, and in dense-mask mode


@dataclass(frozen=True)
class StepResult:
    """Seconds per training step of a sparse network and its dense twin on the same batch."""

    label: str
    data: str
    batch_size: int
    field: list[int]
    sites_per_sample: float
    sparse: Stats
    dense: Stats
    speedup: Stats  # dense seconds / sparse seconds, repeat by repeat
    target: float | None


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
    images, labels = workspace.mnist_images()
    for sparsity in settings.sinet_sparsities:
        samples = masked_samples(images[: settings.batch_size], labels[: settings.batch_size], sparsity, settings.seed)
        case = StepCase(f"sinet-mnist-sparse (sparsity {sparsity:g})", "masked-mnist", *SINET)
        data = f"masked MNIST (in memory), sparsity {sparsity:g}"
        results.append(_time_twins(case, collate(samples, (28, 28)), 10, data, settings))
    return results


@dataclass(frozen=True)
class LayerResult:
    """Forward + backward seconds of the sparsity-invariant layer alone, dense-mask form against spconv form."""

    sparsity: float
    valid_pixels: int  # per image
    dense: Stats
    sparse: Stats
    speedup: Stats  # dense seconds / sparse seconds, repeat by repeat


LAYER = dict(in_channels=3, out_channels=16, kernel_size=11)  # sinet-caltech's first layer
LAYER_BATCH = 4


def bench_sinet_layer(settings: Settings) -> list[LayerResult]:
    """Case 1b: ``SparsityInvariantConv2d`` (dense-mask) against ``SparseSparsityInvariantConv2d(submanifold=True)``
    (spconv, outputs at the valid pixels, where the two agree) on ``LAYER_BATCH`` random masks of
    ``layer_size``² pixels per sparsity."""
    from sparsenet.models.sparsity_invariant import SparseSparsityInvariantConv2d, SparsityInvariantConv2d
    from sparsenet.spconv_compat import to_sparse_tensor

    size, results = settings.layer_size, []
    for sparsity in settings.layer_sparsities:
        torch.manual_seed(settings.seed)
        dense, sparse = SparsityInvariantConv2d(**LAYER), SparseSparsityInvariantConv2d(**LAYER, submanifold=True)
        rng = np.random.default_rng(settings.seed)
        mask = torch.from_numpy(rng.random((LAYER_BATCH, 1, size, size)) >= sparsity).float()
        x = torch.rand(LAYER_BATCH, LAYER["in_channels"], size, size) * mask
        valid = mask[:, 0].bool()
        coords, features = valid.nonzero(), x.permute(0, 2, 3, 1)[valid]

        def dense_step() -> None:
            image = x.clone().requires_grad_()
            dense(image, mask)[0].sum().backward()

        def sparse_step() -> None:
            sites = features.clone().requires_grad_()
            sparse(to_sparse_tensor(sites, coords, (size, size), LAYER_BATCH)).features.sum().backward()

        seconds = interleaved({"dense": dense_step, "sparse": sparse_step}, settings.repeats, settings.warmup)
        results.append(
            LayerResult(
                sparsity,
                int(valid.sum()) // LAYER_BATCH,
                Stats.of(seconds["dense"]),
                Stats.of(seconds["sparse"]),
                ratios(seconds["dense"], seconds["sparse"]),
            )
        )
    return results


# --- case 2: cost growth ----------------------------------------------------------------------------------

GROWTH_MODELS = (
    ("DeepCNet(5, 10)", "deepcnet", "deepcnet-dense", {"l": 5, "k": 10}, 1),
    ("sparse VGG (VGGplus)", "vgg", "vgg-dense", {}, 3),
)  # label, sparse, dense, kwargs, channels


@dataclass(frozen=True)
class GrowthResult:
    """Seconds per step of a sparse network and its dense twin against active sites per sample."""

    label: str
    field: list[int]
    fractions: list[float]
    sites: list[int]
    sparse: list[Stats]
    dense: list[Stats]
    crossing: float | None  # fraction of the field where the sparse step becomes slower, if it does


def random_sites_batch(field: tuple[int, int], sites: int, batch_size: int, channels: int, seed: int) -> SparseBatch:
    """``sites`` distinct uniformly random sites per sample, normal features, random labels."""
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
    """Case 2: random sites (a worst case for spreading: every pooling or valid convolution dilates them)."""
    results = []
    for label, sparse, dense, kwargs, channels in GROWTH_MODELS:
        nets = {
            "sparse": build(sparse, channels, 10, settings.seed, **kwargs),
            "dense": build(dense, channels, 10, settings.seed, **kwargs),
        }
        field = nets["sparse"].input_size()
        sites, timings = [], {"sparse": [], "dense": []}
        for fraction in settings.growth_fractions:
            sites.append(max(1, round(fraction * field[0] * field[1])))
            batch = random_sites_batch(field, sites[-1], settings.batch_size, channels, settings.seed)
            seconds = interleaved({role: step_fn(net, batch) for role, net in nets.items()}, settings.growth_repeats, 1)
            for role in timings:
                timings[role].append(Stats.of(seconds[role]))
        cross = crossing(settings.growth_fractions, *([t.median for t in timings[r]] for r in ("sparse", "dense")))
        results.append(
            GrowthResult(
                label, list(field), list(settings.growth_fractions), sites, timings["sparse"], timings["dense"], cross
            )
        )
    return results


# --- the whole run ----------------------------------------------------------------------------------------


@dataclass
class BenchResults:
    """Everything one run measured (``results.json``), with the settings and machine it ran on."""

    settings: Settings
    machine: dict[str, Any]
    command: str
    seconds: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    layer: list[LayerResult] = field(default_factory=list)
    growth: list[GrowthResult] = field(default_factory=list)
    pipeline: list[PipelineResult] = field(default_factory=list)
    loading: list[LoadingResult] = field(default_factory=list)
    efficiency: list[EfficiencyResult] = field(default_factory=list)
    parallel: list[ParallelResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_bench(
    out: str | Path,
    workspace: Workspace | None = None,
    *,
    quick: bool = False,
    threads: int = 2,
    command: str = "sparsenet bench",
    log: Callable[[str], None] = print,
) -> BenchResults:
    """Run every case, write the report ``out`` and ``bench/`` (plots, results.json) beside it.

    ``workspace`` defaults to the shards in ``data/`` and raw data from ``$SPARSENET_RAW`` (or,
    with ``quick``, synthetic data in a temporary folder).
    """
    settings = Settings.for_mode(quick, threads)
    start = time.perf_counter()
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="sparsenet-bench-") as tmp:
        from sparsenet.bench_efficiency import bench_efficiency  # imports spconv: after the threads are set
        from sparsenet.bench_parallel import bench_parallel
        from sparsenet.bench_pipeline import bench_loading, bench_pipeline
        from sparsenet.bench_report import machine, write_report

        results = BenchResults(settings, machine(threads), command)
        scratch = Path(tmp)
        if workspace is None:
            workspace = Workspace.synthetic(scratch / "synthetic", settings.seed) if quick else Workspace(Path("data"))
        cases: dict[str, Callable[[], list]] = {
            "steps": lambda: bench_steps(workspace, settings),
            "layer": lambda: bench_sinet_layer(settings),
            "growth": lambda: bench_growth(settings),
            "pipeline": lambda: bench_pipeline(workspace, settings),
            "loading": lambda: bench_loading(workspace, settings, scratch / "loading"),
            "efficiency": lambda: bench_efficiency(workspace, settings),
            "parallel": lambda: bench_parallel(workspace, settings, scratch / "parallel"),
        }
        for name, case in cases.items():
            log(f"bench: {name} ...")
            case_start = time.perf_counter()
            setattr(results, name, case())
            log(f"bench: {name} done in {time.perf_counter() - case_start:.1f} s")
    results.seconds = time.perf_counter() - start
    write_report(results, Path(out))
    return results
