"""Notebook 08's exercise checks: the reference solution passes, typical wrong answers fail."""

from __future__ import annotations

import numpy as np
import pandas as pd

from utils import exercises
from utils.datasets import Case
from utils.exercises import nb08  # noqa: F401 - registers the exercises
from utils.lessons import autoprompt


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


def test_lora_share():
    context = {"rank": 8, "model": "sam_vit_b"}
    added, share = exercises.solution("08.lora_share", **context)
    assert added == 12 * 8 * (768 + 2304)
    assert check("08.lora_share", (added, share), **context)
    total = 93_735_472  # SAM ViT-B without LoRA
    assert not check("08.lora_share", (added, added / total), **context)  # forgot the added parameters in the total
    assert not check("08.lora_share", (12 * 8 * 768 * 2, share), **context)  # B counted as in x rank
    assert not check("08.lora_share", added, **context)


def scores(gt, auto, iou=None) -> pd.DataFrame:
    """A compare_prompts-like table: per-case Dice with the annotator's and the automatic box."""
    n = len(gt)
    return pd.DataFrame({"case": [f"case{i}" for i in range(n)], "dice_gt_box": gt, "dice_auto_box": auto,
                         "box_iou": iou if iou is not None else [0.9] * n})  # fmt: skip


def test_auto_vs_annotator_is_graded_from_the_mean_gap(capsys):
    close = scores([0.9, 0.8], [0.88, 0.79])  # gap 0.015
    far = scores([0.9, 0.95], [0.89, 0.15], iou=[0.95, 0.05])  # the second box landed elsewhere
    better = scores([0.5, 0.6], [0.6, 0.6])
    assert exercises.solution("08.auto_vs_annotator", results=close) == "within 0.05 Dice"
    assert exercises.solution("08.auto_vs_annotator", results=far) == "more than 0.05 Dice worse"
    assert exercises.solution("08.auto_vs_annotator", results=better) == "better than the annotator's"
    assert check("08.auto_vs_annotator", "within 0.05 Dice", results=far)  # answered either way
    out = capsys.readouterr().out
    assert "this run says 'more than 0.05 Dice worse'" in out and "case1 (0.80 Dice, box IoU 0.05)" in out
    assert check("08.auto_vs_annotator", "more than 0.05 Dice worse", results=far)
    assert "your prediction held" in capsys.readouterr().out
    assert not check("08.auto_vs_annotator", "worse", results=far)  # not one of the choices


class DarkInBox:
    """A stand-in model: the dark pixels inside the prompt box (a box that covers the lesion and nothing else
    dark is perfect; one that cuts the lesion or reaches the dark border band is not). Counts encoder calls."""

    def __init__(self):
        self.encoded = 0

    def set_image(self, image):
        self.encoded += 1
        self.dark = np.asarray(image).reshape(*np.shape(image)[:2], -1)[..., 0] < 128

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=False):
        x0, y0, x1, y1 = np.round(box).astype(int)
        mask = np.zeros(self.dark.shape, bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = self.dark[y0 : y1 + 1, x0 : x1 + 1]
        return mask[None], np.ones(1), np.zeros((1, 256, 256))


def test_better_box_scores_the_students_recipe_against_the_courses():
    grey = lesion_grey()  # a dark lesion, a dark band on the border and a small dark dot on bright skin
    lesion = grey == 60
    lesion[5:8, 60:63] = False  # the dot is not the lesion
    cases = [Case(grey.astype(np.uint8), lesion, name="lesion", modality="dermoscopy")]
    context = {"predictor": DarkInBox(), "cases": cases, "polarities": ["dark"]}
    context["reference"] = autoprompt.compare_prompts(context["predictor"], cases, "dark", progress=False)
    assert check("08.better_box", exercises.solution("08.better_box", **context), **context)

    def same(image, polarity):
        return autoprompt.auto_box(image, polarity)

    def nothing(image, polarity):
        return None

    def whole_image(image, polarity):
        return [0, 0, image.shape[1] - 1, image.shape[0] - 1]

    def outside(image, polarity):
        return [0, 0, 500, 500]

    assert check("08.better_box", same, **context)  # as good as the course's: within the bar
    assert not check("08.better_box", nothing, **context)  # no box, no mask
    assert not check("08.better_box", whole_image, **context)  # takes in the border band and the dot
    assert not check("08.better_box", outside, **context)  # not a box in the image
    assert not check("08.better_box", "otsu", **context)


def test_solutions_show_readable_code():
    for key in ("08.auto_box", "08.auto_vs_annotator", "08.better_box", "08.lora_share"):
        text = exercises.solution_markdown(key)
        assert text.startswith("<details>") and "def _solve_" in text
