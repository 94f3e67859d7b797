"""A folder of class subfolders of PNG/JPEG images (torchvision's ImageFolder layout) -> pixel-site shards.

Layout: ``<class>/<any/depth>/<image>.png|.jpg|.jpeg`` under the source (a folder or an archive);
the class is the top folder, as torchvision's ``ImageFolder`` (below the split folder when
splitting by folder: ``train/<class>/...``, ``test/<class>/...``). Other files are ignored.
Class names are the sorted folder names; label ``k`` is class ``k``. Splits: :mod:`preprocess.splits`.

Pixels: decoded with Pillow to RGB, or to grey (``channels="grey"``, Pillow's ``L``:
``0.299 R + 0.587 G + 0.114 B``). Without ``size`` every image must have the same size,
which becomes the shards' field; with ``size`` each is centre-cropped to a square (its
shorter side) and resized to ``size`` x ``size``, bilinear (:func:`preprocess.caltech101.decode`).

Sites and features, one of two rules:

- background (default): the pixels that differ from the background by more than
  ``threshold`` (0..255) in some channel; the background is ``"auto"`` (per image and channel,
  the median of the border pixels) or given (one value, or one per channel). Features are
  ``(value - background) / 255`` per channel, in [-1, 1], so every site carries a non-zero
  feature, and ink darker than its paper is negative (on a black background they are
  ``value / 255``, as the ``mnist`` converter's);
- ``sparsity`` S in [0, 1): every pixel, less a random ``round(S * H * W)`` of them (an exact
  count per image, as the ``masked`` converter; the mask of an image is seeded by ``seed`` and
  the file's path in the source). Features are ``(value / 255 - mean) / std`` per channel,
  with the mean and standard deviation of the training split's pixels (``params``).

Unreadable or fake image files, a blank image (no site), and sizes that differ without
``size`` are :class:`RawDataError` naming the file.

Example::

    sparsenet preprocess images --source photos/ --out data/photos --size 64 --channels rgb
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocess.caltech101 import decode
from preprocess.images import SampleList, add_pixel_samples
from preprocess.masked import validity_masks
from preprocess.splits import SPLIT_MODES, Corpus, Item, read_raw, write_items
from sparsenet.converters import Converter
from sparsenet.errors import ConfigError, RawDataError
from sparsenet.shards import Sample, ShardMeta
from sparsenet.sources import iter_members

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CHANNELS = {"grey": ("grey",), "rgb": ("red", "green", "blue")}


@dataclass(frozen=True)
class SiteRule:
    """How one image [H, W, C] becomes sites: see the module docstring (``background=None``: auto)."""

    channels: str = "grey"
    background: tuple[float, ...] | None = None
    threshold: float = 0.0
    sparsity: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.channels not in CHANNELS:
            raise ConfigError(f"unknown channels {self.channels!r}; expected one of {', '.join(CHANNELS)}")
        if self.background is not None and len(self.background) not in (1, len(CHANNELS[self.channels])):
            raise ConfigError(f"background {self.background}: give one value or one per {self.channels} channel")
        if self.threshold < 0:
            raise ConfigError(f"threshold must be >= 0 (a grey-level difference), got {self.threshold}")
        if self.sparsity is not None and not 0 <= self.sparsity < 1:
            raise ConfigError(f"sparsity must be in [0, 1) (the fraction of pixels dropped), got {self.sparsity}")

    def pixels(self, data: bytes, name: str, size: int | None) -> np.ndarray:
        """Image bytes -> uint8 [H, W, C] in this rule's channels."""
        rgb = decode(data, size, name)
        if self.channels == "rgb":
            return rgb
        from PIL import Image

        return np.asarray(Image.fromarray(rgb).convert("L"))[..., None]

    def sites(self, pixels: np.ndarray, name: str, key: str) -> Sample:
        """The sites of one image (``key`` seeds its mask); features before the split's normalisation."""
        values = pixels.astype(np.float32)
        if self.sparsity is not None:
            rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
            valid = validity_masks(1, pixels.shape[:2], self.sparsity, rng)[0]
            values /= 255
        else:
            background = np.float32(self.background) if self.background is not None else border_median(pixels)
            values -= background
            valid = (np.abs(values) > self.threshold).any(axis=2)
            values /= 255
            if not valid.any():
                raise RawDataError(
                    f"{name}: blank: no pixel differs from the background {background.tolist()} by more than "
                    f"{self.threshold:g}; lower --threshold or remove the image"
                )
        collector = SampleList()
        add_pixel_samples(collector, valid[None], values[None], [-1], [name])
        return collector.samples[0]


def border_median(pixels: np.ndarray) -> np.ndarray:
    """Per channel, the median of the border pixels (each once) of ``pixels`` [H, W, C]: float32 [C]."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return np.median(border, axis=0).astype(np.float32)


def _background(value: str | float | Sequence[float] | None) -> tuple[float, ...] | None:
    if value is None or value == "auto":
        return None
    try:
        parts = value.split(",") if isinstance(value, str) else np.atleast_1d(value).tolist()
        levels = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"background must be 'auto', a grey level or R,G,B levels (0..255), not {value!r}") from None
    if not all(0 <= v <= 255 for v in levels):
        raise ConfigError(f"background levels must be in 0..255, got {value!r}")
    return levels


def _label(inside: str, where: str) -> str:
    """The class of an image: the top folder of its path ``inside`` its split."""
    if "/" not in inside:
        raise RawDataError(f"{where}: not in a class folder (expected <class>/<image>)")
    return inside.split("/", 1)[0]


def convert(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    channels: str = "grey",
    background: str | float | Sequence[float] = "auto",
    threshold: float = 0.0,
    sparsity: float | None = None,
    size: int | None = None,
    dataset: str = "images",
    overwrite: bool = False,
    progress: bool = False,
    **split_rule: Any,
) -> dict:
    """Convert the image folder at ``source`` into ``out_dir/<split>/`` shards (see the module docstring).

    ``split_rule``: ``split`` (a rule of :data:`preprocess.splits.SPLIT_MODES`), ``split_file`` and
    ``test_fraction``, as :meth:`preprocess.splits.Corpus.of` takes them; ``seed`` seeds the fraction
    split and the ``sparsity`` masks; ``dataset``: the shards' dataset name.
    Every image is decoded before anything is written. Returns a summary: samples per split,
    classes, the split rule used, notes on files left out.
    """
    from tqdm import tqdm

    rule = SiteRule(channels, _background(background), threshold, sparsity, seed)
    if size is not None and size < 1:
        raise ConfigError(f"size must be a positive number of pixels, got {size}")
    # member -> (sites, per channel [sum, sum of squares] of value/255)
    found: dict[str, tuple[Sample, np.ndarray]] = {}
    shape = None
    members = iter_members(source, lambda n: n.lower().endswith(IMAGE_SUFFIXES))
    for member, data in tqdm(members, desc="images", unit=" images", disable=not progress):
        where = str(Path(source) / member)
        pixels = rule.pixels(data, where, size)
        if shape is None:
            shape = pixels.shape[:2]
        elif pixels.shape[:2] != shape:
            raise RawDataError(
                f"{where}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but other images are {shape[1]}x{shape[0]}; "
                "pass --size to crop and resize them all"
            )
        scaled = pixels.reshape(-1, pixels.shape[2]) / 255.0
        found[member] = rule.sites(pixels, where, member), np.stack([scaled.sum(0), (scaled**2).sum(0)])
    if not found:
        raise RawDataError(f"{source}: no {'/'.join(IMAGE_SUFFIXES)} images found")
    corpus = Corpus.of(source, found, seed=seed, **split_rule)
    labels = {m: _label(corpus.inside(m), corpus.where(m)) for m in found}
    splits, notes = corpus.assign()
    params = {
        "channels": channels,
        "size": size,
        "image_shape": list(shape),
        "resize": "centre square crop, bilinear resize" if size else "none",
    } | corpus.params
    if sparsity is None:
        params |= {"background": "auto" if rule.background is None else list(rule.background), "threshold": threshold}
        params["feature"] = "(value - background) / 255"
    else:
        train = [stats for member, (_, stats) in found.items() if splits.get(corpus.names[member]) == "train"]
        if not train:
            raise RawDataError(f"{source}: no training images to take the feature mean and deviation from")
        count, (total, squares) = len(train) * shape[0] * shape[1], sum(train)
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0))
        std[std == 0] = 1  # a constant channel: centre it only
        params |= {"sparsity": sparsity, "mask": "exact count, uniform", "mean": mean.tolist(), "std": std.tolist()}
        params["feature"] = "(value / 255 - mean) / std"
    items = [
        Item(corpus.names[m], 0, corpus.names[m], labels[m], s.coords, _normal(s.features, params))
        for m, (s, _) in found.items()
    ]
    named = {"source": str(source), "converter": "images", "dataset": dataset, "params": params}
    meta = ShardMeta(tuple(shape), 0, CHANNELS[channels], **named)  # classes: from the items (write_items)
    return write_items(out_dir, meta, items, splits, overwrite=overwrite, notes=notes)


def _normal(features: np.ndarray, params: dict) -> np.ndarray:
    """Sparsity rule: the training split's normalisation; background rule: unchanged."""
    if "mean" not in params:
        return features
    return ((features - np.float32(params["mean"])) / np.float32(params["std"])).astype(np.float32)


def read_input(path: Path, params: dict) -> Sample:
    """One image file as a sample of shards written with ``params`` (``sparsenet predict``).

    Under the sparsity rule the mask is seeded by the shards' seed and the file's name.
    """
    data = read_raw(path)
    background = _background(params.get("background"))
    rule = SiteRule(
        params["channels"], background, params.get("threshold", 0.0), params.get("sparsity"), params["seed"]
    )
    pixels = rule.pixels(data, str(path), params["size"])
    height, width = params["image_shape"]
    if pixels.shape[:2] != (height, width):
        raise RawDataError(
            f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but the shards' images are {width}x{height}"
        )
    sample = rule.sites(pixels, str(path), Path(path).name)
    return Sample(sample.coords, _normal(sample.features, params), -1, str(path))


SUMMARY = "a folder of class subfolders of PNG/JPEG images -> pixel sites"
CONVERTER = Converter("images", convert, read_input, SUMMARY, {"channels": tuple(CHANNELS), "split": SPLIT_MODES})
