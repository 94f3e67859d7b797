"""A corpus of InkML files (W3C InkML, the digital-ink format of CROHME) -> stroke-site shards.

Samples: every ``*.inkml`` file under the source (a folder or an archive) is one sample, or,
when it holds ``traceGroup`` elements carrying an ``<annotation type="truth">``, each of the
innermost such groups is one (CROHME's symbol groups inside its "Segmentation" group).

- Label: the sample's truth annotation (the group's, or for a whole file the ``<ink>``'s own),
  else the name of the folder holding the file (below its split folder). Class names are the
  sorted distinct labels; label ``k`` is class ``k``.
- Strokes: the pen-down traces of the sample in document order (``type="penUp"`` traces are
  skipped), a trace's points are its X and Y channels. Traces reached through
  ``<traceView traceDataRef="#id">`` are followed (also into ``<definitions>``); each trace
  counts once per sample. Traces of a grouped file outside every annotated group are ignored.
- Channels: from the file's ``<traceFormat>`` (wherever declared: ``<definitions>``,
  ``<context>``, ``<inkSource>``); ``X Y`` without one. Extra channels (``T``, ``F``, ...,
  intermittent ones too) are read past. Points are separated by commas, values by white space
  (or a sign); a trace without commas is read as rows of the declared channel count.
- Rendering: :func:`preprocess.strokes.render` with the Assamese options (``scale``, ``field``,
  ``encoding``); X runs along columns, Y along rows (down), as InkML's default canvas.
- Splits: :mod:`preprocess.splits` (by folder, by a split file, or a seeded fraction of files).

Refused with a :class:`RawDataError` naming the file: malformed XML, a DTD or entity
declarations, a root other than ``<ink>``, several differing trace formats, a trace format
without X or Y, difference-encoded values (``'``, ``"``), unknown or repeated values
(``?``, ``*``), hexadecimal values, ``traceView`` ranges (``from``/``to``), a ``traceDataRef``
to a missing id, a non-numeric X or Y, a sample without points, and a character rendering
fails for (see :mod:`preprocess.strokes`).

Example::

    sparsenet preprocess inkml --source my-ink/ --out data/my-ink --test-fraction 0.2
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import numpy as np

# defusedxml refuses DTDs (forbid_dtd), and so entity expansion ("billion laughs") and external
# entities, which InkML never needs; the standard library parser fetches no external entities but
# would still expand internal ones.
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from preprocess.splits import SPLIT_MODES, Corpus, Item, read_raw, write_items
from preprocess.strokes import ENCODINGS, render
from sparsenet.converters import Converter
from sparsenet.errors import ConfigError, RawDataError
from sparsenet.shards import Sample, ShardMeta
from sparsenet.sources import iter_members

INKML_NS = "http://www.w3.org/2003/InkML"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_VALUE = rf"""([!'"]?)\s*({_NUMBER}|[TF?*]|#[0-9A-Fa-f]+)"""
_TOKEN = re.compile(rf"\s*{_VALUE}")


@dataclass(frozen=True)
class TraceFormat:
    """The regular channels of a trace point, in order, and how many intermittent ones may follow."""

    channels: tuple[str, ...] = ("X", "Y")
    intermittent: int = 0


@dataclass(frozen=True)
class Symbol:
    """One sample of a file: its truth annotation (None: none), strokes float64 [m_i, 2] (x, y), group id."""

    truth: str | None
    strokes: list[np.ndarray]
    group: str = ""


def _local(tag: object) -> str | None:
    """The local name of an InkML (or namespace-less) element; None for other namespaces, comments."""
    if not isinstance(tag, str):
        return None
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return local if ns in ("", INKML_NS) else None


def _id(element: Element) -> str | None:
    return element.get(XML_ID) or element.get("id")


def _truth(element: Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == "annotation" and child.get("type") == "truth":
            text = (child.text or "").strip()
            if not text:
                raise RawDataError(f"{name}: an empty truth annotation")
            return text
    return None


class _Document:
    """A parsed InkML file: its trace format, elements by id, and the points of its traces."""

    def __init__(self, data: bytes, name: str):
        self.name = name
        try:
            self.root = fromstring(data, forbid_dtd=True)
        except DefusedXmlException:
            raise RawDataError(
                f"{name}: refused: a DTD (<!DOCTYPE>) or entity declaration; InkML needs neither"
            ) from None
        except ParseError as err:
            raise RawDataError(f"{name}: not well-formed XML ({err})") from None
        if _local(self.root.tag) != "ink":
            raise RawDataError(f"{name}: not an InkML file (the root element is {self.root.tag}, not ink)")
        self.ids = {key: el for el in self.root.iter() if (key := _id(el))}
        self.format = self._trace_format()
        self.columns = self.format.channels.index("X"), self.format.channels.index("Y")
        self._points: dict[int, np.ndarray] = {}

    def _trace_format(self) -> TraceFormat:
        found = set()
        for el in self.root.iter():
            if _local(el.tag) == "traceFormat":
                regular = tuple(c.get("name", "") for c in el if _local(c.tag) == "channel")
                extra = [c for sub in el if _local(sub.tag) == "intermittentChannels" for c in sub]
                if regular:
                    found.add(TraceFormat(regular, sum(_local(c.tag) == "channel" for c in extra)))
        if len(found) > 1:
            raise RawDataError(f"{self.name}: {len(found)} different traceFormats; one per file is supported")
        fmt = found.pop() if found else TraceFormat()
        if "X" not in fmt.channels or "Y" not in fmt.channels:
            raise RawDataError(f"{self.name}: the traceFormat has no regular X and Y channels ({fmt.channels})")
        return fmt

    def points(self, trace: Element) -> np.ndarray:
        """The (x, y) points of one ``<trace>``: float64 [m, 2]."""
        if id(trace) not in self._points:
            self._points[id(trace)] = self._parse_trace(trace)
        return self._points[id(trace)]

    def _parse_trace(self, trace: Element) -> np.ndarray:
        where = f"{self.name}: trace {_id(trace) or '(no id)'}"
        text = trace.text or ""
        n, extra = len(self.format.channels), self.format.intermittent
        if "," in text:
            rows = [_values(p, where) for p in text.split(",") if p.strip()]
        else:
            values = _values(text, where)
            if extra or len(values) % n:
                raise RawDataError(
                    f"{where}: {len(values)} values without commas do not form points of the "
                    f"{n} channels {' '.join(self.format.channels)}"
                )
            rows = [values[k : k + n] for k in range(0, len(values), n)]
        if not rows:
            raise RawDataError(f"{where}: no points")
        for row in rows:
            if not n <= len(row) <= n + extra:
                raise RawDataError(
                    f"{where}: a point of {len(row)} values ({' '.join(row)}); the traceFormat has channels "
                    f"{' '.join(self.format.channels)}" + (f" and {extra} intermittent" if extra else "")
                )
        try:
            return np.array([[float(row[k]) for k in self.columns] for row in rows], dtype=np.float64)
        except ValueError:
            raise RawDataError(f"{where}: X and Y values must be numbers") from None

    def strokes(
        self, element: Element, seen: set[int] | None = None, trail: tuple[str, ...] = ()
    ) -> Iterator[np.ndarray]:
        """The pen-down strokes under ``element`` (a trace, traceGroup, traceView or ink), each trace once."""
        seen = set() if seen is None else seen
        kind = _local(element.tag)
        if kind == "trace":
            if id(element) not in seen and element.get("type", "penDown") != "penUp":
                seen.add(id(element))
                yield self.points(element)
        elif kind in ("ink", "traceGroup"):
            for child in element:
                if _local(child.tag) != "definitions":  # traces defined there count only where referenced
                    yield from self.strokes(child, seen, trail)
        elif kind == "traceView":
            if element.get("from") is not None or element.get("to") is not None:
                raise RawDataError(f"{self.name}: traceView ranges (from/to) are not supported")
            ref = (element.get("traceDataRef") or "").removeprefix("#")
            if not ref:
                for child in element:
                    yield from self.strokes(child, seen, trail)
                return
            if ref not in self.ids:
                raise RawDataError(f"{self.name}: a traceView refers to {ref!r}, which no element of the file has")
            if ref in trail:
                raise RawDataError(f"{self.name}: traceView references loop through {ref!r}")
            yield from self.strokes(self.ids[ref], seen, trail + (ref,))

    def symbols(self) -> list[Symbol]:
        """The samples of the file (see the module docstring)."""
        annotated = [g for g in self.root.iter() if _local(g.tag) == "traceGroup" and _truth(g, self.name) is not None]
        marked = {id(g) for g in annotated}
        innermost = [g for g in annotated if not any(d is not g and id(d) in marked for d in g.iter())]
        if not innermost:
            return [self._symbol(self.root, _truth(self.root, self.name), "")]
        return [self._symbol(g, _truth(g, self.name), _id(g) or str(k)) for k, g in enumerate(innermost, 1)]

    def _symbol(self, element: Element, truth: str | None, group: str) -> Symbol:
        strokes = list(self.strokes(element))
        if not strokes:
            where = f"traceGroup {group}" if group else "the file"
            raise RawDataError(f"{self.name}: {where} has no pen-down traces")
        return Symbol(truth, strokes, group)


def _values(point: str, where: str) -> list[str]:
    """The values of one point (or of a comma-less trace); unsupported notations raise naming ``where``."""
    values, pos, end = [], 0, len(point.rstrip())
    while pos < end:  # token by token: a regex over the whole point could backtrack exponentially
        token = _TOKEN.match(point, pos)
        if token is None:
            raise RawDataError(f"{where}: cannot read the point {point.strip()[:40]!r}")
        pos = token.end()
        prefix, value = token.groups()
        if prefix in ("'", '"'):
            raise RawDataError(f"{where}: difference-encoded values ({prefix}) are not supported")
        if value in ("?", "*") or value.startswith("#"):
            raise RawDataError(f"{where}: the value notation {value[:8]!r} is not supported")
        values.append(value)
    return values


def parse(data: bytes, name: str = "<inkml>") -> list[Symbol]:
    """The samples of one InkML file's bytes; errors name ``name``."""
    return _Document(data, name).symbols()


def _render(strokes: list[np.ndarray], where: str, scale: float, field: int, encoding: str):
    try:
        return render(strokes, scale=scale, field=field, encoding=encoding)
    except ValueError as err:
        raise RawDataError(f"{where}: {err}") from None


def _check(scale: float, field: int, encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    if not 0 < scale < field:
        raise ConfigError(f"scale {scale} must be positive and smaller than the field ({field})")


def convert(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    scale: float = 64,
    field: int = 95,
    encoding: str = "direction",
    dataset: str = "inkml",
    overwrite: bool = False,
    progress: bool = False,
    **split_rule: Any,
) -> dict:
    """Convert the InkML corpus at ``source`` into ``out_dir/<split>/`` shards (see the module docstring).

    ``split_rule``: ``split`` (a rule of :data:`preprocess.splits.SPLIT_MODES`), ``split_file``,
    ``test_fraction`` and ``seed``, as :meth:`preprocess.splits.Corpus.of` takes them; ``dataset``:
    the shards' dataset name.
    Every file is parsed and rendered before anything is written. Returns a summary: samples
    per split, classes, the split rule used, notes on files left out.
    """
    from tqdm import tqdm

    _check(scale, field, encoding)
    parsed: dict[str, list[Symbol]] = {}
    members = iter_members(source, lambda n: n.lower().endswith(".inkml"))
    for member, data in tqdm(members, desc="inkml", unit=" files", disable=not progress):
        parsed[member] = parse(data, str(Path(source) / member))
    if not parsed:
        raise RawDataError(f"{source}: no .inkml files found")
    corpus = Corpus.of(source, parsed, **split_rule)
    items = []
    for member, symbols in parsed.items():
        name, folder = corpus.names[member], Path(corpus.inside(member)).parent.name
        for k, symbol in enumerate(symbols):
            sample_id = f"{name}#{symbol.group}" if symbol.group else name
            if symbol.truth is None and not folder:
                raise RawDataError(
                    f"{corpus.where(member)}: no truth annotation and no class folder to take a label from"
                )
            coords, features = _render(symbol.strokes, corpus.where(sample_id), scale, field, encoding)
            items.append(Item(name, k, sample_id, symbol.truth or folder, coords, features))
    splits, notes = corpus.assign()
    params = {"scale": scale, "field": field, "encoding": encoding} | corpus.params
    named = {"source": str(source), "converter": "inkml", "dataset": dataset, "params": params}
    meta = ShardMeta((field, field), 0, ENCODINGS[encoding], **named)  # classes: from the items (write_items)
    return write_items(out_dir, meta, items, splits, overwrite=overwrite, notes=notes)


def read_input(path: Path, params: dict) -> Sample:
    """One InkML file holding one symbol as a sample on the field of shards written with ``params`` (predict)."""
    symbols = parse(read_raw(path), str(path))
    if len(symbols) != 1:
        raise RawDataError(f"{path}: holds {len(symbols)} annotated symbols; predict reads one symbol per file")
    coords, features = _render(symbols[0].strokes, str(path), params["scale"], params["field"], params["encoding"])
    return Sample(coords, features, -1, str(path))


SUMMARY = "InkML digital ink (CROHME, pen datasets) -> stroke sites"
CONVERTER = Converter("inkml", convert, read_input, SUMMARY, {"encoding": tuple(ENCODINGS), "split": SPLIT_MODES})
