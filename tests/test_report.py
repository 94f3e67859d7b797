"""sparsenet.report: a table of finished runs, error against sparsity, and the train-at-one/test-at-others matrix."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from synthetic import write_digit_shards

from sparsenet.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_report_tables_runs_and_plots_sparsity(tmp_path):
    from sparsenet.report import report

    for model, sparsity, errors in (
        ("sinet", 0.5, [0.4, 0.2]),
        ("convnet", 0.5, [0.5, 0.3]),
        ("sinet", 0.9, [0.6, 0.35]),
    ):
        run = tmp_path / f"{model}-{sparsity}"
        run.mkdir()
        record = {
            "config": {"model": model, "data": f"data/masked-mnist-{sparsity}"},
            "data": {"params": json.dumps({"dataset": "mnist", "sparsity": sparsity})},
        }
        (run / "config.json").write_text(json.dumps(record))
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps({"epoch": e + 1, "test_error": x}) + "\n" for e, x in enumerate(errors))
        )
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    table = report(tmp_path).read_text().splitlines()
    assert len(table) == 5
    assert table[2] == "| convnet-0.5 | convnet | 0.5 | 2 | 30.00% | 30.00% |"
    assert (tmp_path / "sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "epochs.png").read_bytes()[:4] == b"\x89PNG"
    report(tmp_path / "sinet-0.9")
    assert not (tmp_path / "sinet-0.9" / "epochs.png").exists(), "one run has nothing to compare"
    result = invoke("report", tmp_path / "unfinished")
    assert result.exit_code == 1 and "no run folder with a finished epoch" in result.output


def test_report_tests_every_run_at_every_sparsity(mnist_dir, tmp_path):
    """Train at one sparsity, test at the others: the diagonal is each run's own test error."""
    from preprocess import masked

    datasets = []
    for sparsity in (0.25, 0.75):
        masked.convert(mnist_dir, tmp_path / f"masked-{sparsity}", dataset="mnist", sparsity=sparsity, seed=0)
        datasets.append(tmp_path / f"masked-{sparsity}")
        result = invoke(
            "train",
            "--data",
            datasets[-1],
            "--out",
            tmp_path / "runs" / f"sinet-{sparsity}",
            "--model",
            "sinet-mnist",
            "--epochs",
            1,
            "--batch-size",
            4,
            "--procs",
            1,
        )
        assert result.exit_code == 0, result.output
    result = invoke("report", tmp_path / "runs", *(a for d in datasets for a in ("--test-on", d)))
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "runs" / "cross.json").read_text())
    assert sorted((r["train_sparsity"], r["test_sparsity"]) for r in rows) == [
        (0.25, 0.25),
        (0.25, 0.75),
        (0.75, 0.25),
        (0.75, 0.75),
    ]
    for row in rows:
        if row["train_sparsity"] == row["test_sparsity"]:
            own = json.loads(
                (tmp_path / "runs" / f"sinet-{row['train_sparsity']}" / "metrics.jsonl").read_text().splitlines()[-1]
            )
            assert row["top1_error"] == pytest.approx(own["test_error"])
    table = (tmp_path / "runs" / "cross.md").read_text()
    assert "| 0.25 | sinet-0.25 (1) | **" in table and (tmp_path / "runs" / "cross.png").read_bytes()[:4] == b"\x89PNG"
    result = invoke("report", tmp_path / "runs", "--test-on", write_digit_shards(tmp_path / "plain"))
    assert result.exit_code == 1 and "no sparsity recorded" in result.output
