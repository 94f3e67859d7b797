"""The report of ``sparsenet bench``: a markdown file, plots and ``results.json``.

:func:`write_report` writes the markdown file and, in ``bench/`` beside it, ``results.json``
(every measurement) and the plots of :mod:`sparsenet.bench.plots`. A hand-written
``bench/analysis.md`` beside them, if present, is included as the report's last section (the
causes of missed targets, found by profiling, which no measurement states by itself).
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py

from sparsenet.bench.plots import GROWTH_PLOT, PLOTS, STEPS_PLOT, plot_growth, plot_steps
from sparsenet.bench.results import BenchResults
from sparsenet.bench.sections import (
    contention_section,
    efficiency_section,
    growth_section,
    loader_section,
    loading_section,
    met_cell,
    parallel_section,
    pipeline_section,
    speedup_met,
    stats_cell,
    steps_section,
    table,
)
from sparsenet.checkpoint import versions

ANALYSIS = "analysis.md"  # hand-written, in PLOTS
RESULTS_JSON = "results.json"
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


def targets(results: BenchResults) -> list[tuple[str, str, str, bool | None]]:
    """(measure, target, measured, met) for every target of issue 5; met is None in quick mode."""
    quick = results.settings.quick
    rows = [
        (
            f"{r.label}: speed-up",
            f">= {r.target:g}×",
            stats_cell(r.speedup, digits=2, unit="×"),
            None if quick else speedup_met(r),
        )
        for r in results.steps
        if r.target is not None
    ]
    rows += [
        (
            f"sparsity-invariant layer, spconv (submanifold) vs dense-mask at sparsity {r.sparsity:g}: speed-up",
            "> 1×",
            stats_cell(r.speedup, digits=2, unit="×"),
            None if quick else r.speedup.median > 1,
        )
        for r in results.layer
        if r.sparsity >= 0.9
    ]
    rows += [
        (
            f"{p.label}: share of the bare step's rate",
            ">= 90 %",
            stats_cell(p.fraction, 100, 0, " %"),
            None if quick else p.fraction.median >= 0.9,
        )
        for p in results.pipeline
        if p.workers == 0
    ]
    for r in results.loading:
        measured = stats_cell(r.seconds, digits=1, unit=" s") if r.seconds else stats_cell(r.rate, unit="/s")
        rows.append((r.label, r.target, measured, r.met))
    rows += [
        (
            f"training throughput, {p.label} vs --procs 1",
            f">= {PARALLEL_TARGET:g}×",
            stats_cell(p.speedup, digits=2, unit="×"),
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
        *table(
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
        *table(("measure", "target", "measured", "met"), [(a, b, c, met_cell(d)) for a, b, c, d in targets(results)]),
    ]
    return lines


def write_report(results: BenchResults, out: Path) -> Path:
    """Write ``out`` (markdown) and ``bench/`` beside it; returns ``out``."""
    plots = out.parent / PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    (plots / RESULTS_JSON).write_text(json.dumps(results.to_dict(), indent=1) + "\n")
    plot_steps(results.steps, plots / STEPS_PLOT)
    plot_growth(results.growth, plots / GROWTH_PLOT)
    parts = [
        _header(results),
        steps_section(results),
        growth_section(results),
        pipeline_section(results),
        loading_section(results),
        efficiency_section(results),
        parallel_section(results),
        contention_section(results),
        loader_section(results),
    ]
    analysis = plots / ANALYSIS
    if analysis.is_file() and not results.settings.quick:
        parts.append(["## Analysis", "", analysis.read_text().strip()])
    out.write_text("\n\n".join("\n".join(part) for part in parts) + "\n")
    return out
