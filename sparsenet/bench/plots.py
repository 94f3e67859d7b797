"""The plots of ``sparsenet bench``, drawn with matplotlib's Agg canvas (no display, no pyplot state).

They go to :data:`PLOTS` beside the report: :data:`STEPS_PLOT` (case 1's speed-ups) and
:data:`GROWTH_PLOT` (case 2's curves).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparsenet.bench.results import GrowthResult, StepResult

PLOTS = "bench"  # folder beside the report: plots, results.json, the hand-written analysis
STEPS_PLOT = "sparse-vs-dense.png"
GROWTH_PLOT = "cost-growth.png"


def plot_steps(steps: list[StepResult], path: Path) -> None:
    """Speed-ups (dense / sparse step time) with min–max bars and targets."""
    fig = Figure(figsize=(8, 0.5 * len(steps) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
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


def plot_growth(growth: list[GrowthResult], path: Path) -> None:
    """Step time against active sites, sparse and dense, with the crossing marked."""
    fig = Figure(figsize=(5.5 * len(growth), 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(growth), squeeze=False)
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
