"""MNIST (LeCun's four IDX files) -> sparsenet shards.

Each 28x28 digit is placed in the centre of a ``field`` x ``field`` grid (default 96, offset
``params["offset"]`` = ((field-28)//2, (field-28)//2)); sites are the pixels with value > 0,
features ``value / 255`` (one channel). The conversion is exact: ``round(feature * 255)`` at
``site - offset`` rebuilds every original image (zeros elsewhere). Images and labels must be
IDX files of unsigned bytes (type 0x08), as LeCun's are; a blank image (no site) is an error.

Example::

    sparsenet preprocess mnist --source ../shared/data/mnist --out data/mnist
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from preprocess.images import SampleList, add_pixel_samples
from sparsenet.converters import Converter
from sparsenet.datasets import DatasetWriter
from sparsenet.shards import Sample, ShardMeta
from sparsenet.sources import RawDataError, iter_members

SPLITS = {"train": "train", "test": "t10k"}  # split -> file name prefix
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
UNSIGNED_BYTE = 0x08  # the element type of every MNIST file
CHUNK = 8192


def read_idx(data: bytes, name: str, *, ndim: int | None = None, type_code: int | None = None) -> np.ndarray:
    """Decode one IDX file (gzipped or raw) into an array; errors name ``name`` and the problem.

    Checks the magic number, the element type (``type_code`` if given, e.g. 0x08 unsigned
    bytes), the number of dimensions (``ndim`` if given) and that the payload length is exactly
    the product of the dimensions.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise RawDataError(f"{name}: corrupt or truncated gzip data ({err})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise RawDataError(f"{name}: not an IDX file (magic {data[:4].hex() or 'missing'})")
    dtype, dims_count = np.dtype(IDX_DTYPES[data[2]]), data[3]
    if type_code is not None and data[2] != type_code:
        raise RawDataError(
            f"{name}: IDX elements of type 0x{data[2]:02X} ({dtype.name}); expected 0x{type_code:02X} "
            f"({np.dtype(IDX_DTYPES[type_code]).name}), as in the official MNIST files"
        )
    if ndim is not None and dims_count != ndim:
        raise RawDataError(f"{name}: IDX file with {dims_count} dimensions, expected {ndim}")
    header = 4 + 4 * dims_count
    if len(data) < header:
        raise RawDataError(f"{name}: truncated in the header ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", dims_count, 4))
    expected = int(np.prod(dims)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise RawDataError(f"{name}: {what}: dimensions {list(dims)} need {expected} data bytes, found {found}")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _candidates(prefix: str, kind: str, ndim: int) -> set[str]:
    stems = {f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"}
    return stems | {s + ".gz" for s in stems}


def load(source: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the four MNIST files under ``source``: split -> (images uint8 [N, 28, 28], labels uint8 [N])."""
    wanted = {}
    for split, prefix in SPLITS.items():
        for kind, ndim in (("images", 3), ("labels", 1)):
            for candidate in _candidates(prefix, kind, ndim):
                wanted[candidate] = (split, kind, ndim)
    found: dict[tuple[str, str], np.ndarray] = {}
    names: dict[tuple[str, str], Path] = {}
    for name, data in iter_members(source, lambda n: n.rsplit("/", 1)[-1] in wanted):
        split, kind, ndim = wanted[name.rsplit("/", 1)[-1]]
        if (split, kind) not in found:
            names[split, kind] = Path(source) / name
            found[split, kind] = read_idx(data, str(names[split, kind]), ndim=ndim, type_code=UNSIGNED_BYTE)
    out = {}
    for split, prefix in SPLITS.items():
        for kind, ndim in (("images", 3), ("labels", 1)):
            if (split, kind) not in found:
                raise RawDataError(f"{source}: no {prefix}-{kind}-idx{ndim}-ubyte[.gz] file (MNIST {split} {kind})")
        images, labels = found[split, "images"], found[split, "labels"]
        if len(images) == 0 or 0 in images.shape[1:]:
            raise RawDataError(f"{names[split, 'images']}: no images (dimensions {list(images.shape)})")
        if images.shape[1:] != found["train", "images"].shape[1:]:
            raise RawDataError(
                f"{names[split, 'images']}: images of {list(images.shape[1:])} pixels, but the train images "
                f"are {list(found['train', 'images'].shape[1:])}"
            )
        if len(images) != len(labels):
            raise RawDataError(f"{source}: {split} has {len(images)} images but {len(labels)} labels")
        if labels.max(initial=0) > 9:
            raise RawDataError(f"{source}: {split} labels go up to {labels.max()}, expected digits 0..9")
        out[split] = (images, labels)
    return out


def convert(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    field: int = 96,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Convert MNIST at ``source`` into ``out_dir/train`` (60,000) and ``out_dir/test`` (10,000).

    Both splits replace ``out_dir`` together (:class:`~sparsenet.datasets.DatasetWriter`;
    ``overwrite`` keeps files sparsenet did not write there).
    """
    from tqdm import tqdm

    data = load(source)
    h, w = data["train"][0].shape[1:]
    if field < max(h, w):
        raise ValueError(f"field {field} is smaller than the {h}x{w} digits")
    for split, (images, _) in data.items():
        blank = np.flatnonzero(~images.reshape(len(images), h * w).any(axis=1))
        if len(blank):
            raise RawDataError(
                f"{source}: {SPLITS[split]}-images image {blank[0]} is blank (every pixel 0; "
                f"{len(blank)} such), so it has no site: the file is damaged or not MNIST"
            )
    offset = ((field - h) // 2, (field - w) // 2)
    meta = ShardMeta(
        spatial_shape=(field, field),
        num_classes=10,
        feature_names=("intensity",),
        class_names=tuple(str(d) for d in range(10)),
        source=str(source),
        converter="mnist",
        dataset="mnist",
        params={"field": field, "offset": list(offset), "image_shape": [h, w], "feature": "value / 255"},
    )
    with DatasetWriter(out_dir, meta, overwrite=overwrite) as dataset:
        for split, (images, labels) in data.items():
            writer = dataset.split(split)
            with tqdm(total=len(images), desc=f"mnist {split}", unit=" digits", disable=not progress) as bar:
                for lo in range(0, len(images), CHUNK):
                    chunk = images[lo : lo + CHUNK]
                    ids = [f"{split}/{i}" for i in range(lo, lo + len(chunk))]
                    add_pixel_samples(writer, chunk > 0, chunk[..., None] / 255.0, labels[lo : lo + CHUNK], ids, offset)
                    bar.update(len(chunk))
    return {
        "out_dir": str(out_dir),
        "samples": dataset.samples,
        "field": field,
        "run_id": dataset.run_id,
        "kept": dataset.kept,
    }


def read_input(path: Path, params: dict) -> Sample:
    """One image file (PNG, JPEG, ...) as a sample on the field of shards written with ``params``:
    grey, resized to the stored image shape, inverted when the background is light (MNIST digits
    are light on black), then sites as :func:`convert` makes them (``sparsenet predict``)."""
    from PIL import Image, UnidentifiedImageError

    height, width = params["image_shape"]
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L").resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    except UnidentifiedImageError:
        raise RawDataError(f"{path}: not an image file that Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:  # truncated or damaged image data
        raise RawDataError(f"{path}: cannot read the image ({err})") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:  # dark ink on light paper -> MNIST's light digit on black
        grey = 255 - grey
    if not grey.any():
        raise RawDataError(f"{path}: the image is blank (no pixel above 0 after conversion)")
    collector = SampleList()
    add_pixel_samples(
        collector, grey[None] > 0, grey[None, :, :, None] / 255, [-1], [str(path)], tuple(params["offset"])
    )
    return collector.samples[0]


CONVERTER = Converter("mnist", convert, read_input, "MNIST digits centred in a larger field -> pixel sites")
