"""Assamese strokes: the parser on the real quirks and on bad files, the rasteriser, the converter."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess import assamese
from preprocess.assamese import StrokeFileError, parse, parse_strokes, sample_from_file
from preprocess.strokes import ENCODINGS, normalise, rasterise, render
from sparsenet.shards import ShardReader
from sparsenet.summary import summarize

LINE = [(0, 0), (10, 0), (20, 5)]
DOT = [(5, 9)]


@pytest.fixture(scope="module")
def real_records(raw_data):
    records, skipped = assamese.load(raw_data / "assamese")
    return {r.sample_id: r for r in records}, skipped


@pytest.mark.realdata
def test_real_quirks(real_records):
    records, skipped = real_records
    assert len(records) == 8235
    assert len(skipped) == 1 and "W6/15.5.txt" in skipped[0] and records["W5/15.5.txt"]
    assert records["W5/3.5.txt"].parsed.character_name == "EE" and records["W5/3.5.txt"].class_id == 3
    # one-point strokes are written PEN_DOWN, PEN_UP, point: W1/75.1.txt has one as stroke 2
    assert [len(s) for s in records["W1/75.1.txt"].parsed.strokes][1] == 1
    assert sum(len(s) == 1 for r in records.values() for s in r.parsed.strokes) == 137
    assert (
        records["W15/5.15.txt"].parsed.strokes
        and min(s[:, 1].min() for s in records["W15/5.15.txt"].parsed.strokes) < 0
    )  # negative coordinates
    points = sum(len(s) for r in records.values() for s in r.parsed.strokes)
    duplicate = sum(len(s) for s in records["W6/15.6.txt"].parsed.strokes)  # W6/15.5.txt, skipped, is a copy
    assert points + duplicate == 1_806_135  # the README's count over all 8,236 files
    assert max(len(r.parsed.strokes) for r in records.values()) == 11


@pytest.mark.realdata
def test_real_class_names_match_classes_tsv(real_records, raw_data):
    records, _ = real_records
    rows = (raw_data / "assamese" / "classes.tsv").read_text().splitlines()[1:]
    assert assamese.class_names(records.values(), 183) == tuple(row.split("\t")[1] for row in rows)


@pytest.mark.realdata
def test_real_full_conversion(raw_data, tmp_path):
    result = assamese.convert(raw_data / "assamese", tmp_path)
    assert result["samples"] == {"train": 6588, "test": 1647} and result["num_classes"] == 183
    train, test = ShardReader(tmp_path / "train"), ShardReader(tmp_path / "test")
    assert {s.sample_id.split("/")[0] for s in test} == {f"W{w}" for w in range(37, 46)}
    assert np.bincount(train.labels, minlength=183).tolist() == [36] * 183
    ee = next(s for s in train if s.sample_id == "W5/3.5.txt")
    assert ee.label == 2 and train.meta.class_names[2] == "E"
    assert [s.samples for s in summarize(tmp_path)] == [1647, 6588]


def _bad(stroke_text, **kwargs) -> str:
    return stroke_text([LINE, DOT], **kwargs)


@pytest.mark.parametrize(
    "edit, problem, line",
    [
        (lambda t: t.replace("10          0", "10          zero"), "'zero' is not a finite number", 6),
        (lambda t: t.replace("10          0", "10"), "expected 4 numbers", 6),
        (lambda t: t.replace("10          0", "-inf        0"), "not a finite number", 6),
        (lambda t: t[: t.index("20")], "ends without END_CHARACTER (truncated?)", 6),
        (
            lambda t: t.replace("STROKE_COUNT: 2", "STROKE_COUNT: 3"),
            "STROKE_COUNT is 3 but the STROKE column has 2",
            None,
        ),
        (lambda t: t.replace("STROKE_COUNT: 2", "STROKE_COUNT: two"), "STROKE_COUNT is not a whole number", 2),
        (lambda t: t.replace("STROKE_COUNT: 2\r\n", ""), "no STROKE_COUNT line", None),
        (lambda t: t.replace("1        2", "1        3"), "STROKE column is 3 where stroke 2 should start", 10),
        (lambda t: t.replace("PEN_UP", "PEN_LIFT", 1), "unexpected line 'PEN_LIFT", 8),
    ],
    ids=[
        "non-numeric",
        "short-row",
        "infinite",
        "truncated",
        "count",
        "count-text",
        "no-count",
        "stroke-skip",
        "unknown",
    ],
)
def test_bad_files_name_file_and_line(stroke_text, edit, problem, line):
    with pytest.raises(StrokeFileError) as info:
        parse_strokes(edit(_bad(stroke_text)), "W9/1.9.txt")
    message = str(info.value)
    assert message.startswith("W9/1.9.txt") and problem in message
    assert info.value.line == line


def test_no_strokes(stroke_text):
    with pytest.raises(StrokeFileError, match="no strokes"):
        parse_strokes(stroke_text([], stroke_count=0), "f.txt")


@pytest.mark.parametrize(
    "strokes, what",
    [([[(3, 0), (3, 9)]], "zero width"), ([[(0, 4), (9, 4)]], "zero height"), ([DOT, DOT], "zero width")],
)
def test_degenerate_characters(tmp_path, stroke_text, strokes, what):
    path = tmp_path / "1.1.txt"
    path.write_text(stroke_text(strokes), newline="")
    with pytest.raises(StrokeFileError, match=f"1.1.txt: the character has {what}"):
        sample_from_file(path)


def test_tolerates_missing_markers_dots_and_crlf(stroke_text):
    text = _bad(stroke_text).replace("PEN_UP                  0\r\nPEN_DOWN\r\n", "", 1)  # no PEN_UP/PEN_DOWN between
    parsed = parse(text, "f")
    assert parsed.character_name == "A" and [len(s) for s in parsed.strokes] == [3, 1]
    np.testing.assert_array_equal(parsed.strokes[1], [[5, 9]])
    assert [len(s) for s in parse_strokes(text.replace("\r\n", "\n"))] == [3, 1]
    assert parse(stroke_text([LINE], "KA KHA GA"), "f").character_name == "KA KHA GA"  # a 4-word name is no row


def test_normalise_keeps_aspect_and_centres():
    out = normalise([np.array([[10.0, 100.0], [50.0, 120.0]])], 64)[0]
    np.testing.assert_allclose(out, [[-32, -16], [32, 16]])


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_rasterise_encodings(encoding):
    coords, features = rasterise([np.array([[-20.0, 0.3], [20.0, 0.3]]), np.array([[5.0, 5.0]])], 64, encoding)
    assert coords.dtype == np.int32 and features.dtype == np.float32
    assert features.shape == (len(coords), len(ENCODINGS[encoding]))
    assert len(np.unique(coords, axis=0)) == len(coords) and coords.min() >= 0 and coords.max() < 64
    assert (coords[:, 0] == 32).sum() == 41 and [37, 37] in coords.tolist()  # 41 sites along the line, one dot
    ink = features[:, ENCODINGS[encoding].index("ink")]
    np.testing.assert_array_equal(ink, 1)
    line, dot = features[coords[:, 0] == 32], features[coords[:, 0] == 37]
    if encoding == "direction":  # moving right along x
        np.testing.assert_allclose(line[:, :2], np.tile([1, 0], (41, 1)), atol=1e-6)
        np.testing.assert_array_equal(dot[:, :2], 0)
    if encoding == "octogram":
        np.testing.assert_allclose(line[:, 1:], np.tile(np.eye(8)[0], (41, 1)), atol=1e-3)
        np.testing.assert_array_equal(dot[:, 1:], 0)


def test_rasterise_connects_and_merges():
    coords, _ = rasterise([np.array([[-30.0, -29.0], [30.0, 29.0]])], 64)
    assert np.abs(np.diff(coords, axis=0)).max() == 1  # sites of a monotone line in order: 8-connected, no gaps
    right, left = np.array([[-20.0, 0.5], [20.0, 0.5]]), np.array([[20.0, 0.5], [-20.0, 0.5]])
    coords, features = rasterise([right, left], 64, "direction")
    assert len(coords) == 41
    np.testing.assert_allclose(features, np.tile([0, 0, 1], (41, 1)), atol=1e-6)  # opposite directions average out
    with pytest.raises(ValueError, match="outside the 64x64 field"):
        rasterise([np.array([[0.0, 0.0], [40.0, 0.0]])], 64)
    kept, _ = rasterise([np.array([[0.0, 0.0], [40.0, 0.0]])], 64, outside="drop")
    assert kept[:, 1].max() == 63
    with pytest.raises(ValueError, match="smaller than the field"):
        render([np.array(LINE, dtype=float)], scale=95, field=95)


def test_convert_synthetic_tree(assamese_tree, tmp_path):
    result = assamese.convert(
        assamese_tree.parent,
        tmp_path / "out",
        train_writers=range(1, 3),
        test_writers=[3],
        encoding="octogram",
        scale=30,
        field=40,
    )
    assert result["samples"] == {"train": 6, "test": 3} and result["unused_writers"] == [4]
    assert len(result["skipped"]) == 1 and "W2/1.1.txt" in result["skipped"][0]
    reader = ShardReader(tmp_path / "out" / "train")
    assert reader.meta.class_names == ("N1", "N2", "N3") and reader.meta.spatial_shape == (40, 40)
    assert reader.meta.feature_names == ENCODINGS["octogram"] and reader.meta.params["encoding"] == "octogram"
    assert [(s.sample_id, s.label) for s in reader][:3] == [("W1/1.1.txt", 0), ("W1/2.1.txt", 1), ("W1/3.1.txt", 2)]
    coords, features = sample_from_file(assamese_tree / "W2" / "3.2.txt", scale=30, field=40, encoding="octogram")
    np.testing.assert_array_equal(coords, reader[5].coords)
    np.testing.assert_array_equal(features, reader[5].features)


def test_convert_bad_file_writes_nothing(assamese_tree, tmp_path, stroke_text):
    (assamese_tree / "W4" / "2.4.txt").write_text(stroke_text([LINE])[:-40], newline="")
    with pytest.raises(StrokeFileError, match=r"W4/2.4.txt, line \d+: the file ends without END_CHARACTER"):
        assamese.convert(assamese_tree, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"writers \[3\] are in both"):
        assamese.convert(assamese_tree, tmp_path / "out", train_writers=[1, 3], test_writers=[3])
