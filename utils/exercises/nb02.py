"""Exercises of notebook 02 (prompting SAM): which prompt wins, the IoU head vs the oracle, clicks, a corrective-click
policy run against the course's."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction


def _as_mask(mask) -> np.ndarray:
    return np.asarray(mask).astype(bool)


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


# ------------------------------------------------------------------------------ 02.best_prompt (predict)
PROMPT_CHOICES = ("1 positive point", "box", "box + positive point")


def _solve_best_prompt(dices, model):
    return max(PROMPT_CHOICES, key=lambda prompt: dices[prompt])  # the prompt with the highest Dice


@exercise(
    "02.best_prompt",
    "On the running example, which prompt will give the highest Dice against the reference: one positive "
    f"point at the centre, the tight box, or the box plus that point? Predict one of "
    f"{', '.join(repr(c) for c in PROMPT_CHOICES)} before the cell that prompts the model runs.",
    solver=_solve_best_prompt,
    hint="what was this run's model trained with (models.model_card(MODEL)['prompts'])?",
    kind="predict",
    choices=PROMPT_CHOICES,
)
def _check_best_prompt(answer, dices, model):
    from utils.models import model_card

    outcome = _solve_best_prompt(dices, model)
    ranked = sorted(PROMPT_CHOICES, key=lambda prompt: -dices[prompt])
    margin = dices[ranked[0]] - dices[ranked[1]]
    added = dices["box + positive point"] - dices["box"]
    why = (
        "Dice on this slice: " + ", ".join(f"{p} {dices[p]:.3f}" for p in PROMPT_CHOICES) + f"; {outcome!r} wins by "
        f"{margin:.3f}{' (a tie in practice)' if margin < 0.01 else ''}. Adding the point to the box changed the "
        f"Dice by {added:+.3f}. {model} was trained with: {model_card(model)['prompts']}."
    )
    return grade_prediction(answer, outcome, PROMPT_CHOICES, why)


# ------------------------------------------------------------------------------ 02.click_policy (build)
N_CLICKS = 5


def _solve_click_policy(**context):
    def next_click(pred, gt):
        from scipy import ndimage

        best = None
        for positive, region in ((True, gt & ~pred), (False, pred & ~gt)):  # missed, then spurious pixels
            depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]  # the border counts as an edge
            if depth.max() > 0 and (best is None or depth.max() > best[0]):
                row, col = np.unravel_index(np.argmax(depth), depth.shape)
                best = (depth.max(), (int(col), int(row), positive))
        return None if best is None else best[1]  # None: nothing left to correct

    return next_click


def click_session(predictor, gt, box, policy, n_clicks: int = N_CLICKS) -> dict:
    """Corrective clicks as interactive-segmentation benchmarks simulate them: start from ``box``'s mask;
    each round ``policy(pred, gt)`` returns a click ``(x, y, positive)`` (or None to stop), the model is
    prompted with the box and every click so far (one mask), and the Dice is recorded.

    A click off the error it claims to fix (a positive click outside the missed pixels, a negative one
    outside the spurious pixels) is counted in ``invalid`` and ends the session.
    """
    from utils.metrics import dice

    gt = _as_mask(gt)
    height, width = gt.shape
    masks, _, _ = predictor.predict(box=np.asarray(box, dtype=float), multimask_output=False)
    pred, points, labels = masks[0], [], []
    dices, invalid = [dice(pred, gt)], []
    for _ in range(n_clicks):
        click = policy(pred.copy(), gt.copy())
        if click is None:
            break
        x, y, positive = int(round(float(click[0]))), int(round(float(click[1]))), bool(click[2])
        error = (gt & ~pred) if positive else (pred & ~gt)
        if not (0 <= x < width and 0 <= y < height) or not error[y, x]:
            invalid.append((x, y, positive))
            break
        points.append((x, y))
        labels.append(int(positive))
        masks, _, _ = predictor.predict(
            point_coords=np.array(points, dtype=float),
            point_labels=np.array(labels),
            box=np.asarray(box, dtype=float),
            multimask_output=False,
        )
        pred = masks[0]
        dices.append(dice(pred, gt))
    return {"dice": dices, "clicks": list(zip(points, labels)), "invalid": invalid}


@exercise(
    "02.click_policy",
    "Write a corrective-click policy `next_click(pred, gt)`: given the current mask `pred` and the reference "
    "`gt` (bool arrays), return the next simulated click `(x, y, positive)` — positive=True on a missed pixel "
    "(in gt, not in pred), False on a spurious one (in pred, not in gt) — or None when nothing is left to "
    f"correct. The course runs {N_CLICKS} rounds of box + your clicks on the running example and scores the "
    "Dice after each click against its own policy (the pixel deepest inside the largest error, as benchmarks "
    "simulate a user). It passes when every click lands on an error of its kind and your mean Dice over the "
    "rounds is at most 0.05 below the course's.",
    solver=_solve_click_policy,
    hint="scipy.ndimage.distance_transform_edt of each error mask gives each pixel's depth inside its error; "
    "x is the column, y the row",
    kind="build",
)
def _check_click_policy(answer, predictor, gt, box, n_clicks=N_CLICKS):
    if not callable(answer):
        return False, "answer the function itself: answer = next_click"
    yours = click_session(predictor, gt, box, answer, n_clicks)
    course = click_session(predictor, gt, box, _solve_click_policy(), n_clicks)
    if yours["invalid"]:
        x, y, positive = yours["invalid"][0]
        kind = "missed (positive)" if positive else "spurious (negative)"
        return False, f"click {len(yours['clicks']) + 1} at (x, y) = ({x}, {y}) is not on a {kind} pixel"
    mean_yours, mean_course = float(np.mean(yours["dice"])), float(np.mean(course["dice"]))
    trace = (
        f"Dice from the box alone through each click — yours: {' → '.join(f'{d:.3f}' for d in yours['dice'])}; "
        f"the course's: {' → '.join(f'{d:.3f}' for d in course['dice'])}. "
    )
    gain = course["dice"][-1] - course["dice"][0]
    effect = f"the course's {len(course['clicks'])} clicks moved the Dice by {gain:+.3f} from the box alone"
    if mean_yours < mean_course - 0.05:
        return False, f"{trace}Your mean {mean_yours:.3f} is more than 0.05 below the course's {mean_course:.3f}."
    return True, f"{trace}Mean over the rounds: yours {mean_yours:.3f}, the course's {mean_course:.3f}; {effect}."
