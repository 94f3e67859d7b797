"""``sparsenet eval``: test error of a checkpoint (top-1, top-5, per class) and its confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sparsenet.cli import CONTEXT, reports_errors


@click.command(context_settings=CONTEXT, short_help="Test error of a checkpoint; --json for machines.")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path),
              help="A checkpoint file, or a run folder (its best.pt).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset folder (its test/ split) or a split folder [default: the run's data].")
@click.option("--confusion", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the confusion-matrix PNG [default: confusion.png beside the checkpoint].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch size [default: the run's].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (top1_error, top5_error, per_class_error, ...).")
@reports_errors
def command(checkpoint, data, confusion, batch_size, device, as_json) -> None:
    """Evaluate CHECKPOINT on the test split, without augmentation.

    Prints the top-1 and top-5 test error, the error of every class that has one, and writes
    the confusion matrix as a PNG.
    """
    from sparsenet.evaluate import evaluate

    result = evaluate(checkpoint, data, device=device, batch_size=batch_size, confusion_png=confusion)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"{result['checkpoint']} (epoch {result['epoch']}) on {result['data']}: {result['samples']} samples")
    top1, top5 = 100 * result["top1_error"], 100 * result["top5_error"]
    click.echo(f"test error: top-1 {top1:.2f}%   top-5 {top5:.2f}%   loss {result['loss']:.4f}")
    errors = sorted(((e, name) for name, e in result["per_class_error"].items() if e is not None), reverse=True)
    wrong = [(e, name) for e, name in errors if e > 0]
    click.echo(f"per-class error ({len(wrong)} of {len(errors)} classes with errors, worst first):")
    for e, name in wrong:
        click.echo(f"  {name:>12}  {100 * e:6.2f}%")
    if len(errors) < len(result["per_class_error"]):
        click.echo(f"  ({len(result['per_class_error']) - len(errors)} classes have no test samples)")
    click.echo(f"confusion matrix: {result['confusion_png']}")
