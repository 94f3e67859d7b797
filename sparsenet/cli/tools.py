"""``sparsenet inspect``, ``activity``, ``export``, ``export-ensemble`` and ``bench``: tools around shards,
networks and shipped models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from sparsenet.cli._common import CONTEXT, MODEL_ARG, MODELS, Command, option, options, reports_errors
from sparsenet.cli._types import EXISTING, EXISTING_DIR, NEW_DIR, NEW_FILE, POSITIVE


def _png(default: str, help_text: str) -> Callable[[Command], Command]:
    """A ``--png`` option: where a command draws its picture."""
    return option("--png", type=NEW_FILE, default=Path(default), help=help_text)


@click.command(context_settings=CONTEXT, short_help="Validate shards and summarise them; --render draws samples.")
@click.argument("path", type=EXISTING)
@option(
    "--render",
    "count",
    type=click.IntRange(min=0),
    default=0,
    help="Also draw this many samples (spread over the shards).",
)
@_png("samples.png", "Where --render writes its picture.")
@reports_errors
def inspect(path, count, png) -> None:
    """Validate a shard file or folder and summarise it (samples, classes, shape, features, sites)."""
    from sparsenet.summary import render_samples, summarize

    splits = summarize(path)
    for split in splits:
        click.echo(split.describe())
    if count:
        drawable = [s.path for s in splits if s.meta.compatible(splits[0].meta)]
        click.echo(
            f"drew {min(count, sum(s.samples for s in splits if s.path in drawable))} samples of "
            f"{', '.join(map(str, drawable))} into {render_samples(drawable, count, png)}"
        )


INDEX_OPTIONS = options(
    option(
        "--dataset",
        required=True,
        help="Dataset name for the index: assamese, mnist, masked-mnist-S, masked-caltech101-S.",
    ),
    option(
        "--data",
        required=True,
        type=EXISTING_DIR,
        help="The shard folder to measure the test error on, as `make preprocess` leaves it (e.g. data/assamese).",
    ),
    option(
        "--repeats",
        type=POSITIVE,
        default=1,
        help="Also record the test error with test-time augmentation (eval --repeats).",
    ),
)
"""--dataset, --data and --repeats: what `export` and `export-ensemble` record in models/index.json."""


@click.command(
    "export", context_settings=CONTEXT, short_help="Ship a trained model: models/NAME.pt and models/index.json."
)
@option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The run's checkpoint (e.g. runs/assamese-vgg/checkpoint.pt).",
)
@option("--out", required=True, type=NEW_FILE, help="Where to write it, e.g. models/assamese-vgg.pt.")
@INDEX_OPTIONS
@reports_errors
def export_model(checkpoint, out, dataset, data, repeats) -> None:
    """Copy a checkpoint without its optimizer state (at most 2 MB), measure its test error and
    record file, dataset, data, top1_error, sha256 and the training command in index.json beside it."""
    from sparsenet.zoo import export

    click.echo(json.dumps(export(checkpoint, out, dataset=dataset, data=data, repeats=repeats), indent=1))


@click.command("export-ensemble", context_settings=CONTEXT, short_help="Index shipped models evaluated together.")
@click.argument("name")
@click.argument("files", nargs=-1, required=True)
@option(
    "--models", "folder", type=EXISTING_DIR, default=Path("models"), help="The folder of shipped models and index.json."
)
@INDEX_OPTIONS
@reports_errors
def export_ensemble(name, files, folder, dataset, data, repeats) -> None:
    """Measure the test error of shipped models FILES (names in index.json) evaluated together —
    the mean of their class probabilities, as `sparsenet eval --checkpoint A --checkpoint B` —
    and record it as ensemble NAME in index.json."""
    from sparsenet.zoo import export_ensemble

    click.echo(
        json.dumps(export_ensemble(folder, name, list(files), dataset=dataset, data=data, repeats=repeats), indent=1)
    )


@click.command(
    context_settings=CONTEXT, short_help="Draw the active sites of every layer for one sample (Graham's Figure 1)."
)
@option(
    "--data", required=True, type=EXISTING, help="A split folder (data/mnist/test) or shard file holding the sample."
)
@option("--index", type=click.IntRange(min=0), default=0, help="Which sample of --data.")
@option("--model", "model_name", default="deepcnet", type=MODELS, help="A sparse network (input kind 'sparse').")
@MODEL_ARG
@_png("activity.png", "Where to write the picture.")
@reports_errors
def activity(data, index, model_name, model_args, png) -> None:
    """Draw which sites are active after every layer of a sparse network for one sample.

    Active sites depend only on the input and the layers, not on the weights, so the network
    is built fresh (its input field taken from the network, the sample centred in it).
    """
    from sparsenet.activity import sample_activity

    for layer in sample_activity(data, index, model_name, dict(model_args), png):
        height, width = layer.spatial_shape
        click.echo(f"{layer.name:>28}  {height:>3}x{width:<3}  {len(layer.sites):>5} active")
    click.echo(f"wrote {png}")


@click.command(
    context_settings=CONTEXT, short_help="Time sparse vs dense nets, the pipeline and loading; write a report."
)
@option(
    "--quick",
    is_flag=True,
    help="Tiny synthetic data and few repeats (seconds, for CI): checks that every case runs, not how fast.",
)
@option(
    "--out",
    type=NEW_FILE,
    default=None,
    help="Markdown report; plots and results.json go to bench/ beside it "
    "[default: docs/BENCHMARKS.md; with --quick: runs/bench-quick/BENCHMARKS.md].",
)
@option(
    "--data",
    type=NEW_DIR,
    default=Path("data"),
    help="Folder of the assamese/ and mnist/ shards; missing ones are converted there (unused with --quick).",
)
@option(
    "--raw",
    type=EXISTING_DIR,
    help="Folder of the raw assamese/ and mnist/ datasets [default: $SPARSENET_RAW, else data/raw; never downloads].",
)
@option(
    "--threads",
    type=POSITIVE,
    default=2,
    help="torch threads for the training-step cases (preprocessing and loading always run on one).",
)
@reports_errors
def bench(quick, out, data, raw, threads) -> None:
    """Measure sparse vs dense training steps, cost growth with active sites, pipeline overhead,
    preprocessing and loading, and spconv's efficiency; write a markdown report with plots.

    The numbers are only as good as the machine is idle: run nothing else meanwhile.
    """
    import os

    from sparsenet.bench.data import Workspace
    from sparsenet.bench.runner import run_bench
    from sparsenet.sources import ENV_VAR

    out = out or Path("runs/bench-quick/BENCHMARKS.md" if quick else "docs/BENCHMARKS.md")
    command = ["sparsenet", "bench", *["--quick"] * quick, "--out", str(out), "--threads", str(threads)]
    if not quick:
        command += ["--data", str(data)] + (["--raw", str(raw)] if raw else [])
        if raw is None and os.environ.get(ENV_VAR):
            command.insert(0, f"{ENV_VAR}={os.environ[ENV_VAR]}")
    workspace = None if quick else Workspace(data, raw)
    run_bench(
        out,
        workspace,
        quick=quick,
        threads=threads,
        command=" ".join(command),
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(f"wrote {out} and {out.parent / 'bench'}/")
