"""Exercises of notebook 04 (why SAM fails): each checker computes the truth from its context."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise

# ------------------------------------------------------------------ 1. read a sweep curve


def _solve_contrast_threshold(curve, fraction=0.9):
    best = max(curve["dice_mean"])
    # the lowest contrast whose mean Dice is still within `fraction` of the curve's best
    good = [value for value, dice in zip(curve["values"], curve["dice_mean"]) if dice >= fraction * best]
    return min(good)


@exercise(
    "04.contrast_threshold",
    "Read the contrast curve (`contrast_curve`: a dict with 'values' and 'dice_mean'). What is the lowest "
    "contrast at which the mean Dice is still at least 90% of the curve's best Dice?",
    solver=_solve_contrast_threshold,
    hint="best = max(curve['dice_mean']); keep the values whose Dice >= 0.9 * best; take the smallest",
    kind="check",
)
def _check_contrast_threshold(answer, curve, fraction=0.9):
    values = [float(v) for v in curve["values"]]
    dices = [float(d) for d in curve["dice_mean"]]
    best = max(dices)
    truth = min(v for v, d in zip(values, dices) if d >= fraction * best)
    if not isinstance(answer, (int, float, np.integer, np.floating)) or isinstance(answer, bool):
        return False, "answer one contrast value (a number from curve['values'])"
    if not np.isclose(float(answer), truth):
        return False, f"{answer} is not it: check which values keep Dice >= {fraction:.0%} of {best:.3f}"
    return True, f"below contrast {truth:g} the model loses more than {1 - fraction:.0%} of its best Dice"


# ------------------------------------------------------------------ 2. Dice by hand: SAM fills the hole


def _solve_filled_ring_dice(hole_fraction, size=256, radius=60):
    yy, xx = np.mgrid[:size, :size]
    distance = np.hypot(yy - size / 2, xx - size / 2)
    disc = distance <= radius  # what SAM predicts: the filled blob
    ring = disc & (distance > radius * np.sqrt(hole_fraction))  # the target: the hole is hole_fraction of the disc
    return 2 * (disc & ring).sum() / (disc.sum() + ring.sum())


@exercise(
    "04.filled_ring_dice",
    "A ring-shaped lesion is an annulus whose hole covers `hole_fraction` of its disc's area. SAM tends to "
    "fill the hole and predict the whole disc. Build both masks with numpy (any radius) and compute the "
    "Dice of the filled prediction.",
    solver=_solve_filled_ring_dice,
    hint="a hole with a fraction f of the area has radius R * sqrt(f); Dice = 2|A ∩ B| / (|A| + |B|)",
    kind="check",
    warmup=True,
)
def _check_filled_ring_dice(answer, hole_fraction, size=256, radius=60):
    truth = 2 * (1 - hole_fraction) / (2 - hole_fraction)  # |ring| = (1 - f) |disc| and ring ⊂ disc
    if not np.isfinite(float(answer)):
        return False, "answer a number between 0 and 1"
    if abs(float(answer) - truth) > 0.02:
        return False, f"{float(answer):.3f} is not the Dice of a filled disc against the ring"
    return True, f"exactly 2(1 - f)/(2 - f) = {truth:.3f}: filling a hole of {hole_fraction:.0%} caps Dice there"


# ------------------------------------------------------------------ 3. what a CT window leaves of a contrast


def _solve_window_levels(level, width, tissue_hu, lesion_hu):
    low = level - width / 2  # HU shown black
    step = width / 255  # HU per grey level

    def grey(hu):
        return np.clip(np.round((hu - low) / step), 0, 255)

    return abs(grey(tissue_hu) - grey(lesion_hu))


@exercise(
    "04.window_grey_levels",
    "A CT window (level, width) maps HU linearly to 0..255 (level - width/2 → 0, level + width/2 → 255, "
    "clipped). How many grey levels apart do the liver (`tissue_hu`) and the lesion (`lesion_hu`) end up "
    "in the window (`level`, `width`)?",
    solver=_solve_window_levels,
    hint="grey(hu) = clip((hu - (level - width / 2)) / width * 255, 0, 255)",
    kind="check",
)
def _check_window_levels(answer, level, width, tissue_hu, lesion_hu):
    low = level - width / 2

    def grey(hu):
        return float(np.clip((hu - low) / width * 255, 0, 255))

    truth = abs(grey(tissue_hu) - grey(lesion_hu))
    if abs(float(answer) - truth) > 1.0:
        return False, f"{float(answer):.1f} grey levels is not right"
    return True, f"{truth:.0f} of 255 grey levels separate them in a {width:g}-HU window"


# ------------------------------------------------------------------ 4. PCA by hand


def _solve_pca_2d(features):
    centred = features - features.mean(axis=0)  # PCA works on deviations from the mean
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T  # coordinates along the two directions of largest variance


@exercise(
    "04.pca_2d",
    "Project the pooled embeddings `features` (N × C) onto their two principal axes with numpy alone: centre "
    "them, take the SVD, keep the top two right singular vectors. Answer the (N, 2) coordinates.",
    solver=_solve_pca_2d,
    hint="np.linalg.svd(X - X.mean(0), full_matrices=False) returns U, S, Vt; project on Vt[:2]",
    kind="check",
)
def _check_pca_2d(answer, features):
    answer = np.asarray(answer, dtype=float)
    features = np.asarray(features, dtype=float)
    if answer.shape != (len(features), 2):
        return False, f"answer an array of shape ({len(features)}, 2); got {answer.shape}"
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    truth = centred @ vt[:2].T
    for k in range(2):  # an axis may come out flipped: the sign of a singular vector is arbitrary
        scale = np.abs(truth[:, k]).max() + 1e-12
        if min(np.abs(answer[:, k] - truth[:, k]).max(), np.abs(answer[:, k] + truth[:, k]).max()) > 1e-3 * scale:
            return False, f"column {k} does not match principal axis {k + 1} (did you centre the features?)"
    share = (truth**2).sum() / (centred**2).sum()
    return True, f"the two axes hold {share:.0%} of the variance around the mean"
