"""The ``sparsenet`` command line (click), every command in this one file.

Each command parses options and calls one library function; heavy imports (numpy, h5py,
torch, matplotlib) happen inside commands so ``--help`` stays fast. Library errors
(:data:`LIBRARY_ERRORS`) become one-line ``click.ClickException`` messages naming the file
and the problem, never a traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sparsenet.sources import RawDataError

Command = TypeVar("Command", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# ShardError is a ValueError; RawDataError's module imports only the standard library.
LIBRARY_ERRORS: tuple[type[Exception], ...] = (RawDataError, ValueError, OSError)


def reports_errors(func: Command) -> Command:
    """Decorator for commands: library errors -> ``click.ClickException`` (message only, exit 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LIBRARY_ERRORS as err:
            raise click.ClickException(str(err)) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="sparsenet")
def main() -> None:
    """Spatially-sparse CNNs on spconv, fed from coordinate/feature HDF5 shards.

    Typical flow: `sparsenet preprocess mnist --source ../shared/data/mnist`, then
    `sparsenet inspect data/mnist`.
    """


@main.group(context_settings=CONTEXT)
def preprocess() -> None:
    """Convert a raw dataset into validated HDF5 shards (DIR/train, DIR/test, ...).

    Raw data comes from --source, else $SPARSENET_RAW/<dataset>/, else data/raw/<dataset>/,
    else a download from the official source into data/raw/.
    """


class WriterRange(click.ParamType):
    """Writer ids as ranges and lists: ``1-36``, ``37-45``, ``1-10,20``."""

    name = "WRITERS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> list[int]:
        if isinstance(value, list):
            return value
        writers: set[int] = set()
        try:
            for part in str(value).split(","):
                lo, _, hi = part.strip().partition("-")
                writers.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            self.fail(f"{value!r} is not a list of writer ids or ranges such as 1-36 or 1-10,20", param, ctx)
        return sorted(writers)


SOURCE = click.option(
    "--source",
    type=click.Path(exists=True, path_type=Path),
    help="Raw data: a folder or the original archive "
    "(default: $SPARSENET_RAW/<dataset>, data/raw/<dataset>, or download).",
)


def _out(default: str) -> Callable[[Command], Command]:
    """The ``--out`` option of a converter writing train/ and test/ under ``default``."""
    return click.option(
        "--out",
        type=click.Path(path_type=Path),
        default=Path(default),
        show_default=True,
        help="Output folder; gets train/ and test/.",
    )


def _locate(dataset: str, source: Path | None) -> Path:
    from sparsenet.sources import locate

    return locate(dataset, source)


def _convert(name: str, source: Path, out: Path, **options: Any) -> None:
    """Run the converter registered as ``name`` and print what it wrote."""
    from sparsenet.converters import get_converter

    result = get_converter(name).convert(source, out, progress=True, **options)
    samples = ", ".join(f"{n} {split}" for split, n in result["samples"].items())
    click.echo(f"wrote {samples} samples to {result['out_dir']}")
    for note in result.get("skipped", []):
        click.echo(f"skipped {note}")


@preprocess.command(context_settings=CONTEXT)
@SOURCE
@_out("data/assamese")
@click.option(
    "--scale",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Side of the box each character is scaled into (aspect ratio kept).",
)
@click.option(
    "--field",
    type=click.IntRange(min=2),
    default=95,
    show_default=True,
    help="Side of the square grid the character is centred in (room for augmentation).",
)
@click.option(
    "--encoding",
    type=click.Choice(["direction", "simple", "octogram"]),
    default="direction",
    show_default=True,
    help="Site features: pen direction (dx, dy, 1), ink only (1), or 9 octogram channels.",
)
@click.option(
    "--train-writers",
    type=WriterRange(),
    default="1-36",
    show_default=True,
    help="Writers whose samples form the training split.",
)
@click.option(
    "--test-writers",
    type=WriterRange(),
    default="37-45",
    show_default=True,
    help="Writers whose samples form the test split.",
)
@reports_errors
def assamese(source, out, scale, field, encoding, train_writers, test_writers) -> None:
    """Online Handwritten Assamese Characters (183 classes, 45 writers) -> stroke sites."""
    _convert(
        "assamese",
        _locate("assamese", source),
        out,
        scale=scale,
        field=field,
        encoding=encoding,
        train_writers=train_writers,
        test_writers=test_writers,
    )


@preprocess.command(context_settings=CONTEXT)
@SOURCE
@_out("data/mnist")
@click.option(
    "--field",
    type=click.IntRange(min=28),
    default=96,
    show_default=True,
    help="Side of the square grid each 28x28 digit is centred in.",
)
@reports_errors
def mnist(source, out, field) -> None:
    """MNIST digits -> sites at the non-zero pixels, feature value/255 (exact)."""
    _convert("mnist", _locate("mnist", source), out, field=field)


@preprocess.command(context_settings=CONTEXT)
@click.option("--dataset", type=click.Choice(["mnist", "caltech101"]), required=True, help="Images to mask.")
@click.option(
    "--sparsity",
    type=click.FloatRange(0, 1, max_open=True),
    required=True,
    help="Fraction of pixels dropped from every image, in [0, 1).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the masks (and of the Caltech-101 split)."
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Caltech-101 only: images are centre-cropped and resized to SIZE x SIZE.",
)
@SOURCE
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder [default: data/masked-<dataset>-<sparsity>].",
)
@reports_errors
def masked(dataset, sparsity, seed, size, source, out) -> None:
    """Images with a random validity mask -> sites at the valid pixels (zeros included)."""
    out = out or Path(f"data/masked-{dataset}-{sparsity:g}")
    _convert("masked", _locate(dataset, source), out, dataset=dataset, sparsity=sparsity, seed=seed, size=size)


@main.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--render",
    "count",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also draw this many samples (spread over the shards).",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("samples.png"),
    show_default=True,
    help="Where --render writes its picture.",
)
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


@main.command("train", context_settings=CONTEXT, short_help="Train a network on shards; --resume continues a run.")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset folder with train/ and test/ shards.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder [default: runs/<dataset>-<model>]."
)
@click.option(
    "--model", type=ModelChoice(), help="Network (see sparsenet.models.list_models()) [default: per dataset]."
)
@click.option(
    "--model-arg",
    "model_args",
    type=KeyValue(),
    multiple=True,
    help="Keyword for the model builder, e.g. l=5; repeatable.",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the training split.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Global batch size (the same for any --procs).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="SGD with (Nesterov) momentum, or Adam.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate at epoch 0.")
@click.option(
    "--lr-schedule",
    type=click.Choice(["exp", "cosine", "constant"]),
    help="exp: lr·exp(-d·epoch) (Graham); cosine; constant.",
)
@click.option("--lr-decay", type=click.FloatRange(min=0), help="d of the exp schedule.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), help="SGD momentum (Adam: beta1).")
@click.option("--nesterov/--no-nesterov", default=None, help="Nesterov momentum for SGD.")
@click.option("--weight-decay", type=click.FloatRange(min=0), help="L2 weight decay.")
@click.option(
    "--augment",
    type=click.Choice(["none", "affine", "shift"]),
    help="Training augmentation: affine (strokes), shift (±2 px, MNIST), none.",
)
@click.option("--seed", type=int, help="Seed of weights, sample order, augmentation and dropout.")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to train [default: auto = CUDA if present]."
)
@click.option(
    "--procs",
    type=Procs(),
    help="Data-parallel processes: N, or auto = one per core (GPU), at most batch-size/16 [default: auto].",
)
@click.option(
    "--sync-batchnorm/--local-batchnorm",
    default=None,
    help="With several processes: BatchNorm statistics of the global batch (an all-reduce per layer, "
    "slow over gloo) or of each process's share [default: local].",
)
@click.option(
    "--threads",
    type=Procs(),
    help="Torch threads per process: N, or auto = 1 for sparse networks (spconv's CPU kernels use one), "
    "else the usable cores shared among the processes [default: auto].",
)
@click.option("--loader-workers", type=click.IntRange(min=0), help="DataLoader worker processes per training process.")
@click.option("--eval-batch-size", type=click.IntRange(min=1), help="Batch size of the test-set evaluation.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Start from this config (a run's config.json repeats that run); other options override it.",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
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
    from sparsenet.errors import SparsenetError

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
    except SparsenetError as err:  # a failed training process (distributed.RankFailed) is no ValueError
        raise click.ClickException(str(err)) from None
    if distributed.Rank.from_env().main:  # under torchrun every rank runs this command
        click.echo(f"run folder: {run_dir}")


@main.command("eval", context_settings=CONTEXT, short_help="Test error of a checkpoint; --json for machines.")
@click.option(
    "--checkpoint",
    "checkpoints",
    required=True,
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint file, or a run folder (its best.pt); repeat it to evaluate an ensemble "
    "(the mean of the members' class probabilities).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Dataset folder (its test/ split) or a split folder [default: the (first) run's data].",
)
@click.option(
    "--confusion",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the confusion-matrix PNG "
    "[default: eval-<checkpoint stem>-confusion.png beside the checkpoint].",
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Evaluation batch size [default: the run's].")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run."
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Test-time augmentation: average the class probabilities over the plain sample and "
    "REPEATS-1 copies distorted by the run's training augmentation.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (top1_error, top5_error, per_class_error, ...)."
)
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


@main.command("predict", context_settings=CONTEXT, short_help="Classify raw stroke files or images; prints the top 5.")
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A checkpoint file, or a run folder (its best.pt).",
)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="How many classes to print per input."
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True, help="Where to run."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of text.")
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


def index_options(command):
    """--dataset, --data and --repeats: what `export` and `export-ensemble` record in models/index.json."""
    for option in reversed(
        [
            click.option(
                "--dataset",
                required=True,
                help="Dataset name for the index: assamese, mnist, masked-mnist-S, masked-caltech101-S.",
            ),
            click.option(
                "--data",
                required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path),
                help="The shard folder to measure the test error on, "
                "as `make preprocess` leaves it (e.g. data/assamese).",
            ),
            click.option(
                "--repeats",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Also record the test error with test-time augmentation (eval --repeats).",
            ),
        ]
    ):
        command = option(command)
    return command


@main.command(
    "export", context_settings=CONTEXT, short_help="Ship a trained model: models/NAME.pt and models/index.json."
)
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The run's checkpoint (e.g. runs/assamese-vgg/checkpoint.pt).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it, e.g. models/assamese-vgg.pt.",
)
@index_options
@reports_errors
def export_model(checkpoint, out, dataset, data, repeats) -> None:
    """Copy a checkpoint without its optimizer state (at most 2 MB), measure its test error and
    record file, dataset, data, top1_error, sha256 and the training command in index.json beside it."""
    from sparsenet.zoo import export

    click.echo(json.dumps(export(checkpoint, out, dataset=dataset, data=data, repeats=repeats), indent=1))


@main.command("export-ensemble", context_settings=CONTEXT, short_help="Index shipped models evaluated together.")
@click.argument("name")
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--models",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("models"),
    show_default=True,
    help="The folder of shipped models and index.json.",
)
@index_options
@reports_errors
def export_ensemble(name, files, folder, dataset, data, repeats) -> None:
    """Measure the test error of shipped models FILES (names in index.json) evaluated together —
    the mean of their class probabilities, as `sparsenet eval --checkpoint A --checkpoint B` —
    and record it as ensemble NAME in index.json."""
    from sparsenet.zoo import export_ensemble

    click.echo(
        json.dumps(export_ensemble(folder, name, list(files), dataset=dataset, data=data, repeats=repeats), indent=1)
    )


@main.command("report", context_settings=CONTEXT, short_help="Compare runs: a table and error-vs-sparsity plot.")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--test-on",
    "test_on",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also evaluate every run's final checkpoint on this dataset's test split (repeatable): "
    "ROOT/cross.md, cross.json, cross.png — train at one sparsity, test at the others.",
)
@reports_errors
def report(root, test_on) -> None:
    """Summarise every run folder below ROOT into ROOT/report.md, and for runs on masked data
    (`sparsenet preprocess masked`) plot their final test error against sparsity (ROOT/sparsity.png)."""
    from sparsenet.report import cross_report, report

    click.echo(report(root).read_text(), nl=False)
    if test_on:
        click.echo(cross_report(root, list(test_on)).read_text(), nl=False)


@main.command(
    context_settings=CONTEXT, short_help="Draw the active sites of every layer for one sample (Graham's Figure 1)."
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A split folder (data/mnist/test) or shard file holding the sample.",
)
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True, help="Which sample of --data.")
@click.option(
    "--model",
    "model_name",
    default="deepcnet",
    show_default=True,
    type=ModelChoice(),
    help="A sparse network (input kind 'sparse').",
)
@click.option(
    "--model-arg",
    "model_args",
    type=KeyValue(),
    multiple=True,
    help="Keyword for the model builder, e.g. l=5; repeatable.",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("activity.png"),
    show_default=True,
    help="Where to write the picture.",
)
@reports_errors
def activity(data, index, model_name, model_args, png) -> None:
    """Draw which sites are active after every layer of a sparse network for one sample.

    Active sites depend only on the input and the layers, not on the weights, so the network
    is built fresh (its input field taken from the network, the sample centred in it).
    """
    from sparsenet.activity import draw_activity
    from sparsenet.batch import collate
    from sparsenet.models import build
    from sparsenet.pipeline import dataset
    from sparsenet.shards import ShardReader

    reader = ShardReader(data)
    network = build(
        model_name, in_channels=len(reader.meta.feature_names), num_classes=reader.meta.num_classes, **dict(model_args)
    )
    if network.input_kind != "sparse":
        raise click.UsageError(f"{model_name} takes {network.input_kind} input; activity needs a sparse network")
    placed = dataset(reader, tuple(network.input_size()))
    batch = collate([placed[index]], placed.transform.field)
    for layer in draw_activity(network, batch.sparse(), png):
        click.echo(
            f"{layer.name:>28}  {layer.spatial_shape[0]:>3}x{layer.spatial_shape[1]:<3}  {len(layer.sites):>5} active"
        )
    click.echo(f"wrote {png}")


@main.command(
    context_settings=CONTEXT, short_help="Time sparse vs dense nets, the pipeline and loading; write a report."
)
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny synthetic data and few repeats (seconds, for CI): checks that every case runs, not how fast.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown report; plots and results.json go to bench/ beside it "
    "[default: docs/BENCHMARKS.md; with --quick: runs/bench-quick/BENCHMARKS.md].",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Folder of the assamese/ and mnist/ shards; missing ones are converted there (unused with --quick).",
)
@click.option(
    "--raw",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Folder of the raw assamese/ and mnist/ datasets [default: $SPARSENET_RAW, else data/raw; never downloads].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="torch threads for the training-step cases (preprocessing and loading always run on one).",
)
@reports_errors
def bench(quick, out, data, raw, threads) -> None:
    """Measure sparse vs dense training steps, cost growth with active sites, pipeline overhead,
    preprocessing and loading, and spconv's efficiency; write a markdown report with plots.

    The numbers are only as good as the machine is idle: run nothing else meanwhile.
    """
    import os

    from sparsenet.bench import run_bench
    from sparsenet.bench_data import Workspace
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
