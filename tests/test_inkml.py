"""InkML corpora -> shards: trace formats, truth-annotated groups, labels, splits, refusals, predict input."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from preprocess import inkml
from preprocess.strokes import render
from sparsenet.cli import main
from sparsenet.errors import ConfigError, DatasetError, RawDataError
from sparsenet.shards import ShardReader

NS = 'xmlns="http://www.w3.org/2003/InkML"'


def trace(points, channels=None, ident=None) -> str:
    """A <trace> of ``points`` [(x, y), ...]; ``channels`` maps each point to its full value list."""
    rows = [channels(x, y, k) if channels else (x, y) for k, (x, y) in enumerate(points)]
    attr = f' xml:id="{ident}"' if ident else ""
    return f"<trace{attr}>" + ", ".join(" ".join(str(v) for v in row) for row in rows) + "</trace>"


def ink(*body: str, truth: str | None = None, fmt: str = "") -> str:
    note = f'<annotation type="truth">{truth}</annotation>' if truth else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<ink {NS}>{fmt}{note}' + "".join(body) + "</ink>"


def shape(kind: str, k: int) -> list[list[tuple[int, int]]]:
    """Strokes of a synthetic symbol, varied by ``k``: a vee, a box, or a cross."""
    if kind == "vee":
        return [[(0, 0), (10 + k, 30), (20, 0 + k)]]
    if kind == "box":
        return [[(0, 0), (20, 0), (20, 20 + k), (0, 20 + k), (0, 0)]]
    return [[(0, 10), (30, 12 + k)], [(15, 0), (14 - k, 25)]]


TXYF = (
    '<traceFormat><channel name="T"/><channel name="X"/><channel name="Y"/>'
    '<channel name="F" type="boolean"/></traceFormat>'
)


def file_text(kind: str, k: int, *, truth: str | None = None) -> str:
    """Symbol files in three dialects: plain X Y, T X Y F with a traceFormat in <definitions>, X Y T comma-less."""
    strokes = shape(kind, k)
    if k % 3 == 0:
        return ink(*(trace(s) for s in strokes), truth=truth)
    if k % 3 == 1:
        fmt = f"<definitions>{TXYF}</definitions>"
        body = [trace(s, lambda x, y, i: (i * 10, x, y, "T" if i % 2 else "F")) for s in strokes]
        return ink(*body, truth=truth, fmt=fmt)
    fmt = '<traceFormat><channel name="X"/><channel name="Y"/><channel name="T"/></traceFormat>'
    body = ["<trace>" + " ".join(f"{x} {y} {i}" for i, (x, y) in enumerate(s)) + "</trace>" for s in strokes]
    return ink(*body, truth=truth, fmt=fmt)


def expression(symbols: list[tuple[str, str, int]]) -> str:
    """A CROHME-style file: traces at the top, symbol groups inside a "Segmentation" group by traceView."""
    traces, groups, n = [], [], 0
    for label, kind, k in symbols:
        refs = []
        for stroke in shape(kind, k):
            traces.append(trace(stroke).replace("<trace>", f'<trace id="{n}">'))
            refs.append(f'<traceView traceDataRef="{n}"/>')
            n += 1
        gid = f"g{len(groups)}"
        groups.append(
            f'<traceGroup xml:id="{gid}"><annotation type="truth">{label}</annotation>{"".join(refs)}</traceGroup>'
        )
    segmentation = '<traceGroup xml:id="seg"><annotation type="truth">Segmentation</annotation>'
    return ink(*traces, segmentation + "".join(groups) + "</traceGroup>", truth="$expr$")


def render_symbol(kind: str, k: int, encoding: str = "direction"):
    return render([np.array(s, dtype=np.float64) for s in shape(kind, k)], scale=64, field=95, encoding=encoding)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def by_folder(tmp_path) -> Path:
    """Five files per class folder (vee, box), plus a cross in misc/ whose truth says "plus"."""
    files = {f"{kind}/{kind}{k}.inkml": file_text(kind, k) for kind in ("vee", "box") for k in range(5)}
    files["misc/odd.inkml"] = file_text("cross", 0, truth="plus")
    return write(tmp_path / "corpus", files)


def read_all(folder: Path) -> dict[str, tuple[str, object]]:
    reader = ShardReader(folder)
    return {s.sample_id: (reader.meta.class_names[s.label], s) for s in reader}


def assert_rendered(sample, kind: str, k: int) -> None:
    coords, features = render_symbol(kind, k)
    np.testing.assert_array_equal(sample.coords, coords)
    np.testing.assert_allclose(sample.features, features, atol=1e-6)


def test_points_from_every_dialect_match_the_written_strokes():
    for k in range(3):
        (symbol,) = inkml.parse(file_text("cross", k).encode())
        assert symbol.truth is None and len(symbol.strokes) == 2
        for got, want in zip(symbol.strokes, shape("cross", k)):
            np.testing.assert_array_equal(got, np.array(want, dtype=float))


def test_values_need_no_space_before_a_sign_and_intermittent_channels_may_be_absent():
    fmt = (
        '<traceFormat><channel name="X"/><channel name="Y"/>'
        '<intermittentChannels><channel name="F"/></intermittentChannels></traceFormat>'
    )
    text = f"<ink>{fmt}<trace>1-2, 3 4 0.5,!5 -6</trace></ink>"  # namespace-less, explicit-value mark
    (symbol,) = inkml.parse(text.encode())
    np.testing.assert_array_equal(symbol.strokes[0], [[1, -2], [3, 4], [5, -6]])


def test_pen_up_traces_are_skipped():
    text = ink('<trace type="penUp">0 0, 50 50</trace>', trace([(1, 1), (2, 3)]))
    (symbol,) = inkml.parse(text.encode())
    assert len(symbol.strokes) == 1 and symbol.strokes[0].tolist() == [[1, 1], [2, 3]]


def test_innermost_truth_groups_are_the_samples():
    symbols = inkml.parse(expression([("a", "vee", 1), ("+", "cross", 2)]).encode())
    assert [(s.truth, s.group, len(s.strokes)) for s in symbols] == [("a", "g0", 1), ("+", "g1", 2)]
    np.testing.assert_array_equal(symbols[1].strokes[1], np.array(shape("cross", 2)[1], dtype=float))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (ink("<trace>1 2, '1 '1</trace>"), "difference-encoded"),
        (ink("<trace>1 2, '1 '1, \"0 \"0</trace>"), "difference-encoded"),
        (ink("<trace>1 2, ? 3</trace>"), "notation '\\?'"),
        (ink("<trace>1 2, * 3</trace>"), "notation"),
        (ink("<trace>#1F 2</trace>"), "notation"),
        (ink("<trace>1 2, 3 x</trace>"), "cannot read the point"),
        (ink("<trace>" + "1" * 3000 + "x</trace>"), "cannot read the point"),  # in linear time
        (ink("<trace>1 2, 3</trace>"), "a point of 1 values"),
        (ink("<trace>1 2 3</trace>"), "do not form points"),
        (ink("<trace>  </trace>"), "no points"),
        (ink(f"<definitions>{TXYF}</definitions>", "<trace>0 1 2 T, 1 T 3 F</trace>"), "must be numbers"),
        (ink('<traceView traceDataRef="#t9"/>'), "refers to 't9'"),
        (
            ink(
                '<definitions><trace xml:id="t">1 2</trace></definitions>',
                '<traceView traceDataRef="#t" from="1" to="2"/>',
            ),
            "ranges",
        ),
        (ink(trace([(0, 0)])), None),  # the control: readable
        (ink('<traceFormat><channel name="T"/><channel name="Y"/></traceFormat>', trace([(0, 0)])), "no regular X"),
        (ink(TXYF, '<traceFormat><channel name="X"/><channel name="Y"/></traceFormat>'), "2 different traceFormats"),
        ("<svg><trace>1 2</trace></svg>", "not an InkML file"),
        (ink("<trace>1 2</trace>")[:-10], "not well-formed"),
        (ink('<annotation type="truth"> </annotation>', trace([(0, 0)])), "empty truth"),
        ('<!DOCTYPE ink [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ink><trace>1 2</trace></ink>', "DTD"),
        ('<!DOCTYPE ink [<!ENTITY x SYSTEM "file:///etc/passwd">]><ink>&x;</ink>', "DTD"),
    ],
)
def test_unsupported_and_broken_files_name_the_file(text, match):
    if match is None:
        assert inkml.parse(text.encode(), "sym.inkml")
        return
    with pytest.raises(RawDataError, match=f"^sym.inkml: .*{match}"):
        inkml.parse(text.encode(), "sym.inkml")


def test_folder_labels_truth_and_seeded_fraction_split(by_folder, tmp_path):
    out = tmp_path / "out"
    summary = inkml.convert(by_folder, out, test_fraction=0.2, seed=3)
    assert summary["split"] == "fraction" and summary["num_classes"] == 3
    assert summary["samples"] == {"train": 9, "test": 2}  # per folder round(0.2 * 5) = 1; misc's one file stays
    train, test = read_all(out / "train"), read_all(out / "test")
    meta = ShardReader(out / "train").meta
    assert meta.class_names == ("box", "plus", "vee") and meta.converter == "inkml" and meta.dataset == "inkml"
    assert meta.feature_names == ("dx", "dy", "ink") and meta.spatial_shape == (95, 95)
    assert sorted({i.split("/")[0] for i in test}) == ["box", "vee"]
    assert set(train) | set(test) == {f"{c}/{c}{k}.inkml" for c in ("vee", "box") for k in range(5)} | {
        "misc/odd.inkml"
    }
    for sample_id, (label, sample) in (train | test).items():
        kind, k = ("cross", 0) if label == "plus" else (label, int(sample_id[-7]))
        assert label == ("plus" if "misc" in sample_id else sample_id.split("/")[0])
        assert_rendered(sample, kind, k)
    inkml.convert(by_folder, tmp_path / "again", test_fraction=0.2, seed=3)
    assert set(read_all(tmp_path / "again" / "test")) == set(test)
    assert ShardReader(out / "test").meta.params["test_fraction"] == 0.2


def test_split_folders_with_truth_groups(tmp_path):
    files = {
        "train/e1.inkml": expression([("a", "vee", 0), ("+", "cross", 1)]),
        "train/e2.inkml": expression([("a", "vee", 2)]),
        "test/e3.inkml": expression([("+", "cross", 3), ("a", "vee", 4)]),
        "train/box/b.inkml": file_text("box", 1),  # no truth: its folder
    }
    summary = inkml.convert(write(tmp_path / "c", files), tmp_path / "out", encoding="simple")
    assert summary["split"] == "folder" and summary["samples"] == {"train": 4, "test": 2}
    train = read_all(tmp_path / "out" / "train")
    assert {i: label for i, (label, _) in train.items()} == {
        "train/box/b.inkml": "box",
        "train/e1.inkml#g0": "a",
        "train/e1.inkml#g1": "+",
        "train/e2.inkml#g0": "a",
    }
    test = ShardReader(tmp_path / "out" / "test")
    assert [s.sample_id for s in test] == ["test/e3.inkml#g0", "test/e3.inkml#g1"]
    coords, features = render_symbol("cross", 3, "simple")
    np.testing.assert_array_equal(test[0].coords, coords)
    assert test.meta.class_names == ("+", "a", "box") and test[0].label == 0 and test[1].label == 1


def test_split_file_and_its_errors(by_folder, tmp_path):
    listing = tmp_path / "split.tsv"
    lines = ["# path<TAB>split", "vee/vee0.inkml\ttest", "box/box0.inkml\ttest", "misc/odd.inkml  train"]
    lines += [f"{c}/{c}{k}.inkml\ttrain" for c in ("vee", "box") for k in range(1, 4)]
    listing.write_text("\n".join(lines) + "\n\n")
    summary = inkml.convert(by_folder, tmp_path / "out", split_file=listing)
    assert summary["split"] == "list" and summary["samples"] == {"train": 7, "test": 2}
    assert summary["skipped"] == [f"2 files not listed in {listing} (first: box/box4.inkml)"]
    assert set(read_all(tmp_path / "out" / "test")) == {"vee/vee0.inkml", "box/box0.inkml"}
    listing.write_text("vee/vee9.inkml\ttrain\n")
    with pytest.raises(RawDataError, match="1 listed files are not in .*first: vee/vee9.inkml"):
        inkml.convert(by_folder, tmp_path / "x", split_file=listing)
    listing.write_text("vee/vee0.inkml\ttrain\nvee/vee0.inkml\ttest\n")
    with pytest.raises(ConfigError, match="line 2: vee/vee0.inkml is listed in both train and test"):
        inkml.convert(by_folder, tmp_path / "x", split_file=listing)
    with pytest.raises(ConfigError, match="goes with the split rule 'list'"):
        inkml.convert(by_folder, tmp_path / "x", split="fraction", split_file=listing)


def test_an_archive_reads_as_its_folder(by_folder, tmp_path):
    archive = tmp_path / "corpus.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(by_folder, arcname="corpus")
    inkml.convert(by_folder, tmp_path / "a", seed=1)
    inkml.convert(archive, tmp_path / "b", seed=1)
    for split in ("train", "test"):
        a, b = ShardReader(tmp_path / "a" / split), ShardReader(tmp_path / "b" / split)
        assert [s.sample_id for s in a] == [s.sample_id for s in b] and a.meta.class_names == b.meta.class_names
        assert all(np.array_equal(x.coords, y.coords) for x, y in zip(a, b))


def test_a_broken_file_stops_the_conversion_before_any_output(by_folder, tmp_path):
    (by_folder / "vee" / "vee9.inkml").write_text(ink("<trace>0 0, '1 '2</trace>"))
    with pytest.raises(RawDataError, match=r"vee/vee9.inkml: trace \(no id\): difference-encoded"):
        inkml.convert(by_folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (by_folder / "vee" / "vee9.inkml").unlink()
    (by_folder / "top.inkml").write_text(file_text("box", 0))  # no truth, no folder
    with pytest.raises(RawDataError, match="top.inkml: no truth annotation and no class folder"):
        inkml.convert(by_folder, tmp_path / "out")


def test_options_are_checked_and_output_is_not_overwritten(by_folder, tmp_path):
    with pytest.raises(ConfigError, match="unknown encoding"):
        inkml.convert(by_folder, tmp_path / "out", encoding="polar")
    with pytest.raises(ConfigError, match="smaller than the field"):
        inkml.convert(by_folder, tmp_path / "out", scale=95, field=95)
    inkml.convert(by_folder, tmp_path / "out", dataset="pen-symbols")
    assert ShardReader(tmp_path / "out" / "train").meta.dataset == "pen-symbols"
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="notes.txt"):  # a file sparsenet did not write stops the replacement
        inkml.convert(by_folder, tmp_path / "out")
    inkml.convert(by_folder, tmp_path / "out", overwrite=True, encoding="octogram")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"  # --overwrite keeps it
    assert len(ShardReader(tmp_path / "out" / "train").meta.feature_names) == 9


def test_degenerate_symbols_convert(tmp_path):
    files = {
        "dot/a.inkml": ink(trace([(5, 5)])),
        "dot/b.inkml": ink(trace([(5, 5)])),
        "bar/a.inkml": ink(trace([(5, 0), (5, 40)])),
        "bar/b.inkml": ink(trace([(0, 7), (30, 7)])),
    }
    summary = inkml.convert(write(tmp_path / "c", files), tmp_path / "out", split="fraction", test_fraction=0.5)
    assert summary["samples"] == {"train": 2, "test": 2}


def test_read_input_matches_the_converted_sample(by_folder, tmp_path):
    inkml.convert(by_folder, tmp_path / "out", encoding="octogram", scale=40, field=60)
    reader = ShardReader(tmp_path / "out" / "train")
    stored = reader[0]
    sample = inkml.read_input(by_folder / stored.sample_id, reader.meta.params)
    assert sample.label == -1
    np.testing.assert_array_equal(sample.coords, stored.coords)
    np.testing.assert_array_equal(sample.features, stored.features)
    several = tmp_path / "e.inkml"
    several.write_text(expression([("a", "vee", 0), ("+", "cross", 1)]))
    with pytest.raises(RawDataError, match="holds 2 annotated symbols"):
        inkml.read_input(several, reader.meta.params)


def test_cli_converts_and_reports_errors(by_folder, tmp_path):
    args = ["preprocess", "inkml", "--source", str(by_folder), "--out", str(tmp_path / "out"), "--encoding", "simple"]
    result = CliRunner().invoke(main, [*args, "--test-fraction", "0.4", "--name", "mine"])
    assert result.exit_code == 0, result.output
    assert "wrote 7 train, 4 test samples" in result.output
    assert ShardReader(tmp_path / "out" / "test").meta.dataset == "mine"
    (tmp_path / "out" / "thesis.tex").write_text("mine")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "thesis.tex" in again.output and "--overwrite" in again.output
    (by_folder / "box" / "bad.inkml").write_text("<ink><trace>1 2")
    broken = CliRunner().invoke(main, [*args, "--overwrite"])
    assert broken.exit_code == 1 and f"Error: {by_folder / 'box' / 'bad.inkml'}: not well-formed XML" in broken.output
