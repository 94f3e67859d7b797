"""Compare finished runs: one table row per run, and test error against sparsity per network.

``report("runs/sparsity-sweep")`` reads every run folder below (``config.json`` and
``metrics.jsonl``), writes ``report.md`` (model, data, sparsity, epochs, final and best test
error) and, when the runs' shards record a ``sparsity`` (``sparsenet preprocess masked``),
``sparsity.png``: final test error against sparsity, one line per network (Uhrig et al.,
3DV 2017, Table 3); with two runs or more, ``epochs.png``: every run's test error per epoch, so
that arms of an ablation or twins of a comparison are seen side by side. The final epoch's error
is the headline: picking the best epoch by test error would select on the test set.

``cross_report(root, datasets)`` tests the paper's invariance claim: every run's final
checkpoint is evaluated on the test split of every dataset in ``datasets`` (e.g. masked MNIST at
each sparsity), giving ``cross.json`` (every evaluation), ``cross.md`` (one table per network: rows
the training sparsity, columns the test sparsity) and ``cross.png`` (test error against test
sparsity, one line per training sparsity).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sparsenet.errors import ConfigError
from sparsenet.metrics import pyplot, save_figure
from sparsenet.runs import CHECKPOINT, CONFIG_JSON, METRICS


def collect(root: str | os.PathLike) -> list[dict[str, Any]]:
    """One summary per run folder below ``root`` that has finished at least one epoch."""
    rows = []
    for record_path in sorted(Path(root).rglob(CONFIG_JSON)):
        run = record_path.parent
        history = (
            [json.loads(line) for line in (run / METRICS).read_text().splitlines()] if (run / METRICS).is_file() else []
        )
        if not history:
            continue
        record = json.loads(record_path.read_text())
        params = json.loads(record["data"]["params"])
        rows.append(
            {
                "run": str(run),
                "model": record["config"]["model"],
                "data": record["config"]["data"],
                "sparsity": params.get("sparsity"),
                "epochs": history[-1]["epoch"],
                "final_error": history[-1]["test_error"],
                "best_error": min(row["test_error"] for row in history),
                "test_errors": [(row["epoch"], row["test_error"]) for row in history],
            }
        )
    return rows


def _sparsity(data: str | os.PathLike) -> float | None:
    """The ``sparsity`` recorded in ``data``'s test shards (``sparsenet preprocess masked``), or None."""
    from sparsenet.config import TEST_SPLIT, split_reader

    params = split_reader(data, TEST_SPLIT).meta.params
    return params.get("sparsity")


def cross_evaluate(root: str | os.PathLike, datasets: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Test error of the final checkpoint of every run below ``root`` on every dataset's test split:
    rows ``{model, run, epoch, train_sparsity, test_sparsity, data, top1_error}``; runs not on masked data are
    left out."""
    from sparsenet.evaluate import evaluate

    sparsities = {str(data): _sparsity(data) for data in datasets}
    plain = [data for data, sparsity in sparsities.items() if sparsity is None]
    if plain:
        raise ConfigError(
            f"{', '.join(plain)}: no sparsity recorded; cross-evaluation takes `sparsenet preprocess masked` datasets"
        )
    rows = []
    for run in collect(root):
        if run["sparsity"] is None:
            continue
        checkpoint = Path(run["run"]) / CHECKPOINT
        for data in datasets:
            result = evaluate(checkpoint, data, plot=False)
            rows.append(
                {
                    "model": run["model"],
                    "run": run["run"],
                    "epoch": result["epoch"],
                    "train_sparsity": run["sparsity"],
                    "test_sparsity": sparsities[str(data)],
                    "data": str(data),
                    "top1_error": result["top1_error"],
                }
            )
    return rows


def cross_report(root: str | os.PathLike, datasets: list[str | os.PathLike]) -> Path:
    """Evaluate (:func:`cross_evaluate`) and write ``root/cross.json``, ``cross.md`` and ``cross.png``
    (see the module docstring); return the table's path."""
    root = Path(root)
    rows = cross_evaluate(root, datasets)
    if not rows:
        raise ConfigError(f"{root}: no run on masked data with a finished epoch below it")
    (root / "cross.json").write_text(json.dumps(rows, indent=1) + "\n")
    return write_cross(root, rows)


def write_cross(root: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """``root/cross.md`` and ``root/cross.png`` from :func:`cross_evaluate`'s rows (e.g. a saved ``cross.json``)."""
    root = Path(root)
    tests = sorted({r["test_sparsity"] for r in rows})
    lines = []
    plt = pyplot()
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False, sharey=True)
    for model, ax in zip(models, axes[0]):
        mine = [r for r in rows if r["model"] == model]
        runs = sorted({(r["train_sparsity"], r["run"]) for r in mine})
        error = {(r["run"], r["test_sparsity"]): 100 * r["top1_error"] for r in mine}
        epochs = {r["run"]: r["epoch"] for r in mine}
        lines += [
            f"### {model}: test error (%), rows trained at, columns tested at sparsity",
            "",
            "| trained at | run (epochs) | " + " | ".join(f"{t:g}" for t in tests) + " |",
            "|---:|---|" + "---:|" * len(tests),
        ]
        colours = plt.cm.viridis([i / max(len(runs) - 1, 1) for i in range(len(runs))])  # light = sparser
        for (train, run), colour in zip(runs, colours):
            cells = [f"**{error[run, t]:.2f}**" if t == train else f"{error[run, t]:.2f}" for t in tests]
            lines.append(f"| {train:g} | {Path(run).name} ({epochs[run]}) | " + " | ".join(cells) + " |")
            ax.plot(tests, [error[run, t] for t in tests], marker="o", color=colour, label=f"trained at {train:g}")
        lines.append("")
        ax.set(xlabel="test sparsity", ylabel="test error (%)", title=model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, root / "cross.png")
    table = root / "cross.md"
    table.write_text("\n".join(lines))
    return table


def report(root: str | os.PathLike) -> Path:
    """Write ``root/report.md``, ``root/epochs.png`` for two runs or more and ``root/sparsity.png`` for
    sparsity sweeps; return the table's path."""
    root = Path(root)
    rows = collect(root)
    if not rows:
        raise ConfigError(f"{root}: no run folder with a finished epoch (config.json and metrics.jsonl) below it")
    lines = [
        "| run | model | sparsity | epochs | final test error | best test error |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["model"], r["sparsity"] or 0, r["run"])):
        sparsity = "" if r["sparsity"] is None else f"{r['sparsity']:g}"
        lines.append(
            f"| {Path(r['run']).name} | {r['model']} | {sparsity} | {r['epochs']} | "
            f"{100 * r['final_error']:.2f}% | {100 * r['best_error']:.2f}% |"
        )
    table = root / "report.md"
    table.write_text("\n".join(lines) + "\n")
    if len(rows) > 1:
        _plot_epochs(rows, root, root / "epochs.png")
    swept = [r for r in rows if r["sparsity"] is not None]
    if swept:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for model in sorted({r["model"] for r in swept}):
            points = sorted((r["sparsity"], 100 * r["final_error"]) for r in swept if r["model"] == model)
            ax.plot(*zip(*points), marker="o", label=model)
        ax.set(
            xlabel="sparsity (fraction of pixels dropped)",
            ylabel="test error (%)",
            title="test error against input sparsity",
        )
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        save_figure(fig, root / "sparsity.png")
    return table


def _plot_epochs(rows: list[dict[str, Any]], root: Path, path: Path) -> None:
    """Test error per epoch of every run in :func:`collect`'s ``rows``, one line each, named below ``root``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in sorted(rows, key=lambda r: r["run"]):
        epochs, errors = zip(*r["test_errors"])
        label = f"{Path(r['run']).relative_to(root)} ({100 * r['final_error']:.2f}%)"
        ax.plot(epochs, [100 * e for e in errors], marker="." if len(epochs) < 40 else None, label=label)
    ax.set(xlabel="epoch", ylabel="test error (%)", title="test error per epoch (final in brackets)", yscale="log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")  # 2 and 5, not 2×10⁰ and 5×10⁰
    ax.yaxis.set_major_formatter(plain)
    low, high = ax.get_ylim()
    wide = high / low > 10  # across decades, numbering every minor tick crowds them: only 2 and 5
    ax.yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}" if not wide or f"{v:.0e}"[0] in "25" else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
