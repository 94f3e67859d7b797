"""Shared fixtures: the real raw data (when present), tiny synthetic raw datasets, shards and
checkpoints; and what the markers mean:

* ``realdata``: needs the real raw datasets. Every test that takes the ``raw_data`` fixture gets
  the marker here, so ``-m "not realdata"`` deselects exactly those; they skip without the data.
* ``cuda``: needs a CUDA device; skipped without one.
* ``slow``: starts training processes (their imports alone take seconds) or takes more than about
  5 seconds on the 2 shared cores (``--durations`` shows them); ``-m "not slow"`` leaves the quick ones.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from sparsenet.bench.synthetic import idx_bytes as _idx
from sparsenet.shards import ShardMeta, ShardWriter

REPO = Path(__file__).resolve().parents[1]


def raw_data_root() -> Path:
    """``$SPARSENET_RAW``, else ``../shared/data`` beside the repository (it may not exist)."""
    return Path(os.environ.get("SPARSENET_RAW") or REPO.parent / "shared" / "data")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the raw data ``realdata``; skip ``realdata`` tests without the data
    and ``cuda`` tests without a GPU."""
    import torch

    no_data = pytest.mark.skip(reason=f"real data not found at {raw_data_root()} (set SPARSENET_RAW)")
    no_gpu = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "raw_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.realdata)
        if item.get_closest_marker("realdata") and not raw_data_root().is_dir():
            item.add_marker(no_data)
        if item.get_closest_marker("cuda") and not torch.cuda.is_available():
            item.add_marker(no_gpu)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return REPO


@pytest.fixture(scope="session")
def raw_data() -> Path:
    """The real raw data folder (:func:`raw_data_root`); skips the test when absent."""
    root = raw_data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set SPARSENET_RAW)")
    return root


def _stroke_text(
    strokes: Sequence[Sequence[tuple[float, float]]], name: str = "A", *, stroke_count: int | None = None
) -> str:
    """A stroke file in the Assamese release's format (CRLF, PEN_DOWN/PEN_UP around each stroke)."""
    lines = [
        f"CHARACTER_NAME: {name}",
        f"STROKE_COUNT: {len(strokes) if stroke_count is None else stroke_count}",
        "  X           Y   STYLUS_STATE STROKE",
    ]
    for k, stroke in enumerate(strokes, 1):
        lines.append("PEN_DOWN")
        lines += [f"{x:<12}{y:<12}1        {k}" for x, y in stroke]
        lines.append("PEN_UP                  0")
    lines.append(f"END_CHARACTER: {name}")
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture
def stroke_text() -> Callable[..., str]:
    """``stroke_text(strokes, name="A", stroke_count=None) -> str``: write a synthetic stroke file."""
    return _stroke_text


@pytest.fixture
def assamese_tree(tmp_path: Path) -> Path:
    """Raw Assamese layout: writers 1-4, classes 1-3 (class c is a c-armed star), plus a misplaced copy."""
    root = tmp_path / "Online Handwritten Assamese Characters Dataset"
    rng = np.random.default_rng(0)
    for writer in range(1, 5):
        for c in range(1, 4):
            angles = np.arange(c) * 2 * np.pi / c + rng.uniform(0, 0.3)
            strokes = [[(1000, 1000), (int(1000 + 400 * np.cos(a)), int(1000 + 400 * np.sin(a)))] for a in angles]
            strokes.append([(1000, 1500), (1010, 1480)])
            folder = root / f"W{writer}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{c}.{writer}.txt").write_text(
                _stroke_text(strokes, "EE" if (writer, c) == (2, 3) else f"N{c}"), newline=""
            )
    (root / "W2" / "1.1.txt").write_bytes((root / "W1" / "1.1.txt").read_bytes())
    return root


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """Four gzipped IDX files: 12 train and 6 test random 'digits' (about half the pixels zero)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for prefix, count in (("train", 12), ("t10k", 6)):
        images = (rng.integers(0, 256, (count, 28, 28)) * (rng.random((count, 28, 28)) < 0.5)).astype(np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    return folder


@pytest.fixture
def idx_bytes() -> Callable[[np.ndarray], bytes]:
    """``idx_bytes(uint8 array) -> bytes``: an uncompressed IDX file."""
    return _idx


@pytest.fixture
def caltech_tree(tmp_path: Path) -> Path:
    """``101_ObjectCategories`` with 3 categories x 10 JPEGs (one grayscale) and a BACKGROUND_Google folder."""
    from PIL import Image

    root = tmp_path / "caltech" / "101_ObjectCategories"
    rng = np.random.default_rng(2)
    for category in ("BACKGROUND_Google", "Faces", "accordion", "panda"):
        (root / category).mkdir(parents=True)
        for i in range(1, 3 if category == "BACKGROUND_Google" else 11):
            h, w = rng.integers(40, 120, 2)
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).convert("L") if (category, i) == ("panda", 1) else Image.fromarray(pixels)
            image.save(root / category / f"image_{i:04d}.jpg", quality=90)
    return root.parent


@pytest.fixture
def make_split(tmp_path: Path) -> Callable[..., Path]:
    """``make_split(name, samples=7, per_shard=3) -> folder``: a small split written by ShardWriter."""

    def make(name: str = "split", samples: int = 7, per_shard: int = 3) -> Path:
        meta = ShardMeta((8, 6), 3, ("a", "b"), ("zero", "one", "two"), "synthetic", "tests.conftest", {"k": 1})
        rng = np.random.default_rng(3)
        with ShardWriter(tmp_path / name, meta, samples_per_shard=per_shard) as writer:
            for i in range(samples):
                sites = rng.choice(48, size=1 + i % 5, replace=False)
                coords = np.stack([sites // 6, sites % 6], axis=1)
                writer.add(coords, rng.normal(size=(len(sites), 2)), i % 3, f"s{i}")
        return tmp_path / name

    return make


@pytest.fixture(scope="session")
def assert_digests() -> Callable[[Path, str], None]:
    """``assert_digests(out_dir, name)``: every shard of ``out_dir`` has the ``content_sha256`` that the
    converters had written for the real dataset ``name`` before they moved to DatasetWriter
    (``fixtures/converter_digests.json``, keyed ``<name>/<split>/<file>``): the arrays did not change."""
    import json

    import h5py

    expected = json.loads((REPO / "tests" / "fixtures" / "converter_digests.json").read_text())

    def check(out_dir: Path, name: str) -> None:
        want = {key.split("/", 1)[1]: digest for key, digest in expected.items() if key.split("/")[0] == name}
        found = {}
        for path in sorted(Path(out_dir).glob("*/shard-*.h5")):
            with h5py.File(path, "r") as f:
                found[f"{path.parent.name}/{path.name}"] = f.attrs["content_sha256"]
        assert want and found == want

    return check


def _untrained_checkpoint(data: Path, path: Path, *, scale: float = 1.0, seed: int = 0, **values) -> Path:
    """A checkpoint (epoch 0) of the network ``values`` configure, freshly initialised from ``seed``, for the
    shards in ``data/train``; the weights of its last layer are multiplied by ``scale`` (confident outputs)."""
    import math

    import torch

    from sparsenet.checkpoint import Checkpoint, data_info, versions
    from sparsenet.config import TrainConfig
    from sparsenet.pipeline import build_network
    from sparsenet.shards import ShardReader

    config = TrainConfig(data=str(data), out=str(path.parent), seed=seed, **values)
    info = data_info(ShardReader(data / "train").meta)
    torch.manual_seed(seed)
    network, _ = build_network(config, info)
    state = network.state_dict()
    last = [key for key in state if key.endswith("weight")][-1]
    state[last] = state[last] * scale
    path.parent.mkdir(parents=True, exist_ok=True)
    Checkpoint(path, config, info, 0, state, {}, [], math.inf, versions()).save(path)
    return path


@pytest.fixture(scope="session")
def untrained_checkpoint() -> Callable[..., Path]:
    """``untrained_checkpoint(data, path, scale=1.0, seed=0, **config values) -> path``: an epoch-0 checkpoint."""
    return _untrained_checkpoint
