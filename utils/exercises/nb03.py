"""Exercises of notebook 03 (zero-shot evaluation): a Dice by hand, which prompt wins (predict), a two-click
box simulator run through the evaluation (build), a bootstrap CI."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction


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


# ------------------------------------------------------------------------------------ predict: which prompt wins

PROMPT_CHOICES = ("point_center", "points_5", "box")


def _solve_which_prompt_wins(df, model):
    # the reference answer is what this run measured: the mode with the highest mean Dice
    rows = df[(df["model"] == model) & df["mode"].isin(["point_center", "points_5", "box"])]
    return rows.groupby("mode")["dice"].mean().idxmax()


@exercise(
    "03.which_prompt_wins",
    "Before the harness runs: for the first model on this run's cases, which prompt gives the highest mean "
    "Dice: one centre point ('point_center'), five points ('points_5') or the tight box ('box')?",
    solver=_solve_which_prompt_wins,
    hint="think about what the model was trained with (its card) and how much a prompt says about the outline",
    kind="predict",
    choices=PROMPT_CHOICES,
)
def _check_which_prompt_wins(answer, df, model):
    rows = df[(df["model"] == model) & df["mode"].isin(PROMPT_CHOICES)]
    means = rows.groupby("mode")["dice"].mean().reindex(list(PROMPT_CHOICES))
    outcome = means.idxmax()
    wide = rows.pivot_table(index="case", columns="mode", values="dice", aggfunc="first")
    others = [m for m in PROMPT_CHOICES if m != outcome]
    wins = int((wide[outcome] > wide[others].max(axis=1)).sum())
    listed = ", ".join(f"{mode} {value:.3f}" for mode, value in means.sort_values(ascending=False).items())
    why = (f"Mean Dice of {model} on {len(wide)} cases: {listed}; {outcome} beats both others on {wins} of "
           f"{len(wide)} cases.")  # fmt: skip
    return grade_prediction(answer, outcome, PROMPT_CHOICES, why)


# --------------------------------------------------------------------------- build: a two-click box simulator


def _solve_two_click_box(**context):
    def two_click_box(mask, rng, click_error_px):
        rows, cols = np.nonzero(mask)
        corners = np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=float)  # the tight box
        clicks = corners + rng.normal(0.0, click_error_px, size=4)  # each click misses by a few pixels
        height, width = mask.shape
        clicks = np.clip(clicks, 0, [width - 1, height - 1, width - 1, height - 1])
        (x0, x1), (y0, y1) = sorted(clicks[[0, 2]]), sorted(clicks[[1, 3]])  # a tiny object: clicks may cross
        return [x0, y0, x1, y1]

    return two_click_box


def _two_click_boxes(simulator, cases, seed, click_error_px):
    """Run the student's simulator on every case with the case's own seeded generator; validate each box."""
    from utils.prompts import box_from_mask, prompt_rng

    boxes, offsets = [], []
    for case in cases:
        rng = prompt_rng(seed, case.name, "two_click_box")
        box = np.asarray(simulator(case.mask.copy(), rng, click_error_px), dtype=float).reshape(-1)
        height, width = case.mask.shape
        if box.shape != (4,) or not np.isfinite(box).all():
            raise ValueError(f"case {case.name}: expected 4 finite numbers [x0, y0, x1, y1], got {box.size}")
        if not (0 <= box[0] <= box[2] <= width - 1 and 0 <= box[1] <= box[3] <= height - 1):
            raise ValueError(f"case {case.name}: {np.round(box, 1).tolist()} is not a box in the {width}x{height} "
                             "image (0 <= x0 <= x1 <= W-1, 0 <= y0 <= y1 <= H-1)")  # fmt: skip
        boxes.append(box)
        offsets.append(np.abs(box - box_from_mask(case.mask)))
    return boxes, float(np.mean(offsets))


@exercise(
    "03.two_click_box",
    "Write two_click_box(mask, rng, click_error_px) -> [x0, y0, x1, y1]: a clinician's quick box, two clicks at "
    "the object's top-left and bottom-right corners, each coordinate off by a normal error with standard "
    "deviation click_error_px pixels (rng is a np.random.Generator), kept inside the image. The course runs it "
    "through the evaluation on this run's cases and measures it against the tight box and box_jitter_10.",
    solver=_solve_two_click_box,
    hint="start from the tight box (np.nonzero(mask) gives rows and columns), add rng.normal(0, click_error_px, 4), "
    "np.clip to the image, and keep x0 <= x1, y0 <= y1",
    kind="build",
)
def _check_two_click_box(answer, predictor, cases, df, model, seed=0, click_error_px=3.0):
    from utils.metrics import dice

    if not callable(answer):
        return False, "set answer = two_click_box (the function itself, not a box)"
    try:
        boxes, offset = _two_click_boxes(answer, cases, seed, click_error_px)
    except ValueError as problem:
        return False, str(problem)
    ours = []
    for case, box in zip(cases, boxes):
        predictor.set_image(case.image)
        masks, _, _ = predictor.predict(box=box, multimask_output=False)  # a box: one mask for every model
        ours.append(dice(masks[0], case.mask))
    rows = df[(df["model"] == model) & df["case"].isin([c.name for c in cases])]
    course = rows.groupby("mode")["dice"].mean()
    measured = (f"mean corner offset {offset:.1f} px; {model} Dice on {len(cases)} cases: yours {np.mean(ours):.3f}, "
                f"tight box {course['box']:.3f}, box_jitter_10 {course['box_jitter_10']:.3f}")  # fmt: skip
    # a normal error misses by 0.8 sigma on average; clipping at the image edge can only lower it
    if offset < 0.4 * click_error_px:
        return False, f"{measured} — your clicks hit the tight box exactly; a hand misses by about click_error_px"
    if offset > 1.5 * click_error_px:
        return False, f"{measured} — the clicks miss by far more than click_error_px = {click_error_px:g} px"
    return True, measured


# ----------------------------------------------------------------------------------------------- bootstrap CI


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
