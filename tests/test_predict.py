"""``predict``: each listed class index carries its own name from the checkpoint, with the probabilities
of that class (softmax), most probable first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import digit_images, write_digit_shards

from sparsenet.predict import predict

NAMES = ["zulu", "alpha", "mike"]  # distinct, and neither in index order nor sorted


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, untrained_checkpoint) -> Path:
    """An untrained DeepCNet(2, 4) on 3 classes named :data:`NAMES`, with confident outputs."""
    root = tmp_path_factory.mktemp("predict")
    data = write_digit_shards(root / "digits", train=6, test=3)
    path = untrained_checkpoint(
        data, root / "run" / "checkpoint.pt", scale=30.0, model="deepcnet", model_kwargs={"l": 2, "k": 4}
    )
    payload = torch.load(path, weights_only=True)
    payload["data"]["class_names"] = NAMES
    torch.save(payload, path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, image in enumerate(digit_images(6, seed=3)[0]):
        paths.append(folder / f"digit{i}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def test_class_indices_carry_their_own_names(checkpoint, images):
    results = predict(checkpoint, images, top=3, device="cpu")
    assert [r["input"] for r in results] == [str(p) for p in images]
    for result in results:
        top = result["top"]
        assert sorted(entry["class"] for entry in top) == [0, 1, 2]
        assert all(entry["name"] == NAMES[entry["class"]] for entry in top)
        probabilities = [entry["probability"] for entry in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5) and min(probabilities) >= 0


def test_top_keeps_the_most_probable(checkpoint, images):
    full = predict(checkpoint, images, top=3, device="cpu")
    one = predict(checkpoint, images, top=1, device="cpu")
    for a, b in zip(full, one):
        assert b["top"] == a["top"][:1]
    assert np.isclose(one[0]["top"][0]["probability"], full[0]["top"][0]["probability"])
