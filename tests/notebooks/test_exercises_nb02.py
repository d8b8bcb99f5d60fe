"""Notebook 02's exercise checkers: the reference solution passes, typical mistakes fail with useful feedback."""

import numpy as np
import pytest

from utils import exercises
from utils.exercises import nb02
from utils.prompts import box_from_mask


@pytest.fixture
def blob():
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:21, 5:31] = True  # rows 10..20, columns 5..30
    return mask


def _check(key, answer, **context):
    passed, feedback = exercises.REGISTRY[key].checker(answer, **context)
    return passed, feedback


def test_oracle_pick(blob):
    shrunk = np.zeros_like(blob)
    shrunk[12:19, 8:28] = True
    grown = np.zeros_like(blob)
    grown[5:30, 0:45] = True
    masks = np.stack([grown, shrunk, blob])
    scores = np.array([0.9, 0.5, 0.7])  # the IoU head prefers the grown mask; the oracle the exact one
    context = {"masks": masks, "scores": scores, "gt": blob}
    assert exercises.solution("02.oracle_pick", **context) == (0, 2)
    assert _check("02.oracle_pick", (0, 2), **context)[0]
    passed, feedback = _check("02.oracle_pick", (2, 2), **context)
    assert not passed and "IoU-head index" in feedback
    assert not _check("02.oracle_pick", (0, 0), **context)[0]
    # equal Dice: any of the tied masks is the oracle's
    assert _check("02.oracle_pick", (0, 1), masks=np.stack([blob, blob]), scores=[0.9, 0.1], gt=blob)[0]


def test_click_to_pixel():
    context = {"click": (301, 99), "image_shape": (217, 181), "display_width": 362}
    assert exercises.solution("02.click_to_pixel", **context) == (150, 49)
    assert _check("02.click_to_pixel", (150, 49), **context)[0]
    passed, feedback = _check("02.click_to_pixel", (49, 150), **context)
    assert not passed and "swapped" in feedback
    assert not _check("02.click_to_pixel", (301, 99), **context)[0]  # forgot to scale


@pytest.mark.parametrize("winner", nb02.PROMPT_CHOICES)
def test_best_prompt_names_the_winner_and_explains_it(winner):
    dices = {prompt: 0.2 for prompt in nb02.PROMPT_CHOICES}
    dices[winner] = 0.7
    assert exercises.solution("02.best_prompt", dices=dices, model="litemedsam") == winner
    passed, feedback = _check("02.best_prompt", winner, dices=dices, model="litemedsam")
    assert passed and feedback.startswith("your prediction held") and "wins by 0.500" in feedback
    assert "boxes" in feedback  # the model card's training prompts
    other = next(p for p in nb02.PROMPT_CHOICES if p != winner)
    passed, feedback = _check("02.best_prompt", other, dices=dices, model="sam_vit_b")
    assert passed and f"this run says {winner!r}" in feedback and "points, boxes" in feedback
    assert not _check("02.best_prompt", "two boxes", dices=dices, model="sam_vit_b")[0]
    dices["box"] = dices["box + positive point"] = 0.7
    assert "a tie in practice" in _check("02.best_prompt", "box", dices=dices, model="litemedsam")[1]


class ClickModel:
    """A stand-in predictor: the box gives a mask shrunk by 4 px; each click paints (positive) or erases
    (negative) a disc of radius 4 around it."""

    def __init__(self, shape):
        self.shape = shape

    def predict(self, box, point_coords=None, point_labels=None, multimask_output=False):
        x0, y0, x1, y1 = np.asarray(box, dtype=int)
        mask = np.zeros(self.shape, dtype=bool)
        mask[y0 + 4 : y1 - 3, x0 + 4 : x1 - 3] = True
        rows, cols = np.ogrid[: self.shape[0], : self.shape[1]]
        clicks = [] if point_coords is None else zip(point_coords, point_labels)
        for (x, y), label in clicks:
            mask[(rows - y) ** 2 + (cols - x) ** 2 <= 16] = bool(label)
        return mask[None], np.ones(1), None


def test_click_policy_reference_runs_and_improves_the_mask(blob):
    model, box = ClickModel(blob.shape), box_from_mask(blob)
    policy = exercises.solution("02.click_policy")
    session = nb02.click_session(model, blob, box, policy, n_clicks=3)
    assert len(session["dice"]) == 4 and not session["invalid"]
    assert session["dice"][-1] > session["dice"][0]  # each click paints a missed rim back
    assert all(label == 1 for _, label in session["clicks"])  # only missed pixels: positive clicks
    passed, feedback = _check("02.click_policy", policy, predictor=model, gt=blob, box=box)
    assert passed and "yours" in feedback and "moved the Dice by +" in feedback
    assert policy(blob.copy(), blob.copy()) is None  # nothing to correct


def test_click_policy_failures_are_measured(blob):
    model, box = ClickModel(blob.shape), box_from_mask(blob)

    def wrong_kind(pred, gt):  # a negative click on a missed pixel
        row, col = np.argwhere(gt & ~pred)[0]
        return int(col), int(row), False

    def swapped_axes(pred, gt):
        x, y, positive = exercises.solution("02.click_policy")(pred, gt)
        return y, x, positive

    for policy in (wrong_kind, swapped_axes):
        passed, feedback = _check("02.click_policy", policy, predictor=model, gt=blob, box=box)
        assert not passed and "is not on a" in feedback, feedback

    def idle(pred, gt):  # never clicks: stays at the box's Dice while the course's clicks improve it
        return None

    passed, feedback = _check("02.click_policy", idle, predictor=model, gt=blob, box=box)
    assert not passed and "more than 0.05 below" in feedback
    assert not _check("02.click_policy", (3, 4, True), predictor=model, gt=blob, box=box)[0]


def test_checks_through_the_framework_give_feedback_not_crashes(blob, capsys):
    assert exercises.check("02.oracle_pick", "not a pair", masks=np.stack([blob]), scores=[1.0], gt=blob) is False
    assert "could not be checked" in capsys.readouterr().out
    assert exercises.check("02.click_to_pixel", None, use_solution=True, click=(1, 2), image_shape=(10, 10),
                           display_width=20) is True  # fmt: skip
    kinds = {key: item.kind for key, item in exercises.REGISTRY.items() if key.startswith("02.")}
    assert kinds == {"02.oracle_pick": "check", "02.click_to_pixel": "check", "02.best_prompt": "predict",
                     "02.click_policy": "build"}  # fmt: skip
