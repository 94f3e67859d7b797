"""What the cases of ``sparsenet bench`` measure: one frozen dataclass per kind of row, and
:class:`BenchResults`, everything of one run (``results.json``, and what the report is written from).

Times are :class:`~sparsenet.bench.common.Stats` in seconds unless a field says otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sparsenet.bench.common import Settings, Stats


@dataclass(frozen=True)
class StepResult:
    """Case 1: seconds per training step of a sparse network and its dense twin on the same batch."""

    label: str
    data: str
    batch_size: int
    field: list[int]
    sites_per_sample: float
    sparse: Stats
    dense: Stats
    speedup: Stats  # dense seconds / sparse seconds, repeat by repeat
    target: float | None


@dataclass(frozen=True)
class LayerResult:
    """Case 1b: forward + backward seconds of the sparsity-invariant layer alone, dense-mask against spconv form."""

    sparsity: float
    valid_pixels: int  # per image
    dense: Stats
    sparse: Stats
    speedup: Stats  # dense seconds / sparse seconds, repeat by repeat


@dataclass(frozen=True)
class GrowthResult:
    """Case 2: seconds per step of a sparse network and its dense twin against active sites per sample."""

    label: str
    field: list[int]
    fractions: list[float]
    sites: list[int]
    sparse: list[Stats]
    dense: list[Stats]
    crossing: float | None  # fraction of the field where the sparse step becomes slower, if it does


@dataclass(frozen=True)
class PipelineResult:
    """Case 3: the training loop (sparsenet.train) against the bare step on the same, pre-built batches."""

    label: str
    workers: int
    samples: int
    loop: Stats  # samples/s
    bare: Stats  # samples/s
    fraction: Stats  # loop rate / bare rate, repeat by repeat
    profile: dict[str, float]  # seconds per loop pass spent per stage (train's stopwatch), mean over repeats


@dataclass(frozen=True)
class LoadingResult:
    """Case 4: seconds of one raw -> shards conversion, or samples/s of reading + collating a split."""

    label: str
    samples: int
    seconds: Stats | None = None
    rate: Stats | None = None  # samples/s
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class LayerEfficiency:
    """Case 5, one convolution: size, useful multiply-adds, seconds, and ``torch.mm``'s seconds for the same work."""

    name: str
    kind: str
    channels: list[int]  # C_in, C_out
    kernel: int
    sites: list[int]  # active input sites, output sites (whole batch)
    macs: int
    seconds: Stats
    mm_seconds: Stats


@dataclass(frozen=True)
class EfficiencyResult:
    """Case 5: all sparse convolutions of one network on one batch, and its whole forward pass."""

    label: str
    batch_size: int
    forward: Stats
    layers: list[LayerEfficiency]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def conv_seconds(self) -> float:
        return sum(layer.seconds.median for layer in self.layers)

    @property
    def mm_seconds(self) -> float:
        return sum(layer.mm_seconds.median for layer in self.layers)


@dataclass(frozen=True)
class ParallelResult:
    """Case 6: one ``--procs`` setting of ``sparsenet train``."""

    label: str
    procs: int  # processes the setting resolved to
    rate: Stats  # samples/s of the timed epochs
    speedup: Stats | None  # against --procs 1, round by round (None for --procs 1 itself)
    profile: dict[str, float]  # seconds per epoch per stage, rank 0, mean over the timed epochs
    test_error: float  # after the last epoch of the last round


@dataclass
class ContentionResult:
    """Case 7: one ``sparsenet train`` setting, alone or beside a busy process."""

    label: str  # the setting, e.g. "default" or "--procs 1"
    loaded: bool  # True: one busy process ran beside it
    procs: int  # processes the setting resolved to
    threads: int | None  # torch threads per process it resolved to (None: not recorded)
    rate: Stats  # samples/s of the timed epochs


@dataclass
class LoaderResult:
    """Case 8: one way of reading a split with a plain DataLoader."""

    label: str  # the dataset class and its options
    workers: int  # DataLoader worker processes
    samples: int  # samples per epoch
    rate: Stats  # samples/s of the timed epochs
    worker_peak_bytes: int  # peak resident memory of the largest worker
    split_bytes: int  # the split's shard files on disk


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
    contention: list[ContentionResult] = field(default_factory=list)
    loader: list[LoaderResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts and lists for ``json.dumps``."""
        return asdict(self)
