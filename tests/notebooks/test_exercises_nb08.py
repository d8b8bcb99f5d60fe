"""Notebook 08's exercise checks: the reference solution passes, typical wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest

from utils import exercises
from utils.exercises import nb08  # noqa: F401 - registers the exercises
from utils.lessons import landscape


def check(key, answer, **context) -> bool:
    return exercises.check(key, answer, **context)


def lesion_grey() -> np.ndarray:
    """A dark disk (the lesion), a larger dark band on the border, a small dark dot, on bright skin."""
    rows, cols = np.indices((64, 80))
    grey = np.full((64, 80), 200.0)
    grey[(rows - 30) ** 2 + (cols - 44) ** 2 <= 100] = 60
    grey[:, :12] = 40
    grey[5:8, 60:63] = 60
    return grey


def test_auto_box():
    context = {"grey": lesion_grey(), "polarity": "dark"}
    assert exercises.solution("08.auto_box", **context) == [34, 20, 54, 40]
    assert check("08.auto_box", exercises.solution("08.auto_box", **context), **context)
    assert check("08.auto_box", [34, 20, 54, 40], **context)
    assert not check("08.auto_box", [0, 0, 54, 63], **context)  # kept the border band
    assert not check("08.auto_box", [20, 34, 40, 54], **context)  # rows and columns swapped
    assert not check("08.auto_box", [34, 5, 62, 40], **context)  # every dark pixel away from the border
    assert not check("08.auto_box", [34, 20, 54], **context)


def test_box_iou():
    context = {"box": [0, 0, 9, 9], "reference": [5, 2, 14, 9]}
    assert exercises.solution("08.box_iou", **context) == pytest.approx(40 / 140)  # 5 x 8 of 10 x 10 + 10 x 8
    assert check("08.box_iou", exercises.solution("08.box_iou", **context), **context)
    assert not check("08.box_iou", 28 / 116, **context)  # continuous areas (x1 - x0) instead of pixels
    assert not check("08.box_iou", 40 / 100, **context)  # overlap / one box's area
    apart = {"box": [0, 0, 4, 4], "reference": [6, 6, 9, 9]}
    assert check("08.box_iou", exercises.solution("08.box_iou", **apart), **apart)  # no overlap: 0, not negative


def test_lora_share():
    context = {"rank": 8, "model": "sam_vit_b"}
    added, share = exercises.solution("08.lora_share", **context)
    assert added == 12 * 8 * (768 + 2304)
    assert check("08.lora_share", (added, share), **context)
    total = 93_735_472  # SAM ViT-B without LoRA
    assert not check("08.lora_share", (added, added / total), **context)  # forgot the added parameters in the total
    assert not check("08.lora_share", (12 * 8 * 768 * 2, share), **context)  # B counted as in x rank
    assert not check("08.lora_share", added, **context)


def test_notebooks_for():
    table = landscape.methods_table()
    context = {"table": table, "failure": "prompt_ambiguity"}
    expected = landscape.notebooks_for("prompt_ambiguity")
    assert exercises.solution("08.notebooks_for", **context) == expected
    assert check("08.notebooks_for", expected, **context)
    assert check("08.notebooks_for", list(reversed(expected)), **context)  # order does not matter
    assert not check("08.notebooks_for", expected[:-1], **context)
    assert not check("08.notebooks_for", "02_prompting_sam", **context)


def test_solutions_show_readable_code():
    for key in ("08.auto_box", "08.box_iou", "08.lora_share", "08.notebooks_for"):
        text = exercises.solution_markdown(key)
        assert text.startswith("<details>") and "def _solve_" in text
