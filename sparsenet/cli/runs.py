"""``sparsenet train``, ``eval``, ``predict`` and ``report``: training runs and what they measure."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sparsenet.cli._common import (
    CONTEXT,
    DEVICES,
    MODEL_ARG,
    MODELS,
    CountOrAuto,
    LazyChoice,
    _constant,
    option,
    reports_errors,
)
from sparsenet.cli._types import EXISTING, EXISTING_DIR, NEW_DIR, NEW_FILE, POSITIVE


@click.command("train", context_settings=CONTEXT, short_help="Train a network on shards; --resume continues a run.")
@option("--data", type=EXISTING_DIR, help="Dataset folder with train/ and test/ shards.")
@option("--out", type=NEW_DIR, help="Run folder [default: runs/<dataset>-<model>].")
@option("--model", type=MODELS, help="Network (see sparsenet.models.list_models()) [default: per dataset].")
@MODEL_ARG
@option(
    "--epochs", type=POSITIVE, help="Epochs: the lr is set, the test split scored and a checkpoint saved per epoch."
)
@option("--passes-per-epoch", type=POSITIVE, help="Passes over the training split per epoch [default: 1].")
@option("--batch-size", type=POSITIVE, help="Global batch size (the same for any --procs).")
@option(
    "--optimizer",
    type=LazyChoice(_constant("sparsenet.config", "OPTIMIZERS")),
    help="SGD with (Nesterov) momentum, or Adam.",
)
@option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate at epoch 0.")
@option(
    "--lr-schedule",
    type=LazyChoice(_constant("sparsenet.config", "SCHEDULES")),
    help="exp: lr·exp(-d·epoch) (Graham); cosine; constant.",
)
@option("--lr-decay", type=click.FloatRange(min=0), help="d of the exp schedule.")
@option("--momentum", type=click.FloatRange(0, 1, max_open=True), help="SGD momentum (Adam: beta1).")
@option("--nesterov/--no-nesterov", default=None, help="Nesterov momentum for SGD.")
@option("--weight-decay", type=click.FloatRange(min=0), help="L2 weight decay.")
@option(
    "--augment",
    type=LazyChoice(_constant("sparsenet.augment", "AUGMENTATIONS")),
    help="Training augmentation: affine (strokes), affine-wide (Graham's wider ranges), shift (±2 px, MNIST), none.",
)
@option("--seed", type=int, help="Seed of weights, sample order, augmentation and dropout.")
@option("--device", type=DEVICES, help="Where to train [default: auto = CUDA if present].")
@option(
    "--procs",
    type=CountOrAuto("processes"),
    help="Data-parallel processes: N, or auto = one per core (GPU), at most batch-size/16 [default: auto].",
)
@option(
    "--sync-batchnorm/--local-batchnorm",
    default=None,
    help="With several processes: BatchNorm statistics of the global batch (an all-reduce per layer, "
    "slow over gloo) or of each process's share [default: local].",
)
@option(
    "--threads",
    type=CountOrAuto("threads"),
    help="Torch threads per process: N, or auto = 1 for sparse networks (spconv's CPU kernels use one), "
    "else the usable cores shared among the processes [default: auto].",
)
@option("--loader-workers", type=click.IntRange(min=0), help="DataLoader worker processes per training process.")
@option("--eval-batch-size", type=POSITIVE, help="Batch size of the test-set evaluation.")
@option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from this config (a run's config.json repeats that run); other options override it.",
)
@option(
    "--resume",
    type=EXISTING_DIR,
    help="Continue the run in this folder from its last checkpoint "
    "(only --epochs, --procs, --threads, --device, --loader-workers, --sync-batchnorm may change).",
)
@reports_errors
def train(data, out, model, model_args, config_file, resume, **options) -> None:
    """Train a classifier on shards; metrics, plots and checkpoints go to the run folder.

    Defaults come from the dataset (Assamese: sparse VGG with affine augmentation; MNIST:
    DeepCNet(5, 10) with ±2-pixel shifts). Examples:

    \b
      sparsenet train --data data/assamese --out runs/assamese-vgg
      sparsenet train --data data/mnist --model deepcnet --model-arg l=5 --model-arg k=10
      sparsenet train --resume runs/assamese-vgg
    """
    from sparsenet import config as configs
    from sparsenet import distributed, train

    overrides = {k: v for k, v in dict(options, model=model).items() if v is not None}
    if model_args:
        overrides["model_kwargs"] = dict(model_args)
    paths = {k: str(v) for k, v in (("data", data), ("out", out)) if v is not None}
    try:
        if resume is not None:
            if config_file is not None:
                raise click.UsageError("--resume continues a run with its own config; drop --config")
            run_dir = train.resume(resume, **paths, **overrides)
        elif config_file is not None:
            run_dir = train.train(configs.from_file(config_file).replace(**paths, **overrides))
        elif data is None:
            raise click.UsageError("give --data DIR (or --config FILE, or --resume RUN_DIR)")
        else:
            run_dir = train.train(configs.for_dataset(data, out, **overrides))
    except train.Interrupted as stop:
        raise click.ClickException(
            f"interrupted; the last finished epoch is saved: continue with `sparsenet train --resume {stop.run_dir}`"
        ) from None
    if distributed.Rank.from_env().main:  # under torchrun every rank runs this command
        click.echo(f"run folder: {run_dir}")


@click.command("eval", context_settings=CONTEXT, short_help="Test error of a checkpoint; --json for machines.")
@option(
    "--checkpoint",
    "checkpoints",
    required=True,
    multiple=True,
    type=EXISTING,
    help="A checkpoint file, or a run folder (its best.pt); repeat it to evaluate an ensemble "
    "(the mean of the members' class probabilities).",
)
@option(
    "--data",
    type=EXISTING_DIR,
    help="Dataset folder (its test/ split) or a split folder [default: the (first) run's data].",
)
@option(
    "--confusion",
    type=NEW_FILE,
    help="Where to write the confusion-matrix PNG "
    "[default: eval-<checkpoint stem>-confusion.png beside the checkpoint].",
)
@option("--batch-size", type=POSITIVE, help="Evaluation batch size [default: the run's].")
@option("--device", type=DEVICES, default="auto", help="Where to run.")
@option(
    "--repeats",
    type=POSITIVE,
    default=1,
    help="Test-time augmentation: average the class probabilities over the plain sample and "
    "REPEATS-1 copies distorted by the run's training augmentation.",
)
@option("--json", "as_json", is_flag=True, help="Print one JSON object (top1_error, top5_error, per_class_error, ...).")
@reports_errors
def evaluate(checkpoints, data, confusion, batch_size, device, repeats, as_json) -> None:
    """Evaluate a checkpoint (or an ensemble) on the test split, without augmentation unless --repeats > 1.

    Prints the top-1 and top-5 test error, the error of every class that has one, and writes
    the confusion matrix as a PNG.
    """
    from sparsenet.evaluate import evaluate

    result = evaluate(checkpoints, data, device=device, batch_size=batch_size, confusion_png=confusion, repeats=repeats)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    tta = f", mean of {repeats} augmented passes" if repeats > 1 else ""
    which = f"{result['checkpoint']} (epoch {result['epoch']})"
    if len(result["checkpoints"]) > 1:
        which = f"ensemble of {' + '.join(result['checkpoints'])}"
    click.echo(f"{which} on {result['data']}: {result['samples']} samples{tta}")
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


@click.command(
    "compare", context_settings=CONTEXT, short_help="Two checkpoints on the same test set: McNemar's exact test."
)
@option("--checkpoint", "checkpoints", required=True, multiple=True, type=EXISTING, help="A and B (give it twice).")
@option(
    "--data", type=EXISTING_DIR, help="Dataset folder (its test/ split) or a split folder [default: A's run's data]."
)
@option("--batch-size", type=POSITIVE, help="Evaluation batch size [default: each run's].")
@option("--device", type=DEVICES, default="auto", help="Where to run.")
@option("--repeats", type=POSITIVE, default=1, help="Test-time augmentation, as in `sparsenet eval`.")
@option("--json", "as_json", is_flag=True, help="Print one JSON object (top1_error, only_a, only_b, p_value, ...).")
@reports_errors
def compare(checkpoints, data, batch_size, device, repeats, as_json) -> None:
    """Is checkpoint A better than B, or is it chance? Both classify the same test samples; of the
    samples where exactly one is right, McNemar's exact test asks whether A's share differs from half."""
    from sparsenet.evaluate import compare

    if len(checkpoints) != 2:
        raise click.UsageError(f"give --checkpoint exactly twice (A and B), not {len(checkpoints)} times")
    result = compare(*checkpoints, data, device=device, batch_size=batch_size, repeats=repeats)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(f"on {result['data']}: {result['samples']} samples" + (f", {repeats} passes" if repeats > 1 else ""))
    for name, path, epoch, error in zip("AB", result["checkpoints"], result["epochs"], result["top1_error"]):
        click.echo(f"{name}: {path} (epoch {epoch}): top-1 error {100 * error:.2f}%")
    click.echo(
        f"right only by A: {result['only_a']}   right only by B: {result['only_b']}   "
        f"McNemar exact two-sided p = {result['p_value']:.3g}"
    )


@click.command("predict", context_settings=CONTEXT, short_help="Classify raw stroke files or images; prints the top 5.")
@option("--checkpoint", required=True, type=EXISTING, help="A checkpoint file, or a run folder (its best.pt).")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@option("--top", type=POSITIVE, default=5, help="How many classes to print per input.")
@option("--device", type=DEVICES, default="auto", help="Where to run.")
@option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
@reports_errors
def predict(checkpoint, inputs, top, device, as_json) -> None:
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


@click.command(
    "report", context_settings=CONTEXT, short_help="Summarise runs: a table, error per epoch and against sparsity."
)
@click.argument("root", type=EXISTING_DIR)
@option(
    "--test-on",
    "test_on",
    multiple=True,
    type=EXISTING_DIR,
    help="Also evaluate every run's final checkpoint on this dataset's test split (repeatable): "
    "ROOT/cross.md, cross.json, cross.png — train at one sparsity, test at the others.",
)
@reports_errors
def report(root, test_on) -> None:
    """Summarise every run folder below ROOT into ROOT/report.md, plot every run's test error per
    epoch (ROOT/epochs.png, for two runs or more) and, for runs on masked data (`sparsenet preprocess
    masked`), their final test error against sparsity (ROOT/sparsity.png)."""
    from sparsenet.report import cross_report, report

    click.echo(report(root).read_text(), nl=False)
    if test_on:
        click.echo(cross_report(root, list(test_on)).read_text(), nl=False)
