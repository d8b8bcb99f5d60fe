"""Exercises of notebook 07 (3-D with a 2-D model): predict what a slice range does to 3-D Dice, build a
better stop rule (run through the course's propagation and scored against the current rule), volumes with
voxel spacing, and a per-slice intensity window."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


def _solve_volume_ml(gt, spacing, step=3):
    voxel_mm3 = np.prod(spacing)  # the volume of one voxel
    fine_ml = gt.sum() * voxel_mm3 / 1000  # 1 mL = 1000 mm³
    thick = gt[::step]  # keep every step-th slice: a scan with thicker slices
    thick_spacing = (spacing[0] * step, spacing[1], spacing[2])
    thick_ml = thick.sum() * np.prod(thick_spacing) / 1000
    return fine_ml, thick_ml


@exercise(
    "07.volume_ml",
    "Compute the structure's volume in mL from the ground truth `gt` and its voxel `spacing` (slice, row, col) "
    "in mm. Then simulate a scan with `step` times thicker slices (keep `gt[::step]`, whose slices are "
    "`spacing[0] * step` mm apart) and compute its volume too. Answer `(fine_ml, thick_ml)`.",
    solver=_solve_volume_ml,
    hint="one voxel is spacing[0] × spacing[1] × spacing[2] mm³, and 1 mL = 1000 mm³",
    kind="check",
)
def _check_volume_ml(answer, gt, spacing, step=3):
    from utils.metrics import volume_ml

    fine = volume_ml(gt, spacing)
    thick = volume_ml(gt[::step], (spacing[0] * step, spacing[1], spacing[2]))
    values = np.asarray(answer, dtype=float).reshape(-1)
    if values.shape != (2,):
        return False, f"expected two numbers (fine_ml, thick_ml), got {values.size}"
    ok = bool(np.allclose(values, [fine, thick], rtol=1e-6, atol=1e-9))
    return ok, f"{fine:.3f} mL at {spacing[0]:g} mm slices, {thick:.3f} mL at {spacing[0] * step:g} mm"


def _solve_in_range(reports, **_run):
    gains = [r["in_range_dice3d"] - r["propagation_dice3d"] for r in reports.values()]
    mean_gain = float(np.mean(gains))
    return "higher" if mean_gain > 1e-9 else "lower" if mean_gain < -1e-9 else "the same"


@exercise(
    "07.in_range",
    "Before the walks run: the `in_range` walk is the same walk kept between the structure's first and last "
    "slice (the user also marked where it starts and ends). Will its mean 3-D Dice over this run's structures "
    "be higher than plain propagation's, the same, or lower?",
    solver=_solve_in_range,
    hint="the walk is deterministic: inside the range both walks make the same masks; what can the range remove?",
    kind="predict",
    choices=("higher", "the same", "lower"),
)
def _check_in_range(answer, reports):
    from utils.exercises import grade_prediction

    outcome = _solve_in_range(reports)
    gains = {name: r["in_range_dice3d"] - r["propagation_dice3d"] for name, r in reports.items()}
    overshoot = {name: r["overshoot_slices"] for name, r in reports.items()}
    per_structure = ", ".join(f"{name} {overshoot[name]} slice(s), {gains[name]:+.3f}" for name in reports)
    why = (
        f"Slices filled outside the structure and the Dice change from the range: {per_structure} "
        f"(mean {np.mean(list(gains.values())):+.3f}). Inside the range both walks make the same masks, so the "
        "range can only remove slices the structure does not reach (pure false positives): Dice rises where "
        "the walk overshot and stays the same where it stopped in time; it cannot fall."
    )
    return grade_prediction(answer, outcome, ("higher", "the same", "lower"), why)


def _solve_stop_rule(rule, max_grey_change=12.0, **_run):
    def stop_on_tissue_change(mask, previous, score=None, image=None, previous_image=None):
        reason = rule(mask, previous, score)  # the course's checks first: vanished, area and overlap jumps
        if reason is not None or image is None:
            return reason
        # past a structure's end the model segments whatever tissue the box holds, often with a similar
        # shape; where that is another tissue, the grey level inside the mask changes though the shape does not
        change = abs(float(image[mask].mean()) - float(previous_image[previous].mean()))
        return "intensity_jump" if change > max_grey_change else None

    return stop_on_tissue_change


def _rule_summary(numbers):
    dice = float(np.mean([n["dice3d"] for n in numbers.values()]))
    overshoot = int(sum(n["overshoot_slices"] for n in numbers.values()))
    return dice, overshoot


@exercise(
    "07.stop_rule",
    "Write a better stop rule: a function `my_rule(mask, previous, score=None, image=None, previous_image=None)` "
    "that returns a reason to stop (a short string such as 'intensity_jump') or None to keep the mask and go on. "
    "`mask` and `previous` are this and the previous slice's masks, `score` the model's IoU estimate, `image` and "
    "`previous_image` the two slices. The course runs it through `volumetric.propagate` on every structure of "
    "this run (same start box, same budget) and scores it against the current rule: it passes when its mean 3-D "
    "Dice is no more than 0.01 below the current rule's and it fills no more slices outside the structures. "
    "Set `answer = my_rule`.",
    solver=_solve_stop_rule,
    hint="start from `rule(mask, previous, score)` (the current rule) and add one check it lacks: what changes "
    "when the box slides off the structure onto a neighbouring tissue?",
    kind="build",
)
def _check_stop_rule(answer, rule, structures, predictor, box_margin=3, baseline=None):
    from utils.lessons.volumetric import StopRule, compare_rules

    if not callable(answer):
        return False, "answer must be the function itself: answer = my_rule (no parentheses)"
    if answer is rule or (isinstance(answer, StopRule) and answer == rule):
        return False, "that is the course's own rule; write a rule of your own (it may call `rule` first)"
    done = {"current": baseline} if baseline else None
    table = compare_rules(
        predictor, structures, {"current": rule, "yours": answer}, box_margin, max_slices=rule.max_slices, done=done
    )
    (course_dice, course_over), (your_dice, your_over) = (_rule_summary(table[k]) for k in ("current", "yours"))
    lines = [
        f"{name}: Dice {table['current'][name]['dice3d']:.3f} → {table['yours'][name]['dice3d']:.3f}, slices outside "
        f"{table['current'][name]['overshoot_slices']} → {table['yours'][name]['overshoot_slices']} "
        f"(yours stopped {table['yours'][name]['stopped_because']})"
        for name in structures
    ]
    summary = (
        f"mean 3-D Dice {course_dice:.3f} (current rule) → {your_dice:.3f} (yours); slices filled outside the "
        f"structures {course_over} → {your_over}.\n   " + "\n   ".join(lines)
    )
    if your_over > course_over:
        return False, f"your rule lets the walk run further past the structures: {summary}"
    if your_dice < course_dice - 0.01:
        return False, f"your rule loses Dice (does it stop inside a structure?): {summary}"
    verdict = "better" if (your_dice > course_dice + 1e-9 or your_over < course_over) else "as good as the current one"
    return True, f"your rule is {verdict} on this run's structures: {summary}"


def _solve_slice_window(image, percentiles=(1.0, 99.0)):
    from utils.images import rescale_to_uint8

    foreground = image[image > image.min()]  # the head, not the air around it
    low, high = np.percentile(foreground, percentiles)
    return rescale_to_uint8(image, low=low, high=high)


@exercise(
    "07.slice_window",
    "Window one slice on its own: map the `percentiles` (low, high) of its foreground pixels (those brighter "
    "than the slice's minimum) to 0 and 255, clipping outside, and return a uint8 image of the same shape.",
    solver=_solve_slice_window,
    hint="np.percentile(image[image > image.min()], percentiles), then utils.images.rescale_to_uint8(image, low, high)",
    kind="check",
)
def _check_slice_window(answer, image, percentiles=(1.0, 99.0)):
    from utils.lessons.volumetric import normalise_slices

    expected = normalise_slices(np.asarray(image)[None], percentiles)[0]
    value = np.asarray(answer)
    if value.shape != expected.shape:
        return False, f"expected an image of shape {expected.shape}, got {value.shape}"
    error = int(np.abs(value.astype(int) - expected.astype(int)).max())
    return error <= 1, f"largest difference from the reference window: {error} grey level(s)"
