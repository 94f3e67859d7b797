"""Caltech-101 images (``101_ObjectCategories/<category>/*.jpg``) -> small RGB arrays.

The 101 object categories are kept, ``BACKGROUND_Google`` is excluded (8,677 images, as
torchvision). Class ids follow the sorted category names (case-sensitive, so ``Faces``
comes before ``accordion``). Each image is centre-cropped to a square (its shorter side)
and resized to ``size`` x ``size`` (bilinear); JPEG ``draft`` mode decodes straight at a
reduced scale (>= ``size``), which makes reading all images take seconds, not minutes.
Grayscale and CMYK JPEGs are converted to RGB.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np

from sparsenet.sources import RawDataError, iter_members

IMAGE_PATTERN = re.compile(r"(?:^|/)101_ObjectCategories/([^/]+)/([^/]+\.jpe?g)$", re.IGNORECASE)
EXCLUDED = frozenset({"BACKGROUND_Google"})


def decode(data: bytes, size: int | None, name: str) -> np.ndarray:
    """Image bytes -> uint8 [size, size, 3]: centre square crop, bilinear resize, RGB.

    ``size=None`` keeps the image as it is: uint8 [H, W, 3].
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if size is None:
                return np.asarray(image.convert("RGB"))
            image.draft("RGB", (size, size))
            image = image.convert("RGB")
            w, h = image.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
        raise RawDataError(f"{name}: cannot decode the image ({err})") from None


def load(
    source: str | os.PathLike, *, size: int = 64, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[str]]:
    """Read every category image under ``source`` (folder or archive).

    Returns (images uint8 [N, size, size, 3], labels int64 [N], class names, sample ids
    ``"<category>/<file>"``), sorted by sample id.
    """
    from tqdm import tqdm

    found = {}
    members = iter_members(source, lambda n: IMAGE_PATTERN.search(n) is not None)
    for name, data in tqdm(members, desc="decode", unit=" images", disable=not progress):
        category, file = IMAGE_PATTERN.search(name).groups()
        if category not in EXCLUDED:
            found[f"{category}/{file}"] = decode(data, size, name)
    if not found:
        raise RawDataError(f"{source}: no 101_ObjectCategories/<category>/*.jpg images found")
    ids = sorted(found)
    class_names = tuple(sorted({i.split("/", 1)[0] for i in ids}))
    index = {c: k for k, c in enumerate(class_names)}
    labels = np.array([index[i.split("/", 1)[0]] for i in ids], dtype=np.int64)
    return np.stack([found[i] for i in ids]), labels, class_names, ids


def split_indices(labels: np.ndarray, fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Stratified split: per class, a seeded shuffle cut by ``fractions`` (split -> share, summing to 1).

    The first split takes the remainder after rounding the others. Indices come sorted.
    """
    rng = np.random.default_rng([seed, 0])
    names = list(fractions)
    out: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        cuts = [round(fractions[n] * len(members)) for n in names[1:]]
        pieces = np.split(members, np.cumsum([len(members) - sum(cuts)] + cuts[:-1]))
        for n, piece in zip(names, pieces):
            out[n].append(piece)
    return {n: np.sort(np.concatenate(parts)) for n, parts in out.items()}
