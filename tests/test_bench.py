"""sparsenet bench: the --quick run covers every case with finite numbers (speeds are not checked).

The parts of the benchmark package have their own test modules in ``tests/bench/``."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from sparsenet.cli import main

CASES = ("layer", "steps", "growth", "pipeline", "loading", "efficiency", "parallel", "contention", "loader")


def _numbers(value):
    """Every int and float in a nest of dicts and lists (None, strings and booleans skipped)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.mark.slow
def test_quick_bench_runs_every_case(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = CliRunner().invoke(main, ["bench", "--quick", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    for case in CASES:
        assert results[case], f"case {case} produced nothing"
    numbers = list(_numbers({case: results[case] for case in CASES}))
    assert numbers and all(math.isfinite(x) for x in numbers)
    assert all(x > 0 for x in _numbers([[r["sparse"], r["dense"]] for r in results["steps"]]))
    report = out.read_text()
    for heading in (
        "## Machine",
        "## Targets",
        "## 1. ",
        "## 2. ",
        "## 3. ",
        "## 4. ",
        "## 5. ",
        "## 6. ",
        "## 7. ",
        "### 1b. ",
    ):
        assert heading in report
    assert "Quick mode" in report and "sparsenet bench --quick" in report
    assert (tmp_path / "bench" / "sparse-vs-dense.png").stat().st_size > 0
    assert (tmp_path / "bench" / "cost-growth.png").stat().st_size > 0
