"""Assamese strokes: the parser on the real quirks and on bad files, the rasteriser, the converter."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess import assamese
from preprocess.assamese import StrokeFileError, parse, parse_strokes, sample_from_file
from preprocess.strokes import ENCODINGS
from sparsenet.errors import RawDataError
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
def test_real_full_conversion(raw_data, tmp_path, assert_digests):
    result = assamese.convert(raw_data / "assamese", tmp_path)
    assert_digests(tmp_path, "assamese")
    assert result["samples"] == {"train": 6588, "test": 1647} and result["num_classes"] == 183
    train, test = ShardReader(tmp_path / "train"), ShardReader(tmp_path / "test")
    assert {s.sample_id.split("/")[0] for s in test} == {f"W{w}" for w in range(37, 46)}
    assert np.bincount(train.labels, minlength=183).tolist() == [36] * 183
    ee = next(s for s in train if s.sample_id == "W5/3.5.txt")
    assert ee.label == 2 and train.meta.class_names[2] == "E"
    assert [s.samples for s in summarize(tmp_path)] == [1647, 6588]


@pytest.mark.realdata
def test_real_octogram_conversion_is_unchanged(raw_data, tmp_path, assert_digests):
    assamese.convert(raw_data / "assamese", tmp_path, encoding="octogram")
    assert_digests(tmp_path, "assamese-octogram")


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
    "strokes, sites, direction",
    [
        ([[(3, 0), (3, 9)]], [(y, 47) for y in range(15, 80)], (0, 1)),  # a vertical line: zero width
        ([[(0, 4), (9, 4)]], [(47, x) for x in range(15, 80)], (1, 0)),  # a horizontal line (a hyphen)
        ([DOT], [(47, 47)], (0, 0)),  # a full stop: one stroke of one point
        ([DOT, DOT, [(5, 9), (5, 9)]], [(47, 47)], (0, 0)),  # the pen touched the same place three times
    ],
    ids=["vertical", "horizontal", "dot", "repeated-dot"],
)
def test_degenerate_characters_convert(tmp_path, stroke_text, strokes, sites, direction):
    """Lines are scaled by their length onto the centre line, a dot is the centre site (field 95: 47.5)."""
    path = tmp_path / "1.1.txt"
    path.write_text(stroke_text(strokes), newline="")
    coords, features = sample_from_file(path)
    assert coords.tolist() == [list(site) for site in sites]
    np.testing.assert_allclose(features, np.tile([*direction, 1], (len(sites), 1)), atol=1e-6)


@pytest.mark.parametrize(
    "strokes, line",
    [
        ([[(100, 200), (777, 250), (300, 400)], [(500, 600)]], 6),  # few points: MAD, not IQR, still sees it
        ([[(100 + i, 200 + 3 * i) for i in range(50)] + [(150, -777)]], 55),
    ],
)
def test_far_coordinates_are_refused_with_file_and_line(stroke_text, strokes, line):
    text = stroke_text(strokes).replace("777", "1e12")
    with pytest.raises(StrokeFileError, match="far outside the file's other points") as info:
        parse(text, "W3/12.3.txt")
    assert str(info.value).startswith(f"W3/12.3.txt, line {line}:") and info.value.line == line
    spread = [[(1000, 1000)] * 30 + [(1000, 1400), (1100, 1500)]]  # mostly one spot, a short stroke away: valid
    assert len(parse(stroke_text(spread), "f").strokes) == 1


def test_images_and_binary_files_are_not_stroke_files(tmp_path):
    from PIL import Image

    params = {"scale": 64, "field": 95, "encoding": "direction"}
    Image.new("L", (28, 28)).save(tmp_path / "digit.png")
    with pytest.raises(
        RawDataError, match="digit.png: a PNG image, not a stroke file. The assamese converter and its models read"
    ):
        assamese.read_input(tmp_path / "digit.png", params)
    (tmp_path / "blob.txt").write_bytes(b"CHARACTER_NAME: A\0\1\2")
    with pytest.raises(RawDataError, match="blob.txt: a binary file, not a stroke file"):
        assamese.read_input(tmp_path / "blob.txt", params)


def test_tolerates_missing_markers_dots_and_crlf(stroke_text):
    text = _bad(stroke_text).replace("PEN_UP                  0\r\nPEN_DOWN\r\n", "", 1)  # no PEN_UP/PEN_DOWN between
    parsed = parse(text, "f")
    assert parsed.character_name == "A" and [len(s) for s in parsed.strokes] == [3, 1]
    np.testing.assert_array_equal(parsed.strokes[1], [[5, 9]])
    assert [len(s) for s in parse_strokes(text.replace("\r\n", "\n"))] == [3, 1]
    assert parse(stroke_text([LINE], "KA KHA GA"), "f").character_name == "KA KHA GA"  # a 4-word name is no row


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


def test_convert_degenerate_characters_and_report_folders(assamese_tree, tmp_path, stroke_text):
    from click.testing import CliRunner

    from sparsenet.cli import main

    (assamese_tree / "W3" / "9.3.txt").mkdir()  # a folder named like a stroke file
    (assamese_tree / "W4" / "1.4.txt").write_text(stroke_text([DOT]), newline="")  # a full stop
    (assamese_tree / "W4" / "2.4.txt").write_text(stroke_text([[(0, 4), (9, 4)]]), newline="")  # a hyphen
    (assamese_tree / "W4" / "3.4.txt").write_text(
        stroke_text([[(3, 0), (3, 9)], [(3, 9)]]), newline=""
    )  # "1", a tap at its end
    args = ["preprocess", "assamese", "--source", str(assamese_tree), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*args, "--train-writers", "1-3", "--test-writers", "4"])
    assert result.exit_code == 0, result.output
    assert "skipped W3/9.3.txt: a folder, not a data file" in result.output
    test = {s.sample_id: s for s in ShardReader(tmp_path / "out" / "test")}
    assert test["W4/1.4.txt"].coords.tolist() == [[47, 47]]
    assert test["W4/2.4.txt"].coords[:, 0].tolist() == [47] * 65
    assert test["W4/3.4.txt"].coords[:, 1].tolist() == [47] * 65
    assert not (tmp_path / "out" / "train" / "9.3.txt").exists()


def test_convert_bad_file_writes_nothing(assamese_tree, tmp_path, stroke_text):
    (assamese_tree / "W4" / "2.4.txt").write_text(stroke_text([LINE])[:-40], newline="")
    with pytest.raises(StrokeFileError, match=r"W4/2.4.txt, line \d+: the file ends without END_CHARACTER"):
        assamese.convert(assamese_tree, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (assamese_tree / "W4" / "2.4.txt").write_bytes(b"\xff\xd8\xff\xe0\0\x10JFIF")
    with pytest.raises(RawDataError, match="W4/2.4.txt: a binary file, not a stroke file"):
        assamese.convert(assamese_tree, tmp_path / "out")
    (assamese_tree / "W4" / "2.4.txt").unlink()
    (assamese_tree / "W4" / "0.4.txt").write_text(stroke_text([LINE]), newline="")
    with pytest.raises(RawDataError, match="W4/0.4.txt: class 0 in the file name"):
        assamese.convert(assamese_tree, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"writers \[3\] are in both"):
        assamese.convert(assamese_tree, tmp_path / "out", train_writers=[1, 3], test_writers=[3])
