"""sparsenet.pipeline: devices, networks for data, samples placed in the network's field, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsenet.batch import collate
from sparsenet.config import TrainConfig
from sparsenet.errors import ConfigError
from sparsenet.pipeline import build_network, dataset, in_batches, inputs, loader, resolve_device, tally
from sparsenet.shards import ShardMeta, ShardReader, ShardWriter


def _data(shape: tuple[int, int], classes: int = 3, features: tuple[str, ...] = ("v",)) -> dict:
    return {"spatial_shape": list(shape), "num_classes": classes, "feature_names": list(features)}


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize(("n", "size", "expected"), [(5, 2, [[0, 1], [2, 3], [4]]), (4, 4, [[0, 1, 2, 3]]), (0, 3, [])])
def test_in_batches_cuts_in_order(n: int, size: int, expected: list[list[int]]) -> None:
    assert in_batches(range(n), size) == expected


def test_networks_take_the_shards_classes_features_and_square_field() -> None:
    config = TrainConfig(data="d", out="o", model="sinet-caltech")
    network, field = build_network(config, _data((48, 48), classes=7, features=("r", "g", "b")))
    assert field == (48, 48)  # image_size taken from the square shards
    x = torch.zeros(2, 3, 48, 48)
    assert network(x, torch.ones(2, 1, 48, 48)).shape == (2, 7)
    config = config.replace(model_kwargs={"image_size": 32})
    assert build_network(config, _data((48, 48)))[1] == (32, 32)  # an explicit size wins
    network, field = build_network(TrainConfig(data="d", out="o", model="vgg-plain"), _data((20, 20), 5))
    assert field == (63, 63) and network.input_kind == "sparse"


def test_samples_are_centred_in_the_network_field_and_batched(tmp_path) -> None:
    meta = ShardMeta(spatial_shape=(4, 6), num_classes=3, feature_names=("v",), dataset="toy")
    with ShardWriter(tmp_path / "train", meta) as writer:
        writer.add(np.array([[0, 0], [3, 5]]), np.array([[1.0], [2.0]]), 2, "a")
        writer.add(np.array([[1, 1]]), np.array([[3.0]]), 0, "b")
    placed = dataset(ShardReader(tmp_path / "train"), (10, 12))
    # (10 - 4) // 2 = 3 rows and (12 - 6) // 2 = 3 columns of margin above and left of the shard field
    assert placed[0].coords.tolist() == [[3, 3], [6, 8]] and placed[1].coords.tolist() == [[4, 4]]
    batches = list(loader(placed, [[1, 0]]))
    assert len(batches) == 1
    batch = batches[0]
    assert batch.coords.tolist() == [[0, 4, 4], [1, 3, 3], [1, 6, 8]] and batch.labels.tolist() == [0, 2]
    with pytest.raises(ConfigError, match="samples are on a 4x6 field but the network takes 3x12"):
        dataset(ShardReader(tmp_path / "train"), (3, 12))


def test_inputs_follow_the_network_kind_and_tally_counts_hits() -> None:
    class Fixed(torch.nn.Module):
        input_kind = "dense"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # class 1 for every sample whose first site's value is positive, class 0 otherwise
            positive = x.flatten(1).sum(1) > 0
            return torch.stack([(~positive).float(), positive.float()], 1) * 10

    samples = [
        collate_sample(np.array([[0, 0]]), 1.0, 1),
        collate_sample(np.array([[1, 1]]), -1.0, 1),
        collate_sample(np.array([[0, 1]]), 2.0, 0),
    ]
    batch = collate(samples, (2, 2))
    (x,) = inputs(Fixed(), batch)
    assert x.shape == (3, 1, 2, 2) and x[0, 0, 0, 0] == 1.0 and x[1, 0, 1, 1] == -1.0
    totals = tally(Fixed(), [batch], torch.device("cpu"), 2)
    assert totals.count == 3 and totals.top1_error == pytest.approx(2 / 3)


def collate_sample(coords: np.ndarray, value: float, label: int):
    from sparsenet.shards import Sample

    return Sample(coords.astype(np.int32), np.full((len(coords), 1), value, np.float32), label)
