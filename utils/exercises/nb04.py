"""Exercises of notebook 04 (why SAM fails): each checker computes the truth from its context."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction

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


# ------------------------------------------------------------------ 2. predict: which prompt for thin vessels?

THIN_PROMPTS = ("box", "point_center", "points_5")


def _solve_thin_prompt(duel):
    return duel["winner"]  # this run's best mode on the thin-vessel phantoms


@exercise(
    "04.thin_prompt",
    "Before the cell runs: on the thin-vessel phantoms (the thinnest and the widest tree), which prompt gives "
    "the highest mean Dice — a box around the whole tree ('box'), one point on the vessels ('point_center') "
    "or five points on the vessels ('points_5')?",
    solver=_solve_thin_prompt,
    hint="a box around a vessel tree is mostly background; a point says 'this vessel' — but was the model "
    "trained with points? (models.model_card(MODEL)['prompts'])",
    kind="predict",
    choices=THIN_PROMPTS,
)
def _check_thin_prompt(answer, duel):
    means = duel["mean"]
    scores = ", ".join(f"{mode} {means[mode]:.2f}" for mode in duel["modes"])
    winner = duel["winner"]
    if winner == "box":
        reason = (
            "the box wins: it is one unambiguous prompt, and the points did not tell the model more "
            "(a model trained with boxes only, like LiteMedSAM, cannot read points at all)"
        )
    else:
        reason = (
            "points win: they sit on the vessels themselves, where a box around the tree is mostly "
            "background — a model trained with points (SAM ViT-B) can use that"
        )
    why = f"Mean Dice on the thin-vessel phantoms: {scores}; {reason}, by {duel['margin']:.2f} Dice."
    return grade_prediction(answer, winner, THIN_PROMPTS, why)


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


# ------------------------------------------------------------------ 5. build: a failure factor of your own

NEW_FACTOR_VALUES = (0.0, 0.5, 1.0)  # the strengths the course sweeps your factor at


def _solve_new_factor(predictor, seeds, reference):
    def bias_field(image, strength):
        # MRI coil inhomogeneity: brightness falls off from left to right, by up to 80 % at strength 1
        gain = np.linspace(1.0, 1.0 - 0.8 * strength, image.shape[1])
        return np.clip(image * gain[None, :, None], 0, 255).astype(np.uint8)

    return bias_field


@exercise(
    "04.new_factor",
    "Write a failure factor of your own: a function `degrade(image, strength)` that takes a phantom's uint8 "
    "RGB image (H, W, 3) and a strength in [0, 1] and returns a uint8 image of the same shape — unchanged at "
    "strength 0, visibly changed at 1 (a bias field, motion blur, a stripe artefact...). The course sweeps it "
    "through utils.lessons.sweeps on the MRI lesion phantom with this notebook's model and box prompt.",
    solver=_solve_new_factor,
    hint="work in float, then np.clip(out, 0, 255).astype(np.uint8); at strength 0 return the image as it was",
    kind="build",
)
def _check_new_factor(answer, predictor, seeds, reference):
    from utils.lessons import sweeps
    from utils.phantoms import make_phantom

    if not callable(answer):
        return False, "answer a function degrade(image, strength) -> image"
    spec = sweeps.Sweep(style="mri", knob="strength", values=NEW_FACTOR_VALUES, label="your factor's strength",
                        harder="higher", what="your own factor", degrade=answer)  # fmt: skip
    plain = make_phantom("mri", seed=int(seeds[0]))  # the MRI lesion phantom as it is drawn
    calm, strong = (sweeps.sweep_case("yours", v, int(seeds[0]), spec=spec).image.astype(float) for v in (0.0, 1.0))
    if np.abs(calm - plain.image).mean() > 0.5:
        return False, "at strength 0 the image must stay as it was (it changed by more than half a grey level)"
    change = np.abs(strong - plain.image).mean()
    if change < 2.0:
        return False, f"at strength 1 the image changed by only {change:.1f} grey levels on average: make it visible"
    table = sweeps.sweep(predictor, "yours", values=NEW_FACTOR_VALUES, seeds=seeds, spec=spec, progress=False,
                         keep_masks=False)  # fmt: skip
    curve = sweeps.curves(table, n_boot=200)["yours"]
    name = "blur" if "blur" in reference else next(iter(reference))  # a course factor to compare with
    mine, theirs = sweeps.trend(curve), sweeps.trend(reference[name])
    return True, (
        f"your factor changes the image by {change:.0f} grey levels at strength 1; Dice {mine['easy']:.2f} at 0 -> "
        f"{mine['hard']:.2f} at 1 (drop {mine['drop']:+.2f}), beside the course's {name} factor in this run: drop "
        f"{theirs['drop']:+.2f}. Which family of notebook 08's table would address yours?"
    )
