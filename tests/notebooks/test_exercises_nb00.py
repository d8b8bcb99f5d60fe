"""Exercises of notebook 00: the prediction is answered either way from the numbers, the box builder is run."""

import numpy as np
import pytest

from utils import exercises
from utils.exercises import nb00  # noqa: F401  (registers the exercises)


def _check(key, answer, **context):
    return exercises.REGISTRY[key].checker(answer, **context)


@pytest.mark.parametrize(
    ("encoder_s", "outcome"), [(0.5, "below 1x"), (1.5, "1x to 2x"), (3.0, "2x to 4x"), (9.0, "above 4x")]
)
def test_encoder_floor_outcome_follows_the_measured_ratio(encoder_s, outcome):
    context = {"encoder_s": encoder_s, "gflop": 100.0, "tflops": 0.1}  # floor: 100 GFLOP / 100 GFLOP/s = 1 s
    assert exercises.solution("00.encoder_floor", **context) == outcome
    passed, feedback = _check("00.encoder_floor", outcome, **context)
    assert passed and feedback.startswith("your prediction held") and f"{encoder_s:.1f}× the floor" in feedback
    other = next(c for c in nb00.FLOOR_CHOICES if c != outcome)
    passed, feedback = _check("00.encoder_floor", other, **context)
    assert passed and f"this run says {outcome!r}" in feedback  # a wrong prediction is answered, not failed
    explained = "faster than the matmul test" if encoder_s < 1 else "softmax, layer norms"
    assert explained in feedback


def test_encoder_floor_refuses_an_answer_that_is_not_a_choice():
    passed, feedback = _check("00.encoder_floor", 2.0, encoder_s=2.0, gflop=100.0, tflops=0.1)
    assert not passed and "'below 1x'" in feedback


class BoxRecorder:
    """A stand-in predictor: records each box and returns the box's filled rectangle as the mask."""

    def __init__(self, shape):
        self.shape, self.boxes = shape, []

    def predict(self, box, multimask_output):
        self.boxes.append(np.asarray(box, dtype=float))
        x0, y0, x1, y1 = np.round(box).astype(int)
        mask = np.zeros(self.shape, dtype=bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
        return mask[None], np.ones(1), None


@pytest.fixture
def blob():
    mask = np.zeros((40, 60), dtype=bool)
    mask[3:21, 5:31] = True  # rows 3..20, columns 5..30: a margin of 5 leaves the image at the top
    return mask


def test_box_margin_reference_is_run_at_every_margin(blob):
    predictor = BoxRecorder(blob.shape)
    builder = exercises.solution("00.box_margin")
    assert builder(blob, 5).tolist() == [0, 0, 35, 25]  # clipped at the top and the left
    passed, feedback = _check("00.box_margin", builder, predictor=predictor, mask=blob)
    assert passed and "Dice by margin" in feedback and "0 px: 1.000" in feedback  # the tight box is the blob
    assert len(predictor.boxes) == 2 * len(nb00.MARGINS)  # the student's box and the course's, per margin


def test_box_margin_mistakes_are_named(blob):
    predictor = BoxRecorder(blob.shape)

    def tight_only(mask, margin):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return [cols[0], rows[0], cols[-1], rows[-1]]

    def unclipped(mask, margin):
        x0, y0, x1, y1 = tight_only(mask, margin)
        return [x0 - margin, y0 - margin, x1 + margin, y1 + margin]

    def row_first(mask, margin):
        x0, y0, x1, y1 = tight_only(mask, margin)
        return [y0, x0, y1, x1]

    cases = {tight_only: "still the tight box", unclipped: "clip it", row_first: "(row, col) order"}
    for builder, message in cases.items():
        passed, feedback = _check("00.box_margin", builder, predictor=predictor, mask=blob)
        assert not passed and message in feedback, (builder.__name__, feedback)
    passed, feedback = _check("00.box_margin", [5, 3, 30, 20], predictor=predictor, mask=blob)
    assert not passed and "the function itself" in feedback


def test_checks_through_the_framework(blob, capsys):
    predictor = BoxRecorder(blob.shape)
    assert exercises.check("00.box_margin", None, use_solution=True, predictor=predictor, mask=blob) is True
    assert exercises.check("00.box_margin", lambda mask, margin: "x", predictor=predictor, mask=blob) is False
    assert "❌" in capsys.readouterr().out
    assert exercises.REGISTRY["00.encoder_floor"].kind == "predict"
    assert exercises.REGISTRY["00.box_margin"].kind == "build" and not exercises.REGISTRY["00.box_margin"].warmup
