"""``run_bench``: every case of ``sparsenet bench`` in turn, then the report.

The cases, each in its own module of this package:

1. ``steps`` and ``layer`` (:mod:`~sparsenet.bench.steps`): one training step of each sparse
   network against its dense twin on the same batch of real samples, and the sparsity-invariant
   layer alone;
2. ``growth`` (:mod:`~sparsenet.bench.growth`): time per step as the active sites per sample grow
   from 1 % to 60 % of the field;
3. ``pipeline`` (:mod:`~sparsenet.bench.feeding`): samples/s of the training loop
   (``sparsenet.train``'s own) against the bare network step on the same batches, pre-built;
4. ``loading`` (:mod:`~sparsenet.bench.feeding`): conversion of the raw datasets, and reader +
   collate samples/s on one thread;
5. ``efficiency`` (:mod:`~sparsenet.bench.efficiency`): useful multiply-adds/s of each sparse
   convolution against ``torch.mm`` on the same matrices;
6. ``parallel`` (:mod:`~sparsenet.bench.parallel`): ``sparsenet train`` with ``--procs auto``
   against ``--procs 1`` on the full Assamese training shards (issue 7);
7. ``contention`` (:mod:`~sparsenet.bench.contention`): the defaults and ``--procs 1``, alone and
   beside one busy process (issue 14);
8. ``loader`` (:mod:`~sparsenet.bench.loader`): the public data API (``ShardStream``,
   ``ShardDataset``) in a plain DataLoader with 2 workers: samples/s and peak worker memory (issue 15).

Every timing is a median over repeats, with min and max; two things compared (sparse and dense,
loop and bare) run interleaved in one process, so a slow moment hits both, and each ratio is
taken repeat by repeat. Training steps run on ``threads`` torch threads, loading on one.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sparsenet.bench.common import Settings, torch_threads
from sparsenet.bench.data import Workspace
from sparsenet.bench.report import machine, write_report
from sparsenet.bench.results import BenchResults


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
        # The case modules load spconv, which must come after the thread count is set (see "Noise"
        # in docs/bench/analysis.md): hence imported here, not at the top.
        from sparsenet.bench import contention, efficiency, feeding, growth, loader, parallel, steps

        results = BenchResults(settings, machine(threads), command)
        scratch = Path(tmp)
        if workspace is None:
            workspace = Workspace.synthetic(scratch / "synthetic", settings.seed) if quick else Workspace(Path("data"))
        cases: dict[str, Callable[[], list]] = {
            "steps": lambda: steps.bench_steps(workspace, settings),
            "layer": lambda: steps.bench_sinet_layer(settings),
            "growth": lambda: growth.bench_growth(settings),
            "pipeline": lambda: feeding.bench_pipeline(workspace, settings),
            "loading": lambda: feeding.bench_loading(workspace, settings, scratch / "loading"),
            "efficiency": lambda: efficiency.bench_efficiency(workspace, settings),
            "parallel": lambda: parallel.bench_parallel(workspace, settings, scratch / "parallel"),
            "contention": lambda: contention.bench_contention(workspace, settings, scratch / "contention"),
            "loader": lambda: loader.bench_loader(workspace, settings),
        }
        for name, case in cases.items():
            log(f"bench: {name} ...")
            case_start = time.perf_counter()
            setattr(results, name, case())
            log(f"bench: {name} done in {time.perf_counter() - case_start:.1f} s")
    results.seconds = time.perf_counter() - start
    write_report(results, Path(out))
    return results
