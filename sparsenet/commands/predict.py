"""``sparsenet predict``: classify raw inputs (Assamese stroke files, MNIST-style images) with a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sparsenet.cli import CONTEXT, reports_errors


@click.command(context_settings=CONTEXT, short_help="Classify raw stroke files or images; prints the top 5.")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path),
              help="A checkpoint file, or a run folder (its best.pt).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="How many classes to print per input.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@reports_errors
def command(checkpoint, inputs, top, device, as_json) -> None:
    """Classify INPUTS: stroke files in the Assamese dataset's format for an Assamese checkpoint,
    image files (PNG, JPEG, ...) for an MNIST one. Prints the most probable classes."""
    from sparsenet.predict import predict

    results = predict(checkpoint, inputs, top=top, device=device)
    if as_json:
        click.echo(json.dumps(results, indent=1))
        return
    for result in results:
        click.echo(result["input"])
        for rank, guess in enumerate(result["top"], 1):
            click.echo(f"  {rank}. {guess['name']:>12} (class {guess['class']:>3})  {100 * guess['probability']:6.2f}%")
