"""sparsenet.config: validation of TrainConfig and config files, as ConfigError (still a ValueError)."""

import json
import math

import pytest

from sparsenet.config import TrainConfig, from_file
from sparsenet.errors import ConfigError

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
