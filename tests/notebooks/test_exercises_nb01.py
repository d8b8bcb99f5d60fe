"""Exercises of notebook 01: reference answers pass, typical mistakes fail with a helpful message."""

import numpy as np
import pytest

from utils import exercises, models
from utils.exercises import nb01  # noqa: F401  (registers the exercises)
from utils.lessons import anatomy

from fakes import load_tiny_sam

KEYS = ("01.attention_cost", "01.iou_head_params", "01.low_res_size", "01.fourier_point")


def _check(key, answer, **context):
    item = exercises.REGISTRY[key]
    return item.checker(answer, **context)


def test_all_exercises_are_registered_with_questions_and_solutions():
    for key in KEYS:
        assert key in exercises.REGISTRY and exercises.REGISTRY[key].question
        assert exercises.solution_markdown(key).startswith("<details>")


def test_attention_cost():
    assert _check("01.attention_cost", {"tokens": 4096, "global_scores": 4096**2, "window_scores": 25 * 196**2})[0]
    # forgetting the padding: 64 // 14 = 4 windows per side
    wrong = {"tokens": 4096, "global_scores": 4096**2, "window_scores": 16 * 196**2}
    passed, feedback = _check("01.attention_cost", wrong)
    assert not passed and "window_scores" in feedback
    assert not _check("01.attention_cost", 4096)[0]
    # another context: tiny SAM's 256-px input with 8-token windows (16 = 2 windows per side, no padding)
    assert exercises.solution("01.attention_cost", image_size=256, patch=16, window=8) == {
        "tokens": 256,
        "global_scores": 65_536,
        "window_scores": 4 * 64**2,
    }


def test_iou_head_params():
    head = models.meta_sam("sam_vit_b").mask_decoder.iou_prediction_head
    assert _check("01.iou_head_params", 132_612, head=head)[0]
    passed, feedback = _check("01.iou_head_params", 132_096, head=head)  # weights without biases
    assert not passed and "biases" in feedback
    assert not _check("01.iou_head_params", 1, head=head)[0]
    tiny_head = load_tiny_sam().mask_decoder.iou_prediction_head
    assert _check("01.iou_head_params", exercises.solution("01.iou_head_params", head=tiny_head), head=tiny_head)[0]


def test_low_res_size():
    assert _check("01.low_res_size", {"low_res": (256, 256), "valid": (192, 256)})[0]
    passed, feedback = _check("01.low_res_size", {"low_res": (256, 256), "valid": (256, 192)})
    assert not passed and "padded" in feedback
    passed, feedback = _check("01.low_res_size", {"low_res": (480, 640), "valid": (480, 640)})
    assert not passed and "embedding grid" in feedback
    assert not _check("01.low_res_size", (256, 256))[0]
    context = {"image_hw": (300, 200), "img_size": 256, "grid": 16}  # tiny SAM: 64×64 logits
    assert exercises.solution("01.low_res_size", **context) == {"low_res": (64, 64), "valid": (64, 43)}
    assert _check("01.low_res_size", exercises.solution("01.low_res_size", **context), **context)[0]


def test_fourier_point():
    encoder = load_tiny_sam().prompt_encoder
    point = (70.0, 180.0)
    reference = exercises.solution("01.fourier_point", prompt_encoder=encoder, point=point)
    np.testing.assert_allclose(reference, anatomy.fourier_features(encoder, [point])[0], atol=1e-4)
    assert _check("01.fourier_point", reference, prompt_encoder=encoder, point=point)[0]
    unshifted = anatomy.fourier_features(encoder, [point], pixel_centre=False)[0]
    passed, feedback = _check("01.fourier_point", unshifted, prompt_encoder=encoder, point=point)
    assert not passed and "+0.5" in feedback
    half = reference.size // 2
    swapped = np.concatenate([reference[half:], reference[:half]])
    passed, feedback = _check("01.fourier_point", swapped, prompt_encoder=encoder, point=point)
    assert not passed and "sines come first" in feedback
    passed, feedback = _check("01.fourier_point", reference[:10], prompt_encoder=encoder, point=point)
    assert not passed and "expected" in feedback


@pytest.mark.parametrize("key", KEYS)
def test_check_prints_feedback_through_the_framework(key, capsys):
    contexts = {
        "01.attention_cost": {},
        "01.iou_head_params": {"head": load_tiny_sam().mask_decoder.iou_prediction_head},
        "01.low_res_size": {},
        "01.fourier_point": {"prompt_encoder": load_tiny_sam().prompt_encoder, "point": (3.0, 4.0)},
    }
    assert exercises.check(key, None, use_solution=True, **contexts[key]) is True
    assert "✅" in capsys.readouterr().out
    assert exercises.check(key, "nonsense", **contexts[key]) is False
    assert "❌" in capsys.readouterr().out
