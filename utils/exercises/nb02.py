"""Exercises of notebook 02 (prompting SAM): boxes, the IoU head vs the oracle, clicks, corrective clicks."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


def _as_mask(mask) -> np.ndarray:
    return np.asarray(mask).astype(bool)


def _error_depths(pred, gt) -> dict[bool, np.ndarray]:
    """Distance of each pixel to the edge of its error region: True → missed (FN), False → spurious (FP)."""
    from scipy import ndimage

    pred, gt = _as_mask(pred), _as_mask(gt)
    regions = {True: gt & ~pred, False: pred & ~gt}
    # Padding makes the image border count as an edge: a click at the border is never "deep".
    return {kind: ndimage.distance_transform_edt(np.pad(r, 1))[1:-1, 1:-1] for kind, r in regions.items()}


# ------------------------------------------------------------------------------ 02.box_by_hand
def _solve_box_by_hand(mask):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [cols[0], rows[0], cols[-1], rows[-1]]


@exercise(
    "02.box_by_hand",
    "Compute the tight box prompt [x0, y0, x1, y1] of `mask` with NumPy: x is the column, y the row, "
    "and the box runs from the first to the last column and row that contain the mask (inclusive).",
    solver=_solve_box_by_hand,
    hint="mask.any(axis=1) tells which rows contain the mask, mask.any(axis=0) which columns; np.flatnonzero",
    kind="check",
    warmup=True,
)
def _check_box_by_hand(answer, mask):
    mask = _as_mask(mask)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    expected = np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=float)
    given = np.asarray(answer, dtype=float).reshape(-1)
    if given.size != 4:
        return False, f"a box is 4 numbers [x0, y0, x1, y1]; you gave {given.size}"
    if np.allclose(given, expected[[1, 0, 3, 2]]) and not np.allclose(given, expected):
        return False, "that is (row, col) order: SAM wants x (column) first, then y (row)"
    if np.allclose(given, expected):
        return True, f"box {expected.astype(int).tolist()} (same as utils.prompts.box_from_mask)"
    return False, f"off by up to {np.abs(given - expected).max():.0f} px from the tight box"


# ------------------------------------------------------------------------------ 02.oracle_pick
def _solve_oracle_pick(masks, scores, gt):
    from utils.metrics import dice

    iou_head = int(np.argmax(scores))
    oracle = int(np.argmax([dice(m, gt) for m in masks]))
    return iou_head, oracle


@exercise(
    "02.oracle_pick",
    "With multimask_output=True SAM returns three masks and the IoU head's score for each. Return a pair "
    "(index the IoU head picks, index an oracle picks): the oracle knows the ground truth `gt` and takes "
    "the mask with the highest Dice.",
    solver=_solve_oracle_pick,
    hint="np.argmax(scores) for the IoU head; utils.metrics.dice(mask, gt) for each mask, then argmax",
    kind="check",
)
def _check_oracle_pick(answer, masks, scores, gt):
    from utils.metrics import dice

    head, oracle = (int(v) for v in answer)
    dices = np.array([dice(m, gt) for m in masks])
    scores = np.asarray(scores, dtype=float)
    # Ties (equal scores or equal Dice) accept any of the tied indices.
    head_ok = np.isclose(scores[head], scores.max())
    oracle_ok = np.isclose(dices[oracle], dices.max())
    if head_ok and oracle_ok:
        agree = "agree" if np.isclose(dices[head], dices.max()) else "disagree"
        return True, (
            f"IoU head → mask {head} (Dice {dices[head]:.3f}), oracle → mask {oracle} (Dice {dices.max():.3f}): "
            f"they {agree}"
        )
    wrong = [name for name, ok in (("IoU-head index", head_ok), ("oracle index", oracle_ok)) if not ok]
    return False, f"check the {' and the '.join(wrong)}"


# ------------------------------------------------------------------------------ 02.click_to_pixel
def _solve_click_to_pixel(click, image_shape, display_width):
    height, width = image_shape[:2]
    scale = display_width / width  # display pixels per image pixel (the same vertically)
    u, v = click
    return int(min(u // scale, width - 1)), int(min(v // scale, height - 1))


@exercise(
    "02.click_to_pixel",
    "The playground draws an image of shape `image_shape` (H, W) on a canvas `display_width` pixels wide "
    "(its height scaled in proportion). A click lands at `click` = (u, v) canvas pixels from the top-left "
    "corner. Which image pixel (x, y) = (column, row) does SAM receive?",
    solver=_solve_click_to_pixel,
    hint="scale = display_width / W display pixels per image pixel; x = floor(u / scale), y = floor(v / scale)",
    kind="check",
    warmup=True,
)
def _check_click_to_pixel(answer, click, image_shape, display_width):
    height, width = image_shape[:2]
    scale = display_width / width
    expected = (min(int(click[0] // scale), width - 1), min(int(click[1] // scale), height - 1))
    given = tuple(int(round(float(v))) for v in answer)
    if given == expected:
        return True, f"(u, v) = {tuple(click)} → (x, y) = {expected} at {scale:.3g} display px per image px"
    if given == expected[::-1]:
        return False, "you swapped x and y: x is the column (from u), y the row (from v)"
    return False, f"expected a pixel near ({click[0] / scale:.1f}, {click[1] / scale:.1f}) before rounding down"


# ------------------------------------------------------------------------------ 02.next_click
def _solve_next_click(pred, gt):
    from scipy import ndimage

    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    best = None
    for positive, region in ((True, gt & ~pred), (False, pred & ~gt)):
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        if best is None or depth.max() > best[0]:
            row, col = np.unravel_index(np.argmax(depth), depth.shape)
            best = (depth.max(), (int(col), int(row), positive))
    return best[1]


@exercise(
    "02.next_click",
    "Simulate the next corrective click, as interactive-segmentation benchmarks do: find the largest error "
    "of `pred` against `gt` — a missed region (in gt, not in pred) or a spurious one (in pred, not in gt) — "
    "and return (x, y, positive) at the pixel deepest inside it (farthest from its edge): positive=True "
    "for a missed region, False for a spurious one.",
    solver=_solve_next_click,
    hint="scipy.ndimage.distance_transform_edt of each error mask gives the depth; take the deeper of the two maxima",
    kind="check",
)
def _check_next_click(answer, pred, gt):
    x, y, positive = answer
    x, y, positive = int(round(float(x))), int(round(float(y))), bool(positive)
    depths = _error_depths(pred, gt)
    best = max(depths[True].max(), depths[False].max())
    if best == 0:
        return False, "pred equals gt: there is no error to correct (try another prompt first)"
    height, width = depths[True].shape
    if not (0 <= x < width and 0 <= y < height):
        return False, f"(x, y) = ({x}, {y}) is outside the {width}x{height} image"
    if depths[positive][y, x] == 0:
        other = depths[not positive][y, x] > 0
        kind = "missed (positive)" if positive else "spurious (negative)"
        if other:
            return False, f"that pixel is an error of the other kind than {kind}: flip `positive`"
        return False, "that pixel is not an error at all (check x = column, y = row)"
    # Deep enough: at least 80% of the deepest error pixel's depth (and of the right kind).
    kinds_ok = depths[positive].max() >= 0.8 * best
    if kinds_ok and depths[positive][y, x] >= 0.8 * best:
        kind = "positive" if positive else "negative"
        return True, f"a {kind} click {depths[positive][y, x]:.1f} px deep (the deepest error pixel: {best:.1f})"
    if not kinds_ok:
        return False, "the larger error is of the other kind: compare the deepest missed and spurious pixels"
    return False, f"inside the error but only {depths[positive][y, x]:.1f} px deep; the deepest is {best:.1f} px"
