"""The registry, and every registered network on a tiny random batch in train and eval mode."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from sparsenet import models
from sparsenet.models import _registry


def batch_for(model: torch.nn.Module, sample) -> tuple:
    """Positional inputs for ``model`` from a random sparse sample of its field."""
    height, width = model.input_size()
    assert height == width
    s = sample(2, model.in_channels, height, 0.05, dtype=torch.float32)
    return {"sparse": (s.sparse,), "dense": (s.dense,), "dense-mask": (s.dense, s.mask)}[model.input_kind]


# Smaller fields where a builder allows them (the Caltech nets' 224x224 costs seconds on spconv).
SMALL = {"image_size": 32}


@pytest.mark.parametrize("name", models.list_models())
def test_every_model_trains_and_evaluates_a_tiny_batch(sample, name: str) -> None:
    torch.manual_seed(0)
    accepted = inspect.signature(_registry._BUILDERS[name]).parameters
    model = models.build(name, **{key: value for key, value in SMALL.items() if key in accepted})
    assert model.input_kind in ("sparse", "dense", "dense-mask")
    inputs = batch_for(model, sample)
    labels = torch.tensor([0, 1])
    logits = model.train()(*inputs)
    assert logits.shape == (2, model.num_classes)
    F.cross_entropy(logits, labels).backward()
    trained = [p for p in model.parameters() if p.grad is not None]
    assert trained and all(torch.isfinite(p.grad).all() for p in trained)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(*inputs)).all()


@pytest.mark.parametrize("name", models.list_models())
def test_builders_are_keyword_only_documented_and_take_the_trainer_arguments(name: str) -> None:
    builder = _registry._BUILDERS[name]
    parameters = inspect.signature(builder).parameters.values()
    assert models.parameters(name) == tuple(p.name for p in parameters)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.annotation is not p.empty for p in parameters)
    assert {"in_channels", "num_classes"} <= {p.name for p in parameters}
    assert "arXiv:1409.6070" in builder.__doc__ or "doi:10.1109/3DV.2017.00012" in builder.__doc__


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'deepnet'.*deepcnet-dense"):
        models.build("deepnet")
    with pytest.raises(ValueError, match="unknown model 'deepnet'.*deepcnet-dense"):
        models.parameters("deepnet")


def test_unknown_argument_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="model 'vgg'.*depth.*in_channels, num_classes"):
        models.build("vgg", depth=3)


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(ValueError, match="'deepcnet' is already registered"):
        models.register_model("deepcnet")(models.deepcnet.deepcnet)
