"""sparsenet.converters: the registry of converters by dataset name (entry points and run time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsenet import converters
from sparsenet.converters import Converter, get_converter, list_converters, read_input, register_converter
from sparsenet.errors import ConfigError
from sparsenet.shards import Sample, legacy_names


def test_the_built_in_converters_are_registered_by_name() -> None:
    assert {"assamese", "mnist", "masked"} <= set(list_converters())
    for name in ("assamese", "mnist", "masked"):
        converter = get_converter(name)
        assert converter.name == name and converter.convert.__module__ == f"preprocess.{name}"


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no converter named 'inkml2'; known converters: .*assamese.*mnist"):
        get_converter("inkml2")


def test_run_time_registration_and_its_conflicts(monkeypatch) -> None:
    monkeypatch.setattr(converters, "_REGISTERED", dict(converters._REGISTERED))

    def reader(path: Path, params: dict) -> Sample:
        return Sample(np.array([[params["y"], 0]], np.int32), np.ones((1, 1), np.float32), -1, str(path))

    mine = register_converter(Converter("mine", lambda source, out_dir, **options: {}, reader))
    assert get_converter("mine") is mine and "mine" in list_converters()
    assert register_converter(mine) is mine  # the same object again is fine
    with pytest.raises(ConfigError, match="'mine' is already registered"):
        register_converter(Converter("mine", lambda source, out_dir, **options: {}))
    sample = read_input("x.txt", "mine", {"y": 3})
    assert sample.coords.tolist() == [[3, 0]] and sample.sample_id == "x.txt"


def test_read_input_of_a_converter_without_a_reader_says_which_have_one() -> None:
    with pytest.raises(ConfigError, match=r"'masked' cannot read single raw files; .*assamese.*mnist"):
        read_input("image.png", "masked", {})


def test_entry_points_that_are_not_converters_are_refused(monkeypatch) -> None:
    class Point:
        name, value = "bogus", "somewhere:THING"

        def load(self):
            return object()

    monkeypatch.setattr(converters, "_REGISTERED", {})
    monkeypatch.setattr(converters, "entry_points", lambda group: [Point()])
    with pytest.raises(ConfigError, match="bogus = somewhere:THING is not a Converter named 'bogus'"):
        list_converters()


@pytest.mark.parametrize(
    ("converter", "params", "expected"),
    [
        ("preprocess.assamese", {"scale": 64}, ("assamese", "assamese")),
        ("preprocess.masked", {"dataset": "caltech101"}, ("masked", "masked-caltech101")),
        ("mnist", {}, ("mnist", "mnist")),
    ],
)
def test_legacy_module_paths_become_names(converter: str, params: dict, expected: tuple[str, str]) -> None:
    assert legacy_names(converter, json.loads(json.dumps(params))) == expected
