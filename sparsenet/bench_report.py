"""The report of ``sparsenet bench``: ``BENCHMARKS.md``, plots and ``results.json``.

:func:`write_report` writes the markdown file and, in ``bench/`` beside it, ``results.json``
(every measurement), ``sparse-vs-dense.png`` and ``cost-growth.png``. A hand-written
``bench/analysis.md`` beside them, if present, is included as the report's last section (the
causes of missed targets, found by profiling, which no measurement states by itself).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sparsenet.bench import LAYER_BATCH, BenchResults, GrowthResult, Stats, StepResult
from sparsenet.bench_efficiency import EfficiencyResult

PLOTS = "bench"
ANALYSIS = "analysis.md"
PARALLEL_TARGET = 1.6  # issue 7: --procs auto against --procs 1 on this 2-core machine
BUSY_LOAD = 1.0  # a 1-minute load average from which the report warns that the machine was not idle


def cpu_model() -> str:
    """The CPU's ``model name`` from /proc/cpuinfo (or what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, load when the run started, library versions, threads."""
    import h5py

    from sparsenet.checkpoint import versions

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": threads,
        "versions": {**versions(), "h5py": h5py.__version__},
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _stats(s: Stats, scale: float = 1.0, digits: int = 0, unit: str = "") -> str:
    """``median (min–max)`` with ``digits`` decimals after multiplying by ``scale``."""
    f = f"{{:,.{digits}f}}"
    return f"{f.format(s.median * scale)}{unit} ({f.format(s.low * scale)}–{f.format(s.high * scale)})"


def _met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "n/a"}[met]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _speedup_met(r: StepResult) -> bool | None:
    return None if r.target is None else r.speedup.median >= r.target


def targets(results: BenchResults) -> list[tuple[str, str, str, bool | None]]:
    """(measure, target, measured, met) for every target of issue 5; met is None in quick mode."""
    quick = results.settings.quick
    rows = [
        (
            f"{r.label}: speed-up",
            f">= {r.target:g}×",
            _stats(r.speedup, digits=2, unit="×"),
            None if quick else _speedup_met(r),
        )
        for r in results.steps
        if r.target is not None
    ]
    rows += [
        (
            f"sparsity-invariant layer, spconv (submanifold) vs dense-mask at sparsity {r.sparsity:g}: speed-up",
            "> 1×",
            _stats(r.speedup, digits=2, unit="×"),
            None if quick else r.speedup.median > 1,
        )
        for r in results.layer
        if r.sparsity >= 0.9
    ]
    rows += [
        (
            f"{p.label}: share of the bare step's rate",
            ">= 90 %",
            _stats(p.fraction, 100, 0, " %"),
            None if quick else p.fraction.median >= 0.9,
        )
        for p in results.pipeline
        if p.workers == 0
    ]
    for r in results.loading:
        measured = _stats(r.seconds, digits=1, unit=" s") if r.seconds else _stats(r.rate, unit="/s")
        rows.append((r.label, r.target, measured, r.met))
    rows += [
        (
            f"training throughput, {p.label} vs --procs 1",
            f">= {PARALLEL_TARGET:g}×",
            _stats(p.speedup, digits=2, unit="×"),
            None if quick else p.speedup.median >= PARALLEL_TARGET,
        )
        for p in results.parallel[:1]
    ]  # the default
    return rows


def _header(results: BenchResults) -> list[str]:
    m, s = results.machine, results.settings
    v = m["versions"]
    lines = ["# Benchmarks", ""]
    if s.quick:
        lines += [
            "**Quick mode**: tiny synthetic data and a few repeats. These numbers only show that every",
            "case runs; they measure nothing. `make bench` gives the real ones.",
            "",
        ]
    if m["load_average_at_start"][0] >= BUSY_LOAD:
        lines += [
            f"**Warning**: the machine was busy when this run started (load average "
            f"{m['load_average_at_start'][0]}): other processes shared the cores, so times are longer and noisier.",
            "",
        ]
    lines += [
        f"Written by `sparsenet bench` (issue 5) on {m['date']}, in {results.seconds / 60:.1f} minutes. Command:",
        "",
        "```sh",
        results.command,
        "```",
        "",
        "Every time is a median over repeats, shown as `median (min–max)`. Where two things are",
        "compared (sparse and dense, loop and bare step), they ran in turns in the same process, and",
        "each ratio is taken repeat by repeat. Repeats: "
        f"{s.repeats} after {s.warmup} warm-up for steps and efficiency, {s.growth_repeats} per cost-growth point, "
        f"{s.pipeline_repeats} for the pipeline, {s.prep_repeats} per conversion, {s.loader_repeats} per loading pass.",
        "",
        "## Machine",
        "",
        *_table(
            ("", ""),
            [
                ("CPU", f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable)"),
                (
                    "torch threads",
                    f"{m['torch_threads']} for training steps and efficiency; 1 for preprocessing and loading",
                ),
                ("load average at start", " / ".join(map(str, m["load_average_at_start"])) + " (1 / 5 / 15 min)"),
                ("versions", ", ".join(f"{k} {val}" for k, val in v.items())),
                ("platform", m["platform"]),
            ],
        ),
        "",
        "## Targets",
        "",
        *_table(("measure", "target", "measured", "met"), [(a, b, c, _met(d)) for a, b, c, d in targets(results)]),
    ]
    return lines


def _steps(results: BenchResults) -> list[str]:
    s = results.settings
    rows = [
        (
            r.label,
            r.data,
            f"{r.sites_per_sample:,.0f} of {r.field[0]}×{r.field[1]}",
            _stats(r.sparse, 1000, unit=" ms"),
            _stats(r.dense, 1000, unit=" ms"),
            f"{r.batch_size / r.sparse.median:,.0f} / {r.batch_size / r.dense.median:,.0f}",
            _stats(r.speedup, digits=2, unit="×"),
            f"{r.target:g}×" if r.target else "–",
            _met(None if s.quick else _speedup_met(r)),
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
        *_table(
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
        f"![sparse vs dense]({PLOTS}/sparse-vs-dense.png)",
        "",
        "### 1b. The sparsity-invariant layer alone",
        "",
        f"The first layer of `sinet-caltech` (11×11, 3 → 16 channels) on {LAYER_BATCH} random masks of "
        f"{s.layer_size}×{s.layer_size} pixels, forward + backward: the dense-mask form against the spconv form with",
        "`submanifold=True` (outputs at the valid pixels, where both forms agree; the network's default spconv form",
        "also outputs where the 11×11 window dilates the mask, which at these kernel sizes fills the image after one",
        "or two layers, so only the first layer can profit from sparsity).",
        "",
        *_table(
            ("sparsity", "valid pixels per image", "dense-mask", "spconv (submanifold)", "speed-up"),
            [
                (
                    f"{r.sparsity:g}",
                    f"{r.valid_pixels:,}",
                    _stats(r.dense, 1000, 1, " ms"),
                    _stats(r.sparse, 1000, 1, " ms"),
                    _stats(r.speedup, digits=2, unit="×"),
                )
                for r in results.layer
            ],
        ),
    ]


def _growth(results: BenchResults) -> list[str]:
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
                _stats(sp, 1000, unit=" ms"),
                _stats(de, 1000, unit=" ms"),
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
            *_table(("active sites", "per sample", "sparse step", "dense step", "speed-up"), rows),
            "",
        ]
    return lines + [f"![cost growth]({PLOTS}/cost-growth.png)"]


def _pipeline(results: BenchResults) -> list[str]:
    s = results.settings
    rows = [
        (
            p.label,
            _stats(p.loop),
            _stats(p.bare),
            _stats(p.fraction, 100, unit=" %"),
            ">= 90 %" if p.workers == 0 else "–",
            _met(None if s.quick or p.workers else p.fraction.median >= 0.9),
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
        *_table(("run", "training loop", "bare step", "loop / bare", "target", "met"), rows),
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
    return lines + _table(("run", *stages), rows)


def _loading(results: BenchResults) -> list[str]:
    rows = [
        (
            r.label,
            f"{r.samples:,}",
            _stats(r.seconds, digits=2, unit=" s") if r.seconds else "–",
            _stats(r.rate) if r.rate else "–",
            r.target,
            _met(r.met),
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
        *_table(("what", "samples", "seconds", "samples/s", "target", "met"), rows),
    ]


def _efficiency(results: BenchResults) -> list[str]:
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
        *_table(
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
            _stats(layer.seconds, 1000, 2, " ms"),
            f"{layer.macs / layer.seconds.median / 1e9:.2f}",
            f"{layer.macs / layer.mm_seconds.median / 1e9:.2f}",
        )
        for layer in e.layers
    ]
    return _table(
        ("layer", "kind", "k", "channels", "sites in → out", "useful MMAC", "time", "GMAC/s", "mm GMAC/s"), rows
    )


def plot_steps(steps: list[StepResult], path: Path) -> None:
    """Speed-ups (dense / sparse step time) with min–max bars and targets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.5 * len(steps) + 1.5))
    y = range(len(steps))
    med = [r.speedup.median for r in steps]
    err = [[m - r.speedup.low for m, r in zip(med, steps)], [r.speedup.high - m for m, r in zip(med, steps)]]
    ax.barh(y, med, xerr=err, color="tab:blue", alpha=0.8)
    for i, r in enumerate(steps):
        if r.target:
            ax.plot([r.target] * 2, [i - 0.4, i + 0.4], color="tab:red", lw=2, label="target" if i == 0 else None)
    ax.axvline(1, color="grey", lw=1, ls=":")
    ax.set_yticks(list(y), [r.label for r in steps], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of the sparse training step: dense time / sparse time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_growth(growth: list[GrowthResult], path: Path) -> None:
    """Step time against active sites, sparse and dense, with the crossing marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(growth), figsize=(5.5 * len(growth), 4), squeeze=False)
    for ax, g in zip(axes[0], growth):
        pct = [100 * f for f in g.fractions]
        for series, name, color in ((g.sparse, "sparse", "tab:blue"), (g.dense, "dense twin", "tab:orange")):
            med = [s.median for s in series]
            ax.plot(pct, med, "o-", color=color, label=name)
            ax.fill_between(pct, [s.low for s in series], [s.high for s in series], color=color, alpha=0.2)
        if g.crossing and g.crossing > g.fractions[0]:
            ax.axvline(100 * g.crossing, color="grey", ls="--", label=f"crossing ≈ {100 * g.crossing:.1f} %")
        ax.set(
            xscale="log",
            yscale="log",
            title=f"{g.label}, {g.field[0]}×{g.field[1]}",
            xlabel="active sites per sample (% of the field, uniform random)",
            ylabel="seconds per training step",
        )
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parallel(results: BenchResults) -> list[str]:
    s = results.settings
    rows = [
        (
            p.label,
            _stats(p.rate),
            "–" if p.speedup is None else _stats(p.speedup, digits=2, unit="×"),
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
        f"`--procs 1` take turns, {s.parallel_rounds} runs each. Rates are samples/s per epoch as `metrics.jsonl` records them, "
        "without each run's first epoch (it also reads the shards); the speed-up is taken run by run.",
        "",
        *_table(("run", "samples/s per epoch", "vs --procs 1", f"test error after {s.parallel_epochs} epochs"), rows),
        "",
        "Seconds per epoch in each stage (rank 0; `data` = waiting for batches = `load` + `augment` + `collate`):",
        "",
        *_table(("run", *stages), profile),
    ]


def write_report(results: BenchResults, out: Path) -> Path:
    """Write ``out`` (markdown) and ``bench/`` beside it; returns ``out``."""
    plots = out.parent / PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    (plots / "results.json").write_text(json.dumps(results.to_dict(), indent=1) + "\n")
    plot_steps(results.steps, plots / "sparse-vs-dense.png")
    plot_growth(results.growth, plots / "cost-growth.png")
    sections = [
        _header(results),
        _steps(results),
        _growth(results),
        _pipeline(results),
        _loading(results),
        _efficiency(results),
        _parallel(results),
    ]
    analysis = plots / ANALYSIS
    if analysis.is_file() and not results.settings.quick:
        sections.append(["## Analysis", "", analysis.read_text().strip()])
    out.write_text("\n\n".join("\n".join(section) for section in sections) + "\n")
    return out
