"""Exercises of notebook 01: reference answers pass, typical mistakes fail with a helpful message."""

import numpy as np
import pytest

from utils import exercises, models
from utils.exercises import nb01  # noqa: F401  (registers the exercises)
from utils.lessons import anatomy

from fakes import blob_case, load_tiny_predictor, load_tiny_sam

KEYS = ("01.attention_cost", "01.iou_head_params", "01.fourier_point", "01.box_tokens", "01.prompt_speedup")


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


@pytest.fixture(scope="module")
def tiny_with_image():
    predictor = load_tiny_predictor()
    case = blob_case("tokens", shape=(48, 64))
    predictor.set_image(case.image)
    return predictor, [14.0, 9.0, 40.0, 31.0]  # a box in image pixels


def test_box_tokens_are_plugged_into_the_decoder(tiny_with_image):
    predictor, box = tiny_with_image
    encode_box = exercises.solution("01.box_tokens")
    encoder = predictor.model.prompt_encoder
    box_input = predictor.transform.apply_boxes(np.array([box]), predictor.original_size)[0]
    np.testing.assert_allclose(encode_box(encoder, box_input), anatomy.box_tokens(predictor, box), atol=1e-5)
    passed, feedback = _check("01.box_tokens", encode_box, predictor=predictor, box=box)
    assert passed and "Dice 1.0000 with the course's" in feedback


def test_box_tokens_mistakes_are_named_with_the_measured_mask(tiny_with_image):
    predictor, box = tiny_with_image
    reference = exercises.solution("01.box_tokens")
    kinds = np.stack([predictor.model.prompt_encoder.point_embeddings[i].weight.detach().numpy()[0] for i in (2, 3)])

    def no_kinds(encoder, box_input):
        return reference(encoder, box_input) - kinds

    def swapped_kinds(encoder, box_input):
        return reference(encoder, box_input) - kinds + kinds[::-1]

    def shifted(encoder, box_input):  # forgot the pixel centre
        return reference(encoder, np.asarray(box_input) - 0.5)

    for builder, message in ((no_kinds, "add the learned corner"), (swapped_kinds, "top-left corner gets"),
                             (shifted, "differ from the prompt encoder's")):  # fmt: skip
        passed, feedback = _check("01.box_tokens", builder, predictor=predictor, box=box)
        assert not passed and message in feedback and "the decoder's mask from your tokens" in feedback
    passed, feedback = _check("01.box_tokens", lambda encoder, box_input: np.zeros(5), predictor=predictor, box=box)
    assert not passed and "shape" in feedback
    assert not _check("01.box_tokens", np.zeros((2, 64)), predictor=predictor, box=box)[0]


@pytest.mark.parametrize(("encoder_s", "outcome"), [(0.05, "under 10"), (1.0, "10 to 100"), (3.0, "over 100")])
def test_prompt_speedup_is_answered_from_the_timing(encoder_s, outcome):
    context = {"encoder_s": encoder_s, "decoder_ms": 20.0, "encoder_gflop": 75.0, "prompt_gflop": 3.6}
    assert exercises.solution("01.prompt_speedup", **context) == outcome
    passed, feedback = _check("01.prompt_speedup", outcome, **context)
    assert passed and feedback.startswith("your prediction held") and "FLOP ratio of 21" in feedback
    wrong = next(c for c in ("under 10", "10 to 100", "over 100") if c != outcome)
    passed, feedback = _check("01.prompt_speedup", wrong, **context)
    assert passed and f"this run says {outcome!r}" in feedback
    assert ("less well" in feedback) == (1000 * encoder_s / 20.0 < 75.0 / 3.6)
    assert not _check("01.prompt_speedup", 50, **context)[0]


@pytest.mark.parametrize("key", KEYS)
def test_check_prints_feedback_through_the_framework(key, capsys, tiny_with_image):
    predictor, box = tiny_with_image
    contexts = {
        "01.attention_cost": {},
        "01.iou_head_params": {"head": load_tiny_sam().mask_decoder.iou_prediction_head},
        "01.fourier_point": {"prompt_encoder": load_tiny_sam().prompt_encoder, "point": (3.0, 4.0)},
        "01.box_tokens": {"predictor": predictor, "box": box},
        "01.prompt_speedup": {"encoder_s": 1.0, "decoder_ms": 50.0, "encoder_gflop": 75.0, "prompt_gflop": 3.6},
    }
    assert exercises.check(key, None, use_solution=True, **contexts[key]) is True
    assert "✅" in capsys.readouterr().out
    assert exercises.check(key, "nonsense", **contexts[key]) is False
    assert "❌" in capsys.readouterr().out
