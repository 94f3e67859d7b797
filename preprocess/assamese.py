"""Online Handwritten Assamese Characters (UCI dataset 208) -> sparsenet shards.

Raw data: folders ``W<writer>/<class>.<writer>.txt`` (writers 1..45, classes 1..183), as a
folder or the original archive (see ``sparsenet.sources``). ``convert`` writes
``out_dir/train`` and ``out_dir/test`` with a writer-independent split (by default writers
1-36 train, 37-45 test, as SparseConvNet's examples). Labels are ``class id - 1`` from the
file name; the header name only names the class (majority vote across writers).

Known quirks of the release, all handled (see ``../shared/data/README.md``):

- ``W6/15.5.txt`` duplicates ``W6/15.6.txt``; a file whose name's writer differs from its
  folder is skipped and reported;
- odd header names (``W5/3.5.txt`` says ``EE`` for class 3): the file name is authoritative;
- ``PEN_DOWN``/``PEN_UP`` lines are unreliable (43 ``PEN_UP`` missing; one-point strokes written
  as ``PEN_DOWN``, ``PEN_UP``, point; some stroke changes without markers): strokes are taken
  from the STROKE column, which is always consistent with ``STROKE_COUNT``;
- slightly negative coordinates, CRLF line endings, ``.TXT`` extensions: accepted.

One-point strokes are accepted: the real data has 137 of them (in 134 files), dots made
with a single pen touch, so rejecting them would drop genuine samples; each marks one site.
Characters of zero width or height are valid too (a hyphen, a full stop, a one-stroke "1"):
a line is scaled by its length, a dot is one centred site (see ``preprocess.strokes``).
Non-numeric rows, no point rows, a STROKE column that skips or repeats a stroke, a
STROKE_COUNT that disagrees with it, a file without ``END_CHARACTER`` (cut short), a
point far outside the file's own range (see :func:`check_range`) and a binary file (an
image given to ``predict``) are errors naming the file and, where known, the line. A
folder named like a stroke file is skipped and reported.

Example::

    sparsenet preprocess assamese --source ../shared/data/assamese --out data/assamese
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocess.splits import write_splits
from preprocess.strokes import ENCODINGS, render
from sparsenet.converters import Converter
from sparsenet.shards import Sample, ShardMeta
from sparsenet.sources import RawDataError, iter_members

FILE_PATTERN = re.compile(r"(?:^|/)W(\d+)/(\d+)\.(\d+)\.txt$", re.IGNORECASE)
_NUMERIC_START = frozenset("0123456789-+.")
_MARKERS = frozenset({"PEN_DOWN", "PEN_UP", "X"})  # "X Y STYLUS_STATE STROKE" is the column header
# A point is corrupt when it lies more than OUTLIER_SPREADS spreads (see check_range) from the file's
# median point: several times the widest real character, which the realdata tests convert whole.
OUTLIER_SPREADS = 100
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\0", b"MM\0*", b"RIFF")


class StrokeFileError(RawDataError):
    """A malformed stroke file; the message names the file and, where known, the line."""

    def __init__(self, name: str, problem: str, line: int | None = None):
        self.name, self.line, self.problem = name, line, problem
        super().__init__(f"{name}, line {line}: {problem}" if line else f"{name}: {problem}")


@dataclass(frozen=True)
class StrokeFile:
    """One parsed sample: header ``character_name`` and ``strokes``, float64 arrays [m_i, 2] (x, y)."""

    character_name: str
    strokes: list[np.ndarray]


def parse(text: str, name: str = "<text>") -> StrokeFile:
    """Parse one stroke file (see the module docstring for what is accepted and refused).

    Strokes are the runs of the STROKE column, which must count 1, 2, ... STROKE_COUNT.
    ``PEN_DOWN``/``PEN_UP`` lines are not trusted: the release writes one-point strokes as
    ``PEN_DOWN``, ``PEN_UP``, point, and sometimes omits one or both markers.
    """
    lines = text.splitlines()
    character_name, count, end = "", None, None
    unexpected: StrokeFileError | None = None
    rows: list[list[str]] = []
    row_lines: list[int] = []
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        head = tokens[0]
        if head[0] in _NUMERIC_START:
            rows.append(tokens)
            row_lines.append(number)
        elif head == "CHARACTER_NAME:":
            character_name = " ".join(tokens[1:])
        elif head == "STROKE_COUNT:":
            count = _stroke_count(tokens, name, number)
        elif head == "END_CHARACTER:":
            end = number
            break
        elif head in _MARKERS:
            continue
        elif len(tokens) == 4:  # a point row with a non-numeric value: reported with its line below
            rows.append(tokens)
            row_lines.append(number)
        elif unexpected is None:
            unexpected = StrokeFileError(name, f"unexpected line {line.strip()[:40]!r}", number)
    if end is None:  # reported first: a file cut short often ends in a broken line
        raise StrokeFileError(name, "the file ends without END_CHARACTER (truncated?)", len(lines))
    if unexpected is not None:
        raise unexpected
    if count is None:
        raise StrokeFileError(name, "no STROKE_COUNT line")
    if not rows:
        raise StrokeFileError(name, "no strokes (no point rows)")
    points = _numbers(rows, row_lines, name)
    check_range(points[:, :2], row_lines, name)
    starts = np.flatnonzero(np.diff(points[:, 3], prepend=np.nan) != 0)  # first row of each run
    wrong = np.flatnonzero(points[starts, 3] != np.arange(1, len(starts) + 1))
    if len(wrong):
        k = wrong[0]
        raise StrokeFileError(
            name, f"STROKE column is {points[starts[k], 3]:g} where stroke {k + 1} should start", row_lines[starts[k]]
        )
    if len(starts) != count:
        raise StrokeFileError(name, f"STROKE_COUNT is {count} but the STROKE column has {len(starts)} strokes")
    return StrokeFile(character_name, np.split(points[:, :2], starts[1:]))


def parse_strokes(text: str, name: str = "<text>") -> list[np.ndarray]:
    """The strokes of one stroke file: float64 arrays [m_i, 2] of (x, y) tablet positions."""
    return parse(text, name).strokes


def _stroke_count(tokens: list[str], name: str, line: int) -> int:
    try:
        return int(tokens[1])
    except (IndexError, ValueError):
        raise StrokeFileError(name, "STROKE_COUNT is not a whole number", line) from None


def _numbers(rows: list[list[str]], row_lines: list[int], name: str) -> np.ndarray:
    """Point rows -> float64 [R, 4] (X, Y, STYLUS_STATE, STROKE); errors name the first bad line."""
    try:
        points = np.array(rows, dtype=np.float64)
        if points.ndim == 2 and points.shape[1] == 4 and np.isfinite(points).all():
            return points
    except ValueError:
        pass
    for tokens, line in zip(rows, row_lines):  # slow path: find and name the bad row
        if len(tokens) != 4:
            raise StrokeFileError(name, f"expected 4 numbers (X Y STYLUS_STATE STROKE), found {len(tokens)}", line)
        for token in tokens:
            try:
                if not np.isfinite(float(token)):
                    raise ValueError
            except ValueError:
                raise StrokeFileError(name, f"{token!r} is not a finite number", line) from None
    raise AssertionError("unreachable: a bad row was expected")


def check_range(points: np.ndarray, row_lines: list[int], name: str) -> None:
    """Refuse a point far outside the file's own range (a corrupt coordinate such as 1e12).

    ``points`` float64 [R, 2] (x, y), ``row_lines`` their line numbers. The rule is robust to
    the outlier itself: the spread is the larger per-axis median absolute deviation from the
    median point, at least 1 % of the median's magnitude and 1 unit (so a dot or a straight
    line, whose deviation is zero on an axis, keeps a sensible scale); a point more than
    :data:`OUTLIER_SPREADS` spreads from the median on either axis is an error naming its
    line. With fewer than three points no point can be told from the others.
    """
    median = np.median(points, axis=0)
    deviation = np.abs(points - median)
    spread = max(float(np.median(deviation, axis=0).max()), 0.01 * float(np.abs(median).max()), 1.0)
    far = np.flatnonzero((deviation > OUTLIER_SPREADS * spread).any(axis=1))
    if len(far):
        x, y = points[far[0]]
        raise StrokeFileError(
            name,
            f"point ({x:g}, {y:g}) lies far outside the file's other points (median ({median[0]:g}, "
            f"{median[1]:g}), typical spread {spread:g}): a corrupt coordinate",
            row_lines[far[0]],
        )


@dataclass(frozen=True)
class Record:
    """A raw sample found in the source: ids from its path, its parsed content."""

    sample_id: str
    class_id: int
    writer: int
    parsed: StrokeFile


def load(source: str | os.PathLike, *, progress: bool = False) -> tuple[list[Record], list[str]]:
    """Parse every ``W<w>/<c>.<w>.txt`` under ``source``; return (records sorted by writer and class, skipped notes)."""
    from tqdm import tqdm

    records: dict[tuple[int, int], Record] = {}
    skipped: list[str] = []
    members = iter_members(source, lambda n: FILE_PATTERN.search(n) is not None, skipped=skipped)
    for name, data in tqdm(members, desc="parse", unit=" files", disable=not progress):
        folder, class_id, writer = (int(g) for g in FILE_PATTERN.search(name).groups())
        sample_id = f"W{folder}/{class_id}.{writer}.txt"
        if folder != writer:
            skipped.append(f"{name}: the file name says writer {writer} but it is in folder W{folder}")
            continue
        if class_id == 0:
            raise RawDataError(f"{name}: class 0 in the file name; classes are numbered from 1 (<class>.<writer>.txt)")
        if (writer, class_id) in records:
            raise RawDataError(
                f"{name}: a second file for class {class_id}, writer {writer} "
                f"(first: {records[writer, class_id].sample_id})"
            )
        records[writer, class_id] = Record(sample_id, class_id, writer, parse(stroke_text(data, name), name))
    if not records:
        raise RawDataError(f"{source}: no W<writer>/<class>.<writer>.txt stroke files found")
    return [records[key] for key in sorted(records)], skipped


def class_names(records: Iterable[Record], num_classes: int) -> tuple[str, ...]:
    """Per class id, the most common header name (ties: alphabetical first; unseen: empty)."""
    votes: dict[int, Counter] = {}
    for r in records:
        votes.setdefault(r.class_id, Counter())[r.parsed.character_name] += 1
    return tuple(
        min(votes[c].items(), key=lambda kv: (-kv[1], kv[0]))[0] if c in votes else ""
        for c in range(1, num_classes + 1)
    )


def _render(
    strokes: list[np.ndarray], name: str, scale: float, field: int, encoding: str
) -> tuple[np.ndarray, np.ndarray]:
    try:
        return render(strokes, scale=scale, field=field, encoding=encoding)
    except ValueError as err:
        raise StrokeFileError(name, str(err)) from None


def sample_from_file(
    path: str | os.PathLike, *, scale: float = 64, field: int = 95, encoding: str = "direction"
) -> tuple[np.ndarray, np.ndarray]:
    """One raw stroke file -> (coords int32 [n, 2] (y, x), features float32 [n, C]), exactly as ``convert`` does.

    A binary file (an image, say) is refused with a message saying what it is and what is read instead.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RawDataError(f"{path}: cannot read ({err.strerror})") from None
    return _render(parse_strokes(stroke_text(data, str(path)), str(path)), str(path), scale, field, encoding)


def stroke_text(data: bytes, name: str) -> str:
    """The text of a stroke file (latin-1, which decodes any bytes); a binary file, such as an image
    given to ``predict``, raises :class:`RawDataError` saying what it is and what is read instead."""
    if b"\0" in data[:4096] or data.startswith(_IMAGE_MAGIC):
        raise RawDataError(
            f"{name}: {_binary_kind(data)}, not a stroke file. The assamese converter and its models read "
            "online-handwriting stroke files: text in the UCI Assamese format (CHARACTER_NAME, STROKE_COUNT, "
            "rows of X Y STYLUS_STATE STROKE, END_CHARACTER), such as W1/1.1.txt of the dataset"
        )
    return data.decode("latin-1")


def _binary_kind(data: bytes) -> str:
    """'a PNG image' where Pillow recognises ``data``, else 'a binary file'."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"a {image.format} image"
    except Exception:  # noqa: BLE001 - any failure to recognise it just means "binary"
        return "a binary file"


def convert(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    train_writers: Iterable[int] = range(1, 37),
    test_writers: Iterable[int] = range(37, 46),
    scale: float = 64,
    field: int = 95,
    encoding: str = "direction",
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Convert the raw dataset at ``source`` into ``out_dir/train`` and ``out_dir/test``.

    Every file is parsed and rendered before anything is written, and both splits replace
    ``out_dir`` together (:class:`~sparsenet.datasets.DatasetWriter`; ``overwrite`` keeps files
    sparsenet did not write there), so bad input leaves the old dataset. Returns a summary:
    samples per split, classes, skipped files, unused writers, run id, kept foreign files.
    """
    from tqdm import tqdm

    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
    if not 0 < scale < field:
        raise ValueError(f"scale {scale} must be positive and smaller than the field ({field})")
    splits = {"train": set(train_writers), "test": set(test_writers)}
    if splits["train"] & splits["test"]:
        raise ValueError(f"writers {sorted(splits['train'] & splits['test'])} are in both train and test")
    records, skipped = load(source, progress=progress)
    num_classes = max(r.class_id for r in records)
    meta = ShardMeta(
        spatial_shape=(field, field),
        num_classes=num_classes,
        feature_names=ENCODINGS[encoding],
        class_names=class_names(records, num_classes),
        source=str(source),
        converter="assamese",
        dataset="assamese",
        params={
            "scale": scale,
            "field": field,
            "encoding": encoding,
            **{f"{s}_writers": sorted(w) for s, w in splits.items()},
        },
    )
    samples = {split: [] for split in splits}
    for r in tqdm(records, desc="render", unit=" samples", disable=not progress):
        split = next((s for s, writers in splits.items() if r.writer in writers), None)
        if split is not None:
            samples[split].append((r, *_render(r.parsed.strokes, r.sample_id, scale, field, encoding)))
    for split, rows in samples.items():
        if not rows:
            raise RawDataError(f"{source}: no samples for the {split} writers {sorted(splits[split])}")
    by_split = {
        split: [Sample(c, f, r.class_id - 1, r.sample_id) for r, c, f in rows] for split, rows in samples.items()
    }
    used = set().union(*splits.values())
    unused = sorted({r.writer for r in records} - used)
    return write_splits(out_dir, meta, by_split, overwrite=overwrite, notes=skipped) | {"unused_writers": unused}


def read_input(path: Path, params: dict) -> Sample:
    """One stroke file as a sample on the field of shards written with ``params`` (``sparsenet predict``)."""
    coords, features = sample_from_file(path, scale=params["scale"], field=params["field"], encoding=params["encoding"])
    return Sample(coords, features, -1, str(path))


SUMMARY = "Online Handwritten Assamese Characters -> stroke sites"
CONVERTER = Converter("assamese", convert, read_input, SUMMARY, {"encoding": tuple(ENCODINGS)})
