"""The ``sparsenet`` command line (click): ``preprocess``, ``inspect`` and the commands of ``sparsenet.commands``.

Each command parses options and calls one library function; heavy imports (numpy, h5py,
torch, matplotlib) happen inside commands so ``--help`` stays fast. Library errors
(:data:`LIBRARY_ERRORS`) become one-line ``click.ClickException`` messages naming the file
and the problem, never a traceback.

Adding a command: create ``sparsenet/commands/<name>.py`` defining a click command called
``command`` (decorate it with :func:`reports_errors`); :class:`SparsenetGroup` finds it as
``sparsenet <name>`` without any change here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable, TypeVar

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


class SparsenetGroup(click.Group):
    """A group that also lists the ``command`` of every module in ``sparsenet.commands``."""

    def _plugins(self) -> list[str]:
        import sparsenet.commands

        return [m.name for m in pkgutil.iter_modules(sparsenet.commands.__path__) if not m.name.startswith("_")]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in self._plugins():
            return super().get_command(ctx, name)
        return importlib.import_module(f"sparsenet.commands.{name}").command


@click.group(cls=SparsenetGroup, context_settings=CONTEXT)
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
    "--source", type=click.Path(exists=True, path_type=Path),
    help="Raw data: a folder or the original archive (default: $SPARSENET_RAW/<dataset>, data/raw/<dataset>, or download).",
)


def _out(default: str) -> Callable[[Command], Command]:
    """The ``--out`` option of a converter writing train/ and test/ under ``default``."""
    return click.option("--out", type=click.Path(path_type=Path), default=Path(default), show_default=True,
                        help="Output folder; gets train/ and test/.")


def _locate(dataset: str, source: Path | None) -> Path:
    from sparsenet.sources import locate

    return locate(dataset, source)


def _report(result: dict) -> None:
    samples = ", ".join(f"{n} {split}" for split, n in result["samples"].items())
    click.echo(f"wrote {samples} samples to {result['out_dir']}")
    for note in result.get("skipped", []):
        click.echo(f"skipped {note}")


@preprocess.command(context_settings=CONTEXT)
@SOURCE
@_out("data/assamese")
@click.option("--scale", type=click.IntRange(min=1), default=64, show_default=True,
              help="Side of the box each character is scaled into (aspect ratio kept).")
@click.option("--field", type=click.IntRange(min=2), default=95, show_default=True,
              help="Side of the square grid the character is centred in (room for augmentation).")
@click.option("--encoding", type=click.Choice(["direction", "simple", "octogram"]), default="direction",
              show_default=True, help="Site features: pen direction (dx, dy, 1), ink only (1), or 9 octogram channels.")
@click.option("--train-writers", type=WriterRange(), default="1-36", show_default=True,
              help="Writers whose samples form the training split.")
@click.option("--test-writers", type=WriterRange(), default="37-45", show_default=True,
              help="Writers whose samples form the test split.")
@reports_errors
def assamese(source, out, scale, field, encoding, train_writers, test_writers) -> None:
    """Online Handwritten Assamese Characters (183 classes, 45 writers) -> stroke sites."""
    from preprocess import assamese as converter

    _report(converter.convert(_locate("assamese", source), out, scale=scale, field=field, encoding=encoding,
                              train_writers=train_writers, test_writers=test_writers, progress=True))


@preprocess.command(context_settings=CONTEXT)
@SOURCE
@_out("data/mnist")
@click.option("--field", type=click.IntRange(min=28), default=96, show_default=True,
              help="Side of the square grid each 28x28 digit is centred in.")
@reports_errors
def mnist(source, out, field) -> None:
    """MNIST digits -> sites at the non-zero pixels, feature value/255 (exact)."""
    from preprocess import mnist as converter

    _report(converter.convert(_locate("mnist", source), out, field=field, progress=True))


@preprocess.command(context_settings=CONTEXT)
@click.option("--dataset", type=click.Choice(["mnist", "caltech101"]), required=True, help="Images to mask.")
@click.option("--sparsity", type=click.FloatRange(0, 1, max_open=True), required=True,
              help="Fraction of pixels dropped from every image, in [0, 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the masks (and of the Caltech-101 split).")
@click.option("--size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Caltech-101 only: images are centre-cropped and resized to SIZE x SIZE.")
@SOURCE
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: data/masked-<dataset>-<sparsity>].")
@reports_errors
def masked(dataset, sparsity, seed, size, source, out) -> None:
    """Images with a random validity mask -> sites at the valid pixels (zeros included)."""
    from preprocess import masked as converter

    out = out or Path(f"data/masked-{dataset}-{sparsity:g}")
    _report(converter.convert(dataset, _locate(dataset, source), out, sparsity=sparsity, seed=seed, size=size,
                              progress=True))


@main.command(context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--render", "count", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also draw this many samples (spread over the shards).")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=Path("samples.png"), show_default=True,
              help="Where --render writes its picture.")
@reports_errors
def inspect(path, count, png) -> None:
    """Validate a shard file or folder and summarise it (samples, classes, shape, features, sites)."""
    from sparsenet.summary import render_samples, summarize

    splits = summarize(path)
    for split in splits:
        click.echo(split.describe())
    if count:
        drawable = [s.path for s in splits if s.meta.compatible(splits[0].meta)]
        click.echo(f"drew {min(count, sum(s.samples for s in splits if s.path in drawable))} samples of "
                   f"{', '.join(map(str, drawable))} into {render_samples(drawable, count, png)}")
