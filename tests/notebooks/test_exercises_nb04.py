"""Notebook 04's exercise checkers: the reference answer passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest

from utils import exercises
from utils.images import rescale_to_uint8
from utils.lessons import domain

from fakes import BoxFiller


@pytest.fixture(autouse=True)
def _quiet(capsys):
    yield
    capsys.readouterr()


CURVE = {"values": [0.0, 0.05, 0.1, 0.25, 0.5, 1.0], "dice_mean": [0.64, 0.74, 0.84, 0.94, 0.95, 0.99]}


def test_contrast_threshold():
    assert exercises.check("04.contrast_threshold", None, use_solution=True, curve=CURVE)
    assert exercises.solution("04.contrast_threshold", curve=CURVE) == 0.25  # 0.94 >= 0.9 * 0.99 > 0.84
    assert exercises.check("04.contrast_threshold", 0.25, curve=CURVE)
    assert not exercises.check("04.contrast_threshold", 0.5, curve=CURVE)  # good, but not the lowest
    assert not exercises.check("04.contrast_threshold", 0.1, curve=CURVE)  # below 90% of the best
    assert not exercises.check("04.contrast_threshold", 0.94, curve=CURVE)  # a Dice, not a contrast
    assert not exercises.check("04.contrast_threshold", "0.25", curve=CURVE)
    assert not exercises.check("04.contrast_threshold", True, curve=CURVE)


DUEL = {"factor": "thin_structures", "modes": ["box", "point_center", "points_5"],
        "mean": {"box": 0.21, "point_center": 0.05, "points_5": 0.12}, "winner": "box", "margin": 0.09}  # fmt: skip


def test_thin_prompt_is_answered_either_way_from_this_runs_numbers(capsys):
    assert exercises.solution("04.thin_prompt", duel=DUEL) == "box"
    assert exercises.check("04.thin_prompt", None, use_solution=True, duel=DUEL)
    assert "your prediction held" in capsys.readouterr().out
    assert exercises.check("04.thin_prompt", "points_5", duel=DUEL)  # a wrong prediction is answered, not failed
    out = capsys.readouterr().out
    assert "this run says 'box'" in out and "box 0.21" in out and "0.09 Dice" in out
    points_win = {**DUEL, "mean": {"box": 0.2, "point_center": 0.3, "points_5": 0.6}, "winner": "points_5"}
    assert exercises.check("04.thin_prompt", "box", duel=points_win)
    assert "points win" in capsys.readouterr().out
    assert not exercises.check("04.thin_prompt", "points", duel=DUEL)  # not one of the choices
    assert not exercises.check("04.thin_prompt", 1, duel=DUEL)


REFERENCE = {"blur": {"values": [0.0, 12.0], "harder": "higher", "label": "blur", "dice_mean": [0.9, 0.6]}}


def test_new_factor_runs_the_students_function_through_the_sweeps(capsys):
    context = {"predictor": BoxFiller(), "seeds": (0,), "reference": REFERENCE}
    assert exercises.check("04.new_factor", None, use_solution=True, **context)
    assert context["predictor"].encoder_calls == 3  # strengths 0, 0.5 and 1 of the MRI phantom
    out = capsys.readouterr().out
    assert "course's blur factor in this run: drop +0.30" in out

    def motion_blur(image, strength):
        from scipy import ndimage

        length = 1 + int(round(20 * strength))
        return ndimage.uniform_filter1d(image, size=length, axis=1).astype(np.uint8)

    assert exercises.check("04.new_factor", motion_blur, **context)

    def untouched(image, strength):
        return image

    def brighter_always(image, strength):
        return np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8)

    def floats(image, strength):
        return image * (1 - 0.5 * strength)

    assert not exercises.check("04.new_factor", untouched, **context)  # nothing changes at strength 1
    assert "only 0.0 grey levels" in capsys.readouterr().out
    assert not exercises.check("04.new_factor", brighter_always, **context)  # changed at strength 0 too
    assert not exercises.check("04.new_factor", floats, **context)  # not uint8: the sweep refuses it
    assert "uint8" in capsys.readouterr().out
    assert not exercises.check("04.new_factor", "bias field", **context)


def test_window_grey_levels_agree_with_the_phantom_windowing():
    context = {"level": 40, "width": 400, "tissue_hu": 95, "lesion_hu": 35}
    assert exercises.check("04.window_grey_levels", None, use_solution=True, **context)
    grey = rescale_to_uint8(np.array([95.0, 35.0]), 40 - 200, 40 + 200).astype(int)
    assert exercises.check("04.window_grey_levels", abs(grey[0] - grey[1]), **context)
    assert not exercises.check("04.window_grey_levels", 60, **context)  # HU, not grey levels
    assert exercises.check("04.window_grey_levels", 3.8, **{**context, "width": 4000})
    assert not exercises.check("04.window_grey_levels", 38, **{**context, "width": 4000})
    # a narrow window (40..120 HU) clips the lesion to black: only the liver's grey level is left
    assert exercises.check("04.window_grey_levels", 255 * (95 - 40) / 80, **{**context, "level": 80, "width": 80})


def test_pca_2d_accepts_flipped_axes_and_rejects_an_uncentred_projection():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(30, 8)) * np.arange(1, 9) + 5.0
    assert exercises.check("04.pca_2d", None, use_solution=True, features=features)
    coords, _ = domain.project_2d(features)
    assert exercises.check("04.pca_2d", coords, features=features)  # sklearn's PCA agrees
    assert exercises.check("04.pca_2d", coords * [-1, 1], features=features)
    _, _, vt = np.linalg.svd(features, full_matrices=False)
    assert not exercises.check("04.pca_2d", features @ vt[:2].T, features=features)
    assert not exercises.check("04.pca_2d", coords[:, :1], features=features)
    assert not exercises.check("04.pca_2d", coords[:, ::-1], features=features)
