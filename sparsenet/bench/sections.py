"""The case sections of the ``sparsenet bench`` report: markdown lines from :class:`BenchResults`.

Each ``*_section`` function returns the lines of one numbered section (cases 1 to 6); the cell
helpers (:func:`stats_cell`, :func:`met_cell`, :func:`table`) format numbers the same way
everywhere: ``median (min–max)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparsenet.bench.common import Stats
from sparsenet.bench.plots import GROWTH_PLOT, PLOTS, STEPS_PLOT
from sparsenet.bench.results import BenchResults, EfficiencyResult, StepResult


def stats_cell(s: Stats, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """``median (min–max)`` with ``digits`` decimals after multiplying by ``scale``."""
    f = f"{{:,.{digits}f}}"
    return f"{f.format(s.median * scale)}{unit} ({f.format(s.low * scale)}–{f.format(s.high * scale)})"


def met_cell(met: bool | None) -> str:
    """A target's cell: met, **missed**, or n/a (quick mode, or no target)."""
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table: the header row, the separator, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def speedup_met(r: StepResult) -> bool | None:
    """Whether a step case meets its speed-up target (None without one)."""
    return None if r.target is None else r.speedup.median >= r.target


def steps_section(results: BenchResults) -> list[str]:
    """Section 1 and 1b: sparse vs dense training steps, the sparsity-invariant layer alone."""
    s = results.settings
    rows = [
        (
            r.label,
            r.data,
            f"{r.sites_per_sample:,.0f} of {r.field[0]}×{r.field[1]}",
            stats_cell(r.sparse, 1000, unit=" ms"),
            stats_cell(r.dense, 1000, unit=" ms"),
            f"{r.batch_size / r.sparse.median:,.0f} / {r.batch_size / r.dense.median:,.0f}",
            stats_cell(r.speedup, digits=2, unit="×"),
            f"{r.target:g}×" if r.target else "–",
            met_cell(None if s.quick else speedup_met(r)),
        )
        for r in results.steps
    ]
    return [
        "## 1. Sparse vs dense training step",
        "",
        "One step = input conversion (as training does it), forward, cross-entropy, backward and a",
        f"Nesterov SGD step, on one batch of {s.batch_size} random training samples; both twins get the",
        "same batch. The sparsity-invariant net's batches are masked MNIST digits built in memory",
        "as `sparsenet preprocess masked` builds them; its dense twin is the dense-mask form.",
        "",
        *table(
            (
                "network vs dense twin",
                "data",
                "sites per sample",
                "sparse step",
                "dense step",
                "samples/s sparse / dense",
                "speed-up",
                "target",
                "met",
            ),
            rows,
        ),
        "",
        f"![sparse vs dense]({PLOTS}/{STEPS_PLOT})",
        "",
        "### 1b. The sparsity-invariant layer alone",
        "",
        f"The first layer of `sinet-caltech` (11×11, 3 → 16 channels) on {s.layer_batch} random masks of "
        f"{s.layer_size}×{s.layer_size} pixels, forward + backward: the dense-mask form against the spconv form with",
        "`submanifold=True` (outputs at the valid pixels, where both forms agree; the network's default spconv form",
        "also outputs where the 11×11 window dilates the mask, which at these kernel sizes fills the image after one",
        "or two layers, so only the first layer can profit from sparsity).",
        "",
        *table(
            ("sparsity", "valid pixels per image", "dense-mask", "spconv (submanifold)", "speed-up"),
            [
                (
                    f"{r.sparsity:g}",
                    f"{r.valid_pixels:,}",
                    stats_cell(r.dense, 1000, 1, " ms"),
                    stats_cell(r.sparse, 1000, 1, " ms"),
                    stats_cell(r.speedup, digits=2, unit="×"),
                )
                for r in results.layer
            ],
        ),
    ]


def growth_section(results: BenchResults) -> list[str]:
    """Section 2: step time against active sites, with where the curves cross."""
    lines = [
        "## 2. Cost growth with active sites",
        "",
        f"Batches of {results.settings.batch_size} samples whose sites are drawn uniformly at random from the",
        "field, with random features: a worst case for sparse networks, since every pooling and valid",
        "convolution dilates scattered sites (a stroke or a digit dilates far less).",
        "",
    ]
    for g in results.growth:
        rows = [
            (
                f"{100 * f:g} %",
                f"{n:,}",
                stats_cell(sp, 1000, unit=" ms"),
                stats_cell(de, 1000, unit=" ms"),
                f"{de.median / sp.median:.2f}×",
            )
            for f, n, sp, de in zip(g.fractions, g.sites, g.sparse, g.dense)
        ]
        where = (
            "the sparse step is slower from the first point"
            if g.crossing == g.fractions[0]
            else f"the curves cross at about {100 * g.crossing:.1f} % of the field "
            f"({g.crossing * g.field[0] * g.field[1]:,.0f} sites per sample)"
            if g.crossing
            else f"the sparse step stays faster up to {100 * g.fractions[-1]:g} % of the field"
        )
        lines += [
            f"**{g.label}** ({g.field[0]}×{g.field[1]}): {where}.",
            "",
            *table(("active sites", "per sample", "sparse step", "dense step", "speed-up"), rows),
            "",
        ]
    return lines + [f"![cost growth]({PLOTS}/{GROWTH_PLOT})"]


def pipeline_section(results: BenchResults) -> list[str]:
    """Section 3: the training loop against the bare step, and where the loop's time goes."""
    s = results.settings
    rows = [
        (
            p.label,
            stats_cell(p.loop),
            stats_cell(p.bare),
            stats_cell(p.fraction, 100, unit=" %"),
            ">= 90 %" if p.workers == 0 else "–",
            met_cell(None if s.quick or p.workers else p.fraction.median >= 0.9),
        )
        for p in results.pipeline
    ]
    lines = [
        "## 3. Pipeline overhead",
        "",
        "The sparse VGG on the Assamese training shards with `affine` augmentation (the `make train-assamese`",
        f"recipe): {s.pipeline_batches} batches of {s.batch_size} through `sparsenet.train`'s own epoch loop",
        "(shard reading, augmentation, collate, step) against the bare step on the same batches,",
        "augmented and collated beforehand. Rates in samples/s.",
        "",
        *table(("run", "training loop", "bare step", "loop / bare", "target", "met"), rows),
        "",
        "Where the loop's time goes (training's own stopwatch, seconds per pass; `data` is loading,",
        "augmentation and collate, or waiting for the loader workers):",
        "",
    ]
    stages = list(dict.fromkeys(stage for p in results.pipeline for stage in p.profile))  # the loop's order
    rows = [
        (
            p.label,
            *(
                f"{p.profile.get(st, 0):.2f} ({100 * p.profile.get(st, 0) / sum(p.profile.values()):.0f} %)"
                for st in stages
            ),
        )
        for p in results.pipeline
    ]
    return lines + table(("run", *stages), rows)


def loading_section(results: BenchResults) -> list[str]:
    """Section 4: conversions and reader + collate rates."""
    rows = [
        (
            r.label,
            f"{r.samples:,}",
            stats_cell(r.seconds, digits=2, unit=" s") if r.seconds else "–",
            stats_cell(r.rate) if r.rate else "–",
            r.target,
            met_cell(r.met),
        )
        for r in results.loading
    ]
    return [
        "## 4. Preprocessing and loading",
        "",
        "Conversions run the converters of `sparsenet preprocess` on all raw files (parse, render,",
        "check, write HDF5 with gzip), one torch thread. Loading is one shuffled pass over the training",
        "split in batches through training's DataLoader path (`ShardDataset` and `collate`), one",
        "process, no augmentation.",
        "",
        *table(("what", "samples", "seconds", "samples/s", "target", "met"), rows),
    ]


def efficiency_section(results: BenchResults) -> list[str]:
    """Section 5: useful multiply-adds per second, per network and (folded) per convolution."""
    rows = [
        (
            e.label,
            f"{e.macs / 1e9:.3f}",
            f"{1000 * e.conv_seconds:.1f} ms",
            f"{e.macs / e.conv_seconds / 1e9:.2f}",
            f"{e.macs / e.mm_seconds / 1e9:.2f}",
            f"{100 * e.mm_seconds / e.conv_seconds:.0f} %",
            f"{100 * e.conv_seconds / e.forward.median:.0f} %",
        )
        for e in results.efficiency
    ]
    lines = [
        "## 5. Efficiency of the sparse convolutions",
        "",
        "Useful multiply-adds count only active sites: for each convolution, the sum over output sites",
        "of active input neighbours × C_in × C_out. Seconds come from hooks around each convolution in a",
        "forward pass (`no_grad`; rulebooks, gathers, GEMMs, scatters). The reference runs `torch.mm` on",
        "the same matrices, `[pairs at offset k, C_in] @ [C_in, C_out]` for every kernel offset k.",
        "",
        *table(
            (
                "network (one forward, same batch as case 1)",
                "useful GMAC",
                "conv time",
                "spconv GMAC/s",
                "torch.mm GMAC/s",
                "spconv / mm",
                "convs' share of forward",
            ),
            rows,
        ),
        "",
    ]
    for e in results.efficiency:
        lines += [
            "<details>",
            f"<summary>{e.label}: every convolution</summary>",
            "",
            *_layer_table(e),
            "",
            "</details>",
            "",
        ]
    return lines


def _layer_table(e: EfficiencyResult) -> list[str]:
    rows = [
        (
            layer.name,
            layer.kind,
            f"{layer.kernel}",
            f"{layer.channels[0]}→{layer.channels[1]}",
            f"{layer.sites[0]:,} → {layer.sites[1]:,}",
            f"{layer.macs / 1e6:,.1f}",
            stats_cell(layer.seconds, 1000, 2, " ms"),
            f"{layer.macs / layer.seconds.median / 1e9:.2f}",
            f"{layer.macs / layer.mm_seconds.median / 1e9:.2f}",
        )
        for layer in e.layers
    ]
    return table(
        ("layer", "kind", "k", "channels", "sites in → out", "useful MMAC", "time", "GMAC/s", "mm GMAC/s"), rows
    )


def parallel_section(results: BenchResults) -> list[str]:
    """Section 6: data-parallel training rates, speed-ups and stage profiles."""
    s = results.settings
    rows = [
        (
            p.label,
            stats_cell(p.rate),
            "–" if p.speedup is None else stats_cell(p.speedup, digits=2, unit="×"),
            f"{100 * p.test_error:.2f} %",
        )
        for p in results.parallel
    ]
    stages = list(dict.fromkeys(stage for p in results.parallel for stage in p.profile))
    profile = [(p.label, *(f"{p.profile.get(st, 0):.2f}" for st in stages)) for p in results.parallel]
    return [
        "## 6. Data-parallel training",
        "",
        f"`sparsenet train` on the full Assamese training shards (the `make train-assamese` recipe) for "
        f"{s.parallel_epochs} epochs; `--procs auto` (the default), the same with `--sync-batchnorm` and "
        f"`--procs 1` take turns, {s.parallel_rounds} runs each. Rates are samples/s per epoch as "
        "`metrics.jsonl` records them, without each run's first epoch (it also reads the shards); the "
        "speed-up is taken run by run.",
        "",
        *table(("run", "samples/s per epoch", "vs --procs 1", f"test error after {s.parallel_epochs} epochs"), rows),
        "",
        "Seconds per epoch in each stage (rank 0; `data` = waiting for batches = `load` + `augment` + `collate`):",
        "",
        *table(("run", *stages), profile),
    ]


def contention_section(results: BenchResults) -> list[str]:
    """Section 7: training rates alone and beside one busy process."""
    s = results.settings
    rows = [
        (
            c.label,
            "with one busy process" if c.loaded else "alone",
            c.procs,
            "–" if c.threads is None else c.threads,
            stats_cell(c.rate),
        )
        for c in results.contention
    ]
    return [
        "## 7. Training under contention",
        "",
        f"`sparsenet train` on the full Assamese training shards for {s.contention_epochs} epochs with its "
        "defaults and with `--procs 1`, alone and with one busy process (`python -c 'while True: pass'`) "
        f"on the same cores; {s.contention_rounds} runs of each, taking turns. Rates are samples/s per epoch "
        "from `metrics.jsonl`, without each run's first epoch.",
        "",
        *table(("setting", "beside it", "processes", "threads each", "samples/s per epoch"), rows),
    ]


def loader_section(results: BenchResults) -> list[str]:
    """Section 8: the public data API in a plain DataLoader."""
    s = results.settings
    rows = []
    for r in results.loader:
        memory = [f"{size / 2**20:.0f} MiB" for size in (r.worker_peak_bytes, r.split_bytes)]
        rows.append((r.label, r.workers, f"{r.samples:,}", stats_cell(r.rate), *memory))
    return [
        "## 8. The data API in a plain DataLoader",
        "",
        f"A fresh process reads the MNIST training split through `torch.utils.data.DataLoader` with "
        f"{s.loader_workers} workers, batch {s.loader_batch} and the dataset's own `collate` (README, "
        f'"Shards"): {s.loader_epochs} epochs, the first a warm-up. Peak memory is the largest worker\'s '
        "resident set (it holds the process's copy of torch as well as the shards it reads).",
        "",
        *table(("dataset", "workers", "samples", "samples/s", "worker peak memory", "split on disk"), rows),
    ]
