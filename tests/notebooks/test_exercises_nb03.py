"""Notebook 03's exercise checkers: the reference answer passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import exercises
from utils.metrics import dice
from utils.prompts import box_from_mask


@pytest.fixture(autouse=True)
def _quiet(capsys):
    yield
    capsys.readouterr()


def masks():
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    pred = np.zeros_like(gt)
    pred[15:35, 12:32] = True
    return pred, gt


def test_dice_by_hand():
    pred, gt = masks()
    assert exercises.check("03.dice_by_hand", None, use_solution=True, pred=pred, gt=gt)
    assert exercises.check("03.dice_by_hand", dice(pred, gt), pred=pred, gt=gt)
    iou_instead = np.logical_and(pred, gt).sum() / np.logical_or(pred, gt).sum()
    assert not exercises.check("03.dice_by_hand", iou_instead, pred=pred, gt=gt)
    assert not exercises.check("03.dice_by_hand", "high", pred=pred, gt=gt)


def test_jittered_box_matches_box_from_mask_before_clipping():
    _, gt = masks()
    box = box_from_mask(gt)
    u = np.random.default_rng(4).uniform(-1, 1, size=4)
    context = {"box": box, "jitter": 0.1, "u": u}
    assert exercises.check("03.jittered_box", None, use_solution=True, **context)
    # box_from_mask draws the same 4 uniforms from the same generator (no clipping needed here)
    by_hand = exercises.solution("03.jittered_box", **context)
    assert np.allclose(by_hand, box_from_mask(gt, 0.1, np.random.default_rng(4)))
    width_without_plus_one = box + u * 0.1 * np.array([19, 19, 19, 19])
    assert not exercises.check("03.jittered_box", width_without_plus_one, **context)
    assert not exercises.check("03.jittered_box", box, **context)
    assert not exercises.check("03.jittered_box", [1, 2, 3], **context)


def test_oracle_gap():
    df = pd.DataFrame(
        {
            "model": ["m", "m", "m", "other"],
            "mode": ["point_center", "point_center", "box", "point_center"],
            "dice": [0.2, 0.5, 0.9, 0.0],
            "dice_oracle": [0.6, 0.5, 0.9, 1.0],
        }
    )
    assert exercises.check("03.oracle_gap", None, use_solution=True, df=df, model="m")
    assert exercises.check("03.oracle_gap", 0.2, df=df, model="m")
    assert not exercises.check("03.oracle_gap", 0.4, df=df, model="m")  # the sum, not the mean
    assert not exercises.check("03.oracle_gap", 0.5, df=df, model="m")  # all models mixed


def test_bootstrap_ci():
    values = np.random.default_rng(0).uniform(0.4, 0.9, size=25)
    assert exercises.check("03.bootstrap_ci", None, use_solution=True, values=values)
    assert exercises.check("03.bootstrap_ci", exercises.solution("03.bootstrap_ci", values=values, seed=7),
                           values=values)  # fmt: skip
    sd = values.std()
    assert not exercises.check("03.bootstrap_ci", (values.mean() - 1.96 * sd, values.mean() + 1.96 * sd), values=values)
    assert not exercises.check("03.bootstrap_ci", (values.min(), values.max()), values=values)
    assert not exercises.check("03.bootstrap_ci", 0.5, values=values)
