"""Tests for utils.metrics: cross-checks against MONAI, hand-computed cases, empty masks, bad inputs.

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
from scipy import ndimage

from utils.metrics import boundary, dice, hd95, iou, nsd

SHAPES = [(64, 64), (48, 80), (96, 40), (128, 100)]
SPACINGS = [(1.0, 1.0), (0.5, 1.2), (2.0, 0.7)]
# Where a tolerance equals a reachable distance (1.0 = one pixel at spacing 1; 2.5 = 5 rows of
# 0.5 mm) both implementations compute that distance exactly, so "<=" agrees.
TOLERANCES = [0.0, 1.0, 2.5]


def random_blob(rng: np.random.Generator, shape, sigma: float, fraction: float) -> np.ndarray:
    """A smooth random mask: Gaussian-smoothed noise, thresholded to cover about ``fraction`` of the image."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


def monai_metrics(pred: np.ndarray, gt: np.ndarray, spacing, tolerance) -> dict[str, float]:
    """The four metrics as MONAI computes them, for one binary 2-D pair."""
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    p = torch.from_numpy(pred[None, None].astype(np.float32))  # (batch, channel, H, W)
    g = torch.from_numpy(gt[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks
        return {
            "dice": metrics.compute_dice(p, g, include_background=True, ignore_empty=False).item(),
            "iou": metrics.compute_iou(p, g, include_background=True, ignore_empty=False).item(),
            "hd95": metrics.compute_hausdorff_distance(
                p, g, include_background=True, percentile=95, directed=False, spacing=list(spacing)
            ).item(),
            "nsd": metrics.compute_surface_dice(
                p, g, [tolerance], include_background=True, spacing=list(spacing)
            ).item(),
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
    pred = (gt > 0).astype(np.float32)[None]  # (1, H, W) float 0/1
    assert dice(pred, gt) == 1.0 and hd95(pred, gt) == 0.0


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
    with pytest.raises(ValueError, match="pred is 3-D.*slice by slice"):
        metric(volume, volume)


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
