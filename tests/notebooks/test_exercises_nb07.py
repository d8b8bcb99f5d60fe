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


def reports_with(gains_and_overshoot):
    """Per-structure reports as volumetric.report writes them: only the numbers the predict check reads."""
    return {
        name: {"propagation_dice3d": 0.7, "in_range_dice3d": 0.7 + gain, "overshoot_slices": over}
        for name, (gain, over) in gains_and_overshoot.items()
    }


def test_in_range_prediction_is_graded_from_this_runs_numbers(capsys):
    overshot = reports_with({"thalamus": (0.05, 4), "putamen": (0.0, 0)})
    assert exercises.solution("07.in_range", reports=overshot) == "higher"
    assert check("07.in_range", "higher", reports=overshot)
    assert "your prediction held" in capsys.readouterr().out
    # a wrong prediction is answered (and explained), not failed: the point is to commit first
    assert check("07.in_range", "lower", reports=overshot)
    out = capsys.readouterr().out
    assert "this run says 'higher'" in out and "thalamus 4 slice(s), +0.050" in out and "cannot fall" in out
    stopped_in_time = reports_with({"thalamus": (0.0, 0)})
    assert exercises.solution("07.in_range", reports=stopped_in_time) == "the same"
    assert check("07.in_range", "higher", reports=stopped_in_time)
    assert "this run says 'the same'" in capsys.readouterr().out
    assert not check("07.in_range", "yes", reports=overshot)  # not one of the choices
    assert not check("07.in_range", None, reports=overshot)  # unanswered


# ---------------------------------------------------------------------------------- the stop rule (build)


class BrightInBox:
    """A fake model that segments the bright (> 100) pixels inside the box: like a box-prompted model, it
    follows whatever bright tissue the box holds, so a walk runs on past a structure into a neighbour."""

    def __init__(self) -> None:
        self.calls = 0
        self.features = self.original_size = self.input_size = None
        self.is_image_set = False

    def set_image(self, image, image_format="RGB"):
        self.calls += 1
        self.features, self.original_size, self.input_size = np.array(image), image.shape[:2], image.shape[:2]
        self.is_image_set = True

    def predict(self, box=None, multimask_output=False, **_):
        x0, y0, x1, y1 = np.round(np.asarray(box, dtype=float)).astype(int)
        inside = np.zeros(self.features.shape[:2], dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        return ((self.features > 100) & inside)[None], np.array([0.9]), None


def two_tissues() -> dict:
    """A 'structure' (grey 200, slices 4-10) continued by a neighbour of the same shape but another grey level
    (140, slices 11-13; the current rule's area and overlap checks cannot see the change, the grey level can),
    then by a much larger bright region (slices 14-17: there the current rule's area check fires)."""
    from utils.lessons.volumetric import Structure

    volume = np.full((18, 40, 40), 20, dtype=np.uint8)
    mask = np.zeros(volume.shape, dtype=bool)
    rows, cols = np.indices((40, 40))
    disk = (rows - 20) ** 2 + (cols - 20) ** 2 <= 8**2
    for k in range(4, 14):
        volume[k][disk] = 200 if k <= 10 else 140
    volume[14:, 4:36, 4:36] = 140
    mask[4:11] = disk
    volume[:, 0, 0] = np.arange(18)  # every slice a distinct image for the embedding cache
    return {"blob": Structure("blob", volume, mask, (1.0, 1.0, 1.0), "synthetic")}


def stop_context(**changes):
    from utils.lessons.volumetric import StopRule
    from utils.models import CachedPredictor

    context = {"rule": StopRule(max_slices=8), "structures": two_tissues(), "predictor": CachedPredictor(BrightInBox())}
    return context | changes


def test_stop_rule_reference_solution_is_better_and_wrong_rules_fail(capsys):
    from utils.lessons.volumetric import StopRule

    context = stop_context()
    solution = exercises.solution("07.stop_rule", **context)
    assert check("07.stop_rule", solution, **context)
    out = capsys.readouterr().out
    # the current rule runs 3 slices into the neighbour (its area check fires on slice 14); the reference rule
    # stops at the neighbour's first slice, so Dice rises and the overshoot falls to 0
    assert "better" in out and "slices filled outside the structures 3 → 0" in out, out
    assert "intensity_jump" in out

    def always_stop(mask, previous, score=None, image=None, previous_image=None):
        return "always"

    assert not check("07.stop_rule", always_stop, **context)  # Dice falls to one slice's worth
    assert "loses Dice" in capsys.readouterr().out

    def never_stop(mask, previous, score=None, image=None, previous_image=None):
        return None

    # with no jump checks and a budget of 3 the current rule never stops early either: a tie passes
    loose = StopRule(max_area_ratio=None, min_overlap=None, max_slices=3)
    assert check("07.stop_rule", never_stop, **stop_context(rule=loose))
    assert "as good as the current one" in capsys.readouterr().out
    assert not check("07.stop_rule", never_stop, **context)  # it runs on into the large region (slices 14, 15)
    assert "run further past the structures" in capsys.readouterr().out
    assert not check("07.stop_rule", context["rule"], **context)  # the course's own rule
    assert "course's own rule" in capsys.readouterr().out
    assert not check("07.stop_rule", lambda mask, previous: None, **context)  # wrong interface: feedback, no crash
    assert "could not be checked" in capsys.readouterr().out
    assert not check("07.stop_rule", lambda mask, previous, **_: True, **context)  # True is not a reason
    assert "non-empty string" in capsys.readouterr().out
    assert not check("07.stop_rule", "intensity", **context)  # not a function


def test_stop_rule_reuses_the_current_rules_walks():
    from utils.lessons import volumetric
    from utils.prompts import next_box

    context = stop_context()
    structure = context["structures"]["blob"]
    start_box = next_box(structure.mask[structure.middle], 3)
    baseline = {"blob": volumetric.propagate(context["predictor"], structure.volume, structure.middle, start_box,
                                             rule=context["rule"], progress=False)}  # fmt: skip
    calls = context["predictor"].predictor.calls
    assert check("07.stop_rule", exercises.solution("07.stop_rule", **context), baseline=baseline, **context)
    assert context["predictor"].predictor.calls == calls  # every slice it needed was encoded already


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
    for key in ("07.in_range", "07.volume_ml", "07.stop_rule", "07.slice_window"):
        text = exercises.solution_markdown(key)
        assert text.startswith("<details>") and "def _solve_" in text
