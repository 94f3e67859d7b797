"""sparsenet.config: each TrainConfig field's bad value is refused naming the field, what it must be and the
value (ConfigError, still a ValueError); config files."""

from __future__ import annotations

import json
import math

import pytest

from sparsenet.config import TrainConfig, from_file
from sparsenet.errors import ConfigError

BAD = [
    ("epochs", 0, "at least 1"),
    ("passes_per_epoch", 0, "at least 1"),
    ("passes_per_epoch", 2.0, "at least 1"),
    ("batch_size", 0, "at least 1"),
    ("eval_batch_size", -3, "at least 1"),
    ("lr", 0.0, "positive and finite"),
    ("lr", -0.1, "positive and finite"),
    ("lr_decay", -0.01, "zero or positive, finite"),
    ("momentum", 1.0, "in [0, 1)"),
    ("momentum", -0.1, "in [0, 1)"),
    ("weight_decay", -1e-4, "zero or positive, finite"),
    ("loader_workers", -1, "zero or positive"),
    ("optimizer", "rmsprop", "one of sgd, adam"),
    ("lr_schedule", "step", "one of constant, exp, cosine"),
    ("device", "tpu", "one of auto, cpu, cuda"),
    ("augment", "mirror", "one of none, affine, affine-wide, shift"),
    ("model_kwargs", [1, 2], "a JSON object"),
    ("sync_batchnorm", "yes", "true or false"),
    ("procs", 0, '"auto" or at least 1'),
    ("procs", "many", '"auto" or at least 1'),
    ("procs", 2.0, '"auto" or at least 1'),
]


@pytest.mark.parametrize("name,value,expected", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_bad_value_names_its_field(name, value, expected):
    message = f"config field {name} must be {expected}, got {value!r}"
    with pytest.raises(ValueError) as err:
        TrainConfig(data="d", out="o", model="m", **{name: value})
    assert str(err.value) == message


@pytest.mark.parametrize(
    "name,value",
    [("epochs", 1), ("lr_decay", 0.0), ("momentum", 0.0), ("weight_decay", 0.0), ("loader_workers", 0), ("procs", 1)],
)
def test_the_boundary_values_are_accepted(name, value):
    assert getattr(TrainConfig(data="d", out="o", model="m", **{name: value}), name) == value


def test_unknown_and_missing_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown config key\\(s\\) epoch, lr_rate; valid keys: .*epochs"):
        TrainConfig.from_dict({"data": "d", "out": "o", "model": "m", "epoch": 3, "lr_rate": 1})
    with pytest.raises(ValueError, match="incomplete or mistyped config: .*model"):
        TrainConfig.from_dict({"data": "d", "out": "o"})
    path = tmp_path / "config.json"
    path.write_text('{"config": {"data": "d", "out": "o", "model": "m", "lr": -1}}')
    with pytest.raises(ValueError, match=f"^{path}: config field lr must be positive and finite, got -1$"):
        from_file(path)


def test_json_round_trip_is_exact():
    config = TrainConfig(data="d", out="o", model="m", model_kwargs={"l": 3}, lr=0.25, procs=2, augment="shift")
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.replace(epochs=7).epochs == 7
    with pytest.raises(ValueError, match="config field epochs"):
        config.replace(epochs=0)


BASE = {"data": "data/x", "out": "runs/x", "model": "deepcnet"}


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("lr", math.inf, "positive and finite"),
        ("lr", math.nan, "positive and finite"),
        ("lr", 0.0, "positive and finite"),
        ("weight_decay", math.inf, "zero or positive, finite"),
        ("lr_decay", math.nan, "zero or positive, finite"),
        ("threads", 0, '"auto" or at least 1'),
        ("threads", "many", '"auto" or at least 1'),
        ("procs", 1.5, '"auto" or at least 1'),
        ("batch_size", 0, "at least 1"),
    ],
)
def test_bad_values_name_the_field_and_what_it_must_be(field, value, expected):
    with pytest.raises(ConfigError, match=f"config field {field} must be {expected}"):
        TrainConfig.from_dict({**BASE, field: value})


def test_threads_default_to_auto_and_round_trip():
    config = TrainConfig.from_dict(BASE)
    assert config.threads == "auto"
    assert TrainConfig.from_json(config.replace(threads=3).to_json()).threads == 3


def test_config_files_that_are_not_configs(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{path}: not valid JSON"):
        from_file(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        from_file(path)
    path.write_text(json.dumps({"config": {**BASE, "colour": 1}}))
    with pytest.raises(ConfigError, match="unknown config key.*colour"):
        from_file(path)
    path.write_text(json.dumps({"config": BASE}))
    assert from_file(path) == TrainConfig.from_dict(BASE)
