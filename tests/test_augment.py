"""sparsenet.augment: affine moves of sparse sites, merged duplicates, turned pen directions;
a batch moved at once gives exactly what its samples give one by one."""

import math
import re
from dataclasses import replace

import numpy as np
import pytest
from synthetic import characters

from sparsenet.augment import (
    AUGMENTATIONS,
    RandomAffine,
    RandomShift,
    apply_affine,
    apply_affine_batch,
    direction_pairs,
    field_transform,
)
from sparsenet.shards import Sample

FEATURES = ("dx", "dy", "ink")  # the Assamese "direction" encoding
DIRECTIONS = direction_pairs(FEATURES)


def stroke(start: tuple[int, int], step: tuple[int, int], length: int) -> Sample:
    """A straight pen stroke of ``length`` sites from ``start`` (y, x) along ``step``, with direction features."""
    coords = np.array([(start[0] + i * step[0], start[1] + i * step[1]) for i in range(length)], dtype=np.int32)
    unit = np.array(step, dtype=np.float64) / np.hypot(*step)
    features = np.tile([unit[1], unit[0], 1.0], (length, 1)).astype(np.float32)
    return Sample(coords, features, 0, "stroke")


def rotation(alpha: float) -> np.ndarray:
    return np.array([[math.cos(alpha), -math.sin(alpha)], [math.sin(alpha), math.cos(alpha)]])


def components(coords: np.ndarray) -> int:
    """Number of 8-connected components of a set of sites."""
    todo, count = {tuple(c) for c in coords.tolist()}, 0
    while todo:
        count += 1
        stack = [todo.pop()]
        while stack:
            y, x = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if (y + dy, x + dx) in todo:
                        todo.remove((y + dy, x + dx))
                        stack.append((y + dy, x + dx))
    return count


def test_direction_pairs_match_y_and_x_names():
    assert direction_pairs(FEATURES) == ((1, 0),)
    assert direction_pairs(("ink",)) == ()
    assert direction_pairs(("ink", "dir_y", "dir_x", "y")) == ((1, 2),)


def test_identity_keeps_the_sample():
    sample = stroke((5, 3), (1, 1), 8)
    out = apply_affine(sample, np.eye(2), np.zeros(2), (20, 20), DIRECTIONS)
    assert sorted(map(tuple, out.coords.tolist())) == sorted(map(tuple, sample.coords.tolist()))
    np.testing.assert_allclose(out.features, sample.features, atol=1e-6)


def test_shift_moves_by_whole_cells_and_stays_inside():
    sample = stroke((1, 4), (0, 1), 5)  # row 1, columns 4..8, on a 10x10 field
    out = apply_affine(sample, np.eye(2), np.array([2.0, -3.0]), (10, 10))
    np.testing.assert_array_equal(np.sort(out.coords[:, 1]), [1, 2, 3, 4, 5])
    assert set(out.coords[:, 0]) == {3}
    clamped = apply_affine(sample, np.eye(2), np.array([-2.0, 2.0]), (10, 10))  # would leave at the top and right
    assert set(clamped.coords[:, 0]) == {0} and clamped.coords[:, 1].max() == 9 and len(clamped.coords) == 5


def test_rotation_turns_sites_and_directions_together():
    sample = stroke((10, 6), (0, 1), 9)  # horizontal, pen moving towards +x
    out = apply_affine(sample, rotation(math.pi / 2), np.zeros(2), (30, 30), DIRECTIONS)
    assert len(set(out.coords[:, 1])) == 1 and len(out.coords) == 9  # now vertical
    # p -> A p maps +x to -y: the pen now moves upwards, and the features must say so.
    np.testing.assert_allclose(out.features[:, 1], -1.0, atol=1e-6)  # dy
    np.testing.assert_allclose(out.features[:, 0], 0.0, atol=1e-6)  # dx


@pytest.mark.parametrize("seed", range(5))
def test_random_affine_directions_follow_the_moved_stroke(seed):
    sample = stroke((12, 10), (1, 2), 10)  # a slanted stroke in the middle of a 40x40 field
    a, _ = RandomAffine(translate=0).draw(np.random.default_rng(seed))
    out = apply_affine(sample, a, np.zeros(2), (40, 40), DIRECTIONS)
    moved = (sample.coords[[0, -1]] + 0.5 - (sample.coords.min(0) + sample.coords.max(0) + 1) / 2) @ a.T
    along = moved[1] - moved[0]  # (y, x) from the first to the last pen position
    direction = out.features[:, [1, 0]]  # (dy, dx) of every site
    cosine = direction @ along / np.linalg.norm(along) / np.linalg.norm(direction, axis=1)
    assert (cosine > 0.999).all()
    np.testing.assert_allclose(np.linalg.norm(direction, axis=1), 1.0, atol=1e-5)


def test_enlarging_leaves_no_holes():
    sample = stroke((8, 8), (1, 1), 10)
    out = apply_affine(sample, 1.6 * np.eye(2), np.zeros(2), (40, 40), DIRECTIONS)
    assert components(out.coords) == 1
    assert len(out.coords) >= 16


def test_shrinking_merges_duplicate_sites():
    sample = stroke((4, 4), (0, 1), 12)
    out = apply_affine(sample, 0.5 * np.eye(2), np.zeros(2), (20, 20), DIRECTIONS)
    assert len(np.unique(out.coords, axis=0)) == len(out.coords) <= 7
    np.testing.assert_allclose(out.features[:, 2], 1.0)  # ink: the mean of ones
    assert out.coords.dtype == np.int32 and out.features.dtype == np.float32


def test_sample_larger_than_the_field_keeps_the_inside_part():
    sample = stroke((2, 0), (0, 1), 10)
    out = apply_affine(sample, 2.0 * np.eye(2), np.zeros(2), (10, 10))
    assert len(out.coords) > 0
    assert (out.coords >= 0).all() and (out.coords < 10).all()


@pytest.mark.parametrize("name", ["affine", "affine-wide", "shift"])
def test_augmentation_is_a_function_of_the_generator(name):
    sample = stroke((10, 10), (1, 1), 8)
    transform = field_transform((32, 32), (32, 32), FEATURES, name)
    first = transform(sample, np.random.default_rng(7))
    again = transform(sample, np.random.default_rng(7))
    np.testing.assert_array_equal(first.coords, again.coords)
    np.testing.assert_array_equal(first.features, again.features)
    draws = {transform(sample, np.random.default_rng(s)).coords.tobytes() for s in range(10)}
    assert len(draws) > 3


def test_shift_stays_within_two_cells():
    sample = stroke((10, 10), (0, 1), 3)
    shifts = set()
    for seed in range(200):
        a, t = RandomShift().draw(np.random.default_rng(seed))
        np.testing.assert_array_equal(a, np.eye(2))
        shifts.add(tuple(t))
        out = apply_affine(sample, a, t, (28, 28))
        np.testing.assert_array_equal(np.sort(out.coords, axis=0), np.sort(sample.coords + t.astype(np.int32), axis=0))
    assert shifts == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_field_transform_centres_and_refuses_what_does_not_fit():
    sample = stroke((0, 0), (0, 1), 3)
    placed = field_transform((28, 28), (96, 96), ("ink",))(sample)
    np.testing.assert_array_equal(placed.coords[0], [34, 34])
    assert field_transform((28, 28), (96, 96), ("ink",)).augmentation is AUGMENTATIONS["none"]
    with pytest.raises(ValueError, match="40x40 field but the network takes 32x32"):
        field_transform((40, 40), (32, 32), ("ink",))
    with pytest.raises(ValueError, match="unknown augmentation 'flip'"):
        field_transform((32, 32), (32, 32), ("ink",), "flip")


@pytest.mark.parametrize("alpha", [0.2, math.pi / 4, 0.7])
def test_turned_strokes_stay_thin_and_connected(alpha):
    for step in ((0, 1), (1, 1), (1, -1)):
        sample = stroke((20, 20), step, 20)
        out = apply_affine(sample, rotation(alpha), np.zeros(2), (80, 80), DIRECTIONS)
        assert components(out.coords) == 1, step
        assert len(out.coords) <= 1.5 * 20, step  # a line, not a band


def assert_same(got: Sample, want: Sample) -> None:
    assert (got.label, got.sample_id) == (want.label, want.sample_id)
    assert got.coords.dtype == want.coords.dtype and got.features.dtype == want.features.dtype
    np.testing.assert_array_equal(got.coords, want.coords)
    np.testing.assert_array_equal(got.features, want.features)


@pytest.mark.parametrize("name", ["affine", "shift"])
def test_a_batch_is_transformed_exactly_as_its_samples_one_by_one(name):
    samples = characters(40, field=64, seed=1)  # 3 to 60 cells across
    transform = field_transform((64, 64), (80, 80), FEATURES, name)
    seeds = list(range(100, 140))
    batch = transform.batch(samples, [np.random.default_rng(s) for s in seeds])
    for sample, seed, out in zip(samples, seeds, batch):
        assert_same(out, transform(sample, np.random.default_rng(seed)))
    backwards = transform.batch(samples[::-1], [np.random.default_rng(s) for s in seeds[::-1]])
    for out, again in zip(batch, backwards[::-1]):  # the company a sample keeps does not matter
        assert_same(again, out)


def test_odd_samples_in_one_batch_move_as_they_do_alone():
    field = (40, 40)
    big = characters(1, field=40, seed=5)[0]
    cases = {  # name: (sample, a, t)
        "one site": (
            Sample(np.array([[0, 39]], np.int32), np.array([[0.6, 0.8, 1.0]], np.float32), 1),
            rotation(1.0),
            [0.5, 3.0],
        ),
        "character": (big, 1.1 * rotation(-0.2), [1.5, -2.5]),
        "leaves the field": (stroke((30, 20), (1, 1), 9), np.eye(2), [6.0, 0.0]),
        "larger than the field": (stroke((2, 0), (0, 1), 30), 2.0 * np.eye(2), [0.0, 0.0]),
        "shrinks onto shared sites": (stroke((4, 4), (0, 1), 12), 0.3 * np.eye(2), [0.0, 0.0]),
        "enlarged diagonal": (stroke((5, 5), (1, -1), 5), 1.6 * rotation(0.3), [0.0, 0.0]),
    }
    samples = [replace(sample, sample_id=name) for name, (sample, _, _) in cases.items()]
    a = np.stack([np.asarray(m, dtype=np.float64) for _, m, _ in cases.values()])
    t = np.array([shift for _, _, shift in cases.values()])
    batch = dict(zip(cases, apply_affine_batch(samples, a, t, field, DIRECTIONS)))
    for sample, m, shift in zip(samples, a, t):
        assert_same(batch[sample.sample_id], apply_affine(sample, m, shift, field, DIRECTIONS))
    assert batch["leaves the field"].coords.max() == 39  # shifted back inside, not cut
    assert len(batch["leaves the field"].coords) == 9
    assert 0 < len(batch["larger than the field"].coords) < 60  # only the part inside stays
    assert len(batch["shrinks onto shared sites"].coords) <= 5
    assert len(batch["enlarged diagonal"].coords) > 5 and components(batch["enlarged diagonal"].coords) == 1


def test_a_batch_names_the_sample_with_no_site_left():
    kept = replace(stroke((5, 5), (0, 1), 3), sample_id="kept")
    lost = replace(stroke((5, 0), (0, 1), 10), sample_id="lost")  # twice as wide as the field, moved off it
    a, t = np.stack([np.eye(2), 2 * np.eye(2), np.eye(2)]), np.array([[0.0, 0.0], [0.0, 100.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="sample 'lost': no site left inside the field 10x10"):
        apply_affine_batch([kept, lost, kept], a, t, (10, 10))
    with pytest.raises(ValueError, match="sample 'lost': no site left"):
        apply_affine(lost, a[1], t[1], (10, 10))


def test_a_batch_without_augmentation_only_places():
    samples = characters(3, field=28, seed=2)
    placed = field_transform((28, 28), (32, 32), FEATURES).batch(samples, [None] * 3)
    for sample, out in zip(samples, placed):
        np.testing.assert_array_equal(out.coords, sample.coords + 2)
        assert out.features is sample.features


def test_an_empty_batch_gives_an_empty_batch():
    assert apply_affine_batch([], np.zeros((0, 2, 2)), np.zeros((0, 2)), (8, 8)) == []


def cross(arm: int, centre: int) -> Sample:
    """A plus sign of arms ``arm`` around site (centre, centre); features (u, v) = the site's offset
    from the centre along y and x, so every moved site (even merged or filled in) says where it came from."""
    d = np.arange(-arm, arm + 1)
    zeros = np.zeros_like(d)
    offsets = np.concatenate([np.stack([d, zeros], 1), np.stack([zeros[d != 0], d[d != 0]], 1)])
    return Sample((offsets + centre).astype(np.int32), offsets.astype(np.float32), 0, "cross")


def measured_map(name: str, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """(A [S, 2, 2], t [S, 2]) of augmentation ``name`` (as training builds it), fitted by least squares to
    where the cross's sites land: cell centre - cross centre = A · offset + t, one fit per seed."""
    field, centre, arm = (96, 96), 48, 12
    transform = field_transform(field, field, ("u", "v"), name)
    sample = cross(arm, centre)
    maps, shifts = [], []
    for seed in seeds:
        out = transform(sample, np.random.default_rng(seed))
        design = np.concatenate([out.features.astype(np.float64), np.ones((len(out.coords), 1))], axis=1)
        solution = np.linalg.lstsq(design, out.coords + 0.5 - (centre + 0.5), rcond=None)[0]  # [3, 2]
        maps.append(solution[:2].T)
        shifts.append(solution[2])
    return np.array(maps), np.array(shifts)


@pytest.mark.parametrize("name,stretch,alpha,translate", [("affine", 0.15, 0.2, 8), ("affine-wide", 0.3, 0.3, 12)])
def test_affine_ranges_measured_on_a_cross(name, stretch, alpha, translate):
    """Translation up to ±translate cells (and really used), stretch 1 ± stretch per axis, shear along one
    axis or rotation by up to ±alpha — each of the three kinds drawn about a third of the time."""
    maps, shifts = measured_map(name, range(300))
    tol = 0.03
    assert np.abs(shifts).max() <= translate + tol
    assert np.abs(shifts).max() > 0.9 * translate  # uniform on [-T, T]: mean |t| = T / 2
    assert 0.4 * translate < np.abs(shifts).mean() < 0.6 * translate
    assert (np.abs(shifts[:, 0] - shifts[:, 1]) > 1).mean() > 0.5  # the axes move independently
    kinds, alphas, stretches = [], [], []
    for a in maps:
        if abs(a[1, 0]) < tol:  # shear of y along x: [[s0, α s1], [0, s1]]
            kinds.append("shear-y")
            alphas.append(a[0, 1] / a[1, 1])
            stretches += [a[0, 0], a[1, 1]]
        elif abs(a[0, 1]) < tol:  # shear of x along y: [[s0, 0], [α s0, s1]]
            kinds.append("shear-x")
            alphas.append(a[1, 0] / a[0, 0])
            stretches += [a[0, 0], a[1, 1]]
        else:  # rotation R(α) · diag(s0, s1)
            kinds.append("rotation")
            angle = math.atan2(a[1, 0], a[0, 0])
            s0, s1 = np.hypot(*a[:, 0]), np.hypot(*a[:, 1])
            np.testing.assert_allclose(a, rotation(angle) @ np.diag([s0, s1]), atol=tol)
            alphas.append(angle)
            stretches += [s0, s1]
    alphas, stretches = np.array(alphas), np.array(stretches)
    assert np.abs(alphas).max() <= alpha + tol and alphas.max() > 0.85 * alpha and alphas.min() < -0.85 * alpha
    assert stretches.min() >= 1 - stretch - tol and stretches.max() <= 1 + stretch + tol
    assert stretches.min() < 1 - 0.8 * stretch and stretches.max() > 1 + 0.8 * stretch
    counts = {kind: kinds.count(kind) for kind in ("shear-y", "shear-x", "rotation")}
    assert min(counts.values()) > 0.2 * len(kinds), counts


def test_shift_ranges_measured_on_a_cross():
    """Whole-cell translations, each of -2..2 on each axis about a fifth of the time, nothing else."""
    maps, shifts = measured_map("shift", range(300))
    np.testing.assert_allclose(maps, np.broadcast_to(np.eye(2), maps.shape), atol=1e-9)
    np.testing.assert_allclose(shifts, np.round(shifts), atol=1e-9)
    for axis in range(2):
        values, counts = np.unique(np.round(shifts[:, axis]), return_counts=True)
        assert values.tolist() == [-2, -1, 0, 1, 2]
        assert counts.min() > 0.12 * len(shifts), counts


def test_no_augmentation_places_the_cross_unchanged():
    maps, shifts = measured_map("none", range(3))
    np.testing.assert_allclose(maps, np.broadcast_to(np.eye(2), maps.shape), atol=1e-9)
    np.testing.assert_allclose(shifts, 0, atol=1e-9)


def test_field_transform_places_non_square_fields_and_refuses_each_axis_that_does_not_fit():
    transform = field_transform((7, 6), (12, 16), FEATURES)
    assert transform.offset == (2, 5) and transform.directions == DIRECTIONS
    placed = transform(stroke((0, 0), (0, 1), 3))
    np.testing.assert_array_equal(placed.coords, [[2, 5], [2, 6], [2, 7]])
    assert placed.coords.dtype == np.int32
    message = "samples are on a 20x5 field but the network takes 12x30; preprocess with a field of at most 12x30"
    with pytest.raises(ValueError, match=re.escape(message)):
        field_transform((20, 5), (12, 30), FEATURES)
    with pytest.raises(ValueError, match=re.escape("samples are on a 5x40 field but the network takes 12x30")):
        field_transform((5, 40), (12, 30), FEATURES)
    with pytest.raises(
        ValueError, match=re.escape("unknown augmentation 'flip'; expected one of none, affine, affine-wide, shift")
    ):
        field_transform((5, 5), (12, 30), FEATURES, "flip")


def test_field_transform_turns_the_direction_features_it_augments():
    """Through ``field_transform(..., "affine")`` a horizontal stroke's (dy, dx) becomes the unit vector of
    A (0, 1) for the A drawn from the same generator."""
    sample = stroke((20, 14), (0, 1), 12)
    transform = field_transform((48, 48), (48, 48), FEATURES, "affine")
    for seed in range(10):
        a, _ = RandomAffine().draw(np.random.default_rng(seed))
        out = transform(sample, np.random.default_rng(seed))
        want = a @ [0.0, 1.0] / np.linalg.norm(a @ [0.0, 1.0])
        np.testing.assert_allclose(out.features[:, [1, 0]], np.broadcast_to(want, (len(out.coords), 2)), atol=1e-5)


def test_a_batch_needs_one_generator_per_sample():
    transform = field_transform((20, 20), (20, 20), FEATURES, "shift")
    sample = stroke((5, 5), (0, 1), 3)
    with pytest.raises(ValueError) as err:
        transform.batch([sample, sample], [np.random.default_rng(0)])
    assert str(err.value) == "augmentation needs one numpy Generator per sample; got 1 for 2 samples"


def test_a_sample_one_cell_larger_than_the_field_is_cut_not_shifted():
    """11 cells on a 10-cell field: the part inside stays where it is (the last cell is dropped)."""
    x = np.arange(11)
    sample = Sample(np.stack([np.full(11, 3), x], 1).astype(np.int32), x[:, None].astype(np.float32), 0, "long")
    out = apply_affine(sample, np.eye(2), np.zeros(2), (10, 10))
    np.testing.assert_array_equal(out.coords, [[3, x] for x in range(10)])
    np.testing.assert_array_equal(out.features[:, 0], np.arange(10))  # the same sites, not moved by one


def reference_affine(sample: Sample, a: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The module docstring's algorithm, site by site, for a sample that stays inside the field: (coords
    [m, 2] in row-major order, features [m, C]). Site centres move through p -> A (p - c) + c + t; between
    8-connected neighbours (a diagonal pair only where neither corner site exists) whose cells end up
    ``steps`` > 1 apart, points at k / steps (k = 1 .. steps - 1) are added with interpolated features;
    sites landing on one cell merge into the mean of their features."""
    grid = sample.coords.astype(np.int64)
    centre = (grid.min(0) + grid.max(0) + 1) / 2
    moved = (grid + 0.5 - centre) @ a.T + centre + t
    features = sample.features.astype(np.float64)
    occupied = {tuple(p) for p in grid.tolist()}
    points, values = list(moved), list(features)
    for i, (y, x) in enumerate(grid.tolist()):
        for j, (v, u) in enumerate(grid.tolist()):
            dy, dx = v - y, u - x
            if (dy, dx) not in ((0, 1), (1, 0), (1, 1), (1, -1)):
                continue
            if dy and dx and ((y, x + dx) in occupied or (y + dy, x) in occupied):
                continue
            steps = int(np.abs(np.floor(moved[i]) - np.floor(moved[j])).max())
            for k in range(1, steps):
                f = k / steps
                points.append(moved[i] * (1 - f) + moved[j] * f)
                values.append(features[i] * (1 - f) + features[j] * f)
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for cell, value in zip(np.floor(points).astype(np.int64).tolist(), values):
        groups.setdefault(tuple(cell), []).append(value)
    cells = sorted(groups)
    return np.array(cells), np.array([np.mean(groups[c], axis=0) for c in cells])


def blob(rng: np.random.Generator, name: str) -> Sample:
    """About a third of the cells of a random box up to 9x9 somewhere in a 20x20 corner, in random order,
    2 random features."""
    h, w = rng.integers(2, 10, size=2)
    cells = rng.permutation(np.argwhere(rng.random((h, w)) < 0.35))
    if not len(cells):
        cells = np.array([[0, 0]])
    coords = (cells + rng.integers(0, 10, size=2)).astype(np.int32)
    return Sample(coords, rng.normal(size=(len(cells), 2)).astype(np.float32), 0, name)


def test_moves_fills_and_merges_as_the_reference_does():
    """Random blobs, enlarged (up to 2.6x), turned and shifted, one by one and as one batch."""
    rng = np.random.default_rng(11)
    samples, maps, shifts = [], [], []
    for i in range(24):
        samples.append(blob(rng, f"blob{i}"))
        scale = rng.uniform(0.4, 2.6, size=2)
        maps.append(rotation(rng.uniform(-0.8, 0.8)) @ np.diag(scale))
        shifts.append(rng.uniform(-3, 3, size=2) + 20)
    results = apply_affine_batch(samples, np.array(maps), np.array(shifts), (96, 96))
    for sample, a, t, out in zip(samples, maps, shifts, results):
        coords, features = reference_affine(sample, a, t)
        np.testing.assert_array_equal(out.coords, coords, err_msg=sample.sample_id)
        np.testing.assert_allclose(out.features, features, rtol=1e-5, atol=1e-5, err_msg=sample.sample_id)
        alone = apply_affine(sample, a, t, (96, 96))
        np.testing.assert_array_equal(alone.coords, coords)


def line(y: int, x: int, length: int, name: str) -> Sample:
    """A horizontal run of sites with feature = its x."""
    xs = np.arange(x, x + length)
    return Sample(np.stack([np.full(length, y), xs], 1).astype(np.int32), xs[:, None].astype(np.float32), 0, name)


def test_a_batch_on_a_wide_field_cuts_what_is_taller_than_the_field():
    """Field 7x30: four-row blocks stretched 3x vertically (10 rows) keep the rows inside, unshifted;
    a sample that fits is shifted back inside; results equal the reference cut to the field."""
    block = Sample(
        np.array([(y, x) for y in (2, 3, 4, 5) for x in range(5, 17)], np.int32),
        np.arange(48, dtype=np.float32)[:, None],
        0,
        "block",
    )
    a = np.array([[[3.0, 0], [0, 1]], [[3.0, 0], [0, 1]], [[1.0, 0], [0, 1]]])
    t = np.array([[0.0, 0], [0, 10], [0, 20]])  # the last one (12 wide) leaves the field at x = 37
    out = apply_affine_batch([block, block, line(3, 5, 12, "fits")], a, t, (7, 30))
    for sample, result, a_b, t_b in zip([block, block], out, a, t):
        coords, features = reference_affine(sample, a_b, t_b)
        keep = (coords[:, 0] >= 0) & (coords[:, 0] < 7) & (coords[:, 1] >= 0) & (coords[:, 1] < 30)
        assert not keep.all()  # rows above and below the field are cut
        np.testing.assert_array_equal(result.coords, coords[keep])
        np.testing.assert_allclose(result.features, features[keep], rtol=1e-6)
    np.testing.assert_array_equal(out[2].coords, [[3, x] for x in range(18, 30)])


def test_batch_errors_name_the_sample_and_the_field():
    empty = Sample(np.zeros((0, 2), np.int32), np.zeros((0, 1), np.float32), 0, "e1")
    samples = [line(1, 1, 1, "g0"), empty, line(2, 2, 1, "g1"), replace(empty, sample_id="e2")]
    with pytest.raises(ValueError) as err:
        apply_affine_batch(samples, np.stack([np.eye(2)] * 4), np.zeros((4, 2)), (7, 30))
    assert str(err.value) == "sample 'e1' has no sites"
    far = Sample(np.array([[0, 3], [40, 3]], np.int32), np.ones((2, 1), np.float32), 0, "far")
    with pytest.raises(ValueError) as err:
        apply_affine(far, 1.5 * np.eye(2), np.zeros(2), (7, 30))
    assert str(err.value) == "sample 'far': no site left inside the field 7x30"


def test_a_direction_of_length_zero_stays_zero_when_turned():
    sample = Sample(np.array([[5, 5], [5, 6]], np.int32), np.array([[0, 0, 1], [1, 0, 1]], np.float32), 0, "dot")
    out = apply_affine(sample, rotation(0.3), np.zeros(2), (20, 20), DIRECTIONS)
    assert np.isfinite(out.features).all()
    dot = [f for c, f in zip(out.coords.tolist(), out.features) if f[0] ** 2 + f[1] ** 2 < 0.5]
    assert dot and all(abs(f[0]) < 1e-6 and abs(f[1]) < 1e-6 for f in dot)


def test_single_letters_are_not_a_direction_pair():
    assert direction_pairs(("y", "x", "ink")) == ()
    assert direction_pairs(("penx", "peny")) == ((1, 0),)
