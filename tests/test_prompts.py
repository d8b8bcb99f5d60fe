"""Tests for utils.prompts: boxes and points from masks, checks of user prompts, the evaluation and
training prompt protocols, and box geometry."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from utils.prompts import (
    BOX_JITTER,
    FLIPS,
    NEG_MARGIN,
    NEG_MARGIN_MIN,
    POINT_PROMPTS,
    PROMPT_MODES,
    box_from_mask,
    box_iou,
    box_region,
    check_box,
    check_points,
    flip_box,
    jitter_box,
    make_prompt,
    next_box,
    points_from_mask,
    prompt_rng,
    sample_prompt,
)


def rectangle(shape=(60, 80), rows=(10, 30), cols=(20, 50)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True  # inclusive bounds
    return mask


def disk(shape=(64, 64), center=(30, 34), radius=12) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def l_shape() -> np.ndarray:
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:20] = True  # vertical bar
    mask[40:50, 10:50] = True  # horizontal bar
    return mask


def inside(mask: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """For each (x, y) point, whether it falls on a mask pixel."""
    x, y = coords[:, 0].astype(int), coords[:, 1].astype(int)
    return mask[y, x]


# ----------------------------------------------------------------------------- box_from_mask


def test_box_is_tight_on_a_rectangle():
    box = box_from_mask(rectangle(rows=(10, 30), cols=(20, 50)))
    assert box.dtype == float and box.shape == (4,)
    np.testing.assert_array_equal(box, [20, 10, 50, 30])  # x = columns, y = rows, inclusive


def test_box_of_a_single_pixel_and_uint8_mask():
    mask = np.zeros((10, 10), np.uint8)
    mask[3, 7] = 255
    np.testing.assert_array_equal(box_from_mask(mask), [7, 3, 7, 3])


def test_jitter_stays_inside_the_image_and_scales():
    mask = rectangle(shape=(100, 100), rows=(40, 59), cols=(30, 69))  # 40 wide, 20 high, centred
    exact = box_from_mask(mask)
    rng = np.random.default_rng(1)
    mean_shift = {}
    for jitter in (0.05, 0.1, 0.2):
        boxes = np.array([box_from_mask(mask, jitter=jitter, rng=rng) for _ in range(400)])
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 99 and boxes[:, [1, 3]].max() <= 99
        assert np.all(boxes[:, 0] <= boxes[:, 2]) and np.all(boxes[:, 1] <= boxes[:, 3])
        shift = np.abs(boxes - exact)
        # Uniform in [-a, a] has mean |shift| a / 2, with a = jitter * 40 (x) or jitter * 20 (y).
        np.testing.assert_allclose(shift[:, [0, 2]].mean(), jitter * 40 / 2, rtol=0.1)
        np.testing.assert_allclose(shift[:, [1, 3]].mean(), jitter * 20 / 2, rtol=0.1)
        mean_shift[jitter] = shift.mean()
    assert mean_shift[0.05] < mean_shift[0.1] < mean_shift[0.2]


def test_large_jitter_near_the_border_is_clipped():
    mask = rectangle(shape=(30, 40), rows=(0, 29), cols=(0, 10))  # touches three image edges
    for seed in range(20):
        x0, y0, x1, y1 = box_from_mask(mask, jitter=2.0, rng=seed)
        assert 0 <= x0 <= x1 <= 39 and 0 <= y0 <= y1 <= 29


def test_box_jitter_is_reproducible():
    mask = disk()
    np.testing.assert_array_equal(box_from_mask(mask, 0.1), box_from_mask(mask, 0.1))  # rng=None is seed 0
    np.testing.assert_array_equal(box_from_mask(mask, 0.1, rng=5), box_from_mask(mask, 0.1, rng=5))
    assert not np.array_equal(box_from_mask(mask, 0.1, rng=5), box_from_mask(mask, 0.1, rng=6))
    np.testing.assert_array_equal(box_from_mask(mask, 0.0, rng=7), box_from_mask(mask))


def test_jitter_box_is_box_from_masks_jitter_for_any_box():
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:20, 15:45] = True
    box = box_from_mask(mask)
    for seed in range(5):
        moved = jitter_box(box, 0.2, np.random.default_rng(seed), (40, 60, 3))  # an RGB image's shape works too
        assert moved == pytest.approx(box_from_mask(mask, jitter=0.2, rng=np.random.default_rng(seed)))
        assert moved[0] <= moved[2] and moved[1] <= moved[3] and not np.allclose(moved, box)
    assert jitter_box(box, 0.0, 3, mask.shape) == pytest.approx(box)
    assert jitter_box(box, 0.5, None, mask.shape) == pytest.approx(jitter_box(box, 0.5, 0, mask.shape))
    with pytest.raises(ValueError, match="jitter"):
        jitter_box(box, np.inf, 0, mask.shape)
    with pytest.raises(ValueError, match="outside"):
        jitter_box([0, 0, 80, 5], 0.1, 0, mask.shape)


def test_box_bad_inputs():
    with pytest.raises(ValueError, match="empty mask: no box can be drawn"):
        box_from_mask(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="jitter must be a finite number >= 0"):
        box_from_mask(disk(), jitter=-0.1)
    with pytest.raises(ValueError, match="expected a binary mask"):
        box_from_mask(np.arange(16).reshape(4, 4))
    with pytest.raises(ValueError, match="rng must be a np.random.Generator"):
        box_from_mask(disk(), jitter=0.1, rng="seed")


# ----------------------------------------------------------------------------- points_from_mask


def test_center_point_of_a_disk_is_its_centre():
    coords, labels = points_from_mask(disk(center=(30, 34), radius=12))
    assert coords.shape == (1, 2) and coords.dtype == float
    assert labels.tolist() == [1] and labels.dtype.kind == "i"
    x, y = coords[0]
    assert abs(x - 34) <= 1 and abs(y - 30) <= 1


def test_center_point_is_the_distance_transform_argmax():
    from scipy import ndimage

    for mask in (l_shape(), rectangle(), disk(radius=5)):
        coords, _ = points_from_mask(mask)
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        x, y = coords[0].astype(int)
        assert mask[y, x]
        assert depth[y, x] == depth.max()


def test_center_handles_a_mask_touching_the_image_edge():
    mask = np.ones((20, 30), bool)  # the whole image: the image edge is the boundary
    coords, _ = points_from_mask(mask)
    x, y = coords[0]
    assert 13 <= x <= 16 and 8 <= y <= 11


@pytest.mark.parametrize("strategy", ["center", "random"])
def test_several_points_are_distinct_and_inside(strategy):
    mask = l_shape()
    coords, labels = points_from_mask(mask, n_pos=5, strategy=strategy, rng=3)
    assert coords.shape == (5, 2) and labels.tolist() == [1] * 5
    assert inside(mask, coords).all()
    assert len({tuple(p) for p in coords.tolist()}) == 5


def test_center_points_spread_out():
    coords, _ = points_from_mask(l_shape(), n_pos=3)
    distances = np.hypot(*(coords[:, None, :] - coords[None, :, :]).transpose(2, 0, 1))
    assert distances[np.triu_indices(3, 1)].min() >= 10  # not clustered around the first point


def test_as_many_points_as_pixels():
    mask = np.zeros((10, 10), bool)
    mask[4:6, 4:6] = True
    coords, _ = points_from_mask(mask, n_pos=4)
    assert sorted(map(tuple, coords.tolist())) == [(4, 4), (4, 5), (5, 4), (5, 5)]


@pytest.mark.parametrize("strategy", ["center", "random"])
def test_negatives_are_outside_the_mask_and_near_it(strategy):
    mask = disk(shape=(100, 120), center=(50, 60), radius=15)
    coords, labels = points_from_mask(mask, n_pos=2, n_neg=4, strategy=strategy, rng=0)
    assert labels.tolist() == [1, 1, 0, 0, 0, 0]  # positives first
    assert inside(mask, coords[:2]).all()
    assert not inside(mask, coords[2:]).any()
    # Near: inside the box (x 45..75, y 35..65) grown by 25% of 31 px = 8 px.
    assert np.all((coords[2:, 0] >= 45 - 8) & (coords[2:, 0] <= 75 + 8))
    assert np.all((coords[2:, 1] >= 35 - 8) & (coords[2:, 1] <= 65 + 8))
    assert len({tuple(p) for p in coords.tolist()}) == 6


def test_center_negative_of_an_l_shape_sits_in_its_notch():
    coords, labels = points_from_mask(l_shape(), n_pos=1, n_neg=1)
    x, y = coords[1]
    assert labels[1] == 0 and 20 <= x < 50 and 10 <= y < 40  # the empty corner of the L's box


def test_negatives_fall_back_to_the_whole_background():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    # The band (the box grown by 5 px on each side, minus the mask) has 30 * 30 - 20 * 20 = 500 pixels.
    assert max(NEG_MARGIN_MIN, round(NEG_MARGIN * 20)) == 5
    for strategy in ("center", "random"):
        coords, labels = points_from_mask(mask, n_pos=0, n_neg=600, strategy=strategy)
        assert labels.tolist() == [0] * 600 and not inside(mask, coords).any()
        assert len({tuple(p) for p in coords.tolist()}) == 600


def test_points_are_reproducible_and_seed_dependent():
    mask = l_shape()
    a = points_from_mask(mask, n_pos=3, n_neg=2, strategy="random", rng=11)
    b = points_from_mask(mask, n_pos=3, n_neg=2, strategy="random", rng=11)
    c = points_from_mask(mask, n_pos=3, n_neg=2, strategy="random", rng=12)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    default = points_from_mask(mask, n_pos=3, strategy="random")  # rng=None means seed 0
    np.testing.assert_array_equal(default[0], points_from_mask(mask, n_pos=3, strategy="random")[0])
    generator = np.random.default_rng(11)
    np.testing.assert_array_equal(points_from_mask(mask, 3, 2, "random", rng=generator)[0], a[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask": np.zeros((8, 8), bool)}, "empty mask: no positive point"),
        ({"n_pos": -1}, "n_pos must be a whole number >= 0"),
        ({"n_pos": 1.5}, "n_pos must be a whole number"),
        ({"n_neg": -2}, "n_neg must be a whole number >= 0"),
        ({"n_pos": 0, "n_neg": 0}, "n_pos \\+ n_neg is 0.*n_pos >= 1"),
        ({"strategy": "centre"}, "Unknown strategy 'centre'; choose one of 'center', 'random'"),
        ({"n_pos": 5}, "n_pos=5 .* only 4 pixels.*lower n_pos"),
        ({"mask": np.ones((4, 4), bool), "n_neg": 1}, "n_neg=1 .* only 0 background pixels.*lower n_neg"),
    ],
)
def test_points_bad_inputs(kwargs, message):
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    kwargs = {"mask": mask, **kwargs}
    with pytest.raises(ValueError, match=message):
        points_from_mask(**kwargs)


# ----------------------------------------------------------------------------- check_box / check_points


def test_check_box_accepts_valid_boxes():
    shape = (60, 80, 3)  # H, W, C
    np.testing.assert_array_equal(check_box([1, 2, 30, 40], shape), [1, 2, 30, 40])
    assert check_box(np.array([[0, 0, 80, 60]]), shape).shape == (4,)  # (1, 4) and full image
    assert check_box((5, 5, 5, 9), shape[:2]).dtype == float  # a one-pixel-wide box


@pytest.mark.parametrize(
    "box, message",
    [
        ([1, 2, 3], r"shape \(4,\) or \(1, 4\).*got shape \(3,\)"),
        ([[1, 2, 3, 4], [5, 6, 7, 8]], r"got shape \(2, 4\).*once per box"),
        ([1, np.nan, 3, 4], "NaN or inf"),
        ([30, 2, 10, 40], "x0 <= x1 and y0 <= y1.*\\(x, y, w, h\\)"),
        ([1, 2, 90, 40], r"outside the image of width 80 and height 60.*np\.clip\(box, 0, \[80, 60, 80, 60\]\)"),
        ([-3, 2, 30, 40], "outside the image of width 80"),
        ("abcd", "box must be numbers"),
    ],
)
def test_check_box_rejects(box, message):
    with pytest.raises(ValueError, match=message):
        check_box(box, (60, 80))


def test_check_points_accepts_and_converts():
    coords, labels = check_points([[1, 2], [79.5, 59]], [1, 0], (60, 80, 3))
    assert coords.shape == (2, 2) and coords.dtype == float
    assert labels.tolist() == [1, 0] and labels.dtype == np.int64
    coords, labels = check_points((3, 4), [True], (60, 80))  # one point as (2,), bool label
    assert coords.shape == (1, 2) and labels.tolist() == [1]
    generated = points_from_mask(rectangle(), n_pos=3, n_neg=2)
    np.testing.assert_array_equal(check_points(*generated, (60, 80))[0], generated[0])


@pytest.mark.parametrize(
    "coords, labels, message",
    [
        ([[1, 2, 3]], [1], r"shape \(N, 2\).*got shape \(1, 3\)"),
        (np.zeros((0, 2)), [], "N >= 1.*Pass None"),
        ([[1, np.inf]], [1], "NaN or inf"),
        ([[1, 2], [3, 4]], [1], "2 points but 1 labels"),
        ([[1, 2]], [2], r"labels must be 1 .* or 0 .*got \[2.0\]"),
        ([[10, 70]], [1], r"outside the image of width 80 and height 60.*\(x, y\) = \[\[10.0, 70.0\]\].*np\.clip"),
    ],
)
def test_check_points_rejects(coords, labels, message):
    with pytest.raises(ValueError, match=message):
        check_points(coords, labels, (60, 80))


def test_check_prompts_reject_a_bad_image_shape():
    with pytest.raises(ValueError, match=r"image_shape must be \(H, W\) or \(H, W, C\)"):
        check_box([0, 0, 1, 1], (5,))
    with pytest.raises(ValueError, match="image_shape must be"):
        check_points([[0, 0]], [1], (5,))


def test_without_an_image_shape_only_the_bounds_are_not_checked():
    np.testing.assert_array_equal(check_box([-5, 0, 500, 9]), [-5, 0, 500, 9])
    coords, labels = check_points([[-5, 900]], [1])
    assert coords.tolist() == [[-5, 900]] and labels.tolist() == [1]
    with pytest.raises(ValueError, match="x0 <= x1"):
        check_box([9, 0, 1, 9])
    with pytest.raises(ValueError, match="2 points but 3 labels"):
        check_points([[1, 2], [3, 4]], [1, 0, 1])


# ----------------------------------------------------------------------------- evaluation modes, training kinds


def case(name="a", mask=None):
    """What make_prompt reads from a datasets.Case: its name and mask."""
    return SimpleNamespace(name=name, mask=disk() if mask is None else mask)


def test_prompt_modes_are_the_point_and_box_modes():
    assert PROMPT_MODES == (*POINT_PROMPTS, *BOX_JITTER)
    assert PROMPT_MODES[:5] == ("point_center", "point_random", "points_3", "points_5", "box")
    assert BOX_JITTER["box"] == 0 and BOX_JITTER["box_jitter_20"] == 0.2


def test_prompt_rng_is_seeded_by_seed_case_and_mode_with_crc32():
    # The convention results.json relies on: changing it would change every jittered box and random point.
    expected = np.random.default_rng([3, zlib.crc32(b"case-7"), zlib.crc32(b"box_jitter_10")]).random(4)
    np.testing.assert_array_equal(prompt_rng(3, "case-7", "box_jitter_10").random(4), expected)
    np.testing.assert_array_equal(prompt_rng(np.int64(3), "case-7", "box_jitter_10").random(4), expected)
    assert prompt_rng(3, "case-7", "box").random() != prompt_rng(3, "case-8", "box").random()
    with pytest.raises(ValueError, match="seed"):
        prompt_rng(-1, "case-7", "box")
    with pytest.raises(ValueError, match="case_name must be a str"):
        prompt_rng(0, 7, "box")


@pytest.mark.parametrize("mode", PROMPT_MODES)
def test_make_prompt_follows_its_mode(mode):
    c = case("disk-1")
    prompt = make_prompt(c, mode, seed=4)
    rng = np.random.default_rng([4, zlib.crc32(b"disk-1"), zlib.crc32(mode.encode())])
    if mode in POINT_PROMPTS:
        n_pos, strategy = POINT_PROMPTS[mode]
        coords, labels = points_from_mask(c.mask, n_pos=n_pos, strategy=strategy, rng=rng)
        assert prompt["box"] is None and len(coords) == n_pos
        np.testing.assert_array_equal(prompt["point_coords"], coords)
        np.testing.assert_array_equal(prompt["point_labels"], labels)
    else:
        assert prompt["point_coords"] is None and prompt["point_labels"] is None
        np.testing.assert_array_equal(prompt["box"], box_from_mask(c.mask, jitter=BOX_JITTER[mode], rng=rng))
    again = make_prompt(case("disk-1"), mode, seed=4)
    for key in prompt:
        np.testing.assert_array_equal(prompt[key], again[key])


def test_make_prompt_caps_points_at_the_mask_size_and_rejects_everything():
    tiny = np.zeros((10, 10), bool)
    tiny[4, 4:7] = True  # 3 pixels cannot hold 5 distinct points
    assert make_prompt(case(mask=tiny), "points_5")["point_coords"].shape == (3, 2)
    with pytest.raises(ValueError, match="not a prompt mode"):
        make_prompt(case(), "everything")
    with pytest.raises(ValueError, match="seed"):
        make_prompt(case(), "box", seed=-1)


def test_sample_prompt_kinds_are_seeded_and_inside_the_image():
    mask = disk()
    rows, cols = np.nonzero(mask)
    tight = np.array([cols.min(), rows.min(), cols.max(), rows.max()], float)
    first = sample_prompt(mask, np.random.default_rng(1), "box", box_jitter=0.1)
    again = sample_prompt(mask, np.random.default_rng(1), "box", box_jitter=0.1)
    assert np.array_equal(first["box"], again["box"]) and first["point_coords"] is None
    size = tight[2:] - tight[:2] + 1
    assert np.all(np.abs(first["box"] - tight) <= 0.1 * np.tile(size, 2) + 1e-9)
    points = sample_prompt(mask, np.random.default_rng(2), "points", n_points=3)
    assert points["box"] is None and points["point_coords"].shape == (3, 2)
    assert inside(mask, points["point_coords"]).all() and (points["point_labels"] == 1).all()
    rng = np.random.default_rng(3)
    kinds = {
        ("box" if p["box"] is not None else "points") for p in (sample_prompt(mask, rng, "mixed") for _ in range(20))
    }
    assert kinds == {"box", "points"}
    with pytest.raises(ValueError, match="prompt kind"):
        sample_prompt(mask, rng, "scribble")
    with pytest.raises(ValueError, match="empty mask"):
        sample_prompt(np.zeros((8, 8), bool), rng)


@pytest.mark.parametrize("mode", ["box", "box_jitter_5", "box_jitter_10", "box_jitter_20", "point_random"])
def test_evaluation_modes_and_the_training_sampler_agree_on_the_same_prompt(mode):
    """A training box with jitter j is an evaluation box mode with jitter j; training points are random
    positives, so one of them is the "point_random" mode. From one generator both give the same prompt."""
    c = case("shared", mask=rectangle())
    kind = "points" if mode in POINT_PROMPTS else "box"
    trained = sample_prompt(c.mask, prompt_rng(9, c.name, mode), kind, box_jitter=BOX_JITTER.get(mode, 0), n_points=1)
    evaluated = make_prompt(c, mode, seed=9)
    for key in ("point_coords", "point_labels", "box"):
        np.testing.assert_array_equal(trained[key], evaluated[key])
    if mode == "box":  # no randomness: the tight box whatever the generator
        np.testing.assert_array_equal(
            sample_prompt(c.mask, np.random.default_rng(0), "box", 0.0)["box"], [20, 10, 50, 30]
        )


# ----------------------------------------------------------------------------- box geometry


def test_next_box_grows_and_clips():
    mask = np.zeros((20, 30), bool)
    mask[2:6, 25:29] = True  # rows 2..5, cols 25..28
    np.testing.assert_array_equal(next_box(mask), [25, 2, 28, 5])
    np.testing.assert_array_equal(next_box(mask, 3), [22, 0, 29, 8])
    np.testing.assert_array_equal(next_box(mask, 1.5), [23.5, 0.5, 29, 6.5])
    with pytest.raises(ValueError, match="margin"):
        next_box(mask, -1)
    with pytest.raises(ValueError, match="margin"):
        next_box(mask, np.nan)
    with pytest.raises(ValueError, match="empty mask"):
        next_box(np.zeros((5, 5), dtype=bool))


@pytest.mark.parametrize("flip", FLIPS)
def test_flip_box_covers_the_same_pixels_in_the_mirrored_image(flip):
    mask = rectangle(shape=(30, 40), rows=(3, 12), cols=(5, 20))
    axes = {"none": (), "horizontal": (1,), "vertical": (0,), "both": (0, 1)}[flip]
    mirrored = np.flip(mask, axes) if axes else mask
    np.testing.assert_array_equal(flip_box(box_from_mask(mask), mask.shape, flip), box_from_mask(mirrored))
    twice = flip_box(flip_box([5, 3, 20, 12], (30, 40, 3), flip), (30, 40, 3), flip)
    np.testing.assert_array_equal(twice, [5, 3, 20, 12])  # every flip is its own inverse


def test_flip_box_directions_and_checks():
    assert flip_box([0, 0, 2, 1], (2, 10), "horizontal").tolist() == [7, 0, 9, 1]
    assert flip_box([0, 0, 2, 1], (5, 10), "vertical").tolist() == [0, 3, 2, 4]
    with pytest.raises(ValueError, match="Unknown flip.*horizontal"):
        flip_box([0, 0, 2, 1], (5, 10), "diagonal")
    with pytest.raises(ValueError, match="outside"):
        flip_box([0, 0, 20, 1], (5, 10), "horizontal")


def test_box_region_grows_and_clips():
    region = box_region([5, 10, 29, 24], (40, 50), margin=3)
    assert region.shape == (40, 50) and region.sum() == (25 + 6) * (15 + 6)
    assert region[7, 2] and region[27, 32] and not region[6, 2] and not region[7, 1]
    corner = box_region([0, 0, 4, 4], (40, 50), margin=10)
    assert corner.sum() == 15 * 15
    assert box_region([2.5, 1.2, 3.5, 1.8], (10, 10)).sum() == 3 * 2  # a fractional box covers the pixels it touches
    with pytest.raises(ValueError, match="margin"):
        box_region([0, 0, 4, 4], (40, 50), margin=-1)
    with pytest.raises(ValueError, match="margin"):
        box_region([0, 0, 4, 4], (40, 50), margin=1.5)
    with pytest.raises(ValueError, match="outside"):
        box_region([0, 0, 40, 5], (16, 16))


def test_box_iou_uses_inclusive_pixels():
    assert box_iou([0, 0, 9, 9], [0, 0, 9, 9]) == 1.0
    assert box_iou([0, 0, 4, 4], [5, 5, 9, 9]) == 0.0  # touching corners share no pixel
    assert box_iou([0, 0, 0, 0], [0, 0, 1, 0]) == pytest.approx(0.5)  # 1 pixel of 2
    assert box_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)
    # the same as the IoU of the two boxes' pixel regions
    a, b = [3, 2, 17, 11], [8, 5, 25, 19]
    ra, rb = box_region(a, (30, 30)), box_region(b, (30, 30))
    assert box_iou(a, b) == pytest.approx((ra & rb).sum() / (ra | rb).sum())
    with pytest.raises(ValueError, match="x0 <= x1"):
        box_iou([9, 0, 0, 9], [0, 0, 9, 9])
    with pytest.raises(ValueError, match=r"box must have shape \(4,\)"):
        box_iou([0, 0, 9], [0, 0, 9, 9])
    with pytest.raises(ValueError, match="reference .* NaN"):
        box_iou([0, 0, 9, 9], [0, np.nan, 9, 9])
