"""Notebook 03's exercise checkers: the reference answer passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from utils import exercises
from utils.datasets import Case
from utils.metrics import dice
from utils.prompts import box_from_mask

from fakes import LookupPredictor


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


def results_table(box=0.8, points_5=0.3, point_center=0.1, n=6, model="m"):
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        for mode, level in (("box", box), ("box_jitter_10", box - 0.05), ("points_5", points_5),
                            ("point_center", point_center)):  # fmt: skip
            rows.append({"model": model, "case": f"c{i}", "mode": mode, "dice": level + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_which_prompt_wins_answers_every_choice_and_explains_from_the_numbers(capsys):
    df = pd.concat([results_table(), results_table(box=0.2, points_5=0.7, model="sam")])
    assert exercises.solution("03.which_prompt_wins", df=df, model="m") == "box"
    assert exercises.solution("03.which_prompt_wins", df=df, model="sam") == "points_5"
    assert exercises.check("03.which_prompt_wins", None, use_solution=True, df=df, model="m")
    assert "your prediction held" in capsys.readouterr().out
    assert exercises.check("03.which_prompt_wins", "point_center", df=df, model="m")  # a wrong prediction: answered
    out = capsys.readouterr().out
    assert "this run says 'box', not 'point_center'" in out and "box 0.8" in out and "6 of 6 cases" in out
    assert exercises.check("03.which_prompt_wins", "box", df=df, model="sam")
    assert "this run says 'points_5'" in capsys.readouterr().out
    assert not exercises.check("03.which_prompt_wins", "the box", df=df, model="m")  # not a choice


def rectangle_case(name, top, left, height, width, shape=(60, 80)):
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    image = np.where(mask, 220, (np.arange(shape[1]) * 2 + len(name) * 11) % 180).astype(np.uint8)
    return Case(image=image, mask=mask, name=name, modality="ct")


def two_click_context():
    cases = [rectangle_case(f"r{i}", 8 + 3 * i, 10 + 5 * i, 12 + 2 * i, 30 - 2 * i) for i in range(8)]
    df = pd.DataFrame([{"model": "m", "case": c.name, "mode": mode, "dice": value}
                       for c in cases for mode, value in (("box", 0.9), ("box_jitter_10", 0.8))])  # fmt: skip
    return {"predictor": LookupPredictor(cases), "cases": cases, "df": df, "model": "m", "seed": 0}


def test_two_click_box_runs_the_students_simulator_through_the_model(capsys):
    context = two_click_context()
    assert exercises.check("03.two_click_box", None, use_solution=True, **context)
    out = capsys.readouterr().out
    assert "tight box 0.900" in out and "box_jitter_10 0.800" in out and "yours 1.000" in out
    assert context["predictor"].encoder_calls == len(context["cases"])  # it really ran the model on each case

    def exact(mask, rng, click_error_px):  # no click error: just the tight box
        return box_from_mask(mask)

    def transposed(mask, rng, click_error_px):  # rows and columns swapped
        x0, y0, x1, y1 = box_from_mask(mask) + rng.normal(0, click_error_px, 4)
        return [y0, x0, y1, x1]

    def scaled_by_the_box(mask, rng, click_error_px):  # errors of click_error_px box widths, as jitter does
        box = box_from_mask(mask)
        box = box + rng.normal(0, click_error_px, 4) * (box[2] - box[0] + 1) / 10
        return [*np.clip(box[:2], 0, None), min(box[2], 79), min(box[3], 59)]

    def three_numbers(mask, rng, click_error_px):
        return [1, 2, 3]

    not_a_function = box_from_mask(context["cases"][0].mask)
    for wrong in (exact, transposed, scaled_by_the_box, three_numbers, not_a_function):
        assert not exercises.check("03.two_click_box", wrong, **context), wrong
    assert "hit the tight box exactly" in capsys.readouterr().out


def test_bootstrap_ci():
    values = np.random.default_rng(0).uniform(0.4, 0.9, size=25)
    assert exercises.check("03.bootstrap_ci", None, use_solution=True, values=values)
    assert exercises.check("03.bootstrap_ci", exercises.solution("03.bootstrap_ci", values=values, seed=7),
                           values=values)  # fmt: skip
    sd = values.std()
    assert not exercises.check("03.bootstrap_ci", (values.mean() - 1.96 * sd, values.mean() + 1.96 * sd), values=values)
    assert not exercises.check("03.bootstrap_ci", (values.min(), values.max()), values=values)
    assert not exercises.check("03.bootstrap_ci", 0.5, values=values)
