"""Tests for utils.metrics: cross-checks against MONAI (2-D and 3-D) and scipy.stats.bootstrap, hand-computed
cases, empty masks, volumes, per-slice profiles and bad inputs.

Agreement with MONAI: Dice, IoU and NSD agree to 1e-6 (MONAI returns float32, which limits it).
For HD95 MONAI casts the surface distances to float32 and takes ``torch.quantile`` in float32, so a
distance of ~50 mm carries an error of a few float32 ulps (~1e-5 mm absolute); we therefore compare
HD95 with a *relative* tolerance of 2e-6 (about 16 float32 ulps). The empty-mask conventions differ
on purpose (MONAI returns NaN there); those cases are tested against our documented values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice
from scipy import ndimage, stats

from utils.metrics import bootstrap_ci, boundary, dice, hd95, iou, nsd, slice_dice_profile, volume_ml

SHAPES = [(64, 64), (48, 80), (96, 40), (128, 100)]
SPACINGS = [(1.0, 1.0), (0.5, 1.2), (2.0, 0.7)]
# Where a tolerance equals a reachable distance (1.0 = one pixel at spacing 1; 2.5 = 5 rows of
# 0.5 mm) both implementations compute that distance exactly, so "<=" agrees.
TOLERANCES = [0.0, 1.0, 2.5]


def random_blob(rng: np.random.Generator, shape, sigma: float, fraction: float) -> np.ndarray:
    """A smooth random mask (2-D or 3-D): Gaussian-smoothed noise, thresholded to cover about ``fraction``."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


def monai_metrics(pred: np.ndarray, gt: np.ndarray, spacing, tolerance) -> dict[str, float]:
    """The four metrics as MONAI computes them, for one binary 2-D or 3-D pair."""
    p = torch.from_numpy(pred[None, None].astype(np.float32))  # (batch, channel, H, W) or (..., S, H, W)
    g = torch.from_numpy(gt[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks and its own deprecations
        return {
            "dice": compute_dice(p, g, include_background=True, ignore_empty=False).item(),
            "iou": compute_iou(p, g, include_background=True, ignore_empty=False).item(),
            "hd95": compute_hausdorff_distance(
                p, g, include_background=True, percentile=95, directed=False, spacing=list(spacing)
            ).item(),
            "nsd": compute_surface_dice(p, g, [tolerance], include_background=True, spacing=list(spacing)).item(),
        }


def ours(pred, gt, spacing, tolerance) -> dict[str, float]:
    return {
        "dice": dice(pred, gt),
        "iou": iou(pred, gt),
        "hd95": hd95(pred, gt, spacing=spacing),
        "nsd": nsd(pred, gt, tolerance=tolerance, spacing=spacing),
    }


def assert_matches_monai(pred, gt, spacing=(1.0, 1.0), tolerance=1.0) -> dict[str, float]:
    expected = monai_metrics(pred, gt, spacing, tolerance)
    got = ours(pred, gt, spacing, tolerance)
    for name in ("dice", "iou", "nsd"):
        assert got[name] == pytest.approx(expected[name], abs=1e-6), name
    assert got["hd95"] == pytest.approx(expected["hd95"], rel=2e-6, abs=1e-6)
    return got


@pytest.mark.parametrize("seed", range(24))
def test_random_blobs_match_monai(seed):
    rng = np.random.default_rng(seed)
    shape = SHAPES[seed % len(SHAPES)]
    spacing = SPACINGS[seed % len(SPACINGS)]
    tolerance = TOLERANCES[(seed // 3) % len(TOLERANCES)]
    gt = random_blob(rng, shape, sigma=rng.uniform(2, 6), fraction=rng.uniform(0.1, 0.4))
    # Predictions of varying quality: a perturbed copy of gt (close) or an unrelated blob (far).
    if seed % 2:
        pred = ndimage.binary_dilation(gt, iterations=int(rng.integers(1, 4))) ^ (rng.random(shape) < 0.01)
    else:
        pred = random_blob(rng, shape, sigma=rng.uniform(2, 6), fraction=rng.uniform(0.1, 0.4))
    got = assert_matches_monai(pred, gt, spacing, tolerance)
    assert 0.0 <= got["dice"] <= 1.0 and 0.0 <= got["nsd"] <= 1.0 and got["hd95"] >= 0.0


def test_identical_masks_are_perfect():
    gt = random_blob(np.random.default_rng(0), (64, 64), 4, 0.3)
    got = assert_matches_monai(gt, gt.copy(), spacing=(0.5, 1.2))
    assert got == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_shifted_squares_analytic(k):
    side = 20
    gt = np.zeros((40, 50), bool)
    gt[10 : 10 + side, 10 : 10 + side] = True
    pred = np.roll(gt, k, axis=1)  # the same square, k columns to the right
    # Overlap is side x (side - k): Dice = 2 s (s-k) / 2 s^2, IoU = s (s-k) / (s (s+k)).
    assert dice(pred, gt) == pytest.approx((side - k) / side)
    assert iou(pred, gt) == pytest.approx((side - k) / (side + k))
    # The left and right edges are k apart (about half of all boundary pixels), nothing is farther.
    assert hd95(pred, gt) == pytest.approx(k)
    assert hd95(pred, gt, spacing=(0.5, 1.2)) == pytest.approx(1.2 * k)  # the shift is along columns
    assert nsd(pred, gt, tolerance=k) == 1.0
    # With tolerance < 1 only coinciding boundary pixels count: the shared parts of the top and
    # bottom edges, side - k pixels each, in both masks; each boundary has 4 side - 4 pixels.
    assert nsd(pred, gt, tolerance=0.5) == pytest.approx(4 * (side - k) / (2 * (4 * side - 4)))
    assert_matches_monai(pred, gt, spacing=(0.5, 1.2), tolerance=0.5)


def test_empty_prediction():
    gt = np.zeros((30, 40), bool)
    gt[5:15, 5:15] = True
    empty = np.zeros_like(gt)
    assert dice(empty, gt) == 0.0 and iou(empty, gt) == 0.0 and nsd(empty, gt) == 0.0
    # A miss costs the image diagonal in mm: the worst possible distance, but finite.
    assert hd95(empty, gt) == pytest.approx(50.0)  # hypot(30, 40)
    assert hd95(empty, gt, spacing=(2.0, 0.5)) == pytest.approx(np.hypot(60.0, 20.0))
    expected = monai_metrics(empty, gt, (1.0, 1.0), 1.0)
    assert expected["dice"] == 0.0 and expected["nsd"] == 0.0
    assert np.isnan(expected["hd95"])  # why we need our own convention


def test_empty_ground_truth():
    gt = np.zeros((30, 40), bool)
    pred = gt.copy()
    pred[0, 0] = True  # a single spurious pixel
    assert dice(pred, gt) == 0.0 and iou(pred, gt) == 0.0 and nsd(pred, gt) == 0.0
    assert hd95(pred, gt) == pytest.approx(50.0)


def test_both_empty():
    empty = np.zeros((16, 24), bool)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert hd95(empty, empty) == 0.0
    assert nsd(empty, empty) == 1.0


def test_single_pixels():
    one = np.zeros((20, 30), bool)
    one[4, 6] = True
    other = np.zeros_like(one)
    other[7, 10] = True  # 3 rows and 4 columns away
    got = assert_matches_monai(one, other, spacing=(1.0, 1.0), tolerance=1.0)
    assert got["dice"] == 0.0 and got["hd95"] == pytest.approx(5.0) and got["nsd"] == 0.0
    assert hd95(one, other, spacing=(0.5, 1.2)) == pytest.approx(np.hypot(1.5, 4.8))
    assert nsd(one, other, tolerance=5.0) == 1.0
    assert assert_matches_monai(one, one.copy()) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}


def test_mask_touching_the_border():
    gt = np.zeros((32, 48), bool)
    gt[:, :20] = True  # the left part of the image: its boundary includes the image edge
    pred = np.zeros_like(gt)
    pred[:, :23] = True
    edges = boundary(gt)
    assert edges[:, 0].all() and edges[0, :20].all() and edges[:, 19].all()
    assert not edges[1:-1, 1:19].any()
    assert_matches_monai(pred, gt, spacing=(0.5, 1.2), tolerance=1.0)
    assert_matches_monai(np.ones_like(gt), gt, spacing=(1.0, 1.0), tolerance=2.5)


def test_accepts_uint8_0_255_and_leading_channel():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:10, 5:12] = 255
    pred = (gt > 0).astype(np.float32)[None]  # (1, H, W) float 0/1, as SAM returns a mask
    assert dice(pred, gt) == 1.0 and hd95(pred, gt) == 0.0 and nsd(gt, pred, spacing=(0.5, 0.5)) == 1.0
    shifted = np.roll(gt, 2, axis=1)
    assert hd95(shifted[None] > 0, gt) == hd95(shifted, gt) == pytest.approx(2.0)


ALL_METRICS = [dice, iou, hd95, nsd]


@pytest.mark.parametrize("metric", ALL_METRICS, ids=lambda f: f.__name__)
def test_bad_masks_raise_with_a_fix(metric):
    good = np.zeros((10, 12), bool)
    good[2:5, 3:7] = True
    with pytest.raises(ValueError, match=r"pred has shape \(10, 13\) but gt has shape \(10, 12\).*Resize"):
        metric(np.zeros((10, 13), bool), good)
    labels = good.astype(np.uint8) * 2
    labels[0, 0] = 1
    with pytest.raises(ValueError, match="expected a binary mask.*pred == k"):
        metric(labels, good)
    probs = good.astype(float)
    probs[0, 0] = np.nan
    with pytest.raises(ValueError, match="gt contains NaN"):
        metric(good, probs)
    volume = np.stack([good, good, good])
    with pytest.raises(ValueError, match=r"pred has shape \(3, 10, 12\) but gt has shape \(10, 12\)"):
        metric(volume, good)  # a volume against one slice
    with pytest.raises(ValueError, match="voxel for voxel"):
        metric(volume, volume[:2])
    with pytest.raises(ValueError, match=r"pred must be a 2-D \(H, W\) or 3-D \(S, H, W\) mask.*reshape"):
        metric(good.ravel(), good.ravel())
    with pytest.raises(ValueError, match="no pixels"):
        metric(np.zeros((0, 4), bool), np.zeros((0, 4), bool))


@pytest.mark.parametrize("metric", [hd95, nsd], ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "spacing, message",
    [
        ((0.0, 1.0), "positive"),
        ((1.0, -2.0), "positive"),
        ((np.nan, 1.0), "positive"),
        ((1.0,), "2 numbers"),
        ((1.0, 1.0, 1.0), "2 numbers"),
        ("abc", "2 numbers"),
    ],
)
def test_bad_spacing_raises(metric, spacing, message):
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    with pytest.raises(ValueError, match=f"spacing must be .*{message}"):
        metric(mask, mask, spacing=spacing)


@pytest.mark.parametrize("tolerance", [-1.0, np.inf, "one"])
def test_bad_tolerance_raises(tolerance):
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    with pytest.raises(ValueError, match="tolerance must be a distance in mm >= 0"):
        nsd(mask, mask, tolerance=tolerance)


# --------------------------------------------------------------------------------------------- 3-D

SHAPES_3D = [(10, 24, 20), (16, 18, 26), (8, 30, 30)]
SPACINGS_3D = [(1.0, 1.0, 1.0), (3.0, 0.8, 1.1), (0.5, 1.5, 2.0), (5.0, 0.7, 0.7)]
# reachable distances, as in 2-D: 1.0 (one voxel at spacing 1), 3.0 (one slice at 3 mm), 1.5 (one row at 1.5 mm)
TOLERANCES_3D = {(1.0, 1.0, 1.0): 1.0, (3.0, 0.8, 1.1): 3.0, (0.5, 1.5, 2.0): 1.5, (5.0, 0.7, 0.7): 0.0}


@pytest.mark.parametrize("seed", range(12))
def test_3d_random_blobs_match_monai_with_anisotropic_spacing(seed):
    rng = np.random.default_rng(seed)
    shape = SHAPES_3D[seed % len(SHAPES_3D)]
    spacing = SPACINGS_3D[seed % len(SPACINGS_3D)]
    gt = random_blob(rng, shape, sigma=rng.uniform(1.5, 3.0), fraction=rng.uniform(0.1, 0.35))  # often on a face
    if seed % 2:
        pred = ndimage.binary_dilation(gt, iterations=int(rng.integers(1, 3))) ^ (rng.random(shape) < 0.01)
    else:
        pred = random_blob(rng, shape, sigma=rng.uniform(1.5, 3.0), fraction=rng.uniform(0.1, 0.35))
    got = assert_matches_monai(pred, gt, spacing, TOLERANCES_3D[spacing])
    assert 0.0 < got["dice"] < 1.0 and got["hd95"] > 0.0


def test_3d_small_structure_in_a_large_volume_matches_monai():
    # the distance transforms run on the structures' bounding box: the numbers must not change
    gt = np.zeros((30, 64, 64), bool)
    gt[12:17, 20:30, 22:31] = True
    pred = np.zeros_like(gt)
    pred[13:19, 24:33, 20:29] = True
    pred[2, 60, 5] = True  # one stray voxel far away
    got = assert_matches_monai(pred, gt, spacing=(3.0, 0.8, 1.1), tolerance=3.0)
    assert got["hd95"] > 3.0


def test_hd95_3d_by_hand_and_spacing_matters():
    gt = np.zeros((6, 6, 6), dtype=bool)
    pred = np.zeros_like(gt)
    gt[1, 2, 2] = True
    pred[4, 2, 2] = True  # three slices away
    assert hd95(pred, gt) == pytest.approx(3.0)
    assert hd95(pred, gt, spacing=(2.5, 1.0, 1.0)) == pytest.approx(7.5)
    assert hd95(pred, gt, spacing=(1.0, 9.0, 9.0)) == pytest.approx(3.0)
    assert nsd(pred, gt, tolerance=7.5, spacing=(2.5, 1.0, 1.0)) == 1.0
    assert nsd(pred, gt, tolerance=7.0, spacing=(2.5, 1.0, 1.0)) == 0.0


def test_3d_dice_counts_voxels_not_slices():
    gt = np.zeros((2, 10, 10), bool)
    gt[0] = True  # 100 voxels on slice 0
    gt[1, :2, :5] = True  # 10 voxels on slice 1
    pred = gt.copy()
    pred[1] = False  # the small slice missed: per-slice Dice 1 and 0, mean 0.5
    assert dice(pred, gt) == pytest.approx(2 * 100 / 210)
    assert iou(pred, gt) == pytest.approx(100 / 110)
    assert np.nanmean(slice_dice_profile(pred, gt)) == pytest.approx(0.5)


def test_3d_empty_mask_conventions():
    empty = np.zeros((4, 5, 6), dtype=bool)
    full = np.ones_like(empty)
    spacing = (2.0, 1.0, 0.5)
    assert dice(empty, empty) == 1.0 and hd95(empty, empty, spacing) == 0.0 and nsd(empty, empty) == 1.0
    assert dice(full, empty) == 0.0 and iou(full, empty) == 0.0 and nsd(full, empty) == 0.0
    # a miss costs the volume's diagonal in mm
    assert hd95(empty, full, spacing) == pytest.approx(np.sqrt(8.0**2 + 5.0**2 + 3.0**2))
    assert hd95(full, empty) == pytest.approx(np.sqrt(4**2 + 5**2 + 6**2))


def test_3d_boundary_is_6_connected_and_includes_the_volume_faces():
    mask = np.zeros((5, 7, 7), bool)
    mask[1:4, 1:6, 1:6] = True
    edges = boundary(mask)
    assert edges.shape == mask.shape and edges.sum() == mask.sum() - 1 * 3 * 3  # all but the 1 x 3 x 3 core
    assert not edges[2, 2:5, 2:5].any() and edges[1, 2:5, 2:5].all()  # the core, and the top face above it
    slab = np.zeros((3, 4, 4), bool)
    slab[:, :2, :] = True  # two rows thick, on five faces of the volume: every voxel is on its surface
    np.testing.assert_array_equal(boundary(slab), slab)


def test_volume_and_profiles():
    mask = np.zeros((3, 10, 10), dtype=bool)
    mask[1, :5, :4] = True  # 20 voxels
    assert volume_ml(mask, (3.0, 0.5, 0.5)) == pytest.approx(20 * 0.75 / 1000)
    assert volume_ml(mask.astype(np.uint8) * 255, (1.0, 1.0, 1.0)) == pytest.approx(0.02)
    pred = mask.copy()
    pred[1, :5, 4:8] = True  # twice as many voxels on slice 1
    pred[2, 0, 0] = True  # a false positive on a slice without the structure
    profile = slice_dice_profile(pred, mask)
    assert np.isnan(profile[0]) and profile[1] == pytest.approx(40 / 60) and profile[2] == 0.0
    assert profile[1] == dice(pred[1], mask[1])  # the same Dice, slice by slice


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dice(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool)), "must match voxel for voxel"),
        (lambda: hd95(np.ones((2, 3, 3), bool), np.ones((2, 3, 3), bool), (1.0, 1.0)), "3 numbers"),
        (lambda: hd95(np.ones((2, 3, 3), bool), np.ones((2, 3, 3), bool), (1.0, 0, 1.0)), "positive"),
        (lambda: nsd(np.ones((2, 3, 3), bool), np.ones((2, 3, 3), bool), spacing=(1.0, 1.0)), "slice_mm"),
        (lambda: dice(np.full((2, 3, 3), 7), np.ones((2, 3, 3), bool)), "binary"),
        (lambda: volume_ml(np.zeros((3, 3), bool), (1.0, 1.0, 1.0)), "3-D"),
        (lambda: volume_ml(np.zeros((2, 3, 3), bool), (1.0, -1.0, 1.0)), "positive"),
        (lambda: volume_ml(np.zeros((2, 3, 3), bool), (1.0, 1.0)), "3 numbers"),
        (lambda: slice_dice_profile(np.zeros((3, 3), bool), np.zeros((3, 3), bool)), "3-D"),
        (lambda: slice_dice_profile(np.zeros((2, 3, 3), bool), np.zeros((3, 3, 3), bool)), "must match"),
    ],
)
def test_3d_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    values = np.linspace(0, 1, 21)
    mean, low, high = bootstrap_ci(values, n_boot=2000, seed=1)
    assert mean == pytest.approx(0.5) and low < mean < high
    assert (low, high) == bootstrap_ci(values, n_boot=2000, seed=1)[1:]
    # the standard error of the mean of 21 values spread over [0, 1] is about 0.068: CI about ± 0.13
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(21), rel=0.15)
    assert bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)
    assert all(np.isnan(bootstrap_ci([np.nan])))
    assert bootstrap_ci([0.2, np.nan, 0.4], n_boot=10)[0] == pytest.approx(0.3)  # NaNs dropped
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(values, n_boot=0)
    with pytest.raises(ValueError, match="ci must be between 0 and 1"):
        bootstrap_ci(values, ci=95)


@pytest.mark.parametrize("ci", [0.9, 0.95])
def test_bootstrap_ci_matches_scipy_percentile_bootstrap(ci):
    values = np.random.default_rng(3).beta(5, 2, size=40)  # skewed, like per-case Dice
    mean, low, high = bootstrap_ci(values, n_boot=20000, seed=0, ci=ci)
    reference = stats.bootstrap(
        (values,), np.mean, n_resamples=20000, confidence_level=ci, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    # different random resamples: the ends agree to a few percent of the interval's width
    width = reference.high - reference.low
    assert mean == pytest.approx(values.mean())
    assert low == pytest.approx(reference.low, abs=0.03 * width)
    assert high == pytest.approx(reference.high, abs=0.03 * width)


@pytest.mark.parametrize("shape", [(64, 64), (7, 33, 40), (1, 5), (3, 4, 5)])
def test_boundary_is_the_mask_minus_its_cross_erosion(shape):
    """boundary() is written with shifted views for speed; scipy's erosion (outside = background) is the definition."""
    rng = np.random.default_rng(len(shape))
    for _ in range(20):
        mask = ndimage.binary_dilation(rng.random(shape) > 0.9)
        assert np.array_equal(boundary(mask), mask & ~ndimage.binary_erosion(mask))
