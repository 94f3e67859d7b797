"""``sparsenet report``: compare finished runs (a table, and test error against sparsity)."""

from __future__ import annotations

from pathlib import Path

import click

from sparsenet.cli import CONTEXT, reports_errors


@click.command(context_settings=CONTEXT, short_help="Compare runs: a table and error-vs-sparsity plot.")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@reports_errors
def command(root) -> None:
    """Summarise every run folder below ROOT into ROOT/report.md, and for runs on masked data
    (`sparsenet preprocess masked`) plot their final test error against sparsity (ROOT/sparsity.png)."""
    from sparsenet.report import report

    click.echo(report(root).read_text(), nl=False)
