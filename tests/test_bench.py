"""sparsenet bench: the --quick run covers every case with finite numbers (speeds are not checked),
and the multiply-add count agrees with spconv's own rulebooks."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from sparsenet.bench import crossing
from sparsenet.bench_efficiency import offset_pairs
from sparsenet.cli import main

CASES = ("layer", "steps", "growth", "pipeline", "loading", "efficiency", "parallel")


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
    for heading in ("## Machine", "## Targets", "## 1. ", "## 2. ", "## 3. ", "## 4. ", "## 5. ", "## 6. ", "### 1b. "):
        assert heading in report
    assert "Quick mode" in report and "sparsenet bench --quick" in report
    assert (tmp_path / "bench" / "sparse-vs-dense.png").stat().st_size > 0
    assert (tmp_path / "bench" / "cost-growth.png").stat().st_size > 0


@pytest.mark.parametrize("kernel, stride, subm", [(3, 1, True), (3, 2, False), (2, 2, False), (5, 1, False)])
def test_offset_pairs_match_spconv_rulebook(kernel, stride, subm):
    from sparsenet.spconv_compat import ALGO, spconv_ops

    generator = torch.Generator().manual_seed(kernel * 10 + stride)
    shape = (17, 13)
    cells = torch.randperm(shape[0] * shape[1], generator=generator)[:60]
    fine = torch.stack([cells % 2, cells // shape[1], cells % shape[1]], dim=1).int().contiguous()
    padding = kernel // 2 if subm else 0
    out, _, counts = spconv_ops.get_indice_pairs(
        fine, 2, list(shape), ALGO, [kernel] * 2, [stride] * 2, [padding] * 2, [1, 1], [0, 0], subm
    )
    # spconv lists a submanifold rulebook's first half only: the second half mirrors it, the centre is every site
    expected = 2 * int(counts.sum()) + len(fine) if subm else int(counts.sum())
    assert sum(offset_pairs(fine, out, shape, kernel, stride, padding)) == expected


def test_crossing_interpolates_on_log_scales():
    assert crossing([0.01, 0.1, 1.0], [1, 2, 8], [4, 4, 4]) == pytest.approx(0.1 * 10**0.5)
    assert crossing([0.01, 0.1], [5, 6], [4, 4]) == 0.01
    assert crossing([0.01, 0.1], [1, 2], [4, 4]) is None
