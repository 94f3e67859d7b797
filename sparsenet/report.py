"""Compare finished runs: one table row per run, and test error against sparsity per network.

``report("runs/sparsity-sweep")`` reads every run folder below (``config.json`` and
``metrics.jsonl``), writes ``report.md`` (model, data, sparsity, epochs, final and best test
error) and, when the runs' shards record a ``sparsity`` (``sparsenet preprocess masked``),
``sparsity.png``: final test error against sparsity, one line per network (Uhrig et al.,
3DV 2017, Table 3). The final epoch's error is the headline: picking the best epoch by test
error would select on the test set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sparsenet.metrics import pyplot, save_figure
from sparsenet.train import CONFIG_JSON, METRICS


def collect(root: str | os.PathLike) -> list[dict[str, Any]]:
    """One summary per run folder below ``root`` that has finished at least one epoch."""
    rows = []
    for record_path in sorted(Path(root).rglob(CONFIG_JSON)):
        run = record_path.parent
        history = [json.loads(line) for line in (run / METRICS).read_text().splitlines()] if (run / METRICS).is_file() else []
        if not history:
            continue
        record = json.loads(record_path.read_text())
        params = json.loads(record["data"]["params"])
        rows.append({
            "run": str(run),
            "model": record["config"]["model"],
            "data": record["config"]["data"],
            "sparsity": params.get("sparsity"),
            "epochs": history[-1]["epoch"],
            "final_error": history[-1]["test_error"],
            "best_error": min(row["test_error"] for row in history),
        })
    return rows


def report(root: str | os.PathLike) -> Path:
    """Write ``root/report.md`` (and ``root/sparsity.png`` for sparsity sweeps); return the table's path."""
    root = Path(root)
    rows = collect(root)
    if not rows:
        raise ValueError(f"{root}: no run folder with a finished epoch (config.json and metrics.jsonl) below it")
    lines = ["| run | model | sparsity | epochs | final test error | best test error |", "|---|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["sparsity"] or 0, r["run"])):
        sparsity = "" if r["sparsity"] is None else f"{r['sparsity']:g}"
        lines.append(f"| {Path(r['run']).name} | {r['model']} | {sparsity} | {r['epochs']} | "
                     f"{100 * r['final_error']:.2f}% | {100 * r['best_error']:.2f}% |")
    table = root / "report.md"
    table.write_text("\n".join(lines) + "\n")
    swept = [r for r in rows if r["sparsity"] is not None]
    if swept:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for model in sorted({r["model"] for r in swept}):
            points = sorted((r["sparsity"], 100 * r["final_error"]) for r in swept if r["model"] == model)
            ax.plot(*zip(*points), marker="o", label=model)
        ax.set(xlabel="sparsity (fraction of pixels dropped)", ylabel="test error (%)", title="test error against input sparsity")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        save_figure(fig, root / "sparsity.png")
    return table
