"""Notebook 04's exercise checkers: the reference answer passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest

from utils import exercises, phantoms
from utils.images import rescale_to_uint8
from utils.lessons import domain
from utils.metrics import dice


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


@pytest.mark.parametrize("hole", [0.3, 0.5, 0.7])
def test_filled_ring_dice_matches_a_phantom_ring(hole):
    assert exercises.check("04.filled_ring_dice", None, use_solution=True, hole_fraction=hole)
    # the course's own ring phantom, with its hole filled in, gives the same number
    case = phantoms.make_phantom("mri", seed=0, size=256, ring=hole, target_area=0.03)
    from scipy import ndimage as ndi

    filled = ndi.binary_fill_holes(case.mask)
    assert exercises.check("04.filled_ring_dice", dice(filled, case.mask), hole_fraction=hole)
    assert not exercises.check("04.filled_ring_dice", 1 - hole, hole_fraction=hole)  # the IoU, not the Dice
    assert not exercises.check("04.filled_ring_dice", "two thirds", hole_fraction=hole)


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
