"""sparsenet.bench.synthetic: the raw files parse with the real readers, and each class is its line."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess.assamese import parse
from preprocess.mnist import load, read_idx
from sparsenet.bench.synthetic import STEPS, digit_images, idx_bytes, write_idx_digits, write_stroke_files


def test_stroke_files_parse_as_lines_of_their_class(tmp_path):
    raw = write_stroke_files(tmp_path / "raw", writers=2, seed=3)
    files = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("*.txt"))
    assert files == ["W1/1.1.txt", "W1/2.1.txt", "W1/3.1.txt", "W2/1.2.txt", "W2/2.2.txt", "W2/3.2.txt"]
    for c, (dy, dx) in enumerate(STEPS, 1):
        parsed = parse((raw / "W2" / f"{c}.2.txt").read_text(), f"{c}.2.txt")
        assert parsed.character_name == f"C{c}" and len(parsed.strokes) == 1
        x, y = parsed.strokes[0].T
        # 10 or more points 40 tablet units apart along (dx, dy), each moved by up to 8 in x and y
        along, across = x * dx + y * dy, x * dy - y * dx
        assert np.ptp(along) >= (40 * 9 - 16) * (dx + dy)
        assert np.ptp(across) <= 16 * (dx + dy)


def test_stroke_files_depend_only_on_the_seed(tmp_path):
    a = write_stroke_files(tmp_path / "a", writers=1, seed=5)
    b = write_stroke_files(tmp_path / "b", writers=1, seed=5)
    c = write_stroke_files(tmp_path / "c", writers=1, seed=6)
    assert (a / "W1" / "2.1.txt").read_text() == (b / "W1" / "2.1.txt").read_text()
    assert (a / "W1" / "2.1.txt").read_text() != (c / "W1" / "2.1.txt").read_text()


def test_digit_images_draw_one_line_per_class():
    images, labels = digit_images(9, size=10, seed=1)
    assert images.dtype == np.uint8 and images.shape == (9, 10, 10)
    assert labels.tolist() == [0, 1, 2] * 3
    for image, label in zip(images, labels):
        y, x = np.nonzero(image)
        assert len(y) >= 10 // 2 and image[y, x].min() >= 120
        assert len({0: set(y), 1: set(x), 2: set(x - y)}[label]) == 1  # one row, one column, one diagonal


def test_idx_digits_read_back_with_the_mnist_reader(tmp_path):
    folder = write_idx_digits(tmp_path / "mnist", 12, 5, seed=2)
    data = load(folder)
    for split, count, seed in (("train", 12, 2), ("test", 5, 3)):
        images, labels = data[split]
        expected_images, expected_labels = digit_images(count, size=28, seed=seed)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_idx_bytes_round_trip_and_refuse_other_types():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(idx_bytes(array), "x", ndim=3), array)
    with pytest.raises(ValueError, match="uint8"):
        idx_bytes(array.astype(np.int32))
