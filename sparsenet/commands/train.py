"""``sparsenet train``: train a network on shards, continue a run, or repeat one from its config."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sparsenet.cli import CONTEXT, reports_errors


class ModelChoice(click.Choice):
    """``click.Choice(list_models())``, read on first use so that ``--help`` does not import torch."""

    def __init__(self) -> None:  # no fixed choices: see the property
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        from sparsenet.models import list_models

        return tuple(list_models())

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "MODEL"


class Procs(click.ParamType):
    """``auto`` or a whole number of processes, at least 1."""

    name = "N|auto"

    def convert(self, value, param, ctx) -> int | str:
        if value == "auto" or (isinstance(value, int) and value >= 1):
            return value
        if str(value).isdigit() and int(value) >= 1:
            return int(value)
        self.fail(f"{value!r} is neither 'auto' nor a whole number of processes >= 1", param, ctx)


class KeyValue(click.ParamType):
    """``KEY=VALUE``; VALUE is read as JSON when it parses (``l=5``, ``dropout=[0,0.5]``), else as text."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx) -> tuple[str, object]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.isidentifier():
            self.fail(f"{value!r} is not KEY=VALUE with KEY a keyword of the model builder", param, ctx)
        try:
            return key, json.loads(text)
        except json.JSONDecodeError:
            return key, text


@click.command(context_settings=CONTEXT, short_help="Train a network on shards; --resume continues a run.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset folder with train/ and test/ shards.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run folder [default: runs/<dataset>-<model>].")
@click.option("--model", type=ModelChoice(), help="Network (see sparsenet.models.list_models()) [default: per dataset].")
@click.option("--model-arg", "model_args", type=KeyValue(), multiple=True,
              help="Keyword for the model builder, e.g. l=5; repeatable.")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (the same for any --procs).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="SGD with (Nesterov) momentum, or Adam.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate at epoch 0.")
@click.option("--lr-schedule", type=click.Choice(["exp", "cosine", "constant"]),
              help="exp: lr·exp(-d·epoch) (Graham); cosine; constant.")
@click.option("--lr-decay", type=click.FloatRange(min=0), help="d of the exp schedule.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), help="SGD momentum (Adam: beta1).")
@click.option("--nesterov/--no-nesterov", default=None, help="Nesterov momentum for SGD.")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="L2 weight decay.")
@click.option("--augment", type=click.Choice(["none", "affine", "shift"]),
              help="Training augmentation: affine (strokes), shift (±2 px, MNIST), none.")
@click.option("--seed", type=int, help="Seed of weights, sample order, augmentation and dropout.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where to train [default: auto = CUDA if present].")
@click.option("--procs", type=Procs(),
              help="Data-parallel processes: N, or auto = one per core (GPU), at most batch-size/16 [default: 1].")
@click.option("--loader-workers", type=click.IntRange(min=0), help="DataLoader worker processes per training process.")
@click.option("--eval-batch-size", type=click.IntRange(min=1), help="Batch size of the test-set evaluation.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Start from this config (a run's config.json repeats that run); other options override it.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Continue the run in this folder from its last checkpoint "
                   "(only --epochs, --procs, --device, --loader-workers may change).")
@reports_errors
def command(data, out, model, model_args, config_file, resume, **options) -> None:
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
