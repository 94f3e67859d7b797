"""Image folders -> shards: sites against the generated pixels, labels, splits, masks, refusals, train and predict."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from preprocess import image_folder
from sparsenet.cli import main
from sparsenet.errors import ConfigError, RawDataError
from sparsenet.shards import ShardReader

CLASSES = ("bars", "dots")


def picture(kind: str, k: int, shape=(14, 18), background: int = 20) -> np.ndarray:
    """uint8 [H, W]: a bar or a few dots of varied grey levels on a flat background, some ink on the border."""
    rng = np.random.default_rng([k, len(kind)])
    image = np.full(shape, background, dtype=np.uint8)
    if kind == "bars":
        image[2:-2, 3 + k] = 200 - k
        image[0, :] = 90  # a border row that is not background: the median of the whole border ignores it
    else:
        ys, xs = rng.integers(0, shape[0], 4), rng.integers(0, shape[1], 4)
        image[ys, xs] = rng.integers(40, 255, 4)
    return image


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def grey_tree(root: Path, splits: dict[str, int]) -> dict[str, np.ndarray]:
    """``root/<split>/<class>/<k>.png`` (or ``root/<class>/..`` for split "") -> the written pixels by name."""
    written = {}
    for split, count in splits.items():
        for kind in CLASSES:
            for k in range(count):
                name = f"{split}/{kind}/{k}.png".lstrip("/")
                written[name] = picture(kind, k + (3 if split == "test" else 0))
                save(root / name, written[name])
    return written


def expected_sites(image: np.ndarray, threshold: float = 0.0, background=None):
    """The oracle: sites and features from the written pixels [H, W, C] (border pixels each counted once)."""
    image = image.reshape(*image.shape[:2], -1).astype(np.float64)
    h, w = image.shape[:2]
    on_border = np.zeros((h, w), dtype=bool)
    on_border[[0, -1], :] = on_border[:, [0, -1]] = True
    if background is None:
        background = np.median(image[on_border], axis=0)
    diff = image - np.asarray(background, dtype=np.float64)
    ys, xs = np.nonzero((np.abs(diff) > threshold).any(axis=2))
    return np.stack([ys, xs], axis=1), diff[ys, xs] / 255


def check_split(folder: Path, written: dict[str, np.ndarray], **site_options) -> ShardReader:
    reader = ShardReader(folder)
    assert list(reader.meta.class_names) == sorted(CLASSES)
    for sample in reader:
        coords, features = expected_sites(written[sample.sample_id], **site_options)
        np.testing.assert_array_equal(sample.coords, coords)
        np.testing.assert_allclose(sample.features, features, atol=1e-6)
        assert reader.meta.class_names[sample.label] == sample.sample_id.split("/")[-2]
    return reader


def test_split_folders_sites_and_labels(tmp_path):
    written = grey_tree(tmp_path / "imgs", {"train": 4, "test": 2})
    summary = image_folder.convert(tmp_path / "imgs", tmp_path / "out")
    assert summary["split"] == "folder" and summary["samples"] == {"train": 8, "test": 4}
    train = check_split(tmp_path / "out" / "train", written)
    check_split(tmp_path / "out" / "test", written)
    assert train.meta.spatial_shape == (14, 18) and train.meta.feature_names == ("grey",)
    assert train.meta.converter == "images" and train.meta.dataset == "images"
    assert [s.sample_id for s in train][:2] == ["train/bars/0.png", "train/bars/1.png"]
    thresholded = image_folder.convert(tmp_path / "imgs", tmp_path / "t", threshold=100, background=20)
    assert thresholded["samples"] == {"train": 8, "test": 4}
    check_split(tmp_path / "t" / "train", written, threshold=100, background=[20])


def test_rgb_on_white_with_given_and_auto_background(tmp_path):
    written = {}
    for kind in CLASSES:
        for k in range(3):
            rgb = np.full((10, 12, 3), 255, dtype=np.uint8)
            mask = picture(kind, k, (10, 12), 0) > 0
            rgb[mask] = (np.array([200, 30, 90]) + 10 * k).astype(np.uint8)
            written[f"{kind}/{k}.png"] = rgb
            save(tmp_path / "imgs" / kind / f"{k}.png", rgb)
    image_folder.convert(
        tmp_path / "imgs", tmp_path / "a", channels="rgb", background="255,255,255", test_fraction=0.34
    )
    image_folder.convert(tmp_path / "imgs", tmp_path / "b", channels="rgb", test_fraction=0.34)
    for out in ("a", "b"):
        reader = check_split(tmp_path / out / "train", written, background=[255, 255, 255])
        assert reader.meta.feature_names == ("red", "green", "blue") and len(reader) == 4
    with pytest.raises(ConfigError, match="one value or one per rgb channel"):
        image_folder.convert(tmp_path / "imgs", tmp_path / "c", channels="rgb", background="1,2")


def test_seeded_fraction_split_is_stratified_by_class(tmp_path):
    grey_tree(tmp_path / "imgs", {"": 5})
    summary = image_folder.convert(tmp_path / "imgs", tmp_path / "a", test_fraction=0.4, seed=7)
    assert summary["split"] == "fraction" and summary["samples"] == {"train": 6, "test": 4}
    test = [s.sample_id for s in ShardReader(tmp_path / "a" / "test")]
    assert sorted(i.split("/")[0] for i in test) == ["bars", "bars", "dots", "dots"]
    image_folder.convert(tmp_path / "imgs", tmp_path / "b", test_fraction=0.4, seed=7)
    assert [s.sample_id for s in ShardReader(tmp_path / "b" / "test")] == test
    others = set()
    for seed in range(8):
        image_folder.convert(tmp_path / "imgs", tmp_path / "c", test_fraction=0.4, seed=seed, overwrite=True)
        others.add(tuple(s.sample_id for s in ShardReader(tmp_path / "c" / "test")))
    assert len(others) > 1  # the seed moves files between the splits


def test_split_file_and_zip_archive(tmp_path):
    written = grey_tree(tmp_path / "imgs", {"": 3})
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in written:
            z.write(tmp_path / "imgs" / name, f"imgs/{name}")
    listing = tmp_path / "split.txt"
    listing.write_text("bars/0.png\tval\ndots/2.png\tval\n" + "".join(f"{c}/1.png\ttrain\n" for c in CLASSES))
    summary = image_folder.convert(archive, tmp_path / "out", split_file=listing)
    assert summary["samples"] == {"train": 2, "val": 2} and "2 files not listed" in summary["skipped"][0]
    val = check_split(tmp_path / "out" / "val", written)
    assert [s.sample_id for s in val] == ["bars/0.png", "dots/2.png"]


def test_sparsity_keeps_an_exact_count_and_normalises_with_the_training_pixels(tmp_path):
    written = grey_tree(tmp_path / "imgs", {"train": 3, "test": 1})
    image_folder.convert(tmp_path / "imgs", tmp_path / "a", sparsity=0.75, seed=1)
    reader = ShardReader(tmp_path / "a" / "train")
    pixels = np.stack([written[s.sample_id] for s in reader]) / 255
    params = reader.meta.params
    np.testing.assert_allclose(params["mean"], [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(params["std"], [pixels.std()], rtol=1e-9)
    for split in ("train", "test"):
        for sample in ShardReader(tmp_path / "a" / split):
            assert len(sample.coords) == 14 * 18 - round(0.75 * 14 * 18)
            value = written[sample.sample_id][sample.coords[:, 0], sample.coords[:, 1]] / 255
            np.testing.assert_allclose(sample.features[:, 0], (value - pixels.mean()) / pixels.std(), atol=1e-5)
    image_folder.convert(tmp_path / "imgs", tmp_path / "b", sparsity=0.75, seed=1)
    image_folder.convert(tmp_path / "imgs", tmp_path / "c", sparsity=0.75, seed=2)
    first, same, other = (ShardReader(tmp_path / d / "train")[0].coords for d in "abc")
    np.testing.assert_array_equal(first, same)
    assert not np.array_equal(first, other)


def test_size_crops_the_centre_square_and_resizes(tmp_path):
    tall = np.arange(30 * 20, dtype=np.uint8).reshape(30, 20)
    save(tmp_path / "imgs" / "train" / "a" / "tall.png", tall)
    save(tmp_path / "imgs" / "test" / "a" / "wide.png", tall.T.copy())
    image_folder.convert(tmp_path / "imgs", tmp_path / "out", size=8, background=0)
    for split in ("train", "test"):
        (sample,) = ShardReader(tmp_path / "out" / split)
        source = Image.fromarray(tall if "tall" in sample.sample_id else tall.T.copy())
        w, h = source.size
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        resized = np.asarray(source.resize((8, 8), Image.Resampling.BILINEAR, box=box))
        coords, features = expected_sites(resized, background=[0])
        np.testing.assert_array_equal(sample.coords, coords)
        np.testing.assert_allclose(sample.features, features, atol=1e-6)


def test_jpeg_sites_follow_the_decoded_pixels(tmp_path):
    for kind in CLASSES:
        for k in range(2):
            save(tmp_path / "imgs" / kind / f"{k}.jpg", picture(kind, k), quality=90)
    image_folder.convert(tmp_path / "imgs", tmp_path / "out", threshold=30, test_fraction=0.5)
    for sample in ShardReader(tmp_path / "out" / "train"):
        decoded = np.asarray(Image.open(tmp_path / "imgs" / sample.sample_id).convert("L"))
        coords, _ = expected_sites(decoded, threshold=30)
        np.testing.assert_array_equal(sample.coords, coords)


def fake_png(folder: Path) -> Path:
    (folder / "bars" / "fake.png").write_text("not an image")
    return folder / "bars" / "fake.png"


def truncated_png(folder: Path) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(picture("bars", 0)).save(buffer, format="PNG")
    (folder / "bars" / "cut.png").write_bytes(buffer.getvalue()[:60])
    return folder / "bars" / "cut.png"


def other_size(folder: Path) -> Path:
    return save(folder / "dots" / "big.png", np.zeros((20, 20), dtype=np.uint8) + picture("dots", 1, (20, 20)))


def blank(folder: Path) -> Path:
    return save(folder / "dots" / "blank.png", np.full((14, 18), 20, dtype=np.uint8))


def outside(folder: Path) -> Path:
    return save(folder / "loose.png", picture("bars", 0))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (fake_png, "cannot decode the image"),
        (truncated_png, "cannot decode the image"),
        (other_size, "20x20 pixels, but other images are 18x14; pass --size"),
        (blank, "blank: no pixel differs from the background"),
        (outside, "not in a class folder"),
    ],
)
def test_bad_files_are_named_and_nothing_is_written(tmp_path, make, match):
    grey_tree(tmp_path / "imgs", {"": 2})
    bad = make(tmp_path / "imgs")
    with pytest.raises(RawDataError, match=match) as err:
        image_folder.convert(tmp_path / "imgs", tmp_path / "out")
    assert str(err.value).startswith(f"{bad}: ")
    assert not (tmp_path / "out").exists()


def test_read_input_matches_the_converted_sample(tmp_path):
    grey_tree(tmp_path / "imgs", {"train": 2, "test": 1})
    image_folder.convert(tmp_path / "imgs", tmp_path / "out", threshold=5)
    reader = ShardReader(tmp_path / "out" / "test")
    for stored in reader:
        sample = image_folder.read_input(tmp_path / "imgs" / stored.sample_id, reader.meta.params)
        np.testing.assert_array_equal(sample.coords, stored.coords)
        np.testing.assert_array_equal(sample.features, stored.features)
    other = save(tmp_path / "big.png", picture("bars", 0, (20, 20)))
    with pytest.raises(RawDataError, match="20x20 pixels, but the shards' images are 18x14"):
        image_folder.read_input(other, reader.meta.params)


def test_preprocess_train_and_predict_from_the_command_line(tmp_path):
    for split, count in (("train", 4), ("test", 2)):
        for kind in CLASSES:
            for k in range(count):
                save(tmp_path / "imgs" / split / kind / f"{k}.png", picture(kind, k, (16, 16)))
    runner = CliRunner()
    data, run = tmp_path / "data", tmp_path / "run"
    result = runner.invoke(
        main, ["preprocess", "images", "--source", str(tmp_path / "imgs"), "--out", str(data), "--size", "12"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 8 train, 4 test samples" in result.output
    train = ["train", "--data", str(data), "--out", str(run), "--model", "deepcnet", "--model-arg", "l=2"]
    train += ["--model-arg", "k=8", "--epochs", "1", "--procs", "1", "--batch-size", "4"]
    result = runner.invoke(main, train)
    assert result.exit_code == 0, result.output
    raw = tmp_path / "imgs" / "test" / "dots" / "0.png"
    result = runner.invoke(main, ["predict", "--checkpoint", str(run), "--json", str(raw)])
    assert result.exit_code == 0, result.output
    assert '"input": "' + str(raw) in result.output and '"name": "bars"' in result.output


def test_a_fraction_that_leaves_a_split_empty_is_refused(tmp_path):
    grey_tree(tmp_path / "imgs", {"": 1})
    with pytest.raises(RawDataError, match="leaves test/ empty"):
        image_folder.convert(tmp_path / "imgs", tmp_path / "out", test_fraction=0.2)


def test_a_test_fraction_resplits_a_train_test_layout_keeping_the_classes(tmp_path):
    written = grey_tree(tmp_path / "imgs", {"train": 4, "test": 1})
    summary = image_folder.convert(tmp_path / "imgs", tmp_path / "out", test_fraction=0.5)
    assert summary["split"] == "fraction" and summary["samples"] == {"train": 6, "test": 4}
    for split in ("train", "test"):
        check_split(tmp_path / "out" / split, written)  # classes are bars, dots: never the split folders
