"""``sparsenet preprocess …``: one command per converter, each calling it by name through the registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sparsenet.cli._common import CONTEXT, Command, _converter_choice, option, options, reports_errors
from sparsenet.cli._types import EXISTING, POSITIVE


@click.group("preprocess", context_settings=CONTEXT, short_help="Convert raw data into HDF5 shards (train/, test/).")
def preprocess() -> None:
    """Convert a raw dataset into validated HDF5 shards (DIR/train, DIR/test, ...).

    Raw data comes from --source, else $SPARSENET_RAW/<dataset>/, else data/raw/<dataset>/,
    else a download from the official source into data/raw/. All splits replace DIR together
    (an error or a kill leaves the old dataset); a DIR holding files sparsenet did not write
    is refused unless --overwrite, which keeps those files.
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


SOURCE = option(
    "--source",
    type=EXISTING,
    help="Raw data: a folder or the original archive "
    "(default: $SPARSENET_RAW/<dataset>, data/raw/<dataset>, or download).",
)
OVERWRITE = option(
    "--overwrite",
    is_flag=True,
    help="Replace the dataset in --out even if the folder holds files sparsenet did not write; those are kept.",
)


def _out(default: str) -> Callable[[Command], Command]:
    """The ``--out`` option of a converter writing its splits under ``default``."""
    help_text = "Output folder; gets train/ and test/."
    return option("--out", type=click.Path(path_type=Path), default=Path(default), help=help_text)


def _stroke_options(converter: str, noun: str) -> Callable[[Command], Command]:
    """--scale, --field, --encoding: how pen strokes become sites (preprocess.strokes.render)."""
    return options(
        option(
            "--scale",
            type=POSITIVE,
            default=64,
            help=f"Side of the box each {noun} is scaled into (aspect ratio kept).",
        ),
        option(
            "--field",
            type=click.IntRange(min=2),
            default=95,
            help=f"Side of the square grid the {noun} is centred in (room for augmentation).",
        ),
        option(
            "--encoding",
            type=_converter_choice(converter, "encoding"),
            default="direction",
            help="Site features: pen direction (dx, dy, 1), ink only (1), or 9 octogram channels.",
        ),
    )


def _corpus_options(converter: str, kind: str) -> Callable[[Command], Command]:
    """The options every converter of a user's own corpus shares: source, output, name, split rule."""
    return options(
        option(
            "--source",
            type=EXISTING,
            required=True,
            help=f"The {kind}: a folder, or a .tar/.tar.gz/.zip archive of one.",
        ),
        _out(f"data/{converter}"),
        option(
            "--name",
            "dataset",
            default=converter,
            help="The dataset name recorded in the shards (configs and runs key on it).",
        ),
        option(
            "--split",
            type=_converter_choice(converter, "split"),
            default="auto",
            help="folder: top train/, val/, test/ folders; list: --split-file; fraction: --test-fraction of each "
            "folder's files; auto: list with --split-file, fraction with --test-fraction, else folder when there "
            "is a train/ folder, else fraction.",
        ),
        option(
            "--split-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Lines 'relative/path<TAB>split' (paths relative to --source); unlisted files are left out.",
        ),
        option(
            "--test-fraction",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            help="Share of each folder's files that goes to test/ (split rule fraction) [default: 0.2].",
        ),
        option(
            "--seed", type=int, default=0, help="Seed of the fraction split (images: also of the --sparsity masks)."
        ),
        OVERWRITE,
    )


def _locate(dataset: str, source: Path | None) -> Path:
    from sparsenet.sources import locate

    return locate(dataset, source)


def _convert(name: str, source: Path, out: Path, **settings: Any) -> None:
    """Run the converter registered as ``name`` and print what it wrote."""
    from sparsenet.converters import get_converter

    result = get_converter(name).convert(source, out, progress=True, **settings)
    samples = ", ".join(f"{n} {split}" for split, n in result["samples"].items())
    click.echo(f"wrote {samples} samples to {result['out_dir']}")
    for note in result.get("skipped", []):
        click.echo(f"skipped {note}")
    for kept in result.get("kept", []):
        click.echo(f"kept {kept} (not written by sparsenet)")


@preprocess.command(context_settings=CONTEXT, short_help="Assamese handwriting strokes -> stroke-site shards.")
@SOURCE
@_out("data/assamese")
@_stroke_options("assamese", "character")
@option("--train-writers", type=WriterRange(), default="1-36", help="Writers whose samples form the training split.")
@option("--test-writers", type=WriterRange(), default="37-45", help="Writers whose samples form the test split.")
@OVERWRITE
@reports_errors
def assamese(source, out, **settings) -> None:
    """Online Handwritten Assamese Characters (183 classes, 45 writers) -> stroke sites."""
    _convert("assamese", _locate("assamese", source), out, **settings)


@preprocess.command(context_settings=CONTEXT, short_help="MNIST digits in a larger field -> pixel-site shards.")
@SOURCE
@_out("data/mnist")
@option(
    "--field", type=click.IntRange(min=28), default=96, help="Side of the square grid each 28x28 digit is centred in."
)
@OVERWRITE
@reports_errors
def mnist(source, out, **settings) -> None:
    """MNIST digits -> sites at the non-zero pixels, feature value/255 (exact)."""
    _convert("mnist", _locate("mnist", source), out, **settings)


@preprocess.command(context_settings=CONTEXT, short_help="MNIST or Caltech-101 with random validity masks.")
@option("--dataset", type=_converter_choice("masked", "dataset"), required=True, help="Images to mask.")
@option(
    "--sparsity",
    type=click.FloatRange(0, 1, max_open=True),
    required=True,
    help="Fraction of pixels dropped from every image, in [0, 1).",
)
@option("--seed", type=int, default=0, help="Seed of the masks (and of the Caltech-101 split).")
@option(
    "--size", type=POSITIVE, default=64, help="Caltech-101 only: images are centre-cropped and resized to SIZE x SIZE."
)
@SOURCE
@option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder [default: data/masked-<dataset>-<sparsity>].",
)
@OVERWRITE
@reports_errors
def masked(dataset, sparsity, source, out, **settings) -> None:
    """Images with a random validity mask -> sites at the valid pixels (zeros included)."""
    out = out or Path(f"data/masked-{dataset}-{sparsity:g}")
    _convert("masked", _locate(dataset, source), out, dataset=dataset, sparsity=sparsity, **settings)


@preprocess.command(context_settings=CONTEXT, short_help="A folder or archive of InkML files -> stroke-site shards.")
@_corpus_options("inkml", "InkML files")
@_stroke_options("inkml", "symbol")
@reports_errors
def inkml(source, out, **settings) -> None:
    """InkML files (W3C digital ink: CROHME, most pen datasets), one symbol per file or per truth-annotated
    traceGroup -> stroke sites, as the Assamese converter makes them."""
    _convert("inkml", source, out, **settings)


@preprocess.command(context_settings=CONTEXT, short_help="A folder of class subfolders of images -> pixel-site shards.")
@_corpus_options("images", "image folder (class subfolders of PNG/JPEG)")
@option(
    "--channels",
    type=_converter_choice("images", "channels"),
    default="grey",
    help="Features per site: one grey level or red, green, blue.",
)
@option(
    "--background",
    default="auto",
    help="Background level 0..255 (or R,G,B); auto = per image, the median of its border pixels.",
)
@option(
    "--threshold",
    type=click.FloatRange(min=0),
    default=0,
    help="Sites differ from the background by more than this (0..255) in some channel; raise it for JPEG noise.",
)
@option(
    "--sparsity",
    type=click.FloatRange(0, 1, max_open=True),
    help="Instead of background sites: every pixel, less this random fraction (as `preprocess masked`).",
)
@option(
    "--size",
    type=POSITIVE,
    help="Centre-crop each image to a square and resize it to SIZE x SIZE (bilinear) [default: keep; same sizes].",
)
@reports_errors
def images(source, out, **settings) -> None:
    """A folder of class subfolders of PNG/JPEG images (torchvision ImageFolder) -> pixel sites."""
    _convert("images", source, out, **settings)
