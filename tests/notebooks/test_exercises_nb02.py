"""Notebook 02's exercise checkers: the reference solution passes, typical mistakes fail with useful feedback."""

import numpy as np
import pytest

from utils import exercises
from utils.exercises import nb02  # noqa: F401 - registers the exercises
from utils.prompts import box_from_mask


@pytest.fixture
def blob():
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:21, 5:31] = True  # rows 10..20, columns 5..30
    return mask


def _check(key, answer, **context):
    passed, feedback = exercises.REGISTRY[key].checker(answer, **context)
    return passed, feedback


def test_box_by_hand(blob):
    assert exercises.solution("02.box_by_hand", mask=blob) == [5, 10, 30, 20]
    assert _check("02.box_by_hand", box_from_mask(blob), mask=blob)[0]
    passed, feedback = _check("02.box_by_hand", [10, 5, 20, 30], mask=blob)
    assert not passed and "(row, col)" in feedback
    assert not _check("02.box_by_hand", [5, 10, 31, 21], mask=blob)[0]  # exclusive ends are off by one
    assert not _check("02.box_by_hand", [5, 10, 30], mask=blob)[0]


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


def test_next_click(blob):
    pred = np.zeros_like(blob)
    pred[10:21, 5:12] = True  # covers the left end only: the big error is a missed region
    x, y, positive = exercises.solution("02.next_click", pred=pred, gt=blob)
    assert positive is True and blob[y, x] and not pred[y, x]
    assert _check("02.next_click", (x, y, True), pred=pred, gt=blob)[0]
    passed, feedback = _check("02.next_click", (x, y, False), pred=pred, gt=blob)
    assert not passed and "flip" in feedback
    assert not _check("02.next_click", (6, 15, True), pred=pred, gt=blob)[0]  # not an error pixel
    assert not _check("02.next_click", (29, 15, True), pred=pred, gt=blob)[0]  # an error, but at its edge
    spurious = blob.copy()
    spurious[25:40, 35:60] = True
    x, y, positive = exercises.solution("02.next_click", pred=spurious, gt=blob)
    assert positive is False and spurious[y, x] and not blob[y, x]
    assert not _check("02.next_click", (x, y, True), pred=blob, gt=blob)[0]  # nothing to correct


def test_checks_through_the_framework_give_feedback_not_crashes(blob, capsys):
    assert exercises.check("02.box_by_hand", "not a box", mask=blob) is False
    assert "could not be checked" in capsys.readouterr().out
    assert exercises.check("02.box_by_hand", None, use_solution=True, mask=blob) is True
