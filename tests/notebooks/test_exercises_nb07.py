"""Notebook 07's exercise checks: the reference solution passes, typical wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest

from utils import exercises
from utils.exercises import nb07  # noqa: F401 - registers the exercises


def blob(shape=(40, 50), center=(18, 22), radius=7.0) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def check(key, answer, **context) -> bool:
    return exercises.check(key, answer, **context)


def test_next_box():
    mask = blob(center=(5, 45))  # near the top-right corner: the margin must be clipped
    context = {"mask": mask, "margin": 3}
    assert check("07.next_box", exercises.solution("07.next_box", **context), **context)
    assert check("07.next_box", [35, 0, 49, 15], **context)  # written out by hand
    assert not check("07.next_box", [35, -3, 52, 15], **context)  # not clipped
    assert not check("07.next_box", [0, 35, 15, 49], **context)  # rows and columns swapped
    assert not check("07.next_box", [35, 0, 49], **context)


def test_volume_ml():
    gt = np.zeros((9, 20, 20), dtype=bool)
    gt[1:8, 5:15, 5:15] = True  # 7 slices of 100 voxels
    context = {"gt": gt, "spacing": (1.0, 0.5, 0.5), "step": 3}
    fine, thick = exercises.solution("07.volume_ml", **context)
    assert fine == pytest.approx(0.175) and thick == pytest.approx(2 * 100 * 0.75 / 1000)  # slices 3 and 6
    assert check("07.volume_ml", (fine, thick), **context)
    assert not check("07.volume_ml", (700, 300), **context)  # voxel counts, not mL
    assert not check("07.volume_ml", (fine, fine), **context)  # forgot that the thick scan misses slices
    assert not check("07.volume_ml", fine, **context)


def test_stop_rule():
    context = {"min_area": 10, "max_area_ratio": 2.0, "min_overlap": 0.5}
    assert check("07.stop_rule", exercises.solution("07.stop_rule", **context), **context)

    def area_only(mask, previous):  # forgets the overlap check: misses the moved mask
        return mask.sum() < 10 or max(mask.sum(), previous.sum()) / max(min(mask.sum(), previous.sum()), 1) > 2

    assert not check("07.stop_rule", area_only, **context)
    assert not check("07.stop_rule", lambda mask, previous: False, **context)
    assert not check("07.stop_rule", True, **context)  # not a function


def test_slice_window():
    rng = np.random.default_rng(0)
    image = np.zeros((30, 30), dtype=np.uint8)
    image[5:25, 5:25] = rng.integers(40, 200, (20, 20))
    context = {"image": image, "percentiles": (1.0, 99.0)}
    assert check("07.slice_window", exercises.solution("07.slice_window", **context), **context)
    from utils.images import rescale_to_uint8

    whole_slice = rescale_to_uint8(image, percentiles=(1.0, 99.0))  # background included: a different window
    assert not check("07.slice_window", whole_slice, **context)
    assert not check("07.slice_window", image[:10], **context)


def test_solutions_show_readable_code():
    for key in ("07.next_box", "07.volume_ml", "07.stop_rule", "07.slice_window"):
        text = exercises.solution_markdown(key)
        assert text.startswith("<details>") and "def _solve_" in text
