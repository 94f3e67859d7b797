"""The converter registry: a dataset's name -> the :class:`Converter` that writes its shards.

Converters live outside the library (``preprocess/``, or a user's own package) and register
through the ``sparsenet.converters`` entry-point group of their package metadata::

    [project.entry-points."sparsenet.converters"]
    assamese = "preprocess.assamese:CONVERTER"

so the library reaches them by name (``get_converter("assamese")``) and never imports them
itself. :func:`register_converter` adds one at run time (tests, notebooks).

Every converter has one signature: ``convert(source, out_dir, *, progress=False, **options)``
writes ``out_dir/<split>/`` shards from the raw data at ``source`` and returns a summary
(``{"out_dir": ..., "samples": {split: count}, ...}``). ``read_input(path, params)``, where a
converter has one, turns one raw file into a :class:`~sparsenet.shards.Sample` exactly as
``convert`` did with the shard parameters ``params`` (what ``sparsenet predict`` uses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from sparsenet.errors import ConfigError
from sparsenet.shards import Sample

GROUP = "sparsenet.converters"


@dataclass(frozen=True)
class Converter:
    """A converter: ``name`` (also the shards' ``converter`` attribute), ``convert`` and ``read_input``."""

    name: str
    convert: Callable[..., dict[str, Any]]
    read_input: Callable[[Path, dict[str, Any]], Sample] | None = None
    summary: str = ""  # one line for listings
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # option -> its valid values


_REGISTERED: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    """Add ``converter`` under its name; a name taken by another converter raises :class:`ConfigError`."""
    known = _REGISTERED.get(converter.name)
    if known is not None and known is not converter:
        raise ConfigError(f"converter name {converter.name!r} is already registered ({known.convert.__module__})")
    _REGISTERED[converter.name] = converter
    return converter


def _load_entry_points() -> None:
    for point in entry_points(group=GROUP):
        if point.name not in _REGISTERED:
            converter = point.load()
            if not isinstance(converter, Converter) or converter.name != point.name:
                raise ConfigError(f"entry point {point.name} = {point.value} is not a Converter named {point.name!r}")
            _REGISTERED[point.name] = converter


def list_converters() -> list[str]:
    """The names of every registered converter, sorted."""
    _load_entry_points()
    return sorted(_REGISTERED)


def get_converter(name: str) -> Converter:
    """The converter registered as ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    if name not in _REGISTERED:
        _load_entry_points()
    if name not in _REGISTERED:
        raise ConfigError(f"no converter named {name!r}; known converters: {', '.join(sorted(_REGISTERED)) or 'none'}")
    return _REGISTERED[name]


def read_input(path: str | os.PathLike, converter: str, params: dict[str, Any]) -> Sample:
    """One raw input file as a sample, converted as shards of ``converter`` with ``params`` were."""
    found = get_converter(converter)
    if found.read_input is None:
        readers = [name for name in list_converters() if _REGISTERED[name].read_input is not None]
        raise ConfigError(
            f"converter {converter!r} cannot read single raw files; predict reads raw inputs for "
            f"shards of {', '.join(readers)}"
        )
    return found.read_input(Path(path), params)
