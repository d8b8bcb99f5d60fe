"""Exercises of notebook 03 (zero-shot evaluation): a Dice by hand, a jittered box, the IoU-head gap, a bootstrap CI."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


def _solve_dice_by_hand(pred, gt):
    overlap = np.logical_and(pred, gt).sum()
    return 2 * overlap / (pred.sum() + gt.sum())


@exercise(
    "03.dice_by_hand",
    "Compute the Dice score of the model's mask `pred` against the ground truth `gt` with NumPy only.",
    solver=_solve_dice_by_hand,
    hint="Dice = 2 |P ∩ G| / (|P| + |G|); np.logical_and gives the overlap, .sum() counts pixels",
    kind="check",
)
def _check_dice_by_hand(answer, pred, gt):
    from utils.metrics import dice

    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    expected = dice(pred, gt)
    value = float(answer)
    return abs(value - expected) < 1e-6, f"Dice = {expected:.4f} (|P| = {pred.sum()}, |G| = {gt.sum()})"


def _solve_jittered_box(box, jitter, u):
    x0, y0, x1, y1 = box
    width, height = x1 - x0 + 1, y1 - y0 + 1  # inclusive pixel indices
    return np.asarray(box, dtype=float) + np.asarray(u) * jitter * np.array([width, height, width, height])


@exercise(
    "03.jittered_box",
    "Jitter the box [x0, y0, x1, y1] by hand: move each coordinate by u × jitter × the box's width (x) or "
    "height (y), with the 4 uniform draws `u` in [-1, 1] given (no clipping).",
    solver=_solve_jittered_box,
    hint="width = x1 - x0 + 1 and height = y1 - y0 + 1 (inclusive pixel indices); u[0] and u[2] move x",
    kind="check",
    warmup=True,
)
def _check_jittered_box(answer, box, jitter, u):
    x0, y0, x1, y1 = (float(v) for v in box)
    scale = jitter * np.array([x1 - x0 + 1, y1 - y0 + 1, x1 - x0 + 1, y1 - y0 + 1])
    expected = np.array([x0, y0, x1, y1]) + np.asarray(u, dtype=float) * scale
    value = np.asarray(answer, dtype=float).reshape(-1)
    if value.shape != (4,):
        return False, f"expected 4 numbers [x0, y0, x1, y1], got {value.size}"
    return bool(np.allclose(value, expected, atol=1e-6)), f"jittered box {np.round(expected, 2).tolist()}"


def _solve_oracle_gap(df, model, mode="point_center"):
    rows = df[(df["model"] == model) & (df["mode"] == mode)]
    return float((rows["dice_oracle"] - rows["dice"]).mean())


@exercise(
    "03.oracle_gap",
    "From the results table `df`, compute for `model` and mode `mode` the mean Dice lost by trusting the "
    "IoU head: mean(dice_oracle − dice).",
    solver=_solve_oracle_gap,
    hint="filter rows with df['model'] == model and df['mode'] == mode, then subtract the two columns",
    kind="check",
    warmup=True,
)
def _check_oracle_gap(answer, df, model, mode="point_center"):
    rows = df[(df["model"] == model) & (df["mode"] == mode)]
    expected = float((rows["dice_oracle"] - rows["dice"]).mean())
    return abs(float(answer) - expected) < 1e-9, f"mean gap over {len(rows)} cases = {expected:.4f} Dice"


def _solve_bootstrap_ci(values, n_boot=2000, seed=0):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    picks = rng.integers(0, len(values), size=(n_boot, len(values)))  # resample cases with replacement
    means = values[picks].mean(axis=1)
    return np.quantile(means, [0.025, 0.975])


@exercise(
    "03.bootstrap_ci",
    "Compute a 95% percentile-bootstrap confidence interval (low, high) for the mean of `values` (one Dice per "
    "case): resample the cases with replacement n_boot times, take each resample's mean, then the 2.5th and "
    "97.5th percentiles.",
    solver=_solve_bootstrap_ci,
    hint="rng.integers(0, n, size=(n_boot, n)) gives n_boot resamples of case indices; then np.quantile",
    kind="check",
)
def _check_bootstrap_ci(answer, values, n_boot=2000, seed=0):
    from utils.metrics import bootstrap_ci

    values = np.asarray(values, dtype=float)
    mean, low, high = bootstrap_ci(values, n_boot=20000, seed=12345)  # a precise reference
    pair = np.asarray(answer, dtype=float).reshape(-1)
    if pair.shape != (2,):
        return False, "expected two numbers (low, high)"
    # resampling noise: a different seed moves the ends by a few percent of the width
    tolerance = max(0.01, 0.15 * (high - low))
    close = abs(pair[0] - low) <= tolerance and abs(pair[1] - high) <= tolerance
    return bool(close and pair[0] <= mean <= pair[1]), f"about ({low:.3f}, {high:.3f}) around the mean {mean:.3f}"
